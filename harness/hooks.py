"""The Backend protocol and its optional hooks, each a ``typing.Protocol``.

``HOOKS`` lists the optional ones (docs/writing-a-backend.md too): on the class, ``Versioned``,
``MaybeUnavailable``, ``DrawsOwnBatches``; on the instance, ``ConfiguresThreads``,
``Describes``, ``Profiles`` (with ``NotesPhases``), ``DeclaresWork``, ``Synchronizes``,
``Closes``. The harness looks for each with ``isinstance`` against its Protocol, and checks each
one's kind when the class loads (harness.plugin_shape).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.spec import Spec


@runtime_checkable
class Backend(Protocol):
    """The four methods a backend implements; the data contract is in each docstring.

    Shapes use n = training rows (60,000 for MNIST), f = features per row (784), h = the spec's
    ``hidden`` (50), c = classes (10), b = the spec's ``batch`` (100).
    """

    name: str

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        """Untimed: copy the data in, build the model, set its parameters to ``init``.

        ``train_x``: (n, f) floats in the spec's dtype (float32 or float64), pixels scaled to
        [0, 1] (raw byte ÷ 255), C-contiguous. ``train_y``: (n,) int64 class ids 0 … c−1, not
        one-hot. ``init``: ``W1`` (f, h), ``b1`` (h,), ``W2`` (h, c), ``b2`` (c,), in the spec's
        dtype; the net computes softmax(relu(x·W1 + b1)·W2 + b2). The arrays are the harness's,
        handed over read-only (so are ``batch_indices`` and ``predict``'s ``x``): copy what you
        change, e.g. ``np.array(init["W1"])``; a write into one raises and fails the run.
        """

    def train_steps(self, batch_indices: np.ndarray) -> float:
        """Timed: one SGD step per row of ``batch_indices``; return the mean loss.

        ``batch_indices``: (k, b) int32 row indices into ``train_x`` / ``train_y``, one row per
        step, drawn with replacement by the harness (k = the steps until the next evaluation).
        Each step: forward on those b rows, softmax cross-entropy averaged over the b rows,
        backward, then W ← W − lr·∂loss/∂W for all four parameters. Return the mean over the k
        steps of each step's batch-mean loss, as a real number (int, float, NumPy scalar or 0-d
        array); anything else fails the run.
        """

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class ids for inputs; the harness computes accuracy itself.

        ``x``: (m, f) in the same dtype and scaling as ``train_x``. Return (m,) integer ids in
        0 … c−1 (the argmax of the logits); probabilities, one-hot rows or ids out of range fail
        the run.
        """

    def params(self) -> dict[str, np.ndarray]:
        """Current ``W1``, ``b1``, ``W2``, ``b2`` as NumPy arrays of ``init``'s shapes.

        ``harness verify`` compares them, step by step, with a float64 run of the book's code.
        """


@runtime_checkable
class Versioned(Protocol):
    """On the class: a version string for the record and ``harness list`` (default: the version
    of the distribution that installed the backend)."""

    @classmethod
    def version(cls) -> str: ...


@runtime_checkable
class MaybeUnavailable(Protocol):
    """On the class: why the backend cannot run here and what to install; None when it can.
    Called by ``list`` and before a run; keep it cheap (no heavy imports)."""

    @classmethod
    def unavailable_reason(cls) -> str | None: ...


@runtime_checkable
class DrawsOwnBatches(Protocol):
    """On the class: ``follows_batch_stream = False`` for a backend that draws its own batches;
    its runs are marked not comparable and ``verify`` skips it."""

    follows_batch_stream: bool


@runtime_checkable
class ConfiguresThreads(Protocol):
    """Apply the harness's thread budget in code (None: the library's default), before setup.
    The thread environment variables are set before the worker starts either way."""

    def configure_threads(self, threads: int | None) -> None: ...


@runtime_checkable
class Describes(Protocol):
    """Extra facts for the record's ``build_info`` (build profile, kernels, …), read after
    setup and again after training. A ``threads_told`` string says what the library was told
    about threads, for the report's thread audit."""

    def build_info(self) -> dict[str, Any]: ...


@runtime_checkable
class Profiles(Protocol):
    """``run --profile``: ``enable_profiling()`` before setup; after training, ``phase_times()``
    gives seconds per phase of a step (batch, forward, backward, update), summed over the run.
    A subclass that cannot profile sets ``enable_profiling = None``."""

    def enable_profiling(self) -> None: ...

    def phase_times(self) -> dict[str, float]: ...


@runtime_checkable
class NotesPhases(Protocol):
    """With ``Profiles``: ``phases_note``, a line on how the phase times were taken."""

    phases_note: str | None


@runtime_checkable
class DeclaresWork(Protocol):
    """After training: the work the backend executed, where it is not the job's dense products.
    ``executed_work()`` returns ``{"algorithm": "sparse", "flops": F, "skips": "…"}``: a short
    name for the algorithm, the FLOPs (2 per multiply-add) of all its timed steps, and one line
    saying what it leaves out (None when nothing). Undeclared, a run is recorded as ``dense``,
    executing the job's FLOPs. Runs of one backend under two algorithms never pool or pair."""

    def executed_work(self) -> dict[str, Any]: ...


@runtime_checkable
class Synchronizes(Protocol):
    """For a backend whose device runs asynchronously (a GPU queue, JAX's dispatch): wait until
    every step handed to ``train_steps`` has finished. Called right after each ``train_steps``,
    inside the timed region. Without it, work still queued when ``train_steps`` returns is found
    by the run's checks: parameters that change afterwards fail the run, a ``params()`` that has
    to wait for it flags the run."""

    def synchronize(self) -> None: ...


@runtime_checkable
class Closes(Protocol):
    """Release what the backend holds (a child process, say) at the end of the run, ok or not."""

    def close(self) -> None: ...


HOOKS: tuple[type, ...] = (
    Versioned,
    MaybeUnavailable,
    DrawsOwnBatches,
    ConfiguresThreads,
    Describes,
    Profiles,
    NotesPhases,
    DeclaresWork,
    Synchronizes,
    Closes,
)
