"""The book's NumPy-from-scratch implementation (*Deep Learning from Scratch*, ch05).

Layer classes with forward/backward, a two-layer net composed of them, plain SGD. One deliberate
difference from the book: the first Affine layer does not compute the gradient with respect to the
input images, which nothing uses (it would add half again to the job's FLOPs). Parameter updates
are identical.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from harness.spec import Spec


class Affine:
    def __init__(self, W: np.ndarray, b: np.ndarray, needs_input_grad: bool = True) -> None:
        self.W = W
        self.b = b
        self.needs_input_grad = needs_input_grad
        self.x: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T if self.needs_input_grad else None


class Relu:
    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout[self.mask] = 0
        return dout


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)  # keeps exp finite for large logits
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class SoftmaxWithLoss:
    """Softmax + cross-entropy on integer labels; the gradient carries the 1/batch factor."""

    def __init__(self) -> None:
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t = t
        self.y = softmax(x)
        rows = np.arange(len(t))
        return float(-np.log(self.y[rows, t] + 1e-7).sum() / len(t))

    def backward(self) -> np.ndarray:
        batch = len(self.t)
        dx = self.y.copy()
        dx[np.arange(batch), self.t] -= 1
        return dx / batch


class TwoLayerNet:
    def __init__(self, init: dict[str, np.ndarray]) -> None:
        self.params = {name: np.array(value, copy=True) for name, value in init.items()}
        self.layers: OrderedDict[str, Affine | Relu] = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"], False)
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        return self.last_layer.forward(self.predict(x), t)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss = self.loss(x, t)
        dout = self.last_layer.backward()
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        first, second = self.layers["Affine1"], self.layers["Affine2"]
        grads = {"W1": first.dW, "b1": first.db, "W2": second.dW, "b2": second.db}
        return loss, grads


class NumpyBackend:
    """Backend ``numpy``: the book's layers, the harness's batches."""

    name = "numpy"

    @staticmethod
    def version() -> str:
        return f"numpy {np.__version__}"

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        self.train_x = np.ascontiguousarray(train_x, dtype=spec.dtype)
        self.train_y = train_y
        self.lr = spec.lr
        self.net = TwoLayerNet({k: v.astype(spec.dtype) for k, v in init.items()})

    def enable_profiling(self) -> None:
        """Time the phases of each step (the harness's --profile); off, the loop is untouched."""
        self.phases = dict.fromkeys(("batch", "forward", "backward", "update"), 0.0)

    def phase_times(self) -> dict[str, float]:
        return dict(self.phases)

    def train_steps(self, batch_indices: np.ndarray) -> float:
        if hasattr(self, "phases"):
            return self._train_steps_profiled(batch_indices)
        net, lr = self.net, self.lr
        total = 0.0
        for indices in batch_indices:
            loss, grads = net.gradient(self.train_x[indices], self.train_y[indices])
            for key, grad in grads.items():
                net.params[key] -= lr * grad
            total += loss
        return total / len(batch_indices)

    def _train_steps_profiled(self, batch_indices: np.ndarray) -> float:
        """The same step as train_steps, split at the phase boundaries of the published article."""
        net, lr, phases, clock = self.net, self.lr, self.phases, time.perf_counter
        total = 0.0
        for indices in batch_indices:
            t0 = clock()
            x, t = self.train_x[indices], self.train_y[indices]
            t1 = clock()
            loss = net.loss(x, t)
            t2 = clock()
            dout = net.last_layer.backward()
            for layer in reversed(net.layers.values()):
                dout = layer.backward(dout)
            t3 = clock()
            first, second = net.layers["Affine1"], net.layers["Affine2"]
            grads = {"W1": first.dW, "b1": first.db, "W2": second.dW, "b2": second.db}
            for key, grad in grads.items():
                net.params[key] -= lr * grad
            t4 = clock()
            phases["batch"] += t1 - t0
            phases["forward"] += t2 - t1
            phases["backward"] += t3 - t2
            phases["update"] += t4 - t3
            total += loss
        return total / len(batch_indices)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.net.predict(x.astype(self.train_x.dtype, copy=False)).argmax(axis=1)

    def params(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self.net.params.items()}
