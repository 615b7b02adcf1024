"""The one row model of the summary: every column any renderer shows, with its heading, its text
for people and its fields for scripts. The terminal table, report.md, index.html and every
``export`` format render these columns and nothing else, so a column has one name everywhere.

A column that only some summaries need (the executed-work columns, shown where a backend skips
work) still gives its fields to every export: scripts read the same fields whatever was run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from harness.results.stats import min_detectable
from harness.results.summary import backend_label, fmt, label_columns, skips_work, to_target_text
from harness.results.suspect import NOISY_CV

Row = Any  # a row of ``summarize``, read through ``itertuples``


def _number(value: Any) -> Any:
    """A JSON value: None for a missing or NaN number."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _always(_: pd.DataFrame) -> bool:
    return True


def _none(_: Row) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Column:
    """``heading`` may depend on the summary (the baseline's name, the target); ``first_screen``
    columns make the terminal table; ``shown`` says whether people see it for this summary."""

    heading: str | Callable[[pd.DataFrame], str]
    text: Callable[[Row], str]
    fields: Callable[[Row], dict[str, Any]] = _none
    first_screen: bool = True
    shown: Callable[[pd.DataFrame], bool] = _always
    left: bool = False  # words, not numbers

    def title(self, summary: pd.DataFrame) -> str:
        return self.heading(summary) if callable(self.heading) else self.heading


def _backend(row: Row) -> str:
    name = backend_label(row.backend, row.algorithm)
    return f"{name} (debug build)" if row.debug_build else name


def _cv(row: Row) -> str:
    """Coefficient of variation of the repeats, flagged when the machine was too noisy."""
    cv = row.train_time_cv
    if cv is None or pd.isna(cv):
        return "–"
    return f"{cv * 100:.1f} %" + (" ⚠" if cv > NOISY_CV else "")


def _share(gflops: Any, rate: Any) -> str:
    return fmt(gflops / rate * 100 if pd.notna(rate) and pd.notna(gflops) else None, ".0f", " %")


def _detectable(row: Row) -> float | None:
    return min_detectable(row.speedup) if row.backend != row.baseline else None


def _baseline(summary: pd.DataFrame) -> str:
    return str(summary["baseline"].iloc[0]) if len(summary) else "baseline"


def _target(summary: pd.DataFrame) -> str:
    return str(summary["target"].iloc[0]) if len(summary) else "target"


def _ratio_fields(prefix: str, ratio: Any) -> dict[str, Any]:
    return {
        prefix: _number(ratio.value),
        f"{prefix}_ci_low": _number(ratio.low),
        f"{prefix}_ci_high": _number(ratio.high),
    }


COLUMNS: tuple[Column, ...] = (
    Column(
        "backend",
        _backend,
        lambda r: {"key": asdict(r.key), "session": r.session},
        left=True,
    ),
    Column("threads", lambda r: str(r.threads)),
    Column(
        "train time s",
        lambda r: fmt(r.train_time_s, ".2f"),
        lambda r: {"train_time_median_s": _number(r.train_time_s)},
    ),
    Column(
        "min–max s",
        lambda r: f"{fmt(r.train_time_min_s, '.2f')}–{fmt(r.train_time_max_s, '.2f')}",
        lambda r: {
            "train_time_min_s": _number(r.train_time_min_s),
            "train_time_max_s": _number(r.train_time_max_s),
        },
        first_screen=False,
    ),
    Column("CV", _cv, lambda r: {"train_time_cv": _number(r.train_time_cv)}),
    Column(
        lambda s: f"speed vs {_baseline(s)} [95 % CI]",
        lambda r: r.speedup.text(),
        lambda r: {"baseline": r.baseline, **_ratio_fields("speedup", r.speedup)},
    ),
    Column(
        # The smallest change the ratio's spread lets it tell from noise (stats.min_detectable).
        "sees a change of",
        lambda r: "–" if _detectable(r) is None else f"≥ {_detectable(r):.0%}",
        lambda r: {"speedup_min_detectable": _detectable(r)},
        first_screen=False,
    ),
    Column(
        lambda s: f"time to {_target(s)} s",
        to_target_text,
        lambda r: {
            "target": r.target,
            "target_runs_reached": r.target_reached,
            "time_to_target_median_s": _number(r.time_to_target_s),
        },
    ),
    Column(
        lambda s: f"speed to {_target(s)} [95 % CI]",
        lambda r: r.target_speedup.text(),
        lambda r: _ratio_fields("target_speedup", r.target_speedup),
    ),
    Column(
        "CPU use",
        lambda r: fmt(r.cpu_util * 100 if pd.notna(r.cpu_util) else None, ".0f", " %"),
        lambda r: {"cpu_util": _number(r.cpu_util)},
    ),
    Column("GFLOP/s", lambda r: fmt(r.gflops, ".1f"), lambda r: {"job_gflops": _number(r.gflops)}),
    Column(
        # Where a backend skips work: the rate of the FLOPs it declared it executed.
        "executed GFLOP/s",
        lambda r: "= job" if r.algorithm == "dense" else fmt(r.executed_gflops, ".1f"),
        lambda r: {"executed_gflops": _number(r.executed_gflops), "skipped_work": r.skipped_work},
        shown=skips_work,
    ),
    Column(
        "GEMM-rate bound",
        lambda r: fmt(r.gemm_bound_s, ".2f", " s"),
        lambda r: {
            "gemm_rate_gflops": _number(r.gemm_rate_gflops),
            "gemm_bound_s": _number(r.gemm_bound_s),
        },
        first_screen=False,
    ),
    Column(
        "% of GEMM rate",
        lambda r: _share(r.gflops, r.gemm_rate_gflops),
        first_screen=False,
    ),
    Column(
        "% of GEMM rate, executed",
        lambda r: (
            "= job" if r.algorithm == "dense" else _share(r.executed_gflops, r.gemm_rate_gflops)
        ),
        first_screen=False,
        shown=skips_work,
    ),
    Column(
        "peak RSS",
        lambda r: fmt(
            r.peak_rss_bytes / 2**20 if pd.notna(r.peak_rss_bytes) else None, ".0f", " MiB"
        ),
        lambda r: {"peak_rss_bytes": _number(r.peak_rss_bytes)},
        first_screen=False,
    ),
    Column(
        "setup",
        lambda r: fmt(r.setup_time_s, ".2f", " s"),
        lambda r: {"setup_time_median_s": _number(r.setup_time_s)},
        first_screen=False,
    ),
    Column(
        "train acc",
        lambda r: fmt(r.train_acc, ".4f"),
        lambda r: {"train_acc": _number(r.train_acc)},
    ),
    Column(
        "test acc", lambda r: fmt(r.test_acc, ".4f"), lambda r: {"test_acc": _number(r.test_acc)}
    ),
    Column(
        "runs ok",
        lambda r: f"{r.runs_ok}/{r.runs}",
        lambda r: {"runs": r.runs, "runs_ok": r.runs_ok},
    ),
    Column(
        "status",
        lambda r: r.statuses,
        lambda r: {
            "statuses": r.statuses,
            # Ok runs whose time is suspect, and one line per kind of reason (schema 3 records).
            "flagged_runs": r.flagged_runs,
            "flags": r.flag_lines,
            # Median wall seconds outside the timed region, per kind of call, and the proof's.
            "untimed_median_s": r.untimed_s,
            "proof_cost_median_s": _number(r.proof_cost_s),
        },
        left=True,
    ),
)


@dataclass(frozen=True)
class Cells:
    """A summary as people read it: headings, one text per cell, and which columns hold words."""

    headings: list[str]
    rows: list[list[str]]
    left: set[str]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.headings)


def cells(summary: pd.DataFrame, first_screen_only: bool = False) -> Cells:
    """The summary's rows (fastest first as given) in the columns people see for it, with the
    key parts that vary across them (session, machine, spec, flags) after the threads."""
    shown = [c for c in COLUMNS if c.shown(summary) and (c.first_screen or not first_screen_only)]
    labels = label_columns(summary) if len(summary) else []
    headings = [c.title(summary) for c in shown]
    at = headings.index("threads") + 1
    headings[at:at] = [heading for heading, _ in labels]
    rows = []
    for row in summary.itertuples():
        texts = [c.text(row) for c in shown]
        texts[at:at] = [str(getattr(row, column)) for _, column in labels]
        rows.append(texts)
    left = {c.title(summary) for c in shown if c.left} | {heading for heading, _ in labels}
    return Cells(headings, rows, left)


def records(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The summary's rows for scripts: every column's fields, as plain JSON values."""
    out = []
    for row in summary.itertuples():
        record: dict[str, Any] = {}
        for column in COLUMNS:
            record.update(column.fields(row))
        out.append(record)
    return out
