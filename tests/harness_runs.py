"""The harness CLI in a subprocess, as a user runs it; and one tiny run of one backend."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

from tests.test_runner import TINY


def harness(*args: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -m harness ARGS…``, output captured as text; ``kwargs`` go to subprocess.run."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def take_ctrl_c() -> None:
    """``preexec_fn`` for a harness a test interrupts: SIGINT back to its default in the child.

    A shell without job control starts background commands with SIGINT ignored, and children
    inherit that; Python then installs no KeyboardInterrupt handler, so a suite started that way
    (``.ci/run &`` in a script) would see the harness ignore the test's Ctrl-C. From a terminal
    the default is what the harness gets anyway."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(idx_dir, tmp_path, backend: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = harness(
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
    )
    (session,) = (tmp_path / "r").iterdir()
    (record,) = [json.loads(p.read_text()) for p in session.glob(f"{backend}-*.json")]
    return result, record
