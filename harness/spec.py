"""The training job every backend runs: a frozen dataclass whose defaults are the reference job.

Reference: *Deep Learning from Scratch* ch05 — MNIST, 784-50-10 MLP, ReLU, softmax + cross-entropy,
plain SGD lr 0.1, batch 100 drawn with replacement, 10,000 iterations, accuracy every 600.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import SpecError, did_you_mean
from harness.files import FileRefused, read_small_text

DTYPES = ("float32", "float64")
INITS = ("book", "uniform")
DATASETS = ("mnist", "fashion-mnist", "idx")
ACTIVATIONS = ("relu",)
LOSSES = ("softmax_cross_entropy",)
OPTIMIZERS = ("sgd",)


@dataclass(frozen=True)
class Spec:
    """One training job. Field names are the keys accepted by ``--set`` and spec files."""

    dataset: str = "mnist"
    hidden: int = 50
    activation: str = "relu"
    loss: str = "softmax_cross_entropy"
    optimizer: str = "sgd"
    lr: float = 0.1
    batch: int = 100
    iterations: int = 10_000
    eval_every: int = 600
    dtype: str = "float32"
    init: str = "book"
    init_scale: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """Stable across runs and machines: SHA-256 of the canonical JSON of every field."""
        return spec_hash(self.to_dict())

    def eval_points(self) -> list[int]:
        """Iterations after which accuracy is measured: every ``eval_every`` and after the last."""
        points = list(range(self.eval_every, self.iterations, self.eval_every))
        return [*points, self.iterations]

    def eval_spans(self) -> list[tuple[int, int]]:
        """(start, end) iteration ranges of the timed chunks between two evaluations."""
        ends = self.eval_points()
        return list(zip([0, *ends[:-1]], ends, strict=True))

    def train_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each ``train_steps`` call a run makes: the evaluation spans, the first
        split after its first ``PROOF_STEPS`` steps so that the run can prove, from that short
        call, that it started from the initial parameters and followed the batches."""
        (start, end), *rest = self.eval_spans()
        if end - start <= PROOF_STEPS:
            return [(start, end), *rest]
        return [(start, PROOF_STEPS), (PROOF_STEPS, end), *rest]

    def flops_per_iteration(self, n_features: int, n_classes: int) -> float:
        """Multiply-adds of the four matrix products of one SGD step, counted as 2 FLOP each.

        Forward of both layers plus both weight gradients and the hidden-layer input gradient;
        the first layer's input gradient is not needed, so it is neither computed nor counted.
        """
        big = n_features * self.hidden
        small = self.hidden * n_classes
        return 2.0 * self.batch * (2 * big + 3 * small)


def spec_hash(values: Mapping[str, Any]) -> str:
    """The hash of a spec as stored: a record's ``spec_hash`` is this of its own ``spec``."""
    canonical = json.dumps(dict(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# The steps of a run's first ``train_steps`` call, checked against the float64 reference before
# the run goes on (harness.work.proof): more than one, so a backend that skips steps within a
# call is caught; few, so the check costs milliseconds.
PROOF_STEPS = 4

QUICK_PRESET: dict[str, Any] = {"iterations": 600, "eval_every": 200}


def _choice(key: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise SpecError(f"spec: {key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def validate(spec: Spec) -> None:
    """Raise SpecError naming the key and the allowed range for the first invalid value."""
    for f in fields(spec):
        value = getattr(spec, f.name)
        expected = {"int": int, "float": (int, float), "str": str}[str(f.type)]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise SpecError(f"spec: {f.name}={value!r} must be of type {f.type}")
    _choice("dataset", spec.dataset, DATASETS)
    _choice("activation", spec.activation, ACTIVATIONS)
    _choice("loss", spec.loss, LOSSES)
    _choice("optimizer", spec.optimizer, OPTIMIZERS)
    _choice("dtype", spec.dtype, DTYPES)
    _choice("init", spec.init, INITS)
    for key in ("hidden", "batch", "iterations", "eval_every"):
        if getattr(spec, key) < 1:
            raise SpecError(f"spec: {key}={getattr(spec, key)} is out of range; it must be ≥ 1")
    for key in ("lr", "init_scale"):
        value = getattr(spec, key)
        if not math.isfinite(value) or value <= 0:
            raise SpecError(f"spec: {key}={value} is out of range; it must be finite and > 0")
    if not 0 <= spec.seed < 2**63:
        raise SpecError(f"spec: seed={spec.seed} is out of range; it must be in [0, 2**63)")


def check_fits_data(spec: Spec, n_train: int) -> None:
    """The batch is drawn from the training set, so it cannot be larger than it."""
    if spec.batch > n_train:
        raise SpecError(
            f"spec: batch={spec.batch} is out of range for {spec.dataset}; "
            f"it must be between 1 and the training-set size {n_train}"
        )


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(Spec)}


def _coerce(key: str, raw: Any, source: str) -> Any:
    types = _field_types()
    if key not in types:
        raise SpecError(
            f"{source}: unknown spec key {key!r}{did_you_mean(key, types)} known keys: "
            f"{', '.join(types)}"
        )
    kind = types[key]
    if not isinstance(raw, str):
        if kind == "float" and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        return raw  # validate() reports a wrong type with the key's name
    text = raw.strip()
    try:
        if kind == "int":
            number = float(text.replace("_", ""))
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind == "float":
            return float(text)
    except (ValueError, OverflowError):
        raise SpecError(f"{source}: {key}={raw!r} is not a valid {kind}") from None
    return text


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """Turn ``["lr=0.05", "dtype=float64"]`` into typed overrides."""
    overrides: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set lr=0.05")
        overrides[key.strip()] = _coerce(key.strip(), value, "--set")
    return overrides


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a TOML spec file: top-level ``key = value`` pairs, the same keys as ``--set``."""
    if not path.exists():
        raise SpecError(f"--spec {path}: file not found")
    try:
        data = tomllib.loads(read_small_text(path))
    except FileRefused as exc:
        raise SpecError(f"--spec {path}: {exc}; a spec is a small TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"--spec {path}: not valid TOML ({exc})") from None
    return {key: _coerce(key, value, f"--spec {path}") for key, value in data.items()}


def build_spec(
    spec_file: Path | None = None,
    assignments: Iterable[str] = (),
    quick: bool = False,
) -> Spec:
    """Defaults, then the --quick preset, then the spec file, then --set (last wins)."""
    values: dict[str, Any] = {}
    if quick:
        values.update(QUICK_PRESET)
    if spec_file is not None:
        values.update(load_spec_file(spec_file))
    values.update(parse_assignments(assignments))
    return spec_from_dict(values)


def spec_from_dict(values: Mapping[str, Any]) -> Spec:
    unknown = set(values) - set(_field_types())
    if unknown:
        raise SpecError(
            f"spec: unknown key {sorted(unknown)[0]!r}; known keys: {', '.join(_field_types())}"
        )
    return Spec(**values)


SWEEP_THREADS = "threads"


@dataclass(frozen=True)
class SweepPoint:
    name: str  # "batch=50,hidden=100": the swept keys and their values here
    spec: Spec


def parse_sweeps(items: Iterable[str]) -> dict[str, list[str]]:
    """``["batch=50,100", "threads=1,2"]`` → ``{"batch": ["50", "100"], "threads": [...]}``."""
    sweeps: dict[str, list[str]] = {}
    known = [*_field_types(), SWEEP_THREADS]
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        parts = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(parts):
            raise SpecError(f"--sweep {item!r}: expected KEY=V1,V2,…, e.g. --sweep batch=50,100")
        if key not in known:
            raise SpecError(f"--sweep: unknown key {key!r}; known keys: {', '.join(known)}")
        if key in sweeps:
            raise SpecError(f"--sweep: {key} is swept twice; give all its values in one --sweep")
        sweeps[key] = parts
    return sweeps


def sweep_points(base: Spec, sweeps: Mapping[str, list[str]]) -> list[SweepPoint]:
    """The cartesian product of the swept spec keys (threads are handled by the runner)."""
    keys = [k for k in sweeps if k != SWEEP_THREADS]
    points = []
    for combination in itertools.product(*(sweeps[k] for k in keys)):
        values = {k: _coerce(k, v, "--sweep") for k, v in zip(keys, combination, strict=True)}
        name = ",".join(f"{k}={v}" for k, v in zip(keys, combination, strict=True))
        points.append(SweepPoint(name, spec_from_dict({**base.to_dict(), **values})))
    return points
