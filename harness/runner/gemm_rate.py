"""The machine's GEMM rate: NumPy's float32 rate on one large square product, per thread count.

Measured in a fresh process per thread count, because BLAS reads its thread count once at
start-up. The job's FLOPs divided by the rate for a run's thread count is that run's *GEMM-rate
bound*: how long the job would take if all of it ran at the speed of one large, well-shaped
matrix product. It is a yardstick measured on the machine, not a hardware limit (small products
run slower, and a faster library would raise it).

    python -m harness.runner.gemm_rate SIZE REPEATS   # prints GFLOP/s as JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

from harness.results.key import threads_label
from harness.runner import machine_state
from harness.runner.threads import thread_env

GEMM_SIZE = 2048


def _measure_here(size: int, repeats: int) -> float:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best / 1e9


def gemm_gflops(threads: int | None, size: int = GEMM_SIZE, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GEMM rate with ``threads`` BLAS threads, in GFLOP/s."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.runner.gemm_rate",
            str(size),
            str(repeats),
        ],
        env={**os.environ, **thread_env(threads)},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(json.loads(result.stdout)["gflops"])


def measure_gemm_rates(
    thread_counts: Iterable[int | None], size: int = GEMM_SIZE
) -> dict[str, Any]:
    """The env entries of a session: the rate for each thread count it runs, and more.

    ``gemm_rates`` maps "1", "2", …, "default" to GFLOP/s. One thread and every allowed CPU are
    always measured too, for ``roofline``: the entry records before schema 2 carried, kept so
    that scripts reading it go on working.
    """
    cores = len(os.sched_getaffinity(0))
    wanted = dict.fromkeys([1, cores, *thread_counts])
    rates, busy = {}, {}
    for threads in wanted:
        # Checked like a run: a rate taken while other processes held the CPUs is suspect.
        busy[threads_label(threads)] = machine_state.before_run()["cpu_busy_before"]
        rates[threads_label(threads)] = gemm_gflops(threads, size)
    return {
        "gemm_rates": rates,
        "gemm_busy": busy,  # the share of the CPUs other processes kept busy just before
        "gemm_size": size,
        "roofline": {
            "gflops_1core": rates["1"],
            "gflops_all_cores": rates[str(cores)],
            "cores": cores,
            "size": size,
        },
    }


def main() -> None:
    """The measuring process ``gemm_gflops`` starts, with the thread environment set."""
    size, repeats = (int(arg) for arg in sys.argv[1:3])
    print(json.dumps({"gflops": _measure_here(size, repeats), "size": size}))


if __name__ == "__main__":
    main()
