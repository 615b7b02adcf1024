"""The command line's grammar: every subcommand, option and help text of ``python -m harness``.

Values are checked here (argparse types), so a mistake is one line and exit status 2 before
anything runs; harness.cli turns what is parsed into a request for harness.commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from harness.argument_groups import (
    add_backend_choice,
    add_command_backends,
    add_match,
    add_resume_options,
    add_spec_and_data,
    add_timeout,
)
from harness.argument_types import (
    accuracy_delta,
    percent,
    positive_int,
    precision_percent,
    step_numbers,
    target,
    thread_counts,
)
from harness.errors import EXIT_USAGE
from harness.export import SUMMARY_FORMATS
from harness.requests import (
    DEFAULT_ACCURACY_TOLERANCE,
    DEFAULT_MAX_REPEATS,
    DEFAULT_REPEATS,
    DEFAULT_RESULTS_DIR,
    DEFAULT_STEP_THRESHOLD,
    DEFAULT_TARGET,
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m harness",
        description="Run one MLP training job through pluggable backends and compare them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = commands.add_parser(
        "run",
        help="run backends on the job, store one record per run, print a table",
        description="Run the job on each chosen backend, each run in a fresh process, with the "
        "same initial weights, batch order and thread budget; store one JSON record per run.",
    )
    which = run.add_argument_group("backends (at least one)")
    which.add_argument("--all", action="store_true", help="every available backend")
    add_backend_choice(which, "see 'list'")
    job = run.add_argument_group("the job")
    job.add_argument(
        "--quick", action="store_true", help="smoke-test preset: 600 iterations, accuracy every 200"
    )
    job.add_argument(
        "--spec",
        type=Path,
        metavar="FILE.toml",
        help="spec overrides from a TOML file (keys as for --set)",
    )
    add_spec_and_data(job)
    how = run.add_argument_group("measurement")
    how.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"runs per backend and thread count, interleaved A B A B (default {DEFAULT_REPEATS})",
    )
    how.add_argument(
        "--precision",
        type=precision_percent,
        default=None,
        metavar="PCT",
        help="after the repeats, add interleaved rounds until each backend and thread count's "
        "median is known to ±PCT %% (95 %% interval), or --max-repeats stops it",
    )
    how.add_argument(
        "--max-repeats",
        type=positive_int,
        default=DEFAULT_MAX_REPEATS,
        metavar="N",
        help=f"with --precision: at most N runs per backend and thread count "
        f"(default {DEFAULT_MAX_REPEATS})",
    )
    how.add_argument(
        "--warmup", action="store_true", help="first one discarded run per backend and thread count"
    )
    how.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the matrix on a Dask cluster: a scheduler address (tcp://HOST:8786), or "
        "local / local:N for N worker processes on this machine; one run at a time per worker, "
        "records written here (needs the [cluster] extra)",
    )
    how.add_argument(
        "--cluster-wait",
        type=float,
        default=120.0,
        metavar="S",
        help="with --cluster: give up after S seconds without a worker able to run "
        "(default 120); the session can be resumed",
    )
    how.add_argument(
        "--pin",
        action="store_true",
        help="pin each worker to the first N allowed CPUs (N = its threads)",
    )
    how.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,…",
        help="run the cartesian product of these spec values (and 'threads'), e.g. --sweep "
        "batch=50,100,200,400 --sweep hidden=50,100 (repeatable)",
    )
    how.add_argument(
        "--profile",
        action="store_true",
        help="record the time of each phase of a step (batch, forward, backward, update) where "
        "the backend can tell; adds timer calls to the loop, so compare totals without it",
    )
    how.add_argument(
        "--no-gemm-rate",
        "--no-roofline",  # its first name, kept for scripts
        dest="no_gemm_rate",
        action="store_true",
        help="skip measuring NumPy's GEMM rate for each thread count at the start (~3 s each); "
        "without it there is no GEMM-rate bound or %% of GEMM rate",
    )
    how.add_argument(
        "--threads",
        type=thread_counts,
        default=None,
        metavar="N[,N…]|all|default",
        help="thread budget(s) for BLAS/OpenMP/Rayon and backends; 'all' = 1 … every CPU; "
        "'default' = each library's own setting, uncontrolled (default: 1, every library told)",
    )
    add_timeout(how)

    report_cmd = commands.add_parser(
        "report",
        help="write report.md, charts and index.html from stored results (no re-running)",
        description="Render the comparison table, charts (PNG + SVG) and a self-contained "
        "index.html from stored run records.",
    )
    report_cmd.add_argument(
        "results",
        nargs="*",
        metavar="RESULTS",
        help="session directories or ids under --results-dir, or 'latest' (default)",
    )
    report_cmd.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write the report (default: SESSION/report for one session, "
        "RESULTS-DIR/report-FIRST+N for several; never a tracked folder unless you say so)",
    )

    compare_cmd = commands.add_parser(
        "compare",
        help="compare two result sets: time ratio, significance, accuracy deltas",
        description="For each comparability key (spec, sweep point, backend, threads, machine, "
        "flags) in both A and B: the ratio of median training times B/A with its 95 % "
        "bootstrap interval, accuracy deltas and a verdict: faster or slower when the interval "
        "excludes 1, same when it lies within ±2 %, inconclusive otherwise or with fewer than "
        "3 repeats a side.",
    )
    compare_cmd.add_argument("a", metavar="A", help="baseline session (directory, id, 'latest')")
    compare_cmd.add_argument("b", metavar="B", help="session compared against A")
    compare_cmd.add_argument("--json", action="store_true", help="JSON instead of markdown")
    compare_cmd.add_argument(
        "--fail-if-slower",
        type=percent,
        metavar="PCT",
        help="a CI gate: exit 1, naming each reason, when a pair is slower (its verdict) by "
        "more than PCT %%, a key of A has no ok runs in B, B's test accuracy falls more than "
        "--accuracy-tolerance below A's, or nothing pairs at all",
    )
    compare_cmd.add_argument(
        "--accuracy-tolerance",
        type=accuracy_delta,
        default=DEFAULT_ACCURACY_TOLERANCE,
        metavar="D",
        help="with --fail-if-slower: how far B's median test accuracy may fall below A's "
        f"(default {DEFAULT_ACCURACY_TOLERANCE})",
    )

    add_match(compare_cmd)

    history_cmd = commands.add_parser(
        "history",
        help="a backend's speed across sessions and commits, with step changes flagged",
        description="For each comparability key, the median training time of every session "
        "(95 %% bootstrap interval), in commit order (then start time), the commit and whether "
        "its tree was dirty. The first session of a step change is flagged: the ratio of its "
        "median to the level before it has its whole interval beyond 1 ± the threshold.",
    )
    history_cmd.add_argument(
        "results",
        nargs="*",
        metavar="SESSION",
        help="session directories or ids (default: every session under --results-dir)",
    )
    history_cmd.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="only this backend (repeatable)",
    )
    history_cmd.add_argument(
        "--threads", type=positive_int, metavar="N", help="only runs with N threads"
    )
    history_cmd.add_argument(
        "--threshold",
        type=percent,
        default=DEFAULT_STEP_THRESHOLD * 100,
        metavar="PCT",
        help="a step change is a change of more than PCT %% whose whole interval says so "
        f"(default {DEFAULT_STEP_THRESHOLD * 100:g})",
    )
    history_cmd.add_argument("--json", action="store_true", help="JSON instead of the table")
    history_cmd.add_argument(
        "--chart", type=Path, metavar="DIR", help="also write DIR/history.png and history.svg"
    )
    add_match(history_cmd)

    export_cmd = commands.add_parser(
        "export",
        help="export the results as JSON, CSV, Markdown or a pyperf suite",
        description="Export stored results: the summary (one row per comparability key) as JSON, "
        "CSV or Markdown, or every training time as a pyperf suite, so that 'python -m pyperf "
        "stats FILE' and 'python -m pyperf compare_to A B' work on them.",
    )
    export_cmd.add_argument(
        "results",
        nargs="*",
        metavar="RESULTS",
        help="session directories or ids, or 'latest' (default)",
    )
    export_cmd.add_argument(
        "--format",
        choices=SUMMARY_FORMATS,
        help="json, csv or markdown: the summary, one row per comparability key (stdout unless "
        "--out); table: the terminal table as plain text; pyperf: every training time, one "
        "benchmark per key (default: json, or pyperf with --pyperf)",
    )
    export_cmd.add_argument("--out", type=Path, metavar="FILE", help="write here, not stdout")
    export_cmd.add_argument(
        "--pyperf", type=Path, metavar="FILE", help="the same as --format pyperf --out FILE"
    )
    verify_cmd = commands.add_parser(
        "verify",
        help="prove backends do the same job: step by step against a float64 NumPy reference",
        description="Each backend starts from the harness's initial parameters and takes the "
        "same batches as a float64 run of the book's NumPy code; after every step its loss and "
        "parameters must agree within the dtype's tolerance (float32: rtol 1e-3, atol 1e-5; "
        "float64: rtol 1e-7, atol 1e-9). Exit 1 if any backend fails.",
    )
    add_backend_choice(verify_cmd, "default: every available")
    verify_cmd.add_argument(
        "--steps",
        type=positive_int,
        default=100,
        metavar="N",
        help="SGD steps to check (default 100)",
    )
    verify_cmd.add_argument(
        "--checkpoints",
        type=step_numbers,
        default=None,
        metavar="S[,S…]",
        help="steps whose errors are tabulated (default 1,10,STEPS)",
    )
    add_spec_and_data(verify_cmd)
    verify_cmd.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        metavar="N",
        help="thread budget of the backends (default 1)",
    )
    add_timeout(verify_cmd)

    scaffold_cmd = commands.add_parser(
        "new-backend",
        help="write a ready-to-edit backend plugin package",
        description="Write a plugin package: pyproject.toml with the harness.backends entry "
        "point, the backend module with the four methods to fill in, and a test that runs "
        "'harness verify' on it; or, with --lang c|rust, a process-protocol program to build.",
    )
    scaffold_cmd.add_argument("name", metavar="NAME", help="backend name, e.g. numpy-fused")
    scaffold_cmd.add_argument(
        "--lang",
        choices=("python", "c", "rust"),
        default="python",
        help="python: a plugin package with the four methods to fill in (default); c or rust: "
        "a program speaking the process protocol, the book's network written plainly, with its "
        "Makefile or Cargo.toml; it builds and passes verify as written",
    )
    scaffold_cmd.add_argument(
        "dir",
        nargs="?",
        type=Path,
        metavar="DIR",
        help="where to write it (default ./harness-backend-NAME)",
    )

    run.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="SESSION",
        help="run only the runs missing from SESSION (default: the latest), with its spec, seed, "
        "backends and measurement flags (--timeout may change)",
    )
    add_resume_options(run)
    for sub in (run, report_cmd):
        sub.add_argument(
            "--baseline",
            metavar="NAME",
            help="the backend speed ratios are against (default: numpy when it ran, else the "
            "first backend run)",
        )
    for sub in (run, report_cmd, export_cmd):
        sub.add_argument(
            "--target",
            type=target,
            metavar="METRIC=VALUE",
            help="time to accuracy: the training time until the first evaluation with METRIC "
            "(test_acc or train_acc) at or above VALUE, e.g. test_acc=0.97; run records it, "
            "tables show it with its speed ratio (default: what the runs were given, else "
            f"{DEFAULT_TARGET.metric}={DEFAULT_TARGET.value:g}, the book's test accuracy)",
        )
    for sub in (run, report_cmd, compare_cmd, export_cmd, history_cmd):
        sub.add_argument(
            "--results-dir",
            type=Path,
            default=DEFAULT_RESULTS_DIR,
            metavar="DIR",
            help="root of the session directories (default ./results)",
        )

    list_cmd = commands.add_parser(
        "list",
        help="show every backend, its version and whether it can run",
        description="Show every registered backend, its version and whether "
        "it can run here (and if not, why and what to install).",
    )
    list_cmd.add_argument("--json", action="store_true", help="a JSON list on stdout")
    add_command_backends(list_cmd)
    run.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout instead of the table (progress stays on stderr)",
    )
    for sub in (run, verify_cmd):
        noise = sub.add_mutually_exclusive_group()
        noise.add_argument(
            "-q", "--quiet", action="store_true", help="no progress; errors and the result only"
        )
        noise.add_argument(
            "-v", "--verbose", action="store_true", help="the whole error of each failed run"
        )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlp-bench")
    except PackageNotFoundError:
        return "(not installed)"
