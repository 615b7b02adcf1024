"""``--format markdown``: the summary as a Markdown table."""

from __future__ import annotations

from harness.export import ExportData
from harness.export.rows import flat_summary


class MarkdownExporter:
    def serialize(self, data: ExportData) -> bytes:
        return (flat_summary(data.frame, data.baseline).to_markdown(index=False) + "\n").encode()
