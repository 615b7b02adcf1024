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
        "gate: missing: rust @1: no ok runs in B to compare (no ok rust runs at 1 thread in B)"
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


# --- --match: which machines pair ------------------------------------------------------------

RUNNER = {"cpu_model": "AMD EPYC 7B13", "cores_logical": 2, "memory_bytes": 8 * 2**30}


def _runner_sessions(root, b_env):
    _session(root, "a", env={**RUNNER, "hostname": "runner-1", "machine_id": "m1"})
    _session(root, "b", env=b_env)


def test_exact_does_not_pair_two_ci_runners_and_suggests_match_cpu(tmp_path, capsys):
    _runner_sessions(tmp_path, {**RUNNER, "hostname": "runner-2", "machine_id": "m2"})
    code, err = _gate(tmp_path, capsys)
    assert code == 1
    assert (
        "gate: missing: numpy @1: no ok runs in B to compare (B has numpy at 1 thread only "
        "with another machine (hostname, machine_id differ; --match cpu pairs machines of one "
        "CPU model, core count and memory))"
    ) in err
    assert "gate: nothing paired:" in err and "--match cpu or any" in err


def test_match_cpu_pairs_runners_that_differ_only_in_host_and_machine_id(tmp_path, capsys):
    _runner_sessions(tmp_path, {**RUNNER, "hostname": "runner-2", "machine_id": "m2"})
    code, err = _gate(tmp_path, capsys, "--match", "cpu")
    assert code == 0 and "gate:" not in err
    main(["compare", "a", "b", "--results-dir", str(tmp_path), "--match", "cpu"])
    assert "| numpy" in capsys.readouterr().out


def test_match_cpu_keeps_another_cpu_apart_and_suggests_any(tmp_path, capsys):
    other = {**RUNNER, "cpu_model": "Intel Xeon 8481C", "hostname": "r3", "machine_id": "m3"}
    _runner_sessions(tmp_path, other)
    code, err = _gate(tmp_path, capsys, "--match", "cpu")
    assert code == 1
    assert "cpu_model, hostname, machine_id differ; --match any pairs them anyway" in err


def test_match_any_pairs_any_machines_with_a_warning(tmp_path, capsys):
    other = {**RUNNER, "cpu_model": "Intel Xeon 8481C", "hostname": "r3", "machine_id": "m3"}
    _runner_sessions(tmp_path, other)
    code, err = _gate(tmp_path, capsys, "--match", "any")
    assert code == 0
    assert err.startswith("warning: --match any pairs runs of different machines")


def test_match_takes_only_the_three_levels(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["compare", "a", "b", "--match", "host"])
    assert stopped.value.code == 2
    assert "argument --match: invalid choice: 'host'" in capsys.readouterr().err


def test_json_carries_the_gate_and_its_reasons(tmp_path, capsys):
    import json

    _session(tmp_path, "a")
    _session(tmp_path, "b", factor=1.5)
    code = main(
        ["compare", "a", "b", "--results-dir", str(tmp_path), "--json", "--fail-if-slower", "5"]
    )
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["gate"]["passed"] is False
    assert out["gate"]["fail_if_slower_percent"] == 5 and out["gate"]["match"] == "exact"
    (failure,) = out["gate"]["failures"]
    assert failure["reason"] == "slower" and failure["detail"].startswith("numpy @1: B/A 1.500")
    assert out["pairs"][0]["verdict"] == "slower" and out["unpaired"] == []


def test_json_without_the_gate_is_the_list_it_always_was(tmp_path, capsys):
    import json

    _session(tmp_path, "a")
    _session(tmp_path, "b")
    assert main(["compare", "a", "b", "--results-dir", str(tmp_path), "--json"]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert isinstance(pairs, list) and pairs[0]["backend"] == "numpy"


def test_json_of_a_passing_gate_says_passed(tmp_path, capsys):
    import json

    _session(tmp_path, "a")
    _session(tmp_path, "b")
    argv = ["compare", "a", "b", "--results-dir", str(tmp_path), "--json", "--fail-if-slower", "5"]
    assert main(argv) == 0
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate == {
        "passed": True,
        "exit_status": 0,
        "fail_if_slower_percent": 5.0,
        "accuracy_tolerance": 0.002,
        "match": "exact",
        "failures": [],
    }


# --- power: what a comparison could have seen, and "cannot tell" -----------------------------

NOISY = [1.00, 1.12, 0.90, 1.08, 0.95]  # ±10 %: a 5-repeat gate cannot see 5 %


def test_every_pair_states_the_smallest_slowdown_it_could_have_seen(tmp_path, capsys):
    import json

    _session(tmp_path, "a")
    _session(tmp_path, "b")
    assert main(["compare", "a", "b", "--results-dir", str(tmp_path), "--json"]) == 0
    (pair,) = json.loads(capsys.readouterr().out)
    assert 0 < pair["min_detectable"] < 0.05  # ±2 % repeats see a 5 % change
    assert main(["compare", "a", "b", "--results-dir", str(tmp_path)]) == 0
    assert "could see" in capsys.readouterr().out


def test_a_gate_that_cannot_tell_does_not_pass_and_says_how_many_repeats_would(tmp_path, capsys):
    make_session(tmp_path, "a", [make_record("numpy", t, i) for i, t in enumerate(NOISY)])
    make_session(tmp_path, "b", [make_record("numpy", t * 1.04, i) for i, t in enumerate(NOISY)])
    code, err = _gate(tmp_path, capsys)
    assert code == 3  # "cannot tell", told apart from a regression (1)
    (line,) = err.strip().splitlines()
    assert line.startswith("gate: cannot tell: numpy @1: B/A 1.040 [")
    assert "could not rule out a slowdown of more than 5 %" in line
    assert "repeats a side would tell" in line


def test_too_few_repeats_cannot_pass_even_a_large_slowdown_silently(tmp_path, capsys):
    make_session(tmp_path, "a", [make_record("numpy", t, i) for i, t in enumerate([1.0, 1.02])])
    make_session(tmp_path, "b", [make_record("numpy", t, i) for i, t in enumerate([1.5, 1.6])])
    code, err = _gate(tmp_path, capsys)
    assert code == 3
    assert "gate: cannot tell: numpy @1:" in err and "2 and 2 repeats; at least 3 a side" in err


def test_injected_slowdowns_above_the_threshold_never_pass(tmp_path, capsys):
    for factor in (1.10, 1.15, 1.25):
        root = tmp_path / str(factor)
        make_session(root, "a", [make_record("numpy", t, i) for i, t in enumerate(NOISY)])
        make_session(root, "b", [make_record("numpy", t * factor, i) for i, t in enumerate(NOISY)])
        code, _ = _gate(root, capsys)
        assert code in (1, 3), factor  # slower, or cannot tell: never a pass


def test_comparing_a_session_with_itself_fails_the_gate(tmp_path, capsys):
    _session(tmp_path, "a")
    argv = ["compare", "a", "a", "--results-dir", str(tmp_path), "--fail-if-slower", "5"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "gate: same session: A and B are both" in err


def test_runs_that_failed_in_b_fail_the_gate_even_when_one_is_ok(tmp_path, capsys):
    _session(tmp_path, "a")
    b = [make_record("numpy", t, i) for i, t in enumerate(TIMES[:3])]
    b += [make_record("numpy", None, i, status="failed") for i in (3, 4)]
    make_session(tmp_path, "b", b)
    code, err = _gate(tmp_path, capsys)
    assert code == 1
    assert "gate: not ok in B: numpy @1: 2 of B's 5 runs did not finish ok (2 failed)" in err


def test_a_passing_gate_says_what_it_checked(tmp_path, capsys):
    _session(tmp_path, "a")
    _session(tmp_path, "b")
    code = main(["compare", "a", "b", "--results-dir", str(tmp_path), "--fail-if-slower", "5"])
    assert code == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("gate passed: 1 pair, none slower by more than 5 %")


def test_runs_started_on_a_busy_machine_reach_compare_and_fail_the_gate(tmp_path, capsys):
    _session(tmp_path, "a")
    b = [make_record("numpy", t, i, cpu_busy_before=0.6 if i < 2 else 0.0) for i, t in
         enumerate(TIMES)]  # fmt: skip
    make_session(tmp_path, "b", b)
    code, err = _gate(tmp_path, capsys)
    assert code == 1
    assert "gate: busy: numpy @1: 2 of B's 5 ok runs started while other processes" in err
    assert main(["compare", "a", "b", "--results-dir", str(tmp_path)]) == 0
    assert "- numpy @1: A 0 of 5, B 2 of 5" in capsys.readouterr().out


def test_a_gemm_rate_taken_on_a_busy_machine_is_marked_and_judges_no_speed(tmp_path):
    from harness.results.model import RunRecord
    from harness.runner import flags
    from harness.spec import Spec

    env = {"gemm_rates": {"1": 10.0}, "gemm_busy": {"1": 0.6}, "gemm_size": 64}
    record = RunRecord.from_json(
        make_record("numpy", 0.01, 0, env=env, gemm_rate_gflops=10.0, cpu_time_s=0.01)
    )
    record.untimed_excess_s = 0.0
    assert flags.flagged(record, Spec(), 784) == []  # 16,000 GFLOP/s, but the yardstick is bad
    record.env = {**env, "gemm_busy": {"1": 0.0}}
    (line,) = flags.flagged(record, Spec(), 784)
    assert line.startswith("implausible speed:")
    make_session(tmp_path, "s", [make_record("numpy", 1.0, 0, env=env)])
    out = tmp_path / "o"
    assert main(["report", "s", "--results-dir", str(tmp_path), "--out", str(out)]) == 0
    assert (
        "the rate was measured at 1 thread(s) with 60% of the CPUs busy"
        in (out / "report.md").read_text()
    )
