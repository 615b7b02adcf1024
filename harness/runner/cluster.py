"""The matrix on a Dask distributed cluster: one run at a time per worker machine, records home.

Each run is one Dask task that needs the resource ``bench=1``; workers started with
``--nthreads 1 --resources bench=1`` therefore take one run at a time. The task does on its
machine what the local executor does (``supervised.supervised_run``: a fresh harness worker
process with the thread environment, timeout and kill of descendants, the machine state before
the run), with the machine's own environment and GEMM rate in the record. The Dask worker only
launches and supervises it. Records come back to the machine that ran ``harness run`` and are
written there atomically as each arrives; progress events travel as Dask worker events.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import data
from harness.errors import HarnessError, RunsStopped
from harness.results.key import threads_label
from harness.results.model import RunRecord
from harness.runner.envinfo import session_env
from harness.runner.executor import EventCallback, RunJob
from harness.runner.items import pinned_cpus
from harness.runner.session import timestamp
from harness.runner.supervised import supervised_run
from harness.spec import spec_from_dict
from harness.work.plan import Plan, make_plan

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # connect() says what to install
    WorkerPlugin = object

INSTALL_HINT = "--cluster needs Dask's distributed package: pip install -e '.[cluster]'"
RESOURCES = {"bench": 1}
GEMM_PLUGIN = "harness-gemm-rates"
_LOCAL = re.compile(r"local(?::(\d+))?")


class ClusterStalled(RunsStopped):
    """No worker able to take a run has been in the cluster for the allowed wait."""

    waiting_for = "workers are"


class SchedulerLost(RunsStopped):
    """The Dask scheduler stopped answering; the runs in flight were recorded as lost."""

    waiting_for = "the scheduler is"


def _ask(call: Callable[[], Any]) -> Any:
    """A call to the scheduler; any failure of it (connection closed, futures cancelled with
    the connection, a timeout) means the scheduler is gone."""
    try:
        return call()
    except Exception as exc:  # Dask's own words run to many lines; its type says enough
        raise SchedulerLost(f"lost the Dask scheduler ({type(exc).__name__})") from None


def connect(address: str, warn: Callable[[str], None]) -> Any:
    """A Dask client for ``tcp://host:port`` or ``local[:N]`` (a LocalCluster of N processes)."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise HarnessError(INSTALL_HINT) from None
    # Dask logs its reconnection attempts with tracebacks; the harness says what happened itself
    # (a lost worker or scheduler is a lost record and a resume line).
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name.partition(".")[0] == "distributed":  # Dask sets some children's levels itself
            logging.getLogger(name).setLevel(logging.CRITICAL)
    local = _LOCAL.fullmatch(address)
    if local:
        workers = int(local.group(1) or 1)
        if workers < 1:
            raise HarnessError("--cluster local:N needs N ≥ 1 worker processes")
        warn(
            f"--cluster {address}: {workers} worker process(es) on this machine, sharing it with "
            "each other and with the harness: runs that overlap disturb each other's timings. "
            "Use it to try the cluster out; measure on one worker per machine."
        )
        # A lost worker fails its run (recorded) instead of the scheduler retrying it elsewhere.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                resources=dict(RESOURCES),
                dashboard_address=None,
            )
        return Client(cluster)
    if not re.fullmatch(r"(tcp|tls|inproc|ws|wss)://\S+", address):
        raise HarnessError(
            f"--cluster {address!r}: give a Dask scheduler address (tcp://HOST:8786) or "
            "local / local:N"
        )
    try:
        _refused_at_once(address)
        return Client(address, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise HarnessError(
            f"--cluster {address}: no Dask scheduler answered ({exc}); start one with "
            "'dask scheduler', or try --cluster local"
        ) from None


def _refused_at_once(address: str) -> None:
    """A TCP address where nothing listens refuses at once; Dask's client would retry for its
    whole timeout first. Raises ConnectionRefusedError then; anything else is left to Dask."""
    found = re.fullmatch(r"tcp://\[?([^\]]+?)\]?:(\d+)", address)
    if found is None:
        return
    try:
        socket.create_connection((found.group(1), int(found.group(2))), timeout=3).close()
    except ConnectionRefusedError:
        raise
    except OSError:
        return


class GemmRates(WorkerPlugin):
    """A Dask worker plugin: the machine's GEMM rates, measured at its first run and kept."""

    name = GEMM_PLUGIN

    def __init__(self, thread_counts: Sequence[int | None]) -> None:
        self.thread_counts = list(thread_counts)
        self.env: dict[str, Any] | None = None
        self.lock = threading.Lock()

    def rates(self) -> dict[str, Any]:
        from harness.runner.gemm_rate import measure_gemm_rates

        with self.lock:
            if self.env is None:
                self.env = measure_gemm_rates(self.thread_counts)
            return self.env

    def __getstate__(self) -> dict[str, Any]:
        return {"thread_counts": self.thread_counts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["thread_counts"])


@dataclass(frozen=True)
class RemoteJob:
    """What a run needs on the worker machine; plain data, pickled by Dask."""

    record: dict[str, Any]  # the run's identity (backend, threads, flags, timeout, …)
    data: dict[str, Any]  # the session's data files; the worker finds its own copy
    topic: str  # where progress events go
    gemm: bool  # measure the machine's GEMM rate (once per worker)


def remote_run(job: RemoteJob) -> dict[str, Any]:
    """Runs on a Dask worker: one run, supervised as locally; returns the record as JSON."""
    from distributed import get_worker

    worker = get_worker()
    record = RunRecord.from_json(job.record)

    def publish(event: dict[str, Any]) -> None:
        worker.log_event(job.topic, {**event, "order": record.order})

    env = session_env()
    if job.gemm and GEMM_PLUGIN in worker.plugins:
        env.update(worker.plugins[GEMM_PLUGIN].rates())
    record.env = env
    record.gemm_rate_gflops = (env.get("gemm_rates") or {}).get(threads_label(record.threads))
    record.pinned_cpus = pinned_cpus(record.threads) if record.pin else None
    publish({"event": "started", "worker": worker.address, "host": env["hostname"]})
    files, problem = _find_data(job.data)
    if files is None:
        return _failed(record, f"no usable data on {env['hostname']}: {problem}").to_json()
    plan = _plan_for(record, files)
    if plan is None:
        return _failed(
            record,
            f"{env['hostname']} derives another plan from the seed than the session's (another "
            "version of the harness or NumPy there?); install the same versions",
        ).to_json()
    return supervised_run(record, files, plan, publish).to_json()


def _plan_for(record: RunRecord, files: data.DataFiles) -> Plan | None:
    """The run's plan, derived here from the seed as --resume does rather than shipped
    (megabytes per run); None if its hashes are not the session's."""
    plan = make_plan(spec_from_dict(record.spec), files.n_features, data.N_CLASSES, files.n_train)
    if (plan.init_sha256, plan.batches_sha256) != (record.init_sha256, record.batches_sha256):
        return None
    return plan


def _find_data(session_data: dict[str, Any]) -> tuple[data.DataFiles | None, str]:
    """This machine's copy of the session's data, with the session's checksums.

    First the session's own folder, if this machine has that path (a local cluster, a shared
    file system); then HARNESS_DATA_DIR, the cache, a download. Returns (files, "") or
    (None, why none would do).
    """
    folder = Path(session_data["paths"]["train_images"]).parent
    problem = ""
    for where in ([folder] if folder.is_dir() else []) + [None]:
        try:
            files = data.locate(session_data["dataset"], where)
        except HarnessError as exc:
            problem = str(exc)
            continue
        if files.sha256 == session_data["sha256"]:
            return files, ""
        problem = (
            f"the files in {files.paths['train_images'].parent} differ from the session's "
            f"(SHA-256 mismatch); point {data.DATA_DIR_ENV} there at the same files"
        )
    return None, problem


def _failed(identity: RunRecord, error: str) -> RunRecord:
    return replace(identity, status="failed", error=error, finished_at=timestamp())


def _lost(identity: RunRecord, error: str) -> RunRecord:
    """A run that ended with its machine, its Dask worker or the scheduler, not by its backend's
    doing: ``run --resume`` redoes it."""
    return replace(identity, status="lost", error=error, finished_at=timestamp())


@dataclass
class DaskExecutor:
    """Every run submitted at once; one at a time per worker machine (resource ``bench=1``)."""

    client: Any
    address: str
    measure_gemm_rate: bool = True
    wait_s: float = 120.0  # without any worker able to run, give up after this long
    remote: bool = True

    def environment(self, thread_counts: Sequence[int | None]) -> dict[str, Any]:
        # The session's; each record gets its own machine's (and its GEMM rates) on the worker.
        return {**session_env(), "cluster": self.address}

    def run(
        self, jobs: Sequence[RunJob], on_event: EventCallback
    ) -> Iterator[tuple[RunJob, RunRecord]]:
        """Submit every run; yield each record as it comes home; fail the runs of lost workers.

        Stops with ClusterStalled when no worker offering ``bench`` has been there for
        ``wait_s``, and with SchedulerLost (after yielding the runs in flight as lost) when
        the scheduler goes.
        """
        from distributed import wait

        if not jobs:
            return
        client = self.client
        session = jobs[0].identity.session
        topic = f"harness-{session}"
        by_order = {job.item.order: job for job in jobs}
        running_on: dict[int, str] = {}  # run order → the worker address it started on

        def relay(event: Any) -> None:
            _, message = event
            job = by_order.get(message.get("order"))
            if job is None:
                return
            if message.get("event") == "started":
                running_on[job.item.order] = message["worker"]
            on_event(job.item, message)

        client.subscribe_topic(topic, relay)
        if self.measure_gemm_rate:
            thread_counts = sorted({job.item.threads for job in jobs}, key=lambda t: t or 0)
            client.register_plugin(GemmRates(thread_counts), name=GEMM_PLUGIN)
        futures = {}
        for rank, job in enumerate(jobs):
            remote_job = RemoteJob(
                job.identity.to_json(), job.files.to_json(), topic, self.measure_gemm_rate
            )
            future = client.submit(
                remote_run,
                remote_job,
                key=f"harness-{session}-run-{job.item.order}",
                resources=dict(RESOURCES),
                pure=False,
                priority=len(jobs) - rank,  # earlier in the matrix, sooner on a worker
            )
            futures[future] = job

        def wait_a_second() -> None:
            with contextlib.suppress(TimeoutError):  # a second without an end is no error
                wait(list(pending), timeout=1, return_when="FIRST_COMPLETED")

        pending = set(futures)
        idle_since: float | None = None
        try:
            while pending:
                _ask(wait_a_second)
                workers = _ask(lambda: client.scheduler_info(n_workers=-1)["workers"])
                for future in [f for f in pending if f.done()]:
                    pending.discard(future)
                    job = futures[future]
                    yield job, _collect(future, job.identity)
                present = set(workers)
                for future in list(pending):
                    job = futures[future]
                    address = running_on.get(job.item.order)
                    if address is not None and address not in present:
                        future.cancel()
                        pending.discard(future)
                        why = f"worker lost: {address} left the cluster during the run"
                        yield job, _lost(job.identity, why)
                able = [w for w in workers.values() if w.get("resources", {}).get("bench", 0) >= 1]
                if able or not pending:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > self.wait_s:
                    raise ClusterStalled(
                        f"no Dask worker with resources bench=1 for {self.wait_s:g} s; "
                        f"{len(pending)} run(s) not done"
                    )
        except SchedulerLost as exc:
            in_flight = [futures[f] for f in pending if futures[f].item.order in running_on]
            for job in in_flight:
                address = running_on[job.item.order]
                yield job, _lost(job.identity, f"{exc} while the run was on {address}")
            raise SchedulerLost(
                f"{exc}; {len(in_flight)} run(s) in flight recorded as lost, "
                f"{len(pending) - len(in_flight)} not started"
            ) from None
        finally:
            # With the scheduler gone these fail too; there is nothing left to tidy there.
            with contextlib.suppress(Exception):
                for future in pending:
                    future.cancel()
                client.unsubscribe_topic(topic)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a lost scheduler cannot be said goodbye to
            self.client.close(timeout=5)


def _collect(future: Any, identity: RunRecord) -> RunRecord:
    """The record a finished task brought home, or a failed one saying why there is none."""
    try:
        return RunRecord.from_json(future.result())
    except Exception as exc:  # the task's exception, re-raised here; never ends the matrix
        name = type(exc).__name__
        if name == "KilledWorker":
            return _lost(identity, f"worker lost: {exc}")
        return _failed(identity, f"the run could not be done on the Dask worker: {name}: {exc}")
