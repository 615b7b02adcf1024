"""``export --format markdown``: the summary table as report.md shows it, and its notes."""

from __future__ import annotations

from harness.export import ExportData, columns
from harness.export.escape import markdown, markdown_table
from harness.export.rows import summary_table
from harness.results.summary import work_notes
from harness.results.suspect import warnings


class MarkdownExporter:
    def serialize(self, data: ExportData) -> bytes:
        summary = summary_table(data.frame, data.baseline)
        notes = [f"- {markdown(line)}" for line in work_notes(summary)]
        notes += [f"- ⚠ {markdown(line)}" for line in warnings(summary)]
        table = markdown_table(columns.cells(summary).frame())
        return "\n".join([table, "", *notes]).rstrip("\n").encode() + b"\n"
