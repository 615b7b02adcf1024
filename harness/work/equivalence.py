"""Prove a backend does the job: step by step against a float64 NumPy reference.

Both start from the harness's initial parameters and take the same batches, one step at a
time. After every step each parameter must satisfy |backend − reference| ≤ atol + rtol·|reference|
(the loss too). The reference is the book's NumPy code run in float64, so it stands for the exact
arithmetic; a float32 backend is allowed the rounding that float32 accumulates:

- float32: rtol 1e-3, atol 1e-5 — measured on MNIST over 100 steps, NumPy, Rust and Keras in
  float32 stay within 9e-8 absolute of the float64 reference, while a backend missing the
  softmax gradient's 1/batch factor is off by 0.03–0.5 absolute after its first step;
- float64: rtol 1e-7, atol 1e-9.

The loss passes if it matches either definition of the cross-entropy: the book's −log(p + 1e-7)
or the plain −log p that the libraries' fused losses (PyTorch's CrossEntropyLoss, Keras's and
JAX's log-softmax) compute. In float32 the two cannot be told apart; in float64 they differ by
about 1e-7/p, more than the tolerance, while the parameters (whose gradient has no epsilon in
either) agree to 1e-17.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.spec import Spec
from harness.work.plan import PARAM_NAMES, Plan


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    def used(self, got: np.ndarray, want: np.ndarray) -> float:
        """max |got − want| ÷ (atol + rtol·|want|): ≤ 1 passes; the share of the tolerance used."""
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            return float("inf")
        return float((np.abs(got - want) / (self.atol + self.rtol * np.abs(want))).max())

    def breaks(self, got: np.ndarray, want: np.ndarray) -> bool:
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            return True
        return not bool(np.all(np.abs(got - want) <= self.atol + self.rtol * np.abs(want)))


TOLERANCES = {"float32": Tolerance(rtol=1e-3, atol=1e-5), "float64": Tolerance(1e-7, 1e-9)}


def errors(
    got: dict[str, np.ndarray], want: dict[str, np.ndarray], tolerance: Tolerance
) -> dict[str, dict[str, float]]:
    """Per parameter: max absolute and max relative error, and the share of the tolerance used.

    The relative error alone misleads: elements near zero make it large while the absolute
    error is tiny, which the tolerance's atol allows. ``tolerance_used`` ≤ 1 is what passes.
    """
    out = {}
    for name in PARAM_NAMES:
        g = np.asarray(got[name], dtype=np.float64)
        w = np.asarray(want[name], dtype=np.float64)
        if g.shape != w.shape:
            out[name] = {
                "max_abs": float("inf"),
                "max_rel": float("inf"),
                "tolerance_used": float("inf"),
            }
            continue
        diff = np.abs(g - w)
        out[name] = {
            "max_abs": float(diff.max()),
            "max_rel": float((diff / np.maximum(np.abs(w), 1e-12)).max()),
            "tolerance_used": tolerance.used(g, w),
        }
    return out


def _missing_params(params: Any) -> list[str]:
    if not isinstance(params, dict):
        return list(PARAM_NAMES)
    return [name for name in PARAM_NAMES if name not in params]


def setup_reference(
    reference: Any,
    spec: Spec,
    train_x: np.ndarray,
    train_y: np.ndarray,
    init: dict[str, np.ndarray],
) -> None:
    """The float64 reference, set up from the harness's own copies before the backend runs."""
    reference_spec = Spec(**{**spec.to_dict(), "dtype": "float64"})
    reference.setup(
        reference_spec,
        np.array(train_x, dtype=np.float64),
        np.array(train_y, copy=True),
        {k: np.array(v, dtype=np.float64) for k, v in init.items()},
    )


def run_verification(
    backend: Any,
    reference: Any,
    spec: Spec,
    plan: Plan,
    handed_chunk: Callable[[int, int], np.ndarray],
    steps: int,
    checkpoints: list[int],
    spans: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    """Step ``backend`` and the float64 ``reference`` (both set up) side by side; keep the
    reference's parameters at the ends of ``spans`` (the calls of a run) for verify_in_chunks.

    ``plan`` is the harness's own copy: what the backend is compared with, and the batches the
    reference takes. The backend takes the same rows from ``handed_chunk(start, end)``, a
    read-only copy; nothing it could write into is used as evidence.
    """
    tolerance = TOLERANCES[spec.dtype]
    first_failure: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []

    plain_loss: float | None = None

    def check(step: int, got: dict, want: dict, loss: float | None, want_loss: float | None):
        nonlocal first_failure
        missing = _missing_params(got)
        if missing:
            raise ValueError(f"params() must return W1, b1, W2, b2; missing {', '.join(missing)}")
        broken = [n for n in PARAM_NAMES if tolerance.breaks(got[n], want[n])]
        if loss is not None and all(
            tolerance.breaks(np.array(loss), np.array(w)) for w in (want_loss, plain_loss)
        ):
            broken.append("loss")
        if broken and first_failure is None:
            first_failure = {"step": step, "what": broken}
        if step in checkpoints:
            rows.append(
                {
                    "step": step,
                    "loss": loss,
                    "reference_loss": want_loss,
                    "errors": errors(got, want, tolerance),
                    "loss_tolerance_used": (
                        None
                        if loss is None
                        else min(
                            tolerance.used(np.array(loss), np.array(w))
                            for w in (want_loss, plain_loss)
                        )
                    ),
                    "ok": not broken,
                }
            )

    # Step 0: after setup the backend must hold exactly the harness's initial parameters.
    check(0, backend.params(), plan.init, None, None)
    ends = {end for _, end in spans}
    at_ends: dict[int, dict[str, np.ndarray]] = {}
    for step in range(1, steps + 1):
        loss = float(backend.train_steps(handed_chunk(step - 1, step)))
        want_loss = float(reference.train_steps(plan.batches[step - 1 : step]))
        plain_loss = _plain_loss(reference)
        want = reference.params()
        check(step, backend.params(), want, loss, want_loss)
        if step in ends:
            at_ends[step] = {name: np.array(want[name], copy=True) for name in PARAM_NAMES}
    return {
        "passed": first_failure is None,
        "first_failure": first_failure,
        "checkpoints": rows,
        "tolerance": {"rtol": tolerance.rtol, "atol": tolerance.atol},
        "reference_at": at_ends,  # for verify_in_chunks; taken out before the result is written
    }


def verify_in_chunks(
    backend: Any,
    spec: Spec,
    handed_chunk: Callable[[int, int], np.ndarray],
    spans: list[tuple[int, int]],
    reference_at: dict[int, dict[str, np.ndarray]],
) -> dict[str, Any]:
    """A fresh ``backend`` (set up) driven in the calls a run makes, several steps each: after
    each call its parameters must be the reference's at that step. A backend right one step at
    a time but wrong when a call holds more (skipped or merged steps) fails here."""
    tolerance = TOLERANCES[spec.dtype]
    for start, end in spans:
        backend.train_steps(handed_chunk(start, end))
        got = backend.params()
        missing = _missing_params(got)
        if missing:
            raise ValueError(f"params() must return W1, b1, W2, b2; missing {', '.join(missing)}")
        want = reference_at[end]
        broken = [n for n in PARAM_NAMES if tolerance.breaks(got[n], want[n])]
        if broken:
            return {
                "spans": [list(span) for span in spans],
                "first_failure": {"after_step": end, "call_steps": end - start, "what": broken},
            }
    return {"spans": [list(span) for span in spans], "first_failure": None}


def _plain_loss(reference: Any) -> float:
    """The reference step's cross-entropy without the book's 1e-7: −mean log p of the labels."""
    last = reference.net.last_layer
    return float(-np.log(last.y[np.arange(len(last.t)), last.t]).mean())
