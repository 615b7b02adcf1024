"""Whole runs through the CLI on tiny IDX data: every outcome recorded, the matrix carries on."""

from __future__ import annotations

import itertools
import os
from datetime import datetime

import pytest

from harness.cli import main
from tests.helpers import TINY, fake, records, run


def test_ok_run_record_has_the_documented_fields(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--threads", "1") == 0
    (record,) = records(tmp_path).values()
    for key in (
        "backend",
        "status",
        "error",
        "repeat",
        "threads",
        "spec",
        "spec_hash",
        "seed",
        "init_sha256",
        "batches_sha256",
        "setup_time_s",
        "train_time_s",
        "cpu_time_s",
        "cpu_util",
        "peak_rss_bytes",
        "train_acc",
        "test_acc",
        "final_loss",
        "curve",
        "env",
    ):
        assert key in record, key
    assert record["status"] == "ok" and record["error"] is None
    assert record["threads"] == 1 and record["spec"]["iterations"] == 40
    assert [point["iteration"] for point in record["curve"]] == [20, 40]
    assert record["curve"][-1]["train_time_s"] == pytest.approx(record["train_time_s"])
    assert record["cpu_util"] == pytest.approx(record["cpu_time_s"] / record["train_time_s"])
    assert record["peak_rss_bytes"] > 10_000_000
    assert record["test_acc"] > 0.5  # the stripes are easy; 40 steps learn them
    assert {"cpu_model", "python", "numpy", "git_commit"} <= set(record["env"])
    assert any(pool.get("num_threads") == 1 for pool in record["env"]["blas"])
    assert 0 <= record["cpu_busy_before"] <= 1
    assert record["load_avg_1min_before"] >= 0 and record["load_avg_1min_after"] >= 0
    output = capsys.readouterr().out
    assert "numpy" in output and "results:" in output


def test_every_run_gets_the_same_work(idx_dir, tmp_path):
    assert (
        run(
            idx_dir,
            tmp_path,
            "--backend",
            "numpy",
            "--repeats",
            "2",
            *fake("ProbabilitiesNotClasses"),
        )
        == 1
    )
    found = records(tmp_path)
    assert len(found) == 4
    assert len({r["init_sha256"] for r in found.values()}) == 1
    assert len({r["batches_sha256"] for r in found.values()}) == 1
    # Interleaved: numpy, probabilities, numpy, probabilities, as they really ran, one at a time.
    ran = sorted(found.values(), key=lambda r: datetime.fromisoformat(r["started_at"]))
    assert [(r["backend"], r["repeat"]) for r in ran] == [
        ("numpy", 0),
        ("probabilities", 0),
        ("numpy", 1),
        ("probabilities", 1),
    ]
    for earlier, later in itertools.pairwise(ran):
        assert earlier["finished_at"] <= later["started_at"]


@pytest.mark.parametrize(
    ("backend", "status", "error_part"),
    [
        ("RaisesInSetup", "failed", "RuntimeError: cannot build the model: out of imagination"),
        ("RaisesMidTraining", "failed", "ValueError: step exploded on the second chunk"),
        ("Diverges", "diverged", "loss became nan within iterations 1–4"),  # the first call
        ("NaNWeights", "diverged", "parameters W2 hold NaN or infinity"),
        ("Aborts", "failed", "worker died: killed by signal SIGABRT"),
        ("ProbabilitiesNotClasses", "failed", "expected integer class ids of shape (300,)"),
        ("Hangs", "timeout", "killed after the 5 s timeout"),
        ("Segfaults", "failed", "worker died: killed by signal SIGSEGV"),
    ],
)
def test_bad_backend_is_recorded_and_the_matrix_carries_on(
    idx_dir, tmp_path, backend, status, error_part, capsys
):
    assert run(idx_dir, tmp_path, *fake(backend), "--backend", "numpy", "--timeout", "5") == 1
    found = records(tmp_path)
    bad = next(r for r in found.values() if r["backend"] != "numpy")
    good = next(r for r in found.values() if r["backend"] == "numpy")
    assert bad["status"] == status
    assert error_part in bad["error"]
    assert good["status"] == "ok"
    assert "1 of 2 runs did not finish ok" in capsys.readouterr().err


def test_partial_progress_kept_for_a_failure(idx_dir, tmp_path):
    run(idx_dir, tmp_path, *fake("RaisesMidTraining"))
    (record,) = records(tmp_path).values()
    assert record["iterations_done"] == 20 and len(record["curve"]) == 1


def test_aborted_worker_keeps_its_last_words(idx_dir, tmp_path):
    run(idx_dir, tmp_path, *fake("Aborts"))
    (record,) = records(tmp_path).values()
    assert "about to abort" in record["error"]


def test_timeout_kills_the_worker(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *fake("Hangs"), "--timeout", "3") == 1
    (record,) = records(tmp_path).values()
    assert record["status"] == "timeout"
    assert "killed after the 3 s timeout" in record["error"]


def test_chatty_backend_does_not_block(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *fake("Chatty")) == 0
    (record,) = records(tmp_path).values()
    assert record["status"] == "ok"


def test_run_all_skips_unavailable_backends_and_says_why(idx_dir, tmp_path, monkeypatch, capsys):
    import importlib.util
    import sys

    monkeypatch.setitem(sys.modules, "mlp_bench_rust", None)  # as if never built
    real_find_spec = importlib.util.find_spec
    missing = {"tensorflow", "torch", "jax"}
    monkeypatch.setattr(  # as if the libraries were not installed
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in missing else real_find_spec(name, *a),
    )
    assert run(idx_dir, tmp_path, "--all") == 0
    err = capsys.readouterr().err
    assert (
        "skipping rust: the Rust extension is not built; build it with: pip install "
        "./rust_impl" in err
    )
    assert (
        "skipping keras: TensorFlow/Keras are not installed; install them with: pip "
        "install -e '.[keras]'" in err
    )
    assert "skipping torch-compile: PyTorch is not installed" in err
    assert "skipping jax: JAX is not installed; install it with: pip install -e '.[jax]'" in err
    assert {r["backend"] for r in records(tmp_path).values()} == {"numpy"}


def test_profile_records_the_phases_of_the_step(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--profile") == 0
    (record,) = records(tmp_path).values()
    assert list(record["phases"]) == ["batch", "forward", "backward", "update"]
    total = sum(record["phases"].values())
    assert 0 < total <= record["train_time_s"]
    assert total > 0.5 * record["train_time_s"]  # the phases are most of the step


def test_without_profile_there_are_no_phases(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, "--backend", "numpy") == 0
    (record,) = records(tmp_path).values()
    assert record["phases"] is None


def test_warmup_runs_are_discarded_and_order_is_recorded(idx_dir, tmp_path, capsys):
    assert (
        run(idx_dir, tmp_path, "--backend", "numpy", *fake("Chatty"), "--warmup", "--repeats", "2")
        == 0
    )
    found = sorted(records(tmp_path).values(), key=lambda r: r["order"])
    assert [(r["backend"], r["repeat"]) for r in found] == [
        ("numpy", 0),
        ("chatty", 0),
        ("numpy", 1),
        ("chatty", 1),
    ]
    assert [r["order"] for r in found] == [2, 3, 4, 5]  # 0 and 1 were the warm-ups
    assert capsys.readouterr().err.count("(discarded)") == 2


def test_threads_reach_blas_in_the_worker(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--threads", "1,2") == 0
    for record in records(tmp_path).values():
        pools = record["env"]["blas"]
        assert pools and all(p["num_threads"] == record["threads"] for p in pools)


def test_pin_restricts_the_worker_to_its_cpus(idx_dir, tmp_path):
    import os

    assert run(idx_dir, tmp_path, "--backend", "numpy", "--threads", "1", "--pin") == 0
    (record,) = records(tmp_path).values()
    assert record["pinned_cpus"] == sorted(os.sched_getaffinity(0))[:1]
    assert record["cpus_allowed"] == record["pinned_cpus"]  # as the worker itself saw it


def test_sweep_runs_the_cartesian_product_interleaved(idx_dir, tmp_path, capsys):
    assert (
        run(
            idx_dir,
            tmp_path,
            "--backend",
            "numpy",
            "--sweep",
            "batch=5,10",
            "--sweep",
            "threads=1,2",
        )
        == 0
    )
    found = sorted(records(tmp_path).values(), key=lambda r: r["order"])
    assert [(r["variant"], r["threads"]) for r in found] == [
        ("batch=5", 1),
        ("batch=5", 2),
        ("batch=10", 1),
        ("batch=10", 2),
    ]
    assert [r["spec"]["batch"] for r in found] == [5, 5, 10, 10]
    assert len({r["batches_sha256"] for r in found}) == 2  # one batch stream per sweep point
    assert "batch=10" in capsys.readouterr().out  # the summary has a row per sweep point


def test_bad_sweep_is_one_line_before_anything_runs(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--sweep", "batch=5,400") == 2
    assert "batch=400 is out of range for idx" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_every_record_carries_the_gemm_rate_of_its_thread_count(idx_dir, tmp_path):
    args = [a for a in TINY if a != "--no-gemm-rate"]
    results = tmp_path / "results"
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(results), *args]
    assert main([*argv, "--backend", "numpy", "--threads", "1,2"]) == 0
    by_threads = {r["threads"]: r for r in records(tmp_path).values()}
    one, two = by_threads[1]["gemm_rate_gflops"], by_threads[2]["gemm_rate_gflops"]
    # Two measurements, each record with its own (how much faster two cores are is the
    # benchmark's business, not a unit test's: it depends on what else runs).
    assert 0 < one != two > 0
    assert by_threads[1]["env"]["gemm_rates"] == {"1": one, "2": two}
