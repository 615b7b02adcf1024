"""One run in a fresh process: ``python -m harness.worker JOB.json``.

The runner sets the thread variables in this process's environment before it starts, so every
library sees them at import. Only ``train_steps`` is timed (wall with perf_counter, CPU as
user+system of all threads of this process); data loading, setup and evaluation are not. The
outcome is written atomically to the job's result path, also when the backend raises.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import psutil

from harness import backends, data, verify
from harness.plan import PARAM_NAMES, Plan
from harness.records import write_json_atomic
from harness.spec import spec_from_dict


class BackendMisbehaved(Exception):
    """The backend returned something the protocol does not allow."""


@dataclass
class Outcome:
    status: str = "failed"
    error: str | None = None
    backend_version: str | None = None
    follows_batch_stream: bool = True
    setup_time_s: float | None = None
    train_time_s: float = 0.0
    cpu_time_s: float = 0.0
    peak_rss_bytes: int | None = None
    threads_observed: int = 0
    train_acc: float | None = None
    test_acc: float | None = None
    final_loss: float | None = None
    iterations_done: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    build_info: dict[str, Any] = field(default_factory=dict)
    blas: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    phases: dict[str, float] | None = None  # --profile: seconds per phase of the step
    phases_note: str | None = None
    cpus_allowed: list[int] = field(default_factory=lambda: sorted(os.sched_getaffinity(0)))


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


def execute(job: dict[str, Any], outcome: Outcome, progress: TextIO | None) -> None:
    """Run the job, filling ``outcome`` as it goes so a failure keeps what was measured."""

    def report(**event: Any) -> None:
        if progress is not None:
            progress.write(json.dumps(event) + "\n")
            progress.flush()

    from threadpoolctl import threadpool_info, threadpool_limits

    spec = spec_from_dict(job["spec"])
    threads = job["threads"]
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
    outcome.blas = threadpool_info()
    outcome.build_info = dict(backends.call_optional(backend, "build_info", {}))

    process = psutil.Process()
    for start, end in spec.eval_spans():
        chunk = plan.batches[start:end]
        cpu_before = _cpu_seconds(process)
        wall_before = time.perf_counter()
        loss = float(backend.train_steps(chunk))
        wall = time.perf_counter() - wall_before
        outcome.cpu_time_s += _cpu_seconds(process) - cpu_before
        outcome.train_time_s += wall
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


def execute_verify(job: dict[str, Any], outcome: Outcome) -> None:
    """``harness verify``: step the backend against the float64 reference; see harness.verify."""
    spec = spec_from_dict(job["spec"])
    cls = backends.load_class(job["backend_target"])
    outcome.backend_version = str(backends.call_optional(cls, "version", "?"))
    backend = cls()
    configure = getattr(backend, "configure_threads", None)
    if callable(configure):
        configure(job["threads"])
    dataset = data.load(data.DataFiles.from_json(job["data"]), spec.dtype)
    plan = Plan.load(Path(job["plan_path"]))
    backend.setup(spec, dataset.train_x, dataset.train_y, plan.init)
    reference = backends.load_class(job["reference_target"])()
    outcome.verify = verify.run_verification(
        backend,
        reference,
        spec,
        dataset.train_x,
        dataset.train_y,
        plan,
        job["steps"],
        job["checkpoints"],
    )
    outcome.status = "ok"


def main(argv: list[str]) -> int:
    job_path = Path(argv[0])
    job = json.loads(job_path.read_text())
    progress_fd = job.get("progress_fd")
    progress = os.fdopen(progress_fd, "w") if progress_fd is not None else None
    outcome = Outcome()
    try:
        if job.get("mode") == "verify":
            execute_verify(job, outcome)
        else:
            execute(job, outcome, progress)
    except NotImplementedError as exc:  # a scaffolded backend not filled in yet
        outcome.status = "failed"
        outcome.error = f"not implemented: {exc}"
    except Exception as exc:
        outcome.status = "failed"
        detail = traceback.format_exc(limit=-8)
        outcome.error = f"{type(exc).__name__}: {exc}\n{detail}"
    finally:
        outcome.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        write_json_atomic(Path(job["result_path"]), outcome.__dict__)
    return 0 if outcome.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
