"""The same work for everyone: initial parameters and batch-index stream, derived once from a seed.

Init and batches come from independent child streams of one SeedSequence, so changing the number
of iterations leaves the initial parameters unchanged and vice versa.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.spec import Spec

PARAM_NAMES = ("W1", "b1", "W2", "b2")


@dataclass(frozen=True)
class Plan:
    init: dict[str, np.ndarray]  # W1 (features, hidden), b1 (hidden,), W2 (hidden, classes), b2
    batches: np.ndarray  # (iterations, batch) int32 row indices into the training set

    @property
    def init_sha256(self) -> str:
        return params_sha256(self.init)

    @property
    def batches_sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.batches, dtype="<i4").tobytes()).hexdigest()

    def save(self, path: Path) -> None:
        np.savez(path, batches=self.batches, **self.init)

    @classmethod
    def load(cls, path: Path) -> Plan:
        with np.load(path) as archive:
            return cls(
                init={name: archive[name] for name in PARAM_NAMES},
                batches=archive["batches"],
            )


def params_sha256(params: dict[str, np.ndarray]) -> str:
    """Hash names, dtypes, shapes and little-endian bytes, so equal hashes mean equal arrays."""
    digest = hashlib.sha256()
    for name in PARAM_NAMES:
        array = np.ascontiguousarray(params[name])
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{name}:{array.dtype.name}:{array.shape};".encode())
        digest.update(little.tobytes())
    return digest.hexdigest()


def make_plan(spec: Spec, n_features: int, n_classes: int, n_train: int) -> Plan:
    init_seq, batch_seq = np.random.SeedSequence(spec.seed).spawn(2)
    init_rng = np.random.default_rng(init_seq)
    shapes = {
        "W1": (n_features, spec.hidden),
        "b1": (spec.hidden,),
        "W2": (spec.hidden, n_classes),
        "b2": (n_classes,),
    }
    init: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if spec.init == "book":
            # The book: weight_init_std * randn for weights, zeros for biases.
            if name.startswith("W"):
                values = spec.init_scale * init_rng.standard_normal(shape)
            else:
                values = np.zeros(shape)
        else:  # "uniform": what the published Rust port did, for weights and biases alike
            values = init_rng.uniform(-1.0, 1.0, shape)
        init[name] = values.astype(spec.dtype)
    batches = np.random.default_rng(batch_seq).integers(
        0, n_train, size=(spec.iterations, spec.batch), dtype=np.int32
    )
    return Plan(init=init, batches=batches)
