"""Benchmark: the Rust backend against the FLOP floor and against NumPy, at 1 and 2 threads.

    python benchmarks/rust_speed.py [--data-dir DIR] [--repeats 3]

In one run: NumPy's single-core float32 GEMM rate on a large square product gives the floor
(the job's FLOPs ÷ that rate); then `harness run` trains rust and numpy at threads 1 and 2,
interleaved. Prints the medians and the ratios the Rust issue sets: rust@1 ≤ 1.5 × floor, and
rust faster than numpy at 1 and at 2 threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from harness import cli
from harness.results.store import load_results
from harness.runner.gemm_rate import gemm_gflops
from harness.spec import Spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rate = gemm_gflops(threads=1)
    spec = Spec()
    floor_s = spec.flops_per_iteration(784, 10) * spec.iterations / (rate * 1e9)
    print(f"NumPy float32 GEMM, 1 core, 2048²: {rate:.1f} GFLOP/s → bound {floor_s:.2f} s")

    with tempfile.TemporaryDirectory() as results:
        argv = [
            "run",
            "--backend",
            "rust",
            "--backend",
            "numpy",
            "--threads",
            "1,2",
            "--repeats",
            str(args.repeats),
            "--results-dir",
            results,
        ]
        if args.data_dir:
            argv += ["--data-dir", str(args.data_dir)]
        if cli.main(argv) != 0:
            raise SystemExit("a run failed; see above")
        (session,) = Path(results).iterdir()
        records = load_results([session]).records

    def median(backend: str, threads: int) -> float:
        times = [
            r.train_time_s
            for r in records
            if r.backend == backend and r.threads == threads and r.status == "ok"
        ]
        return statistics.median(times)

    rust1, rust2 = median("rust", 1), median("rust", 2)
    numpy1, numpy2 = median("numpy", 1), median("numpy", 2)
    ratio = rust1 / floor_s
    print(
        f"rust@1 {rust1:.2f} s = {ratio:.2f} × the GEMM-rate bound "
        f"({'ok' if ratio <= 1.5 else 'MISSED'}: ≤ 1.5)"
    )
    print(f"rust@1 {rust1:.2f} s vs numpy@1 {numpy1:.2f} s: {numpy1 / rust1:.2f}× faster")
    print(f"rust@2 {rust2:.2f} s vs numpy@2 {numpy2:.2f} s: {numpy2 / rust2:.2f}× faster")


if __name__ == "__main__":
    main()
