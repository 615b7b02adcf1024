"""User mistakes: one line on stderr, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess

import pytest

from harness.cli import main
from tests.helpers import harness


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_lists_the_commands():
    result = harness("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "list" in result.stdout
    run_help = harness("run", "--help").stdout
    for option in (
        "--all",
        "--backend",
        "--backend-path",
        "--repeats",
        "--threads",
        "--quick",
        "--set",
        "--spec",
        "--data-dir",
        "--results-dir",
        "--timeout",
    ):
        assert option in run_help


def test_list_shows_numpy_available():
    result = harness("list")
    assert result.returncode == 0
    assert "numpy" in result.stdout and "yes" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "choose backends with --all, --backend NAME, --backend-path M:C or --backend-"),
        (
            ["run", "--backend", "tensorflow-lite"],
            "unknown backend 'tensorflow-lite'; known backends: jax, jax-gpu, keras, keras-fit, "
            "numpy, rust, rust-ndarray, rust-ndarray-dyn, torch, torch-compile, torch-cuda",
        ),
        (["run", "--backend", "numpy", "--set", "hidden=0"], "hidden=0 is out of range"),
        (["run", "--backend", "numpy", "--set", "dtype=int8"], "dtype='int8' is not allowed"),
        (["run", "--backend", "numpy", "--repeats", "0"], "argument --repeats: '0' must be ≥ 1"),
        (
            ["run", "--backend", "numpy", "--threads", "two"],
            "argument --threads: 'two': give thread counts ≥ 1 (1,2), 'all' (1 up to every CPU "
            "allowed) or 'default' (each library's own setting)",
        ),
        (
            ["run", "--backend", "numpyy"],
            "unknown backend 'numpyy'; did you mean 'numpy'? known backends: jax, jax-gpu, ",
        ),
        (
            ["run", "--backend", "numpy", "--set", "hiden=3"],
            "--set: unknown spec key 'hiden'; did you mean 'hidden'? known keys: dataset",
        ),
        (["run", "--backend", "numpy", "--timeout", "-1"], "argument --timeout: '-1' must be"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["fly"], "invalid choice: 'fly'"),
        (
            ["run", "--backend-path", "nowhere_module:Thing"],
            "importing nowhere_module failed: ModuleNotFoundError",
        ),
        (
            ["run", "--backend-path", "tests.fake_backends"],
            "must look like 'package.module:ClassName'",
        ),
        (["run", "--backend-path", "tests.fake_backends:Missing"], "has no 'Missing'"),
        (
            ["run", "--backend-path", "tests.fake_backends:NotABackend"],
            "lacks the Backend method(s) setup, train_steps, predict, params",
        ),
    ],
)
def test_user_mistakes_are_one_line(args, message, tmp_path):
    result = (
        harness(*args, "--results-dir", str(tmp_path / "r"))
        if args[0] == "run" and "--bogus" not in args
        else harness(*args)
    )
    assert message in one_line_error(result)
    assert not (tmp_path / "r").exists(), "a failed start must not create a session"


def test_missing_data_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    result = harness(
        "run",
        "--backend",
        "numpy",
        "--data-dir",
        str(tmp_path),
        "--results-dir",
        str(tmp_path / "r"),
    )
    line = one_line_error(result)
    assert "mnist: missing train-images-idx3-ubyte[.gz]" in line
    assert not (tmp_path / "r").exists()


def test_batch_larger_than_training_set(idx_dir, tmp_path):
    result = harness(
        "run",
        "--backend",
        "numpy",
        "--data-dir",
        str(idx_dir),
        "--set",
        "dataset=idx",
        "--set",
        "batch=301",
        "--results-dir",
        str(tmp_path / "r"),
    )
    assert (
        "batch=301 is out of range for idx; it must be between 1 and the training-set "
        "size 300" in one_line_error(result)
    )


def test_results_dir_not_creatable(idx_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = harness(
        "run",
        "--backend",
        "numpy",
        "--data-dir",
        str(idx_dir),
        "--set",
        "dataset=idx",
        "--results-dir",
        str(blocker / "results"),
    )
    assert f"cannot write results under {blocker / 'results'}" in one_line_error(result)


def test_in_process_main_returns_two(capsys):
    assert main(["run", "--backend", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown backend 'nope'")
