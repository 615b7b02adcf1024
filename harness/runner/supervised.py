"""One run in a fresh worker process on this machine, supervised from start to record.

The worker gets the thread environment before it starts, its output goes to files, progress
comes back over a pipe (checked in ``progress_events``), the result over an unlinked file; at the
timeout the worker is killed, and when it ends so is everything it started. What it reports is
kept only if it describes the run it was given and could have happened. Local runs, Dask workers
and ``verify`` all go through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from harness import backends
from harness.data import DataFiles
from harness.results.model import InvalidFile, RunRecord
from harness.results.store import MAX_FILE_BYTES, parse_bounded
from harness.runner import machine_state, processes
from harness.runner.progress_events import ProgressEvents
from harness.runner.session import timestamp
from harness.runner.threads import thread_env
from harness.work.plan import Plan

ERROR_TAIL_CHARS = 4000


def supervised_run(
    identity: RunRecord,
    files: DataFiles,
    plan: Plan,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> RunRecord:
    """One run in a fresh worker process on this machine, from its identity to its record.

    ``identity`` says what to run and how (backend, threads, flags, timeout, CPUs); the result
    is the worker's record if it is credible (else the identity, failed), with the machine state
    before and after and how the run ended.
    """
    record = replace(identity, started_at=timestamp(), **machine_state.before_run())
    # A scratch directory of its own per run: whatever a backend does to it stays there.
    scratch = processes.scratch_dir()
    try:
        plan_path = scratch / "plan.npz"
        plan.save(plan_path)
        job = {
            "record": record.to_json(),
            "backend_target": record.backend_target,
            "data": files.to_json(),
            "plan_path": str(plan_path),
            "profile": record.profile,
            # The float64 reference each run's first call is proven against.
            "reference_target": backends.reference_target(),
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
    if record.follows_batch_stream and not (record.proof and record.proof["passed"]):
        return "status ok without a passing proof of its first call"
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
    record.exit_code, record.finished_at = result.exit_code, timestamp()
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
