"""The benchmark scripts' --help: each says in one whole sentence what it measures."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# Scripts a user runs (kept.py is a module they share).
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "kept.py")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_gives_the_whole_summary_sentence(script: Path):
    # argparse shows the docstring's first line: a summary that runs onto the next line would
    # be cut mid-sentence in --help.
    docstring = ast.get_docstring(ast.parse(script.read_text())) or ""
    summary = docstring.split("\n\n")[0]
    assert "\n" not in summary and summary.endswith("."), f"{script.name}: {summary!r}"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert " ".join(summary.split()) in " ".join(result.stdout.split())
