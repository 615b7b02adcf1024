"""What users of benchmark tools expect from the command line: --version, JSON out, quiet runs,
exporters, a report that never lands on tracked files, a fast --help."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from harness.cli import main
from tests.helpers import TINY, make_record, make_session


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd
    )


def test_version():
    result = harness("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"python -m harness {version('mlp-bench')}"


def test_help_does_not_load_the_heavy_libraries():
    code = (
        "import sys\nfrom harness.cli import main\ntry:\n    main(['run', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pandas', 'scipy', 'matplotlib', 'harness.commands') "
        "if m in sys.modules))"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert time.perf_counter() - started < 5


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    numpy = next(b for b in listing if b["name"] == "numpy")
    assert numpy["available"] is True and numpy["version"].startswith("numpy ")
    assert {"name", "version", "available", "target", "source", "reason"} <= set(numpy)
    # A version the harness does not know is null, not a string scripts would have to recognise.
    assert all(b["version"] is None or b["version"] != "?" for b in listing)
    unknown = [b for b in listing if not b["available"]]
    assert all(b["version"] is None for b in unknown)


def test_run_json_and_quiet(idx_dir, tmp_path, capsys):
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(tmp_path / "r"), *TINY]
    assert main([*argv, "--backend", "numpy", "--repeats", "2", "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    assert row["key"]["backend"] == "numpy" and row["runs_ok"] == 2
    assert row["train_time_median_s"] > 0 and row["speedup"] == 1.0
    assert "repeat 1" not in captured.err  # quiet: no per-run lines for runs that went well


def test_more_threads_than_cores_are_refused_in_one_line(idx_dir, tmp_path, capsys):
    """A huge count made BLAS start thousands of threads and grind to the timeout."""
    cores = len(os.sched_getaffinity(0))
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(tmp_path / "r"), *TINY]
    assert main([*argv, "--backend", "numpy", "--threads", f"1,{cores + 1}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: --threads {cores + 1} is more than the {cores} CPUs this process may use; "
        f"give 1 to {cores}, 'all' (1…{cores}) or 'default' (each library's own)"
    )
    assert main([*argv, "--backend", "numpy", "--threads", "100000"]) == 2
    assert "--threads 100000 is more than the" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_report_goes_next_to_the_session_by_default(tmp_path, capsys):
    root = tmp_path / "results"
    session = make_session(root, "s1", [make_record("numpy", 1.0, i) for i in range(3)])
    assert main(["report", "--results-dir", str(root)]) == 0
    assert (session / "report" / "index.html").exists()
    assert f"report: {session / 'report' / 'index.html'}" in capsys.readouterr().out
    make_session(root, "s2", [make_record("rust", 1.0, 0)])
    assert main(["report", "s1", "s2", "--results-dir", str(root)]) == 0
    assert (root / "report-s1+1" / "report.md").exists()


def test_report_opens_with_the_answer(tmp_path):
    root = tmp_path / "results"
    runs = [make_record("numpy", t, i) for i, t in enumerate([4.0, 4.2, 3.8])]
    runs += [make_record("rust", t, i) for i, t in enumerate([2.0, 2.1, 1.9])]
    make_session(root, "s", runs)
    assert main(["report", "--results-dir", str(root), "--out", str(tmp_path / "o")]) == 0
    markdown = (tmp_path / "o" / "report.md").read_text()
    assert markdown.splitlines()[2].startswith("**fastest at 1 thread: rust, 2.00 s (2.00× [")
    assert "numpy)**" in markdown.splitlines()[2]


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown"])
def test_export_formats(tmp_path, capsys, fmt):
    root = tmp_path / "results"
    make_session(root, "s", [make_record("numpy", t, i) for i, t in enumerate([1.0, 2.0, 3.0])])
    assert main(["export", "--results-dir", str(root), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert json.loads(out)[0]["train_time_median_s"] == 2.0
    elif fmt == "csv":
        header, row = out.splitlines()[:2]
        assert header.startswith("spec_hash,variant,backend,threads") and ",numpy,1," in row
    else:
        assert out.startswith("| backend ") and "| numpy " in out  # report.md's table
    target = tmp_path / f"out.{fmt}"
    assert main(["export", "--results-dir", str(root), "--format", fmt, "--out", str(target)]) == 0
    assert target.read_text() == out


def test_export_pyperf_needs_a_file(tmp_path, capsys):
    root = tmp_path / "results"
    make_session(root, "s", [make_record("numpy", 1.0, 0)])
    assert main(["export", "--results-dir", str(root), "--format", "pyperf"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --format pyperf writes a file: give it with --out FILE"
    )


def test_scaffold_prints_the_real_file(tmp_path, capsys):
    assert main(["new-backend", "tiny-thing", str(tmp_path / "pkg")]) == 0
    path = tmp_path / "pkg" / "harness_backend_tiny_thing" / "backend.py"
    assert f"fill in {path}, then:" in capsys.readouterr().out
    assert path.exists()


def test_cluster_without_distributed_says_what_to_install(monkeypatch, tmp_path, capsys):
    import sys

    from harness.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    args = ["run", "--backend", "numpy", "--cluster", "local", "--results-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --cluster needs Dask's distributed package: pip install -e '.[cluster]'"
    assert not any(tmp_path.iterdir())


def test_local_cluster_needs_a_worker(tmp_path, capsys):
    import pytest

    pytest.importorskip("distributed")
    from harness.cli import main

    args = ["run", "--backend", "numpy", "--cluster", "local:0", "--results-dir", str(tmp_path)]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --cluster local:N needs N ≥ 1 worker processes"
    )


def test_cluster_refuses_warmup(tmp_path, capsys):
    from harness.cli import main

    args = ["run", "--backend", "numpy", "--cluster", "local", "--warmup"]
    assert main([*args, "--results-dir", str(tmp_path)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith("error: --warmup is not available with --cluster")
    )
    assert not any(tmp_path.iterdir())


def test_list_shows_install_hints_verbatim(monkeypatch, capsys):
    """'.[keras]' is an install line, not console markup: list must print the brackets."""
    import importlib.util

    from harness.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda m, *a: None if m == "tensorflow" else real(m, *a)
    )
    assert main(["list"]) == 0
    assert "[keras]" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["report", "export"])
def test_a_missing_session_names_each_place_looked_once(command, tmp_path, capsys):
    root = tmp_path / "results"
    root.mkdir()
    assert main([command, "nosuch", "--results-dir", str(root)]) != 0
    assert capsys.readouterr().err.strip() == (
        f"error: no results at nosuch nor {root / 'nosuch'}; pass a session folder, a session "
        f"id under {root}, or 'latest'"
    )
    absolute = tmp_path / "gone"
    assert main([command, str(absolute), "--results-dir", str(root)]) != 0
    assert capsys.readouterr().err.strip() == (
        f"error: no results at {absolute}; pass a session folder, a session id under {root}, "
        "or 'latest'"
    )


def test_a_log_gets_run_i_of_n_and_the_time_left_without_control_characters(idx_dir, tmp_path):
    """stderr piped (a CI log): no live bar, so each finished run says where the matrix is."""
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--backend", "numpy", "--threads", "1",
         "--data-dir", str(idx_dir), "--results-dir", str(tmp_path), *TINY, "--repeats", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("run ")]
    assert [line.split(",")[0] for line in lines] == ["run 1/2", "run 2/2"]
    assert all(
        re.search(r", ~\d+:\d\d left: numpy · threads 1 · repeat \d: ok", line) for line in lines
    )
    assert lines[1].split(", ")[1] == "~0:00 left: numpy · threads 1 · repeat 2: ok"
    assert "\x1b" not in result.stderr and "\r" not in result.stderr


def test_a_run_on_a_gpu_records_what_nvidia_smi_says(idx_dir, tmp_path, monkeypatch):
    """A fake nvidia-smi stands in for the driver; the record keeps the GPU, driver and CUDA."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" ]; then echo "NVIDIA H200, 143771 MiB, 570.86.15"; exit 0; fi\n'
        'echo "| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15   CUDA Version: 12.8 |"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def run_in(folder: str, *backend: str) -> dict:
        """One run in a results folder of its own; its record."""
        argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(tmp_path / folder)]
        assert main([*argv, *TINY, *backend]) == 0
        return json.loads(next((tmp_path / folder).glob("*/*-t*-r0.json")).read_text())

    record = run_in("gpu", "--backend-path", "tests.fake_backends:SaysItRanOnAGpu")
    assert record["env"]["gpu"] == {
        "gpus": [{"name": "NVIDIA H200", "memory": "143771 MiB", "driver": "570.86.15"}],
        "cuda_driver_version": "12.8",
    }
    # only a GPU run carries it
    assert "gpu" not in run_in("cpu", "--backend", "numpy")["env"]
    # and without nvidia-smi a GPU run's record says it could not tell, rather than nothing
    fake.unlink()
    monkeypatch.setenv("PATH", str(bin_dir))  # no other nvidia-smi either (a GPU machine's)
    gpu = run_in("none", "--backend-path", "tests.fake_backends:SaysItRanOnAGpu")["env"]["gpu"]
    assert gpu["unknown"].startswith("nvidia-smi could not say: FileNotFoundError"), gpu


def test_records_carry_the_cpu_state_pyperf_reads(idx_dir, tmp_path):
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(tmp_path / "r"), *TINY]
    assert main([*argv, "--backend", "numpy"]) == 0
    (session,) = (tmp_path / "r").iterdir()
    env = json.loads(next(session.glob("numpy-*.json")).read_text())["env"]
    from pyperf._collect_metadata import collect_metadata

    expected = collect_metadata(process=False)
    # The frequency may move between then and now; whether there is one may not.
    assert (env["cpu_freq"] is None) == (expected.get("cpu_freq") is None)
    assert env["cpu_config"] == expected.get("cpu_config")
    assert isinstance(env["isolated_cpus"], list)
    out = tmp_path / "report"
    assert main(["report", "--results-dir", str(tmp_path / "r"), "--out", str(out)]) == 0
    if expected.get("cpu_config"):
        assert expected["cpu_config"] in (out / "report.md").read_text()


def test_resume_of_a_folder_that_is_no_session_says_so(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", "--resume", str(empty), "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {empty} is not a session folder (no session.json in it); give a folder 'run' "
        f"made, a session id under {tmp_path}, or 'latest'"
    )
    assert list(empty.iterdir()) == []  # no lock file left in a folder that is not a session


def test_no_sessions_says_what_to_do_without_repeating_the_option_given(tmp_path, capsys):
    assert main(["report", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: no sessions in {tmp_path}; run 'python -m harness run' to make one, or point "
        "--results-dir at the folder your sessions are in"
    )


def test_a_baseline_close_to_a_backend_gets_did_you_mean(tmp_path, capsys):
    make_session(tmp_path, "s", [make_record("numpy", 1.0, 0)])
    assert main(["report", "--results-dir", str(tmp_path), "--baseline", "nunpy"]) == 2
    err = capsys.readouterr().err
    assert "--baseline nunpy: no nunpy runs in" in err and "did you mean 'numpy'?" in err


def test_nothing_paired_by_spec_does_not_suggest_match(tmp_path, capsys):
    from harness.spec import Spec

    quick = {**Spec().to_dict(), "iterations": 600, "eval_every": 200}
    make_session(tmp_path, "a", [make_record("numpy", 1.0 + r / 10, r) for r in range(3)])
    make_session(
        tmp_path,
        "b",
        [
            make_record("numpy", 1.0 + r / 10, r, spec=quick, spec_hash=Spec(**quick).hash)
            for r in range(3)
        ],
    )
    code = main(["compare", "a", "b", "--results-dir", str(tmp_path), "--fail-if-slower", "5"])
    err = capsys.readouterr().err
    assert code != 0 and "gate: nothing paired:" in err
    assert "--match" not in err  # the spec differed, which no --match can pair


def test_without_threads_every_backend_gets_one_thread_and_default_is_asked_for(idx_dir, tmp_path):
    from tests.helpers import records, run

    assert run(idx_dir, tmp_path, "--backend", "numpy") == 0
    (record,) = records(tmp_path).values()
    assert record["threads"] == 1 and record["cpu_budget"] is not None
    assert run(idx_dir, tmp_path / "own", "--backend", "numpy", "--threads", "default") == 0
    (own,) = records(tmp_path / "own").values()
    assert own["threads"] is None and own["cpu_budget"] is None  # the library's own: no budget
