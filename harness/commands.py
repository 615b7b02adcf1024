"""The commands behind ``python -m harness``: each parses nothing, runs, prints.

Exit status: 0 every run ok; 1 at least one run failed, timed out or diverged; 2 a user mistake
(bad option, spec, data or backend), reported in one line; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from harness import backends, data, scaffold
from harness.arguments import DEFAULT_TIMEOUT_S, EXIT_USAGE, resolve_timeout
from harness.errors import HarnessError, first_line
from harness.report.write import write_report
from harness.results import compare, export
from harness.results.key import threads_label
from harness.results.model import SESSION_FILE, RunRecord
from harness.results.store import Results, load_results, resolve_sessions, write_text_atomic
from harness.results.summary import (
    fmt,
    label_columns,
    summarize,
    to_frame,
    variation,
    warnings,
)
from harness.runner.envinfo import session_env
from harness.runner.gemm_rate import measure_gemm_rates
from harness.runner.matrix import Matrix, choose_backends, new_matrix, resumed_matrix
from harness.runner.processes import remove_stale_scratch
from harness.runner.supervisor import RunItem, Runner
from harness.runner.verification import verify_backends
from harness.spec import build_spec, check_fits_data
from harness.work.equivalence import TOLERANCES
from harness.work.plan import PARAM_NAMES, make_plan

EXIT_OK, EXIT_RUN_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),  # for the matrix: from the runs done so far
        console=Console(stderr=True),
        disable=quiet,
    )


def _stdout_console() -> Console:
    """Rich's console, but 100 columns wide when writing to a file or pipe (80 truncates)."""
    console = Console()
    return console if console.is_terminal else Console(width=100)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during the matrix."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _warn_unreadable(results: Results) -> None:
    for problem in results.unreadable:
        print(f"warning: {problem}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    for stale in remove_stale_scratch():
        err.print(f"removed {escape(str(stale))}, left behind by a harness that was killed")
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    matrix: Matrix | None = None
    recorded: list[RunItem] = []
    client = None
    try:
        if args.cluster and args.warmup:
            raise HarnessError(
                "--warmup is not available with --cluster: a warm-up could run on another "
                "machine than the runs it warms up; drop --warmup"
            )
        if args.cluster:  # before the session exists: an unreachable cluster leaves nothing
            from harness.runner import cluster

            client = cluster.connect(args.cluster, _warner(err))
        matrix = resumed_matrix(args) if args.resume else new_matrix(args, _warner(err))
        _run_matrix(matrix, args, err, recorded, client)
    except (KeyboardInterrupt, Interrupted):
        err.print(_interrupted(matrix, recorded), soft_wrap=True)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        if client is not None:
            with contextlib.suppress(Exception):  # a lost scheduler cannot be said goodbye to
                client.close(timeout=5)
    return _close_session(matrix, err, args)


def _warner(err: Console) -> Callable[[str], None]:
    return lambda line: err.print(f"[yellow]{escape(line)}[/]", soft_wrap=True)


def _interrupted(matrix: Matrix | None, recorded: list[RunItem]) -> str:
    """What an interrupt leaves: nothing for a session that had no run yet, else how to resume."""
    if matrix is None:
        return "interrupted"
    where = escape(str(matrix.session_dir))
    records = [p for p in matrix.session_dir.glob("*.json") if p.name != SESSION_FILE]
    if matrix.resumed is None and not records:
        shutil.rmtree(matrix.session_dir, ignore_errors=True)
        return f"interrupted before the first run ended; removed {where}"
    done = sum(not item.warmup for item in recorded)
    return (
        f"interrupted: {done} of {sum(not i.warmup for i in matrix.items)} runs recorded in "
        f"{where}; resume with: python -m harness run --resume {where}"
    )


def _run_matrix(
    matrix: Matrix,
    args: argparse.Namespace,
    err: Console,
    recorded: list[RunItem],
    client: Any = None,
) -> None:
    spec, items = matrix.spec, matrix.items
    if matrix.resumed is not None:
        done = matrix.total - sum(not item.warmup for item in items)
        err.print(
            f"resuming {escape(str(matrix.session_dir))}: {done} of {matrix.total} runs "
            f"already recorded, {matrix.total - done} to go",
            soft_wrap=True,
        )
    env = session_env()
    if client is not None:
        _run_on_cluster(matrix, args, err, recorded, env, client)
        return
    if not args.no_roofline:
        counts = ", ".join(dict.fromkeys(threads_label(item.threads) for item in items))
        with (
            err.status(f"measuring NumPy's GEMM rate at {counts} threads …")
            if not args.quiet
            else contextlib.nullcontext()
        ):
            env.update(measure_gemm_rates({item.threads for item in items}))
    with _progress(args.quiet) as progress:
        overall = progress.add_task("runs", total=len(items), note="")
        current = progress.add_task("", total=spec.iterations, note="")

        def on_start(item: RunItem) -> None:
            iterations = matrix.variants.get(item.variant, (spec,))[0].iterations
            progress.reset(current, total=iterations, description=item.label, note="starting")

        def on_progress(item: RunItem, event: dict) -> None:
            if event["event"] == "setup":
                progress.update(current, note="setting up")
            elif event["event"] == "trained":
                note = f"test acc {event['test_acc']:.4f}"
                progress.update(current, completed=event["iteration"], note=note)

        def on_record(item: RunItem, record: RunRecord) -> None:
            progress.advance(overall)
            recorded.append(item)
            _print_outcome(progress, args, item.label, record, item.warmup)

        runner = _runner(matrix, env)
        runner.on_progress, runner.on_start, runner.on_record = on_progress, on_start, on_record
        if matrix.resumed is None:
            runner.write_session_file(items)
        runner.run_all(items)


def _runner(matrix: Matrix, env: dict) -> Runner:
    return Runner(
        matrix.spec,
        matrix.files,
        matrix.plan,
        matrix.session,
        matrix.session_dir,
        env,
        matrix.timeout_s,
        flags=matrix.flags,
        variants=matrix.variants,
    )


def _print_outcome(
    progress: Progress,
    args: argparse.Namespace,
    label: str,
    record: RunRecord,
    discarded: bool = False,
) -> None:
    """One line per finished run (ok runs are left out with -q)."""
    if args.quiet and record.status == "ok":
        return
    line = f"{label}: {record.status}" + (" (discarded)" if discarded else "")
    if record.status == "ok":
        line += f", {record.train_time_s:.2f} s, test acc {record.test_acc:.4f}"
    else:
        line += f" — {record.error if args.verbose else first_line(record.error)}"
    progress.console.print(escape(line), soft_wrap=True, highlight=False)


def _run_on_cluster(
    matrix: Matrix,
    args: argparse.Namespace,
    err: Console,
    recorded: list[RunItem],
    env: dict,
    client: Any,
) -> None:
    """The matrix on Dask: runs done of the total, and a bar per run in flight."""
    from harness.runner import cluster

    if matrix.flags.warmup:  # a resumed --warmup session; a new one was refused earlier
        raise HarnessError(
            f"{matrix.session_dir} was run with --warmup, which a cluster cannot honour (a "
            "warm-up could run on another machine); resume it without --cluster"
        )
    env["cluster"] = args.cluster  # the session's env; each record has its machine's own
    try:
        with _progress(args.quiet) as progress:
            overall = progress.add_task("runs", total=len(matrix.items), note="")
            bars: dict[int, TaskID] = {}

            def on_progress(item: RunItem, event: dict) -> None:
                if event["event"] == "started":
                    iterations = matrix.variants.get(item.variant, (matrix.spec,))[0].iterations
                    bars[item.order] = progress.add_task(
                        f"{item.label} @ {event.get('host', '?')}", total=iterations, note=""
                    )
                elif item.order in bars and event["event"] == "trained":
                    note = f"test acc {event['test_acc']:.4f}"
                    progress.update(bars[item.order], completed=event["iteration"], note=note)

            def on_record(item: RunItem, record: RunRecord) -> None:
                if item.order in bars:
                    progress.remove_task(bars.pop(item.order))
                progress.advance(overall)
                recorded.append(item)
                host = (record.env or {}).get("hostname", "?")
                _print_outcome(progress, args, f"{item.label} @ {host}", record)

            runner = _runner(matrix, env)
            if matrix.resumed is None:
                runner.write_session_file(matrix.items)
            cluster.run_on_cluster(
                runner,
                matrix.items,
                client,
                measure_gemm=not args.no_roofline,
                wait_s=args.cluster_wait,
                on_record=on_record,
                on_progress=on_progress,
            )
    except (cluster.ClusterStalled, cluster.SchedulerLost) as exc:
        where = escape(str(matrix.session_dir))
        what = "the scheduler is" if isinstance(exc, cluster.SchedulerLost) else "workers are"
        err.print(
            f"[red]{escape(str(exc))}[/]; once {what} back: python -m harness run "
            f"--resume {where} --cluster {escape(args.cluster)}",
            soft_wrap=True,
        )


def _close_session(matrix: Matrix, err: Console, args: argparse.Namespace) -> int:
    console = _stdout_console()
    # The whole session, resumed or not: what is on disk is what the session measured.
    results = load_results([matrix.session_dir])
    _warn_unreadable(results)
    frame = to_frame(results.records)
    if args.json:
        print(json.dumps(export.summary_records(frame, args.baseline), indent=1))
    else:
        print_summary(console, frame, args.baseline)
        console.print(f"results: {escape(str(matrix.session_dir))}", soft_wrap=True)
    failed = [r for r in results.records if r.status != "ok"]
    missing = matrix.total - len(results.records)
    if failed or missing:
        err.print(f"[red]{len(failed) + missing} of {matrix.total} runs did not finish ok[/]")
        return EXIT_RUN_FAILED
    return EXIT_OK


def check_baseline(frame: pd.DataFrame, baseline: str | None) -> None:
    if baseline is not None and not (frame["backend"] == baseline).any():
        known = ", ".join(sorted(set(frame["backend"]))) or "none"
        raise HarnessError(
            f"--baseline {baseline}: no {baseline} runs in these results; backends here: {known}"
        )


def print_summary(console: Console, frame: pd.DataFrame, baseline: str | None = None) -> None:
    rows = export.fastest_first(summarize(frame, baseline))
    table = Table(title="mlp-bench summary (medians over ok runs; train/test = accuracy)")
    widest = max((len(str(name)) for name in rows.get("backend", [])), default=7)
    table.add_column("backend", no_wrap=True, min_width=widest)
    extra = label_columns(rows) if len(rows) else []
    table.add_column("threads", justify="right", no_wrap=True)
    for heading, _ in extra:
        table.add_column(heading, no_wrap=True)
    speed = f"vs {rows['baseline'].iloc[0]} [95 % CI]" if len(rows) else "speed"
    for column in ("time s", "CV", speed, "CPU %", "train", "test", "ok"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row in rows.itertuples():
        name = escape(str(row.backend))
        if row.debug_build:
            name += " [red](debug)[/]"
        cpu = None if pd.isna(row.cpu_util) else row.cpu_util * 100
        table.add_row(
            name,
            str(row.threads),
            *[escape(str(getattr(row, column))) for _, column in extra],
            fmt(row.train_time_s, ".2f"),
            fmt(None if row.train_time_cv is None else row.train_time_cv * 100, ".1f", " %"),
            row.speedup.text(),
            fmt(cpu, ".0f"),
            fmt(row.train_acc, ".4f"),
            fmt(row.test_acc, ".4f"),
            f"{row.runs_ok}/{row.runs}",
            row.statuses,
        )
    if console.is_terminal:
        console.print(table)
    else:  # a file or a pipe has no width to fit: never truncate a column there
        width = console.width
        needed = Measurement.get(console, console.options.update_width(1000), table).maximum
        console.width = max(width, needed)
        try:
            console.print(table)
        finally:
            console.width = width
    for line in warnings(rows):
        kind, rest = line.split(" ", 1)
        console.print(f"[yellow]{kind}[/] {escape(rest)}", soft_wrap=True)


def _listed(args: argparse.Namespace) -> list[backends.BackendRef]:
    commands = backends.refs_from_commands(args.backend_cmd, args.backend_cmds)
    return [*backends.registry().values(), *commands]


def cmd_list(args: argparse.Namespace) -> int:
    if args.json:
        listing = []
        for ref in _listed(args):
            state = backends.status(ref)
            listing.append(
                {
                    "name": ref.name,
                    "version": state.version,
                    "available": state.available,
                    "target": ref.target,
                    "source": ref.source,
                    "reason": state.reason,
                }
            )
        print(json.dumps(listing, indent=1))
        return EXIT_OK
    table = Table(title="backends")
    for column in ("name", "version", "available", "source / how to enable"):
        table.add_column(column)
    for ref in _listed(args):
        state = backends.status(ref)
        table.add_row(
            ref.name,
            state.version,
            "yes" if state.available else "[red]no[/]",
            escape(ref.source if state.available else str(state.reason)),
        )
    _stdout_console().print(table)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    sessions = resolve_sessions(args.results, args.results_dir)
    if args.out is None:  # next to the data it is made from, not over anything tracked
        first = sessions[0]
        many = f"report-{first.name}+{len(sessions) - 1}"
        args.out = first / "report" if len(sessions) == 1 else args.results_dir / many
    results = load_results(sessions)
    _warn_unreadable(results)
    frame = to_frame(results.records)
    check_baseline(frame, args.baseline)
    written = write_report(results, args.out, args.baseline)
    console = _stdout_console()
    console.print(variation(frame).sentence(), soft_wrap=True)
    print_summary(console, frame, args.baseline)
    print(f"report: {args.out / 'index.html'} ({len(written)} files in {args.out})")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    (a,) = resolve_sessions([args.a], args.results_dir)
    (b,) = resolve_sessions([args.b], args.results_dir)
    results_a, results_b = load_results([a]), load_results([b])
    _warn_unreadable(results_a)
    _warn_unreadable(results_b)
    result = compare.compare(to_frame(results_a.records), to_frame(results_b.records))
    if args.json:
        # The list of pairs, as before the results model; what was not paired goes to stderr.
        print(json.dumps([pair.to_json() for pair in result.pairs], indent=1))
        for unpaired in result.unpaired:
            print(f"warning: {compare.describe(unpaired)}", file=sys.stderr)
    else:
        print(compare.to_markdown(result, str(a), str(b)))
    if args.fail_if_slower is not None:
        failures = compare.gate(
            result, to_frame(results_b.records), args.fail_if_slower, args.accuracy_tolerance
        )
        for failure in failures:
            print(failure, file=sys.stderr)
        if failures:
            return EXIT_RUN_FAILED
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or ("pyperf" if args.pyperf else "json")
    out = args.out or args.pyperf
    if fmt == "pyperf" and out is None:
        raise HarnessError("--format pyperf writes a file: give it with --out FILE")
    results = load_results(resolve_sessions(args.results, args.results_dir))
    _warn_unreadable(results)
    frame = to_frame(results.records)
    if fmt == "pyperf":
        export.export_pyperf(frame, out)
        print(f"wrote {out}; try: python -m pyperf stats {out}")
        return EXIT_OK
    text = export.export_text(frame, fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            write_text_atomic(out, text)
        except OSError as exc:
            raise HarnessError(f"cannot write {out}: {exc.strerror or exc}") from None
        print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def _verify_table(name: str, checkpoints: list[dict]) -> Table:
    table = Table(
        title=f"{name}: |error| ÷ tolerance against the float64 reference (≤ 1 passes); "
        "max absolute error in brackets",
        title_justify="left",
    )
    table.add_column("step", justify="right")
    table.add_column("loss (ref)", justify="right")
    for param in PARAM_NAMES:
        table.add_column(param, justify="right")
    table.add_column("ok")
    for row in checkpoints:
        loss = "–"
        if row["loss"] is not None:
            used = row.get("loss_tolerance_used")
            loss = f"{row['loss']:.6f} ({row['reference_loss']:.6f})" + (
                f" {used:.2g}" if used is not None else ""
            )
        cells = [f"{e['tolerance_used']:.2g} [{e['max_abs']:.1e}]" for e in row["errors"].values()]
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
    args.all = not (args.backend or args.backend_path or args.backend_cmd or args.backend_cmds)
    refs = choose_backends(args, lambda line: err.print(f"[yellow]{escape(line)}[/]"))
    files = data.locate(spec.dataset, args.data_dir)
    check_fits_data(spec, files.n_train)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    verdicts = verify_backends(
        refs,
        spec,
        files,
        plan,
        threads=args.threads,
        checkpoints=checkpoints,
        timeout_s=resolve_timeout(args.timeout, DEFAULT_TIMEOUT_S),
        on_start=lambda ref: err.print(f"verifying {escape(ref.name)} over {args.steps} steps …"),
    )
    for verdict in verdicts:
        if verdict.checkpoints:
            console.print(_verify_table(verdict.backend, verdict.checkpoints))
    tolerance = TOLERANCES[spec.dtype]
    console.print(
        f"tolerance ({spec.dtype}): |backend − reference| ≤ {tolerance.atol:g} + "
        f"{tolerance.rtol:g}·|reference|",
        soft_wrap=True,
    )
    for verdict in verdicts:
        text = verdict.verdict
        style = "red" if verdict.failed else "green" if text == "pass" else "yellow"
        console.print(f"{escape(verdict.backend)}: [{style}]{escape(text)}[/]", soft_wrap=True)
    return EXIT_RUN_FAILED if any(v.failed for v in verdicts) else EXIT_OK


def cmd_new_backend(args: argparse.Namespace) -> int:
    target = scaffold.write_scaffold(args.name, args.dir)
    print(f"wrote {target}: fill in {scaffold.backend_file(args.name, target)}, then:")
    print(f"  pip install -e {target} && python -m harness verify --backend {args.name}")
    return EXIT_OK


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; a user mistake becomes one line and exit 2."""
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
    except BrokenPipeError:  # "| head": the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return EXIT_OK
