"""The comparability key: which runs measured the same thing, defined once for every reader.

Two runs are pooled (a median, a pyperf benchmark, a compare pair) only when every field of their
``RunKey`` is equal: the same job (spec hash and sweep point), backend and the algorithm it ran
(a backend that skips work declares it: ``hooks.DeclaresWork``), thread count, machine, and
measurement flags that change timings. The session is deliberately not part of it: repeats of
one key from several sessions on one machine belong together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.results.model import RunRecord

# env fields that identify a machine. Two machines of one name have measured 2× apart, so the
# host name alone is not enough: the machine id, CPU, core count and memory go in too.
MACHINE_FIELDS = ("hostname", "machine_id", "cpu_model", "cores_logical", "memory_bytes")
FLAGS = ("pin", "profile", "warmup")
# How much of the machine must agree for runs to pair (compare --match): "exact", the same
# machine; "cpu", the same kind of machine (CI runners of one type: same CPU, cores, memory);
# "any", whatever machine (the ratio then compares the machines as well).
MATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "exact": MACHINE_FIELDS,
    "cpu": ("cpu_model", "cores_logical", "memory_bytes"),
    "any": (),
}


@dataclass(frozen=True)
class RunKey:
    spec_hash: str
    variant: str
    backend: str
    threads: str  # "1", "2", … or "default"
    machine: str  # fingerprint, see machine_fingerprint
    pin: bool
    profile: bool
    warmup: bool
    # Last, so the columns of earlier exports keep their places: "dense" (the job's products),
    # or what the backend declared it ran instead ("sparse").
    algorithm: str = "dense"

    @classmethod
    def of(cls, record: RunRecord) -> RunKey:
        return cls(
            spec_hash=record.spec_hash,
            variant=record.variant,
            backend=record.backend,
            algorithm=record.algorithm,
            threads=threads_label(record.threads),
            machine=machine_fingerprint(record.env),
            pin=record.pin,
            profile=record.profile,
            warmup=record.warmup,
        )

    def flags(self) -> str:
        return ",".join(flag for flag in FLAGS if getattr(self, flag)) or "none"

    def sort_key(self) -> tuple:
        """Tables list backends together, thread counts in numeric order, "default" last."""
        threads = int(self.threads) if self.threads.isdigit() else float("inf")
        return (
            self.backend,
            self.algorithm,
            self.variant,
            self.spec_hash,
            threads,
            self.machine,
            self.flags(),
        )


KEY_FIELDS = tuple(f.name for f in fields(RunKey))


def threads_label(threads: int | None) -> str:
    return "default" if threads is None else str(threads)


def threads_text(label: str) -> str:
    """A key's thread label in a sentence: ``1 thread``, ``2 threads``, ``default threads``."""
    return f"{label} thread" + ("" if label == "1" else "s")


def machine_fingerprint(env: Mapping[str, Any], match: str = "exact") -> str:
    """12 hex digits from the machine's identity fields (those a record lacks count as absent);
    with ``match``, from the fields that level of matching compares only."""
    identity = {name: env.get(name) for name in MATCH_FIELDS[match]}
    canonical = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def machine_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The machine identity fields in which two environments differ."""
    return [name for name in MACHINE_FIELDS if a.get(name) != b.get(name)]


def machine_label(env: Mapping[str, Any]) -> str:
    """A person's name for the machine: CPU model, core count, host, fingerprint."""
    cores = env.get("cores_logical")
    host = env.get("hostname")
    parts = [str(env.get("cpu_model") or "unknown CPU")]
    if cores:
        parts.append(f"{cores} cores")
    if host:
        parts.append(f"host {host}")
    return f"{', '.join(parts)} [{machine_fingerprint(env)[:6]}]"


def spec_differences(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The spec keys whose values differ between ``specs``, in the spec's own order."""
    specs = [dict(s) for s in specs]
    keys: list[str] = []
    for spec in specs:
        keys += [k for k in spec if k not in keys]
    return [k for k in keys if len({json.dumps(s.get(k)) for s in specs}) > 1]


def spec_label(spec: Mapping[str, Any], differing: Iterable[str]) -> str:
    """``hidden=60,lr=0.05``: this spec's values of the keys that differ across the runs."""
    return ",".join(f"{k}={spec.get(k)}" for k in differing) or "same"


@dataclass(frozen=True)
class Variation:
    """Which parts of the key vary across a set of runs, so tables show exactly those columns."""

    spec_keys: tuple[str, ...]  # spec keys with more than one value
    machines: int
    flag_sets: int
    sessions: int

    @classmethod
    def measure(
        cls,
        specs: Iterable[Mapping[str, Any]],
        machines: Iterable[str],
        flag_sets: Iterable[str],
        sessions: Iterable[str],
    ) -> Variation:
        return cls(
            spec_keys=tuple(spec_differences(specs)),
            machines=len(set(machines)),
            flag_sets=len(set(flag_sets)),
            sessions=len(set(sessions)),
        )

    def columns(self) -> list[str]:
        """Extra table columns, beyond backend and threads, that tell the rows apart."""
        columns = []
        if self.sessions > 1:
            columns.append("session")
        if self.machines > 1:
            columns.append("machine")
        if self.spec_keys:
            columns.append("spec")
        if self.flag_sets > 1:
            columns.append("flags")
        return columns

    def sentence(self) -> str:
        """One line for the top of a report: what differs between the runs, if anything."""
        parts = []
        if self.spec_keys:
            parts.append(f"spec ({', '.join(self.spec_keys)})")
        if self.machines > 1:
            parts.append(f"machine ({self.machines} machines)")
        if self.flag_sets > 1:
            parts.append(f"measurement flags ({self.flag_sets} sets of {'/'.join(FLAGS)})")
        if not parts:
            return "All runs share one spec, one machine and one set of measurement flags."
        return (
            "These runs differ in "
            + "; ".join(parts)
            + ": each row pools only runs that agree on all of them."
        )
