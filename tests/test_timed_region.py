"""Every run's work is timed, counted against its thread budget and proven (issue: the timer).

Each backend here does the job right but moves its work where a classic benchmarking mistake
puts it (tests/escaping_backends.py); the run must fail or be flagged, never come out as a
clean, fast run. The CPU figures are asserted as lower bounds of CPU the test's processes are
known to have used, so a busy machine cannot change the outcome.
"""

from __future__ import annotations

import pytest

from harness.results.model import SCHEMA_VERSION
from harness.runner import flags
from tests.helpers import REPO_ROOT, records, run

PROGRAM = REPO_ROOT / "tests" / "process_programs" / "book_net.py"


def escaping(name: str) -> list[str]:
    return ["--backend-path", f"tests.escaping_backends:{name}"]


def only(tmp_path) -> dict:
    (record,) = records(tmp_path).values()
    return record


@pytest.mark.parametrize(
    ("backend", "nearest"),
    [
        ("LazyInPredict", "nearest the initial parameters"),
        ("TrainsOnAThread", "nearest the initial parameters"),
        ("TrainsInSetup", "proof failed"),
        ("SkipsStepsInLongCalls", "steps, not 4)"),
    ],
)
def test_a_run_that_did_not_train_in_its_first_call_fails_its_proof(
    idx_dir, tmp_path, backend, nearest
):
    assert run(idx_dir, tmp_path, *escaping(backend), "--threads", "1") == 1
    record = only(tmp_path)
    assert record["status"] == "failed"
    assert "the run's proof failed: after its first train_steps call (4 steps)" in record["error"]
    assert nearest in record["error"]
    assert record["proof"]["passed"] is False and record["proof"]["steps"] == 4


def test_parameters_that_change_after_train_steps_returned_fail_the_run(idx_dir, tmp_path):
    """Lazy work that passes the proof (the first call is trained in time) but not later ones."""
    argv = [*escaping("LazyInPredict"), "--threads", "1", "--set", "eval_every=4"]
    assert run(idx_dir, tmp_path, *argv) == 1
    error = only(tmp_path)["error"]
    assert "proof failed" in error or "parameters W1, b1, W2, b2 changed after" in error


def test_lazy_work_in_params_is_flagged(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *escaping("LazyInParams"), "--threads", "1") == 0
    record = only(tmp_path)
    assert record["proof"]["passed"] is True  # params() caught up before the harness looked
    (flag,) = record["flagged"]
    assert flag.startswith("untimed work: the first params() after each train_steps took")
    assert record["untimed_excess_s"] > 0.2  # three deferred calls of ≥ 0.1 s each
    assert record["untimed"]["params"]["wall_s"] > 0.2


def test_an_unsynchronised_device_queue_is_flagged_and_the_hook_fixes_it(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *escaping("UnsynchronisedQueue"), "--threads", "1") == 0
    assert run(idx_dir, tmp_path / "b", *escaping("SynchronisedQueue"), "--threads", "1") == 0
    unsynced, synced = only(tmp_path), only(tmp_path / "b")
    assert [f.split(":")[0] for f in unsynced["flagged"]] == ["untimed work"]
    assert unsynced["train_time_s"] < 0.05  # the queue's steps were not in the timed region
    assert synced["flagged"] == [] and synced["status"] == "ok"
    assert synced["train_time_s"] >= 0.15  # three calls, each waiting ≥ 0.05 s for the queue


def test_a_program_that_replies_before_it_works_is_flagged(idx_dir, tmp_path):
    import sys

    command = f"early={sys.executable} {PROGRAM} reply-early"
    assert run(idx_dir, tmp_path, "--backend-cmd", command, "--threads", "1") == 0
    record = only(tmp_path)
    assert any(f.startswith("untimed work:") for f in record["flagged"])


def test_parameters_kept_on_disk_fail_the_next_runs_proof(idx_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PARAMS_FILE", str(tmp_path / "cache.npz"))
    argv = [*escaping("KeepsParamsOnDisk"), "--threads", "1", "--repeats", "2"]
    assert run(idx_dir, tmp_path, *argv) == 1
    by_repeat = {r["repeat"]: r for r in records(tmp_path).values()}
    assert by_repeat[0]["status"] == "ok" and by_repeat[0]["flagged"] == []
    assert by_repeat[1]["status"] == "failed" and "proof failed" in by_repeat[1]["error"]


def test_an_honest_run_is_proven_timed_and_unflagged(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--threads", "1") == 0
    record = only(tmp_path)
    assert record["schema_version"] == SCHEMA_VERSION >= 3
    proof = record["proof"]
    assert proof["passed"] and proof["steps"] == 4 and proof["closest_step"] == 4
    assert 0 <= proof["tolerance_used"] <= 1 and proof["cost_s"] >= 0
    assert record["flagged"] == [] and record["cpu_budget"] == 1 + flags.BUDGET_SLACK_CPUS
    untimed = record["untimed"]
    assert untimed["setup"]["calls"] == 1
    assert untimed["predict"]["calls"] == 2 * 2  # train and test, at each of two evaluations
    assert untimed["params"]["calls"] == 2 * 3  # twice after each of the three calls
    assert all(v["wall_s"] >= 0 and v["cpu_s"] >= 0 for v in untimed.values())


def test_a_backend_drawing_its_own_batches_says_why_it_is_not_proven(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, "--backend-path", "tests.fake_backends:OwnBatches") == 0
    record = only(tmp_path)
    assert record["proof"] is None
    assert record["proof_note"] == "not proven: the backend draws its own batches"


def test_cpu_of_processes_that_start_and_end_within_a_call_counts(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *escaping("PoolWithinACall"), "--threads", "1") == 0
    record = only(tmp_path)
    # Three calls, each with two pool processes that used 0.2 s of CPU apiece and ended.
    assert record["cpu_time_s"] >= 3 * 2 * 0.2 * 0.95
    _flag_follows_the_rule(record)


def test_a_helper_thread_counts_against_the_budget(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *escaping("HelperThread"), "--threads", "1") == 0
    record = only(tmp_path)
    assert record["cpu_time_s"] >= 3 * 2 * 0.2 * 0.95
    _flag_follows_the_rule(record)


def _flag_follows_the_rule(record: dict) -> None:
    """Whether the run used more than its budget depends on how many CPUs the machine gave
    it at once; the flag must say so exactly when its own figures do."""
    expected = flags.over_budget(record["threads"], record["cpu_time_s"], record["train_time_s"])
    assert [f for f in record["flagged"] if f.startswith("over budget")] == (
        [expected] if expected else []
    )


def test_the_budget_rule():
    assert flags.over_budget(1, 1.2, 1.0) is None  # within the slack
    assert flags.over_budget(1, 2.0, 1.0).startswith("over budget: used 2.00 CPUs")
    assert flags.over_budget(2, 4.4, 2.0) is None
    assert flags.over_budget(None, 9.0, 1.0) is None  # libraries' defaults: no budget to hold
    assert flags.over_budget(1, 1.0, 0.01) is None  # too short for 10 ms CPU ticks to judge


def test_the_untimed_work_and_speed_rules():
    assert flags.untimed_work(0.04, 0.1) is None  # under the 50 ms floor
    assert flags.untimed_work(0.15, 4.0) is None  # under 5 % of the timed work
    assert flags.untimed_work(0.3, 0.0001).startswith("untimed work:")
    assert flags.implausible_speed(90.0, 1.0, 100.0) is None
    assert "implausible speed: 900 GFLOP/s" in flags.implausible_speed(90.0, 0.1, 100.0)
    assert flags.implausible_speed(90.0, 0.1, None) is None  # no GEMM rate: cannot judge


def test_a_version_given_as_text_is_taken_as_the_version(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *escaping("VersionAsText")) == 0
    record = only(tmp_path)
    assert record["status"] == "ok" and record["backend_version"] == "1.2"


def test_a_hook_of_the_wrong_kind_is_refused_in_one_line(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, *escaping("BuildInfoAsDict")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "hook 'build_info' is dict" in err and "expected a method build_info() -> dict" in err


def test_a_plugin_may_not_take_a_builtins_name(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, *escaping("CallsItselfNumpy")) == 2
    err = capsys.readouterr().err.strip()
    assert "its name 'numpy' is taken by the registered backend" in err
    assert "impls.numpy_scratch:NumpyBackend" in err


def test_hook_shapes():
    from harness.plugin_shape import shape_problem

    class Base:
        def setup(self, spec, x, y, init): ...
        def train_steps(self, b): ...
        def predict(self, x): ...
        def params(self): ...

    class NeedsSelf(Base):
        def version(self):
            return "1"

    class Flag(Base):
        follows_batch_stream = "no"

    class NoProfiling(Base):
        enable_profiling = None
        unavailable_reason = None

    class Unavailable(Base):
        unavailable_reason = "needs a GPU"

    assert "hook 'version' is a method that needs an instance" in shape_problem(NeedsSelf)
    assert "hook 'follows_batch_stream' is str 'no'; expected a bool" in shape_problem(Flag)
    assert shape_problem(NoProfiling) is None
    assert shape_problem(Unavailable) is None


def test_verify_drives_backends_in_the_chunks_runs_use(idx_dir):
    from tests.helpers import verify

    result = verify(idx_dir, "--backend", "numpy", *escaping("SkipsStepsInLongCalls"))
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "numpy: pass" in out
    assert "skips-steps-in-long-calls: FAIL: right one step per call, but in calls of 4" in out
