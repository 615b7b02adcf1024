"""Command line: ``python -m harness run|report|compare|export|verify|new-backend|list``.

Exit status: 0 every run ok; 1 at least one run failed, timed out or diverged (or verify failed,
or compare --fail-if-slower tripped); 2 a user mistake (bad option, spec, data or backend),
reported in one line; 130 interrupted.

Parsing needs only the grammar (harness.arguments); the commands, and pandas, SciPy and
matplotlib with them, load after it, so ``--help``, ``--version`` and mistakes answer at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.arguments import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness import commands

    return commands.dispatch(args)


def __getattr__(name: str) -> Any:
    """``from harness.cli import print_summary`` and friends, as before the split."""
    if name.startswith("__"):  # the import system asks for __path__ and the like
        raise AttributeError(name)
    from harness import commands

    return getattr(commands, name)
