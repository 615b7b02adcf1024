"""``--format csv``: the summary, the key's fields as columns."""

from __future__ import annotations

from harness.export import ExportData
from harness.export.rows import flat_summary


class CsvExporter:
    def serialize(self, data: ExportData) -> bytes:
        return flat_summary(data.frame, data.baseline).to_csv(index=False).encode()
