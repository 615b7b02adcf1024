"""The Backend protocol and the plugin registry (the project's only global state).

A backend is a class with a no-argument constructor implementing the four methods of ``Backend``.
It is found through the ``harness.backends`` entry-point group (built-ins register the same way)
or given as ``module:Class`` with ``--backend-path``. The harness owns the seed, the initial
parameters, the batch stream, the timer, the thread settings and the accuracy computation.

Optional hooks, each a Protocol below (``HOOKS`` lists them; docs/writing-a-backend.md too):
on the class, ``Versioned``, ``MaybeUnavailable``, ``DrawsOwnBatches``; on the instance,
``ConfiguresThreads``, ``Describes``, ``Profiles`` (with ``NotesPhases``), ``DeclaresWork``,
``Closes``. The harness looks for each with ``isinstance`` against its Protocol, so a hook is
exactly what is declared here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.errors import BackendError, HarnessError
from harness.requests import BackendChoice
from harness.spec import Spec

ENTRY_POINT_GROUP = "harness.backends"
# Names become file names (records, scratch files), so they are slugs: no "/", no leading ".".
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a backend, or None if it can."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid backend name: use 1–64 letters, digits, '-', '_' or '.', "
        "not starting with '.'"
    )


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
    Closes,
)


def follows_batch_stream(cls: type) -> bool:
    return bool(cls.follows_batch_stream) if isinstance(cls, DrawsOwnBatches) else True


def build_info(backend: object) -> dict[str, Any]:
    return dict(backend.build_info()) if isinstance(backend, Describes) else {}


@dataclass(frozen=True)
class BackendRef:
    """How to import a backend without importing it yet."""

    name: str
    target: str  # "module:Class"
    source: str  # where the reference came from, for `harness list`


@dataclass(frozen=True)
class BackendStatus:
    ref: BackendRef
    version: str
    reason: str | None  # None when available

    @property
    def available(self) -> bool:
        return self.reason is None


@cache
def registry() -> dict[str, BackendRef]:
    """Every backend registered through entry points, by name."""
    refs: dict[str, BackendRef] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "unknown distribution"
        refs.setdefault(ep.name, BackendRef(ep.name, ep.value, f"entry point in {dist}"))
    return dict(sorted(refs.items()))


def ref_from_path(target: str) -> BackendRef:
    """A ``module:Class`` given on the command line; named by the class's ``name`` attribute."""
    cls = load_class(target)
    name = getattr(cls, "name", cls.__name__)
    problem = name_problem(name)
    if problem:
        raise BackendError(f"backend path {target!r}: {problem}")
    return BackendRef(name, target, "--backend-path")


def lookup(name: str) -> BackendRef:
    refs = registry()
    if name not in refs:
        known = ", ".join(refs) or "none registered (is the project installed with pip?)"
        raise BackendError(f"unknown backend {name!r}; known backends: {known}")
    problem = name_problem(name)
    if problem:
        raise BackendError(f"backend entry point {refs[name].target!r}: {problem}")
    return refs[name]


def choose(choice: BackendChoice, warn: Callable[[str], None]) -> list[BackendRef]:
    """The backends a command runs, in the order given; ``--all`` skips (and warns about) the
    unavailable ones, a named one that cannot run here is an error."""
    if not choice.given:
        raise HarnessError(
            "choose backends with --all, --backend NAME, --backend-path M:C or "
            "--backend-cmd NAME=COMMAND"
        )
    chosen: list[BackendRef] = []
    if choice.all:
        for ref in registry().values():
            state = status(ref)
            if state.available:
                chosen.append(ref)
            else:
                warn(f"skipping {ref.name}: {state.reason}")
    for name in choice.names:
        ref = lookup(name)
        state = status(ref)
        if not state.available:
            raise HarnessError(f"backend {name!r} is not available: {state.reason}")
        if ref not in chosen:
            chosen.append(ref)
    chosen.extend(ref_from_path(target) for target in choice.paths)
    chosen.extend(refs_from_commands(choice.commands, choice.command_files))
    names = [ref.name for ref in chosen]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise HarnessError(f"backend name(s) {', '.join(twice)} given twice; name each once")
    if not chosen:
        raise HarnessError("no backend is available to run; see 'python -m harness list'")
    return chosen


def refs_from_commands(declared: Sequence[str], files: Sequence[Path]) -> list[BackendRef]:
    """Backends declared as programs (``--backend-cmd NAME=COMMAND``, ``--backend-cmds FILE``)."""
    from harness import process_backend

    pairs = [(process_backend.parse_declaration(text), "--backend-cmd") for text in declared]
    for path in files:
        found = process_backend.read_declarations(path)
        pairs += [(pair, f"--backend-cmds {path}") for pair in found]
    refs = []
    for (name, argv), source in pairs:
        problem = name_problem(name)
        if problem:
            raise BackendError(f"{source}: {problem}")
        if name in registry():
            raise BackendError(
                f"{source}: {name!r} is already a registered backend; give the program another name"
            )
        target = process_backend.target_for(name, argv)
        refs.append(BackendRef(name, target, f"{source}: {shlex.join(argv)}"))
    return refs


def load_class(target: str) -> type:
    from harness import process_backend

    if target.startswith(process_backend.TARGET_PREFIX):
        return process_backend.command_class(target)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise BackendError(f"backend path {target!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a plugin's import can fail in any way; say which and why
        raise BackendError(
            f"backend path {target!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise BackendError(f"backend path {target!r}: {module_name} has no {attr!r}") from None
    missing = [m for m in ("setup", "train_steps", "predict", "params") if not hasattr(cls, m)]
    if missing:
        raise BackendError(
            f"backend path {target!r}: {attr} lacks the Backend method(s) {', '.join(missing)}"
        )
    return cls


def version_of(cls: Any) -> str:
    """The backend's ``version()``, else the version of the distribution that installed it."""
    if isinstance(cls, Versioned):
        return str(cls.version())
    top = str(getattr(cls, "__module__", "")).split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def status(ref: BackendRef) -> BackendStatus:
    """Import the backend's module (cheap by convention) and ask whether it can run here."""
    problem = name_problem(ref.name)
    if problem:
        return BackendStatus(ref, "?", f"{ref.source}: {problem}")
    try:
        cls = load_class(ref.target)
    except BackendError as exc:
        return BackendStatus(ref, "?", str(exc))
    try:
        reason = cls.unavailable_reason() if isinstance(cls, MaybeUnavailable) else None
        version = version_of(cls) if reason is None else "?"
    except Exception as exc:  # a broken plugin shows as unavailable, it does not stop `list`
        return BackendStatus(ref, "?", f"checking it failed: {type(exc).__name__}: {exc}")
    return BackendStatus(ref, version, reason)
