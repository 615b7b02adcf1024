"""Time to accuracy: the training time a run took until its first evaluation at or above a
target (``run --target test_acc=0.97``), the headline figure of MLPerf-style training benchmarks.

Accuracy is measured every ``eval_every`` iterations (600 in the reference job), so the time is
that of the first evaluation that reached the target, never an interpolation between two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.requests import DEFAULT_TARGET, Target


def time_to_target(curve: Iterable[Mapping[str, Any]], target: Target) -> float | None:
    """Training seconds at the first evaluation at or above the target; None if none was."""
    for point in curve:
        reached = point.get(target.metric)
        if isinstance(reached, int | float) and reached >= target.value:
            return float(point["train_time_s"])
    return None


def common_target(targets: Iterable[Any]) -> Target:
    """The target the runs were set (``run --target``) when they agree on one; the default when
    none was set or they disagree (each is then read against the default, from its curve)."""
    given = {Target.from_json(t) for t in targets if isinstance(t, Mapping)}
    return given.pop() if len(given) == 1 else DEFAULT_TARGET
