"""The terminal table of ``run`` and ``report`` (and ``export --format table``): the summary,
fastest first, with the speed ratio's interval and the warnings under it."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from harness.export import ExportData
from harness.export.rows import fastest_first, summary_table
from harness.results.summary import (
    backend_label,
    fmt,
    label_columns,
    skips_work,
    to_target_text,
    work_notes,
)
from harness.results.suspect import warnings


def build_table(rows: pd.DataFrame) -> Table:
    """The table of ``summary_table``'s rows."""
    table = Table(title="mlp-bench summary (medians over ok runs; train/test = accuracy)")
    names = [backend_label(r.backend, r.algorithm) for r in rows.itertuples()]
    widest = max((len(name) for name in names), default=7)
    table.add_column("backend", no_wrap=True, min_width=widest)
    extra = label_columns(rows) if len(rows) else []
    table.add_column("threads", justify="right", no_wrap=True)
    for heading, _ in extra:
        table.add_column(heading, no_wrap=True)
    speed = f"vs {rows['baseline'].iloc[0]} [95 % CI]" if len(rows) else "speed"
    # The job's FLOP rate; beside it, where a backend skips work, the rate of what it executed.
    executed = skips_work(rows)
    rates = ("GFLOP/s", "exec GFLOP/s") if executed else ("GFLOP/s",)
    to_target = f"to {rows['target'].iloc[0]} s" if len(rows) else "to target"
    columns = ("time s", "CV", speed, to_target, "vs [95 % CI]", "CPU %", *rates)
    for column in (*columns, "train", "test", "ok"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row, label in zip(rows.itertuples(), names, strict=True):
        name = escape(label)
        if row.debug_build:
            name += " [red](debug)[/]"
        cpu = None if pd.isna(row.cpu_util) else row.cpu_util * 100
        table.add_row(
            name,
            str(row.threads),
            *[escape(str(getattr(row, column))) for _, column in extra],
            fmt(row.train_time_s, ".2f"),
            fmt(None if row.train_time_cv is None else row.train_time_cv * 100, ".1f", " %"),
            row.speedup.text(),
            to_target_text(row),
            row.target_speedup.text(),
            fmt(cpu, ".0f"),
            fmt(row.gflops, ".1f"),
            *(
                [fmt(row.executed_gflops, ".1f") if row.algorithm != "dense" else "= job"]
                * executed
            ),
            fmt(row.train_acc, ".4f"),
            fmt(row.test_acc, ".4f"),
            f"{row.runs_ok}/{row.runs}",
            row.statuses,
        )
    return table


def print_summary(
    console: Console,
    frame: pd.DataFrame,
    baseline: str | None = None,
    summary: pd.DataFrame | None = None,
) -> None:
    """The table and its warnings on ``console``; a file or pipe gets every column whole.
    ``summary``: ``summarize``'s rows when the caller has them already."""
    summary = summary_table(frame, baseline) if summary is None else fastest_first(summary)
    table = build_table(summary)
    if console.is_terminal:
        console.print(table)
    else:  # a file or a pipe has no width to fit: never truncate a column there
        width = console.width
        needed = Measurement.get(console, console.options.update_width(1000), table).maximum
        console.width = max(width, needed)
        try:
            console.print(table)
        finally:
            console.width = width
    for line in work_notes(summary):
        console.print(escape(line), soft_wrap=True)
    for line in warnings(summary):
        kind, rest = line.split(" ", 1)
        console.print(f"[yellow]{kind}[/] {escape(rest)}", soft_wrap=True)


class TableExporter:
    """The same table as plain text: no colours, no control characters, no column cut."""

    def serialize(self, data: ExportData) -> bytes:
        out = io.StringIO()
        console = Console(file=out, width=100, color_system=None, force_terminal=False)
        print_summary(console, data.frame, data.baseline)
        return out.getvalue().encode()
