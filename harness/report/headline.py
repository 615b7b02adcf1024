"""The report's first lines: the fastest backend at each thread count, when that answer holds."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report.tables import thread_order
from harness.results.summary import backend_label, label_columns, summarize
from harness.results.suspect import flag_kind

# A key whose median test accuracy is this far below the median of the keys it is ranked among
# did not do the job (a backend that predicts one class, or trains nothing): never the answer.
HEADLINE_ACCURACY_TOLERANCE = 0.01
# An interval whose ends differ by more than this factor cannot say by how much.
WIDE_INTERVAL = 1.5


def headline(
    frame: pd.DataFrame, baseline: str | None = None, summary: pd.DataFrame | None = None
) -> list[str]:
    """The one-line answers: the fastest backend at each thread count (and spec, machine, …),
    ranked among the keys whose runs are unflagged and whose accuracy shows they did the job;
    the others follow, each with why it was not ranked."""
    summary = summarize(frame, baseline) if summary is None else summary
    if summary.empty:
        return []
    ok = summary[summary["train_time_s"].notna()]
    extra = [column for _, column in label_columns(frame) if column != "session"]
    ranked, unranked = [], []
    for _, group in ok.groupby(["threads", *extra], sort=False):
        accuracy = group["test_acc"].median()
        eligible = []
        for row in group.itertuples():
            name = f"{backend_label(row.backend, row.algorithm)} @{row.threads}"
            if row.flagged_runs:
                kinds = ", ".join(flag_kind(line) for line in row.flag_lines)
                unranked.append(
                    f"not ranked: {name}, {row.flagged_runs} of {row.runs_ok} runs flagged "
                    f"({kinds})"
                )
            elif row.test_acc < accuracy - HEADLINE_ACCURACY_TOLERANCE:
                unranked.append(
                    f"not ranked: {name}, test accuracy {row.test_acc:.4f}, more than "
                    f"{HEADLINE_ACCURACY_TOLERANCE:g} below the median of the keys beside it "
                    f"({accuracy:.4f}): it did not do the job"
                )
            else:
                eligible.append(row)
        if not eligible:
            continue
        best = min(eligible, key=lambda row: row.train_time_s)
        where = f"{best.threads} thread{'s' if best.threads != '1' else ''}"
        where += "".join(f", {getattr(best, c)}" for c in extra)
        name = backend_label(best.backend, best.algorithm)
        ranked.append(f"fastest at {where}: {name}, {best.train_time_s:.2f} s ({_versus(best)})")
    ranked.sort(key=lambda line: thread_order(line.split()[2]))
    return ranked + unranked


def _versus(row: Any) -> str:
    """The headline's ratio against the baseline, with its interval, saying plainly when the
    interval cannot say by how much."""
    if row.backend == row.baseline:
        return "the baseline"
    ratio = row.speedup
    text = f"{ratio.text()} {row.baseline}"
    if not ratio.has_interval:
        return f"{text}; too few repeats to say by how much"
    if ratio.low > 0 and ratio.high / ratio.low > WIDE_INTERVAL:
        return f"{text}; the interval is too wide to say by how much"
    return text
