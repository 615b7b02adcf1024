"""compare's ``--json``: the list of pairs (what was not paired goes to stderr, as warnings)."""

from __future__ import annotations

import json

from harness.export import ExportData
from harness.export.compare_markdown import comparison_of


class CompareJsonExporter:
    def serialize(self, data: ExportData) -> bytes:
        pairs = [pair.to_json() for pair in comparison_of(data).pairs]
        return (json.dumps(pairs, indent=1) + "\n").encode()
