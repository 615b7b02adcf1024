"""Results on disk: atomic writes, finding sessions, and the one loader every reader uses.

A session is a directory holding ``session.json`` and one ``<backend>-t<threads>-r<repeat>.json``
per run. Every reader (summary, report, compare, export, resume) loads through ``load_results``,
so a damaged file is treated the same everywhere: listed as "unreadable: FILE: REASON", never
counted as a run, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ResultsError, first_line
from harness.files import FileRefused, NotRegular, TooLarge, read_regular_file
from harness.results.model import SESSION_FILE, InvalidFile, RunRecord, Session


@dataclass(frozen=True)
class Unreadable:
    """A file left out of the runs: it could not be used (or, ``what``, was a copy)."""

    path: Path
    reason: str
    what: str = "unreadable"

    def __str__(self) -> str:
        return f"{self.what}: {self.path}: {self.reason}"


@dataclass(frozen=True)
class Results:
    """The runs of one or more sessions, and the files among them that could not be used."""

    records: list[RunRecord]
    sessions: list[Path]
    unreadable: list[Unreadable]


def dumps_json(data: Any) -> str:
    """The JSON text of a results file: NaN and infinity as null, NumPy scalars as numbers."""
    return json.dumps(_finite(data), indent=1, allow_nan=False, default=_jsonable) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same directory, then rename: readers never see half a file."""
    write_text_atomic(path, dumps_json(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: Path, payload: bytes, replace: bool = True) -> None:
    """``payload`` at ``path``, whole or not at all. ``replace=False``: FileExistsError rather
    than overwrite a file already there (a record: no measured run is ever written over)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes it private; records are not
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and fails where a file exists: rename would not
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _finite(value: Any) -> Any:
    """NaN and infinity are not JSON; a diverged run stores null where its loss went non-finite."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# What a reader accepts of one file. A real record is 5–30 kB; one with an evaluation after each
# of 10,000 steps is about 1.5 MB and 60,000 values, nested 5 levels deep.
MAX_FILE_BYTES = 8 * 2**20
MAX_DEPTH = 32
MAX_VALUES = 250_000
_TOO_LARGE = f"larger than {MAX_FILE_BYTES // 2**20} MiB, the most a results file may be"


def _read_json(path: Path) -> Any:
    """A results file's JSON, at bounded cost whatever lies at ``path``.

    Only a regular file is read (a FIFO is not waited on, a device not drained), at most
    MAX_FILE_BYTES of it; the JSON may nest MAX_DEPTH levels and hold MAX_VALUES values.
    Anything else is an InvalidFile saying which limit it broke.
    """
    return parse_bounded(_read_regular_file(path))


def parse_bounded(raw: bytes) -> Any:
    """JSON from bytes within the limits on a results file; InvalidFile saying which broke."""
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidFile(_TOO_LARGE)
    try:
        data = json.loads(raw.decode())
    except UnicodeDecodeError:
        raise InvalidFile("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InvalidFile(f"nested deeper than {MAX_DEPTH} levels") from None
    _check_size(data)
    return data


def _read_regular_file(path: Path) -> bytes:
    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except TooLarge:
        raise InvalidFile(_TOO_LARGE) from None
    except NotRegular as exc:
        raise InvalidFile(f"{exc}; a results file is plain JSON") from None
    except FileRefused as exc:
        raise InvalidFile(str(exc)) from None


def _check_size(data: Any) -> None:
    """Depth and count of the parsed JSON, walked without recursion."""
    stack, values = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > MAX_VALUES:
            raise InvalidFile(f"holds more than {MAX_VALUES:,} values, more than any record")
        if depth > MAX_DEPTH:
            raise InvalidFile(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def read_record(path: Path) -> RunRecord:
    """One run record; InvalidFile with the reason if it cannot be used."""
    return RunRecord.from_json(_read_json(path))


def read_session(session_dir: Path) -> Session:
    """A session's session.json; ResultsError (one line) if it cannot be used."""
    path = session_dir / SESSION_FILE
    try:
        return Session.from_json(_read_json(path))
    except InvalidFile as exc:
        raise ResultsError(f"{Unreadable(path, str(exc))}") from None


def load_results(sessions: Sequence[Path]) -> Results:
    """Every run record of ``sessions``; a file that fails validation is listed, not loaded."""
    records, unreadable = [], []
    first_seen: dict[tuple, Path] = {}
    # The same session named twice ("report A A") is read once: runs are never counted twice.
    sessions = list({session.resolve(): session for session in sessions}.values())
    for session in sessions:
        if not session.is_dir():
            raise ResultsError(f"results directory {session} does not exist")
        for path in sorted(session.glob("*.json")):
            if path.name == SESSION_FILE:
                continue
            try:
                record = read_record(path)
            except InvalidFile as exc:
                unreadable.append(Unreadable(path, str(exc)))
                continue
            # A run is counted once: a copied record file is listed, never pooled as a repeat.
            identity = _identity(record)
            if identity in first_seen:
                unreadable.append(Unreadable(path, _copy_of(first_seen[identity]), "counted once"))
                continue
            first_seen[identity] = path
            records.append((path, record))
    counted, superseded = _latest_attempts(records)
    return Results([record for _, record in counted], list(sessions), unreadable + superseded)


def _run_of(record: RunRecord) -> tuple:
    """The run in its session's matrix a record is an attempt at."""
    return (record.session, record.backend, record.threads, record.repeat, record.variant)


def _latest_attempts(
    records: list[tuple[Path, RunRecord]],
) -> tuple[list[tuple[Path, RunRecord]], list[Unreadable]]:
    """Each run's latest attempt; an earlier one (lost, or failed and retried) is listed as
    superseded, kept on disk but never pooled with the attempt that redid it."""
    latest: dict[tuple, tuple[Path, RunRecord]] = {}
    for path, record in records:
        run = _run_of(record)
        if run not in latest or record.attempt > latest[run][1].attempt:
            latest[run] = (path, record)
    counted, superseded = [], []
    for path, record in records:
        newer_path, newer = latest[_run_of(record)]
        if record.attempt < newer.attempt:
            why = f"{record.status}: {first_line(record.error)}" if record.error else record.status
            superseded.append(
                Unreadable(
                    path,
                    f"attempt {record.attempt} ({why}), redone as {newer_path.name}, which counts",
                    "superseded",
                )
            )
        else:
            counted.append((path, record))
    return counted, superseded


def _identity(record: RunRecord) -> tuple:
    """What makes a run itself: its session, place in the matrix, start time and machine (a
    cluster session's runs of one cell on two machines are two runs)."""
    return (
        record.session,
        record.backend,
        record.threads,
        record.repeat,
        record.variant,
        record.order,
        record.started_at,
        json.dumps(record.env, sort_keys=True, default=str),
    )


def _copy_of(path: Path) -> str:
    return (
        f"the same run as {path.name} (session, backend, threads, repeat, sweep point, start "
        "time and machine): a copy, left out"
    )


def all_sessions(results_root: Path) -> list[Path]:
    """Every session folder under the root, oldest first (their names start with the time)."""
    if not results_root.is_dir():
        raise ResultsError(
            f"results directory {results_root} does not exist; run 'python -m harness run' to "
            "make one, or point --results-dir at the folder your sessions are in"
        )
    found = sorted(p for p in results_root.iterdir() if (p / SESSION_FILE).exists())
    if not found:
        raise ResultsError(
            f"no sessions in {results_root}; run 'python -m harness run' to make one, or point "
            "--results-dir at the folder your sessions are in"
        )
    return found


def resolve_sessions(names: Sequence[str], results_root: Path) -> list[Path]:
    """Session directories from names: paths, session ids under the root, or ``latest``."""
    sessions = []
    for name in names or ["latest"]:
        if name == "latest":
            sessions.append(all_sessions(results_root)[-1])
        elif Path(name).is_dir():
            sessions.append(Path(name))
        elif (results_root / name).is_dir():
            sessions.append(results_root / name)
        else:
            # An absolute name joined to the root is the name itself: say it once.
            tried = dict.fromkeys(str(p) for p in (Path(name), results_root / name))
            raise ResultsError(
                f"no results at {' nor '.join(tried)}; pass a session folder, a session id "
                f"under {results_root}, or 'latest'"
            )
    return sessions
