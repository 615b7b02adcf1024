"""Command line: ``python -m harness run|report|compare|export|verify|new-backend|list``.

Exit status: 0 every run ok; 1 at least one run failed, timed out or diverged; 2 a user mistake
(bad option, spec, data or backend), reported in one line; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from harness import backends, compare, data, export, report, scaffold
from harness.backends import BackendRef
from harness.envinfo import session_env
from harness.errors import HarnessError
from harness.plan import PARAM_NAMES, Plan, make_plan
from harness.records import SESSION_FILE, RunRecord
from harness.roofline import measure_roofline
from harness.runner import RunItem, Runner, create_session, interleaved, run_worker
from harness.spec import (
    SWEEP_THREADS,
    Spec,
    SweepPoint,
    build_spec,
    check_fits_data,
    parse_sweeps,
    spec_from_dict,
    sweep_points,
)
from harness.summary import NOISY_CV, summarize, to_frame
from harness.verify import TOLERANCES

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_TIMEOUT_S = 1800.0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 1")
    return value


def _thread_counts(text: str) -> list[int | None]:
    if text == "default":
        return [None]
    if text == "all":
        return list(range(1, len(os.sched_getaffinity(0)) + 1))
    return [_positive_int(part) for part in text.split(",")]


def _timeout(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 0 seconds (0: no timeout)")
    return value or None


def _add_timeout(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"kill a worker after S seconds (default {DEFAULT_TIMEOUT_S:g}; 0: never)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m harness",
        description="Run one MLP training job through pluggable backends and compare them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = commands.add_parser(
        "run",
        help="run backends on the job, store one record per run, print a table",
        description="Run the job on each chosen backend, each run in a fresh process, with the "
        "same initial weights, batch order and thread budget; store one JSON record per run.",
    )
    which = run.add_argument_group("backends (at least one)")
    which.add_argument("--all", action="store_true", help="every available backend")
    which.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="a registered backend (repeatable); see 'list'",
    )
    which.add_argument(
        "--backend-path",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="a backend class that is not installed as a plugin (repeatable)",
    )
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
    job.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one spec value, e.g. --set lr=0.05 (repeatable; last wins)",
    )
    job.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where the IDX files are (default: ${data.DATA_DIR_ENV}, the cache, then download)",
    )
    how = run.add_argument_group("measurement")
    how.add_argument(
        "--repeats",
        type=_positive_int,
        default=3,
        metavar="N",
        help="runs per backend and thread count, interleaved A B A B (default 3)",
    )
    how.add_argument(
        "--warmup", action="store_true", help="first one discarded run per backend and thread count"
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
        "--no-roofline",
        action="store_true",
        help="skip measuring the machine's GEMM rate at the start (~5 s)",
    )
    how.add_argument(
        "--threads",
        type=_thread_counts,
        default=[None],
        metavar="N[,N…]|all",
        help="thread budget(s) for BLAS/OpenMP/Rayon and backends; 'all' = 1 … every CPU "
        "(default: each library's own default)",
    )
    _add_timeout(how)

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
        default=Path("reports"),
        metavar="DIR",
        help="where to write the report (default ./reports)",
    )

    compare_cmd = commands.add_parser(
        "compare",
        help="compare two result sets: time ratio, significance, accuracy deltas",
        description="For each backend and thread count in both A and B: the ratio of median "
        "training times B/A, a Mann–Whitney U test (needs ≥ 4 repeats a side to reach p < "
        "0.05), accuracy deltas and a verdict.",
    )
    compare_cmd.add_argument("a", metavar="A", help="baseline session (directory, id, 'latest')")
    compare_cmd.add_argument("b", metavar="B", help="session compared against A")
    compare_cmd.add_argument("--json", action="store_true", help="JSON instead of markdown")

    export_cmd = commands.add_parser(
        "export",
        help="export training times as a pyperf benchmark suite",
        description="Write the training times as a pyperf suite, so that 'python -m pyperf "
        "stats FILE' and 'python -m pyperf compare_to A B' work on them.",
    )
    export_cmd.add_argument(
        "results",
        nargs="*",
        metavar="RESULTS",
        help="session directories or ids, or 'latest' (default)",
    )
    export_cmd.add_argument(
        "--pyperf", type=Path, required=True, metavar="FILE", help="the pyperf JSON file to write"
    )
    verify_cmd = commands.add_parser(
        "verify",
        help="prove backends do the same job: step by step against a float64 NumPy reference",
        description="Each backend starts from the harness's initial parameters and takes the "
        "same batches as a float64 run of the book's NumPy code; after every step its loss and "
        "parameters must agree within the dtype's tolerance (float32: rtol 1e-3, atol 1e-5; "
        "float64: rtol 1e-7, atol 1e-9). Exit 1 if any backend fails.",
    )
    verify_cmd.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="a registered backend (repeatable; default: every available)",
    )
    verify_cmd.add_argument(
        "--backend-path",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="a backend class not installed as a plugin (repeatable)",
    )
    verify_cmd.add_argument(
        "--steps",
        type=_positive_int,
        default=100,
        metavar="N",
        help="SGD steps to check (default 100)",
    )
    verify_cmd.add_argument(
        "--checkpoints",
        type=_thread_counts,
        default=None,
        metavar="S[,S…]",
        help="steps whose errors are tabulated (default 1,10,STEPS)",
    )
    verify_cmd.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spec override, e.g. --set dtype=float64 (repeatable)",
    )
    verify_cmd.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="where the IDX files are (as for run)"
    )
    verify_cmd.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="thread budget of the backends (default 1)",
    )
    _add_timeout(verify_cmd)

    scaffold_cmd = commands.add_parser(
        "new-backend",
        help="write a ready-to-edit backend plugin package",
        description="Write a plugin package: pyproject.toml with the harness.backends entry "
        "point, the backend module with the four methods to fill in, and a test that runs "
        "'harness verify' on it.",
    )
    scaffold_cmd.add_argument("name", metavar="NAME", help="backend name, e.g. numpy-fused")
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
        help="run only the runs missing from SESSION (default: the latest), with its spec, seed "
        "and backends",
    )
    for sub in (run, report_cmd, compare_cmd, export_cmd):
        sub.add_argument(
            "--results-dir",
            type=Path,
            default=Path("results"),
            metavar="DIR",
            help="root of the session directories (default ./results)",
        )

    commands.add_parser(
        "list",
        help="show every backend, its version and whether it can run",
        description="Show every registered backend, its version and whether "
        "it can run here (and if not, why and what to install).",
    )
    return parser


def _choose_backends(args: argparse.Namespace, console: Console) -> list[backends.BackendRef]:
    if not (args.all or args.backend or args.backend_path):
        raise HarnessError("choose backends with --all, --backend NAME or --backend-path M:C")
    chosen: list[backends.BackendRef] = []
    if args.all:
        for ref in backends.registry().values():
            state = backends.status(ref)
            if state.available:
                chosen.append(ref)
            else:
                console.print(
                    f"[yellow]skipping {ref.name}[/]: {escape(str(state.reason))}", soft_wrap=True
                )
    for name in args.backend:
        ref = backends.lookup(name)
        state = backends.status(ref)
        if not state.available:
            raise HarnessError(f"backend {name!r} is not available: {state.reason}")
        if ref not in chosen:
            chosen.append(ref)
    chosen.extend(backends.ref_from_path(target) for target in args.backend_path)
    if not chosen:
        raise HarnessError("no backend is available to run; see 'python -m harness list'")
    return chosen


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _stdout_console() -> Console:
    """Rich's console, but 100 columns wide when writing to a file or pipe (80 truncates)."""
    console = Console()
    return console if console.is_terminal else Console(width=100)


@dataclass
class Matrix:
    """Everything a run needs: the job, the data, the plan, where records go, what to run."""

    spec: Spec
    files: data.DataFiles
    plan: Plan
    session: str
    session_dir: Path
    items: list[RunItem]
    timeout_s: float | None
    total: int  # runs in the whole matrix (a resumed one runs only the missing)
    variants: dict[str, tuple[Spec, Plan]]  # sweep points; empty without --sweep


def _plans_for(points: list[SweepPoint], files: data.DataFiles) -> dict[str, tuple[Spec, Plan]]:
    variants = {}
    for point in points:
        check_fits_data(point.spec, files.n_train)
        plan = make_plan(point.spec, files.n_features, data.N_CLASSES, files.n_train)
        variants[point.name] = (point.spec, plan)
    return variants


def _new_matrix(args: argparse.Namespace, err: Console) -> Matrix:
    spec = build_spec(args.spec, args.set, args.quick)
    sweeps = parse_sweeps(args.sweep)
    threads = args.threads
    if SWEEP_THREADS in sweeps:
        try:
            threads = [_positive_int(t) for t in sweeps[SWEEP_THREADS]]
        except argparse.ArgumentTypeError as exc:
            raise HarnessError(f"--sweep threads: {exc}") from None
    points = sweep_points(spec, sweeps) if set(sweeps) - {SWEEP_THREADS} else []
    refs = _choose_backends(args, err)
    files = data.locate(spec.dataset, args.data_dir)
    check_fits_data(spec, files.n_train)
    variants = _plans_for(points, files)
    session, session_dir = create_session(args.results_dir)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    cells = [(name, ()) for name in variants] or [("", ())]
    items = interleaved(refs, threads, args.repeats, args.warmup, cells)
    total = sum(not item.warmup for item in items)
    return Matrix(spec, files, plan, session, session_dir, items, args.timeout, total, variants)


_NOT_WITH_RESUME = ("all", "backend", "backend_path", "set", "spec", "quick", "sweep")


def _resumed_matrix(args: argparse.Namespace) -> Matrix:
    """The session's own spec, data and matrix; only the runs without a record are left to do."""
    given = [f"--{name.replace('_', '-')}" for name in _NOT_WITH_RESUME if getattr(args, name)]
    if given:
        raise HarnessError(
            f"--resume takes the spec and the backends from the session; drop {', '.join(given)}"
        )
    (session_dir,) = report.resolve_sessions([args.resume], args.results_dir)
    try:
        info = json.loads((session_dir / SESSION_FILE).read_text())
        spec = spec_from_dict(info["spec"])
        stored_data = data.DataFiles.from_json(info["data"])
        matrix = [
            RunItem(
                BackendRef(m["backend"], m["target"], "session"),
                m["threads"],
                m["repeat"],
                m.get("order", 0),
                variant=m.get("variant", ""),
            )
            for m in info["matrix"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(
            f"cannot resume {session_dir}: its {SESSION_FILE} is unreadable ({exc})"
        ) from None
    data_dir = args.data_dir or stored_data.paths["train_images"].parent
    files = data.locate(spec.dataset, data_dir)
    if files.sha256 != stored_data.sha256:
        raise HarnessError(
            f"cannot resume {session_dir}: the data in {data_dir} differs from "
            "the session's (SHA-256 mismatch)"
        )
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    if (plan.init_sha256, plan.batches_sha256) != (info["init_sha256"], info["batches_sha256"]):
        raise HarnessError(
            f"cannot resume {session_dir}: this version derives a different "
            "plan from its seed, so the runs would not do the same work"
        )
    points = [
        SweepPoint(name, spec_from_dict(v["spec"])) for name, v in info.get("variants", {}).items()
    ]
    variants = _plans_for(points, files)
    for name, (_, point_plan) in variants.items():
        stored = info["variants"][name]
        if (point_plan.init_sha256, point_plan.batches_sha256) != (
            stored["init_sha256"],
            stored["batches_sha256"],
        ):
            raise HarnessError(
                f"cannot resume {session_dir}: sweep point {name} would get "
                "different work from its seed"
            )
    missing = [item for item in matrix if not (session_dir / item.filename).exists()]
    return Matrix(
        spec,
        files,
        plan,
        info.get("session", session_dir.name),
        session_dir,
        missing,
        info.get("timeout_s"),
        len(matrix),
        variants,
    )


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during the matrix."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def cmd_run(args: argparse.Namespace) -> int:
    console = _stdout_console()
    err = Console(stderr=True)
    matrix = _resumed_matrix(args) if args.resume else _new_matrix(args, err)
    spec, items = matrix.spec, matrix.items
    if args.resume:
        done = matrix.total - len(items)
        err.print(
            f"resuming {escape(str(matrix.session_dir))}: {done} of {matrix.total} runs "
            f"already recorded, {len(items)} to go",
            soft_wrap=True,
        )

    records: list[RunRecord] = []
    with _progress() as progress:
        overall = progress.add_task("runs", total=len(items), note="")
        current = progress.add_task("", total=spec.iterations, note="")

        def on_start(item: RunItem) -> None:
            iterations = matrix.variants.get(item.variant, (spec,))[0].iterations
            progress.reset(current, total=iterations, description=item.label, note="starting")

        def on_progress(item: RunItem, event: dict) -> None:
            if event.get("event") == "setup":
                progress.update(current, note="setting up")
            elif event.get("event") == "trained":
                note = f"test acc {event['test_acc']:.4f}"
                progress.update(current, completed=event["iteration"], note=note)

        def on_record(item: RunItem, record: RunRecord) -> None:
            progress.advance(overall)
            if not item.warmup:
                records.append(record)
            line = f"{item.label}: {record.status}" + (" (discarded)" if item.warmup else "")
            if record.status == "ok":
                line += f", {record.train_time_s:.2f} s, test acc {record.test_acc:.4f}"
            else:
                line += f" — {(record.error or '').splitlines()[0]}"
            progress.console.print(escape(line), soft_wrap=True, highlight=False)

        env = session_env()
        if not args.no_roofline:
            progress.update(current, description="measuring the machine's GEMM rate")
            env["roofline"] = measure_roofline()
        runner = Runner(
            spec,
            matrix.files,
            matrix.plan,
            matrix.session,
            matrix.session_dir,
            env,
            matrix.timeout_s,
            on_progress,
            on_start,
            on_record,
            pin=args.pin,
            profile=args.profile,
            variants=matrix.variants,
        )
        if not args.resume:
            runner.write_session_file(items)
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            runner.run_all(items)
        except (KeyboardInterrupt, Interrupted):
            progress.stop()
            where = escape(str(matrix.session_dir))
            err.print(
                f"interrupted: {len(records)} of {len(items)} runs recorded in {where}; "
                f"resume with: python -m harness run --resume {where}",
                soft_wrap=True,
            )
            return EXIT_INTERRUPTED
        finally:
            signal.signal(signal.SIGTERM, previous)

    print_summary(console, [r.to_json() for r in records])
    console.print(f"results: {escape(str(matrix.session_dir))}", soft_wrap=True)
    failed = [r for r in records if r.status != "ok"]
    if failed:
        err.print(f"[red]{len(failed)} of {len(records)} runs did not finish ok[/]")
        return EXIT_RUN_FAILED
    return EXIT_OK


def _fmt(value: object, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, pattern)


def print_summary(console: Console, records: Sequence[dict]) -> None:
    rows = summarize(to_frame(records))
    table = Table(title="mlp-bench summary (medians over ok runs; train/test = accuracy)")
    widest = max((len(str(name)) for name in rows.get("backend", [])), default=7)
    table.add_column("backend", no_wrap=True, min_width=widest)
    swept = bool(len(rows)) and rows["variant"].astype(bool).any()
    if swept:
        table.add_column("sweep point", no_wrap=True)
    for column in ("threads", "time s", "CPU %", "train", "test", "ok"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row in rows.itertuples():
        name = escape(str(row.backend))
        if row.debug_build:
            name += " [red](debug)[/]"
        cpu = None if row.cpu_util is None else row.cpu_util * 100
        table.add_row(
            name,
            *([row.variant] if swept else []),
            str(row.threads),
            _fmt(row.train_time_s, ".2f"),
            _fmt(cpu, ".0f"),
            _fmt(row.train_acc, ".4f"),
            _fmt(row.test_acc, ".4f"),
            f"{row.runs_ok}/{row.runs}",
            row.statuses,
        )
    console.print(table)
    for row in rows.itertuples():
        if pd.notna(row.train_time_cv) and row.train_time_cv > NOISY_CV:
            console.print(
                f"[yellow]noisy[/] {escape(str(row.backend))} @{row.threads}: CV "
                f"{row.train_time_cv:.1%} > {NOISY_CV:.0%} across repeats; the median is less "
                "precise than it looks (quieter machine, --pin, or more --repeats)",
                soft_wrap=True,
            )


def cmd_list(args: argparse.Namespace) -> int:
    table = Table(title="backends")
    for column in ("name", "version", "available", "source / how to enable"):
        table.add_column(column)
    for ref in backends.registry().values():
        state = backends.status(ref)
        table.add_row(
            ref.name,
            state.version,
            "yes" if state.available else "[red]no[/]",
            ref.source if state.available else str(state.reason),
        )
    _stdout_console().print(table)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    loaded = report.load(report.resolve_sessions(args.results, args.results_dir))
    for problem in loaded.problems:
        print(f"warning: {problem}", file=sys.stderr)
    written = report.write_report(loaded, args.out)
    print_summary(_stdout_console(), loaded.frame.to_dict("records"))
    print(f"report: {args.out / 'index.html'} ({len(written)} files in {args.out})")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    (a,) = report.resolve_sessions([args.a], args.results_dir)
    (b,) = report.resolve_sessions([args.b], args.results_dir)
    results = compare.compare(report.load([a]).frame, report.load([b]).frame)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        print(compare.to_markdown(results, str(a), str(b)))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    loaded = report.load(report.resolve_sessions(args.results, args.results_dir))
    export.export_pyperf(loaded.frame, args.pyperf)
    print(f"wrote {args.pyperf}; try: python -m pyperf stats {args.pyperf}")
    return EXIT_OK


def _verify_table(name: str, result: dict) -> Table:
    table = Table(title=f"{name}: error against the float64 reference", title_justify="left")
    table.add_column("step", justify="right")
    table.add_column("loss (ref)", justify="right")
    for param in PARAM_NAMES:
        table.add_column(f"{param} max abs / rel", justify="right")
    table.add_column("ok")
    for row in result["checkpoints"]:
        loss = "–" if row["loss"] is None else f"{row['loss']:.6f} ({row['reference_loss']:.6f})"
        cells = [f"{e['max_abs']:.1e} / {e['max_rel']:.1e}" for e in row["errors"].values()]
        table.add_row(str(row["step"]), loss, *cells, "yes" if row["ok"] else "[red]NO[/]")
    return table


def cmd_verify(args: argparse.Namespace) -> int:
    console = _stdout_console()
    err = Console(stderr=True)
    spec = build_spec(None, [*args.set, f"iterations={args.steps}"], False)
    checkpoints = sorted(set(args.checkpoints or [1, min(10, args.steps), args.steps]))
    if checkpoints[-1] > args.steps:
        raise HarnessError(
            f"--checkpoints {checkpoints[-1]} is past --steps {args.steps}; "
            "choose checkpoints between 1 and the number of steps"
        )
    args.all = not (args.backend or args.backend_path)
    refs = _choose_backends(args, err)
    files = data.locate(spec.dataset, args.data_dir)
    check_fits_data(spec, files.n_train)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    reference_target = backends.lookup("numpy").target
    verdicts: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mlp-bench-verify-") as scratch_name:
        scratch = Path(scratch_name)
        plan.save(scratch / "plan.npz")
        for ref in refs:
            if not getattr(backends.load_class(ref.target), "follows_batch_stream", True):
                verdicts[ref.name] = "not comparable (draws its own batches)"
                continue
            err.print(f"verifying {escape(ref.name)} over {args.steps} steps …")
            job = {
                "mode": "verify",
                "backend_target": ref.target,
                "reference_target": reference_target,
                "spec": spec.to_dict(),
                "data": files.to_json(),
                "plan_path": str(scratch / "plan.npz"),
                "threads": args.threads,
                "steps": args.steps,
                "checkpoints": checkpoints,
            }
            result = run_worker(job, scratch, f"verify-{ref.name}", args.threads, args.timeout)
            outcome = result.outcome.get("verify")
            if result.status != "ok" or outcome is None:
                first_line = (result.error or "no result").splitlines()[0]
                verdicts[ref.name] = f"FAILED TO RUN: {first_line}"
                continue
            console.print(_verify_table(ref.name, outcome))
            failure = outcome["first_failure"]
            verdicts[ref.name] = (
                "pass"
                if failure is None
                else f"FAIL: tolerance first broken at step {failure['step']} "
                f"({', '.join(failure['what'])})"
            )
    tolerance = TOLERANCES[spec.dtype]
    console.print(
        f"tolerance ({spec.dtype}): |backend − reference| ≤ {tolerance.atol:g} + "
        f"{tolerance.rtol:g}·|reference|",
        soft_wrap=True,
    )
    for name, verdict in verdicts.items():
        style = "green" if verdict == "pass" else "yellow" if verdict.startswith("not") else "red"
        console.print(f"{escape(name)}: [{style}]{escape(verdict)}[/]", soft_wrap=True)
    failed = [n for n, v in verdicts.items() if v != "pass" and not v.startswith("not")]
    return EXIT_RUN_FAILED if failed else EXIT_OK


def cmd_new_backend(args: argparse.Namespace) -> int:
    target = scaffold.write_scaffold(args.name, args.dir)
    print(f"wrote {target}: fill in {target}/*/backend.py, then:")
    print(f"  pip install -e {target} && python -m harness verify --backend {args.name}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "run": cmd_run,
        "list": cmd_list,
        "report": cmd_report,
        "compare": cmd_compare,
        "export": cmd_export,
        "verify": cmd_verify,
        "new-backend": cmd_new_backend,
    }
    try:
        return commands[args.command](args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
