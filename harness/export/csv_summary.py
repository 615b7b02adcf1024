"""``--format csv``: the summary, the key's fields as columns; no cell a spreadsheet would run."""

from __future__ import annotations

from harness.export import ExportData
from harness.export.escape import csv_frame
from harness.export.rows import flat_summary


class CsvExporter:
    def serialize(self, data: ExportData) -> bytes:
        return csv_frame(flat_summary(data.frame, data.baseline)).to_csv(index=False).encode()
