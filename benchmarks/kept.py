"""Keep a benchmark's numbers: ``--json PATH`` writes them with the command and the machine.

The README quotes these files (through benchmarks/reproduce.py), so each one says how it was made:
the command line, when, on which commit (and whether the tree was clean), and on what machine.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def keep(path: Path | None, benchmark: str, numbers: dict[str, Any]) -> None:
    if path is None:
        return
    from harness.results.store import write_json_atomic
    from harness.runner.envinfo import session_env

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path,
        {
            "benchmark": benchmark,
            "command": " ".join(["python", *sys.argv]),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "env": session_env(),
            "numbers": numbers,
        },
    )
    print(f"kept in {path}")
