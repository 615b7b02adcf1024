"""Benchmark: the harness's own overhead on the time it reports.

    python benchmarks/harness_overhead.py [--data-dir DIR] [--repeats 3]

The NumPy backend's train_steps over the reference job, timed directly in this process (one
BLAS thread, the same chunks the harness times), against the train_time_s the harness records
for the same backend and thread count (its own fresh worker process). Interleaved; medians;
the bar is a ratio below 1.02.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from kept import keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="keep the numbers in this file")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # before NumPy loads, as the harness does for its workers

    from numpy_vs_script import backend_time  # benchmarks/ is on sys.path when run as a script

    from harness import cli, data
    from harness.results.store import load_results
    from harness.spec import Spec
    from harness.work.plan import make_plan

    spec = Spec()
    files = data.locate(spec.dataset, args.data_dir)
    dataset = data.load(files, spec.dtype)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)

    def direct() -> float:
        return backend_time(spec, dataset.train_x, dataset.train_y, plan)

    def through_harness() -> float:
        with tempfile.TemporaryDirectory() as results:
            argv = [
                "run",
                "--backend",
                "numpy",
                "--threads",
                "1",
                "--repeats",
                "1",
                "--no-gemm-rate",
                "--results-dir",
                results,
            ]
            if args.data_dir:
                argv += ["--data-dir", str(args.data_dir)]
            if cli.main(argv) != 0:
                raise SystemExit("the harness run failed")
            (session,) = Path(results).iterdir()
            (record,) = load_results([session]).records
            return record.train_time_s

    direct_times, harness_times = [], []
    for repeat in range(args.repeats):
        direct_times.append(direct())
        harness_times.append(through_harness())
        print(
            f"repeat {repeat + 1}: direct {direct_times[-1]:.2f} s, "
            f"harness {harness_times[-1]:.2f} s"
        )
    ratio = statistics.median(harness_times) / statistics.median(direct_times)
    print(
        f"median: direct {statistics.median(direct_times):.2f} s, harness "
        f"{statistics.median(harness_times):.2f} s, ratio {ratio:.3f} (bar: < 1.02)"
    )
    keep(
        args.json,
        "harness_overhead",
        {
            "repeats": args.repeats,
            "direct_s": direct_times,
            "harness_s": harness_times,
            "direct_median_s": statistics.median(direct_times),
            "harness_median_s": statistics.median(harness_times),
            "ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
