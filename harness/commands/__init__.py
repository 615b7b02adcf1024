"""The commands behind ``python -m harness``: each takes a request (``harness.requests``), runs,
prints, and returns the exit status.

Exit status: 0 every run ok; 1 at least one run failed, timed out or diverged; 2 a user mistake
(bad option, spec, data or backend), reported in one line; 130 interrupted.

Only the chosen command's module is imported (``run`` need not load matplotlib, ``list`` need
not load SciPy): a command is a line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from harness.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, HarnessError
from harness.requests import (
    CompareRequest,
    ExportRequest,
    HistoryRequest,
    ListRequest,
    NewBackendRequest,
    ReportRequest,
    Request,
    RunRequest,
    VerifyRequest,
)

# request type → the function (module:name under harness.commands) that carries it out
COMMANDS: dict[type, str] = {
    RunRequest: "run:cmd_run",
    VerifyRequest: "verify:cmd_verify",
    ReportRequest: "results:cmd_report",
    CompareRequest: "results:cmd_compare",
    ExportRequest: "results:cmd_export",
    HistoryRequest: "history:cmd_history",
    ListRequest: "catalogue:cmd_list",
    NewBackendRequest: "catalogue:cmd_new_backend",
}


def execute(request: Request) -> int:
    """Run the request's command; a user mistake becomes one line and exit 2."""
    module, _, name = COMMANDS[type(request)].partition(":")
    status: int | None = None
    try:
        command = getattr(importlib.import_module(f"harness.commands.{module}"), name)
        status = command(request)
        sys.stdout.flush()  # here, where a reader that went away can still be answered
        return status
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # "| head": the reader has what it wanted
        _discard_stdout()
        return EXIT_OK if status is None else status


def _discard_stdout() -> None:
    """/dev/null under standard output: what is still buffered there has no reader, and the
    interpreter's last flush must not fail on it again (a traceback, exit status 120)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


def __getattr__(name: str) -> Any:
    """``print_summary``, as ``harness.cli`` offered it before the commands were split."""
    if name == "print_summary":
        from harness.export.terminal_table import print_summary

        return print_summary
    raise AttributeError(name)
