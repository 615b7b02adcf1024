"""``--format json``: the summary records, one object per comparability key."""

from __future__ import annotations

import json

from harness.export import ExportData
from harness.export.rows import summary_records


class JsonExporter:
    def serialize(self, data: ExportData) -> bytes:
        return (json.dumps(summary_records(data.frame, data.baseline), indent=1) + "\n").encode()
