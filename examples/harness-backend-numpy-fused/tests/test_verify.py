"""Conformance: the backend does the same job as the book's code, step by step."""

import os
import subprocess
import sys


def test_verify_passes():
    result = subprocess.run(
        [sys.executable, "-m", "harness", "verify", "--backend", "numpy-fused", "--steps", "50"],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stdout + result.stderr
