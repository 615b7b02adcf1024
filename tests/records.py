"""Synthetic run records and sessions, as the runner writes them, for tests that run nothing."""

from __future__ import annotations

import json
from pathlib import Path

from harness.results.model import SCHEMA_VERSION, RunRecord
from harness.spec import Spec, spec_hash


def make_record(backend: str, time_s: float, repeat: int, threads=1, status="ok", **extra):
    curve = [
        {
            "iteration": i * 600,
            "train_time_s": (time_s or 0) * i / 3,
            "train_acc": 0.9 + 0.02 * i,
            "test_acc": 0.9 + 0.025 * i,
            "loss": 0.5 / i,
        }
        for i in (1, 2, 3)
    ]
    record = {
        "schema_version": SCHEMA_VERSION,
        "backend": backend,
        "status": status,
        "repeat": repeat,
        "threads": threads,
        "spec": Spec().to_dict(),
        "spec_hash": Spec().hash,
        "seed": 0,
        "init_sha256": "i",
        "batches_sha256": "b",
        "session": "s",
        "error": None,
        "setup_time_s": 0.5,
        "train_time_s": time_s,
        "cpu_time_s": time_s,
        "cpu_util": 1.0,
        "peak_rss_bytes": 300 * 2**20,
        "train_acc": 0.98,
        "test_acc": 0.97,
        "final_loss": 0.1,
        "curve": curve,
        "data": {"n_features": 784},
        "build_info": {},
        "env": {},
    }
    if status != "ok":
        record.update(
            train_time_s=None,
            cpu_util=None,
            train_acc=None,
            test_acc=None,
            curve=[],
            error=f"{status}: it broke\ntraceback line",
        )
    record.update(extra)
    if "spec" in extra and "spec_hash" not in extra:  # as the runner writes it
        record["spec_hash"] = spec_hash(record["spec"])
    return record


def make_session(root: Path, name: str, records: list[dict]) -> Path:
    session = root / name
    session.mkdir(parents=True)
    (session / "session.json").write_text(json.dumps({"session": name, "env": {"cpu": "x"}}))
    for i, record in enumerate(records):
        (session / f"{record['backend']}-{i}.json").write_text(json.dumps(record))
    return session


def run_record(backend: str, time_s: float | None, repeat: int = 0, **extra) -> RunRecord:
    """The same record as a RunRecord, validated as a reader would load it."""
    status = extra.pop("status", "ok")
    return RunRecord.from_json(make_record(backend, time_s, repeat, status=status, **extra))
