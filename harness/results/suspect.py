"""Runs whose time is suspect, as readers show them: the record's ``flagged`` lines (the rules
are harness.runner.flags) folded per key, and what the runs spent outside the timed region."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

NOISY_CV = 0.05  # above this, tables warn that the machine was too noisy for precision
BUSY_ABOVE = 0.20  # a run that started with more of the CPUs busy elsewhere is flagged


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


def warnings(summary: pd.DataFrame) -> list[str]:
    """Plain-text cautions for the rows of ``summarize``, one line per kind when several keys
    share it: flagged runs, runs of several commits or versions pooled, noisy repeats, a busy
    machine."""
    lines = []
    for row in summary.itertuples():
        where = f"{row.backend} @{row.threads}"
        for line in row.flag_lines:
            lines.append(f"flagged {where}: {row.flagged_runs} of {row.runs_ok} ok runs: {line}")
        for what, values in (("commits", row.commits), ("versions", row.versions)):
            if len(values) > 1:
                lines.append(
                    f"mixed {where}: its ok runs come from {len(values)} {what} "
                    f"({', '.join(values)}) and one median pools them; report them apart"
                )
    noisy = [
        row
        for row in summary.itertuples()
        if pd.notna(row.train_time_cv) and row.train_time_cv > NOISY_CV
    ]
    if noisy:
        which = ", ".join(f"{r.backend} @{r.threads} {r.train_time_cv:.1%}" for r in noisy)
        lines.append(
            f"noisy: {len(noisy)} of {len(summary)} keys varied by more than {NOISY_CV:.0%} (CV) "
            f"across repeats ({which}); their medians are less precise than they look (quieter "
            "machine, --pin, or more --repeats)"
        )
    busy = [row for row in summary.itertuples() if row.busy_runs]
    if busy:
        which = ", ".join(f"{r.backend} @{r.threads}: {r.busy_runs} of {r.runs}" for r in busy)
        lines.append(
            f"busy: {sum(r.busy_runs for r in busy)} of {int(summary['runs'].sum())} runs "
            f"started while other processes kept more than {BUSY_ABOVE:.0%} of the CPUs busy "
            f"({which}); their times are suspect"
        )
    return lines
