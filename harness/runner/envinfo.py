"""Facts about the machine and the software, stored with every run record."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import psutil

_INTERESTING_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni")


def _cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", "", platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"cpu_model": model, "cpu_flags": [f for f in _INTERESTING_FLAGS if f in flags]}


def _git(*args: str) -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _rustc_version() -> str | None:
    try:
        out = subprocess.run(["rustc", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _machine_id() -> str | None:
    """systemd's machine id: tells apart containers and VMs that share a host name."""
    for path in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        try:
            return path.read_text().strip() or None
        except OSError:
            continue
    return None


def _cpu_state() -> dict[str, Any]:
    """What pyperf's metadata says of the CPUs' state: each one's frequency, its governor and
    turbo (``cpu_config``, e.g. "0-1=driver:intel_pstate, intel_pstate:turbo,
    governor:performance"), the isolated CPUs and ASLR. pyperf has no public call for it
    (``python -m pyperf metadata`` prints the same); without it these are absent, not guessed."""
    try:
        from pyperf._collect_metadata import collect_metadata
        from pyperf._cpu_utils import get_isolated_cpus
    except ImportError:
        return {}
    try:
        metadata = collect_metadata(process=False)
        isolated = get_isolated_cpus()
    except Exception:  # a /sys or /proc this pyperf does not understand: say nothing
        return {}
    facts = {key: metadata.get(key) for key in ("cpu_freq", "cpu_config", "aslr")}
    return {**facts, "isolated_cpus": sorted(isolated or [])}


def gpu_env() -> dict[str, Any]:
    """nvidia-smi's view of the GPUs (model, memory, driver, the CUDA version the driver
    supports), for the record of a run on a GPU; without it, says why there is none."""
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    try:
        listing = subprocess.run(query, capture_output=True, text=True, timeout=20, check=True)
        banner = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"unknown": f"nvidia-smi could not say: {type(exc).__name__}: {exc}"}
    devices = []
    for line in listing.stdout.strip().splitlines():
        name, memory, driver = (part.strip() for part in line.split(",", 2))
        devices.append({"name": name, "memory": memory, "driver": driver})
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", banner.stdout)
    return {"gpus": devices, "cuda_driver_version": cuda.group(1) if cuda else None}


def machine_identity() -> dict[str, Any]:
    """What tells this machine from others (results.key.MACHINE_FIELDS), and its CPU flags."""
    return {
        "hostname": platform.node(),
        "machine_id": _machine_id(),
        **_cpu_info(),
        "cores_logical": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }


def session_env() -> dict[str, Any]:
    """Collected once per session, in the parent process."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        **machine_identity(),
        "cores_physical": psutil.cpu_count(logical=False),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rustc": _rustc_version(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_commit_date": _git("show", "-s", "--format=%cI", "HEAD"),  # orders `history`
        "git_dirty": None if status is None else bool(status),
        **_cpu_state(),
    }
