"""JSON Schemas of the results files, from the models: ``python -m harness.results.schema``.

Writes ``docs/run-record.schema.json`` and ``docs/session.schema.json`` (or into the folder given
as the first argument). A test regenerates them and compares, so the documented format is the
one the readers enforce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from harness.results.model import RunRecord, Session

SCHEMAS = {"run-record.schema.json": RunRecord, "session.schema.json": Session}
DOCS = Path(__file__).resolve().parents[2] / "docs"


def schema_of(model: type) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_texts() -> dict[str, str]:
    return {
        name: json.dumps(schema_of(model), indent=1, ensure_ascii=False) + "\n"
        for name, model in SCHEMAS.items()
    }


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DOCS
    for name, text in schema_texts().items():
        (folder / name).write_text(text)
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
