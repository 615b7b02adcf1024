"""The runs of a matrix: which backend, thread count, sweep point and repeat, in what order."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from harness.backends import BackendRef
from harness.results.key import threads_label
from harness.results.model import MatrixEntry, record_filename


@dataclass(frozen=True)
class RunItem:
    backend: BackendRef
    threads: int | None
    repeat: int
    order: int = 0  # position in the matrix as run
    warmup: bool = False  # run, then discarded: nothing is stored
    variant: str = ""  # the sweep point, e.g. "batch=50,hidden=100"; "" without --sweep
    attempt: int = 1  # 2, 3, …: run --resume redoing a lost (or, asked, failed) record

    @property
    def label(self) -> str:
        which = "warm-up" if self.warmup else f"repeat {self.repeat + 1}"
        which += f", attempt {self.attempt}" if self.attempt > 1 else ""
        point = f" · {self.variant}" if self.variant else ""
        return f"{self.backend.name} · threads {threads_label(self.threads)}{point} · {which}"

    @property
    def filename(self) -> str:
        return record_filename(
            self.backend.name, self.threads, self.repeat, self.variant, self.attempt
        )

    def entry(self) -> MatrixEntry:
        return MatrixEntry(
            backend=self.backend.name,
            target=self.backend.target,
            threads=self.threads,
            repeat=self.repeat,
            order=self.order,
            variant=self.variant,
        )


def interleaved(
    refs: Sequence[BackendRef],
    threads: Sequence[int | None],
    repeats: int,
    warmup: bool = False,
    variants: Sequence[str] = ("",),
) -> list[RunItem]:
    """A B C A B C …: drifting machine load spreads over every backend instead of hitting one.

    Each repeat visits every sweep point × thread count × backend before the next repeat starts.
    With ``warmup``, one discarded run per cell goes first (caches, page faults, lazy library
    start-up).
    """
    cells = [(ref, t, name) for name in variants for t in threads for ref in refs]
    plan = [(ref, t, v, 0, True) for ref, t, v in cells] if warmup else []
    plan += [(ref, t, v, r, False) for r in range(repeats) for ref, t, v in cells]
    return [RunItem(ref, t, r, i, w, v) for i, (ref, t, v, r, w) in enumerate(plan)]


def warmups_for(items: Sequence[RunItem]) -> list[RunItem]:
    """One discarded run per cell still to run, before them (a resumed --warmup session)."""
    cells = dict.fromkeys((i.backend, i.threads, i.variant) for i in items)
    return [RunItem(ref, t, 0, -1, True, v) for ref, t, v in cells]


def pinned_cpus(threads: int | None) -> list[int]:
    """The CPUs a pinned worker with ``threads`` threads gets: the first ``threads`` allowed."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed if threads is None else allowed[: max(1, threads)]
