"""One writer per folder: an OS file lock on a session folder while a run or resume writes it,
and on a report's folder while a report moves its files in.

``flock`` locks die with their holder, so a harness that crashed or was killed leaves no lock
behind to clear by hand. The lock file names its holder (host, pid, since when) for the one line
a second writer gets; it is removed when the holder lets go. Its name starts with a dot and does
not end in ``.json``: no reader of the session ever takes it for a record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import HarnessError

LOCK_FILE = ".harness-lock"


class SessionBusy(HarnessError):
    """Another harness is running or resuming the session."""


def _holder(fd: int) -> str:
    try:
        facts = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {facts['pid']} on {facts['host']} since {facts['since']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "another harness (it has not said who yet)"


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open at ``fd``: a holder removes the lock file as
    it lets go, and a waiter that got the lock on the removed file must take the new one."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextmanager
def folder_lock(
    directory: Path, wait: bool = False, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold ``directory``'s lock for the block. Taken: SessionBusy naming the holder, or with
    ``wait``, block until it is free (``on_wait`` hears who is being waited for). The message
    is a session's: only a resume is refused; a report waits its turn."""
    path = directory / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise HarnessError(
                f"cannot lock {directory} ({exc.strerror or exc}): a session is written by one "
                "harness at a time; make the folder writable, or copy the session elsewhere"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                os.close(fd)
                raise SessionBusy(
                    f"{directory} is being run by {holder}; let it finish, or wait for it with "
                    f"run --resume {directory} --wait"
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for {holder} to finish with {directory} …")
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, path):
            break
        os.close(fd)  # the lock of a file its holder removed: take the one now there
    try:
        facts = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with contextlib.suppress(OSError):  # a full disk: the lock holds, unnamed
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(facts).encode(), 0)
        yield
    finally:
        # Removed before it is unlocked: a waiter then finds it gone and opens the next one.
        if _same_file(fd, path):
            path.unlink(missing_ok=True)
        os.close(fd)
