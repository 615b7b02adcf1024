"""Test-only backends that misbehave in one particular way each (imported by worker processes)."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from impls.numpy_scratch import NumpyBackend


class RaisesInSetup(NumpyBackend):
    name = "raises-in-setup"

    def setup(self, spec, train_x, train_y, init):
        raise RuntimeError("cannot build the model: out of imagination")


class RaisesMidTraining(NumpyBackend):
    """Trains until the first evaluation (20 steps in the tests' tiny job), then raises."""

    name = "raises-mid-training"
    steps = 0

    def train_steps(self, batch_indices):
        if self.steps >= 20:
            raise ValueError("step exploded on the second chunk")
        self.steps += len(batch_indices)
        return super().train_steps(batch_indices)


class Diverges(NumpyBackend):
    name = "diverges"

    def train_steps(self, batch_indices):
        super().train_steps(batch_indices)
        return float("nan")


class NaNWeights(NumpyBackend):
    """Reports a finite loss but ends with NaN weights."""

    name = "nan-weights"

    def params(self):
        params = super().params()
        params["W2"][0, 0] = np.nan
        return params


class Hangs(NumpyBackend):
    name = "hangs"

    def train_steps(self, batch_indices):
        time.sleep(3600)
        return 0.0


class Aborts(NumpyBackend):
    name = "aborts"

    def train_steps(self, batch_indices):
        print("about to abort", file=sys.stderr, flush=True)
        os.abort()


class ProbabilitiesNotClasses(NumpyBackend):
    name = "probabilities"

    def predict(self, x):
        return self.net.predict(x)


class Chatty(NumpyBackend):
    """Floods stdout and stderr; the runner must neither block nor lose the run."""

    name = "chatty"

    def train_steps(self, batch_indices):
        sys.stdout.write("x" * 2_000_000 + "\n")
        sys.stderr.write("y" * 2_000_000 + "\nlast words\n")
        return super().train_steps(batch_indices)


class NotABackend:
    """Lacks the protocol's methods."""


class Segfaults(NumpyBackend):
    name = "segfaults"

    def train_steps(self, batch_indices):
        import ctypes

        ctypes.string_at(0)  # reads address 0: SIGSEGV


class HangsOnce(NumpyBackend):
    """Hangs on its first run (when the file named by $HANGS_ONCE_MARKER is absent), then works."""

    name = "hangs-once"

    def train_steps(self, batch_indices):
        from pathlib import Path

        marker = Path(os.environ["HANGS_ONCE_MARKER"])
        if not marker.exists():
            marker.write_text("hung once")
            time.sleep(3600)
        return super().train_steps(batch_indices)


class NoBatchFactor(NumpyBackend):
    """The classic slip: the softmax gradient without its 1/batch factor."""

    name = "no-batch-factor"

    def setup(self, spec, train_x, train_y, init):
        super().setup(spec, train_x, train_y, init)
        last = self.net.last_layer
        original = last.backward
        last.backward = lambda: original() * len(last.t)


class IgnoresInit(NumpyBackend):
    """Initialises its own weights (as the published Rust port did), not the harness's."""

    name = "ignores-init"

    def setup(self, spec, train_x, train_y, init):
        rng = np.random.default_rng(99)
        own = {k: rng.uniform(-1, 1, v.shape).astype(v.dtype) for k, v in init.items()}
        super().setup(spec, train_x, train_y, own)


class OwnBatches(NumpyBackend):
    """Draws its own batches, so it is not comparable step by step."""

    name = "own-batches"
    follows_batch_stream = False


class SaysItRanOnAGpu(NumpyBackend):
    """Computes on the CPU, but its build_info names a GPU device, as torch-cuda's does."""

    name = "on-a-gpu"

    def build_info(self) -> dict:
        return {"device": "NVIDIA H200"}


class SkipsWork(NumpyBackend):
    """Declares that it executed half of a toy job's work (or, when the test sets
    FAKE_EXECUTED_WORK, whatever that JSON says)."""

    name = "skips"

    def executed_work(self) -> object:
        import json

        given = os.environ.get("FAKE_EXECUTED_WORK")
        if given is not None:
            return json.loads(given)
        return {"algorithm": "sparse", "flops": 1.5e9, "skips": "every other multiply-add"}


class AlwaysZero(NumpyBackend):
    """Trains as the book does but predicts class 0 for every input: accuracy stays near 1/10."""

    name = "always-zero"

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(len(x), dtype=np.int64)


class RaisesHostileText(NumpyBackend):
    """Fails with a message made to break whatever renders it (tests/test_hostile_text.py)."""

    name = "raises-hostile-text"

    def setup(self, spec, train_x, train_y, init):
        raise RuntimeError("| <script>x</script> \x1b[2J\u202e\n## injected")
