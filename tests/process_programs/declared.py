"""A process backend declared in Python, as a package's entry point would name it."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.process_backend import ProcessBackend


class DeclaredProgram(ProcessBackend):
    name = "declared"
    command = (sys.executable, str(Path(__file__).with_name("book_net.py")))
