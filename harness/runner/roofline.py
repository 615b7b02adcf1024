"""The machine's float32 GEMM rate: NumPy on a large square product, in a fresh process.

A fresh process, because BLAS reads its thread count once at start-up. The job's FLOP count
divided by this rate is the fastest any backend could possibly train ("the FLOP floor").

    python -m harness.runner.roofline [--threads N] [--size 2048]   # prints GFLOP/s as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from harness.runner.threads import thread_env


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


def gemm_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GEMM rate with ``threads`` BLAS threads, in GFLOP/s."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.runner.roofline",
            "--size",
            str(size),
            "--repeats",
            str(repeats),
        ],
        env={**os.environ, **thread_env(threads)},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(json.loads(result.stdout)["gflops"])


def measure_roofline(size: int = 2048) -> dict[str, float | int]:
    """The session's roofline: float32 GEMM GFLOP/s on one core and on every allowed CPU."""
    cores = len(os.sched_getaffinity(0))
    return {
        "gflops_1core": gemm_gflops(1, size),
        "gflops_all_cores": gemm_gflops(cores, size),
        "cores": cores,
        "size": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="float32 GEMM rate of NumPy on this machine")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps({"gflops": _measure_here(args.size, args.repeats), "size": args.size}))


if __name__ == "__main__":
    main()
