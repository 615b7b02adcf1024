"""`harness history`: a key's median per session in commit order, step changes flagged."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.spec import Spec
from tests.helpers import make_record, make_session

TIMES = [1.00, 1.02, 0.98, 1.01, 0.99]
RUNNER = {"cpu_model": "AMD EPYC 7B13", "cores_logical": 2, "memory_bytes": 8 * 2**30}


def _session(root, name, commit, date, factor=1.0, dirty=False, backend="numpy", **extra):
    env = {**RUNNER, "hostname": "h", "machine_id": "m", "git_commit": commit * 5,
           "git_commit_date": date, "git_dirty": dirty, **extra.pop("env", {})}  # fmt: skip
    records = [
        make_record(backend, t * factor, i, env=env, started_at=f"{date}.{i}", **extra)
        for i, t in enumerate(TIMES)
    ]
    for record in records:
        record["session"] = name
    return make_session(root, name, records)


def _history(root, capsys, *more: str) -> list[dict]:
    assert main(["history", "--results-dir", str(root), "--json", *more]) == 0
    return json.loads(capsys.readouterr().out)


def test_sessions_follow_commit_order_and_the_first_of_a_step_is_flagged(tmp_path, capsys):
    # Folder names sort against commit order: the commit date decides, not the name.
    _session(tmp_path, "s4", "d", "2026-12-04T00:00:00+00:00", factor=1.2)
    _session(tmp_path, "s3", "c", "2026-12-03T00:00:00+00:00", factor=1.2)
    _session(tmp_path, "s2", "b", "2026-12-02T00:00:00+00:00", dirty=True)
    _session(tmp_path, "s1", "a", "2026-12-01T00:00:00+00:00")
    (line,) = _history(tmp_path, capsys)
    points = line["points"]
    assert [p["commit"][0] for p in points] == ["a", "b", "c", "d"]
    assert [p["step"] for p in points] == [None, None, "slower", None]
    assert points[1]["dirty"] is True
    assert points[0]["median_s"] == pytest.approx(1.0)
    assert points[0]["ci_low_s"] <= 1.0 <= points[0]["ci_high_s"]
    assert points[2]["ratio_to_before"] == pytest.approx(1.2, rel=0.01)
    assert points[3]["ratio_to_before"] == pytest.approx(1.0, rel=0.01)  # against the new level


def test_a_speed_up_is_flagged_faster_and_small_changes_are_not_steps(tmp_path, capsys):
    _session(tmp_path, "s1", "a", "2026-12-01T00:00:00+00:00")
    _session(tmp_path, "s2", "b", "2026-12-02T00:00:00+00:00", factor=1.04)  # within 5 %
    _session(tmp_path, "s3", "c", "2026-12-03T00:00:00+00:00", factor=0.5)
    (line,) = _history(tmp_path, capsys)
    assert [p["step"] for p in line["points"]] == [None, None, "faster"]
    (line,) = _history(tmp_path, capsys, "--threshold", "0.5")
    assert [p["step"] for p in line["points"]] == [None, "slower", "faster"]


def test_unlike_runs_are_never_one_line(tmp_path, capsys):
    uniform = {**Spec().to_dict(), "init": "uniform"}
    _session(tmp_path, "s1", "a", "2026-12-01T00:00:00+00:00")
    _session(tmp_path, "s2", "b", "2026-12-02T00:00:00+00:00", factor=2, spec=uniform)
    _session(tmp_path, "s3", "c", "2026-12-03T00:00:00+00:00", factor=3, pin=True)
    lines = _history(tmp_path, capsys)
    assert len(lines) == 3 and all(len(line["points"]) == 1 for line in lines)
    assert not any(p["step"] for line in lines for p in line["points"])


def test_match_cpu_joins_runners_of_one_type_that_exact_keeps_apart(tmp_path, capsys):
    _session(tmp_path, "s1", "a", "2026-12-01T00:00:00+00:00")
    _session(tmp_path, "s2", "b", "2026-12-02T00:00:00+00:00", env={"hostname": "other"})
    assert len(_history(tmp_path, capsys)) == 2
    (line,) = _history(tmp_path, capsys, "--match", "cpu")
    assert len(line["points"]) == 2


def test_backend_and_threads_filters(tmp_path, capsys):
    _session(tmp_path, "s1", "a", "2026-12-01T00:00:00+00:00")
    _session(tmp_path, "s2", "a", "2026-12-01T00:00:00+00:00", backend="rust", factor=0.3)
    assert [line["key"]["backend"] for line in _history(tmp_path, capsys, "--backend", "rust")] == [
        "rust"
    ]
    assert main(["history", "--results-dir", str(tmp_path), "--threads", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: no ok runs to follow in 2 session(s) with the --backend/--threads given"
    )


def test_table_and_chart(tmp_path, capsys):
    _session(tmp_path / "r", "s1", "a", "2026-12-01T00:00:00+00:00")
    _session(tmp_path / "r", "s2", "b", "2026-12-02T00:00:00+00:00", factor=1.5)
    chart = tmp_path / "chart"
    assert main(["history", "--results-dir", str(tmp_path / "r"), "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "bbbbb" in out and "slower" in out and "1 step change(s) beyond ±5 %" in out
    assert (chart / "history.png").stat().st_size > 0 and (chart / "history.svg").exists()


def test_the_report_shows_history_only_across_commits(tmp_path, capsys):
    root = tmp_path / "r"
    _session(root, "s1", "a", "2026-12-01T00:00:00+00:00")
    _session(root, "s2", "a", "2026-12-01T00:00:00+00:00")
    assert (
        main(["report", "s1", "s2", "--results-dir", str(root), "--out", str(tmp_path / "one")])
        == 0
    )
    assert not (tmp_path / "one" / "history.png").exists()
    _session(root, "s3", "b", "2026-12-02T00:00:00+00:00")
    out = tmp_path / "many"
    assert main(["report", "s1", "s3", "--results-dir", str(root), "--out", str(out)]) == 0
    assert (out / "history.png").exists() and (out / "history.svg").exists()
    assert "![history](history.png)" in (out / "report.md").read_text()
    assert 'alt="history"' in (out / "index.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "x"], "argument --threshold: 'x' is not a percentage"),
        (["--match", "near"], "argument --match: invalid choice: 'near'"),
    ],
)
def test_bad_options_are_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stopped:
        main(["history", "--results-dir", str(tmp_path), *args])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_no_sessions_says_where_it_looked(tmp_path, capsys):
    assert main(["history", "--results-dir", str(tmp_path / "none")]) == 2
    assert "results directory" in capsys.readouterr().err


def _one_run_sessions(root, times):
    """One run per session, one commit each, as a CI job on each commit leaves them."""
    for i, t in enumerate(times):
        date = f"2026-12-{i + 1:02d}T00:00:00+00:00"
        env = {**RUNNER, "hostname": "h", "machine_id": "m", "git_commit": f"{i:07d}",
               "git_commit_date": date, "git_dirty": False}  # fmt: skip
        record = make_record("numpy", t, 0, env=env, started_at=date)
        record["session"] = f"s{i}"
        make_session(root, f"s{i}", [record])


def test_one_run_per_session_finds_a_step_from_the_noise_along_the_sequence(tmp_path, capsys):
    _one_run_sessions(tmp_path, [1.00, 1.02, 0.99, 1.01, 1.68, 1.70])
    (line,) = _history(tmp_path, capsys)
    assert [p["step"] for p in line["points"]] == [None, None, None, None, "slower", None]
    assert [p["judged"] for p in line["points"]] == [False, False, True, True, True, False]


def test_one_run_per_session_within_the_noise_is_no_step(tmp_path, capsys):
    # ±10 % noise: a 12 % move is within three noise widths, whatever the 5 % threshold says.
    _one_run_sessions(tmp_path, [1.00, 1.10, 0.90, 1.05, 0.95, 1.12])
    (line,) = _history(tmp_path, capsys)
    assert [p["step"] for p in line["points"]] == [None] * 6


def test_history_says_which_points_it_could_not_judge(tmp_path, capsys):
    _one_run_sessions(tmp_path, [1.00, 1.68, 1.70])
    assert main(["history", "--results-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 step change(s) beyond ±5 % among the 1 point(s) it could judge" in out
    assert "1 could not be judged (one run each" in out


def test_the_table_keeps_every_column_whole_at_100_columns(tmp_path):
    """Long labels (several machines) and full session ids: nothing is cut to '…'."""
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    long_cpu = {"cpu_model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz with a long name"}
    _session(tmp_path, "20261201-101530-ab12", "a", "2026-12-01T00:00:00+00:00", env=long_cpu)
    _session(tmp_path, "20261202-101530-cd34", "b", "2026-12-02T00:00:00+00:00", factor=1.5)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "history",
            "--results-dir",
            str(tmp_path),
            "20261201-101530-ab12",
            "20261202-101530-cd34",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert "…" not in result.stdout
    assert "1201-1015-ab12" in result.stdout and "1202-1015-cd34" in result.stdout  # the rule
    assert "aaaaa " in result.stdout and "bbbbb " in result.stdout


def test_without_sessions_named_history_follows_this_machine(tmp_path, capsys):
    from harness.runner.envinfo import machine_identity

    here = machine_identity()
    _session(tmp_path, "s1", "a", "2026-12-01T00:00:00+00:00", env=here)
    _session(tmp_path, "s2", "b", "2026-12-02T00:00:00+00:00", env=here)
    _session(tmp_path, "s3", "c", "2026-12-03T00:00:00+00:00")  # another machine
    assert main(["history", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "this machine's 2 session(s) only" in out
    assert "aaaaa " in out and "bbbbb " in out and "ccccc " not in out
    assert main(["history", "--results-dir", str(tmp_path), "s1", "s2", "s3"]) == 0
    assert "ccccc " in capsys.readouterr().out  # named sessions: whichever machine


def test_short_session_ids_follow_the_stated_rule():
    from harness.commands.history import short_session

    assert short_session("20261208-000308-e011") == "1208-0003-e011"
    assert short_session("my-own-name") == "my-own-name"
