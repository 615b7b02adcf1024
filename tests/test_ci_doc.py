"""docs/ci.md's workflow: its commands, run as written against two local sessions."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from harness.arguments import build_parser
from tests.helpers import REPO_ROOT, make_record, make_session

RUNNER = {"cpu_model": "AMD EPYC 7B13", "cores_logical": 4, "memory_bytes": 16 * 2**30}
TIMES = [1.00, 1.02, 0.98, 1.01, 0.99]


def _steps() -> dict[str, str]:
    """name → the shell command of each ``run:`` step of the workflow."""
    workflow = (REPO_ROOT / "docs" / "ci.md").read_text().split("```yaml\n", 1)[1].split("```")[0]
    found = re.findall(r"- name: (.+)\n(?:\s+if: .+\n)?\s+run: (.+)\n", workflow)
    return dict(found)


def _shell(command: str, cwd) -> subprocess.CompletedProcess:
    command = command.replace(".venv/bin/python", shlex.quote(sys.executable))
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _session(root, name, host, factor=1.0):
    env = {**RUNNER, "hostname": host, "machine_id": host}
    return make_session(
        root, name, [make_record("numpy", t * factor, i, env=env) for i, t in enumerate(TIMES)]
    )


def test_the_workflow_has_the_steps_this_test_runs():
    assert set(_steps()) >= {"Install", "Measure", "Gate", "Keep the session as the baseline"}


def test_the_measure_step_is_a_valid_run_command():
    words = shlex.split(_steps()["Measure"])
    assert words[:3] == [".venv/bin/python", "-m", "harness"]
    args = build_parser().parse_args(words[3:])
    assert (args.command, args.repeats, args.threads) == ("run", 5, [1])


@pytest.mark.parametrize(("factor", "status"), [(1.0, 0), (1.3, 1)])
def test_the_gate_passes_the_same_speed_and_stops_a_slower_one(tmp_path, factor, status):
    """main's run on one runner kept as the baseline; the pull request's on another runner."""
    _session(tmp_path / "candidate", "20261201-000000-aaaa", "runner-1")
    keep = _shell(_steps()["Keep the session as the baseline"], tmp_path)
    assert keep.returncode == 0, keep.stderr
    assert (tmp_path / "baseline" / "session" / "session.json").exists()
    shutil.rmtree(tmp_path / "candidate")  # the next job starts from a fresh checkout
    _session(tmp_path / "candidate", "20261202-000000-bbbb", "runner-2", factor)
    gate = _shell(_steps()["Gate"], tmp_path)
    assert gate.returncode == status, gate.stderr
    if status:
        assert "gate: slower: numpy @1" in gate.stderr


def test_without_a_baseline_the_gate_fails(tmp_path):
    _session(tmp_path / "candidate", "20261202-000000-bbbb", "runner-2")
    gate = _shell(_steps()["Gate"], tmp_path)
    assert gate.returncode == 2
    assert "no results at baseline/session" in gate.stderr
