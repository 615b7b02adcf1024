"""`harness verify`: same job proven step by step; a wrong backend named with its first bad step."""

from __future__ import annotations

import re

import pytest

from tests.helpers import fake, verify


def test_numpy_passes_with_a_table_per_checkpoint(idx_dir):
    result = verify(idx_dir, "--backend", "numpy", "--steps", "30", "--checkpoints", "1,5,30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "numpy: pass" in result.stdout
    for step in ("1", "5", "30"):
        assert f"│ {step:>4} │" in result.stdout


def test_missing_batch_factor_fails_at_step_one(idx_dir):
    result = verify(idx_dir, "--backend", "numpy", *fake("NoBatchFactor"), "--steps", "20")
    assert result.returncode == 1
    assert "numpy: pass" in result.stdout
    assert (
        "no-batch-factor: FAIL: tolerance first broken at step 1 (W1, b1, W2, b2)" in result.stdout
    )


def test_own_init_fails_before_the_first_step(idx_dir):
    result = verify(idx_dir, *fake("IgnoresInit"), "--steps", "5")
    assert result.returncode == 1
    assert "ignores-init: FAIL: tolerance first broken at step 0 (W1, b1, W2, b2)" in result.stdout


def test_backend_with_its_own_batches_is_not_comparable(idx_dir):
    result = verify(idx_dir, *fake("OwnBatches"), "--backend", "numpy", "--steps", "5")
    assert result.returncode == 0
    assert "own-batches: not comparable (draws its own batches)" in result.stdout


def test_checkpoint_past_the_steps_is_one_line(idx_dir):
    result = verify(idx_dir, "--backend", "numpy", "--steps", "5", "--checkpoints", "10")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --checkpoints 10 is past --steps 5; choose checkpoints between 1 and the number "
        "of steps"
    )


@pytest.mark.parametrize("dtype", ["float64"])
def test_float64_tolerance_is_tighter(idx_dir, dtype):
    result = verify(idx_dir, "--backend", "numpy", "--steps", "10", "--set", f"dtype={dtype}")
    assert result.returncode == 0
    assert "tolerance (float64): |backend − reference| ≤ 1e-09 + 1e-07·|reference|" in result.stdout


@pytest.mark.parametrize(
    ("backend", "module"),
    [
        ("rust", "mlp_bench_rust"),
        ("rust-ndarray", "mlp_bench_rust"),
        ("rust-ndarray-dyn", "mlp_bench_rust"),
        ("keras", "tensorflow"),
        ("jax", "jax"),
        ("torch", "torch"),
        ("torch-compile", "torch"),
    ],
)
def test_built_in_backends_pass(idx_dir, backend, module):
    pytest.importorskip(module, reason=f"{backend} is not installed")
    result = verify(idx_dir, "--backend", backend, "--steps", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{backend}: pass" in result.stdout


@pytest.mark.parametrize("value", ["default", "all", "0", "1,x"])
def test_checkpoints_take_step_numbers_only(value, capsys):
    from harness.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--checkpoints", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: argument --checkpoints: {value!r}: give step numbers ≥ 1")
    assert len(err.splitlines()) == 1


def test_tolerance_used_reads_pass_and_fail_directly():
    import numpy as np

    from harness.work.equivalence import TOLERANCES

    tolerance = TOLERANCES["float32"]  # atol 1e-5, rtol 1e-3
    want = np.array([0.0, 1.0])
    assert tolerance.used(np.array([5e-6, 1.0]), want) == pytest.approx(0.5)
    # Near zero the relative error is huge, but the tolerance is hardly used: it passes.
    assert tolerance.used(np.array([1e-7, 1.0]), want) < 1 and not tolerance.breaks(
        np.array([1e-7, 1.0]), want
    )
    assert tolerance.used(np.array([0.0, 1.002]), want) == pytest.approx(2 / 1.01, rel=1e-3)


def test_the_table_fits_100_columns_and_says_what_each_number_is(idx_dir):
    from harness.commands.verify import VERIFY_KEY

    result = verify(idx_dir, "--backend", "numpy", "--steps", "10")  # a pipe: 100 columns
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= 100 for line in result.stdout.splitlines())
    assert "…" not in result.stdout
    header = next(line for line in result.stdout.splitlines() if "step" in line)
    assert [h.strip() for h in header.strip("┃ ").split("┃")] == [
        "step",
        "loss",
        "ref",
        "÷ tol",
        "W1",
        "b1",
        "W2",
        "b2",
        "ok",
    ]
    assert " ".join(VERIFY_KEY.split()) in " ".join(result.stdout.split())
    verbose = verify(idx_dir, "--backend", "numpy", "--steps", "10", "-v")
    assert re.search(r"\[\d\.\de-\d\d\]", verbose.stdout)  # the largest |error|, with -v
