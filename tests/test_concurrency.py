"""Nothing lost when two things happen at once: one writer per session, lost runs redone, no
record ever written over another."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.cli import main
from harness.results.model import RunRecord
from harness.results.store import load_results, read_record
from harness.runner.lock import LOCK_FILE, folder_lock
from harness.runner.session import store_record
from tests.helpers import REPO_ROOT, harness, run


def _session(idx_dir: Path, tmp_path: Path, repeats: int = 2, *args: str) -> Path:
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--repeats", str(repeats), *args) == 0
    (session,) = (tmp_path / "results").iterdir()
    return session


def _mark(session: Path, name: str, status: str, error: str) -> None:
    """Rewrite a record as a run that ended ``status`` (what a lost worker leaves)."""
    record = read_record(session / name)
    lost = replace(
        record,
        status=status,
        error=error,
        train_time_s=None,
        cpu_util=None,
        train_acc=None,
        test_acc=None,
        final_loss=None,
    )
    (session / name).write_text(json.dumps(lost.to_json()))


def _resume(session: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--resume", str(session), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_resume_of_a_held_session_says_who_holds_it(idx_dir, tmp_path):
    session = _session(idx_dir, tmp_path)
    (session / "numpy-t1-r1.json").unlink()
    with folder_lock(session):
        held = _resume(session)
        _, err = held.communicate(timeout=120)
    assert held.returncode == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {session} is being run by pid {os.getpid()} on ")
    assert socket.gethostname() in line and "--wait" in line
    assert not (session / "numpy-t1-r1.json").exists()  # nothing run twice
    assert not (session / LOCK_FILE).exists()  # let go of, and removed


def test_resume_wait_waits_for_the_holder_then_finds_the_work_done(idx_dir, tmp_path):
    session = _session(idx_dir, tmp_path)
    (session / "numpy-t1-r1.json").unlink()
    with folder_lock(session):
        waiting = _resume(session, "--wait")
        # However slowly it starts (a busy machine), it says it waits before it can go on.
        said = next(line for line in waiting.stderr if "waiting for pid" in line)
        assert f"waiting for pid {os.getpid()} on " in said and waiting.poll() is None
        redo = replace(read_record(session / "numpy-t1-r0.json"), repeat=1)
        store_record(session, redo)  # the holder finishes the missing run meanwhile
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert "0 to go" in err
    assert not (session / "numpy-t1-r1.attempt2.json").exists()  # done once, not again


def test_two_resumes_racing_run_each_missing_run_once(idx_dir, tmp_path):
    session = _session(idx_dir, tmp_path, 3)
    for repeat in (1, 2):
        (session / f"numpy-t1-r{repeat}.json").unlink()
    first, second = _resume(session), _resume(session)
    outcomes = [process.communicate(timeout=300) for process in (first, second)]
    codes = sorted((first.returncode, second.returncode))
    # Either the second found the session held (exit 2, one line), or it came after and found
    # nothing left to do; never both running the missing runs.
    assert codes in ([0, 0], [0, 2]), outcomes
    records = sorted(p.name for p in session.glob("*.json") if p.name != "session.json")
    assert records == ["numpy-t1-r0.json", "numpy-t1-r1.json", "numpy-t1-r2.json"]
    assert not (session / LOCK_FILE).exists()


def test_a_lock_dies_with_its_holder(idx_dir, tmp_path):
    session = _session(idx_dir, tmp_path)
    (session / "numpy-t1-r1.json").unlink()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom harness.runner.lock import "
            "folder_lock\nwith folder_lock(Path(sys.argv[1])):\n    print('held', flush=True)"
            "\n    time.sleep(600)\n",
            str(session),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    os.kill(holder.pid, signal.SIGKILL)  # a crash: nothing lets go of it by hand
    holder.wait()
    assert (session / LOCK_FILE).exists()  # left behind, and no obstacle
    resumed = harness("run", "--resume", str(session))
    assert resumed.returncode == 0, resumed.stderr
    assert (session / "numpy-t1-r1.json").exists()


def test_two_runs_into_one_results_folder_make_two_sessions(idx_dir, tmp_path):
    from tests.helpers import TINY

    command = ["run", "--backend", "numpy", "--data-dir", str(idx_dir)]
    command += ["--results-dir", str(tmp_path / "results"), *TINY]
    started = [
        subprocess.Popen([sys.executable, "-m", "harness", *command], cwd=REPO_ROOT)
        for _ in range(2)
    ]
    assert [process.wait(timeout=300) for process in started] == [0, 0]
    sessions = list((tmp_path / "results").iterdir())
    assert len(sessions) == 2
    for session in sessions:
        assert len(load_results([session]).records) == 1


def test_a_record_is_never_written_over(idx_dir, tmp_path):
    session = _session(idx_dir, tmp_path, 1)
    first = session / "numpy-t1-r0.json"
    before = first.read_bytes()
    other = replace(read_record(first), started_at="2026-12-08T00:00:00.000000+00:00")
    written = store_record(session, other)
    assert first.read_bytes() == before
    assert written.name == "numpy-t1-r0.attempt2.json"
    assert read_record(written).attempt == 2


def test_a_lost_run_is_redone_by_resume_and_counted_once(idx_dir, tmp_path, capsys):
    session = _session(idx_dir, tmp_path)
    _mark(session, "numpy-t1-r0.json", "lost", "worker lost: tcp://10.0.0.9:1234 left")
    capsys.readouterr()
    assert main(["export", str(session)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["runs"], row["runs_ok"], row["statuses"]) == (2, 1, "lost")

    assert main(["run", "--resume", str(session)]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 runs already recorded, 1 to go" in err
    assert read_record(session / "numpy-t1-r0.json").status == "lost"  # kept, beside
    assert read_record(session / "numpy-t1-r0.attempt2.json").status == "ok"
    assert main(["export", str(session)]) == 0
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    assert (row["runs"], row["runs_ok"]) == (2, 2)  # the lost attempt is not pooled
    assert (
        f"superseded: {session / 'numpy-t1-r0.json'}: attempt 1 (lost: worker lost: "
        "tcp://10.0.0.9:1234 left), redone as numpy-t1-r0.attempt2.json, which counts"
    ) in captured.err


def test_failed_runs_are_redone_only_when_asked(idx_dir, tmp_path, capsys):
    session = _session(idx_dir, tmp_path)
    _mark(session, "numpy-t1-r1.json", "failed", "RuntimeError: out of luck")
    assert main(["run", "--resume", str(session)]) == 1
    err = capsys.readouterr().err
    assert "0 to go" in err
    assert f"--resume {session} --retry-failed" in err  # says how
    assert main(["run", "--resume", str(session), "--retry-failed"]) == 0
    assert read_record(session / "numpy-t1-r1.attempt2.json").status == "ok"


@pytest.mark.parametrize("flag", ["--wait", "--retry-failed"])
def test_resume_flags_without_resume_are_one_line(idx_dir, tmp_path, capsys, flag):
    assert run(idx_dir, tmp_path, "--backend", "numpy", flag) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {flag} applies to run --resume SESSION; add --resume or drop it"
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())


def test_an_old_record_reads_as_a_first_attempt():
    from tests.helpers import make_record

    old = make_record("numpy", 1.0, 0)
    old["schema_version"] = 3
    old.pop("attempt", None)
    assert RunRecord.from_json(old).attempt == 1


def test_a_session_that_cannot_be_locked_is_one_line(tmp_path, monkeypatch):
    from harness.errors import HarnessError
    from harness.runner import lock

    def refused(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lock.os, "open", refused)
    with pytest.raises(HarnessError) as caught, folder_lock(tmp_path):
        pass
    assert str(caught.value) == (
        f"cannot lock {tmp_path} (Permission denied): a session is written by one harness at a "
        "time; make the folder writable, or copy the session elsewhere"
    )


def test_a_report_moves_its_files_in_only_while_no_other_report_does(tmp_path):
    """Two reports into one folder never leave one's report.md beside the other's index.html:
    each moves its files in under the folder's lock; a second waits its turn."""
    from tests.helpers import make_record, make_session

    make_session(tmp_path / "results", "a", [make_record("numpy", 1.0, r) for r in range(2)])
    out = tmp_path / "report"
    out.mkdir()
    command = ["report", "a", "--out", str(out), "--results-dir", str(tmp_path / "results")]
    with folder_lock(out):
        report = subprocess.Popen(
            [sys.executable, "-m", "harness", *command],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not list(out.glob(".report-*/index.html")):  # rendered, and waiting to move in
            assert time.monotonic() < deadline and report.poll() is None
            time.sleep(0.1)
        assert not (out / "report.md").exists()
    _, err = report.communicate(timeout=120)
    assert report.returncode == 0, err
    assert (out / "report.md").exists() and (out / "index.html").exists()
    assert not list(out.glob(".*"))  # no scratch folder, no lock file left
