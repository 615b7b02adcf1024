"""Plugins: the scaffold, and the example plugin installed from its folder like a user would."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers import harness as run_harness

EXAMPLE = REPO_ROOT / "examples" / "harness-backend-numpy-fused"


def harness(*args: str, pythonpath: Path | None = None, cwd: Path | None = None):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return run_harness(*args, env=env, cwd=cwd, timeout=600)


def test_unedited_scaffold_fails_verify_saying_what_to_fill_in(tmp_path, idx_dir):
    made = harness("new-backend", "my-net", str(tmp_path / "plugin"))
    assert made.returncode == 0, made.stderr
    module = tmp_path / "plugin" / "harness_backend_my_net"
    assert (tmp_path / "plugin" / "pyproject.toml").read_text().count(
        'my-net = "harness_backend_my_net.backend:Backend"'
    ) == 1
    result = harness(
        "verify",
        "--backend-path",
        "harness_backend_my_net.backend:Backend",
        "--data-dir",
        str(idx_dir),
        "--set",
        "dataset=idx",
        "--set",
        "batch=10",
        pythonpath=tmp_path / "plugin",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        f"my-net: FAILED TO RUN: not implemented: fill in setup() in "
        f"{tmp_path / 'plugin' / 'harness_backend_my_net' / 'backend.py'}"
    ) in result.stdout
    assert module.is_dir()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("My Net", "backend name 'My Net' must be lower-case letters, digits and '-'"),
        ("numpy", "already exists and is not empty"),
    ],
)
def test_scaffold_refuses_bad_names_and_full_directories(tmp_path, name, message):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "file").write_text("")
    result = harness("new-backend", name, str(target))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example plugin pip-installed from its own folder into a private target."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def test_example_plugin_is_discovered_through_its_entry_point(installed_example):
    result = harness("list", pythonpath=installed_example)
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if "numpy-fused" in line)
    assert "yes" in line and "harness-backend-numpy-fused" in result.stdout


def test_example_plugin_passes_verify(installed_example, idx_dir):
    result = harness(
        "verify",
        "--backend",
        "numpy-fused",
        "--data-dir",
        str(idx_dir),
        "--set",
        "dataset=idx",
        "--set",
        "batch=10",
        "--steps",
        "50",
        pythonpath=installed_example,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "numpy-fused: pass" in result.stdout


def test_example_plugin_is_chosen_by_run_all(installed_example):
    """``--all`` takes every available registered backend, the plugin among them (running them
    all would only time the built-ins again; the plugin's own run is verify's, above)."""
    chooses = (
        "from harness import backends; from harness.requests import BackendChoice; "
        "print(*[ref.name for ref in backends.choose(BackendChoice(all=True), print)])"
    )
    result = subprocess.run(
        [sys.executable, "-c", chooses],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(installed_example)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    chosen = result.stdout.split("\n")[-2].split()
    assert "numpy-fused" in chosen and "numpy" in chosen


def test_example_plugin_matches_numpy_on_real_mnist(installed_example, mnist_dir):
    result = harness(
        "verify",
        "--backend",
        "numpy-fused",
        "--data-dir",
        str(mnist_dir),
        pythonpath=installed_example,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("lang", "tools"), [("c", ("make", "cc")), ("rust", ("cargo",))], ids=["c", "rust"]
)
def test_a_program_template_builds_and_passes_verify_as_written(tmp_path, idx_dir, lang, tools):
    """The two lines new-backend prints are the user's next steps: run them as printed."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: the {lang} template cannot be built")
    made = harness("new-backend", f"x-{lang}", "--lang", lang, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    first, steps = made.stdout.strip().splitlines()
    assert first.startswith(f"wrote harness-backend-x-{lang}: the book's network in ")
    build, verify = steps.strip().split(" && ")
    built = subprocess.run(build, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    words = shlex.split(verify)
    assert words[:4] == ["python", "-m", "harness", "verify"]
    tiny = ["--data-dir", str(idx_dir), "--set", "dataset=idx", "--set", "batch=10"]
    checked = harness(*words[3:], *tiny, "--steps", "20", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"x-{lang}: pass" in checked.stdout
    # And a run of it: proven, its work inside the timer.
    results = tmp_path / "r"
    job = ["--set", "iterations=40", "--set", "eval_every=20", "--repeats", "1", "--no-gemm-rate"]
    ran = harness("run", *words[4:], *tiny, *job, "--results-dir", str(results), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (record,) = [json.loads(p.read_text()) for p in results.glob(f"*/x-{lang}-*.json")]
    assert record["proof"]["passed"] and record["flagged"] == []


def test_an_unknown_template_language_is_one_line(tmp_path):
    made = harness("new-backend", "x", "--lang", "go", cwd=tmp_path)
    assert made.returncode == 2
    assert "argument --lang: invalid choice: 'go'" in made.stderr and "rust" in made.stderr
    assert not any(tmp_path.iterdir())


def test_new_backend_inside_a_git_checkout_asks_where(tmp_path):
    """Without a DIR it would write untracked files among the checkout's: it says where to put
    them instead, and writes nothing; a DIR given is where it goes."""
    checkout = tmp_path / "project"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "src").mkdir()
    refused = harness("new-backend", "mine", cwd=checkout / "src")
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert line == (
        f"error: this folder is inside the git checkout {checkout}: new-backend would write "
        "harness-backend-mine into it; give the place, e.g. python -m harness new-backend mine "
        "../../harness-backend-mine (beside the checkout), or harness-backend-mine to write it "
        "here anyway"
    )
    assert sorted(p.name for p in checkout.rglob("*")) == [".git", "src"]
    beside = harness("new-backend", "mine", "../../harness-backend-mine", cwd=checkout / "src")
    assert beside.returncode == 0, beside.stderr
    assert (tmp_path / "harness-backend-mine" / "pyproject.toml").exists()


def test_the_scaffolds_test_skips_without_mnist_and_says_how_to_give_it(tmp_path):
    made = harness("new-backend", "mine", str(tmp_path / "pkg"))
    assert made.returncode == 0, made.stderr
    readme = (tmp_path / "pkg" / "README.md").read_text()
    assert "pip install -e '.[test]'" in readme and "HARNESS_DATA_DIR" in readme
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_DATA_DIR"}
    env["HARNESS_CACHE_DIR"] = str(tmp_path / "empty-cache")
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path / "pkg",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 skipped" in tested.stdout and "set HARNESS_DATA_DIR" in tested.stdout


@pytest.mark.parametrize("lang", ["c", "rust"])
def test_a_program_template_has_a_readme_with_its_commands(tmp_path, lang):
    made = harness("new-backend", f"x-{lang}", str(tmp_path / "p"), "--lang", lang)
    assert made.returncode == 0, made.stderr
    readme = (tmp_path / "p" / "README.md").read_text()
    assert f"python -m harness verify --backend-cmd x-{lang}=./" in readme
    assert "HARNESS_DATA_DIR" in readme
    assert ("make -C ." if lang == "c" else "cargo build --release") in readme
