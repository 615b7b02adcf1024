"""Backends ``torch`` and ``torch-compile``: the idiomatic PyTorch training loop.

``nn.Sequential(nn.Linear, nn.ReLU, nn.Linear)``, ``nn.CrossEntropyLoss`` (softmax cross-entropy
averaged over the batch) and ``torch.optim.SGD`` at the spec's learning rate, on the harness's
batches: each step indexes the training tensor with one row of the harness's batch indices.

``torch-cuda`` is ``torch`` on the first CUDA device: the training set, the model and each
chunk's indices live on the GPU, and the chunk's mean loss is read back once per chunk (which
waits for the GPU, so the timed call covers its work).

``torch-compile`` wraps the whole step (forward, backward, optimizer step) in ``torch.compile``.
The compiler runs in setup: one step is compiled and run there, then the weights are set back to
the initial parameters, so training starts from ``init`` with nothing left to compile.

Threads: ``torch.set_num_threads`` (intra-op) and ``torch.set_num_interop_threads``, as the
PyTorch CPU tuning guide documents, before any parallel work starts.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.spec import Spec

INSTALL_HINT = "PyTorch is not installed; install it with: pip install -e '.[torch]'"


class TorchBackend:
    name = "torch"
    compiled = False
    device = "cpu"

    def __init__(self) -> None:
        self.threads: int | None = None

    @staticmethod
    def unavailable_reason() -> str | None:
        if importlib.util.find_spec("torch") is None:
            return INSTALL_HINT
        return None

    @staticmethod
    def version() -> str:
        return f"torch {importlib.metadata.version('torch')}"

    def configure_threads(self, threads: int | None) -> None:
        self.threads = threads

    def build_info(self) -> dict[str, Any]:
        import torch

        info = {
            "threads_told": (
                f"torch intra={torch.get_num_threads()} interop={torch.get_num_interop_threads()}"
            ),
            "compiled": self.compiled,
        }
        if self.device != "cpu":
            info["device"] = torch.cuda.get_device_name()
        return info

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        import torch
        from torch import nn

        if self.threads is not None:  # before any parallel work, as the tuning guide says
            torch.set_num_threads(self.threads)
            # Settable once per process: a second instance in one worker (verify's) finds it set.
            if torch.get_num_interop_threads() != self.threads:
                torch.set_num_interop_threads(self.threads)
        dtype = getattr(torch, spec.dtype)
        self.dtype = spec.dtype
        device = torch.device(self.device)
        # Copies (the arrays are the harness's), on the device once.
        self.train_x = torch.tensor(train_x, dtype=dtype, device=device)
        self.train_y = torch.tensor(train_y, dtype=torch.int64, device=device)
        features, hidden = init["W1"].shape
        self.model = nn.Sequential(
            nn.Linear(features, hidden, dtype=dtype),
            nn.ReLU(),
            nn.Linear(hidden, init["W2"].shape[1], dtype=dtype),
        ).to(device)
        self.init = init
        self._load(init)
        self.loss_fn = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=spec.lr, momentum=0.0)
        self.step = self._step
        if self.compiled:
            self.step = torch.compile(self._step)
            rows = torch.zeros(spec.batch, dtype=torch.int64, device=device)
            self.step(rows)  # compiles; the step it took is undone by the reload below
            self._load(init)

    def _load(self, params: dict[str, np.ndarray]) -> None:
        """Set the layers to ``params``; nn.Linear keeps its weight as (out, in), hence the .T."""
        import torch

        first, _, second = self.model
        with torch.no_grad():
            for layer, w, b in ((first, "W1", "b1"), (second, "W2", "b2")):
                layer.weight.copy_(_reading(np.ascontiguousarray(params[w].T)))
                layer.bias.copy_(_reading(np.asarray(params[b])))

    def _step(self, rows):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.train_x[rows]), self.train_y[rows])
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def train_steps(self, batch_indices: np.ndarray) -> float:
        import torch

        if hasattr(self, "phases"):
            return self._train_steps_profiled(batch_indices)
        steps = torch.from_numpy(np.asarray(batch_indices, dtype=np.int64)).to(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for rows in steps:
            total += self.step(rows)
        return float(total) / len(steps)

    def synchronize(self) -> None:
        """CUDA runs kernels asynchronously: the timed region ends when the device is done."""
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def enable_profiling(self) -> None:
        self.phases = dict.fromkeys(("batch", "forward", "backward", "update"), 0.0)

    def phase_times(self) -> dict[str, float]:
        return dict(self.phases)

    def _train_steps_profiled(self, batch_indices: np.ndarray) -> float:
        import torch

        clock, total = time.perf_counter, 0.0
        model, optimizer, phases = self.model, self.optimizer, self.phases
        for rows in torch.from_numpy(np.asarray(batch_indices, dtype=np.int64)):
            t0 = clock()
            x, t = self.train_x[rows], self.train_y[rows]
            t1 = clock()
            optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(model(x), t)
            t2 = clock()
            loss.backward()
            t3 = clock()
            optimizer.step()
            t4 = clock()
            phases["batch"] += t1 - t0
            phases["forward"] += t2 - t1
            phases["backward"] += t3 - t2
            phases["update"] += t4 - t3
            total += float(loss)
        return total / len(batch_indices)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            inputs = _reading(np.ascontiguousarray(x, dtype=self.dtype)).to(self.device)
            logits = self.model(inputs)
        return logits.argmax(dim=1).cpu().numpy().astype(np.int64)

    def params(self) -> dict[str, np.ndarray]:
        first, _, second = self.model
        return {
            "W1": first.weight.detach().cpu().numpy().T.copy(),
            "b1": first.bias.detach().cpu().numpy().copy(),
            "W2": second.weight.detach().cpu().numpy().T.copy(),
            "b2": second.bias.detach().cpu().numpy().copy(),
        }


class TorchCompileBackend(TorchBackend):
    """``torch.compile`` of the whole step; compiled in setup. No phase times: one fused graph."""

    name = "torch-compile"
    compiled = True
    enable_profiling = None


class TorchCudaBackend(TorchBackend):
    """``torch`` on the first CUDA device. No phase times: GPU work is asynchronous."""

    name = "torch-cuda"
    device = "cuda"
    enable_profiling = None

    @staticmethod
    def unavailable_reason() -> str | None:
        if not nvidia_driver_present():
            return TorchBackend.unavailable_reason() or "no NVIDIA GPU driver on this machine"
        return TorchBackend.unavailable_reason()


def nvidia_driver_present() -> bool:
    """Whether a CUDA device can exist here, without importing a GPU library (seconds)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def _reading(array: np.ndarray):
    """A tensor over ``array`` without a copy, for reading only.

    The harness hands its arrays over read-only; torch.from_numpy then warns that writing to
    the tensor would be undefined. Nothing here writes to it: it is copied into a layer or read
    by a forward pass, so the warning says nothing and a copy of the inputs would cost memory.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)
