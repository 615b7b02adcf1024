"""One run in a fresh process: ``python -m harness.runner.worker JOB.json``.

The runner sets the thread variables in this process's environment before it starts, so every
library sees them at import. Only ``train_steps`` is timed (wall with perf_counter, CPU as
user+system of all threads of this process); data loading, setup and evaluation are not. The
job carries the run's record with its identity filled in; the worker fills in what it measures,
as it goes, and writes the record atomically to the job's result path, also when the backend
raises.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import psutil

from harness import backends, data, verify
from harness.results.model import RunRecord
from harness.results.store import write_json_atomic
from harness.runner.plan import PARAM_NAMES, Plan
from harness.spec import spec_from_dict


class BackendMisbehaved(Exception):
    """The backend returned something the protocol does not allow."""


def accuracy(backend: Any, x: np.ndarray, y: np.ndarray) -> float:
    predicted = np.asarray(backend.predict(x))
    if predicted.shape != y.shape or not np.issubdtype(predicted.dtype, np.integer):
        raise BackendMisbehaved(
            f"predict returned {predicted.dtype} of shape {predicted.shape}; "
            f"expected integer class ids of shape {y.shape}"
        )
    return float(np.mean(predicted == y))


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def execute(job: dict[str, Any], outcome: RunRecord, progress: TextIO | None) -> None:
    """Run the job, filling ``outcome`` as it goes so a failure keeps what was measured."""

    def report(**event: Any) -> None:
        if progress is not None:
            progress.write(json.dumps(event) + "\n")
            progress.flush()

    from threadpoolctl import threadpool_info, threadpool_limits

    spec = spec_from_dict(outcome.spec)
    threads = outcome.threads
    outcome.cpus_allowed = sorted(os.sched_getaffinity(0))
    cls = backends.load_class(job["backend_target"])
    outcome.backend_version = str(backends.call_optional(cls, "version", "?"))
    outcome.follows_batch_stream = bool(getattr(cls, "follows_batch_stream", True))
    backend = cls()
    configure = getattr(backend, "configure_threads", None)
    if callable(configure):
        configure(threads)
    profiling = False
    if job.get("profile"):
        enable = getattr(backend, "enable_profiling", None)
        profiling = callable(enable)
        if profiling:
            enable()
        else:
            outcome.phases_note = f"{cls.__name__} has no enable_profiling(): no phase times"

    dataset = data.load(data.DataFiles.from_json(job["data"]), spec.dtype)
    plan = Plan.load(Path(job["plan_path"]))
    report(event="setup")
    started = time.perf_counter()
    backend.setup(spec, dataset.train_x, dataset.train_y, plan.init)
    outcome.setup_time_s = time.perf_counter() - started
    if threads is not None:
        # Also caps pools loaded during setup that ignore the environment variables.
        threadpool_limits(limits=threads)
    # The thread pools as threadpoolctl saw them inside the worker, after the backend's setup.
    outcome.env = {**outcome.env, "blas": threadpool_info()}
    outcome.build_info = dict(backends.call_optional(backend, "build_info", {}))

    process = psutil.Process()
    outcome.train_time_s, outcome.cpu_time_s, outcome.threads_observed = 0.0, 0.0, 0
    for start, end in spec.eval_spans():
        chunk = plan.batches[start:end]
        cpu_before = _cpu_seconds(process)
        wall_before = time.perf_counter()
        loss = float(backend.train_steps(chunk))
        wall = time.perf_counter() - wall_before
        outcome.cpu_time_s += _cpu_seconds(process) - cpu_before
        outcome.train_time_s += wall
        outcome.cpu_util = (
            outcome.cpu_time_s / outcome.train_time_s if outcome.train_time_s else None
        )
        outcome.threads_observed = max(outcome.threads_observed, process.num_threads())
        outcome.iterations_done = end
        outcome.final_loss = loss
        if not math.isfinite(loss):
            outcome.status = "diverged"
            outcome.error = f"loss became {loss} within iterations {start + 1}–{end}"
            return
        train_acc = accuracy(backend, dataset.train_x, dataset.train_y)
        test_acc = accuracy(backend, dataset.test_x, dataset.test_y)
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
        report(event="trained", iteration=end, test_acc=test_acc, loss=loss)

    if profiling and callable(getattr(backend, "phase_times", None)):
        outcome.phases = {k: float(v) for k, v in backend.phase_times().items()}
        outcome.phases_note = getattr(backend, "phases_note", None)
    params = backend.params()
    bad = [n for n in PARAM_NAMES if not np.all(np.isfinite(np.asarray(params[n])))]
    if bad:
        outcome.status = "diverged"
        outcome.error = f"parameters {', '.join(bad)} hold NaN or infinity after training"
        return
    outcome.status = "ok"


def execute_verify(job: dict[str, Any], outcome: dict[str, Any]) -> None:
    """``harness verify``: step the backend against the float64 reference; see harness.verify."""
    spec = spec_from_dict(job["spec"])
    cls = backends.load_class(job["backend_target"])
    backend = cls()
    configure = getattr(backend, "configure_threads", None)
    if callable(configure):
        configure(job["threads"])
    dataset = data.load(data.DataFiles.from_json(job["data"]), spec.dtype)
    plan = Plan.load(Path(job["plan_path"]))
    backend.setup(spec, dataset.train_x, dataset.train_y, plan.init)
    reference = backends.load_class(job["reference_target"])()
    outcome["verify"] = verify.run_verification(
        backend,
        reference,
        spec,
        dataset.train_x,
        dataset.train_y,
        plan,
        job["steps"],
        job["checkpoints"],
    )
    outcome["status"] = "ok"


def main(argv: list[str]) -> int:
    job_path = Path(argv[0])
    job = json.loads(job_path.read_text())
    progress_fd = job.get("progress_fd")
    progress = os.fdopen(progress_fd, "w") if progress_fd is not None else None
    verifying = job.get("mode") == "verify"
    record = None if verifying else RunRecord.from_json(job["record"])
    verdict: dict[str, Any] = {"status": "failed", "error": None}
    try:
        if record is None:
            execute_verify(job, verdict)
        else:
            execute(job, record, progress)
    except NotImplementedError as exc:  # a scaffolded backend not filled in yet
        verdict.update(status="failed", error=f"not implemented: {exc}")
    except Exception as exc:
        detail = traceback.format_exc(limit=-8)
        verdict.update(status="failed", error=f"{type(exc).__name__}: {exc}\n{detail}")
    finally:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if record is None:
            write_json_atomic(Path(job["result_path"]), verdict)
        else:
            if verdict["error"] is not None:
                record.status, record.error = "failed", verdict["error"]
            record.peak_rss_bytes = peak_rss
            write_json_atomic(Path(job["result_path"]), record.to_json())
    status = verdict["status"] if record is None else record.status
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
