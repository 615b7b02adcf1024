"""Runs a planned matrix through an executor: this machine, or a Dask cluster.

An executor takes run jobs and yields a record for each as it ends; both executors do a run the
same way (``supervised.supervised_run``, in a fresh worker process on the machine that runs it).
``execute`` writes a new session's session.json (its folder made first with
``session.create_session``, so an unusable results folder fails before anything is measured) and
stores each record atomically before anyone hears of it.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.data import DataFiles
from harness.results.model import RunRecord
from harness.runner.envinfo import session_env
from harness.runner.items import RunItem
from harness.runner.matrix import Matrix
from harness.runner.session import store_record, write_session_file
from harness.runner.supervised import supervised_run
from harness.work.plan import Plan

# (item, event): "started" (with "host"), "setup", or "trained" (iteration, test_acc, loss).
EventCallback = Callable[[RunItem, dict[str, Any]], None]


@dataclass(frozen=True)
class RunJob:
    """One run, ready to go anywhere: its identity record, the data and its cell's plan."""

    item: RunItem
    identity: RunRecord
    files: DataFiles
    plan: Plan


class Executor(Protocol):
    """Where the runs of a matrix happen."""

    # Records come from other machines: progress and outcome lines name the host.
    remote: bool
    # Measure NumPy's GEMM rate per thread count (here at the start, or once per worker machine).
    measure_gemm_rate: bool

    def environment(self, thread_counts: Sequence[int | None]) -> dict[str, Any]:
        """The session's environment (and, where measured here, the GEMM rates)."""
        ...

    def run(
        self, jobs: Sequence[RunJob], on_event: EventCallback
    ) -> Iterator[tuple[RunJob, RunRecord]]:
        """Do every job; yield each with its record as it ends, in any order."""
        ...

    def close(self) -> None:
        """Let go of what the executor holds (a cluster connection)."""
        ...


@dataclass
class LocalExecutor:
    """One run at a time on this machine, in matrix order."""

    measure_gemm_rate: bool = True
    remote: bool = False

    def environment(self, thread_counts: Sequence[int | None]) -> dict[str, Any]:
        env = session_env()
        if self.measure_gemm_rate:
            from harness.runner.gemm_rate import measure_gemm_rates

            env.update(measure_gemm_rates(set(thread_counts)))
        return env

    def run(
        self, jobs: Sequence[RunJob], on_event: EventCallback
    ) -> Iterator[tuple[RunJob, RunRecord]]:
        host = socket.gethostname()
        for job in jobs:
            on_event(job.item, {"event": "started", "host": host})
            relay = functools.partial(on_event, job.item)
            yield job, supervised_run(job.identity, job.files, job.plan, relay)

    def close(self) -> None:
        pass


def execute(
    matrix: Matrix,
    executor: Executor,
    env: dict[str, Any],
    on_event: EventCallback,
    on_record: Callable[[RunItem, RunRecord], None],
) -> None:
    """Run the matrix's items; each record is on disk before ``on_record`` hears of it."""
    if matrix.resumed is None:
        write_session_file(matrix.session_dir, matrix.session_record(env))
    jobs = [
        RunJob(item, matrix.identity(item, env), matrix.job.files, matrix.cell(item)[1])
        for item in matrix.items
    ]
    for job, record in executor.run(jobs, on_event):
        if not job.item.warmup:  # a warm-up is run, then discarded
            store_record(matrix.session_dir, record)
        on_record(job.item, record)
