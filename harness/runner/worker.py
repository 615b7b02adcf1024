"""One run in a fresh process: ``python -m harness.runner.worker JOB.json RESULT_FD``.

The runner sets the thread variables in this process's environment before it starts, so every
library sees them at import. Only ``train_steps`` is timed (wall with perf_counter, CPU as
user+system of all threads of this process); data loading, setup and evaluation are not. The
job carries the run's record with its identity filled in; the worker fills in what it measures,
as it goes, and writes the record to RESULT_FD, also when the backend raises or exits.

RESULT_FD is an unlinked file the runner opened: it is taken over, and made not inheritable,
before the backend is imported, and its name is nowhere in the job, so a backend cannot write
its own result by accident or by the obvious route. Before the backend runs, the worker makes
itself the subreaper of everything the backend starts, kills all of it when the run ends, and
kills itself past the job's timeout should its runner be gone.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import psutil

from harness import backends, data
from harness.requests import Target
from harness.results.model import RunRecord
from harness.results.store import dumps_json
from harness.results.target import time_to_target
from harness.runner import processes
from harness.runner.envinfo import gpu_env
from harness.runner.inputs import Handed, RunInputs, is_read_only_write, read_only_message
from harness.runner.returns import (
    BackendMisbehaved,
    accuracy,
    executed_work,
    mean_loss,
    phase_seconds,
)
from harness.spec import Spec, spec_from_dict
from harness.work import equivalence
from harness.work.plan import PARAM_NAMES, Plan


def _tree(process: psutil.Process) -> list[psutil.Process]:
    """The worker and its live descendants: a process backend's program works in a child."""
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def _cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for member in _tree(process):
        try:
            times = member.cpu_times()
        except psutil.Error:  # ended between the listing and the reading
            continue
        total += times.user + times.system
    return total


def _threads(process: psutil.Process) -> int:
    total = 0
    for member in _tree(process):
        try:
            total += member.num_threads()
        except psutil.Error:
            continue
    return total


def _close(backend: Any) -> None:
    """A backend that holds a process (the process protocol) ends it here, not as a stray."""
    if isinstance(backend, backends.Closes):
        backend.close()


def _load_inputs(job: dict[str, Any], spec: Spec, outcome: RunRecord | None = None) -> RunInputs:
    """The data, checked against the session's checksums here, and the plan: as handed over."""
    files = data.DataFiles.from_json(job["data"])
    started = time.perf_counter()
    dataset = data.load(files, spec.dtype)
    if outcome is not None:
        # Only now, with this worker's own check passed, may the record say the data verified.
        outcome.data = {
            **files.to_json(),
            "verified": files.verified,
            "checked_in_worker": True,
            "check_s": time.perf_counter() - started,
        }
    plan = Plan.load(Path(job["plan_path"]))
    return RunInputs(
        dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y, plan.init, plan.batches
    )


def execute(
    job: dict[str, Any],
    outcome: RunRecord,
    progress: TextIO | None,
    given: list[RunInputs],
) -> None:
    """Run the job, filling ``outcome`` as it goes so a failure keeps what was measured.

    ``given`` receives the run's inputs once loaded, for naming an input the backend wrote into.
    """

    def report(**event: Any) -> None:
        if progress is not None:
            progress.write(json.dumps(event) + "\n")
            progress.flush()

    from threadpoolctl import threadpool_info, threadpool_limits

    spec = spec_from_dict(outcome.spec)
    threads = outcome.threads
    target = Target.from_json(outcome.target) if outcome.target else None
    outcome.cpus_allowed = sorted(os.sched_getaffinity(0))
    cls = backends.load_class(job["backend_target"])
    outcome.backend_version = backends.version_of(cls)
    outcome.follows_batch_stream = backends.follows_batch_stream(cls)
    backend = cls()
    try:
        if isinstance(backend, backends.ConfiguresThreads):
            backend.configure_threads(threads)
        profiling = bool(job.get("profile")) and isinstance(backend, backends.Profiles)
        if profiling:
            backend.enable_profiling()
        elif job.get("profile"):
            outcome.phases_note = (
                f"{cls.__name__} does not profile (no Profiles hook): no phase times"
            )

        inputs = _load_inputs(job, spec, outcome)
        given.append(inputs)
        report(event="setup")
        started = time.perf_counter()
        backend.setup(spec, inputs.train_x, inputs.train_y, inputs.init)
        outcome.setup_time_s = time.perf_counter() - started
        if threads is not None:
            # Also caps pools loaded during setup that ignore the environment variables.
            threadpool_limits(limits=threads)
        # The thread pools as threadpoolctl saw them inside the worker, after the backend's setup.
        outcome.env = {**outcome.env, "blas": threadpool_info()}
        outcome.build_info = backends.build_info(backend)
        if str(outcome.build_info.get("device", "cpu")).lower() not in ("cpu", ""):
            outcome.env = {**outcome.env, "gpu": gpu_env()}  # the GPU this run used, as seen now

        process = psutil.Process()
        outcome.train_time_s, outcome.cpu_time_s, outcome.threads_observed = 0.0, 0.0, 0
        for start, end in spec.eval_spans():
            chunk = inputs.chunk(start, end)
            cpu_before = _cpu_seconds(process)
            wall_before = time.perf_counter()
            returned = backend.train_steps(chunk)
            wall = time.perf_counter() - wall_before
            outcome.cpu_time_s += _cpu_seconds(process) - cpu_before
            loss = mean_loss(returned)  # checked after the clock stops: not the backend's time
            outcome.train_time_s += wall
            outcome.cpu_util = (
                outcome.cpu_time_s / outcome.train_time_s if outcome.train_time_s else None
            )
            outcome.threads_observed = max(outcome.threads_observed, _threads(process))
            outcome.iterations_done = end
            outcome.final_loss = loss
            if not math.isfinite(loss):
                outcome.status = "diverged"
                outcome.error = f"loss became {loss} within iterations {start + 1}–{end}"
                return
            # Scored against the harness's own labels, never the ones the backend was handed.
            train_acc = accuracy(backend, inputs.train_x, inputs.own_train_y)
            test_acc = accuracy(backend, inputs.test_x, inputs.own_test_y)
            outcome.train_acc, outcome.test_acc = train_acc, test_acc
            outcome.curve.append(
                {
                    "iteration": end,
                    "train_time_s": outcome.train_time_s,
                    "train_acc": train_acc,
                    "test_acc": test_acc,
                    "loss": loss,
                }
            )
            if target is not None and outcome.time_to_target_s is None:
                outcome.time_to_target_s = time_to_target(outcome.curve[-1:], target)
            report(event="trained", iteration=end, test_acc=test_acc, loss=loss)

        # Read again: some facts (a process backend's protocol cost) exist only after training.
        outcome.build_info.update(backends.build_info(backend))
        if isinstance(backend, backends.DeclaresWork):
            declared = executed_work(backend.executed_work())
            outcome.algorithm, outcome.executed_gflop, outcome.skipped_work = declared
        if profiling:
            outcome.phases = phase_seconds(backend.phase_times())
            if isinstance(backend, backends.NotesPhases):
                outcome.phases_note = backend.phases_note
        _check_unchanged(inputs)
        params = backend.params()
        bad = [n for n in PARAM_NAMES if not np.all(np.isfinite(np.asarray(params[n])))]
        if bad:
            outcome.status = "diverged"
            outcome.error = f"parameters {', '.join(bad)} hold NaN or infinity after training"
            return
        outcome.status = "ok"
    finally:
        _close(backend)


def _check_unchanged(inputs: RunInputs) -> None:
    """Fail closed: inputs the backend changed (round the read-only flag) void what it did."""
    changed = inputs.changed()
    if changed:
        raise BackendMisbehaved(
            f"the backend changed its input {' and '.join(changed)} although it was handed over "
            "read-only (it went round the flag): what it computed is not the harness's job"
        )


def execute_verify(job: dict[str, Any], outcome: dict[str, Any], given: list[RunInputs]) -> None:
    """``harness verify``: the backend stepped against the float64 reference (harness.work)."""
    spec = spec_from_dict(job["spec"])
    cls = backends.load_class(job["backend_target"])
    backend = cls()
    try:
        if isinstance(backend, backends.ConfiguresThreads):
            backend.configure_threads(job["threads"])
        inputs = _load_inputs(job, spec)
        given.append(inputs)
        reference = backends.load_class(job["reference_target"])()
        # From the harness's own copies, before any of the backend's code sees its inputs.
        equivalence.setup_reference(
            reference, spec, inputs.train_x, inputs.own_train_y, inputs.own_init
        )
        backend.setup(spec, inputs.train_x, inputs.train_y, inputs.init)
        outcome["verify"] = equivalence.run_verification(
            backend,
            reference,
            spec,
            Plan(init=inputs.own_init, batches=inputs.own_batches),
            inputs.chunk,
            job["steps"],
            job["checkpoints"],
        )
        _check_unchanged(inputs)
        outcome["status"] = "ok"
    finally:
        _close(backend)


def _why(exc: BaseException, handed: Handed | None = None) -> str:
    """What a backend's exception means, in one line, then the traceback's tail."""
    if handed is not None and is_read_only_write(exc):
        head = read_only_message(exc, handed)
    elif isinstance(exc, SystemExit):
        head = f"the backend called sys.exit({exc.code!r}), which ends a run as failed"
    elif isinstance(exc, KeyboardInterrupt):
        head = "KeyboardInterrupt raised inside the backend"
    elif isinstance(exc, NotImplementedError):  # a scaffolded backend not filled in yet
        return f"not implemented: {exc}"
    else:
        head = f"{type(exc).__name__}: {exc}"
    return f"{head}\n{traceback.format_exc(limit=-8)}"


def _watchdog(deadline_s: float) -> None:
    """Past the deadline the runner would have killed this worker; if it is gone, do it here."""

    def expire() -> None:
        time.sleep(deadline_s)
        processes.kill_descendants()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=expire, name="harness-watchdog", daemon=True).start()


def main(argv: list[str]) -> int:
    # The result channel first: taken from the inherited descriptor, hidden from children.
    result_fd = int(argv[1])
    os.set_inheritable(result_fd, False)
    job = json.loads(Path(argv[0]).read_text())
    progress_fd = job.get("progress_fd")
    if progress_fd is not None:
        os.set_inheritable(progress_fd, False)
    progress = os.fdopen(progress_fd, "w") if progress_fd is not None else None
    processes.become_subreaper()
    # A folder of the run's own, removed after it: where a backend may put files it needs.
    # (the runner started this worker in it; relative writes land there too).
    os.environ["HARNESS_SCRATCH_DIR"] = os.getcwd()
    if job.get("timeout_s"):
        _watchdog(job["timeout_s"] + 10)
    verifying = job.get("mode") == "verify"
    record = None if verifying else RunRecord.from_json(job["record"])
    verdict: dict[str, Any] = {"status": "failed", "error": None}
    given: list[RunInputs] = []
    try:
        if record is None:
            execute_verify(job, verdict, given)
        else:
            execute(job, record, progress, given)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: every end is recorded
        verdict.update(status="failed", error=_why(exc, given[0].handed if given else None))
    finally:
        strays = processes.kill_descendants()
        # The worker's peak plus that of the largest process it waited for (a process
        # backend's program): both were alive at once.
        peak_rss = 1024 * sum(
            resource.getrusage(who).ru_maxrss
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        if record is not None:
            if verdict["error"] is not None:
                record.status, record.error = "failed", verdict["error"]
            record.peak_rss_bytes = peak_rss
            record.stray_processes = strays
        text = dumps_json(verdict if record is None else record.to_json()).encode()
        # Whatever a backend wrote to this descriptor by mistake is replaced, not appended to.
        os.ftruncate(result_fd, 0)
        os.pwrite(result_fd, text, 0)
        os.close(result_fd)
    status = verdict["status"] if record is None else record.status
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
