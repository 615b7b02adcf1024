"""The terminal table of ``run`` and ``report`` (and ``export --format table``): the summary,
fastest first, with the speed ratio's interval and the warnings under it."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from harness.export import ExportData, columns
from harness.export.escape import terminal
from harness.export.rows import fastest_first, summary_table
from harness.results.summary import work_notes
from harness.results.suspect import warnings


def build_table(rows: pd.DataFrame) -> Table:
    """The first-screen columns of ``columns`` for ``summary_table``'s rows."""
    shown = columns.cells(rows, first_screen_only=True)
    table = Table(title="mlp-bench summary (medians over ok runs)")
    for at, heading in enumerate(shown.headings):
        widest = max((len(texts[at]) for texts in shown.rows), default=len(heading))
        table.add_column(
            escape(terminal(heading)),
            justify="left" if heading in shown.left else "right",
            no_wrap=True,
            # The backend's name is what every other cell is read by: never cut it.
            min_width=widest if at == 0 else None,
        )
    for texts in shown.rows:
        table.add_row(*(escape(terminal(text)) for text in texts))
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
        console.print(escape(terminal(line)), soft_wrap=True)
    for line in warnings(summary):
        kind, rest = terminal(line).split(" ", 1)
        console.print(f"[yellow]{kind}[/] {escape(rest)}", soft_wrap=True)


class TableExporter:
    """The same table as plain text: no colours, no control characters, no column cut."""

    def serialize(self, data: ExportData) -> bytes:
        out = io.StringIO()
        console = Console(file=out, width=100, color_system=None, force_terminal=False)
        print_summary(console, data.frame, data.baseline)
        return out.getvalue().encode()
