"""Records → pandas DataFrame → one summary row per (backend, threads); shared by CLI and report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.data import N_CLASSES
from harness.errors import HarnessError
from harness.spec import spec_from_dict

COLUMNS = [
    "backend",
    "status",
    "repeat",
    "threads",
    "train_time_s",
    "cpu_time_s",
    "cpu_util",
    "setup_time_s",
    "peak_rss_bytes",
    "train_acc",
    "test_acc",
    "final_loss",
    "error",
    "build_info",
    "spec",
    "data",
    "curve",
    "session",
    "env",
    "threads_observed",
    "phases",
]


def _job_gflop(record: dict[str, Any]) -> float | None:
    """The FLOPs of the record's whole job (its spec, its data's input width), in GFLOP."""
    try:
        spec = spec_from_dict(record["spec"])
    except (KeyError, TypeError, HarnessError):
        return None
    data = record.get("data") or {}
    n_features = data.get("n_features", 784)
    return spec.flops_per_iteration(n_features, N_CLASSES) * spec.iterations / 1e9


def to_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run; missing optional fields become NaN, unknown extra fields are kept."""
    frame = pd.DataFrame.from_records(list(records))
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["job_gflop"] = [_job_gflop(r) for r in records]
    for column in (
        "train_time_s",
        "cpu_util",
        "setup_time_s",
        "peak_rss_bytes",
        "train_acc",
        "test_acc",
        "job_gflop",
    ):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["threads"] = frame["threads"].astype(object).where(frame["threads"].notna(), "default")
    if "variant" not in frame:
        frame["variant"] = ""
    frame["variant"] = frame["variant"].fillna("").astype(str)
    return frame


def fmt(value: Any, pattern: str, suffix: str = "") -> str:
    """A number for a table; a missing one (None or NaN) as an en dash."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return format(value, pattern) + suffix


NOISY_CV = 0.05  # above this, the table warns that the machine was too noisy for precision


def _peak(runs: pd.DataFrame, threads: object) -> float | None:
    """The session roofline for this thread count: one core, or every core."""
    for env in runs["env"]:
        roofline = env.get("roofline") if isinstance(env, dict) else None
        if roofline:
            one = threads in (1, "1")
            return roofline["gflops_1core"] if one else roofline["gflops_all_cores"]
    return None


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Medians over the successful runs of each backend and thread count; counts of all runs."""
    rows = []
    for (backend, threads, variant), group in frame.groupby(
        ["backend", "threads", "variant"], sort=True
    ):
        ok = group[group["status"] == "ok"]
        bad = group[group["status"] != "ok"]
        debug = any(
            isinstance(info, dict) and info.get("profile") == "debug"
            for info in group["build_info"]
        )
        times = ok["train_time_s"].dropna()
        rows.append(
            {
                "backend": backend,
                "threads": threads,
                "variant": variant,
                "runs_ok": len(ok),
                "runs": len(group),
                "train_time_s": ok["train_time_s"].median(),
                "train_time_min_s": ok["train_time_s"].min(),
                "train_time_max_s": ok["train_time_s"].max(),
                "cpu_util": ok["cpu_util"].median(),
                "train_acc": ok["train_acc"].median(),
                "test_acc": ok["test_acc"].median(),
                "setup_time_s": ok["setup_time_s"].median(),
                "peak_rss_bytes": ok["peak_rss_bytes"].median(),
                "statuses": ", ".join(sorted(set(bad["status"]))) or "ok",
                "debug_build": debug,
                "gflops": ok["job_gflop"].median() / ok["train_time_s"].median(),
                "train_time_iqr_s": times.quantile(0.75) - times.quantile(0.25),
                # Sample standard deviation over mean; needs two runs.
                "train_time_cv": times.std(ddof=1) / times.mean() if len(times) > 1 else None,
                "peak_gflops": _peak(ok, threads),
                "threads_observed": pd.to_numeric(ok["threads_observed"], errors="coerce").max(),
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    # Speed-up against the NumPy backend at the same thread count: the book's code is the yardstick.
    numpy = summary[summary["backend"] == "numpy"]
    numpy_times = {(row.threads, row.variant): row.train_time_s for row in numpy.itertuples()}
    summary["speedup_vs_numpy"] = [
        numpy_times.get((threads, variant), float("nan")) / time
        for threads, variant, time in zip(
            summary["threads"], summary["variant"], summary["train_time_s"], strict=True
        )
    ]
    return summary
