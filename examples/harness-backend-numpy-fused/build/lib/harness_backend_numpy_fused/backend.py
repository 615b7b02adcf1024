"""The numpy-fused backend for mlp-bench: the book's arithmetic with every buffer preallocated.

Made with `python -m harness new-backend numpy-fused` and filled in. Same maths as the book's
layer classes, but each step writes into arrays allocated once in setup (np.take/np.matmul with
out=, in-place softmax), so a step allocates almost nothing. `harness verify` checks it against
the float64 reference step by step.
"""

from __future__ import annotations

import numpy as np


class Backend:
    name = "numpy-fused"

    @staticmethod
    def version() -> str:
        return f"numpy {np.__version__}"

    def setup(self, spec, train_x: np.ndarray, train_y: np.ndarray, init: dict) -> None:
        dtype = np.dtype(spec.dtype)
        self.train_x = np.ascontiguousarray(train_x, dtype=dtype)
        self.train_y = np.asarray(train_y)
        self.W1, self.b1, self.W2, self.b2 = (
            np.array(init[k], dtype=dtype) for k in ("W1", "b1", "W2", "b2")
        )
        self.lr = spec.lr
        batch, features = spec.batch, self.W1.shape[0]
        hidden, classes = self.W1.shape[1], self.W2.shape[1]
        self.rows = np.arange(batch)
        self.x = np.empty((batch, features), dtype)
        self.h = np.empty((batch, hidden), dtype)  # pre-activation, kept for the ReLU mask
        self.a = np.empty((batch, hidden), dtype)
        self.z = np.empty((batch, classes), dtype)  # scores → probabilities → their gradient
        self.da = np.empty((batch, hidden), dtype)
        self.dW1 = np.empty_like(self.W1)
        self.dW2 = np.empty_like(self.W2)

    def _step(self, indices: np.ndarray) -> float:
        x, h, a, z, da = self.x, self.h, self.a, self.z, self.da
        batch = len(indices)
        np.take(self.train_x, indices, axis=0, out=x)
        t = self.train_y[indices]
        np.matmul(x, self.W1, out=h)
        h += self.b1
        np.maximum(h, 0, out=a)
        np.matmul(a, self.W2, out=z)
        z += self.b2
        z -= z.max(axis=1, keepdims=True)  # softmax, in place
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        loss = float(-np.log(z[self.rows, t] + 1e-7).sum() / batch)
        z[self.rows, t] -= 1  # now dL/dscores, before the 1/batch
        z /= batch
        np.matmul(a.T, z, out=self.dW2)
        db2 = z.sum(axis=0)
        np.matmul(z, self.W2.T, out=da)
        da[h <= 0] = 0
        np.matmul(x.T, da, out=self.dW1)
        db1 = da.sum(axis=0)
        self.dW1 *= self.lr
        self.W1 -= self.dW1
        self.b1 -= self.lr * db1
        self.dW2 *= self.lr
        self.W2 -= self.dW2
        self.b2 -= self.lr * db2
        return loss

    def train_steps(self, batch_indices: np.ndarray) -> float:
        total = 0.0
        for indices in batch_indices:
            total += self._step(indices)
        return total / len(batch_indices)

    def predict(self, x: np.ndarray) -> np.ndarray:
        hidden = np.maximum(x.astype(self.W1.dtype, copy=False) @ self.W1 + self.b1, 0)
        return (hidden @ self.W2 + self.b2).argmax(axis=1)

    def params(self) -> dict[str, np.ndarray]:
        return {
            "W1": self.W1.copy(),
            "b1": self.b1.copy(),
            "W2": self.W2.copy(),
            "b2": self.b2.copy(),
        }
