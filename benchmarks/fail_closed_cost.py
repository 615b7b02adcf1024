"""Benchmark: what the worker's fail-closed checks cost each run, outside the timed region.

    python benchmarks/fail_closed_cost.py [--data-dir DIR] [--repeats 7]

Each run's worker reads the four data files, checks their SHA-256 against the session's, hands
the backend read-only views, keeps its own copies of labels, initial parameters and batches, and
fingerprints (CRC-32) every array it handed over before the backend runs and again at the end.
This times, in one process on the reference job's data, loading the data with the check against
loading it without (the parse alone), and the handover and the final fingerprint check.
Medians over the repeats.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

from kept import keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="keep the numbers in this file")
    args = parser.parse_args()

    from harness import data
    from harness.data.idx import arrays_from_bytes, read_idx_bytes
    from harness.runner.inputs import RunInputs
    from harness.spec import Spec
    from harness.work.plan import make_plan

    spec = Spec()
    files = data.locate(spec.dataset, args.data_dir)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    names = {role: str(path) for role, path in files.paths.items()}

    def unchecked() -> float:
        started = time.perf_counter()
        raws = {role: read_idx_bytes(path) for role, path in files.paths.items()}
        arrays_from_bytes(raws, names, spec.dtype)
        return time.perf_counter() - started

    def checked() -> float:
        started = time.perf_counter()
        data.load(files, spec.dtype)
        return time.perf_counter() - started

    def hashing() -> float:
        raws = [read_idx_bytes(path) for path in files.paths.values()]
        started = time.perf_counter()
        for raw in raws:
            hashlib.sha256(raw).hexdigest()
        return time.perf_counter() - started

    dataset = data.load(files, spec.dtype)
    arrays = (dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y)

    def handover() -> tuple[float, float]:
        started = time.perf_counter()
        inputs = RunInputs(*arrays, plan.init, plan.batches)
        prepared = time.perf_counter()
        assert inputs.changed() == []
        return prepared - started, time.perf_counter() - prepared

    times: dict[str, list[float]] = {
        "load_unchecked_s": [],
        "load_checked_s": [],
        "sha256_s": [],
        "handover_s": [],
        "final_check_s": [],
    }
    for _ in range(args.repeats):  # interleaved, so drifting load hits each alike
        times["load_unchecked_s"].append(unchecked())
        times["load_checked_s"].append(checked())
        times["sha256_s"].append(hashing())
        prepare, final = handover()
        times["handover_s"].append(prepare)
        times["final_check_s"].append(final)
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians["per_run_s"] = medians["sha256_s"] + medians["handover_s"] + medians["final_check_s"]
    for name, value in medians.items():
        print(f"{name}: {value * 1000:.1f} ms")
    keep(
        args.json,
        "fail_closed_cost",
        {"repeats": args.repeats, "dataset": spec.dataset, "times": times, "medians": medians},
    )


if __name__ == "__main__":
    main()
