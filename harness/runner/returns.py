"""What a backend hands back, checked against the protocol before the harness uses it: the
predicted classes, the loss, the phase times and the work it declares. A value out of rule is
``BackendMisbehaved``, and the run fails naming the rule."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from harness import data
from harness.backends import name_problem
from harness.results.model import LOSS_FLOOR
from harness.work.plan import PARAM_NAMES


class BackendMisbehaved(Exception):
    """The backend returned something the protocol does not allow."""


def accuracy(backend: Any, x: np.ndarray, y: np.ndarray) -> float:
    predicted = np.asarray(backend.predict(x))
    if predicted.shape != y.shape or not np.issubdtype(predicted.dtype, np.integer):
        raise BackendMisbehaved(
            f"predict returned {predicted.dtype} of shape {predicted.shape}; "
            f"expected integer class ids of shape {y.shape}"
        )
    if predicted.size and (predicted.min() < 0 or predicted.max() >= data.N_CLASSES):
        raise BackendMisbehaved(
            f"predict returned class ids from {predicted.min()} to {predicted.max()}; "
            f"they must lie within the dataset's classes, 0–{data.N_CLASSES - 1}"
        )
    return float(np.mean(predicted == y))


def mean_loss(value: Any) -> float:
    """``train_steps``'s return: a real number (int, float, NumPy scalar), never text or bool.

    NaN and infinity pass here (the run is then recorded as diverged); a value no cross-entropy
    can take does not.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:  # what array libraries hand back
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise BackendMisbehaved(
            f"train_steps returned {type(value).__name__} {value!r:.40}; it must return the mean "
            "loss as a real number (int, float, NumPy scalar or 0-d array)"
        )
    loss = float(value)
    if loss < LOSS_FLOOR:
        raise BackendMisbehaved(
            f"train_steps returned the loss {loss!r}, which no cross-entropy can be (rule: "
            f"loss ≥ {LOSS_FLOOR:g}, the book's −log(p + 1e-7) rounding aside)"
        )
    return loss


def executed_work(declared: Any) -> tuple[str, float, str | None]:
    """``executed_work()``'s return: (algorithm, GFLOP, what it skips)."""
    if not isinstance(declared, dict):
        raise BackendMisbehaved(
            f"executed_work returned {type(declared).__name__}; expected a dict with algorithm, "
            "flops and skips"
        )
    algorithm, flops, skips = (declared.get(k) for k in ("algorithm", "flops", "skips"))
    if not isinstance(algorithm, str) or name_problem(algorithm):
        raise BackendMisbehaved(
            f"executed_work gave algorithm {algorithm!r} (rule: a short name such as 'sparse')"
        )
    if isinstance(flops, bool) or not isinstance(flops, int | float) or not flops >= 0:
        raise BackendMisbehaved(f"executed_work gave flops {flops!r} (rule: a number ≥ 0)")
    if not math.isfinite(flops) or (skips is not None and not isinstance(skips, str)):
        raise BackendMisbehaved(
            f"executed_work gave flops {flops!r} and skips {skips!r} (rule: finite flops; "
            "skips a line of text or None)"
        )
    return algorithm, flops / 1e9, skips


def phase_seconds(times: Any) -> dict[str, float]:
    """``phase_times()``'s return: seconds per phase, each a finite number ≥ 0."""
    if not isinstance(times, dict):
        raise BackendMisbehaved(f"phase_times returned {type(times).__name__}; expected a dict")
    out = {}
    for name, value in times.items():
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise BackendMisbehaved(
                f"phase_times gave phase {name!r} {seconds!r} s (rule: a time is finite and ≥ 0)"
            )
        out[str(name)] = seconds
    return out


def params_snapshot(params: Any) -> dict[str, np.ndarray]:
    """The backend's parameters as copies: later training cannot change what was seen."""
    if not isinstance(params, dict) or any(name not in params for name in PARAM_NAMES):
        raise BackendMisbehaved(
            f"params() returned {type(params).__name__}"
            + (f" with keys {sorted(map(str, params))}" if isinstance(params, dict) else "")
            + "; expected a dict of W1, b1, W2, b2"
        )
    return {name: np.array(params[name], copy=True) for name in PARAM_NAMES}


def check_settled(
    after: dict[str, np.ndarray], settled: dict[str, np.ndarray], start: int, end: int
) -> None:
    """Fail closed: parameters that change while no train_steps call runs were trained outside
    the timed region (lazily, on a thread or in a process still running, on a device queue)."""
    moved = [
        name
        for name in PARAM_NAMES
        if after[name].shape != settled[name].shape
        or not np.array_equal(after[name], settled[name], equal_nan=True)
    ]
    if moved:
        raise BackendMisbehaved(
            f"work outside the timed region: parameters {', '.join(moved)} changed after "
            f"train_steps returned for iterations {start + 1}–{end}, while the harness only "
            "read them and evaluated (training was deferred to predict() or params(), or left "
            "running on a thread, a process or a device queue); finish the work before "
            "train_steps returns, or wait for it in synchronize()"
        )
