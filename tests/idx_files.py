"""Tiny IDX files built in the tests, so unit tests never need the real MNIST."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def separable_digits(n: int, side: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is which of ten pixel stripes is lit: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, side * side)).astype(np.uint8)
    stripe = side * side // 10
    for i, label in enumerate(labels):
        images[i, label * stripe : (label + 1) * stripe] = 255
    return images.reshape(n, side, side), labels


def write_dataset(
    directory: Path, n_train: int = 300, n_test: int = 100, gz: bool = False, side: int = 8
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    train = separable_digits(n_train, side, seed=1)
    test = separable_digits(n_test, side, seed=2)
    arrays = {
        "train_images": train[0],
        "train_labels": train[1],
        "test_images": test[0],
        "test_labels": test[1],
    }
    for role, array in arrays.items():
        raw = idx_bytes(array)
        if gz:
            (directory / f"{NAMES[role]}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / NAMES[role]).write_bytes(raw)
    return directory
