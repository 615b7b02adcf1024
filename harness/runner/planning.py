"""What a ``run`` will do: a new matrix from a request, or the rest of a stored session.

A resumed session keeps everything that makes its runs comparable: the spec, the data (checked
by SHA-256), the plan (re-derived and checked against the stored hashes), the backends and the
measurement flags. A flag given with ``--resume`` that contradicts the stored one is refused;
``--timeout`` may change, and is recorded in the runs it applies to. Planning writes nothing:
the executor creates a new session's folder when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import fields

from harness import backends, data
from harness.backends import BackendRef
from harness.errors import HarnessError
from harness.requests import (
    DEFAULT_REPEATS,
    DEFAULT_THREADS,
    DEFAULT_TIMEOUT_S,
    Flags,
    RunRequest,
    Target,
    resolve_timeout,
)
from harness.results.model import SESSION_FILE, Session
from harness.results.store import load_results, read_session, resolve_sessions
from harness.results.summary import check_baseline
from harness.runner.items import RunItem, interleaved, warmups_for
from harness.runner.job import Job, plan_for, prepare_job, sweep_plans
from harness.runner.matrix import Matrix
from harness.runner.session import new_session_name
from harness.spec import (
    SWEEP_THREADS,
    SweepPoint,
    build_spec,
    parse_sweeps,
    spec_from_dict,
    sweep_points,
)


def _sweep_threads(values: Sequence[str]) -> list[int | None]:
    counts: list[int | None] = []
    for text in values:
        if not text.isdigit() or int(text) < 1:
            raise HarnessError(f"--sweep threads: {text!r} must be an integer ≥ 1")
        counts.append(int(text))
    return counts


def new_matrix(request: RunRequest, warn: Callable[[str], None]) -> Matrix:
    work = request.work
    spec = build_spec(work.spec_file, work.overrides, work.quick)
    sweeps = parse_sweeps(work.sweeps)
    threads = list(work.threads) or [DEFAULT_THREADS]
    if SWEEP_THREADS in sweeps:
        threads = _sweep_threads(sweeps[SWEEP_THREADS])
    points = sweep_points(spec, sweeps) if set(sweeps) - {SWEEP_THREADS} else []
    cores = len(os.sched_getaffinity(0))
    too_many = sorted({t for t in threads if t is not None and t > cores})
    if too_many:
        # Such runs measure threads queueing for cores (and a huge count makes BLAS start
        # thousands of threads and grind to the timeout): refused before anything runs.
        raise HarnessError(
            f"--threads {too_many[-1]} is more than the {cores} CPUs this process may use; give "
            f"1 to {cores}, 'all' (1…{cores}) or 'default' (each library's own)"
        )
    refs = backends.choose(work.backends, warn)
    check_baseline(request.baseline, [ref.name for ref in refs], "this matrix")
    job = prepare_job(spec, request.data_dir)
    variants = sweep_plans(points, job.files)
    repeats = work.repeats or DEFAULT_REPEATS
    items = interleaved(refs, threads, repeats, request.flags.warmup, list(variants) or [""])
    session = new_session_name()
    return Matrix(
        job,
        session,
        request.results_dir / session,
        items,
        resolve_timeout(request.timeout_s, DEFAULT_TIMEOUT_S),
        total=sum(not item.warmup for item in items),
        variants=variants,
        flags=request.flags,
        target=request.target,
    )


def _resumed_flags(given: Flags, stored: Session, where: object) -> Flags:
    """The session's flags; one given now that the session ran without is refused."""
    flags = {}
    for name in (f.name for f in fields(Flags)):
        before, now = getattr(stored, name), getattr(given, name)
        if before is None:  # a schema-1 session did not store it: take what is given
            flags[name] = now
        elif now and not before:
            raise HarnessError(
                f"--{name} conflicts with {where}, which ran without it; its runs would "
                f"not be comparable: drop --{name}, or start a new session"
            )
        else:
            flags[name] = before
    return Flags(**flags)


def resumed_matrix(request: RunRequest) -> Matrix:
    """The session's own spec, data and matrix; only the runs without a record are left to do."""
    given = request.work.options_given()
    if given:
        raise HarnessError(
            f"--resume takes the spec and the backends from the session; drop {', '.join(given)}"
        )
    (session_dir,) = resolve_sessions([request.resume], request.results_dir)
    if not (session_dir / SESSION_FILE).exists():  # a FIFO there is for read_session to name
        raise HarnessError(
            f"{session_dir} is not a session folder (no {SESSION_FILE} in it); give a folder "
            f"'run' made, a session id under {request.results_dir}, or 'latest'"
        )
    stored = read_session(session_dir)
    check_baseline(request.baseline, [m.backend for m in stored.matrix], str(session_dir))
    try:
        spec = spec_from_dict(stored.spec)
        stored_data = data.DataFiles.from_json(stored.data)
    except (KeyError, TypeError, ValueError, HarnessError) as exc:
        raise HarnessError(
            f"cannot resume {session_dir}: its session.json is unusable ({exc})"
        ) from None
    flags = _resumed_flags(request.flags, stored, session_dir)
    data_dir = request.data_dir or stored_data.paths["train_images"].parent
    files = data.locate(spec.dataset, data_dir)
    if files.sha256 != stored_data.sha256:
        raise HarnessError(
            f"cannot resume {session_dir}: the data in {data_dir} differs from "
            "the session's (SHA-256 mismatch)"
        )
    job = Job(spec, files, plan_for(spec, files))
    points = [SweepPoint(name, spec_from_dict(v.spec)) for name, v in stored.variants.items()]
    variants = sweep_plans(points, files)
    hashes = {"": (stored.init_sha256, stored.batches_sha256)}
    hashes.update({n: (v.init_sha256, v.batches_sha256) for n, v in stored.variants.items()})
    derived = {"": job.plan, **{name: plan for name, (_, plan) in variants.items()}}
    for name, plan in derived.items():
        if (plan.init_sha256, plan.batches_sha256) != hashes[name]:
            which = f"sweep point {name}" if name else "this version"
            raise HarnessError(
                f"cannot resume {session_dir}: {which} derives a different plan from its seed, "
                "so the runs would not do the same work"
            )
    # Each run's latest record: none, or one lost with its machine, means the run is to do (or,
    # with --retry-failed, one that did not end ok); a redo is the record's next attempt.
    latest = {
        (r.backend, r.threads, r.repeat, r.variant): r for r in load_results([session_dir]).records
    }
    missing = []
    for m in stored.matrix:
        before = latest.get((m.backend, m.threads, m.repeat, m.variant))
        redo = before is not None and (
            before.status == "lost" or (request.retry_failed and before.status != "ok")
        )
        if before is None or redo:
            missing.append(
                RunItem(
                    BackendRef(m.backend, m.target, "session"),
                    m.threads,
                    m.repeat,
                    m.order,
                    variant=m.variant,
                    attempt=before.attempt + 1 if before is not None else 1,
                )
            )
    if flags.warmup:  # the resumed runs get their warm-ups too, one per cell still to run
        missing = warmups_for(missing) + missing
    return Matrix(
        job,
        stored.session,
        session_dir,
        missing,
        resolve_timeout(request.timeout_s, stored.timeout_s),
        total=len(stored.matrix),
        variants=variants,
        flags=flags,
        resumed=stored,
        target=_resumed_target(request.target, stored, session_dir),
    )


def _resumed_target(given: Target | None, stored: Session, where: object) -> Target | None:
    """The session's target; another one given now would leave its runs measured two ways."""
    before = Target.from_json(stored.target) if stored.target else None
    if given is not None and before is not None and given != before:
        raise HarnessError(
            f"--target {given.metric}={given.value:g} conflicts with {where}, which ran with "
            f"{before.metric}={before.value:g}: drop --target, or start a new session"
        )
    return before or given
