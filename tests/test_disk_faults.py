"""A full or read-only filesystem around a run: one line, exit 2, nothing half-written.

The filesystems are real: a tiny tmpfs mounted in a user and mount namespace of the test's own
(``unshare -rm``), so no privilege is needed and nothing outside the test sees it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY, make_record, make_session


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return done.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces_work(), reason="unshare -rm (user and mount namespaces) is not allowed here"
)


def in_tmpfs(
    mount: Path, *harness_args: str, full: bool = False, read_only: bool = False, **env: str
) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` with a 256 kB tmpfs at ``mount``, full or read-only."""
    mount.mkdir(parents=True, exist_ok=True)
    options = "size=256k" + (",ro" if read_only else "")
    fill = 'head -c 1048576 /dev/zero > "$0/fill" 2>/dev/null;' if full else ""
    script = f'mount -t tmpfs -o {options} tmpfs "$0" && {fill} exec "$@"'
    return subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            script,
            str(mount),
            sys.executable,
            "-m",
            "harness",
            *harness_args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("full", "read_only", "why"),
    [(True, False, "No space left on device"), (False, True, "Read-only file system")],
    ids=["full", "read-only"],
)
def test_creating_a_session_on_a_full_or_read_only_disk(idx_dir, tmp_path, full, read_only, why):
    mount = tmp_path / "disk"
    done = in_tmpfs(
        mount,
        "run",
        "--backend",
        "numpy",
        *TINY,
        "--data-dir",
        str(idx_dir),
        "--results-dir",
        str(mount / "results"),
        full=full,
        read_only=read_only,
    )
    line = _one_line(done)
    assert line.startswith(f"error: cannot write results under {mount / 'results'}: {why}"), line
    assert "--results-dir" in line


def test_the_session_folder_is_removed_when_session_json_cannot_be_written(idx_dir, tmp_path):
    """The tmpfs lives only in its namespace, so what is left is listed from inside it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    run = [sys.executable, "-m", "harness", "run", "--backend", "numpy", *TINY]
    run += ["--data-dir", str(idx_dir), "--results-dir", str(mount / "results")]
    script = (
        'mount -t tmpfs -o size=256k tmpfs "$0" && mkdir "$0/results" && '
        'head -c 1048576 /dev/zero > "$0/fill" 2>/dev/null; '
        '"$@"; echo "exit=$?"; echo "left:"; ls -A "$0/results"'
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, str(mount), *run],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "No space left on device" in done.stderr, done.stderr
    assert done.stdout.rstrip().endswith("exit=2\nleft:"), done.stdout  # no session folder


def test_a_disk_filling_up_mid_session_keeps_what_was_written(idx_dir, tmp_path):
    mount = tmp_path / "disk"
    done = in_tmpfs(
        mount,
        "run",
        "--backend-path",
        "tests.tampering_backends:FillsTheDisk",
        *TINY,
        "--data-dir",
        str(idx_dir),
        "--results-dir",
        str(mount / "results"),
        FILL_PATH=str(mount / "fill"),
    )
    line = _one_line(done)
    assert line.startswith(f"error: could not write {mount / 'results'}/"), line
    assert "fills-disk-t1-r0.json: [Errno 28] No space left on device" in line
    assert "'status': 'ok'" in line and "run --resume" in line, line


def test_a_report_on_a_full_disk_is_one_line_and_leaves_no_folder(tmp_path):
    session = make_session(tmp_path, "S", [make_record("numpy", 3.0, r) for r in range(3)])
    mount = tmp_path / "disk"
    done = in_tmpfs(mount, "report", str(session), "--out", str(mount / "report"), full=True)
    line = _one_line(done)
    assert line.startswith(f"error: cannot write the report to {mount / 'report'}: "), line
    assert "No space left on device" in line and "--out" in line
