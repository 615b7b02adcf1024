"""The Rust backends, from the one extension maturin builds from rust_impl/.

``rust``, the tuned net: the training set is copied into Rust once at setup (as one byte per
pixel when it holds at most 256 distinct values, rebuilt bit for bit); each ``train_steps`` call
runs wholly in Rust with the GIL released, gathering its batches from the harness's index stream
and splitting every step among ``threads`` threads of its own.

``rust-ndarray`` and ``rust-ndarray-dyn``, the plain ports (rust_impl/src/plain.rs): the book's
layers as a published Rust port wrote them with ndarray, ``Array2`` throughout or ``ArrayD``
between the layers; products by ndarray's ``dot``, threads only as matrixmultiply gives them.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import numpy as np

from harness.spec import Spec

BUILD_HINT = "the Rust extension is not built; build it with: pip install ./rust_impl"
# How the extension names its sparse kernels (Library::Sparse in rust_impl/src/linalg.rs).
SPARSE_PRODUCTS = "own sparse kernel (nonzero inputs only)"


def _extension():
    import mlp_bench_rust

    return mlp_bench_rust


class RustBackend:
    name = "rust"

    def __init__(self) -> None:
        self.threads: int | None = None
        self.profile = False
        self.steps = 0

    @staticmethod
    def unavailable_reason() -> str | None:
        try:
            _extension()
        except ImportError:
            return BUILD_HINT
        return None

    @staticmethod
    def version() -> str:
        return f"mlp-bench-rust {importlib.metadata.version('mlp-bench-rust')}"

    def build_info(self) -> dict[str, str | int | None]:
        info: dict[str, str | int | None] = {
            "profile": _extension().BUILD_PROFILE,
            "gemm": (
                "own kernels over the nonzero inputs where the training set is sparse, else "
                "own AVX-512 or AVX2 kernels, gemm or matrixmultiply, per product (see products); "
                "one thread per call"
            ),
            "threads": "a team of threads per train_steps call, meeting at spinning barriers",
        }
        net = getattr(self, "net", None)  # what follows is known once setup built the net
        if net is not None:
            info |= {
                # The code of the first layer's (forward, update) products: the sparse kernels
                # for a sparse training set, else the own dense kernels where they run, else
                # the crate timed faster on this machine at set-up.
                "products": "forward: {}, update: {}".format(*net.libraries),
                # The threads a step is split among (the budget, capped by the batch size).
                "gemm_threads": net.threads,
                "inputs": net.inputs_held_as,
            }
        return info

    def configure_threads(self, threads: int | None) -> None:
        self.threads = threads
        # The extension's ndarray turns on matrixmultiply's threads for the plain ports; this
        # net runs its own team and calls matrixmultiply from inside it, one thread per call.
        # matrixmultiply reads the variable once, at its first product (in setup, after this).
        os.environ["MATMUL_NUM_THREADS"] = "1"

    def enable_profiling(self) -> None:
        self.profile = True  # switched on in the extension once it exists (setup)

    def phase_times(self) -> dict[str, float]:
        return dict(self.net.phase_times() or {})

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        ext = _extension()
        cls = ext.Mlp32 if spec.dtype == "float32" else ext.Mlp64
        dtype = np.dtype(spec.dtype)
        # No budget given: as many threads as this process may run on, like the other libraries.
        threads = self.threads or len(os.sched_getaffinity(0))
        self.dtype = dtype
        self.spec, self.shape, self.classes = spec, init["W1"].shape, init["W2"].shape[1]
        self.net = cls(
            init["W1"].astype(dtype),
            init["b1"].astype(dtype),
            init["W2"].astype(dtype),
            init["b2"].astype(dtype),
            np.asarray(train_x, dtype=dtype),
            np.asarray(train_y, dtype=np.int64),
            spec.lr,
            spec.batch,
            threads,
        )
        if self.profile:
            self.net.enable_profiling()

    def train_steps(self, batch_indices: np.ndarray) -> float:
        self.steps += len(batch_indices)
        return self.net.train_steps(np.asarray(batch_indices, dtype=np.int32))

    def executed_work(self) -> dict[str, Any]:
        """The job's FLOPs less the first layer's multiply-adds the sparse kernels skipped: the
        net counts the input entries its forward product took (the update takes as many)."""
        n_features, hidden = self.shape
        classes = self.classes
        job = self.spec.flops_per_iteration(n_features, classes) * self.steps
        every_input = self.steps * self.spec.batch * n_features
        skipped = every_input - self.net.inputs_multiplied
        sparse = self.net.libraries[0] == SPARSE_PRODUCTS
        return {
            "algorithm": "sparse" if sparse else "dense",
            # Two products (forward, weight update), two FLOPs per multiply-add, per unit.
            "flops": job - 4.0 * hidden * skipped,
            "skips": "the first layer's products over zero inputs" if sparse else None,
        }

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.net.predict(np.asarray(x, dtype=self.dtype))

    def params(self) -> dict[str, np.ndarray]:
        return dict(self.net.params())


class RustNdarrayBackend:
    """Backend ``rust-ndarray``: the plain port, ``Array2`` between the layers."""

    name = "rust-ndarray"
    net_classes = ("PlainNdarray32", "PlainNdarray64")

    def __init__(self) -> None:
        self.profile = False
        self.steps = 0

    unavailable_reason = RustBackend.unavailable_reason
    version = RustBackend.version

    def build_info(self) -> dict[str, str | int | None]:
        told = os.environ.get("MATMUL_NUM_THREADS")
        return {
            "profile": _extension().BUILD_PROFILE,
            "gemm": "ndarray's dot (matrixmultiply), a new array for every intermediate",
            "threads": (
                "matrixmultiply's own, from MATMUL_NUM_THREADS (at most 4; unset: the physical "
                "cores), for products it judges large enough"
            ),
            "threads_told": f"MATMUL_NUM_THREADS={told}" if told else "MATMUL_NUM_THREADS unset",
        }

    def enable_profiling(self) -> None:
        self.profile = True

    def phase_times(self) -> dict[str, float]:
        return dict(self.net.phase_times() or {})

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        single, double = (getattr(_extension(), name) for name in self.net_classes)
        cls = single if spec.dtype == "float32" else double
        dtype = np.dtype(spec.dtype)
        self.dtype = dtype
        self.net = cls(
            *(init[name].astype(dtype) for name in ("W1", "b1", "W2", "b2")),
            np.asarray(train_x, dtype=dtype),
            np.asarray(train_y, dtype=np.int64),
            spec.lr,
            spec.batch,
        )
        if self.profile:
            self.net.enable_profiling()

    train_steps = RustBackend.train_steps
    predict = RustBackend.predict
    params = RustBackend.params


class RustNdarrayDynBackend(RustNdarrayBackend):
    """Backend ``rust-ndarray-dyn``: the plain port, ``ArrayD`` between the layers, each layer
    converting with ``into_dimensionality`` (the published port's first version)."""

    name = "rust-ndarray-dyn"
    net_classes = ("PlainNdarrayDyn32", "PlainNdarrayDyn64")
