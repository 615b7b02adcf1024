"""What a ``run`` will do: a new matrix from the command line, or the rest of a stored session.

A resumed session keeps everything that makes its runs comparable: the spec, the data (checked
by SHA-256), the plan (re-derived and checked against the stored hashes), the backends and the
measurement flags. A flag given with ``--resume`` that contradicts the stored one is refused;
``--timeout`` may change, and is recorded in the runs it applies to.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import backends, data
from harness.arguments import DEFAULT_REPEATS, DEFAULT_TIMEOUT_S, positive_int, resolve_timeout
from harness.backends import BackendRef
from harness.errors import HarnessError
from harness.results.model import Session
from harness.results.store import read_session, resolve_sessions
from harness.runner.supervisor import Flags, RunItem, create_session, interleaved
from harness.spec import (
    SWEEP_THREADS,
    Spec,
    SweepPoint,
    build_spec,
    check_fits_data,
    parse_sweeps,
    spec_from_dict,
    sweep_points,
)
from harness.work.plan import Plan, make_plan


@dataclass
class Matrix:
    """Everything a run needs: the job, the data, the plan, where records go, what to run."""

    spec: Spec
    files: data.DataFiles
    plan: Plan
    session: str
    session_dir: Path
    items: list[RunItem]
    timeout_s: float | None
    total: int  # runs in the whole matrix (a resumed one runs only the missing)
    variants: dict[str, tuple[Spec, Plan]]  # sweep points; empty without --sweep
    flags: Flags
    resumed: Session | None = None


def choose_backends(args: argparse.Namespace, warn: Callable[[str], None]) -> list[BackendRef]:
    if not (args.all or args.backend or args.backend_path or args.backend_cmd or args.backend_cmds):
        raise HarnessError(
            "choose backends with --all, --backend NAME, --backend-path M:C or "
            "--backend-cmd NAME=COMMAND"
        )
    chosen: list[BackendRef] = []
    if args.all:
        for ref in backends.registry().values():
            state = backends.status(ref)
            if state.available:
                chosen.append(ref)
            else:
                warn(f"skipping {ref.name}: {state.reason}")
    for name in args.backend:
        ref = backends.lookup(name)
        state = backends.status(ref)
        if not state.available:
            raise HarnessError(f"backend {name!r} is not available: {state.reason}")
        if ref not in chosen:
            chosen.append(ref)
    chosen.extend(backends.ref_from_path(target) for target in args.backend_path)
    chosen.extend(backends.refs_from_commands(args.backend_cmd, args.backend_cmds))
    names = [ref.name for ref in chosen]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise HarnessError(f"backend name(s) {', '.join(twice)} given twice; name each once")
    if not chosen:
        raise HarnessError("no backend is available to run; see 'python -m harness list'")
    return chosen


def _check_baseline(args: argparse.Namespace, names: list[str]) -> None:
    baseline = args.baseline
    if baseline is not None and baseline not in names:
        raise HarnessError(
            f"--baseline {baseline}: it is not among the backends run "
            f"({', '.join(dict.fromkeys(names))}); choose one of them"
        )


def _plans_for(points: list[SweepPoint], files: data.DataFiles) -> dict[str, tuple[Spec, Plan]]:
    variants = {}
    for point in points:
        check_fits_data(point.spec, files.n_train)
        plan = make_plan(point.spec, files.n_features, data.N_CLASSES, files.n_train)
        variants[point.name] = (point.spec, plan)
    return variants


def _flags(args: argparse.Namespace) -> Flags:
    return Flags(pin=args.pin, profile=args.profile, warmup=args.warmup)


def new_matrix(args: argparse.Namespace, warn: Callable[[str], None]) -> Matrix:
    spec = build_spec(args.spec, args.set, args.quick)
    sweeps = parse_sweeps(args.sweep)
    threads = args.threads or [None]
    if SWEEP_THREADS in sweeps:
        try:
            threads = [positive_int(t) for t in sweeps[SWEEP_THREADS]]
        except argparse.ArgumentTypeError as exc:
            raise HarnessError(f"--sweep threads: {exc}") from None
    points = sweep_points(spec, sweeps) if set(sweeps) - {SWEEP_THREADS} else []
    cores = len(os.sched_getaffinity(0))
    for n in sorted({t for t in threads if t is not None and t > cores}):
        warn(
            f"--threads {n} is more than the {cores} CPUs this process may use: those runs "
            "measure threads queueing for cores, not speed"
        )
    refs = choose_backends(args, warn)
    _check_baseline(args, [ref.name for ref in refs])
    files = data.locate(spec.dataset, args.data_dir)
    check_fits_data(spec, files.n_train)
    variants = _plans_for(points, files)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    cells = [(name, ()) for name in variants] or [("", ())]
    repeats = args.repeats or DEFAULT_REPEATS
    items = interleaved(refs, threads, repeats, args.warmup, cells)
    total = sum(not item.warmup for item in items)
    timeout = resolve_timeout(args.timeout, DEFAULT_TIMEOUT_S)
    session, session_dir = create_session(args.results_dir)  # last: nothing made before a mistake
    return Matrix(
        spec, files, plan, session, session_dir, items, timeout, total, variants, _flags(args)
    )


# Options that choose the work; a resumed session has its own.
_NOT_WITH_RESUME = (
    "all",
    "backend",
    "backend_path",
    "backend_cmd",
    "backend_cmds",
    "set",
    "spec",
    "quick",
    "sweep",
    "threads",
    "repeats",
)


def _resumed_flags(args: argparse.Namespace, stored: Session, session_dir: Path) -> Flags:
    """The session's flags; one given now that the session ran without is refused."""
    given = _flags(args)
    flags = {}
    for name in ("pin", "profile", "warmup"):
        before = getattr(stored, name)
        now = getattr(given, name)
        if before is None:  # a schema-1 session did not store it: take what is given
            flags[name] = now
        elif now and not before:
            raise HarnessError(
                f"--{name} conflicts with {session_dir}, which ran without it; its runs would "
                f"not be comparable: drop --{name}, or start a new session"
            )
        else:
            flags[name] = before
    return Flags(**flags)


def resumed_matrix(args: argparse.Namespace) -> Matrix:
    """The session's own spec, data and matrix; only the runs without a record are left to do."""
    given = [f"--{name.replace('_', '-')}" for name in _NOT_WITH_RESUME if getattr(args, name)]
    if given:
        raise HarnessError(
            f"--resume takes the spec and the backends from the session; drop {', '.join(given)}"
        )
    (session_dir,) = resolve_sessions([args.resume], args.results_dir)
    stored = read_session(session_dir)
    _check_baseline(args, [entry.backend for entry in stored.matrix])
    try:
        spec = spec_from_dict(stored.spec)
        stored_data = data.DataFiles.from_json(stored.data)
    except (KeyError, TypeError, ValueError, HarnessError) as exc:
        raise HarnessError(
            f"cannot resume {session_dir}: its session.json is unusable ({exc})"
        ) from None
    flags = _resumed_flags(args, stored, session_dir)
    data_dir = args.data_dir or stored_data.paths["train_images"].parent
    files = data.locate(spec.dataset, data_dir)
    if files.sha256 != stored_data.sha256:
        raise HarnessError(
            f"cannot resume {session_dir}: the data in {data_dir} differs from "
            "the session's (SHA-256 mismatch)"
        )
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    if (plan.init_sha256, plan.batches_sha256) != (stored.init_sha256, stored.batches_sha256):
        raise HarnessError(
            f"cannot resume {session_dir}: this version derives a different "
            "plan from its seed, so the runs would not do the same work"
        )
    points = [SweepPoint(name, spec_from_dict(v.spec)) for name, v in stored.variants.items()]
    variants = _plans_for(points, files)
    for name, (_, point_plan) in variants.items():
        point = stored.variants[name]
        if (point_plan.init_sha256, point_plan.batches_sha256) != (
            point.init_sha256,
            point.batches_sha256,
        ):
            raise HarnessError(
                f"cannot resume {session_dir}: sweep point {name} would get "
                "different work from its seed"
            )
    missing = [
        RunItem(
            BackendRef(m.backend, m.target, "session"),
            m.threads,
            m.repeat,
            m.order,
            variant=m.variant,
        )
        for m in stored.matrix
        if not (session_dir / m.filename).exists()
    ]
    if flags.warmup:  # the resumed runs get their warm-ups too, one per cell still to run
        cells = dict.fromkeys((i.backend, i.threads, i.variant) for i in missing)
        warmups = [RunItem(ref, t, 0, -1, True, v) for ref, t, v in cells]
        missing = warmups + missing
    timeout = resolve_timeout(args.timeout, stored.timeout_s)
    return Matrix(
        spec,
        files,
        plan,
        stored.session,
        session_dir,
        missing,
        timeout,
        len(stored.matrix),
        variants,
        flags,
        resumed=stored,
    )
