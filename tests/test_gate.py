"""`compare A B --fail-if-slower PCT` fails closed: it passes only a B that did A's work as well."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.spec import Spec
from tests.helpers import make_record, make_session

TIMES = [1.00, 1.02, 0.98, 1.01, 0.99]


def _session(root, name, backend="numpy", status="ok", factor=1.0, **extra):
    records = [
        make_record(backend, t * factor, i, status=status, **extra) for i, t in enumerate(TIMES)
    ]
    return make_session(root, name, records)


def _gate(root, capsys, *more: str) -> tuple[int, str]:
    code = main(["compare", "a", "b", "--results-dir", str(root), "--fail-if-slower", "5", *more])
    return code, capsys.readouterr().err


def test_the_same_work_passes(tmp_path, capsys):
    _session(tmp_path, "a")
    _session(tmp_path, "b")
    code, err = _gate(tmp_path, capsys)
    assert code == 0 and "gate:" not in err


@pytest.mark.parametrize("status", ["failed", "timeout", "diverged"])
def test_a_backend_that_fails_in_b_fails_the_gate(tmp_path, capsys, status):
    _session(tmp_path, "a")
    _session(tmp_path, "b", status=status)
    code, err = _gate(tmp_path, capsys)
    assert code == 1
    assert (
        f"gate: missing: numpy @1: no ok runs in B to compare (B's runs of it: 5 {status}, none ok)"
    ) in err
    assert "gate: nothing paired:" in err


def test_a_backend_absent_from_b_fails_the_gate_while_the_others_pair(tmp_path, capsys):
    both = [make_record("numpy", t, i) for i, t in enumerate(TIMES)]
    make_session(
        tmp_path, "a", [*both, *(make_record("rust", t / 3, i) for i, t in enumerate(TIMES))]
    )
    make_session(tmp_path, "b", both)
    code, err = _gate(tmp_path, capsys)
    assert code == 1
    assert (
        "gate: missing: rust @1: no ok runs in B to compare (no ok rust runs at 1 threads in B)"
        in err
    )
    assert "numpy" not in err and "nothing paired" not in err


def test_lost_accuracy_fails_the_gate_and_the_tolerance_is_the_users(tmp_path, capsys):
    _session(tmp_path, "a")
    _session(tmp_path, "b", test_acc=0.96)  # A's records say 0.97
    code, err = _gate(tmp_path, capsys)
    assert code == 1
    assert "gate: accuracy: numpy @1: test accuracy -0.0100 against A, more than the 0.002" in err
    assert _gate(tmp_path, capsys, "--accuracy-tolerance", "0.02")[0] == 0


def test_two_unlike_specs_pair_nothing_and_fail_the_gate(tmp_path, capsys):
    _session(tmp_path, "a")
    _session(tmp_path, "b", spec=Spec(init="uniform").to_dict())
    code, err = _gate(tmp_path, capsys)
    assert code == 1
    assert "gate: nothing paired: no comparability key" in err
    assert "gate: missing: numpy @1" in err and "another spec" in err


def test_without_the_gate_flag_compare_still_only_reports(tmp_path, capsys):
    _session(tmp_path, "a")
    _session(tmp_path, "b", status="failed")
    assert main(["compare", "a", "b", "--results-dir", str(tmp_path)]) == 0


@pytest.mark.parametrize("bad", ["-0.1", "2", "x"])
def test_a_bad_tolerance_is_one_line(tmp_path, capsys, bad):
    _session(tmp_path, "a")
    _session(tmp_path, "b")
    with pytest.raises(SystemExit) as exit_:
        _gate(tmp_path, capsys, "--accuracy-tolerance", bad)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--accuracy-tolerance" in err and "Traceback" not in err
