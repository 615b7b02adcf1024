"""Runs whose time is suspect, as readers show them: the record's ``flagged`` lines (the rules
are harness.runner.flags) folded per key, and what the runs spent outside the timed region."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd


def flag_kind(line: str) -> str:
    """A flag line's kind: the words before its first colon ("over budget")."""
    return line.split(":", 1)[0]


def flag_lines(flagged: Iterable[Any]) -> list[str]:
    """The first line of each kind among the runs' ``flagged`` lists, in order of kind."""
    first: dict[str, str] = {}
    for lines in flagged:
        for line in lines if isinstance(lines, list) else []:
            first.setdefault(flag_kind(line), line)
    return [first[kind] for kind in sorted(first)]


def untimed_medians(untimed: Iterable[Any]) -> dict[str, float]:
    """Median wall seconds of each kind of untimed call over the runs (schema 3 records)."""
    seconds: dict[str, list[float]] = {}
    for calls in untimed:
        for kind, entry in (calls if isinstance(calls, dict) else {}).items():
            seconds.setdefault(kind, []).append(float(entry["wall_s"]))
    return {kind: float(pd.Series(values).median()) for kind, values in sorted(seconds.items())}


@dataclass(frozen=True)
class Flagged:
    """How many of a key's ok runs are flagged, and the first line of each kind of reason."""

    runs: int
    lines: list[str]

    @classmethod
    def of(cls, flagged: Iterable[Any]) -> Flagged:
        flagged = list(flagged)
        return cls(sum(bool(f) for f in flagged), flag_lines(flagged))


def flagged_status(statuses: str, flags: Flagged) -> str:
    """The status cell: what went wrong, and how many ok runs are flagged and for what."""
    if not flags.runs:
        return statuses
    kinds = ", ".join(flag_kind(line) for line in flags.lines)
    return f"{statuses} ⚠ {flags.runs} flagged ({kinds})"


def proof_cost(proofs: Iterable[Any]) -> float | None:
    """The median cost of the runs' proofs, in seconds; None when none was proven."""
    costs = [p["cost_s"] for p in proofs if isinstance(p, dict)]
    return float(pd.Series(costs).median()) if costs else None
