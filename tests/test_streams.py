"""Any standard output: closed (``>&-``), a file, a pipe whose reader left early, a terminal.

Every command ends without a traceback and with the status it would have had: a reader that
went away has what it wanted, a closed stdout reads as /dev/null.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, TINY, make_record, make_session


def _commands(tmp_path: Path, idx_dir: Path) -> dict[str, list[str]]:
    results = tmp_path / "results"
    make_session(results, "a", [make_record("numpy", 1.0 + r / 10, r) for r in range(3)])
    make_session(results, "b", [make_record("numpy", 1.1 + r / 10, r) for r in range(3)])
    where = ["--results-dir", str(results)]
    return {
        "help": ["--help"],
        "list": ["list"],
        "export-json": ["export", *where],
        "export-table": ["export", *where, "--format", "table"],
        "compare": ["compare", *where, "a", "b"],
        "history": ["history", *where],
        "report": ["report", *where, "--out", str(tmp_path / "report")],
        "run": [
            "run",
            "--backend",
            "numpy",
            "--data-dir",
            str(idx_dir),
            "--results-dir",
            str(tmp_path / "runs"),
            *TINY,
        ],
    }


COMMANDS = ["help", "list", "export-json", "export-table", "compare", "history", "report", "run"]


def _start(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_closed_stdout_is_no_traceback(tmp_path, idx_dir, command):
    args = _commands(tmp_path, idx_dir)[command]
    process = _start(args, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    _, err = process.communicate(timeout=300)
    assert "Traceback" not in err and "Error" not in err, err
    assert process.returncode == 0, err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_pipe_whose_reader_left_ends_quietly(tmp_path, idx_dir, command):
    args = _commands(tmp_path, idx_dir)[command]
    process = _start(args, stdout=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first byte: `| head -0`
    _, err = process.communicate(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert process.returncode == 0, err


def test_output_to_a_file_is_whole(tmp_path, idx_dir):
    args = _commands(tmp_path, idx_dir)["export-table"]
    with (tmp_path / "table.txt").open("w") as out:
        process = _start(args, stdout=out)
        _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    text = (tmp_path / "table.txt").read_text()
    assert "numpy" in text and "\x1b" not in text
