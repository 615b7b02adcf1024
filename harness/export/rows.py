"""The one summary table every summary format renders: a row per comparability key, fastest
first, with the key, medians, spread, the speed ratio and its interval."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pandas as pd

from harness.results.summary import summarize


def fastest_first(rows: pd.DataFrame) -> pd.DataFrame:
    return (
        rows.sort_values("train_time_s", na_position="last", kind="stable") if len(rows) else rows
    )


def summary_table(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """``summarize``'s rows, fastest first: what the terminal table shows."""
    return fastest_first(summarize(frame, baseline))


def _number(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def summary_records(frame: pd.DataFrame, baseline: str | None = None) -> list[dict[str, Any]]:
    """The summary rows for scripts (``run --json``, ``export``): plain JSON values."""
    return [
        {
            "key": asdict(row.key),
            "session": row.session,
            "runs": row.runs,
            "runs_ok": row.runs_ok,
            "statuses": row.statuses,
            # Ok runs whose time is suspect, and one line per kind of reason (schema 3 records).
            "flagged_runs": row.flagged_runs,
            "flags": row.flag_lines,
            # Median wall seconds outside the timed region, per kind of call, and the proof's.
            "untimed_median_s": row.untimed_s,
            "proof_cost_median_s": _number(row.proof_cost_s),
            "train_time_median_s": _number(row.train_time_s),
            "train_time_min_s": _number(row.train_time_min_s),
            "train_time_max_s": _number(row.train_time_max_s),
            "train_time_cv": _number(row.train_time_cv),
            "baseline": row.baseline,
            "speedup": _number(row.speedup.value),
            "speedup_ci_low": _number(row.speedup.low),
            "speedup_ci_high": _number(row.speedup.high),
            "cpu_util": _number(row.cpu_util),
            "train_acc": _number(row.train_acc),
            "test_acc": _number(row.test_acc),
            "peak_rss_bytes": _number(row.peak_rss_bytes),
            "gemm_rate_gflops": _number(row.gemm_rate_gflops),
            "gemm_bound_s": _number(row.gemm_bound_s),
            # The job's FLOPs per second, and the FLOPs the backend declared it executed
            # (null where it did not declare: the job's work).
            "job_gflops": _number(row.gflops),
            "executed_gflops": _number(row.executed_gflops),
            "skipped_work": row.skipped_work,
            # Time to accuracy: the median training time to the target when every ok run of
            # the key reached it (null otherwise), and its ratio against the baseline.
            "target": row.target,
            "target_runs_reached": row.target_reached,
            "time_to_target_median_s": _number(row.time_to_target_s),
            "target_speedup": _number(row.target_speedup.value),
            "target_speedup_ci_low": _number(row.target_speedup.low),
            "target_speedup_ci_high": _number(row.target_speedup.high),
        }
        for row in summary_table(frame, baseline).itertuples()
    ]


def flat_summary(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """The summary records with the key's fields as columns (CSV, Markdown)."""
    rows = []
    for record in summary_records(frame, baseline):
        untimed = record.pop("untimed_median_s")
        record["flags"] = "; ".join(record["flags"])
        record.update({f"untimed_{kind}_median_s": s for kind, s in untimed.items()})
        rows.append({**record.pop("key"), **record})
    return pd.DataFrame(rows)
