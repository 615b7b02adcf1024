"""Errors the CLI turns into one line on stderr and exit status 2 (user mistakes)."""


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


def first_line(text: str | None) -> str:
    """The first non-blank line of a message (tracebacks follow it in records)."""
    return next((line for line in (text or "").splitlines() if line.strip()), "no message")
