"""How busy the machine was when a run started: a run that shared the CPUs is not a clean number.

Sampled by the runner between runs, when nothing of the harness is running: the share of all
CPUs that other processes kept busy over a short window, the 1-minute load average (which also
still carries the harness's own previous runs, decaying over a minute, so it is kept but not
judged), and the CPU clock where the system exposes it.
"""

from __future__ import annotations

import contextlib
import os

import psutil

SAMPLE_S = 0.25


def before_run() -> dict[str, float | None]:
    busy = psutil.cpu_percent(interval=SAMPLE_S) / 100
    freq = None
    with contextlib.suppress(Exception):  # not every system exposes it, some raise
        current = psutil.cpu_freq()
        freq = float(current.current) if current and current.current else None
    return {
        "cpu_busy_before": min(max(busy, 0.0), 1.0),
        "load_avg_1min_before": os.getloadavg()[0],
        "cpu_freq_mhz": freq,
    }


def after_run() -> float:
    return os.getloadavg()[0]
