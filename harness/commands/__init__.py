"""The commands behind ``python -m harness``: each takes a request (``harness.requests``), runs,
prints, and returns the exit status.

Exit status: 0 every run ok; 1 at least one run failed, timed out or diverged; 2 a user mistake
(bad option, spec, data or backend), reported in one line; 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from harness.commands.catalogue import cmd_list, cmd_new_backend
from harness.commands.console import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from harness.commands.results import cmd_compare, cmd_export, cmd_report
from harness.commands.run import cmd_run
from harness.commands.verify import cmd_verify
from harness.errors import HarnessError
from harness.export.terminal_table import print_summary
from harness.requests import (
    CompareRequest,
    ExportRequest,
    ListRequest,
    NewBackendRequest,
    ReportRequest,
    Request,
    RunRequest,
    VerifyRequest,
)

COMMANDS: dict[type, Callable[[Any], int]] = {
    RunRequest: cmd_run,
    VerifyRequest: cmd_verify,
    ReportRequest: cmd_report,
    CompareRequest: cmd_compare,
    ExportRequest: cmd_export,
    ListRequest: cmd_list,
    NewBackendRequest: cmd_new_backend,
}


def execute(request: Request) -> int:
    """Run the request's command; a user mistake becomes one line and exit 2."""
    try:
        return COMMANDS[type(request)](request)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # "| head": the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return EXIT_OK


__all__ = ["COMMANDS", "execute", "print_summary"]
