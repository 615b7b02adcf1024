"""``run --precision PCT``: interleaved rounds until every cell's median is known to ±PCT %.

A cell is one backend × thread count × sweep point. After the planned repeats, each cell's
median training time gets its 95 % bootstrap interval; a cell whose interval's larger half is
wider than PCT % of the median gets one more run, all such cells in one interleaved round, and
so on, until every cell is there, or has ``max_repeats`` runs, or its last run did not finish ok
(more runs of a failing backend would not narrow anything). What each cell reached is said, by
name, in the run's closing lines and kept in session.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.results.key import threads_label
from harness.results.model import RunRecord
from harness.results.stats import MIN_REPEATS, median_interval
from harness.runner.items import RunItem


@dataclass(frozen=True)
class CellPrecision:
    """Where one cell stands: its runs, ok times and the half-width its median has reached."""

    item: RunItem  # the cell's first planned run, standing for the cell
    runs: int
    reached: float | None  # the interval's larger half over the median; None: not computable
    last_ok: bool

    @property
    def label(self) -> str:
        point = f" [{self.item.variant}]" if self.item.variant else ""
        return f"{self.item.backend.name} @{threads_label(self.item.threads)}{point}"

    def text(self) -> str:
        shown = "–" if self.reached is None else f"±{self.reached:.1%}"
        return f"{self.label} {shown} ({self.runs} runs)"


def reached(times: Sequence[float]) -> float | None:
    """The larger half of the median's 95 % interval over the median; None below 3 runs."""
    if len(times) < MIN_REPEATS:
        return None
    middle, low, high = median_interval(times)
    if not (math.isfinite(low) and math.isfinite(high)) or middle <= 0:
        return None
    return max(high - middle, middle - low) / middle


def standing(cells: Sequence[RunItem], records: Sequence[RunRecord]) -> list[CellPrecision]:
    """Each cell's precision from the session's records so far."""
    out = []
    for cell in cells:
        mine = sorted(
            (
                r
                for r in records
                if (r.backend, r.threads, r.variant)
                == (cell.backend.name, cell.threads, cell.variant)
            ),
            key=lambda r: r.repeat,
        )
        times = [r.train_time_s for r in mine if r.status == "ok" and r.train_time_s is not None]
        out.append(
            CellPrecision(cell, len(mine), reached(times), bool(mine) and mine[-1].status == "ok")
        )
    return out


def next_round(
    cells: Sequence[CellPrecision], percent: float, max_repeats: int, first_order: int
) -> list[RunItem]:
    """One more run of each cell short of ``percent`` that may still get there, interleaved."""
    wanted = [
        cell
        for cell in cells
        if cell.last_ok
        and cell.runs < max_repeats
        and (cell.reached is None or cell.reached > percent / 100)
    ]
    return [
        RunItem(
            cell.item.backend,
            cell.item.threads,
            repeat=cell.runs,
            order=first_order + i,
            variant=cell.item.variant,
        )
        for i, cell in enumerate(wanted)
    ]


def closing_lines(cells: Sequence[CellPrecision], percent: float, max_repeats: int) -> list[str]:
    """What each cell reached; the cells that did not get there named, with why."""
    short = [c for c in cells if c.reached is None or c.reached > percent / 100]
    lines = [
        f"precision asked: ±{percent:g} % (95 % interval of each median); reached: "
        + ", ".join(cell.text() for cell in cells)
    ]
    for cell in short:
        why = (
            f"--max-repeats {max_repeats} reached"
            if cell.runs >= max_repeats
            else "its last run did not finish ok"
            if not cell.last_ok
            else "stopped"
        )
        lines.append(f"not within ±{percent:g} %: {cell.text()}: {why}")
    return lines
