from __future__ import annotations

import numpy as np

from harness.spec import Spec
from harness.work.plan import Plan, make_plan


def test_same_seed_same_work():
    a = make_plan(Spec(iterations=50), 784, 10, 60_000)
    b = make_plan(Spec(iterations=50), 784, 10, 60_000)
    assert a.init_sha256 == b.init_sha256
    assert a.batches_sha256 == b.batches_sha256


def test_other_seed_other_work():
    a = make_plan(Spec(iterations=50), 784, 10, 60_000)
    b = make_plan(Spec(iterations=50, seed=1), 784, 10, 60_000)
    assert a.init_sha256 != b.init_sha256
    assert a.batches_sha256 != b.batches_sha256


def test_init_does_not_depend_on_iterations():
    short = make_plan(Spec(iterations=10), 784, 10, 60_000)
    long = make_plan(Spec(iterations=20), 784, 10, 60_000)
    assert short.init_sha256 == long.init_sha256
    np.testing.assert_array_equal(short.batches, long.batches[:10])


def test_book_init_shapes_scale_and_zero_biases():
    plan = make_plan(Spec(iterations=3), 784, 10, 60_000)
    assert plan.init["W1"].shape == (784, 50) and plan.init["W2"].shape == (50, 10)
    assert plan.init["W1"].dtype == np.float32
    assert 0.009 < plan.init["W1"].std() < 0.011
    assert not plan.init["b1"].any() and not plan.init["b2"].any()


def test_uniform_init_like_the_published_port():
    plan = make_plan(Spec(iterations=3, init="uniform"), 784, 10, 60_000)
    for values in plan.init.values():
        assert values.min() >= -1 and values.max() <= 1
    assert plan.init["W1"].std() > 0.5 and plan.init["b1"].any()


def test_batches_with_replacement_in_range():
    plan = make_plan(Spec(iterations=1000, batch=100), 784, 10, 500)
    assert plan.batches.shape == (1000, 100) and plan.batches.dtype == np.int32
    assert plan.batches.min() >= 0 and plan.batches.max() < 500
    # With replacement: in 100 draws out of 500 a repeat within a batch is near certain somewhere.
    assert any(len(set(row)) < 100 for row in plan.batches)


def test_dtype_and_hash_follow_float64():
    plan32 = make_plan(Spec(iterations=3), 784, 10, 60_000)
    plan64 = make_plan(Spec(iterations=3, dtype="float64"), 784, 10, 60_000)
    assert plan64.init["W1"].dtype == np.float64
    assert plan32.init_sha256 != plan64.init_sha256


def test_save_load_roundtrip(tmp_path):
    plan = make_plan(Spec(iterations=7), 64, 10, 300)
    plan.save(tmp_path / "plan.npz")
    loaded = Plan.load(tmp_path / "plan.npz")
    assert loaded.init_sha256 == plan.init_sha256
    assert loaded.batches_sha256 == plan.batches_sha256


def test_gemm_rate_is_measured_positive():
    from harness.runner.gemm_rate import gemm_gflops

    assert gemm_gflops(threads=1, size=128, repeats=1) > 0.1
