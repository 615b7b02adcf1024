"""Run records: one JSON file per run, written atomically, and the loader every reader shares."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ResultsError

STATUSES = ("ok", "failed", "timeout", "diverged")
SESSION_FILE = "session.json"


@dataclass
class RunRecord:
    """Field names are fixed for users and tools; new fields may be added, none renamed."""

    backend: str
    status: str
    repeat: int
    threads: int | None
    spec: dict[str, Any]
    spec_hash: str
    seed: int
    init_sha256: str
    batches_sha256: str
    session: str
    backend_target: str = ""
    backend_version: str | None = None
    follows_batch_stream: bool = True
    error: str | None = None
    setup_time_s: float | None = None
    train_time_s: float | None = None
    cpu_time_s: float | None = None
    cpu_util: float | None = None
    peak_rss_bytes: int | None = None
    threads_observed: int | None = None
    train_acc: float | None = None
    test_acc: float | None = None
    final_loss: float | None = None
    iterations_done: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    build_info: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)  # machine, versions, git, "blas" pools
    exit_code: int | None = None
    phases: dict[str, float] | None = None  # --profile: training seconds per phase
    phases_note: str | None = None  # how the phases were measured, or why there are none
    variant: str = ""  # the sweep point ("batch=50,hidden=100"); "" without --sweep
    order: int | None = None  # position in the session's run order (interleaved)
    pinned_cpus: list[int] | None = None  # asked for with --pin
    cpus_allowed: list[int] | None = None  # what the worker could run on, as it saw it
    started_at: str | None = None
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same directory, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes it private; records are not
        with os.fdopen(fd, "w") as out:
            json.dump(_finite(data), out, indent=1, allow_nan=False, default=_jsonable)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
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


def load_records(session_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All run records of one session, and a line for each file that could not be read."""
    if not session_dir.is_dir():
        raise ResultsError(f"results directory {session_dir} does not exist")
    records, problems = [], []
    for path in sorted(session_dir.glob("*.json")):
        if path.name == SESSION_FILE:
            continue
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or "backend" not in data or "status" not in data:
                raise ValueError("not a run record")
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: skipped ({exc})")
            continue
        records.append(data)
    return records, problems
