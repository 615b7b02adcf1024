"""What makes a finished run's time suspect: the rules, each a pure function of its numbers.

A flagged run keeps status ok (the evidence is a time, and times are noisy), but its record
says why in ``flagged``, and every reader (tables, report, compare, the gate) shows it. Runs
whose parameters prove work outside the timed region fail instead (harness.runner.worker).
"""

from __future__ import annotations

from harness import data
from harness.results.key import threads_label
from harness.results.model import RunRecord
from harness.results.suspect import BUSY_ABOVE
from harness.spec import Spec

# CPUs a run may use beyond its thread budget: a runtime's own bookkeeping (the interpreter,
# a library's housekeeping thread). docs/measuring.md's outside-timer table shows the built-ins'.
BUDGET_SLACK_CPUS = 0.25
# Below this much training, CPU ticks (10 ms, for descendants) make a CPU-use ratio meaningless.
MIN_JUDGED_S = 0.25
# Work that finished in the first params() after train_steps, beyond what the next params()
# costs, is tolerated up to the larger of these: preemption, not training.
ESCAPE_FLOOR_S = 0.05
ESCAPE_SHARE = 0.05
# A CPU run that executes its FLOPs faster than this many times NumPy's GEMM rate at its thread
# count is doing less work in its timed region than it says.
PLAUSIBLE_GEMM_FACTOR = 2.0


def cpu_budget(threads: int | None) -> float | None:
    """The CPUs a run with ``threads`` may use; None when libraries keep their own defaults."""
    return None if threads is None else threads + BUDGET_SLACK_CPUS


def over_budget(threads: int | None, cpu_time_s: float, train_time_s: float) -> str | None:
    budget = cpu_budget(threads)
    if budget is None or train_time_s < MIN_JUDGED_S:
        return None
    used = cpu_time_s / train_time_s
    if used <= budget:
        return None
    return (
        f"over budget: used {used:.2f} CPUs while training, more than its {threads}-thread "
        f"budget allows ({budget:g} with {BUDGET_SLACK_CPUS:g} slack): something ran threads "
        "or processes the budget did not reach"
    )


def untimed_work(excess_s: float, train_time_s: float) -> str | None:
    allowed = max(ESCAPE_FLOOR_S, ESCAPE_SHARE * train_time_s)
    if excess_s <= allowed:
        return None
    return (
        f"untimed work: the first params() after each train_steps took {excess_s:.3f} s longer "
        f"in all than a repeat of it ({excess_s / max(train_time_s, 1e-9):.0%} of the timed "
        f"{train_time_s:.3f} s; allowed {allowed:.3f} s): training finished outside the timed "
        "region (lazy work, a thread, process or device queue waited for there); a GPU backend "
        "waits for its queue in synchronize()"
    )


def implausible_speed(
    executed_gflop: float | None, train_time_s: float, gemm_rate_gflops: float | None
) -> str | None:
    if executed_gflop is None or gemm_rate_gflops is None or train_time_s <= 0:
        return None
    rate = executed_gflop / train_time_s
    if rate <= PLAUSIBLE_GEMM_FACTOR * gemm_rate_gflops:
        return None
    return (
        f"implausible speed: {rate:.0f} GFLOP/s executed, {rate / gemm_rate_gflops:.1f}× the "
        f"GEMM rate measured on this machine at this thread count ({gemm_rate_gflops:.0f}): the "
        "timed region cannot hold all of the work it declares"
    )


def flagged(outcome: RunRecord, spec: Spec, n_features: int) -> list[str]:
    """Every rule's line that applies to a finished run (``outcome``), in a fixed order."""
    train_time, cpu_time = outcome.train_time_s or 0.0, outcome.cpu_time_s or 0.0
    executed = outcome.executed_gflop
    if executed is None:  # undeclared: the job's dense FLOPs
        executed = spec.flops_per_iteration(n_features, data.N_CLASSES) * spec.iterations / 1e9
    on_cpu = str(outcome.build_info.get("device", "cpu")).lower() in ("cpu", "")
    # A rate measured on a busy machine is too low a yardstick to call a speed impossible.
    rate_busy = (outcome.env.get("gemm_busy") or {}).get(threads_label(outcome.threads))
    judge_speed = on_cpu and not (isinstance(rate_busy, float) and rate_busy > BUSY_ABOVE)
    found = [
        over_budget(outcome.threads, cpu_time, train_time),
        untimed_work(outcome.untimed_excess_s or 0.0, train_time),
        implausible_speed(executed, train_time, outcome.gemm_rate_gflops) if judge_speed else None,
    ]
    return [line for line in found if line is not None]
