"""Command line: ``python -m harness run|report|compare|export|verify|new-backend|list``.

Exit status: 0 every run ok; 1 at least one run failed, timed out or diverged; 2 a user mistake
(bad option, spec, data or backend), reported in one line; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
from harness.arguments import EXIT_USAGE, build_parser, positive_int
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
from harness.summary import NOISY_CV, fmt, summarize, to_frame
from harness.verify import TOLERANCES

EXIT_OK, EXIT_RUN_FAILED, EXIT_INTERRUPTED = 0, 1, 130


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
            threads = [positive_int(t) for t in sweeps[SWEEP_THREADS]]
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
            fmt(row.train_time_s, ".2f"),
            fmt(cpu, ".0f"),
            fmt(row.train_acc, ".4f"),
            fmt(row.test_acc, ".4f"),
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
