"""Training times as a pyperf benchmark suite, for ``python -m pyperf stats|compare_to``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyperf

from harness.errors import ResultsError


def to_pyperf(frame: pd.DataFrame) -> pyperf.BenchmarkSuite:
    """One benchmark per backend and thread count; one pyperf run (one value) per ok run."""
    benchmarks = []
    ok = frame[(frame["status"] == "ok") & frame["train_time_s"].notna()]
    for (backend, threads), group in ok.groupby(["backend", "threads"], sort=True):
        name = f"{backend}-threads-{threads}"
        runs = [
            pyperf.Run(
                [float(seconds)],
                metadata={"name": name, "unit": "second", "loops": 1},
                collect_metadata=False,
            )
            for seconds in group["train_time_s"]
        ]
        benchmarks.append(pyperf.Benchmark(runs))
    if not benchmarks:
        raise ResultsError("no ok runs to export")
    return pyperf.BenchmarkSuite(benchmarks)


def export_pyperf(frame: pd.DataFrame, path: Path) -> None:
    suite = to_pyperf(frame)
    try:
        suite.dump(str(path), replace=True)
    except OSError as exc:
        raise ResultsError(f"cannot write {path}: {exc.strerror or exc}") from None
