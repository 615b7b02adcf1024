"""The Rust backends (the tuned net and the plain ndarray ports) do the NumPy backend's
arithmetic, release the GIL and fail politely."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from harness import backends
from harness.spec import Spec
from harness.work.plan import make_plan
from impls.numpy_scratch import NumpyBackend
from impls.rust_ext import BUILD_HINT, RustBackend, RustNdarrayBackend, RustNdarrayDynBackend
from tests.helpers import synthetic_mnist

rust = pytest.importorskip("mlp_bench_rust", reason=BUILD_HINT)


def trained(backend_cls, spec: Spec, x, y, steps: int, threads: int | None = 1):
    plan = make_plan(spec, x.shape[1], 10, len(x))
    backend = backend_cls()
    if hasattr(backend, "configure_threads"):
        backend.configure_threads(threads)
    backend.setup(spec, x.astype(spec.dtype), y, plan.init)
    loss = backend.train_steps(plan.batches[:steps])
    return backend, loss


PLAIN_PORTS = [RustNdarrayBackend, RustNdarrayDynBackend]


@pytest.mark.parametrize(
    ("backend_cls", "threads"),
    [(RustBackend, 1), (RustBackend, 2), (RustBackend, 3), *((cls, 1) for cls in PLAIN_PORTS)],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_100_steps_match_numpy_float32(backend_cls, threads):
    spec = Spec(iterations=100)
    x, y = synthetic_mnist()
    ours, our_loss = trained(backend_cls, spec, x, y, 100, threads)
    book, book_loss = trained(NumpyBackend, spec, x, y, 100)
    for name, value in book.params().items():
        got = ours.params()[name]
        assert got.dtype == np.float32 and got.shape == value.shape
        np.testing.assert_allclose(got, value, rtol=1e-4, atol=1e-5, err_msg=name)
    assert our_loss == pytest.approx(book_loss, rel=1e-4)
    np.testing.assert_array_equal(ours.predict(x[:500]), book.predict(x[:500]))


def test_the_two_plain_ports_agree_bit_for_bit():
    spec = Spec(iterations=100)
    x, y = synthetic_mnist()
    fixed, fixed_loss = trained(RustNdarrayBackend, spec, x, y, 100)
    dynamic, dynamic_loss = trained(RustNdarrayDynBackend, spec, x, y, 100)
    assert fixed_loss == dynamic_loss
    for name, value in fixed.params().items():
        np.testing.assert_array_equal(dynamic.params()[name], value, err_msg=name)


def test_the_plain_ports_are_told_threads_through_matrixmultiply(monkeypatch):
    monkeypatch.setenv("MATMUL_NUM_THREADS", "2")
    assert RustNdarrayBackend().build_info()["threads_told"] == "MATMUL_NUM_THREADS=2"
    monkeypatch.delenv("MATMUL_NUM_THREADS")
    assert RustNdarrayDynBackend().build_info()["threads_told"] == "MATMUL_NUM_THREADS unset"
    # The tuned net splits steps among its own threads, so it keeps matrixmultiply to one.
    RustBackend().configure_threads(2)
    assert os.environ["MATMUL_NUM_THREADS"] == "1"


@pytest.mark.parametrize("backend_cls", [RustBackend, *PLAIN_PORTS], ids=lambda c: c.name)
def test_100_steps_match_numpy_float64(backend_cls):
    spec = Spec(iterations=100, dtype="float64")
    x, y = synthetic_mnist()
    ours, _ = trained(backend_cls, spec, x, y, 100)
    book, _ = trained(NumpyBackend, spec, x, y, 100)
    for name, value in book.params().items():
        assert ours.params()[name].dtype == np.float64
        np.testing.assert_allclose(ours.params()[name], value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_real_mnist_100_steps_match_numpy(mnist_dir, threads):
    from harness import data

    dataset = data.load(data.locate("mnist", mnist_dir))
    spec = Spec(iterations=100)
    ours, _ = trained(RustBackend, spec, dataset.train_x, dataset.train_y, 100, threads)
    book, _ = trained(NumpyBackend, spec, dataset.train_x, dataset.train_y, 100)
    # MNIST's floats are bytes / 255: held as bytes and rebuilt by the (checked) division; its
    # rows are mostly zeros, left out where the CPU puts them back in SIMD.
    packed = "zero bytes left out; " if _cpu_expands_in_simd() else ""
    assert ours.build_info()["inputs"] == (
        f"one byte per pixel, {packed}value = byte / divisor (checked exact)"
    )
    assert ours.build_info()["gemm_threads"] == threads
    if packed:
        # Four pixels in five are 0: both products over the nonzero ones only.
        sparse = "own sparse kernel (nonzero inputs only)"
        assert ours.build_info()["products"] == f"forward: {sparse}, update: {sparse}"
    else:
        assert re.fullmatch(
            r"forward: (gemm|matrixmultiply|own AVX-512 kernel|own AVX2 kernel), "
            r"update: (gemm|matrixmultiply|own AVX-512 kernel)",
            ours.build_info()["products"],
        )
    for name, value in book.params().items():
        np.testing.assert_allclose(ours.params()[name], value, rtol=1e-4, atol=1e-5)


def _cpu_has(flag: str) -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and flag in cpuinfo.read_text().split()


def _cpu_expands_in_simd() -> bool:
    """Whether the crate packs sparse rows here: AVX-512 VBMI2, or AVX2 with FMA and POPCNT."""
    return _cpu_has("avx512_vbmi2") or all(map(_cpu_has, ["avx2", "fma", "popcnt"]))


def test_byte_images_are_held_as_bytes_and_other_data_as_given():
    spec = Spec(iterations=10)
    x, y = synthetic_mnist()
    dense, _ = trained(RustBackend, spec, x, y, 10)
    assert dense.build_info()["inputs"] == "as handed over (more than 256 distinct values)"
    # Bytes / 255, four pixels in five zero as in MNIST: the zero bytes are left out where the
    # CPU puts them back in SIMD. With few zeros, every byte is kept.
    sparse = np.round(x * 255) / 255
    few_zeros = np.random.default_rng(3).integers(1, 256, x.shape) / 255
    left_out = "zero bytes left out; " if _cpu_expands_in_simd() else ""
    for pixels, held_as in ((sparse, left_out), (few_zeros, "")):
        coded, _ = trained(RustBackend, spec, pixels, y, 10)
        assert coded.build_info()["inputs"] == (
            f"one byte per pixel, {held_as}value = byte / divisor (checked exact)"
        )
        book, _ = trained(NumpyBackend, spec, pixels, y, 10)
        for name, value in book.params().items():
            np.testing.assert_allclose(coded.params()[name], value, rtol=1e-4, atol=1e-5)


def _tick_rate(until: Callable[[], bool], seconds: float) -> float:
    """Python work per second in this thread: possible only while it holds the GIL."""
    ticks, started = 0, time.perf_counter()
    while not until() and time.perf_counter() - started < seconds:
        ticks += 1
    return ticks / (time.perf_counter() - started)


def test_gil_is_released_during_training():
    spec = Spec(iterations=3000)
    x, y = synthetic_mnist()
    plan = make_plan(spec, 784, 10, len(x))
    backend = RustBackend()
    backend.configure_threads(1)
    backend.setup(spec, x.astype(np.float32), y, plan.init)
    alone = _tick_rate(lambda: False, 0.3)
    done = threading.Event()

    def train() -> None:
        backend.train_steps(plan.batches)
        done.set()

    worker = threading.Thread(target=train)
    started = time.perf_counter()
    worker.start()
    during = _tick_rate(done.is_set, 60)
    elapsed = time.perf_counter() - started
    worker.join()
    assert elapsed > 0.2, "training finished too quickly to tell"
    # Holding the GIL, training would leave this thread a sliver of a switch interval now and
    # then (under 5 % of its rate alone); released, this thread runs at a good share of it.
    assert during > 0.25 * alone, f"{during:.0f} ticks/s while training, {alone:.0f} alone"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda net: net.train_steps(np.array([[0, 5000]], dtype=np.int32)),
            ValueError,
            "batch index 5000 is outside the training set (0..2000)",
        ),
        (
            lambda net: net.train_steps(np.array([[0, -1]], dtype=np.int32)),
            ValueError,
            "batch index -1 is outside the training set",
        ),
        (
            lambda net: net.train_steps(np.zeros((2, 3), dtype=np.int32)),
            ValueError,
            "rows hold 3 indices, but the net was set up for batch 2",
        ),
        (lambda net: net.train_steps(np.zeros((2, 2), dtype=np.float64)), TypeError, ""),
        (
            lambda net: net.predict(np.zeros((3, 5), dtype=np.float32)),
            ValueError,
            "x has 5 features per row but the net expects 784",
        ),
    ],
)
@pytest.mark.parametrize("net_class", ["Mlp32", "PlainNdarray32", "PlainNdarrayDyn32"])
def test_bad_calls_raise_python_exceptions(call, error, message, net_class):
    x, y = synthetic_mnist()
    init = make_plan(Spec(iterations=1), 784, 10, 2000).init
    params = (init["W1"], init["b1"], init["W2"], init["b2"], x.astype(np.float32), y, 0.1, 2)
    net = rust.Mlp32(*params, 1) if net_class == "Mlp32" else getattr(rust, net_class)(*params)
    with pytest.raises(error) as excinfo:
        call(net)
    assert message in str(excinfo.value)


@pytest.mark.parametrize("net_class", ["Mlp32", "PlainNdarray32", "PlainNdarrayDyn32"])
def test_bad_labels_and_shapes_at_construction(net_class):
    init = make_plan(Spec(iterations=1), 784, 10, 4).init
    x = np.zeros((4, 784), dtype=np.float32)
    threads = (1,) if net_class == "Mlp32" else ()

    def build(x, y):
        return getattr(rust, net_class)(
            init["W1"], init["b1"], init["W2"], init["b2"], x, y, 0.1, 2, *threads
        )

    with pytest.raises(ValueError, match=r"train_y holds a label outside 0\.\.10"):
        build(x, np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match=r"train_y holds a label outside 0\.\.10"):
        build(x, np.array([0, -1, 2, 3]))
    with pytest.raises(ValueError, match="train_x has 783 features per row but W1 expects 784"):
        build(x[:, :783], np.arange(4))


def test_build_profile_is_reported():
    assert rust.BUILD_PROFILE in ("release", "debug")
    assert RustBackend().build_info()["profile"] == rust.BUILD_PROFILE


def test_unbuilt_extension_is_reported_with_the_build_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlp_bench_rust", None)  # makes the import fail
    state = backends.status(backends.lookup("rust"))
    assert not state.available
    assert state.reason == "the Rust extension is not built; build it with: pip install ./rust_impl"


def test_profiling_reports_the_phases_natively():
    spec = Spec(iterations=50)
    x, y = synthetic_mnist()
    plan = make_plan(spec, 784, 10, len(x))
    backend = RustBackend()
    backend.configure_threads(1)
    backend.enable_profiling()
    backend.setup(spec, x.astype(np.float32), y, plan.init)
    backend.train_steps(plan.batches)
    phases = backend.phase_times()
    # "wait": time at the barriers between the threads of a step, next to nothing at 1 thread.
    assert list(phases) == ["batch", "forward", "backward", "update", "wait"]
    assert all(phases[name] > 0 for name in ["batch", "forward", "backward", "update"])
    assert 0 <= phases["wait"] < 0.05 * sum(phases.values())


@pytest.mark.parametrize("backend_cls", PLAIN_PORTS, ids=lambda cls: cls.name)
def test_the_plain_ports_profile_the_book_phases(backend_cls):
    spec = Spec(iterations=50)
    x, y = synthetic_mnist()
    plan = make_plan(spec, 784, 10, len(x))
    backend = backend_cls()
    backend.enable_profiling()
    backend.setup(spec, x.astype(np.float32), y, plan.init)
    backend.train_steps(plan.batches)
    phases = backend.phase_times()
    assert list(phases) == ["batch", "forward", "backward", "update"]
    assert all(seconds > 0 for seconds in phases.values())
