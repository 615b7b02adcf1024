"""compare's ``--json``: the list of pairs (what was not paired goes to stderr, as warnings).

With ``--fail-if-slower`` it is an object instead, so that the gate's reasons travel with the
pairs: ``{"pairs": [...], "unpaired": [...], "gate": {"passed", "failures": [{"reason",
"detail"}], ...}}``. Without the gate the output is the list it always was.
"""

from __future__ import annotations

import json

from harness.export import ExportData
from harness.export.compare_markdown import comparison_of


class CompareJsonExporter:
    def serialize(self, data: ExportData) -> bytes:
        result = comparison_of(data)
        if data.gate is None:
            payload: object = [pair.to_json() for pair in result.pairs]
        else:
            payload = {**result.to_json(), "gate": data.gate.to_json()}
        return (json.dumps(payload, indent=1) + "\n").encode()
