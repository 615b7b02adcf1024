"""A plugin can't break the harness: every misbehaving backend of tests/hostile_backends.py is
recorded with a meaningful status, the matrix goes on, and nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.cli import main
from harness.runner import processes
from harness.runner.progress_events import ProgressEvents
from tests.helpers import TINY, take_ctrl_c
from tests.hostile_backends import CLASSES, EXPECTED, SLEEP

REPO = Path(__file__).resolve().parent.parent


def harness(tmp_path: Path, *args: str, **kwargs) -> subprocess.Popen:
    """The CLI as a user starts it, with its scratch space (TMPDIR) inside ``tmp_path``."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--results-dir", str(tmp_path / "results"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# The stray checks look for every `sleep 3141` on the machine: under pytest -n, this module's
# tests run on one worker so that one test's strays are never another's.
pytestmark = pytest.mark.xdist_group("hostile-strays")


def strays() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.info["cmdline"] and proc.info["cmdline"][-1:] == [SLEEP]:
            found.append(proc)
    return found


@pytest.fixture
def no_strays():
    for proc in strays():  # from an earlier, failed run of this test
        proc.kill()
    yield
    left = strays()
    for proc in left:
        proc.kill()
    assert not left, f"processes left behind: {[p.pid for p in left]}"


@pytest.mark.slow
def test_a_matrix_of_every_misbehaving_plugin_and_numpy(idx_dir, tmp_path, no_strays):
    plugins = [
        arg
        for name in CLASSES.values()
        for arg in ("--backend-path", f"tests.hostile_backends:{name}")
    ]
    proc = harness(
        tmp_path,
        "--data-dir",
        str(idx_dir),
        *TINY,
        "--timeout",
        "5",
        "--backend",
        "numpy",
        *plugins,
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    assert "Traceback" not in out + err
    (session,) = (tmp_path / "results").iterdir()
    records = {
        json.loads(p.read_text())["backend"]: json.loads(p.read_text())
        for p in session.glob("*.json")
        if p.name != "session.json"
    }
    assert set(records) == {"numpy", *EXPECTED}
    assert records["numpy"]["status"] == "ok"
    for name, (status, words) in EXPECTED.items():
        record = records[name]
        assert record["status"] == status, (name, record["error"])
        assert words in (record["error"] or ""), (name, record["error"])
        assert f"{name} · threads 1 · repeat 1: {status}" in err
    assert records["junk-on-fds"]["progress_junk"] >= 4
    assert records["child-in-setup"]["stray_processes"] == 1
    assert records["daemon-then-hangs"]["stray_processes"] >= 2
    assert records["forges-result"]["test_acc"] is None
    # Nothing outside the results directory: the scratch space is empty again.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "results", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("cls", "name"),
    [("EscapingName", "../../evil"), ("SlashName", "a/b"), ("DotName", ".hidden")],
)
def test_a_backend_name_that_is_not_a_slug_is_refused_before_any_run(
    idx_dir, tmp_path, capsys, cls, name
):
    target = f"tests.hostile_backends:{cls}"
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(tmp_path / "r"), *TINY]
    assert main([*argv, "--backend-path", target]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: backend path {target!r}: {name!r} is not a valid backend name: use 1–64 "
        "letters, digits, '-', '_' or '.', not starting with '.'"
    )
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
    assert not (tmp_path.parent / "evil").exists()


def test_a_child_left_by_an_ok_run_is_killed_and_counted(idx_dir, tmp_path, no_strays):
    target = "tests.hostile_backends:ChildInSetup"
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(tmp_path / "r"), *TINY]
    assert main([*argv, "--backend-path", target]) == 0
    (session,) = (tmp_path / "r").iterdir()
    (record,) = session.glob("child-*.json")
    assert json.loads(record.read_text())["stray_processes"] == 1


def test_a_setsid_daemon_does_not_survive_the_timeout(idx_dir, tmp_path, no_strays):
    """The harness as a user starts it: a process of its own, the subreaper of its runs."""
    target = "tests.hostile_backends:DaemonThenHangs"
    proc = harness(
        tmp_path, "--data-dir", str(idx_dir), *TINY, "--backend-path", target, "--timeout", "3"
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "killed after the 3 s timeout" in err


def test_a_child_that_ends_while_listed_does_not_hide_its_siblings(monkeypatch, no_strays):
    """A shell that forks a daemon and exits at once ends between the listing of its parent's
    children and the listing of its own: the sweep must still find everything else."""
    ends, stays = (subprocess.Popen(["sleep", SLEEP]) for _ in range(2))
    listed = psutil.Process.children

    def children(self: psutil.Process, recursive: bool = False) -> list[psutil.Process]:
        if self.pid == ends.pid:
            raise psutil.NoSuchProcess(self.pid)
        return listed(self, recursive)

    monkeypatch.setattr(psutil.Process, "children", children)
    try:
        found = {proc.pid for proc in processes._descendants(None, set())}
        assert {ends.pid, stays.pid} <= found
        monkeypatch.undo()
        assert (
            processes.kill_descendants(
                spare={p.pid for p in psutil.Process().children()} - {ends.pid, stays.pid}
            )
            == 2
        )
    finally:
        for proc in (ends, stays):
            proc.kill()
            proc.wait()


def command_line(process: psutil.Process) -> list[str]:
    """Its command line, or none for a child that ended (or is a zombie) while the test looked:
    the harness runs short commands of its own as it starts (reading the machine's details)."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_the_worker_dies_with_a_harness_killed_by_sigkill(idx_dir, tmp_path):
    proc = harness(
        tmp_path, "--data-dir", str(idx_dir), *TINY, "--backend-path", "tests.fake_backends:Hangs"
    )
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "harness.runner.worker" in " ".join(command_line(p))
        ]
    assert workers, "the worker never started"
    scratch = list((tmp_path / "tmp").iterdir())
    assert scratch
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "the worker outlived its harness"

    # The next start removes the scratch folder the killed harness left behind.
    again = harness(tmp_path, "--data-dir", str(idx_dir), *TINY, "--backend", "numpy")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"removed {scratch[0]}, left behind by a harness that was killed" in err.replace(
        "\n", ""
    )
    assert list((tmp_path / "tmp").iterdir()) == []


def test_sigint_during_the_gemm_measurement_leaves_no_session(idx_dir, tmp_path):
    args = [a for a in TINY if a != "--no-gemm-rate"]
    proc = harness(
        tmp_path, "--data-dir", str(idx_dir), *args, "--backend", "numpy", preexec_fn=take_ctrl_c
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any((tmp_path / "results").glob("*")):
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted before the first run ended; removed" in err.replace("\n", "")
    assert list((tmp_path / "results").iterdir()) == []


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1]",
        b'{"event": "trained"}',
        b'{"event": "trained", "iteration": "3", "test_acc": 0.5, "loss": 1}',
        b'{"event": "trained", "iteration": 3, "test_acc": 7.5, "loss": 1}',
        b'{"event": "trained", "iteration": 3, "test_acc": 0.5, "loss": "x"}',
        b'{"event": "trained", "iteration": true, "test_acc": 0.5, "loss": 1}',
        b'{"event": "hello"}',
        b"\xff\xfe",
    ],
)
def test_malformed_progress_events_are_counted_not_passed_on(line):
    events = ProgressEvents()
    good = b'{"event": "trained", "iteration": 20, "test_acc": 0.5, "loss": 0.25}\n'
    assert events.feed(line + b"\n" + good) == [
        {"event": "trained", "iteration": 20, "test_acc": 0.5, "loss": 0.25}
    ]
    assert events.junk == 1


def test_an_endless_progress_line_is_dropped_and_counted():
    events = ProgressEvents()
    for _ in range(10):
        assert events.feed(b"x" * 1000) == []
    assert len(events.buffer) <= ProgressEvents.MAX_LINE and events.junk >= 1
    assert events.feed(b'\n{"event": "setup"}\n') == [{"event": "setup"}]
