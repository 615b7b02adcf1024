"""Every number in the READMEs comes from committed data by a committed command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REPRODUCE = REPO / "benchmarks" / "reproduce.py"


def reproduce(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPRODUCE), "--root", str(root), *args],
        capture_output=True,
        text=True,
    )


def test_the_readmes_are_what_the_committed_data_gives():
    result = reproduce(REPO, "--check")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def copy(tmp_path) -> Path:
    """The READMEs and the data they are made from, in a scratch repository."""
    for name in ("README.md", "rust_impl/README.md", "benchmarks/published_port.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    manifest = json.loads((REPO / "results" / "REFERENCE.json").read_text())
    (tmp_path / "results").mkdir()
    shutil.copy(REPO / "results" / "REFERENCE.json", tmp_path / "results")
    shutil.copytree(REPO / "results" / "benchmarks", tmp_path / "results" / "benchmarks")
    for session in manifest.values():
        shutil.copytree(REPO / "results" / session, tmp_path / "results" / session)
    return tmp_path


@pytest.mark.parametrize(
    "readme",
    ["README.md", "rust_impl/README.md", "docs/measured.md", "docs/cli.md"],
)
def test_a_number_edited_by_hand_is_caught(copy, readme):
    path = copy / readme
    text = path.read_text()
    start = text.index("<!-- reproduce: ")
    digit = next(i for i in range(text.index("-->", start), len(text)) if text[i].isdigit())
    path.write_text(text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1 :])
    result = reproduce(copy, "--check")
    assert result.returncode == 1
    assert f"{readme}: " in result.stderr and "differ from what the committed data gives" in (
        result.stderr
    )
    assert reproduce(copy).returncode == 0  # rewriting puts it back
    assert path.read_text() == text


def test_every_committed_session_was_made_from_a_clean_tree():
    sessions = [p for p in (REPO / "results").iterdir() if (p / "session.json").exists()]
    assert sessions
    for session in sessions:
        env = json.loads((session / "session.json").read_text())["env"]
        assert env["git_dirty"] is False, session
    for kept in (REPO / "results" / "benchmarks").glob("*.json"):
        assert json.loads(kept.read_text())["env"]["git_dirty"] is False, kept


def test_a_kept_rust_file_from_before_the_two_thread_runs_says_so(copy):
    kept = copy / "results" / "benchmarks" / "rust_speed.json"
    data = json.loads(kept.read_text())
    data["numbers"]["phases_example"].pop("two_threads", None)
    kept.write_text(json.dumps(data))
    assert reproduce(copy).returncode == 0
    block = (copy / "rust_impl" / "README.md").read_text().split("<!-- reproduce: rust-threads -->")
    assert block[1].startswith(
        "\nnot measured by the run that made the kept file (it ran 1 thread only)\n"
    )


def test_the_two_thread_table_sums_each_threads_phases_outside_wait(copy):
    kept = copy / "results" / "benchmarks" / "rust_speed.json"
    data = json.loads(kept.read_text())
    phases = {"batch": 20.0, "forward": 40.0, "backward": 8.0, "update": 40.0, "wait": 0.5}
    first = {"batch": 12.0, "forward": 21.0, "backward": 4.0, "update": 22.0, "wait": 5.0}
    second = {"batch": 13.0, "forward": 22.0, "backward": 4.5, "update": 24.0, "wait": 1.5}
    runs = {"runs": 5, "steps": 3000}
    data["numbers"]["phases_example"] = {
        "random_batches": {
            **runs,
            "threads": 1,
            "us_per_step": phases,
            "per_thread_us_per_step": [phases],
            "wall_us_per_step": 110.0,
        },
        "same_batch": {
            **runs,
            "threads": 1,
            "us_per_step": phases,
            "per_thread_us_per_step": [phases],
            "wall_us_per_step": 100.0,
        },
        "two_threads": {
            **runs,
            "threads": 2,
            "us_per_step": first,
            "per_thread_us_per_step": [first, second],
            "wall_us_per_step": 66.0,
        },
    }
    kept.write_text(json.dumps(data))
    assert reproduce(copy).returncode == 0
    text = (copy / "rust_impl" / "README.md").read_text()
    block = text.split("<!-- reproduce: rust-threads -->")[1].split("<!-- /reproduce")[0]
    assert "| 1 thread | 2 threads: thread 1 | 2 threads: thread 2 |" in block
    assert "| wait | 0.5 | 5.0 | 1.5 |" in block
    assert "| **all but wait** | **108.0** | **59.0** | **63.5** |" in block
    assert "110.0 µs at 1 thread, 66.0 at 2 (1.67× as fast)" in block
    assert "Half of the 1-thread step's time outside wait is 54.0 µs" in block
    assert "each thread spends 59.0, 63.5 outside wait" in block
