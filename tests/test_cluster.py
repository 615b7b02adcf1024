"""run --cluster against a real Dask scheduler and workers, started here as subprocesses."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TINY, harness

pytest.importorskip("distributed", reason="the [cluster] extra is not installed")

DASK = str(Path(sys.executable).with_name("dask"))


class Cluster:
    """A scheduler on localhost and the workers started on it; all killed at the end."""

    def __init__(self, folder: Path, data_dir: Path) -> None:
        self.folder, self.data_dir = folder, data_dir
        self.processes: list[subprocess.Popen] = []
        file = folder / "scheduler.json"
        self.scheduler = self._start(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(file),
            ],
        )
        self.address = json.loads(_wait_for(file).read_text())["address"]

    def _start(self, command: list[str], **env: str) -> subprocess.Popen:
        log = open(self.folder / f"dask-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            command, stdout=log, stderr=log, env={**os.environ, **env}, start_new_session=True
        )
        self.processes.append(process)
        return process

    def add_worker(self, **env: str) -> subprocess.Popen:
        """A worker started as the README says, with this machine's data; no nanny revives it."""
        before = self.worker_count()
        worker = self._start(
            [
                DASK,
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--resources",
                "bench=1",
                "--no-dashboard",
                "--no-nanny",
            ],
            HARNESS_DATA_DIR=str(self.data_dir),
            **env,
        )
        deadline = time.monotonic() + 60
        while self.worker_count() <= before:
            assert time.monotonic() < deadline, "the Dask worker did not join"
            time.sleep(0.2)
        return worker

    def worker_count(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=20) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"])

    def close(self) -> None:
        for process in reversed(self.processes):
            with _ignore_gone():
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class _ignore_gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> bool:
        return kind is ProcessLookupError


def _wait_for(path: Path, seconds: float = 60) -> Path:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.stat().st_size):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path


@pytest.fixture
def cluster(tmp_path, idx_dir) -> Iterator[Cluster]:
    started = Cluster(tmp_path, idx_dir)
    try:
        yield started
    finally:
        started.close()


def numpy_on(address: str, idx_dir: Path, results: Path, *more: str) -> subprocess.CompletedProcess:
    """A tiny numpy run on the cluster at ``address``; ``more`` are further CLI arguments."""
    return harness(
        "run",
        "--backend",
        "numpy",
        *TINY,
        "--data-dir",
        str(idx_dir),
        "--results-dir",
        str(results),
        "--cluster",
        address,
        *more,
    )


def session_records(results: Path) -> tuple[Path, dict[str, dict]]:
    (session,) = results.iterdir()
    records = {p.stem: json.loads(p.read_text()) for p in session.glob("*-r*.json")}
    return session, records


def hangs_once_on(cluster: Cluster, idx_dir: Path, results: Path, *more: str) -> subprocess.Popen:
    """numpy and hangs-once, 2 repeats each, on the cluster: numpy runs first, hangs-once hangs."""
    command = [sys.executable, "-m", "harness", "run", "--backend", "numpy"]
    command += ["--backend-path", "tests.fake_backends:HangsOnce", *TINY, "--repeats", "2"]
    command += ["--data-dir", str(idx_dir), "--results-dir", str(results)]
    command += ["--cluster", cluster.address, *more]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cluster_records_equal_a_local_runs_in_work_done(cluster, idx_dir, tmp_path):
    pytest.importorskip("mlp_bench_rust", reason="the Rust extension is not built")
    cluster.add_worker()
    common = [
        "--backend",
        "numpy",
        "--backend",
        "rust",
        *TINY,
        "--repeats",
        "2",
        "--data-dir",
        str(idx_dir),
    ]
    # The GEMM rate is measured (no --no-gemm-rate): by each worker, on its machine.
    measured = [arg for arg in common if arg != "--no-gemm-rate"]
    remote = harness(
        "run", *measured, "--cluster", cluster.address, "--results-dir", str(tmp_path / "remote")
    )
    assert remote.returncode == 0, remote.stderr
    local = harness("run", *common, "--results-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    session, on_cluster = session_records(tmp_path / "remote")
    _, here = session_records(tmp_path / "local")
    assert sorted(on_cluster) == sorted(here) and len(here) == 4
    for name, record in on_cluster.items():
        assert record["status"] == "ok"
        for field in ("init_sha256", "batches_sha256", "train_acc", "test_acc", "final_loss"):
            assert record[field] == here[name][field], (name, field)
        assert record["env"]["hostname"] == platform.node()  # the machine it ran on
        assert record["env"]["gemm_rates"]  # measured on that machine, by its worker
    session_env = json.loads((session / "session.json").read_text())["env"]
    assert session_env["cluster"] == cluster.address
    assert "@ " + platform.node() in remote.stderr  # progress names where each run ran


def test_a_killed_worker_loses_its_run_and_resume_redoes_it(cluster, idx_dir, tmp_path):
    marker = tmp_path / "hung"
    worker = cluster.add_worker(HANGS_ONCE_MARKER=str(marker))
    results = tmp_path / "results"
    run = hangs_once_on(cluster, idx_dir, results, "--cluster-wait", "4")
    _wait_for(marker, 120)  # hangs-once's first run is in flight on the worker
    os.killpg(worker.pid, signal.SIGKILL)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1, err
    assert "no Dask worker with resources bench=1 for 4 s" in err
    assert f"--resume {results}" in err and "Traceback" not in err
    session, records = session_records(results)
    lost = records["hangs-once-t1-r0"]
    assert lost["status"] == "lost" and lost["attempt"] == 1
    assert lost["error"].startswith("worker lost: tcp://")
    assert "left the cluster during the run" in lost["error"]
    assert records["numpy-t1-r0"]["status"] == "ok"
    assert len(records) == 2  # the second repeat never started

    cluster.add_worker(HANGS_ONCE_MARKER=str(marker))
    resumed = harness("run", "--resume", str(session), "--cluster", cluster.address)
    assert resumed.returncode == 0, resumed.stderr  # the lost run was redone, and ended ok
    assert "3 to go" in resumed.stderr  # the lost run and the two never started
    _, records = session_records(results)
    assert len(records) == 5  # the lost record stays, beside the attempt that redid it
    assert records["hangs-once-t1-r0"]["status"] == "lost"
    redone = records["hangs-once-t1-r0.attempt2"]
    assert redone["status"] == "ok" and redone["attempt"] == 2
    assert records["numpy-t1-r1"]["status"] == records["hangs-once-t1-r1"]["status"] == "ok"
    exported = harness("export", str(session), "--format", "json")
    rows = {row["key"]["backend"]: row for row in json.loads(exported.stdout)}
    assert rows["hangs-once"]["runs"] == rows["hangs-once"]["runs_ok"] == 2  # counted once
    assert "superseded: " in exported.stderr and "redone as hangs-once-t1-r0.attempt2" in (
        exported.stderr
    )


def test_a_lost_scheduler_fails_the_runs_in_flight_and_says_how_to_resume(
    cluster, idx_dir, tmp_path
):
    marker = tmp_path / "hung"
    cluster.add_worker(HANGS_ONCE_MARKER=str(marker))
    results = tmp_path / "results"
    run = hangs_once_on(cluster, idx_dir, results)
    _wait_for(marker, 120)  # numpy's first run is done, hangs-once's is in flight
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    _, err = run.communicate(timeout=180)
    assert run.returncode == 1, err
    assert "Traceback" not in err, err
    assert "lost the Dask scheduler" in err
    assert f"--resume {results}" in err and f"--cluster {cluster.address}" in err
    _, records = session_records(results)
    assert records["hangs-once-t1-r0"]["status"] == "lost"
    assert records["hangs-once-t1-r0"]["error"].startswith("lost the Dask scheduler")
    assert records["numpy-t1-r0"]["status"] == "ok"
    assert len(records) == 2  # the second repeats never started: left for --resume


def test_a_cluster_address_nobody_answers_is_one_line(tmp_path, idx_dir):
    result = numpy_on("tcp://127.0.0.1:9", idx_dir, tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --cluster tcp://127.0.0.1:9: no Dask scheduler answered")
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.glob("2*"))  # no session made for runs that cannot happen


def test_a_cluster_address_that_is_not_one_is_refused(tmp_path, idx_dir):
    result = numpy_on("somewhere", idx_dir, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --cluster 'somewhere': give a Dask scheduler address (tcp://HOST:8786) or "
        "local / local:N"
    )


def test_local_cluster_warns_and_runs(tmp_path, idx_dir):
    result = numpy_on("local:2", idx_dir, tmp_path / "r", "--repeats", "2")
    assert result.returncode == 0, result.stderr
    assert "runs that overlap disturb each other's timings" in result.stderr
    _, records = session_records(tmp_path / "r")
    assert [r["status"] for r in records.values()] == ["ok", "ok"]


@pytest.mark.slow
def test_the_issues_command_on_real_mnist(tmp_path, mnist_dir):
    """run --backend numpy --backend rust --quick --cluster tcp://…, against local, on real
    MNIST (the GEMM rate on a worker and repeats are the tiny-data test's, above)."""
    pytest.importorskip("mlp_bench_rust", reason="the Rust extension is not built")
    started = Cluster(tmp_path, mnist_dir)
    try:
        started.add_worker()
        common = [
            "--backend",
            "numpy",
            "--backend",
            "rust",
            "--quick",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--no-gemm-rate",
            "--data-dir",
            str(mnist_dir),
        ]
        remote = harness(
            "run", *common, "--cluster", started.address, "--results-dir", str(tmp_path / "remote")
        )
        assert remote.returncode == 0, remote.stderr
    finally:
        started.close()
    local = harness("run", *common, "--results-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    _, on_cluster = session_records(tmp_path / "remote")
    _, here = session_records(tmp_path / "local")
    assert sorted(on_cluster) == sorted(here) and len(here) == 2
    for name, record in on_cluster.items():
        for field in ("init_sha256", "batches_sha256", "train_acc", "test_acc"):
            assert record[field] == here[name][field], (name, field)
        assert record["env"]["hostname"] == platform.node()


def test_a_worker_finds_the_sessions_data_and_refuses_other_data(tmp_path, monkeypatch):
    """The session's folder if this machine has it; else HARNESS_DATA_DIR, checksums compared."""
    from harness import data
    from harness.runner.cluster import _find_data
    from tests.helpers import write_dataset

    ours = write_dataset(tmp_path / "ours")
    other = write_dataset(tmp_path / "other", n_train=200)  # another dataset, same layout
    session_data = data.locate("idx", ours).to_json()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(other))
    files, _ = _find_data(session_data)  # the session's folder wins over the environment
    assert files is not None and files.paths["train_images"].parent == ours

    moved = {
        **session_data,
        "paths": {
            k: str(tmp_path / "gone" / Path(v).name) for k, v in session_data["paths"].items()
        },
    }
    files, problem = _find_data(moved)
    assert files is None
    assert problem == (
        f"the files in {other} differ from the session's (SHA-256 mismatch); point "
        "HARNESS_DATA_DIR there at the same files"
    )


def test_a_worker_derives_the_sessions_plan_or_refuses(idx_dir):
    """The plan is made on the worker from the seed; only one with the session's hashes runs."""
    from dataclasses import replace

    from harness import data
    from harness.runner.cluster import _plan_for
    from harness.spec import Spec
    from harness.work.plan import make_plan
    from tests.helpers import run_record

    spec = Spec(dataset="idx", iterations=40, eval_every=20, batch=10)
    files = data.locate("idx", idx_dir)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    record = replace(
        run_record("numpy", 1.0),
        spec=spec.to_dict(),
        init_sha256=plan.init_sha256,
        batches_sha256=plan.batches_sha256,
    )
    derived = _plan_for(record, files)
    assert derived is not None and derived.batches_sha256 == plan.batches_sha256
    assert _plan_for(replace(record, init_sha256="0" * 64), files) is None


def test_a_run_lost_while_other_workers_go_on_ends_with_the_resume_line(cluster, idx_dir, tmp_path):
    marker = tmp_path / "hung"
    first = cluster.add_worker(HANGS_ONCE_MARKER=str(marker))
    results = tmp_path / "results"
    run = hangs_once_on(cluster, idx_dir, results)
    _wait_for(marker, 120)  # hangs-once's first run is in flight on the first worker
    cluster.add_worker(HANGS_ONCE_MARKER=str(marker))  # the marker is there: it never hangs
    os.killpg(first.pid, signal.SIGKILL)
    _, err = run.communicate(timeout=180)
    assert run.returncode == 1, err
    assert "Traceback" not in err
    session, records = session_records(results)
    assert records["hangs-once-t1-r0"]["status"] == "lost"
    assert sorted(r["status"] for r in records.values()) == ["lost", "ok", "ok", "ok"]
    assert (
        "1 run(s) lost with their machine, not failed by their backend; redo them with: "
        f"python -m harness run --resume {session} --cluster {cluster.address}"
    ) in " ".join(err.split())
