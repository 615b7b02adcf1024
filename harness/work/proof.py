"""The proof every run gives that it did the job it was handed, before its record may say ok.

A run's first ``train_steps`` call is short (``spec.PROOF_STEPS`` steps). Right after it, the
backend's parameters are compared with the float64 reference (the book's NumPy code, as
``harness verify`` uses it) taken from the harness's own copies of the initial parameters and
batches, with verify's tolerances. Several steps in one call, so a backend that is right one
step at a time but skips or merges steps within a call fails here too.

The reference runs on the rows those few batches touch only (at most steps × batch rows), so
the proof costs milliseconds and no copy of the training set; it runs outside the timed region,
and the run records what it cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.spec import Spec
from harness.work.equivalence import TOLERANCES, errors
from harness.work.plan import PARAM_NAMES


@dataclass(frozen=True)
class Proof:
    """What the check of a run's first call found; ``passed`` is what decides."""

    steps: int
    passed: bool
    tolerance_used: float  # the largest share of the tolerance any parameter used (≤ 1 passes)
    closest_step: int  # the reference step the backend's parameters are nearest to
    cost_s: float  # wall time of the reference steps and the comparison

    def to_json(self) -> dict[str, Any]:
        """JSON has no infinity or NaN (a shape or a value the tolerance cannot measure): null."""
        out = asdict(self)
        if not math.isfinite(self.tolerance_used):
            out["tolerance_used"] = None
        return out

    def failure(self) -> str:
        """One line for the run's error."""
        if self.closest_step == self.steps:
            where = "nearest the reference after the right number of steps, but not within"
        elif self.closest_step == 0:
            where = "nearest the initial parameters: the call trained nothing it was handed"
        else:
            where = f"nearest the reference after {self.closest_step} steps, not {self.steps}"
        return (
            f"the run's proof failed: after its first train_steps call ({self.steps} steps), "
            f"the parameters used {self.tolerance_used:.3g}× verify's tolerance against the "
            f"float64 reference ({where}); the run did not do the job it was handed "
            "(initial parameters, batches or steps differ); `harness verify` shows where"
        )


def prove(
    got: Mapping[str, np.ndarray],
    reference: Any,
    spec: Spec,
    train_x: np.ndarray,
    train_y: np.ndarray,
    init: Mapping[str, np.ndarray],
    batches: np.ndarray,
) -> Proof:
    """Whether ``got``, the backend's parameters after its first call over ``batches``, is the
    float64 reference's after those steps, within verify's tolerance for the spec's dtype.

    ``reference`` is a fresh instance of the book's NumPy backend; everything else is the
    harness's own copy. It is set up on the touched rows only, indices renumbered to match.
    """
    started = time.perf_counter()
    missing = [name for name in PARAM_NAMES if name not in got]
    if missing:
        raise ValueError(f"params() must return W1, b1, W2, b2; missing {', '.join(missing)}")
    rows, renumbered = np.unique(batches, return_inverse=True)
    reference.setup(
        Spec(**{**spec.to_dict(), "dtype": "float64"}),
        np.array(train_x[rows], dtype=np.float64),
        np.array(train_y[rows], copy=True),
        {name: np.array(init[name], dtype=np.float64) for name in PARAM_NAMES},
    )
    renumbered = renumbered.reshape(batches.shape).astype(np.int32)
    tolerance = TOLERANCES[spec.dtype]
    got = {name: np.asarray(got[name]) for name in PARAM_NAMES}
    used = [_worst(errors(got, _copy(reference.params()), tolerance))]
    for step in range(len(batches)):
        reference.train_steps(renumbered[step : step + 1])
        used.append(_worst(errors(got, _copy(reference.params()), tolerance)))
    return Proof(
        steps=len(batches),
        passed=used[-1] <= 1.0,
        tolerance_used=used[-1],
        closest_step=int(np.argmin(used)),
        cost_s=time.perf_counter() - started,
    )


def _worst(per_param: dict[str, dict[str, float]]) -> float:
    return max(entry["tolerance_used"] for entry in per_param.values())


def _copy(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.array(params[name], dtype=np.float64) for name in PARAM_NAMES}
