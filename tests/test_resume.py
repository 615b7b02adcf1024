"""run --resume keeps the session comparable: stored flags hold, --timeout applies and is recorded,
and the closing summary and exit status cover the whole session."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main
from harness.results.model import SCHEMA_VERSION
from tests.helpers import fake, run


def session_of(tmp_path: Path) -> Path:
    (session,) = (tmp_path / "results").iterdir()
    return session


def resume(tmp_path: Path, *args: str) -> int:
    return main(["run", "--resume", "--results-dir", str(tmp_path / "results"), *args])


def two_runs_one_missing(idx_dir: Path, tmp_path: Path, *args: str) -> Path:
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--repeats", "2", *args) == 0
    session = session_of(tmp_path)
    (session / "numpy-t1-r1.json").unlink()
    return session


def test_a_flag_the_session_ran_without_is_refused(idx_dir, tmp_path, capsys):
    session = two_runs_one_missing(idx_dir, tmp_path)
    capsys.readouterr()
    for flag in ("--profile", "--pin", "--warmup"):
        assert resume(tmp_path, flag) == 2
        err = capsys.readouterr().err
        assert err.strip() == (
            f"error: {flag} conflicts with {session}, which ran without it; its runs would not "
            f"be comparable: drop {flag}, or start a new session"
        )
    assert not (session / "numpy-t1-r1.json").exists()


def test_the_stored_flags_hold_when_not_given_again(idx_dir, tmp_path):
    session = two_runs_one_missing(idx_dir, tmp_path, "--profile")
    assert resume(tmp_path) == 0
    resumed = json.loads((session / "numpy-t1-r1.json").read_text())
    assert resumed["profile"] is True and resumed["phases"]


def test_an_explicit_timeout_applies_to_the_resumed_runs_and_is_recorded(idx_dir, tmp_path):
    session = two_runs_one_missing(idx_dir, tmp_path, "--timeout", "900")
    assert resume(tmp_path, "--timeout", "77") == 0
    assert json.loads((session / "numpy-t1-r0.json").read_text())["timeout_s"] == 900
    assert json.loads((session / "numpy-t1-r1.json").read_text())["timeout_s"] == 77


def test_without_timeout_the_stored_one_holds(idx_dir, tmp_path):
    session = two_runs_one_missing(idx_dir, tmp_path, "--timeout", "900")
    assert resume(tmp_path) == 0
    assert json.loads((session / "numpy-t1-r1.json").read_text())["timeout_s"] == 900


def test_the_timeout_given_kills_a_resumed_run(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *fake("Hangs"), "--timeout", "1") == 1
    session = session_of(tmp_path)
    (record_path,) = session.glob("hangs-*.json")
    record_path.unlink()
    assert resume(tmp_path, "--timeout", "2") == 1
    record = json.loads(record_path.read_text())
    assert record["status"] == "timeout" and record["timeout_s"] == 2
    assert record["error"].startswith("killed after the 2 s timeout")


def test_the_closing_summary_covers_the_whole_session(idx_dir, tmp_path, capsys):
    two_runs_one_missing(idx_dir, tmp_path)
    capsys.readouterr()
    assert resume(tmp_path) == 0
    captured = capsys.readouterr()
    assert "1 of 2 runs already recorded, 1 to go" in captured.err
    (row,) = [line for line in captured.out.splitlines() if "│ numpy" in line]
    assert "2/2" in row


def test_exit_status_is_1_when_any_run_of_the_session_failed(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy", *fake("RaisesInSetup")) == 1
    capsys.readouterr()
    assert resume(tmp_path) == 1  # nothing left to run, but the session holds a failed run
    captured = capsys.readouterr()
    assert "1 of 2 runs did not finish ok" in captured.err
    assert "0/1" in captured.out and "1/1" in captured.out


def test_a_session_file_from_a_newer_harness_is_one_line(idx_dir, tmp_path, capsys):
    session = two_runs_one_missing(idx_dir, tmp_path)
    info = json.loads((session / "session.json").read_text())
    (session / "session.json").write_text(json.dumps({**info, "schema_version": 999}))
    capsys.readouterr()
    assert resume(tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: unreadable: {session / 'session.json'}: schema version 999 is newer than this "
        f"harness reads ({SCHEMA_VERSION}); upgrade mlp-bench to read it"
    )


def test_a_damaged_session_file_is_one_line(idx_dir, tmp_path, capsys):
    session = two_runs_one_missing(idx_dir, tmp_path)
    info = json.loads((session / "session.json").read_text())
    info["matrix"][0]["threads"] = [1]
    (session / "session.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert resume(tmp_path) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: unreadable: {session / 'session.json'}: matrix.0.threads: input should be a "
        "valid integer, found [1]"
    )


def test_resume_with_warmup_warms_up_the_cells_still_to_run(idx_dir, tmp_path, capsys):
    session = two_runs_one_missing(idx_dir, tmp_path, "--warmup")
    capsys.readouterr()
    assert resume(tmp_path) == 0
    err = capsys.readouterr().err
    assert "warm-up: ok (discarded)" in err
    assert json.loads((session / "numpy-t1-r1.json").read_text())["warmup"] is True
