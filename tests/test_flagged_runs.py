"""A flagged run (its time is suspect) is shown as such by every reader, and no gate passes it."""

from __future__ import annotations

import json

from harness.cli import main
from harness.results.model import RunRecord
from tests.helpers import make_record, make_session

OVER = "over budget: used 1.90 CPUs while training, more than its 1-thread budget allows"
TIMES = [1.00, 1.02, 0.98, 1.01, 0.99]


def _session(root, name, flagged_repeats=(), backend="numpy"):
    records = [
        make_record(backend, t, i, flagged=[OVER] if i in flagged_repeats else [])
        for i, t in enumerate(TIMES)
    ]
    return make_session(root, name, records)


def test_the_terminal_table_and_its_notes_say_which_runs_are_flagged(tmp_path, capsys):
    _session(tmp_path, "s", flagged_repeats=(1, 3))
    assert main(["export", "s", "--results-dir", str(tmp_path), "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "ok ⚠ 2 flagged (over budget)" in out
    assert f"flagged numpy @1: 2 of 5 ok runs: {OVER}" in " ".join(out.split())


def test_exports_carry_the_flags(tmp_path, capsys):
    _session(tmp_path, "s", flagged_repeats=(0,))
    assert main(["export", "s", "--results-dir", str(tmp_path), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["flagged_runs"] == 1 and row["flags"] == [OVER]
    assert main(["export", "s", "--results-dir", str(tmp_path), "--format", "csv"]) == 0
    assert OVER in capsys.readouterr().out


def test_the_report_never_ranks_a_flagged_key_first(tmp_path):
    records = [make_record("numpy", t, i) for i, t in enumerate(TIMES)]
    records += [make_record("cheat", t / 10, i, flagged=[OVER]) for i, t in enumerate(TIMES)]
    make_session(tmp_path, "s", records)
    out = tmp_path / "out"
    assert main(["report", "s", "--results-dir", str(tmp_path), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "**fastest at 1 thread: numpy" in text
    assert "not ranked: cheat @1, 5 of 5 runs flagged (over budget)" in text
    assert "## Outside the timed region" in text


def test_the_gate_fails_on_flagged_runs_in_b(tmp_path, capsys):
    _session(tmp_path, "a")
    _session(tmp_path, "b", flagged_repeats=(2,))
    argv = ["compare", "a", "b", "--results-dir", str(tmp_path), "--fail-if-slower", "5"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "gate: flagged: numpy @1: 1 of B's 5 ok runs are flagged" in captured.err
    assert "- numpy @1: A 0 of 5, B 1 of 5: over budget" in captured.out


def test_records_of_schema_2_load_unproven_and_unflagged():
    old = make_record("numpy", 1.0, 0, schema_version=2)
    record = RunRecord.from_json(old)
    assert record.schema_version == 2
    assert record.proof is None and record.flagged == [] and record.untimed == {}
