"""The numpy-fused backend for mlp-bench: fill in the four methods, then run
`python -m harness verify --backend numpy-fused` until it passes.
"""

from __future__ import annotations

import numpy as np


class Backend:
    name = "numpy-fused"

    # Optional hooks (delete what you do not need):
    #   version() -> str, unavailable_reason() -> str | None, configure_threads(n),
    #   build_info() -> dict, follows_batch_stream = False if you draw your own batches.

    def setup(self, spec, train_x: np.ndarray, train_y: np.ndarray, init: dict) -> None:
        """Untimed. Copy the training set in and build the 784-{spec.hidden}-10 net with
        exactly the given init["W1"], init["b1"], init["W2"], init["b2"] (dtype spec.dtype)."""
        raise NotImplementedError(
            "fill in setup() in examples/harness-backend-numpy-fused/harness_backend_numpy_fused/backend.py: copy train_x/train_y in and set the weights from init"
        )

    def train_steps(self, batch_indices: np.ndarray) -> float:
        """Timed. For each row of batch_indices (k, batch): gather those training rows, take one
        SGD step (lr = spec.lr, softmax cross-entropy averaged over the batch); return the mean
        loss."""
        raise NotImplementedError(
            "fill in train_steps() in examples/harness-backend-numpy-fused/harness_backend_numpy_fused/backend.py: one SGD step per row of batch_indices"
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class ids (n,) as integers; the harness computes accuracy itself."""
        raise NotImplementedError("fill in predict() in examples/harness-backend-numpy-fused/harness_backend_numpy_fused/backend.py: return argmax class ids")

    def params(self) -> dict[str, np.ndarray]:
        """The current W1, b1, W2, b2 as NumPy arrays."""
        raise NotImplementedError("fill in params() in examples/harness-backend-numpy-fused/harness_backend_numpy_fused/backend.py: return W1, b1, W2, b2")
