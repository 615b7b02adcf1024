"""`run --precision PCT`: interleaved rounds until each cell's median is known to ±PCT %."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.runner.precision import reached
from tests.helpers import TINY, records, run

ARGS = [a for a in TINY if a not in ("--repeats", "1")]


def _run(idx_dir, tmp_path, *more: str) -> int:
    results = tmp_path / "results"
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(results), *ARGS, *more]
    return main(argv)


def test_rounds_are_added_until_max_repeats_when_the_precision_is_out_of_reach(
    idx_dir, tmp_path, capsys
):
    argv = ["--backend", "numpy", "--threads", "1", "--repeats", "3"]
    assert _run(idx_dir, tmp_path, *argv, "--precision", "0.0001", "--max-repeats", "5") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("precision: 1 more run(s)") == 2  # rounds 4 and 5
    assert "not within ±0.0001 %: numpy @1" in err and "(5 runs): --max-repeats 5 reached" in err
    found = records(tmp_path)
    assert sorted(r["repeat"] for r in found.values()) == [0, 1, 2, 3, 4]
    (session,) = (tmp_path / "results").iterdir()
    stored = json.loads((session / "session.json").read_text())
    assert len(stored["matrix"]) == 5  # a resume would know every run
    assert stored["precision"]["asked_percent"] == 0.0001
    assert stored["precision"]["reached"]["numpy @1"] > 0


def test_a_precision_already_reached_adds_nothing(idx_dir, tmp_path, capsys):
    argv = ["--backend", "numpy", "--threads", "1", "--repeats", "3", "--precision", "10000"]
    assert _run(idx_dir, tmp_path, *argv) == 0
    err = capsys.readouterr().err
    assert "more run(s)" not in err and "precision asked: ±10000 %" in err
    assert len(records(tmp_path)) == 3


@pytest.mark.parametrize(("given", "message"), [("0", "above 0"), ("x", "not a percentage")])
def test_a_bad_precision_is_one_line(idx_dir, tmp_path, capsys, given, message):
    with pytest.raises(SystemExit) as stopped:
        _run(idx_dir, tmp_path, "--backend", "numpy", "--precision", given)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--precision" in err and message in err


def test_the_precision_of_a_median():
    assert reached([1.0, 1.0]) is None  # under 3 runs: no interval to speak of
    assert reached([1.0, 1.0, 1.0]) == 0.0
    assert 0 < reached([1.0, 1.1, 0.9, 1.05, 0.95]) < 0.2


def test_resume_refuses_a_precision(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy") == 0
    (session,) = (tmp_path / "results").iterdir()
    argv = ["run", "--resume", str(session), "--results-dir", str(tmp_path / "results")]
    assert main([*argv, "--precision", "5"]) == 2
    assert "--precision" in capsys.readouterr().err
