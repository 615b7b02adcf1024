"""One run in a fresh process: ``python -m harness.runner.worker JOB.json RESULT_FD``.

The runner sets the thread variables in this process's environment before it starts, so every
library sees them at import. ``train_steps`` (and the backend's ``synchronize``, and reading the
loss it returned) is the timed region: wall with perf_counter, CPU of the whole process tree
(harness.runner.clock). Every other call into the backend is timed too, as untimed work, and
the run shows that its training happened inside the timed region:
- its first call is short, and the parameters after it are proven against the float64
  reference (harness.work.proof): initial parameters, batches and steps as handed;
- after every call, the parameters read right after it must still be the same once the harness
  has evaluated and read them again: a change means training went on outside the timer (the
  run fails); a first read that costs more than the second means params() waited for work
  (the run is flagged, harness.runner.flags, as it is for CPU use over its thread budget).
The job carries the run's record with its identity filled in; the worker fills in what it
measures, as it goes, and writes the record to RESULT_FD, also when the backend raises or exits.

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

from harness import backends, data, hooks
from harness.requests import Target
from harness.results.model import RunRecord
from harness.results.store import dumps_json
from harness.results.target import time_to_target
from harness.runner import flags, processes
from harness.runner.clock import TreeClock, UntimedCalls
from harness.runner.envinfo import gpu_env
from harness.runner.inputs import Handed, RunInputs, is_read_only_write, read_only_message
from harness.runner.returns import (
    BackendMisbehaved,
    accuracy,
    check_settled,
    executed_work,
    mean_loss,
    params_snapshot,
    phase_seconds,
)
from harness.spec import Spec, spec_from_dict
from harness.work import equivalence
from harness.work.plan import PARAM_NAMES, Plan
from harness.work.proof import prove


def _close(backend: Any) -> None:
    """A backend that holds a process (the process protocol) ends it here, not as a stray."""
    if isinstance(backend, hooks.Closes):
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
    harness_threads: tuple[int, ...] = (),
) -> None:
    """Run the job, filling ``outcome`` as it goes so a failure keeps what was measured.

    ``given`` receives the run's inputs once loaded, for naming an input the backend wrote into.
    ``harness_threads`` are this process's threads that are not the backend's (the watchdog).
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
    clock = TreeClock(harness_threads)
    calls = UntimedCalls(clock)
    with calls.timing("other"):
        backend = cls()
    try:
        with calls.timing("other"):
            if isinstance(backend, hooks.ConfiguresThreads):
                backend.configure_threads(threads)
            profiling = bool(job.get("profile")) and isinstance(backend, hooks.Profiles)
            if profiling:
                backend.enable_profiling()
            elif job.get("profile"):
                outcome.phases_note = (
                    f"{cls.__name__} does not profile (no Profiles hook): no phase times"
                )

        inputs = _load_inputs(job, spec, outcome)
        given.append(inputs)
        report(event="setup")
        with calls.timing("setup") as took:
            backend.setup(spec, inputs.train_x, inputs.train_y, inputs.init)
        outcome.setup_time_s = took.wall_s
        if threads is not None:
            # Also caps pools loaded during setup that ignore the environment variables.
            threadpool_limits(limits=threads)
        # The thread pools as threadpoolctl saw them inside the worker, after the backend's setup.
        outcome.env = {**outcome.env, "blas": threadpool_info()}
        with calls.timing("other"):
            outcome.build_info = backends.build_info(backend)
        if str(outcome.build_info.get("device", "cpu")).lower() not in ("cpu", ""):
            outcome.env = {**outcome.env, "gpu": gpu_env()}  # the GPU this run used, as seen now

        outcome.train_time_s, outcome.cpu_time_s, outcome.threads_observed = 0.0, 0.0, 0
        outcome.untimed_excess_s = 0.0
        synchronizes = isinstance(backend, hooks.Synchronizes)
        evaluated_after = set(spec.eval_points())
        # A backend that draws its own batches cannot be proven against the harness's: its
        # calls are the evaluation spans, unsplit.
        spans = spec.train_spans() if outcome.follows_batch_stream else spec.eval_spans()
        if not outcome.follows_batch_stream:
            outcome.proof_note = "not proven: the backend draws its own batches"
        settled: dict[str, np.ndarray] = {}
        for start, end in spans:
            chunk = inputs.chunk(start, end)
            cpu_before = clock.start()
            wall_before = time.perf_counter()
            returned = backend.train_steps(chunk)
            if synchronizes:
                backend.synchronize()
            # Read inside the clock: a device scalar is only ready when the work behind it is.
            loss = mean_loss(returned)
            wall = time.perf_counter() - wall_before
            outcome.cpu_time_s += clock.stop() - cpu_before
            outcome.train_time_s += wall
            outcome.cpu_util = (
                outcome.cpu_time_s / outcome.train_time_s if outcome.train_time_s else None
            )
            outcome.threads_observed = max(outcome.threads_observed, clock.threads())
            outcome.iterations_done = end
            outcome.final_loss = loss
            if not math.isfinite(loss):
                outcome.status = "diverged"
                outcome.error = f"loss became {loss} within iterations {start + 1}–{end}"
                return
            with calls.timing("params") as first:
                returned_params = backend.params()
            after = params_snapshot(returned_params)
            if start == 0 and outcome.follows_batch_stream:
                proof = prove(
                    after,
                    backends.load_class(job["reference_target"])(),
                    spec,
                    inputs.train_x,
                    inputs.own_train_y,
                    inputs.own_init,
                    inputs.own_batches[start:end],
                )
                outcome.proof = proof.to_json()
                if not proof.passed:
                    _check_unchanged(inputs)  # a changed input is the more precise reason
                    raise BackendMisbehaved(proof.failure())
            if end in evaluated_after:
                # Scored against the harness's own labels, never the ones it was handed.
                with calls.timing("predict"):
                    train_acc = accuracy(backend, inputs.train_x, inputs.own_train_y)
                with calls.timing("predict"):
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
            with calls.timing("params") as again:
                returned_params = backend.params()
            settled = params_snapshot(returned_params)
            check_settled(after, settled, start, end)
            # Work that params() had to wait for costs its first call more than its second.
            outcome.untimed_excess_s += max(first.wall_s - again.wall_s, 0.0)
            outcome.untimed = calls.to_json()

        with calls.timing("other"):
            # Read again: some facts (a process backend's protocol cost) exist only now.
            outcome.build_info.update(backends.build_info(backend))
            if isinstance(backend, hooks.DeclaresWork):
                declared = executed_work(backend.executed_work())
                outcome.algorithm, outcome.executed_gflop, outcome.skipped_work = declared
            if profiling:
                outcome.phases = phase_seconds(backend.phase_times())
                if isinstance(backend, hooks.NotesPhases):
                    outcome.phases_note = backend.phases_note
        outcome.untimed = calls.to_json()
        _check_unchanged(inputs)
        bad = [n for n in PARAM_NAMES if not np.all(np.isfinite(settled[n]))]
        if bad:
            outcome.status = "diverged"
            outcome.error = f"parameters {', '.join(bad)} hold NaN or infinity after training"
            return
        outcome.cpu_budget = flags.cpu_budget(threads)
        outcome.flagged = flags.flagged(outcome, spec, inputs.train_x.shape[1])
        outcome.status = "ok"
    finally:
        with calls.timing("other"):
            _close(backend)
        outcome.untimed = calls.to_json()


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
        if isinstance(backend, hooks.ConfiguresThreads):
            backend.configure_threads(job["threads"])
        inputs = _load_inputs(job, spec)
        given.append(inputs)
        reference = backends.load_class(job["reference_target"])()
        # From the harness's own copies, before any of the backend's code sees its inputs.
        equivalence.setup_reference(
            reference, spec, inputs.train_x, inputs.own_train_y, inputs.own_init
        )
        backend.setup(spec, inputs.train_x, inputs.train_y, inputs.init)
        # The calls a run of this spec makes, within verify's steps.
        spans = [(start, end) for start, end in spec.train_spans() if end <= job["steps"]]
        verdict = equivalence.run_verification(
            backend,
            reference,
            spec,
            Plan(init=inputs.own_init, batches=inputs.own_batches),
            inputs.chunk,
            job["steps"],
            job["checkpoints"],
            spans,
        )
        reference_at = verdict.pop("reference_at")
        _close(backend)
        # A second instance, driven as a run drives it: several steps per call.
        backend = cls()
        if isinstance(backend, hooks.ConfiguresThreads):
            backend.configure_threads(job["threads"])
        backend.setup(spec, inputs.train_x, inputs.train_y, inputs.init)
        verdict["in_calls"] = equivalence.verify_in_chunks(
            backend, spec, inputs.chunk, spans, reference_at
        )
        outcome["verify"] = verdict
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


def _watchdog(deadline_s: float) -> int:
    """Past the deadline the runner would have killed this worker; if it is gone, do it here.
    Returns the watchdog thread's ident: its (idle) time is the harness's, not the backend's."""

    def expire() -> None:
        time.sleep(deadline_s)
        processes.kill_descendants()
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=expire, name="harness-watchdog", daemon=True)
    thread.start()
    assert thread.ident is not None
    return thread.ident


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
    harness_threads = (_watchdog(job["timeout_s"] + 10),) if job.get("timeout_s") else ()
    verifying = job.get("mode") == "verify"
    record = None if verifying else RunRecord.from_json(job["record"])
    verdict: dict[str, Any] = {"status": "failed", "error": None}
    given: list[RunInputs] = []
    try:
        if record is None:
            execute_verify(job, verdict, given)
        else:
            execute(job, record, progress, given, harness_threads)
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
