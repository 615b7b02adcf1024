"""The real job on real MNIST (given through HARNESS_DATA_DIR; skipped without it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import data


def test_real_mnist_is_found_and_verified(mnist_dir):
    files = data.locate("mnist", mnist_dir)
    assert files.verified
    assert (files.n_train, files.n_test, files.n_features) == (60_000, 10_000, 784)
    assert files.sha256 == data.DATASETS["mnist"].sha256


def _run(mnist_dir, tmp_path, *args: str, backend: str = "numpy") -> dict:
    command = [
        "run",
        "--backend",
        backend,
        "--threads",
        "1",
        "--repeats",
        "1",
        "--data-dir",
        str(mnist_dir),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "harness", *command, "--results-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "results:" in result.stdout and backend in result.stdout
    (session,) = tmp_path.iterdir()
    (record_path,) = session.glob(f"{backend}-*.json")
    assert json.loads((session / "session.json").read_text())["spec_hash"]
    return json.loads(record_path.read_text())


@pytest.mark.slow
def test_quick_run(mnist_dir, tmp_path):
    record = _run(mnist_dir, tmp_path, "--quick")
    roofline = record["env"]["roofline"]  # measured at the session's start, kept in every record
    assert roofline["gflops_1core"] > 1 and roofline["gflops_all_cores"] > 1
    assert record["gemm_rate_gflops"] == record["env"]["gemm_rates"]["1"]
    assert record["status"] == "ok"
    assert record["spec"]["iterations"] == 600
    assert [p["iteration"] for p in record["curve"]] == [200, 400, 600]
    assert record["test_acc"] > 0.85
    assert record["data"]["verified"] and record["data"]["n_train"] == 60_000
    assert 0.5 < record["cpu_util"] < 1.5  # one BLAS thread: about one core busy
    assert record["train_time_s"] > 0 and record["setup_time_s"] >= 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        "numpy",
        "rust",
        "rust-ndarray",
        "rust-ndarray-dyn",
        "keras",
        "keras-fit",
        "jax",
        "torch",
        "torch-compile",
    ],
)
def test_full_reference_job_reaches_the_book_accuracy(mnist_dir, tmp_path, backend):
    needs = {
        "rust": "mlp_bench_rust",
        "rust-ndarray": "mlp_bench_rust",
        "rust-ndarray-dyn": "mlp_bench_rust",
        "keras": "tensorflow",
        "keras-fit": "tensorflow",
        "jax": "jax",
        "torch": "torch",
        "torch-compile": "torch",
    }
    if backend in needs:
        pytest.importorskip(needs[backend], reason=f"{backend} is not installed")
    record = _run(mnist_dir, tmp_path, "--no-gemm-rate", backend=backend)
    assert record["status"] == "ok"
    assert record["build_info"].get("profile", "release") == "release"
    assert len(record["curve"]) == 17
    assert record["train_acc"] >= 0.975
    assert record["test_acc"] >= 0.965
