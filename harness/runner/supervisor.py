"""Runs the matrix: one fresh worker process per run, supervised, each record stored as it ends."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.backends import BackendRef
from harness.data import DataFiles
from harness.errors import ResultsError
from harness.results.model import (
    SESSION_FILE,
    InvalidFile,
    MatrixEntry,
    RunRecord,
    Session,
    SweepPointInfo,
    record_filename,
)
from harness.results.store import read_record, write_json_atomic
from harness.runner.plan import Plan
from harness.runner.threads import thread_env
from harness.spec import Spec

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
        threads = "default" if self.threads is None else str(self.threads)
        which = "warm-up" if self.warmup else f"repeat {self.repeat + 1}"
        point = f" · {self.variant}" if self.variant else ""
        return f"{self.backend.name} · threads {threads}{point} · {which}"

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
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        raise ResultsError(
            f"cannot write results under {results_root}: {exc.strerror or exc}; "
            "choose another place with --results-dir"
        ) from None
    return session, directory


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
        write_json_atomic(self.session_dir / SESSION_FILE, self.session_record(items).to_json())

    def run_all(self, items: Sequence[RunItem]) -> list[RunRecord]:
        """Run every item in order; each record is on disk before the next run starts."""
        records = []
        with tempfile.TemporaryDirectory(prefix="mlp-bench-") as scratch:
            plan_paths = {}
            cells = [("", (self.spec, self.plan)), *self.variants.items()]
            for i, (variant, (_, plan)) in enumerate(cells):
                plan_paths[variant] = Path(scratch) / f"plan-{i}.npz"
                plan.save(plan_paths[variant])
            for item in items:
                if self.on_start is not None:
                    self.on_start(item)
                record = self.run_one(item, plan_paths[item.variant], Path(scratch))
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
            data=self.data.to_json(),
            env=self.env,
            order=item.order,
            pin=self.flags.pin,
            profile=self.flags.profile,
            warmup=self.flags.warmup,
            timeout_s=self.timeout_s,
            pinned_cpus=pinned_cpus(item.threads) if self.flags.pin else None,
            started_at=_now(),
        )

    def run_one(self, item: RunItem, plan_path: Path, scratch: Path) -> RunRecord:
        record = self.identity(item)
        job = {
            "record": record.to_json(),
            "backend_target": item.backend.target,
            "data": self.data.to_json(),
            "plan_path": str(plan_path),
            "profile": self.flags.profile,
        }

        def on_event(event: dict[str, Any]) -> None:
            if self.on_progress is not None:
                self.on_progress(item, event)

        stem = ("warmup-" if item.warmup else "") + item.filename.removesuffix(".json")
        result = run_worker(
            job, scratch, stem, item.threads, self.timeout_s, on_event, record.pinned_cpus
        )
        record = _settle(record, result)
        if item.warmup:
            return record
        try:
            write_json_atomic(self.session_dir / item.filename, record.to_json())
        except OSError as exc:
            summary = {
                k: getattr(record, k)
                for k in ("status", "train_time_s", "train_acc", "test_acc", "cpu_util")
            }
            raise ResultsError(
                f"could not write {self.session_dir / item.filename}: {exc}; "
                f"the run's numbers were {summary}"
            ) from None
        return record


def _settle(identity: RunRecord, result: WorkerResult) -> RunRecord:
    """The worker's record if it wrote a valid one, else ``identity``; then how the run ended."""
    record = identity
    if result.result_path is None:
        error: str | None = f"worker died: {_describe_exit(result.exit_code)}"
    else:
        try:
            record = read_record(result.result_path)
            error = record.error
        except InvalidFile as exc:
            error = f"the worker's result is unusable: {exc}"
    status = "failed" if record is identity else record.status
    if result.timed_out:
        status, error = "timeout", f"killed after the {identity.timeout_s:g} s timeout"
    if status != "ok" and result.output_tail:
        error = f"{error}\n--- worker output (tail) ---\n{result.output_tail}"
    record.status, record.error = status, error
    record.exit_code, record.finished_at = result.exit_code, _now()
    return record


@dataclass(frozen=True)
class WorkerResult:
    result_path: Path | None  # the result file the worker wrote; None if it died first
    timed_out: bool
    exit_code: int | None
    output_tail: str  # the end of the worker's stderr (or stdout), for failures

    def read_json(self) -> dict[str, Any]:
        """The result as plain JSON (``verify`` mode); empty if missing or not JSON."""
        if self.result_path is None:
            return {}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.result_path.read_text())
            return data if isinstance(data, dict) else {}
        return {}


def run_worker(
    job: dict[str, Any],
    scratch: Path,
    stem: str,
    threads: int | None,
    timeout_s: float | None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    cpus: list[int] | None = None,
) -> WorkerResult:
    """Run ``python -m harness.runner.worker`` on ``job`` in a fresh process; collect its result.

    The thread variables are in the worker's environment from its start; its output goes to
    files (a flood cannot block it); progress events come back over a pipe; at ``timeout_s`` the
    worker and anything it started are killed.
    """
    result_path = scratch / f"{stem}.result.json"
    stdout_path, stderr_path = scratch / f"{stem}.stdout", scratch / f"{stem}.stderr"
    progress_read, progress_write = os.pipe()
    job_path = scratch / f"{stem}.job.json"
    job_path.write_text(
        json.dumps({**job, "result_path": str(result_path), "progress_fd": progress_write})
    )
    env = {**os.environ, **thread_env(threads)}
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.runner.worker", str(job_path)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                pass_fds=(progress_write,),
                start_new_session=True,  # Ctrl-C reaches the runner, which ends the worker
                # Pinning must precede every import, or BLAS pools start on other CPUs.
                preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
            )
        finally:
            os.close(progress_write)
        try:
            timed_out = _supervise(proc, progress_read, timeout_s, on_event)
        except BaseException:
            _kill(proc)
            raise
    tail = _tail(stderr_path) or _tail(stdout_path)
    return WorkerResult(
        result_path if result_path.exists() else None, timed_out, proc.returncode, tail
    )


def _supervise(
    proc: subprocess.Popen,
    progress_read: int,
    timeout_s: float | None,
    on_event: Callable[[dict[str, Any]], None] | None,
) -> bool:
    """Relay progress until the worker exits; kill it at the timeout. True if it timed out."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    buffer = b""
    with selectors.DefaultSelector() as selector, os.fdopen(progress_read, "rb", 0) as pipe:
        selector.register(pipe, selectors.EVENT_READ)
        open_pipe = True
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                _kill(proc)
                return True
            if not open_pipe:
                # The worker closed its progress pipe: it is exiting, or a child of it holds
                # on; wait for the process itself, still under the deadline.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.2 if remaining is None else min(remaining, 0.2))
                if proc.poll() is not None:
                    return False
                continue
            events = selector.select(timeout=0.5 if remaining is None else min(remaining, 0.5))
            if not events:
                continue
            chunk = os.read(progress_read, 65536)
            if not chunk:
                selector.unregister(pipe)
                open_pipe = False
                continue
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:  # a garbled line is not worth failing a run for
                    continue
                if on_event is not None:
                    on_event(event)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
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


def _kill(proc: subprocess.Popen) -> None:
    """End the worker and anything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
