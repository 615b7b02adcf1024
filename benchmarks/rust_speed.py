"""Benchmark: the Rust backend against its GEMM-rate bound, its own 1-thread speed and NumPy.

    python benchmarks/rust_speed.py [--data-dir DIR] [--repeats 5] [--json FILE]

One command for everything rust_impl/README.md quotes:

1. ``harness run --backend rust --backend numpy --threads 1,2 --repeats N``: the backends
   interleaved, and the session measures the GEMM-rate bound itself (NumPy's float32 rate on a
   2048² product, per thread count, at its start);
2. the same for rust alone with ``--profile`` (3 repeats): time per phase of a step;
3. ``cargo run --release --example kernels -- --json`` in rust_impl/, with and without the
   AVX-512 code of gemm, pulp and the own kernels (``--no-default-features``): the first layer's
   products with each library and layout, and two threads at a spinning barrier against rayon;
4. ``cargo run --release --example phases -- THREADS [--same-batch] --json``, 5 of each
   interleaved: a step at 1 thread on random batches, and on the same batch every step (its rows
   stay in the caches), i.e. the step with and without waiting on memory for the batch; and a
   step at 2 threads on random batches, each thread's phases.

3 and 4 are skipped, and said so, without cargo.

Prints the figures the Rust issue sets targets for: rust at 1 thread ≤ 1.4 × its bound; rust at
2 threads ≥ 1.7 × its own 1-thread speed; rust faster than numpy at both. With ``--json`` the
numbers are kept there and the two sessions (under results/) are named in
results/REFERENCE.json as ``rust_speed`` and ``rust_profile``, which benchmarks/reproduce.py reads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from kept import keep

REPO = Path(__file__).resolve().parent.parent
BOUND_TARGET = 1.4  # rust at 1 thread, times its GEMM-rate bound, at most
SCALING_TARGET = 1.7  # rust's 1-thread time over its 2-thread time, at least


def session(argv: list[str], results: Path) -> Path:
    """Runs ``harness run`` with ``argv`` into ``results``; returns the new session's folder."""
    from harness import cli

    before = {p.name for p in results.iterdir()} if results.exists() else set()
    if cli.main(["run", *argv, "--results-dir", str(results)]) != 0:
        raise SystemExit("error: a run failed; see above")
    (new,) = [p for p in results.iterdir() if p.name not in before and p.is_dir()]
    return new


def example(name: str, *args: str, cargo_flags: tuple[str, ...] = ()) -> list[dict[str, Any]] | str:
    """The JSON lines a rust_impl example prints, or why there are none."""
    if shutil.which("cargo") is None:
        return "not measured: cargo is not installed"
    result = subprocess.run(
        ["cargo", "run", "--release", "--quiet", *cargo_flags, "--example", name, "--", *args],
        cwd=REPO / "rust_impl",
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return f"not measured: the {name} example failed: {result.stderr.strip()[-300:]}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def kernels(*cargo_flags: str) -> list[dict[str, Any]] | str:
    """The kernels example's rows, or why there are none."""
    return example("kernels", "--json", cargo_flags=cargo_flags)


PHASES_RUNS = {
    "random_batches": ("1",),
    "same_batch": ("1", "--same-batch"),
    "two_threads": ("2",),
}


def phases_example(repeats: int = 5) -> dict[str, Any] | str:
    """Medians, µs per step, of the phases example run as each of ``PHASES_RUNS``, interleaved;
    per thread as well as for the first thread alone."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in PHASES_RUNS}
    for _ in range(repeats):
        for kind, args in PHASES_RUNS.items():
            lines = example("phases", *args, "--json")
            if isinstance(lines, str):
                return lines
            runs[kind] += lines

    def medians(phases: list[dict[str, float]]) -> dict[str, float]:
        return {phase: statistics.median(p[phase] for p in phases) for phase in phases[0]}

    summary: dict[str, Any] = {}
    for kind, found in runs.items():
        threads = found[0]["threads"]
        per_thread = [medians([r["per_thread"][t] for r in found]) for t in range(threads)]
        summary[kind] = {
            "runs": len(found),
            "steps": found[0]["steps"],
            "threads": threads,
            # The first thread's, as the harness's --profile gives them.
            "us_per_step": per_thread[0],
            "per_thread_us_per_step": per_thread,
            "wall_us_per_step": statistics.median(r["wall_us_per_step"] for r in found),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--results-dir", type=Path, default=REPO / "results", help="where the sessions go"
    )
    parser.add_argument("--json", type=Path, default=None, help="keep the numbers in this file")
    args = parser.parse_args()

    from harness.results.store import load_results, write_json_atomic
    from harness.results.summary import summarize, thread_scaling, to_frame

    common = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    backends = ["--backend", "rust", "--backend", "numpy"]
    speed = session(
        [*backends, "--threads", "1,2", "--repeats", str(args.repeats), *common], args.results_dir
    )
    profile = session(
        ["--backend", "rust", "--threads", "1,2", "--repeats", "3", "--profile", *common],
        args.results_dir,
    )
    products = kernels()
    # gemm's and pulp's AVX2 code, as on a CPU without AVX-512 (the own AVX-512 kernels absent;
    # matrixmultiply has no AVX-512 code).
    products_avx2 = kernels("--no-default-features")
    phases = phases_example()

    # The same medians and bound the report and the README tables use.
    records = load_results([speed]).records
    frame = to_frame(records)
    rows = summarize(frame, "numpy")
    iterations = records[0].spec["iterations"]

    def row(backend: str, threads: int) -> Any:
        found = rows[(rows["backend"] == backend) & (rows["threads"] == str(threads))]
        if len(found) != 1:
            raise SystemExit(f"error: no successful {backend} runs at {threads} threads")
        return next(found.itertuples())

    numbers: dict[str, Any] = {"sessions": {"speed": speed.name, "profile": profile.name}}
    for threads in (1, 2):
        rust, numpy = row("rust", threads), row("numpy", threads)
        numbers[f"threads_{threads}"] = {
            "bound_s": rust.gemm_bound_s,
            "rust_s": rust.train_time_s,
            "numpy_s": numpy.train_time_s,
            "rust_train_acc": rust.train_acc,
            "rust_test_acc": rust.test_acc,
        }
    one, two = numbers["threads_1"], numbers["threads_2"]
    numbers["bound_ratio_1"] = one["rust_s"] / one["bound_s"]
    # The medians' ratio and its interval from one place (the same medians as the rows above).
    scaling = thread_scaling(frame, "rust", "2")
    numbers["scaling_2"] = float(scaling.value)
    numbers["scaling_2_interval"] = [scaling.low, scaling.high]
    numbers["targets"] = {
        "bound_ratio_1_at_most": BOUND_TARGET,
        "scaling_2_at_least": SCALING_TARGET,
        "bound_met": numbers["bound_ratio_1"] <= BOUND_TARGET,
        "scaling_met": numbers["scaling_2"] >= SCALING_TARGET,
    }
    numbers["kernels"] = products
    numbers["kernels_without_avx512"] = products_avx2
    numbers["phases_example"] = phases

    print(f"sessions: {speed} (speed), {profile} (--profile)")
    for threads, row in ((1, one), (2, two)):
        print(
            f"{threads} thread{'s' * (threads > 1)}: bound {row['bound_s']:.2f} s, "
            f"rust {row['rust_s']:.2f} s, numpy {row['numpy_s']:.2f} s "
            f"(numpy/rust {row['numpy_s'] / row['rust_s']:.2f}×)"
        )
    met = numbers["targets"]
    print(
        f"rust@1 = {numbers['bound_ratio_1']:.2f} × its bound "
        f"({'met' if met['bound_met'] else 'MISSED'}: ≤ {BOUND_TARGET})"
    )
    print(
        f"rust@2 = {scaling.text()} its own 1-thread speed, 95 % interval in brackets "
        f"({'met' if met['scaling_met'] else 'MISSED'}: ≥ {SCALING_TARGET})"
    )
    if isinstance(products, str):
        print(f"kernels: {products}")
    else:
        product_width = max((len(row["product"]) for row in products), default=0)
        how_width = max((len(row["how"]) for row in products), default=0)
        for row in products:
            print(
                f"  {row['product']:{product_width}} {row['how']:{how_width}} "
                f"{row['us']:7.1f} µs {row['gflops']:6.1f} GFLOP/s"
            )

    if isinstance(phases, str):
        print(f"phases example: {phases}")
    else:
        bound_us = one["bound_s"] / iterations * 1e6
        for kind, found in phases.items():
            wall = found["wall_us_per_step"]
            waits = ", ".join(f"{t['wait']:.1f}" for t in found["per_thread_us_per_step"])
            print(
                f"  phases example, {kind.replace('_', ' ')}: {wall:.0f} µs per step "
                f"({wall / bound_us:.2f} × the 1-thread bound per step, {bound_us:.0f} µs); "
                f"µs per step at the barriers, per thread: {waits}"
            )

    if args.json is not None:
        keep(args.json, "rust_speed", numbers)
        manifest_path = args.results_dir / "REFERENCE.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest.update({"rust_speed": speed.name, "rust_profile": profile.name})
        write_json_atomic(manifest_path, manifest)
        print(f"named in {manifest_path}: rust_speed, rust_profile")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
