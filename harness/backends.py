"""Finding, checking and choosing backends: the plugin registry (the project's only global state).

A backend is a class with a no-argument constructor implementing the four methods of ``Backend``
(harness.hooks, with the optional hooks). It is found through the ``harness.backends``
entry-point group (built-ins register the same way) or given as ``module:Class`` with
``--backend-path``. The harness owns the seed, the initial parameters, the batch stream, the
timer, the thread settings and the accuracy computation.
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
from typing import Any

from harness.errors import BackendError, HarnessError, did_you_mean
from harness.hooks import Describes, DrawsOwnBatches, MaybeUnavailable, Versioned
from harness.plugin_shape import class_answer, shape_problem
from harness.requests import BackendChoice

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
    """Every backend registered through entry points, by name. A name registered twice (a
    plugin that takes a built-in's name) is kept for neither: ``lookup`` names the clash."""
    found: dict[str, list[BackendRef]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "unknown distribution"
        refs = found.setdefault(ep.name, [])
        if all(ref.target != ep.value for ref in refs):
            refs.append(BackendRef(ep.name, ep.value, f"entry point in {dist}"))
    chosen = {}
    for name, refs in sorted(found.items()):
        own = [ref for ref in refs if ref.source == f"entry point in {_OWN_DISTRIBUTION}"]
        chosen[name] = refs[0] if len(refs) == 1 else own[0] if own else _clash(name, refs)
    return chosen


def name_clashes() -> list[str]:
    """One line per plugin entry point refused for taking a name already registered."""
    lines = []
    by_name: dict[str, set[str]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        by_name.setdefault(ep.name, set()).add(ep.value)
    for name, targets in sorted(by_name.items()):
        kept = registry()[name]
        if kept.target.startswith(_CLASH_PREFIX):  # neither is kept; using it says why
            continue
        for target in sorted(targets - {kept.target}):
            lines.append(
                f"ignoring the plugin {target}: its name {name!r} is the built-in "
                f"{kept.target}'s; a plugin may not take another backend's name: rename it"
            )
    return lines


_OWN_DISTRIBUTION = "mlp-bench"  # the built-ins keep their names against any plugin


_CLASH_PREFIX = "clash:"


def _clash(name: str, refs: list[BackendRef]) -> BackendRef:
    """A stand-in for a name two distributions register: it loads as neither, saying why."""
    both = " and ".join(f"{ref.target} ({ref.source})" for ref in refs)
    return BackendRef(name, f"{_CLASH_PREFIX}{name}", f"registered twice: {both}")


def ref_from_path(target: str) -> BackendRef:
    """A ``module:Class`` given on the command line; named by the class's ``name`` attribute."""
    cls = load_class(target)
    name = getattr(cls, "name", cls.__name__)
    problem = name_problem(name)
    if problem:
        raise BackendError(f"backend path {target!r}: {problem}")
    taken = registry().get(name)
    if taken is not None and taken.target != target:
        # Same name, same records and keys: its runs would pool and pair with the other's.
        raise BackendError(
            f"backend path {target!r}: its name {name!r} is taken by the registered backend "
            f"{taken.target} ({taken.source}); give the class another name"
        )
    return BackendRef(name, target, "--backend-path")


# The book's NumPy code: run in float64, it is what verify and every run's proof compare with.
REFERENCE_BACKEND = "numpy"


def reference_target() -> str:
    return lookup(REFERENCE_BACKEND).target


def lookup(name: str) -> BackendRef:
    refs = registry()
    if name not in refs:
        known = ", ".join(refs) or "none registered (is the project installed with pip?)"
        raise BackendError(
            f"unknown backend {name!r}{did_you_mean(name, refs)} known backends: {known}"
        )
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
    for line in name_clashes():
        warn(line)
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

    if target.startswith(_CLASH_PREFIX):
        ref = registry()[target.removeprefix(_CLASH_PREFIX)]
        raise BackendError(
            f"backend name {ref.name!r} is {ref.source}; a plugin may not take another "
            "backend's name: rename one entry point"
        )
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
    problem = shape_problem(cls)
    if problem:
        raise BackendError(f"backend path {target!r}: {attr}'s {problem}")
    return cls


def version_of(cls: Any) -> str:
    """The backend's ``version()``, else the version of the distribution that installed it."""
    if isinstance(cls, Versioned):
        return str(class_answer(cls, "version"))
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
        answer = None
        if isinstance(cls, MaybeUnavailable):
            answer = class_answer(cls, "unavailable_reason")
        reason = None if answer is None else str(answer)
        version = version_of(cls) if reason is None else "?"
    except Exception as exc:  # a broken plugin shows as unavailable, it does not stop `list`
        return BackendStatus(ref, "?", f"checking it failed: {type(exc).__name__}: {exc}")
    return BackendStatus(ref, version, reason)
