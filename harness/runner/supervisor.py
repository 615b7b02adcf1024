"""Runs the matrix: one fresh worker process per run, supervised, each record stored as it ends."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from harness.backends import BackendRef
from harness.data import DataFiles
from harness.errors import ResultsError
from harness.results.key import threads_label
from harness.results.model import (
    SESSION_FILE,
    InvalidFile,
    MatrixEntry,
    RunRecord,
    Session,
    SweepPointInfo,
    record_filename,
)
from harness.results.store import MAX_FILE_BYTES, parse_bounded, write_json_atomic
from harness.runner import machine_state, processes
from harness.runner.threads import thread_env
from harness.spec import Spec
from harness.work.plan import Plan

ERROR_TAIL_CHARS = 4000


@dataclass(frozen=True)
class RunItem:
    backend: BackendRef
    threads: int | None
    repeat: int
    order: int = 0  # position in the matrix as run
    warmup: bool = False  # run, then discarded: nothing is stored
    variant: str = ""  # the sweep point, e.g. "batch=50,hidden=100"; "" without --sweep

    @property
    def label(self) -> str:
        which = "warm-up" if self.warmup else f"repeat {self.repeat + 1}"
        point = f" · {self.variant}" if self.variant else ""
        return f"{self.backend.name} · threads {threads_label(self.threads)}{point} · {which}"

    @property
    def filename(self) -> str:
        return record_filename(self.backend.name, self.threads, self.repeat, self.variant)

    def entry(self) -> MatrixEntry:
        return MatrixEntry(
            backend=self.backend.name,
            target=self.backend.target,
            threads=self.threads,
            repeat=self.repeat,
            order=self.order,
            variant=self.variant,
        )


def interleaved(
    refs: Sequence[BackendRef],
    threads: Sequence[int | None],
    repeats: int,
    warmup: bool = False,
    variants: Sequence[tuple[str, Sequence[int | None]]] = (("", ()),),
) -> list[RunItem]:
    """A B C A B C …: drifting machine load spreads over every backend instead of hitting one.

    Each repeat visits every sweep point × thread count × backend before the next repeat starts.
    ``variants`` are the sweep points with the thread counts each uses (empty: ``threads``).
    With ``warmup``, one discarded run per cell goes first (caches, page faults, lazy library
    start-up).
    """
    cells = [
        (ref, t, name)
        for name, point_threads in variants
        for t in (point_threads or threads)
        for ref in refs
    ]
    plan = [(ref, t, v, 0, True) for ref, t, v in cells] if warmup else []
    plan += [(ref, t, v, r, False) for r in range(repeats) for ref, t, v in cells]
    return [RunItem(ref, t, r, i, w, v) for i, (ref, t, v, r, w) in enumerate(plan)]


def pinned_cpus(threads: int | None) -> list[int]:
    """The CPUs a pinned worker with ``threads`` threads gets: the first ``threads`` allowed."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed if threads is None else allowed[: max(1, threads)]


def _now() -> str:
    # Microseconds: the run order must be recoverable from the records alone.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def create_session(results_root: Path) -> tuple[str, Path]:
    """A new, empty session directory; fails before any run if the root is unusable."""
    session = datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    directory = results_root / session
    try:
        directory.mkdir(parents=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise ResultsError(_cannot_write(results_root, exc)) from None
    return session, directory


def _cannot_write(where: Path, exc: OSError) -> str:
    return (
        f"cannot write results under {where}: {exc.strerror or exc}; free space there or "
        "choose another place with --results-dir"
    )


ProgressCallback = Callable[[RunItem, dict[str, Any]], None]


@dataclass(frozen=True)
class Flags:
    """Measurement flags that change timings; stored in the session and in every record."""

    pin: bool = False
    profile: bool = False
    warmup: bool = False


@dataclass
class Runner:
    spec: Spec
    data: DataFiles
    plan: Plan
    session: str
    session_dir: Path
    env: dict[str, Any]
    timeout_s: float | None = None
    on_progress: ProgressCallback | None = None
    on_start: Callable[[RunItem], None] | None = None
    on_record: Callable[[RunItem, RunRecord], None] | None = None
    flags: Flags = field(default_factory=Flags)
    # Sweep points other than the base spec: variant name → (spec, plan).
    variants: dict[str, tuple[Spec, Plan]] = field(default_factory=dict)

    def cell(self, item: RunItem) -> tuple[Spec, Plan]:
        return self.variants[item.variant] if item.variant else (self.spec, self.plan)

    def session_record(self, items: Sequence[RunItem]) -> Session:
        return Session(
            session=self.session,
            created_at=_now(),
            spec=self.spec.to_dict(),
            spec_hash=self.spec.hash,
            data=self.data.to_json(),
            init_sha256=self.plan.init_sha256,
            batches_sha256=self.plan.batches_sha256,
            matrix=[item.entry() for item in items if not item.warmup],
            variants={
                name: SweepPointInfo(
                    spec=spec.to_dict(),
                    init_sha256=plan.init_sha256,
                    batches_sha256=plan.batches_sha256,
                )
                for name, (spec, plan) in self.variants.items()
            },
            timeout_s=self.timeout_s,
            env=self.env,
            pin=self.flags.pin,
            profile=self.flags.profile,
            warmup=self.flags.warmup,
        )

    def write_session_file(self, items: Sequence[RunItem]) -> None:
        """The new session's session.json; if it cannot be written, no session is left."""
        try:
            write_json_atomic(self.session_dir / SESSION_FILE, self.session_record(items).to_json())
        except OSError as exc:  # a full or read-only filesystem, say
            shutil.rmtree(self.session_dir, ignore_errors=True)
            raise ResultsError(_cannot_write(self.session_dir.parent, exc)) from None

    def run_all(self, items: Sequence[RunItem]) -> list[RunRecord]:
        """Run every item in order; each record is on disk before the next run starts."""
        records = []
        for item in items:
            if self.on_start is not None:
                self.on_start(item)
            record = self.run_one(item)
            if not item.warmup:
                records.append(record)
            if self.on_record is not None:
                self.on_record(item, record)
        return records

    def identity(self, item: RunItem) -> RunRecord:
        """The record of ``item`` before it runs: what is run, how, and where."""
        spec, plan = self.cell(item)
        return RunRecord(
            backend=item.backend.name,
            backend_target=item.backend.target,
            status="failed",  # until the worker says otherwise
            repeat=item.repeat,
            threads=item.threads,
            spec=spec.to_dict(),
            spec_hash=spec.hash,
            seed=spec.seed,
            init_sha256=plan.init_sha256,
            batches_sha256=plan.batches_sha256,
            variant=item.variant,
            session=self.session,
            train_time_s=None,
            # "verified" only once the run's own worker has checked the bytes it trains on.
            data={**self.data.to_json(), "verified": False},
            env=self.env,
            order=item.order,
            pin=self.flags.pin,
            profile=self.flags.profile,
            warmup=self.flags.warmup,
            timeout_s=self.timeout_s,
            pinned_cpus=pinned_cpus(item.threads) if self.flags.pin else None,
            gemm_rate_gflops=(self.env.get("gemm_rates") or {}).get(threads_label(item.threads)),
            started_at=_now(),
        )

    def run_one(self, item: RunItem) -> RunRecord:
        def on_event(event: dict[str, Any]) -> None:
            if self.on_progress is not None:
                self.on_progress(item, event)

        record = supervised_run(
            replace(self.identity(item), **machine_state.before_run()),
            item.backend.target,
            self.data,
            self.cell(item)[1].save,
            self.flags.profile,
            on_event,
        )
        self.store(item, record)
        return record

    def store(self, item: RunItem, record: RunRecord) -> None:
        """Write the run's record atomically (a warm-up's is discarded)."""
        if item.warmup:
            return
        try:
            write_json_atomic(self.session_dir / item.filename, record.to_json())
        except OSError as exc:
            summary = {
                k: getattr(record, k)
                for k in ("status", "train_time_s", "train_acc", "test_acc", "cpu_util")
            }
            raise ResultsError(
                f"could not write {self.session_dir / item.filename}: {exc}; "
                f"the run's numbers were {summary}; once there is room, finish the session "
                f"with: python -m harness run --resume {self.session_dir}"
            ) from None


def supervised_run(
    record: RunRecord,
    backend_target: str,
    files: DataFiles,
    write_plan: Callable[[Path], None],
    profile: bool,
    on_event: Callable[[dict[str, Any]], None] | None,
) -> RunRecord:
    """One run in a fresh worker process on this machine, from its identity to its record.

    ``record`` is the run's identity with the machine state before it; the result is the
    worker's record if it is credible (else the identity, failed), with how the run ended.
    """
    # A scratch directory of its own per run: whatever a backend does to it stays there.
    scratch = processes.scratch_dir()
    try:
        plan_path = scratch / "plan.npz"
        write_plan(plan_path)
        job = {
            "record": record.to_json(),
            "backend_target": backend_target,
            "data": files.to_json(),
            "plan_path": str(plan_path),
            "profile": profile,
        }
        result = run_worker(
            job, scratch, record.threads, record.timeout_s, on_event, record.pinned_cpus
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = _settle(record, result)
    record.load_avg_1min_after = machine_state.after_run()
    return record


# What the worker may not change: the run it was asked to do. (env gains the worker's BLAS pools.)
_IDENTITY = (
    "backend",
    "repeat",
    "threads",
    "spec",
    "spec_hash",
    "seed",
    "init_sha256",
    "batches_sha256",
    "session",
    "variant",
    "order",
    "pin",
    "profile",
    "warmup",
    "timeout_s",
)


def _implausible(identity: RunRecord, record: RunRecord, wall_s: float) -> str | None:
    """Why the worker's record cannot be what happened, or None if it can."""
    changed = [name for name in _IDENTITY if getattr(record, name) != getattr(identity, name)]
    if changed:
        return f"it describes another run ({', '.join(changed)} differ from the job)"
    if record.status != "ok":
        return None
    iterations = identity.spec["iterations"]
    if record.iterations_done != iterations:
        return f"status ok after {record.iterations_done} of {iterations} iterations"
    if record.train_time_s is not None and record.train_time_s > wall_s:
        return (
            f"train_time_s {record.train_time_s:.3f} s exceeds the worker's whole life, "
            f"{wall_s:.3f} s as the runner measured it"
        )
    return None


def _settle(identity: RunRecord, result: WorkerResult) -> RunRecord:
    """The worker's record if it wrote a plausible one, else ``identity``; then how it ended."""
    record = identity
    if result.result is None:
        error: str | None = f"worker died: {_describe_exit(result.exit_code)}"
    else:
        try:
            record = RunRecord.from_json(result.result)
            error = record.error
        except InvalidFile as exc:
            error = f"the worker's result is unusable: {exc}"
        else:
            problem = _implausible(identity, record, result.wall_s)
            if problem:
                record, error = identity, f"the worker's result is not credible: {problem}"
    status = "failed" if record is identity else record.status
    if result.timed_out:
        status, error = "timeout", f"killed after the {identity.timeout_s:g} s timeout"
    if status != "ok" and result.output_tail:
        error = f"{error}\n--- worker output (tail) ---\n{result.output_tail}"
    record.status, record.error = status, error
    record.exit_code, record.finished_at = result.exit_code, _now()
    record.progress_junk = result.progress_junk
    record.stray_processes += result.strays_killed
    return record


@dataclass(frozen=True)
class WorkerResult:
    result: Any  # the parsed JSON the worker wrote to its result channel; None if nothing
    timed_out: bool
    exit_code: int | None
    output_tail: str  # the end of the worker's stderr (or stdout), for failures
    wall_s: float  # from start to exit, as the runner measured it
    progress_junk: int = 0  # malformed progress events, ignored
    strays_killed: int = 0  # descendants still alive after the worker ended, killed then

    def read_json(self) -> dict[str, Any]:
        """The result as a JSON object (``verify`` mode); empty if missing or not one."""
        return self.result if isinstance(self.result, dict) else {}


def run_worker(
    job: dict[str, Any],
    scratch: Path,
    threads: int | None,
    timeout_s: float | None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    cpus: list[int] | None = None,
) -> WorkerResult:
    """Run ``python -m harness.runner.worker`` on ``job`` in a fresh process; collect its result.

    The thread variables are in the worker's environment from its start; its output goes to
    files (a flood cannot block it); progress events come back over a pipe, checked before they
    reach ``on_event``; the result comes back through an unlinked file whose descriptor only the
    worker gets. At ``timeout_s`` the worker is killed; when it ends, so is everything it started.
    """
    stdout_path, stderr_path = scratch / "worker.stdout", scratch / "worker.stderr"
    job_path = scratch / "job.json"
    workdir = scratch / "work"  # the worker's current directory, apart from the job's files
    workdir.mkdir(exist_ok=True)
    progress_read, progress_write = os.pipe()
    job_path.write_text(json.dumps({**job, "progress_fd": progress_write, "timeout_s": timeout_s}))
    env = {**os.environ, **thread_env(threads), "PYTHONPATH": _worker_import_path()}

    def prepare_child() -> None:
        processes.die_with_parent()  # a worker never outlives a harness killed with -9
        if cpus is not None:  # pinning must precede every import, or BLAS pools start elsewhere
            os.sched_setaffinity(0, cpus)

    already = {p.pid for p in psutil.Process().children()}
    adopting = processes.become_subreaper()  # orphans of the worker's tree come back to us
    started = time.monotonic()
    try:
        with (
            open(stdout_path, "wb") as out,
            open(stderr_path, "wb") as err,
            tempfile.TemporaryFile(dir=scratch) as result_file,  # unlinked: nothing to find
        ):
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "harness.runner.worker",
                        str(job_path),
                        str(result_file.fileno()),
                    ],
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    pass_fds=(progress_write, result_file.fileno()),
                    start_new_session=True,  # Ctrl-C reaches the runner, which ends the worker
                    cwd=workdir,  # a backend's relative writes land in the run's scratch folder
                    preexec_fn=prepare_child,
                )
            finally:
                os.close(progress_write)
            try:
                timed_out, junk = _supervise(proc, progress_read, timeout_s, on_event)
            except BaseException:
                processes.kill_tree(proc.pid)
                proc.wait()
                raise
            wall_s = time.monotonic() - started
            strays = processes.kill_descendants(proc.pid)
            result_file.seek(0)
            text = result_file.read(MAX_FILE_BYTES + 1)  # a flood there is no result
    finally:
        # Anything of the run's still alive (orphans, setsid'd daemons) was adopted by us.
        strays_adopted = processes.kill_descendants(spare=already)
        if adopting:
            processes.become_subreaper(False)
    result = None
    with contextlib.suppress(InvalidFile):
        result = parse_bounded(text) if text else None
    tail = _tail(stderr_path) or _tail(stdout_path)
    return WorkerResult(
        result, timed_out, proc.returncode, tail, wall_s, junk, strays + strays_adopted
    )


def _worker_import_path() -> str:
    """What the worker imports from, as if it ran where the harness runs.

    Its current directory is the run's scratch folder, so the harness's own folder (a backend
    given as ``--backend-path module:Class`` lives there) and this harness's package are named
    explicitly, after any PYTHONPATH the user set.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys([*given, os.getcwd(), package_root]))


class ProgressEvents:
    """Reads the worker's progress pipe: whole, well-formed events only; the rest is counted.

    A backend shares the worker's process and descriptors, so anything may arrive here: lines
    are bounded in length, and an event is passed on only if it has the expected fields and types.
    """

    MAX_LINE = 4096

    def __init__(self) -> None:
        self.buffer = b""
        self.junk = 0

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > self.MAX_LINE:  # no newline in sight: not an event of ours
            self.buffer, self.junk = b"", self.junk + 1
        events = []
        for line in lines:
            event = self._parse(line)
            if event is None:
                self.junk += 1
            else:
                events.append(event)
        return events

    @classmethod
    def _parse(cls, line: bytes) -> dict[str, Any] | None:
        if len(line) > cls.MAX_LINE:
            return None
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):  # "[[[[…" nests past the parser's limit
            return None
        if not isinstance(event, dict):
            return None
        if event.get("event") == "setup":
            return {"event": "setup"}
        if event.get("event") != "trained":
            return None
        iteration, test_acc, loss = event.get("iteration"), event.get("test_acc"), event.get("loss")
        if not (_real(iteration) and float(iteration).is_integer() and iteration >= 0):
            return None
        if not (_real(test_acc) and 0 <= test_acc <= 1) or not (loss is None or _real(loss)):
            return None
        return {"event": "trained", "iteration": int(iteration), "test_acc": test_acc, "loss": loss}


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _supervise(
    proc: subprocess.Popen,
    progress_read: int,
    timeout_s: float | None,
    on_event: Callable[[dict[str, Any]], None] | None,
) -> tuple[bool, int]:
    """Relay progress until the worker exits; kill it at the timeout.

    Returns (timed out, malformed progress events).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    events = ProgressEvents()
    with selectors.DefaultSelector() as selector, os.fdopen(progress_read, "rb", 0) as pipe:
        selector.register(pipe, selectors.EVENT_READ)
        open_pipe = True
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                processes.kill_tree(proc.pid)
                proc.wait()
                return True, events.junk
            wait = 0.2 if remaining is None else min(remaining, 0.2)
            if proc.poll() is not None and not (open_pipe and selector.select(timeout=0)):
                return False, events.junk
            if not open_pipe:
                # The worker closed its progress pipe: it is exiting; wait, under the deadline.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
                continue
            if not selector.select(timeout=wait):
                continue
            chunk = os.read(progress_read, 65536)
            if not chunk:
                selector.unregister(pipe)
                open_pipe = False
                continue
            for event in events.feed(chunk):
                if on_event is not None:
                    on_event(event)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"killed by signal {-code}"
        hint = " (out of memory? the kernel's OOM killer sends it)" if name == "SIGKILL" else ""
        return f"killed by signal {name}{hint}"
    return f"exit status {code} without a result"


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - ERROR_TAIL_CHARS))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""
