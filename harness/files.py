"""Files a user or a record names, read at bounded cost whatever lies at the path.

Only a regular file is read (a FIFO is not waited on, ``/dev/zero`` not drained), at most
``limit`` bytes of it; anything else is a ``FileRefused`` saying why, for the caller to turn into
its own one-line error.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

# A spec or a --backend-cmds file is a few hundred bytes: one over this is not one.
SMALL_TEXT_BYTES = 2**20


class FileRefused(Exception):
    """Why a file was not read (its text is the reason, without the path)."""


class TooLarge(FileRefused):
    """The file holds more than the reader may take."""


class NotRegular(FileRefused):
    """A FIFO, a device, a directory: nothing a reader may open as a file of data."""


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


def read_regular_file(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file at ``path``; FileRefused if it is not one,
    cannot be read or holds more."""
    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise FileRefused(f"cannot read it ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(f"not a regular file ({_kind(mode)})")
        with os.fdopen(os.dup(fd), "rb") as file:
            raw = file.read(limit + 1)  # st_size is not trusted: /proc files say 0
    except OSError as exc:
        raise FileRefused(f"cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise TooLarge(f"larger than {limit:,} bytes")
    return raw


def read_small_text(path: Path, limit: int = SMALL_TEXT_BYTES) -> str:
    """A small UTF-8 text file (a spec, a list of commands) at bounded cost."""
    try:
        return read_regular_file(path, limit).decode()
    except UnicodeDecodeError:
        raise FileRefused("not UTF-8 text") from None


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in chunks: an executable of any size costs no memory."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
