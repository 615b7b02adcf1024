"""Work done beside work assigned: a backend that skips work says so, and every reader shows it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main
from harness.results.model import RunRecord
from harness.spec import Spec
from harness.work.plan import make_plan
from tests.helpers import fake, make_record, make_session, records, run, synthetic_mnist

JOB_GFLOP = Spec().flops_per_iteration(784, 10) * Spec().iterations / 1e9
SPARSE = {"algorithm": "sparse", "executed_gflop": JOB_GFLOP / 5, "skipped_work": "zero inputs"}


def _reference_like(root, name="s", gemm_rate_gflops=None, **rust):
    """numpy and a sparse rust at 1 thread, five repeats each; rust 4× as fast."""
    both = {"gemm_rate_gflops": gemm_rate_gflops}
    runs = [make_record("numpy", 4.0 + 0.01 * i, i, **both) for i in range(5)]
    runs += [make_record("rust", 1.0 + 0.01 * i, i, **both, **(SPARSE | rust)) for i in range(5)]
    return make_session(root, name, runs)


def test_the_sparse_rust_backend_counts_the_inputs_it_multiplies():
    rust = pytest.importorskip("impls.rust_ext")
    pytest.importorskip("mlp_bench_rust")
    spec = Spec(iterations=40)
    x, y = synthetic_mnist()
    x = x.astype(np.float32)
    plan = make_plan(spec, 784, 10, len(x))
    backend = rust.RustBackend()
    backend.configure_threads(2)
    backend.setup(spec, x, y, plan.init)
    backend.train_steps(plan.batches[:25])
    backend.train_steps(plan.batches[25:40])
    work = backend.executed_work()
    # Counted here from the data, independently of the extension's own count.
    nonzero = int(np.count_nonzero(x[plan.batches[:40]]))
    every = 40 * spec.batch * 784
    job = spec.flops_per_iteration(784, 10) * 40
    if work["algorithm"] == "sparse":
        assert work["flops"] == job - 4 * spec.hidden * (every - nonzero)
        assert work["flops"] < 0.6 * job
        assert work["skips"] == "the first layer's products over zero inputs"
    else:  # a CPU whose kernels do not take the sparse rows: the dense work, all of it
        assert work == {"algorithm": "dense", "flops": job, "skips": None}


def test_a_declared_algorithm_is_recorded(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *fake("SkipsWork")) == 0
    (record,) = records(tmp_path).values()
    assert record["algorithm"] == "sparse"
    assert record["executed_gflop"] == pytest.approx(1.5)
    assert record["skipped_work"] == "every other multiply-add"


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("not a dict", "executed_work returned str; expected a dict with algorithm, flops"),
        ({"algorithm": "a b", "flops": 1.0}, "executed_work gave algorithm 'a b' (rule: a short"),
        ({"algorithm": "sparse", "flops": -1}, "executed_work gave flops -1 (rule: a number ≥ 0)"),
        ({"algorithm": "sparse", "flops": True}, "executed_work gave flops True (rule: a number"),
        (
            {"algorithm": "sparse", "flops": float("inf")},
            "executed_work gave flops inf and skips None (rule: finite flops",
        ),
    ],
)
def test_a_malformed_declaration_fails_the_run_naming_the_rule(
    idx_dir, tmp_path, monkeypatch, returned, message
):
    monkeypatch.setenv("FAKE_EXECUTED_WORK", json.dumps(returned))
    assert run(idx_dir, tmp_path, *fake("SkipsWork")) == 1
    (record,) = records(tmp_path).values()
    assert record["status"] == "failed"
    assert message in record["error"]


def test_the_terminal_table_marks_the_backend_and_shows_both_rates(tmp_path, capsys):
    _reference_like(tmp_path)
    assert main(["report", "s", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "rust [sparse]" in line)
    job_rate = JOB_GFLOP / 1.02
    assert f"{job_rate:.1f}" in row and f"{job_rate / 5:.1f}" in row
    numpy_row = next(line for line in out.splitlines() if "numpy" in line and "│" in line)
    assert "= job" in numpy_row
    assert (
        "rust [sparse] skips work, zero inputs; it executed 20% of the job's FLOPs. Its job "
        "GFLOP/s and % of the GEMM rate count the work it was assigned, not the work it did."
    ) in " ".join(out.split())


def test_the_report_puts_the_executed_share_beside_every_gemm_share(tmp_path):
    _reference_like(tmp_path, gemm_rate_gflops=100.0)
    out = tmp_path / "report"
    assert main(["report", "s", "--results-dir", str(tmp_path), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    header = next(line for line in text.splitlines() if "% of GEMM rate" in line)
    cells = [c.strip() for c in header.split("|")]
    share = cells.index("% of GEMM rate")
    assert cells[share + 1] == "% of GEMM rate, executed"
    rust_row = next(line for line in text.splitlines() if line.startswith("| rust [sparse]"))
    rust_cells = [c.strip() for c in rust_row.split("|")]
    job_share = JOB_GFLOP / 1.02 / 100 * 100
    assert rust_cells[share] == f"{job_share:.0f} %"
    assert rust_cells[share + 1] == f"{job_share / 5:.0f} %"
    assert "fastest at 1 thread: rust [sparse]" in text
    assert "rust [sparse] skips work" in (out / "index.html").read_text()


def test_exports_carry_both_rates(tmp_path, capsys):
    _reference_like(tmp_path)
    assert main(["export", "s", "--results-dir", str(tmp_path), "--format", "json"]) == 0
    rows = {row["key"]["backend"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["rust"]["key"]["algorithm"] == "sparse"
    assert rows["rust"]["executed_gflops"] == pytest.approx(JOB_GFLOP / 5 / 1.02)
    assert rows["rust"]["job_gflops"] == pytest.approx(JOB_GFLOP / 1.02)
    assert rows["numpy"]["executed_gflops"] is None
    suite = tmp_path / "suite.json"
    args = [
        "export",
        "s",
        "--results-dir",
        str(tmp_path),
        "--format",
        "pyperf",
        "--out",
        str(suite),
    ]
    assert main(args) == 0
    names = [b["metadata"]["name"] for b in json.loads(suite.read_text())["benchmarks"]]
    assert any(name.startswith("rust-sparse-t1[") for name in names)


def test_compare_will_not_pair_one_name_under_two_algorithms(tmp_path, capsys):
    _reference_like(tmp_path, "a")
    _reference_like(tmp_path, "b", algorithm="dense", executed_gflop=None, skipped_work=None)
    code = main(["compare", "a", "b", "--results-dir", str(tmp_path), "--fail-if-slower", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        "gate: missing: rust @1: no ok runs in B to compare (B has rust at 1 thread "
        "only with another algorithm (sparse on this side, dense in B))"
    ) in err


def test_records_from_before_the_field_read_their_algorithm_from_the_kernels_named():
    products = "forward: own sparse kernel (nonzero inputs only), update: own sparse kernel"
    old = make_record("rust", 1.0, 0, build_info={"products": products})
    assert "algorithm" not in old
    record = RunRecord.from_json(old)
    assert record.algorithm == "sparse" and record.executed_gflop is None
    dense = RunRecord.from_json(make_record("rust", 1.0, 0, build_info={"products": "gemm"}))
    assert dense.algorithm == "dense"
