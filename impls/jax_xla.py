"""Backend ``jax``: one ``jax.jit``-compiled SGD step, scanned over a chunk with ``lax.scan``.

The training set lives on the device from setup; a chunk's batch indices go in as one array and
``lax.scan`` runs the steps inside one XLA computation, gathering each batch on the device. The
net is the book's — affine, ReLU, affine, softmax cross-entropy — written as functions, with
``jax.value_and_grad`` for the backward pass.

Threads: JAX documents no thread-count setting for the CPU. XLA sizes its CPU thread pool from the
CPUs the process may run on (``tsl::port::MaxParallelism``, i.e. the affinity mask), and the
``--xla_cpu_multi_thread_eigen=false`` flag turns Eigen's multithreaded kernels off (jax-ml/jax
issues 743 and 1539). So a budget of N threads sets that flag for N = 1 and narrows the process's
affinity to N of its allowed CPUs, both before JAX is imported; ``build_info`` records both.
Measured on a 2-CPU machine: with the XLA flag alone the process used 1.23 CPUs, with the affinity
narrowed 0.99.

Compilation happens in setup, ahead of time, for every chunk length the spec's evaluation schedule
uses, so no training call compiles.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Any

import numpy as np

from harness.spec import Spec

INSTALL_HINT = "JAX is not installed; install it with: pip install -e '.[jax]'"
SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"
PREDICT_BLOCK = 10_000


class JaxBackend:
    name = "jax"
    platform = "cpu"

    def __init__(self) -> None:
        self.threads: int | None = None
        self.cpus: list[int] | None = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("jax") is None:
            return INSTALL_HINT
        return None

    @staticmethod
    def version() -> str:
        version = importlib.metadata.version
        return f"jax {version('jax')} / jaxlib {version('jaxlib')}"

    def configure_threads(self, threads: int | None) -> None:
        """Must run before JAX is imported: XLA reads its flags and CPU count once, at start-up."""
        self.threads = threads
        # The platform is this backend's identity: neither a GPU plugin nor a JAX_PLATFORMS the
        # user exported may move `jax` off the CPU (or `jax-gpu` onto it).
        os.environ["JAX_PLATFORMS"] = self.platform
        if threads is None:
            return
        if threads == 1:
            flags = os.environ.get("XLA_FLAGS", "")
            if SINGLE_THREAD_FLAG not in flags:
                os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_FLAG}".strip()
        allowed = sorted(os.sched_getaffinity(0))
        if threads < len(allowed):
            self.cpus = allowed[:threads]
            os.sched_setaffinity(0, self.cpus)

    def build_info(self) -> dict[str, Any]:
        import jax

        told = f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '') or '(none)'}"
        if self.cpus is not None:
            told += f", affinity narrowed to CPUs {','.join(map(str, self.cpus))}"
        device = jax.devices()[0]
        info = {
            "device": str(device.platform),
            "threads_told": told,
            "matmul_precision": str(jax.config.jax_default_matmul_precision),
        }
        if device.platform != "cpu":
            info["device_kind"] = str(device.device_kind)
        return info

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        import jax
        import jax.numpy as jnp

        if spec.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        # Full-precision products: on GPUs JAX's default runs float32 matrix products in TF32
        # (10-bit mantissa), which is another job; verify fails it (measured on an H100).
        jax.config.update("jax_default_matmul_precision", "highest")
        self.dtype = spec.dtype
        train_x_dev = jnp.array(train_x, dtype=spec.dtype)  # a copy on the device
        train_y_dev = jnp.array(train_y, dtype=jnp.int32)
        self.weights = {name: jnp.array(value, dtype=spec.dtype) for name, value in init.items()}
        lr = spec.lr

        def train_chunk(weights: dict[str, Any], batch_indices: jax.Array):
            def step(weights, rows):
                loss, grads = jax.value_and_grad(_loss)(
                    weights, train_x_dev[rows], train_y_dev[rows]
                )
                return jax.tree.map(lambda w, g: w - lr * g, weights, grads), loss

            weights, losses = jax.lax.scan(step, weights, batch_indices)
            return weights, jnp.mean(losses)

        # Donating the weights lets XLA update them in place.
        self._jitted = jitted = jax.jit(train_chunk, donate_argnums=0)
        lengths = sorted({end - start for start, end in spec.train_spans()})
        # Ahead-of-time compilation for every chunk length: compiling is setup, not training.
        self._compiled = {
            k: jitted.lower(
                self.weights, jax.ShapeDtypeStruct((k, spec.batch), jnp.int32)
            ).compile()
            for k in lengths
        }
        self._logits = (
            jax.jit(_logits)
            .lower(
                self.weights, jax.ShapeDtypeStruct((PREDICT_BLOCK, train_x.shape[1]), spec.dtype)
            )
            .compile()
        )

    def train_steps(self, batch_indices: np.ndarray) -> float:
        # Other lengths (harness verify's short hops) compile on first use.
        compiled = self._compiled.get(len(batch_indices), self._jitted)
        self.weights, loss = compiled(self.weights, np.asarray(batch_indices, dtype=np.int32))
        return float(loss)  # waits for the device: the timed call covers the whole chunk

    def synchronize(self) -> None:
        """JAX dispatches asynchronously, on a GPU and on the CPU: wait for the weights too."""
        import jax

        jax.block_until_ready(self.weights)

    def predict(self, x: np.ndarray) -> np.ndarray:
        blocks = []
        for start in range(0, len(x), PREDICT_BLOCK):
            block = np.asarray(x[start : start + PREDICT_BLOCK], dtype=self.dtype)
            padded = np.zeros((PREDICT_BLOCK, x.shape[1]), dtype=self.dtype)
            padded[: len(block)] = block  # one compiled shape for every block
            logits = np.asarray(self._logits(self.weights, padded))
            blocks.append(logits[: len(block)].argmax(axis=1))
        return np.concatenate(blocks).astype(np.int64)

    def params(self) -> dict[str, np.ndarray]:
        return {name: np.array(value) for name, value in self.weights.items()}


def _logits(weights: dict[str, Any], x: Any) -> Any:
    import jax

    hidden = jax.nn.relu(x @ weights["W1"] + weights["b1"])
    return hidden @ weights["W2"] + weights["b2"]


def _loss(weights: dict[str, Any], x: Any, t: Any) -> Any:
    """Softmax cross-entropy, averaged over the batch, on integer labels."""
    import jax
    import jax.numpy as jnp

    log_probs = jax.nn.log_softmax(_logits(weights, x))
    return -jnp.mean(jnp.take_along_axis(log_probs, t[:, None], axis=1))


class JaxGpuBackend(JaxBackend):
    """``jax`` on the GPU (JAX_PLATFORMS=cuda): needs a CUDA build of jaxlib (jax[cuda12])."""

    name = "jax-gpu"
    platform = "cuda"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        from impls.torch_nn import nvidia_driver_present

        if importlib.util.find_spec("jax") is None:
            return INSTALL_HINT
        if not nvidia_driver_present():  # before any advice to install for a GPU there is not
            return "no NVIDIA GPU driver on this machine"
        plugins = [
            d.metadata["Name"]
            for d in importlib.metadata.distributions()
            if (d.metadata["Name"] or "").startswith("jax-cuda")
        ]
        if not plugins:
            return "JAX has no CUDA plugin here; install it with: pip install 'jax[cuda12]'"
        return None
