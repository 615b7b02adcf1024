"""The summary every summary format renders, fastest first: ``columns`` says what each column is
called and holds; this module orders the rows and flattens them for tabular files."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.export import columns
from harness.results.summary import summarize


def fastest_first(rows: pd.DataFrame) -> pd.DataFrame:
    return (
        rows.sort_values("train_time_s", na_position="last", kind="stable") if len(rows) else rows
    )


def summary_table(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """``summarize``'s rows, fastest first: what every summary format shows."""
    return fastest_first(summarize(frame, baseline))


def summary_records(frame: pd.DataFrame, baseline: str | None = None) -> list[dict[str, Any]]:
    """The summary rows for scripts (``run --json``, ``export``): plain JSON values."""
    return columns.records(summary_table(frame, baseline))


def flat_summary(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """The summary records with the key's fields as columns (CSV)."""
    rows = []
    for record in summary_records(frame, baseline):
        untimed = record.pop("untimed_median_s")
        record["flags"] = "; ".join(record["flags"])
        record.update({f"untimed_{kind}_median_s": s for kind, s in untimed.items()})
        rows.append({**record.pop("key"), **record})
    return pd.DataFrame(rows)
