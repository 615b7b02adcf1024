"""Time to accuracy: `run --target` records it, and every table and export shows it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.cli import main
from tests.helpers import fake, make_record, make_session, records, run

# make_record's curve: test_acc 0.925, 0.95, 0.975 at a third, two thirds and all of the time.
TIMES = {"numpy": [3.0, 3.1, 2.9], "rust": [1.0, 1.1, 0.9]}


def _session(root, name="s", **extra):
    runs = [
        make_record(backend, t, i, **extra)
        for backend, times in TIMES.items()
        for i, t in enumerate(times)
    ]
    return make_session(root, name, runs)


def test_a_run_records_when_it_first_reached_the_target(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--target", "test_acc=0.5") == 0
    out = capsys.readouterr().out
    (record,) = records(tmp_path).values()
    assert record["target"] == {"metric": "test_acc", "value": 0.5}
    first = next(p for p in record["curve"] if p["test_acc"] >= 0.5)
    assert record["time_to_target_s"] == first["train_time_s"]
    assert "to test_acc≥0.5 s" in out
    # The session's own target is what report and export read it against.
    results = ["--results-dir", str(tmp_path / "results")]
    assert main(["report", *results, "--out", str(tmp_path / "report")]) == 0
    header = next(
        line
        for line in (tmp_path / "report" / "report.md").read_text().splitlines()
        if "time to test_acc≥0.5" in line
    )
    assert "speed to test_acc≥0.5 [95 % CI]" in header
    csv = tmp_path / "summary.csv"
    assert main(["export", *results, "--format", "csv", "--out", str(csv)]) == 0
    (row,) = pd.read_csv(csv).itertuples()
    assert row.target == "test_acc≥0.5"
    assert row.time_to_target_median_s == pytest.approx(first["train_time_s"])


def test_a_target_never_reached_is_recorded_as_such(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, *fake("AlwaysZero"), "--target", "train_acc=0.5") == 0
    (record,) = records(tmp_path).values()
    assert max(p["train_acc"] for p in record["curve"]) < 0.5
    assert record["target"] == {"metric": "train_acc", "value": 0.5}
    assert record["time_to_target_s"] is None
    row = next(line for line in capsys.readouterr().out.splitlines() if "│ always-zero" in line)
    assert "not reached" in row


def test_the_table_report_and_csv_show_the_time_and_its_ratio(tmp_path, capsys):
    _session(tmp_path)
    out = tmp_path / "report"
    args = ["--results-dir", str(tmp_path), "--target", "test_acc=0.95"]
    assert main(["report", "s", "--out", str(out), *args]) == 0
    table = capsys.readouterr().out
    rust_row = next(line for line in table.splitlines() if "rust" in line)
    # Two thirds of the median time, 1.0 s, and 3× as fast to the target as to the end.
    assert "0.67" in rust_row and rust_row.count("3.00×") == 2
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if "time to test_acc≥0.95" in line)
    assert "speed to test_acc≥0.95 [95 % CI]" in header
    assert "time to test_acc≥0.95" in (out / "index.html").read_text()

    csv = tmp_path / "summary.csv"
    assert main(["export", "s", "--format", "csv", "--out", str(csv), *args]) == 0
    rows = pd.read_csv(csv).set_index("backend")
    assert rows.loc["rust", "target"] == "test_acc≥0.95"
    assert rows.loc["rust", "time_to_target_median_s"] == pytest.approx(2 / 3)
    assert rows.loc["rust", "target_speedup"] == pytest.approx(3.0)
    assert rows.loc["numpy", "target_runs_reached"] == 3


def test_without_a_target_the_report_uses_the_stated_default(tmp_path, capsys):
    _session(tmp_path)
    assert main(["export", "s", "--results-dir", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["target"] for row in rows} == {"test_acc≥0.97"}
    # 0.975 is reached at the last evaluation only: the whole training time.
    rust = next(row for row in rows if row["key"]["backend"] == "rust")
    assert rust["time_to_target_median_s"] == pytest.approx(1.0)


def test_a_key_whose_runs_did_not_all_get_there_has_no_median(tmp_path, capsys):
    runs = [make_record("numpy", t, i) for i, t in enumerate(TIMES["numpy"])]
    slow = make_record("numpy", 3.0, 3)
    for point in slow["curve"]:
        point["test_acc"] = 0.5
    make_session(tmp_path, "s", [*runs, slow])
    assert main(["report", "s", "--results-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "│ numpy" in line)
    assert "3 of 4 runs reached it" in row
    assert main(["export", "s", "--results-dir", str(tmp_path)]) == 0
    (numpy,) = json.loads(capsys.readouterr().out)
    assert numpy["time_to_target_median_s"] is None and numpy["target_runs_reached"] == 3


@pytest.mark.parametrize("value", ["test_acc", "acc=0.9", "test_acc=0", "test_acc=1.5", "x=y"])
def test_a_bad_target_is_one_line_naming_the_form(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--backend", "numpy", "--target", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert (
        "argument --target: give METRIC=VALUE, METRIC one of test_acc, train_acc and VALUE an "
        "accuracy in (0, 1], e.g. --target test_acc=0.97"
    ) in err


def test_a_resumed_session_keeps_its_target(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--target", "test_acc=0.5") == 0
    (session,) = (tmp_path / "results").iterdir()
    next(session.glob("numpy-*.json")).unlink()
    resume = ["run", "--resume", "--results-dir", str(tmp_path / "results")]
    assert main([*resume, "--data-dir", str(idx_dir), "--target", "test_acc=0.6"]) == 2
    err = capsys.readouterr().err
    assert "--target test_acc=0.6 conflicts with" in err
    assert "which ran with test_acc=0.5: drop --target, or start a new session" in err
    assert main([*resume, "--data-dir", str(idx_dir)]) == 0
    (record,) = records(tmp_path).values()
    assert record["target"] == {"metric": "test_acc", "value": 0.5}
