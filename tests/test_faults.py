"""Faults: a crash, an interrupt or a bad write never costs the results already measured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import data
from harness.cli import main
from harness.errors import DataError, SpecError
from harness.results import store
from harness.spec import Spec, build_spec
from tests.helpers import TINY, fake, idx_bytes, run, take_ctrl_c
from tests.helpers import records as read_records


def test_segfault_is_recorded_and_the_matrix_carries_on(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *fake("Segfaults"), "--backend", "numpy") == 1
    found = {r["backend"]: r for r in read_records(tmp_path).values()}
    assert found["segfaults"]["status"] == "failed"
    assert "killed by signal SIGSEGV" in found["segfaults"]["error"]
    assert found["numpy"]["status"] == "ok"


def test_unwritable_record_names_the_path_and_keeps_the_numbers(
    idx_dir, tmp_path, monkeypatch, capsys
):
    real_write = store.write_bytes_atomic

    def failing_write(path: Path, payload, replace: bool = True) -> None:
        if path.name.startswith("numpy-"):
            raise OSError(28, "No space left on device")
        real_write(path, payload, replace)

    monkeypatch.setattr("harness.runner.session.write_bytes_atomic", failing_write)
    assert run(idx_dir, tmp_path, "--backend", "numpy") == 2
    err = capsys.readouterr().err
    assert "could not write" in err and "numpy-t1-r0.json" in err
    assert "'status': 'ok'" in err and "'test_acc':" in err


def _start(idx_dir: Path, tmp_path: Path, marker: Path) -> subprocess.Popen:
    env = {**os.environ, "HANGS_ONCE_MARKER": str(marker)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--data-dir",
            str(idx_dir),
            "--results-dir",
            str(tmp_path / "results"),
            *TINY,
            "--backend",
            "numpy",
            *fake("HangsOnce"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=take_ctrl_c,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_records_and_resume_finishes_the_matrix(idx_dir, tmp_path, signum):
    marker = tmp_path / "hung"
    proc = _start(idx_dir, tmp_path, marker)
    deadline = time.monotonic() + 60
    while not marker.exists():  # numpy has finished; hangs-once is now stuck in its worker
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    (session,) = (tmp_path / "results").iterdir()
    assert f"resume with: python -m harness run --resume {session}" in err
    assert sorted(p.name for p in session.iterdir()) == ["numpy-t1-r0.json", "session.json"]
    numpy_record = (session / "numpy-t1-r0.json").read_text()
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).stdout == b""

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--resume",
            session.name,
            "--results-dir",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HANGS_ONCE_MARKER": str(marker)},
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 runs already recorded, 1 to go" in resumed.stderr
    assert (session / "numpy-t1-r0.json").read_text() == numpy_record  # not run again
    finished = json.loads((session / "hangs-once-t1-r0.json").read_text())
    assert finished["status"] == "ok"
    assert finished["init_sha256"] == json.loads(numpy_record)["init_sha256"]


def test_resume_with_nothing_missing_runs_nothing(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy") == 0
    results = str(tmp_path / "results")
    assert main(["run", "--resume", "--results-dir", results]) == 0
    assert "1 of 1 runs already recorded, 0 to go" in capsys.readouterr().err


def test_resume_refuses_new_backends_or_spec(tmp_path, capsys):
    assert main(["run", "--resume", "--backend", "numpy", "--set", "lr=1"]) == 2
    assert (
        "--resume takes the spec and the backends from the session; drop --backend, "
        "--set" in capsys.readouterr().err
    )


# --- property-based: only valid arrays or the harness's own errors ------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(raw=st.binary(max_size=64), ndim=st.sampled_from([1, 3]))
def test_idx_parser_on_random_bytes(raw, ndim):
    try:
        array = data.parse_idx(raw, "random", ndim)
    except DataError:
        return
    assert array.ndim == ndim and array.dtype.name == "uint8"


@settings(max_examples=300, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    position=st.integers(0, 200),
    value=st.integers(0, 255),
    cut=st.integers(-5, 5),
)
def test_idx_parser_on_mutated_files(shape, position, value, cut):
    raw = bytearray(idx_bytes(np.zeros(shape, dtype=np.uint8)))
    if position < len(raw):
        raw[position] = value
    raw = raw[: len(raw) + cut] if cut < 0 else raw + bytes(cut)
    try:
        array = data.parse_idx(bytes(raw), "mutated", 3)
    except DataError:
        return
    assert array.ndim == 3
    assert len(raw) == 16 + array.size


_KEYS = [*Spec().to_dict(), "bogus"]


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(_KEYS), value=st.text(max_size=12))
def test_set_values_give_a_spec_or_a_spec_error(key, value):
    try:
        spec = build_spec(assignments=[f"{key}={value}"])
    except SpecError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(spec, Spec)
