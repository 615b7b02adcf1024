"""Regenerate every table of numbers in the READMEs and docs/ from committed data.

    python benchmarks/reproduce.py            # rewrite the marked blocks in every page
    python benchmarks/reproduce.py --check    # exit 1 if a page differs from what it would write

The pages are README.md, rust_impl/README.md and docs/*.md. A generated block sits between
``<!-- reproduce: NAME -->`` and ``<!-- /reproduce: NAME -->``; everything else is prose. The data:

- ``results/REFERENCE.json`` names the committed sessions: ``reference`` (``run --all
  --backend-cmd c=examples/c-backend/mlp-c --threads 1,2``), ``init_uniform`` (the same with
  ``--threads 1 --repeats 1 --set init=uniform``), and ``rust_speed`` and ``rust_profile``
  (made by ``benchmarks/rust_speed.py --json results/benchmarks/rust_speed.json``), and
  ``timed_region`` (``run --all --backend-cmd c=examples/c-backend/mlp-c --threads 1,2 --repeats
  1``: what each backend spends outside the timed region), each made from a clean tree;
- ``results/benchmarks/*.json``, kept by the benchmarks' ``--json`` (``gate_power.json`` by
  ``benchmarks/gate_power.py --json results/benchmarks/gate_power.json``);
- ``benchmarks/published_port.json``, the accuracy the published Rust port reported.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.report.tables import comparison_table  # noqa: E402
from harness.report.tables import outside_timer as outside_timer_table  # noqa: E402
from harness.results.store import load_results  # noqa: E402
from harness.results.summary import (  # noqa: E402
    backend_label,
    summarize,
    thread_scaling,
    to_frame,
    work_notes,
)
from harness.results.suspect import NOISY_CV  # noqa: E402

BLOCK = re.compile(
    r"(<!-- reproduce: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /reproduce: (?P=name) -->)",
    re.S,
)


class Data:
    """The committed inputs, loaded once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        manifest = json.loads((root / "results" / "REFERENCE.json").read_text())
        self.sessions = {name: root / "results" / sid for name, sid in manifest.items()}
        self.frames = {
            name: to_frame(load_results([path]).records) for name, path in self.sessions.items()
        }
        self.benchmarks = {
            path.stem: json.loads(path.read_text())
            for path in sorted((root / "results" / "benchmarks").glob("*.json"))
        }
        self.port = json.loads((root / "benchmarks" / "published_port.json").read_text())

    def summary(self, name: str) -> pd.DataFrame:
        return summarize(self.frames[name], "numpy")

    def row(self, name: str, backend: str, threads: str) -> Any:
        rows = self.summary(name)
        (row,) = rows[(rows["backend"] == backend) & (rows["threads"] == threads)].itertuples()
        return row


def _session_id(data: Data, name: str) -> str:
    return data.sessions[name].name


def reference_setup(data: Data) -> str:
    frame = data.frames["reference"]
    env = frame["env"].iloc[0]
    starts = [datetime.fromisoformat(s) for s in frame["started_at"]]
    ends = [datetime.fromisoformat(s) for s in frame["finished_at"]]
    wall = (max(ends) - min(starts)).total_seconds()
    repeats = int(frame["repeat"].max()) + 1
    flags = ", ".join(env.get("cpu_flags") or []) or "none listed"
    versions = "; ".join(
        f"{backend}: {version}"
        for backend, version in frame.drop_duplicates("backend")[
            ["backend", "backend_version"]
        ].itertuples(index=False)
    )
    return (
        f"Session `results/{_session_id(data, 'reference')}`: {env['cpu_model']}, "
        f"{env['cores_logical']} cores (flags: {flags}); Python {env['python']} ({versions}); "
        f"commit {str(env['git_commit'])[:7]}, clean tree: {not env['git_dirty']}. "
        f"`{REFERENCE_COMMAND}`: default spec, {repeats} interleaved "
        f"repeats, {len(frame)} runs, {wall:.0f} s from the first run's start to the last "
        f"one's end.\n"
    )


REFERENCE_COMMAND = (
    "python -m harness run --all --backend-cmd c=examples/c-backend/mlp-c --threads 1,2"
)


def protocol_cost(data: Data) -> str:
    """What the process protocol costs the C example, from its records in the reference session."""
    frame = data.frames["reference"]
    runs = frame[(frame["backend"] == "c") & (frame["status"] == "ok")]
    parts = []
    for threads, group in runs.groupby("threads", sort=True):
        share = group["build_info"].map(lambda info: info["protocol_share"]).median()
        seconds = group["build_info"].map(lambda info: info["protocol_s"]).median()
        chunks = group["curve"].map(len).median()
        train = group["train_time_s"].median()
        parts.append(
            f"{share * 100:.2f} % at {threads} thread{'s' * (threads != '1')} ({seconds * 1e3:.1f} "
            f"ms of {train:.2f} s; {seconds / chunks * 1e3:.2f} ms per chunk of "
            f"{train / chunks * 1e3:.0f} ms)"
        )
    return (
        "The protocol's own cost for `c` in that session (the harness's time for each train "
        "request less the program's own, medians over the repeats): " + "; ".join(parts) + ".\n"
    )


def reference_table(data: Data) -> str:
    table = comparison_table(data.frames["reference"], "numpy")
    columns = [
        "backend",
        "threads",
        "CPU use",
        "train time s",
        "min–max s",
        "CV",
        "train acc",
        "test acc",
        "speed vs numpy [95 % CI]",
        "GEMM-rate bound",
        "% of GEMM rate",
        "% of GEMM rate, executed",  # there whenever a backend skips work
    ]
    notes = "".join(f"\n\n{line}" for line in work_notes(data.summary("reference")))
    return table[columns].to_markdown(index=False, disable_numparse=True) + notes + "\n"


def reference_gemm(data: Data) -> str:
    env = data.frames["reference"]["env"].iloc[0]
    rates = env["gemm_rates"]
    rust1 = data.row("reference", "rust", "1")
    parts = ", ".join(f"{rates[t]:.1f} GFLOP/s at {t} thread{'s' * (t != '1')}" for t in rates)
    bounds = ", ".join(
        f"{data.row('reference', 'numpy', t).gemm_bound_s:.2f} s at {t} thread{'s' * (t != '1')}"
        for t in sorted(rates)
        if (data.summary("reference")["threads"] == t).any()
    )
    return (
        f"GEMM rate measured at the start of that session (NumPy, {env['gemm_size']}² float32 "
        f"product): {parts}. The job's GEMM-rate bound (its FLOPs at that rate): {bounds}; rust "
        f"at 1 thread takes {rust1.train_time_s / rust1.gemm_bound_s:.2f}× its bound, a bound "
        "on the dense work, most of which rust's sparse products skip.\n"
    )


def init_table(data: Data) -> str:
    book, uniform = data.summary("reference"), data.summary("init_uniform")
    lines = [
        "| backend | init=book train / test | init=uniform train / test "
        "| published port (uniform) |",
        "|---|---|---|---|",
    ]
    for backend in uniform["backend"]:
        b = book[(book["backend"] == backend) & (book["threads"] == "1")].iloc[0]
        u = uniform[uniform["backend"] == backend].iloc[0]
        port = "; ".join(
            f"{p['train_acc']} / {p['test_acc']} ({p['variant']})"
            for p in data.port["runs"]
            if backend == "rust"
        )
        lines.append(
            f"| {backend} | {b.train_acc:.4f} / {b.test_acc:.4f} | {u.train_acc:.4f} / "
            f"{u.test_acc:.4f} | {port} |"
        )
    return "\n".join(lines) + "\n"


def init_agreement(data: Data) -> str:
    """How far apart the backends that follow the harness's batches land, in plain words."""
    sentences = []
    for name, label in (("reference", "init=book"), ("init_uniform", "init=uniform")):
        frame = data.frames[name]
        ok = frame[(frame["status"] == "ok") & frame["follows_batch_stream"].astype(bool)]
        ok = ok[ok["threads"] == "1"]
        per_backend = ok.groupby("backend")["test_acc"].median()
        spread = per_backend.max() - per_backend.min()
        sentences.append(
            f"{label}: the test accuracies of {', '.join(per_backend.index)} (medians, 1 thread) "
            f"span {spread:.4f}" + (" (identical to 4 digits)" if round(spread, 4) == 0 else "")
        )
    return "; ".join(sentences) + ".\n"


def benchmark_lines(data: Data) -> str:
    n = data.benchmarks["numpy_vs_script"]["numbers"]
    k = data.benchmarks["keras_vs_script"]["numbers"]
    h = data.benchmarks["harness_overhead"]["numbers"]
    km = k["medians_s"]
    return (
        f"- The NumPy backend's `train_steps` against the same NumPy operations written out, in "
        f"one process: {n['backend_median_s']:.2f} s against {n['script_median_s']:.2f} s, ratio "
        f"{n['ratio']:.3f} (`{data.benchmarks['numpy_vs_script']['command']}`, medians of "
        f"{len(n['backend_s'])}).\n"
        f"- The `keras` backend against a plain tf.function graph loop over the same batches: "
        f"{km['backend']:.2f} s against {km['script-loop']:.2f} s, ratio "
        f"{k['backend_over_script_loop']:.3f}; the common one-tf.function-call-per-step loop takes "
        f"{km['script-step']:.2f} s (`{data.benchmarks['keras_vs_script']['command']}`).\n"
        f"- The harness's own overhead on the time it reports: the NumPy backend's `train_steps` "
        f"timed directly, {h['direct_median_s']:.2f} s, against the `train_time_s` the harness "
        f"records for it, {h['harness_median_s']:.2f} s, ratio {h['ratio']:.3f} over "
        f"{h['repeats']} interleaved repeats "
        f"(`{data.benchmarks['harness_overhead']['command']}`).\n"
    )


def fail_closed_cost(data: Data) -> str:
    kept = data.benchmarks["fail_closed_cost"]
    m = kept["numbers"]["medians"]
    ms = {name: value * 1000 for name, value in m.items()}
    return (
        f"- the worker's check of the data: SHA-256 of the four decompressed files, "
        f"{ms['sha256_s']:.0f} ms (loading the data with the check "
        f"{ms['load_checked_s']:.0f} ms, without {ms['load_unchecked_s']:.0f} ms);\n"
        f"- handing over read-only views, the harness's own copies of labels, initial "
        f"parameters and batches, and the CRC-32 of every handed array: "
        f"{ms['handover_s']:.0f} ms; the CRC-32 again at the end: {ms['final_check_s']:.0f} ms;\n"
        f"- in all, {ms['per_run_s']:.0f} ms per run (medians of {kept['numbers']['repeats']}, "
        f"{kept['created_at'][:10]} on {kept['env']['hostname']}).\n"
    )


def install_cost(data: Data) -> str:
    kept = data.benchmarks["install_cost"]
    lines = [
        f"- `{extra}`: {cost['seconds']:.0f} s, {cost['bytes'] / 1e9:.2f} GB installed "
        f"({', '.join(cost['requirements'])} and their dependencies)"
        for extra, cost in kept["numbers"].items()
    ]
    return (
        "\n".join(lines) + f"\n\nMeasured {kept['created_at'][:10]} on {kept['env']['hostname']}.\n"
    )


def rust_measured(data: Data) -> str:
    kept = data.benchmarks["rust_speed"]
    n = kept["numbers"]
    one, two = n["threads_1"], n["threads_2"]
    met = n["targets"]
    # From the session's records rather than the kept numbers: files kept before the interval
    # was added have none.
    scaling = thread_scaling(data.frames["rust_speed"], "rust", "2")
    rows = [
        ("GEMM-rate bound, 1 thread", f"{one['bound_s']:.2f} s", ""),
        (
            "rust, 1 thread",
            f"{one['rust_s']:.2f} s",
            f"{n['bound_ratio_1']:.2f}× its bound (target ≤ {met['bound_ratio_1_at_most']}: "
            f"{'met' if met['bound_met'] else 'missed'})",
        ),
        (
            "numpy, 1 thread",
            f"{one['numpy_s']:.2f} s",
            f"rust {one['numpy_s'] / one['rust_s']:.2f}× as fast",
        ),
        ("GEMM-rate bound, 2 threads", f"{two['bound_s']:.2f} s", ""),
        (
            "rust, 2 threads",
            f"{two['rust_s']:.2f} s",
            f"{scaling.text()} its own 1-thread speed (target ≥ "
            f"{met['scaling_2_at_least']}: {'met' if met['scaling_met'] else 'missed'})",
        ),
        (
            "numpy, 2 threads",
            f"{two['numpy_s']:.2f} s",
            f"rust {two['numpy_s'] / two['rust_s']:.2f}× as fast",
        ),
    ]
    frame = data.frames["rust_speed"]
    env = frame["env"].iloc[0]
    repeats = int(frame["repeat"].max()) + 1
    lines = [
        f"Session `results/{_session_id(data, 'rust_speed')}` (`{kept['command']}`, "
        f"{kept['created_at'][:10]}): {env['cpu_model']}, {env['cores_logical']} cores; "
        f"commit {str(env['git_commit'])[:7]}; medians of {repeats} interleaved repeats; in "
        "brackets, the 95 % percentile bootstrap interval of the ratio of the medians.",
        "",
        "| | median time | |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    kernels = n["kernels"]
    if not isinstance(kernels, str):
        # The sparse kernels where the table has them (what the net runs on MNIST), else the
        # fastest of the dense ones.
        sparse = [r for r in kernels if "sparse" in r["how"]]
        dense = [r for r in kernels if "sparse" not in r["how"]]
        fastest = {
            product: min(r["us"] for r in (sparse or dense) if r["product"] == product)
            for product in ("forward", "update")
        }
        alone = (fastest["forward"] + fastest["update"]) * 1e-6 * 10_000
        how = "the sparse kernels" if sparse else "fastest library each"
        lines.append(
            f"| the two big products alone, {how} (kernels table) | "
            f"{alone:.2f} s | {alone / one['bound_s']:.2f}× the bound |"
        )
    accuracy = (
        f"\nAccuracy with the default spec (medians): rust {one['rust_train_acc']:.4f} train / "
        f"{one['rust_test_acc']:.4f} test at 1 thread, {two['rust_train_acc']:.4f} / "
        f"{two['rust_test_acc']:.4f} at 2.\n"
    )
    return "\n".join(lines) + "\n" + accuracy


def rust_kernels(data: Data) -> str:
    numbers = data.benchmarks["rust_speed"]["numbers"]
    kept, without = numbers["kernels"], numbers["kernels_without_avx512"]
    if isinstance(kept, str):
        return kept + "\n"
    other = {} if isinstance(without, str) else {(r["product"], r["how"]): r for r in without}
    lines = [
        "| product | how | µs per call | GFLOP/s | µs, built without AVX-512 code |",
        "|---|---|---|---|---|",
    ]
    for row in kept:
        twin = other.get((row["product"], row["how"]))
        without_avx512 = f"{twin['us']:.1f}" if twin else "–"
        lines.append(
            f"| {row['product']} | {row['how']} | {row['us']:.1f} | {row['gflops']:.0f} | "
            f"{without_avx512} |"
        )
    return "\n".join(lines) + "\n"


def rust_memory(data: Data) -> str:
    numbers = data.benchmarks["rust_speed"]["numbers"]
    found = numbers.get("phases_example", "not measured by the run that made the kept file")
    if isinstance(found, str):
        return found + "\n"
    random, same = found["random_batches"], found["same_batch"]
    one = numbers["threads_1"]
    iterations = int(data.frames["rust_speed"]["spec"].iloc[0]["iterations"])
    bound_us = one["bound_s"] / iterations * 1e6
    lines = [
        "| µs per step, 1 thread | random batches | the same batch every step |",
        "|---|---|---|",
    ]
    for phase in random["us_per_step"]:
        lines.append(
            f"| {phase} | {random['us_per_step'][phase]:.1f} | {same['us_per_step'][phase]:.1f} |"
        )
    lines.append(
        f"| **whole step** | **{random['wall_us_per_step']:.1f}** | "
        f"**{same['wall_us_per_step']:.1f}** |"
    )
    lines.append(
        f"| × the GEMM-rate bound per step ({bound_us:.0f} µs) | "
        f"{random['wall_us_per_step'] / bound_us:.2f} | {same['wall_us_per_step'] / bound_us:.2f} |"
    )
    return (
        "\n".join(lines) + f"\n\nMedians of {random['runs']} interleaved runs of each, "
        f"{random['steps']:,} steps per run.\n"
    )


def rust_threads(data: Data) -> str:
    numbers = data.benchmarks["rust_speed"]["numbers"]
    found = numbers.get("phases_example", "not measured by the run that made the kept file")
    if isinstance(found, str):
        return found + "\n"
    if "two_threads" not in found:
        return "not measured by the run that made the kept file (it ran 1 thread only)\n"
    one, two = found["random_batches"], found["two_threads"]
    threads = two["per_thread_us_per_step"]
    header = " | ".join(f"2 threads: thread {t}" for t in range(1, len(threads) + 1))
    lines = [
        f"| µs per step, random batches | 1 thread | {header} |",
        "|---" * (len(threads) + 2) + "|",
    ]
    for phase in one["us_per_step"]:
        cells = " | ".join(f"{t[phase]:.1f}" for t in threads)
        lines.append(f"| {phase} | {one['us_per_step'][phase]:.1f} | {cells} |")

    def busy(phases: dict[str, float]) -> float:
        return sum(us for phase, us in phases.items() if phase != "wait")

    cells = " | ".join(f"**{busy(t):.1f}**" for t in threads)
    lines.append(f"| **all but wait** | **{busy(one['us_per_step']):.1f}** | {cells} |")
    each = ", ".join(f"{busy(t):.1f}" for t in threads)
    return (
        "\n".join(lines) + f"\n\nThe whole step: {one['wall_us_per_step']:.1f} µs at 1 thread, "
        f"{two['wall_us_per_step']:.1f} at 2 "
        f"({one['wall_us_per_step'] / two['wall_us_per_step']:.2f}× as fast). Half of the "
        f"1-thread step's time outside wait is {busy(one['us_per_step']) / 2:.1f} µs; each thread "
        f"spends {each} outside wait at 2 threads. Medians of {two['runs']} interleaved runs of "
        f"each, {two['steps']:,} steps per run.\n"
    )


def rust_phases(data: Data) -> str:
    frame = data.frames["rust_profile"]
    runs = frame[(frame["backend"] == "rust") & frame["phases"].notna()]
    iterations = int(runs["spec"].iloc[0]["iterations"])
    by_threads = {
        threads: pd.DataFrame(list(group["phases"])).median()
        for threads, group in runs.groupby("threads", sort=True)
    }
    names = list(next(iter(by_threads.values())).index)
    header = " | ".join(f"{t} thread{'s' * (t != '1')}" for t in by_threads)
    lines = [f"| phase (µs per step) | {header} |", "|---" * (len(by_threads) + 1) + "|"]
    for name in names:
        cells = " | ".join(f"{p[name] / iterations * 1e6:.0f}" for p in by_threads.values())
        lines.append(f"| {name} | {cells} |")
    totals = " | ".join(f"**{p.sum() / iterations * 1e6:.0f}**" for p in by_threads.values())
    lines.append(f"| **total** | {totals} |")
    repeats = runs.groupby("threads").size().min()
    return (
        "\n".join(lines)
        + f"\n\nSession `results/{_session_id(data, 'rust_profile')}`, medians of {repeats} "
        f"repeats of {iterations:,} steps; wait is the first thread's time at the barriers.\n"
    )


PUBLISHED_COMMAND = (
    "python -m harness run --backend numpy --backend rust-ndarray --backend rust-ndarray-dyn "
    "--backend keras --backend rust --threads 1,2 --sweep init=book,uniform --repeats 3"
)
PROFILE_COMMAND = (
    "python -m harness run --backend numpy --backend rust-ndarray --backend rust --threads 1 "
    "--profile --repeats 3"
)


def _machine(env: dict[str, Any]) -> str:
    return (
        f"{env['cpu_model']}, {env['cores_logical']} cores; commit {str(env['git_commit'])[:7]}, "
        f"clean tree: {not env['git_dirty']}"
    )


def published_table(data: Data) -> str:
    """The published comparison's rows beside this machine's, at both inits and thread counts."""
    frame = data.frames["published"]
    summary = data.summary("published")
    init = {row.spec_label: row.spec_label.removeprefix("init=") for row in summary.itertuples()}
    published = {(p["backend"], p["init"]): p for p in data.port["table"]}
    names = {p["backend"]: p["implementation"] for p in data.port["table"]}
    names["rust"] = "tuned Rust (this project)"
    lines = [
        "| implementation | backend | init | published: CPU use, time, train / test "
        "| here, 1 thread: CPU use, time, train / test | here, 2 threads: CPU use, time |",
        "|---|---|---|---|---|---|",
    ]
    for backend in [*names]:
        for label in sorted(set(init)):
            rows = summary[(summary["backend"] == backend) & (summary["spec_label"] == label)]
            one, two = (rows[rows["threads"] == t].iloc[0] for t in ("1", "2"))
            shown = backend_label(backend, one["algorithm"])
            port = published.get((backend, init[label]))
            then = (
                f"{port['cpu_use']}, {port['train_time']}, {port['train_acc']} / {port['test_acc']}"
                if port
                else ""
            )
            lines.append(
                f"| {names[backend]} | {shown} | {init[label]} | {then} | "
                f"{one['cpu_util'] * 100:.0f} %, {_time(one)}, {one['train_acc']:.4f} / "
                f"{one['test_acc']:.4f} | {two['cpu_util'] * 100:.0f} %, {_time(two)} |"
            )
    env = frame["env"].iloc[0]
    repeats = int(frame["repeat"].max()) + 1
    spans = []
    for label in sorted(set(init)):
        here = summary[summary["spec_label"] == label]["test_acc"]
        then = [p["test_acc"] for p in data.port["table"] if p["init"] == init[label]]
        values = (
            f"span {here.min():.4f}–{here.max():.4f}"
            if round(here.max() - here.min(), 4)
            else f"are all {here.min():.4f}"
        )
        spans.append(
            f"at {label} the test accuracies here {values} (published at that init: "
            f"{', '.join(str(t) for t in then)})"
        )
    return (
        f"Session `results/{_session_id(data, 'published')}` ({_machine(env)}): "
        f"`{PUBLISHED_COMMAND}`, medians of {repeats} runs (⚠: the repeats varied by more "
        f"than {NOISY_CV:.0%}); published: 2020, {data.port['machine']}.\n\n"
        + "\n".join(lines)
        + "\n\n"
        + _sentence("; ".join(spans))
        + "."
        + "".join(f"\n\n{line}" for line in work_notes(summary))
        + "\n"
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _time(row: Any) -> str:
    noisy = pd.notna(row["train_time_cv"]) and row["train_time_cv"] > NOISY_CV
    return f"{row['train_time_s']:.2f} s" + (" ⚠" if noisy else "")


def phases_compared(data: Data) -> str:
    """Time per step and per phase, from the book's code to the plain port to the tuned net."""
    frame = data.frames["profile_steps"]
    runs = frame[(frame["status"] == "ok") & frame["phases"].notna()]
    iterations = int(runs["spec"].iloc[0]["iterations"])
    order = ["numpy", "rust-ndarray", "rust"]
    phases = ["batch", "forward", "backward", "update"]
    lines = [
        "| backend | µs per step | " + " | ".join(phases) + " |",
        "|---" * (len(phases) + 2) + "|",
    ]
    for backend in order:
        group = runs[runs["backend"] == backend]
        per_phase = pd.DataFrame(list(group["phases"])).median()
        step = group["train_time_s"].median() / iterations * 1e6
        cells = " | ".join(f"{per_phase[p] / iterations * 1e6:.0f}" for p in phases)
        name = backend_label(backend, group["algorithm"].iloc[0])
        lines.append(f"| {name} | {step:.0f} | {cells} |")
    env = frame["env"].iloc[0]
    repeats = int(frame["repeat"].max()) + 1
    return (
        "\n".join(lines)
        + f"\n\nSession `results/{_session_id(data, 'profile_steps')}` ({_machine(env)}): "
        f"`{PROFILE_COMMAND}`, medians of {repeats} runs of {iterations:,} steps. Each backend "
        "times its own phases (the tuned net folds the first layer's weight gradient into its "
        "update); the step is the harness's training time, timers included.\n"
    )


TIMED_REGION_COMMAND = (
    "python -m harness run --all --backend-cmd c=examples/c-backend/mlp-c --threads 1,2 --repeats 1"
)


def outside_timer(data: Data) -> str:
    """Every built-in at 1 and 2 threads: what each spent outside the timed region, the
    proof's cost, CPU use against the budget, and whether any run was flagged."""
    frame = data.frames["timed_region"]
    env = frame["env"].iloc[0]
    table = outside_timer_table(frame, "numpy")
    ok = int((frame["status"] == "ok").sum())
    flagged = int(sum(bool(f) for f in frame["flagged"]))
    proofs = [p["cost_s"] * 1e3 for p in frame["proof"] if isinstance(p, dict)]
    rates = env.get("gemm_rates") or {}
    return (
        f"Session `results/{_session_id(data, 'timed_region')}` (`{TIMED_REGION_COMMAND}`, "
        f"default spec, {env['cpu_model']}, {env['cores_logical']} cores, commit "
        f"{str(env['git_commit'])[:7]}, NumPy's GEMM rate {rates.get('1', 0):.0f} GFLOP/s at 1 "
        f"thread: compare its times with no other session's): {ok} of {len(frame)} runs ok, "
        f"{flagged} flagged; "
        f"the proof cost {min(proofs):.1f}–{max(proofs):.1f} ms a run "
        f"({len(proofs)} proven; keras-fit draws its own batches).\n\n"
        + table.to_markdown(index=False, disable_numparse=True)
        + "\n"
    )


def gate_power(data: Data) -> str:
    """The gate on identical sessions of this machine, as is and with injected slowdowns."""
    kept = data.benchmarks["gate_power"]
    n = kept["numbers"]
    rows = ["| B's times × | comparisons | gate: slower | gate: cannot tell | passed |",
            "|---|---|---|---|---|"]  # fmt: skip
    for factor, counts in n["outcomes"].items():
        total = sum(counts.values())
        rows.append(
            f"| {factor} | {total} | {counts['slower']} | {counts['cannot tell']} | "
            f"{counts['passed'] + counts['other']} |"
        )
    same = n["outcomes"]["1.00"]
    alarms = same["slower"]
    total = sum(same.values())
    backends = sorted(n["cv_median"])
    return (
        f"`{kept['command']}`: {len(n['sessions'])} identical sessions of {n['repeats']} "
        f"repeats at 1 thread, {kept['created_at'][:10]} on {kept['env']['hostname']} "
        f"({kept['env'].get('cpu_model', '?')}); every ordered pair gated at "
        f"{n['threshold_percent']:g} %, backend by backend.\n\n"
        + "\n".join(rows)
        + f"\n\nFalse alarms on identical sessions: {alarms} of {total} "
        f"({alarms / total:.0%}). Run-to-run CV within a session (median, max): "
        + ", ".join(f"{b} {n['cv_median'][b]:.1%} / {n['cv_max'][b]:.1%}" for b in backends)
        + ". The smallest slowdown a pair could see (median): "
        + ", ".join(f"{b} {v:.1%}" for b, v in n["min_detectable_median"].items())
        + f"; to see {n['threshold_percent']:g} % a gate on such a runner needs about "
        + ", ".join(f"{v} ({b})" for b, v in n["repeats_needed"].items())
        + " repeats a side.\n"
    )


GENERATORS: dict[str, Callable[[Data], str]] = {
    "gate-power": gate_power,
    "outside-timer": outside_timer,
    "reference-setup": reference_setup,
    "reference-table": reference_table,
    "reference-gemm": reference_gemm,
    "protocol-cost": protocol_cost,
    "init-table": init_table,
    "init-agreement": init_agreement,
    "benchmarks": benchmark_lines,
    "install-cost": install_cost,
    "fail-closed-cost": fail_closed_cost,
    "rust-measured": rust_measured,
    "rust-kernels": rust_kernels,
    "rust-phases": rust_phases,
    "rust-memory": rust_memory,
    "rust-threads": rust_threads,
    "published-table": published_table,
    "phases-compared": phases_compared,
}
READMES = ("README.md", "rust_impl/README.md")


def pages(root: Path) -> list[str]:
    """The READMEs and every page in docs/: wherever a generated number may stand."""
    return [*READMES, *sorted(str(p.relative_to(root)) for p in (root / "docs").glob("*.md"))]


def regenerate(text: str, data: Data) -> tuple[str, list[str]]:
    """The README with every block regenerated, and the names of blocks that changed."""
    changed: list[str] = []

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise SystemExit(f"error: unknown block {name!r}; known: {', '.join(GENERATORS)}")
        body = GENERATORS[name](data)
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on a diff")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this)")
    args = parser.parse_args(argv)
    data = Data(args.root)
    stale = []
    for name in pages(args.root):
        path = args.root / name
        text, changed = regenerate(path.read_text(), data)
        if changed and args.check:
            stale += [f"{name}: {block}" for block in changed]
        elif changed:
            path.write_text(text)
            print(f"{name}: regenerated {', '.join(changed)}")
    if stale:
        print(
            "these README blocks differ from what the committed data gives "
            "(run python benchmarks/reproduce.py): " + "; ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
