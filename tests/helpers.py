"""Shared test helpers: the CLI as a user runs it, tiny runs, tiny IDX files, synthetic records.

Every test module takes its helpers from here (or from conftest's fixtures), never from another
test module.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness.cli import main
from harness.results.model import SCHEMA_VERSION, RunRecord
from harness.spec import Spec, spec_hash

REPO_ROOT = Path(__file__).resolve().parent.parent

# -- the CLI -------------------------------------------------------------------------------


def harness(*args: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -m harness ARGS…``, output captured as text; ``kwargs`` go to subprocess.run."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def take_ctrl_c() -> None:
    """``preexec_fn`` for a harness a test interrupts: SIGINT back to its default in the child.

    A shell without job control starts background commands with SIGINT ignored, and children
    inherit that; Python then installs no KeyboardInterrupt handler, so a suite started that way
    (``.ci/run &`` in a script) would see the harness ignore the test's Ctrl-C. From a terminal
    the default is what the harness gets anyway."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(idx_dir, tmp_path, backend: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = harness(
        "run",
        "--backend",
        backend,
        "--threads",
        "1",
        "--data-dir",
        str(idx_dir),
        "--results-dir",
        str(tmp_path / "r"),
        *TINY,
    )
    (session,) = (tmp_path / "r").iterdir()
    (record,) = [json.loads(p.read_text()) for p in session.glob(f"{backend}-*.json")]
    return result, record


# -- tiny runs in this process ------------------------------------------------------------

TINY = [
    "--set",
    "dataset=idx",
    "--set",
    "iterations=40",
    "--set",
    "eval_every=20",
    "--set",
    "batch=10",
    "--set",
    "lr=1",
    "--repeats",
    "1",
    "--no-gemm-rate",
]


def run(idx_dir: Path, tmp_path: Path, *args: str) -> int:
    results = tmp_path / "results"
    return main(["run", "--data-dir", str(idx_dir), "--results-dir", str(results), *TINY, *args])


def records(tmp_path: Path) -> dict[str, dict]:
    (session,) = (tmp_path / "results").iterdir()
    assert not list(session.glob(".*")), "temporary files left behind"
    return {
        p.stem: json.loads(p.read_text()) for p in session.glob("*.json") if p.stem != "session"
    }


def fake(name: str) -> list[str]:
    return ["--backend-path", f"tests.fake_backends:{name}"]


# -- verify ---------------------------------------------------------------------------------

VERIFY_TINY = ["--set", "dataset=idx", "--set", "batch=10", "--set", "lr=0.5"]


def verify(idx_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return harness("verify", "--data-dir", str(idx_dir), *VERIFY_TINY, *args)


# -- data ---------------------------------------------------------------------------------

NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def separable_digits(n: int, side: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is which of ten pixel stripes is lit: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, side * side)).astype(np.uint8)
    stripe = side * side // 10
    for i, label in enumerate(labels):
        images[i, label * stripe : (label + 1) * stripe] = 255
    return images.reshape(n, side, side), labels


def write_dataset(
    directory: Path, n_train: int = 300, n_test: int = 100, gz: bool = False, side: int = 8
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    train = separable_digits(n_train, side, seed=1)
    test = separable_digits(n_test, side, seed=2)
    arrays = {
        "train_images": train[0],
        "train_labels": train[1],
        "test_images": test[0],
        "test_labels": test[1],
    }
    for role, array in arrays.items():
        raw = idx_bytes(array)
        if gz:
            (directory / f"{NAMES[role]}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / NAMES[role]).write_bytes(raw)
    return directory


def synthetic_mnist(n: int = 2000, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped inputs in [0, 1] with sparse bright pixels, and labels 0–9."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784)) * (rng.random((n, 784)) < 0.2)
    return x, rng.integers(0, 10, size=n)


# -- synthetic records -------------------------------------------------------------------


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
        if record.get("session") == "s":  # make_record's default: the folder's name, as a run's
            record = {**record, "session": name}
        (session / f"{record['backend']}-{i}.json").write_text(json.dumps(record))
    return session


def run_record(backend: str, time_s: float | None, repeat: int = 0, **extra) -> RunRecord:
    """The same record as a RunRecord, validated as a reader would load it."""
    status = extra.pop("status", "ok")
    return RunRecord.from_json(make_record(backend, time_s, repeat, status=status, **extra))


def first_html_table(page: str) -> list[list[str]]:
    """The text of the first ``<table>`` in ``page``, row by row, entities decoded."""
    import html
    import re

    table = page.split("<table", 1)[1].split("</table>", 1)[0]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    ]
