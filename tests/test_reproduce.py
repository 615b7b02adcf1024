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
    manifest = json.loads((REPO / "results" / "REFERENCE.json").read_text())
    (tmp_path / "results").mkdir()
    shutil.copy(REPO / "results" / "REFERENCE.json", tmp_path / "results")
    shutil.copytree(REPO / "results" / "benchmarks", tmp_path / "results" / "benchmarks")
    for session in manifest.values():
        shutil.copytree(REPO / "results" / session, tmp_path / "results" / session)
    return tmp_path


@pytest.mark.parametrize("readme", ["README.md", "rust_impl/README.md"])
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
