"""One tiny ``harness run`` of one backend in a subprocess, for the backends' own tests."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_runner import TINY


def run_cli(idx_dir, tmp_path, backend: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--backend",
            backend,
            "--threads",
            "1",
            "--data-dir",
            str(idx_dir),
            "--results-dir",
            str(tmp_path / "r"),
            *TINY,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    (session,) = (tmp_path / "r").iterdir()
    (record,) = [json.loads(p.read_text()) for p in session.glob(f"{backend}-*.json")]
    return result, record
