"""Errors the CLI turns into one line on stderr and exit status 2 (user mistakes).

The exit statuses of every command: 0 all ok; 1 a run failed, timed out or diverged (or verify
failed, or compare's gate tripped); 2 a user mistake; 3 compare's gate cannot tell (its only
reasons are intervals too wide or repeats too few to rule out the slowdown); 130 interrupted.
"""

import difflib
from collections.abc import Iterable

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """What follows an unknown name before the list of known ones: ``; did you mean 'numpy'?``
    for a name close to one of them (a typo), else ``;``."""
    # 0.7: typos ('numpyy', 'kears', 'jsno' score 0.75 or more), not other names ('tsv', 0.67)
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ";"


class HarnessError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""


class SpecError(HarnessError):
    """An invalid spec key or value."""


class DataError(HarnessError):
    """A dataset file is missing, corrupt or does not match its checksum."""


class BackendError(HarnessError):
    """A backend name or plugin path that cannot be resolved."""


class ResultsError(HarnessError):
    """The results directory or a record cannot be read or written."""


class RunsStopped(HarnessError):
    """The matrix stopped part-way for a reason outside the harness; the session can be resumed
    once ``waiting_for`` is back."""

    waiting_for = "the machines are"


def first_line(text: str | None) -> str:
    """The first non-blank line of a message (tracebacks follow it in records)."""
    return next((line for line in (text or "").splitlines() if line.strip()), "no message")
