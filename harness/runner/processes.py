"""Keeping a run's processes in hand: no descendant of a worker outlives its run.

Linux gives the tools: a *child subreaper* (``PR_SET_CHILD_SUBREAPER``) adopts the orphans of its
descendants, even those that called setsid, so they stay findable as its children; a *parent-death
signal* (``PR_SET_PDEATHSIG``) kills the worker if the harness itself dies. Elsewhere these are
no-ops and only the process group is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import tempfile
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
SCRATCH_PREFIX = "mlp-bench-"

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # not Linux
    _libc = None


def _prctl(option: int, value: int) -> bool:
    return _libc is not None and _libc.prctl(option, value, 0, 0, 0) == 0


def become_subreaper(on: bool = True) -> bool:
    """Adopt orphaned descendants (instead of init), so they can still be found and killed."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, int(on))


def die_with_parent() -> None:
    """In a freshly forked child: get SIGKILL when the parent dies (async-signal-safe enough)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_descendants(pid: int | None = None, spare: set[int] = frozenset()) -> int:
    """SIGKILL every descendant of ``pid`` (default: this process) but ``spare``; reap them.

    Stops them first so none can fork between its kill and its siblings'. A process can still
    fork between the listing and its stop; its child is adopted by ``pid`` (a subreaper) only
    when the parent dies, after the listing, so the sweep is repeated while it finds live
    processes. Returns how many died.
    """
    found = _descendants(pid, spare)
    killed = 0
    for _ in range(_MAX_SWEEPS):
        if not found:
            break
        for proc in found:
            with contextlib.suppress(psutil.Error):
                proc.suspend()
        for proc in found:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(found, timeout=5)
        killed += len(found)
        # Zombies left now are not ours to reap (their parent is): only the living count again.
        found = [proc for proc in _descendants(pid, spare) if _alive(proc)]
    return killed


_MAX_SWEEPS = 10  # each sweep kills a generation forked during the one before


def _descendants(pid: int | None, spare: set[int]) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return []
    found: list[psutil.Process] = []
    for child in children:
        if child.pid in spare:
            continue
        found.append(child)
        # A child that ended since the listing (a shell that forked a daemon and exited, say)
        # has no children to list; its siblings, and the daemon, must still be found.
        with contextlib.suppress(psutil.Error):
            found += child.children(recursive=True)
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(proc_pid: int) -> None:
    """The worker, everything it started, and its process group.

    The worker is stopped first: running, it could start a process (a setsid'd daemon, say)
    after its descendants were listed, which its death would then leave behind."""
    with contextlib.suppress(psutil.Error):
        psutil.Process(proc_pid).suspend()
    kill_descendants(proc_pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc_pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(proc_pid, signal.SIGKILL)


def scratch_dir() -> Path:
    """A private scratch directory for one run, named after this harness process."""
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))


def remove_stale_scratch() -> list[Path]:
    """Scratch directories of harness processes that are gone (killed with -9, say)."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        owner = path.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if not owner.isdigit() or psutil.pid_exists(int(owner)) or not path.is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
