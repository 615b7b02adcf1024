"""A session on disk: its folder, its session.json, one record per run, each written atomically.

Nothing half-written is left: a session that cannot be created or whose session.json cannot be
written is removed; a record that cannot be written says what the run measured and how to
finish the session.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import ResultsError
from harness.results.model import SESSION_FILE, RunRecord, Session, record_filename
from harness.results.store import dumps_json, write_bytes_atomic, write_json_atomic


def timestamp() -> str:
    # Microseconds: the run order must be recoverable from the records alone.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_session_name() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def create_session(directory: Path) -> None:
    """The new, empty session folder; fails before any run if its place is unusable."""
    try:
        directory.mkdir(parents=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise ResultsError(cannot_write(directory.parent, exc)) from None


def cannot_write(where: Path, exc: OSError) -> str:
    return (
        f"cannot write results under {where}: {exc.strerror or exc}; free space there or "
        "choose another place with --results-dir"
    )


def rewrite_session_file(directory: Path, session: Session) -> None:
    """An existing session's session.json, replaced atomically; its records are never touched,
    whether this succeeds or not."""
    try:
        write_json_atomic(directory / SESSION_FILE, session.to_json())
    except OSError as exc:
        raise ResultsError(cannot_write(directory.parent, exc)) from None


def write_session_file(directory: Path, session: Session) -> None:
    """The new session's session.json; if it cannot be written, no session is left."""
    try:
        write_json_atomic(directory / SESSION_FILE, session.to_json())
    except OSError as exc:  # a full or read-only filesystem, say
        shutil.rmtree(directory, ignore_errors=True)
        raise ResultsError(cannot_write(directory.parent, exc)) from None


def store_record(directory: Path, record: RunRecord) -> Path:
    """Write one run's record atomically, never over another file: where one is already at its
    name (a run written by another harness), it becomes the next attempt. If it cannot be
    written at all, say what it measured."""
    while True:
        path = directory / record_filename(
            record.backend, record.threads, record.repeat, record.variant, record.attempt
        )
        try:
            write_bytes_atomic(path, dumps_json(record.to_json()).encode(), replace=False)
            return path
        except FileExistsError:
            record = replace(record, attempt=record.attempt + 1)
        except OSError as exc:
            summary = {
                k: getattr(record, k)
                for k in ("status", "train_time_s", "train_acc", "test_acc", "cpu_util")
            }
            raise ResultsError(
                f"could not write {path}: {exc}; "
                f"the run's numbers were {summary}; once there is room, finish the session "
                f"with: python -m harness run --resume {directory}"
            ) from None
