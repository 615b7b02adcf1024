"""Benchmark: the CI gate's power on this machine, from identical sessions and injected slowdowns.

    python benchmarks/gate_power.py [--sessions 4] [--repeats 5] [--backend numpy …] [--json PATH]
    python benchmarks/gate_power.py --from SESSION SESSION …   # analyse sessions already run

Runs N identical sessions back to back (``harness run --backend … --threads 1 --repeats R``, the
default spec), then gates every ordered pair of distinct sessions as ``compare A B
--fail-if-slower 5`` does, backend by backend: as they are (A/A: a "slower" is a false alarm)
and with B's times scaled by 1.05, 1.10, 1.15 and 1.25 (a real slowdown injected into real
noise). For each injection it counts the pairs the gate calls slower, the pairs it cannot tell
(exit 3: it never passes them) and the pairs it passes; a pass above the threshold would be a
slowdown let through silently. Also each backend's run-to-run CV within a session, the median
smallest slowdown a pair could see (min_detectable), and the repeats a side that would bring it
under the threshold on this machine.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import subprocess
import sys
from pathlib import Path

from kept import keep

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

THRESHOLD = 5.0
FACTORS = (1.0, 1.05, 1.10, 1.15, 1.25)
BACKENDS = ("numpy", "rust", "rust-ndarray")


def run_sessions(args: argparse.Namespace) -> list[Path]:
    made = []
    for i in range(args.sessions):
        before = set(args.results_dir.glob("*")) if args.results_dir.exists() else set()
        command = [sys.executable, "-m", "harness", "run", "--threads", "1", "--quiet"]
        command += ["--repeats", str(args.repeats), "--results-dir", str(args.results_dir)]
        command += [word for name in args.backend for word in ("--backend", name)]
        command += ["--data-dir", str(args.data_dir)] if args.data_dir else []
        print(f"session {i + 1}/{args.sessions} …", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        (new,) = set(args.results_dir.glob("*")) - before
        made.append(new)
    return made


def analyse(sessions: list[Path]) -> dict:
    from harness.results import compare, gate
    from harness.results.store import load_results
    from harness.results.summary import to_frame

    frames = [to_frame(load_results([s]).records) for s in sessions]
    outcomes = {f"{f:.2f}": dict.fromkeys(("slower", "cannot tell", "passed", "other"), 0)
                for f in FACTORS}  # fmt: skip
    mde: dict[str, list[float]] = {}
    for i, j in itertools.permutations(range(len(frames)), 2):
        for factor in FACTORS:
            b = frames[j].copy()
            b["train_time_s"] = b["train_time_s"] * factor
            result = compare.compare(frames[i], b)
            others = {f.detail.split(":")[0] for f in gate.gate(result, b, THRESHOLD, 1.0)
                      if f.reason not in ("slower", "cannot tell")}  # fmt: skip
            slower = compare.slower_than(result.pairs, THRESHOLD)
            for pair in result.pairs:
                name = f"{pair.backend} @{pair.threads}"
                if pair in slower:
                    outcome = "slower"
                elif gate.cannot_tell(pair, THRESHOLD) is not None:
                    outcome = "cannot tell"
                elif name in others:
                    outcome = "other"
                else:
                    outcome = "passed"
                outcomes[f"{factor:.2f}"][outcome] += 1
                if factor == 1.0 and pair.min_detectable is not None:
                    mde.setdefault(pair.backend, []).append(pair.min_detectable)
    cv = {}
    for frame in frames:
        for backend, runs in frame[frame["status"] == "ok"].groupby("backend"):
            times = list(runs["train_time_s"])
            if len(times) > 1:
                spread = statistics.stdev(times) / statistics.mean(times)
                cv.setdefault(str(backend), []).append(spread)
    repeats = len(frames[0]) // max(frames[0]["backend"].nunique(), 1)
    return {
        "threshold_percent": THRESHOLD,
        "sessions": [s.name for s in sessions],
        "repeats": repeats,
        "outcomes": outcomes,
        "cv_median": {b: statistics.median(v) for b, v in sorted(cv.items())},
        "cv_max": {b: max(v) for b, v in sorted(cv.items())},
        "min_detectable_median": {b: statistics.median(v) for b, v in sorted(mde.items())},
        # The interval narrows as 1/√n: the repeats a side that would see the threshold.
        "repeats_needed": {
            b: max(3, math.ceil(repeats * (statistics.median(v) / (THRESHOLD / 100)) ** 2))
            for b, v in sorted(mde.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--backend", action="append", default=None, help="default: " + ", ".join(BACKENDS)
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--results-dir", type=Path, default=REPO / "results")
    parser.add_argument("--from", dest="sessions_from", nargs="+", type=Path, default=None,
                        help="analyse these sessions instead of running new ones")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="keep the numbers in this file")
    args = parser.parse_args()
    args.backend = args.backend or list(BACKENDS)
    sessions = args.sessions_from or run_sessions(args)
    numbers = analyse(sessions)
    for factor, counts in numbers["outcomes"].items():
        print(f"B ×{factor}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("CV (median over sessions):", numbers["cv_median"])
    print("could see (median):", numbers["min_detectable_median"])
    print("repeats a side to see 5 %:", numbers["repeats_needed"])
    keep(args.json, "gate_power", numbers)


if __name__ == "__main__":
    main()
