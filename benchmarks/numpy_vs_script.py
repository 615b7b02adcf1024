"""Benchmark: the NumPy backend's train_steps against a plain script doing the same NumPy work.

    python benchmarks/numpy_vs_script.py [--data-dir DIR] [--repeats 3] [--threads 1]

Both run in this one process, interleaved (script, backend, script, …), over the harness's own
batch stream; medians and their ratio are printed. The issue's bar is a ratio ≤ 1.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from kept import keep


def plain_script(train_x, train_y, batches, init, lr):
    """The book's arithmetic written straight out, with no classes and no harness."""
    import numpy as np

    W1, b1, W2, b2 = (init[k].copy() for k in ("W1", "b1", "W2", "b2"))
    start = time.perf_counter()
    for rows in batches:
        x, t = train_x[rows], train_y[rows]
        h = x @ W1 + b1
        mask = h <= 0
        a = h.copy()
        a[mask] = 0
        z = a @ W2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
        _loss = -np.log(y[np.arange(len(t)), t] + 1e-7).sum() / len(t)
        dz = y.copy()
        dz[np.arange(len(t)), t] -= 1
        dz = dz / len(t)
        dW2, db2 = a.T @ dz, dz.sum(axis=0)
        da = dz @ W2.T
        da[mask] = 0
        dW1, db1 = x.T @ da, da.sum(axis=0)
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    return time.perf_counter() - start


def backend_time(spec, train_x, train_y, plan):
    from impls.numpy_scratch import NumpyBackend

    backend = NumpyBackend()
    backend.setup(spec, train_x, train_y, plan.init)
    total = 0.0
    for start, end in spec.eval_spans():
        started = time.perf_counter()
        backend.train_steps(plan.batches[start:end])
        total += time.perf_counter() - started
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="keep the numbers in this file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads

    from threadpoolctl import threadpool_limits

    from harness import data
    from harness.spec import Spec
    from harness.work.plan import make_plan

    threadpool_limits(args.threads)
    spec = Spec()
    files = data.locate(spec.dataset, args.data_dir)
    dataset = data.load(files, spec.dtype)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    script, backend = [], []
    for repeat in range(args.repeats):
        script.append(
            plain_script(dataset.train_x, dataset.train_y, plan.batches, plan.init, spec.lr)
        )
        backend.append(backend_time(spec, dataset.train_x, dataset.train_y, plan))
        print(f"repeat {repeat + 1}: script {script[-1]:.2f} s, backend {backend[-1]:.2f} s")
    ratio = statistics.median(backend) / statistics.median(script)
    print(
        f"median: script {statistics.median(script):.2f} s, backend "
        f"{statistics.median(backend):.2f} s, ratio backend/script {ratio:.3f} "
        f"({args.threads} thread{'s' if args.threads > 1 else ''})"
    )
    keep(
        args.json,
        "numpy_vs_script",
        {
            "threads": args.threads,
            "script_s": script,
            "backend_s": backend,
            "script_median_s": statistics.median(script),
            "backend_median_s": statistics.median(backend),
            "ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
