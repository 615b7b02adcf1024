"""What the commands share: the consoles, warnings, and writing an output file."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, HarnessError
from harness.results.store import Results, write_bytes_atomic

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUN_FAILED", "EXIT_USAGE"]


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        # Rich exits with status 1 here; the harness ends "| head" the same way for every
        # output, quietly and with the status the command would have had (commands.execute).
        self.quiet = True
        raise BrokenPipeError


def stdout_console() -> Console:
    """Rich's console, but 100 columns wide when writing to a file or pipe (80 truncates)."""
    console = _StdoutConsole()
    return console if console.is_terminal else _StdoutConsole(width=100)


def warner(err: Console) -> Callable[[str], None]:
    return lambda line: err.print(f"[yellow]{escape(line)}[/]", soft_wrap=True)


def warn_unreadable(results: Results) -> None:
    for problem in results.unreadable:
        print(f"warning: {problem}", file=sys.stderr)


def write_output(path: Path, payload: bytes) -> None:
    """An exporter's bytes at ``path``, atomically (gzipped for a .gz name, as pyperf reads)."""
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    try:
        write_bytes_atomic(path, payload)
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}") from None
