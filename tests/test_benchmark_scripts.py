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


def test_gate_power_counts_false_alarms_and_injected_slowdowns(tmp_path):
    """On three quiet identical sessions: no false alarm, and no injected slowdown of 10 % or
    more passes."""
    import json

    from tests.helpers import make_record, make_session

    times = [1.00, 1.01, 0.99, 1.02, 0.98]
    sessions = [
        make_session(tmp_path, f"s{k}", [make_record("numpy", t, i) for i, t in enumerate(times)])
        for k in range(3)
    ]
    kept = tmp_path / "power.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gate_power.py"), "--from", *map(str, sessions),
         "--json", str(kept)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    numbers = json.loads(kept.read_text())["numbers"]
    outcomes = numbers["outcomes"]
    assert outcomes["1.00"] == {"slower": 0, "cannot tell": 0, "passed": 6, "other": 0}
    for factor in ("1.10", "1.15", "1.25"):
        assert outcomes[factor]["passed"] == 0 and outcomes[factor]["slower"] == 6
    assert numbers["repeats"] == 5 and 0 < numbers["cv_median"]["numpy"] < 0.02
