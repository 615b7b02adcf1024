"""``run``: plan the matrix (new or resumed), execute it here or on a cluster, print the table."""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.commands.console import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    stdout_console,
    warn_unreadable,
    warner,
)
from harness.errors import HarnessError, RunsStopped, first_line
from harness.export import ExportData, export
from harness.export.escape import terminal
from harness.export.terminal_table import print_summary
from harness.requests import Output, RunRequest
from harness.results.key import threads_label
from harness.results.model import SESSION_FILE, RunRecord
from harness.results.store import load_results, read_session, resolve_sessions
from harness.results.summary import to_frame
from harness.runner import precision
from harness.runner.executor import Executor, LocalExecutor, execute
from harness.runner.items import RunItem
from harness.runner.lock import folder_lock
from harness.runner.matrix import Matrix, extend
from harness.runner.planning import new_matrix, resumed_matrix
from harness.runner.processes import remove_stale_scratch
from harness.runner.session import create_session, rewrite_session_file


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during the matrix."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _refuse_warmup_on_cluster(warmup: bool, resumed: bool) -> None:
    if warmup:
        what = "resume it without --cluster" if resumed else "drop --warmup"
        raise HarnessError(
            "--warmup is not available with --cluster: a warm-up could run on another machine "
            f"than the runs it warms up; {what}"
        )


def _executor(request: RunRequest, err: Console) -> Executor:
    if request.cluster is None:
        return LocalExecutor(request.measure_gemm_rate)
    from harness.runner import cluster

    client = cluster.connect(request.cluster, warner(err))
    return cluster.DaskExecutor(
        client, request.cluster, request.measure_gemm_rate, request.cluster_wait_s
    )


def cmd_run(request: RunRequest) -> int:
    # The session's lock is held from before its runs are planned until its table is printed.
    with contextlib.ExitStack() as holds:
        return _run(request, holds)


def _lock_resumed(request: RunRequest, holds: contextlib.ExitStack, err: Console) -> None:
    """Lock the session to resume before its missing runs are counted: a second resume of it
    then finds them done, or is told who is doing them."""
    (session_dir,) = resolve_sessions([request.resume or "latest"], request.results_dir)
    if (session_dir / SESSION_FILE).is_file():  # else resumed_matrix says what it is not
        holds.enter_context(folder_lock(session_dir, request.wait, warner(err)))


def _run(request: RunRequest, holds: contextlib.ExitStack) -> int:
    err = Console(stderr=True)
    for stale in remove_stale_scratch():
        err.print(f"removed {escape(str(stale))}, left behind by a harness that was killed")
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    matrix: Matrix | None = None
    recorded: list[RunItem] = []
    executor: Executor | None = None
    try:
        if request.cluster:  # before anything is found, fetched or connected to
            _refuse_warmup_on_cluster(request.flags.warmup, resumed=False)
        executor = _executor(request, err)  # before the session exists: no cluster, no session
        if request.resume:
            _lock_resumed(request, holds, err)
            matrix = resumed_matrix(request)
        else:
            if request.wait or request.retry_failed:
                given = "--wait" if request.wait else "--retry-failed"
                raise HarnessError(
                    f"{given} applies to run --resume SESSION; add --resume or drop it"
                )
            matrix = new_matrix(request, warner(err))
            create_session(matrix.session_dir)
            holds.enter_context(folder_lock(matrix.session_dir))
        if request.cluster:  # a resumed session brings its own flags
            _refuse_warmup_on_cluster(matrix.flags.warmup, resumed=True)
        env = _run_matrix(matrix, executor, request.output, err, recorded)
        work = request.work
        if work.precision is not None and not request.resume:
            firsts = {(i.backend, i.threads, i.variant): i for i in matrix.items if not i.warmup}
            cells = list(firsts.values())
            while extra := _precision_round(matrix, cells, work.precision, work.max_repeats):
                matrix = extend(matrix, extra)
                err.print(
                    f"precision: {len(extra)} more run(s), one per backend and thread count "
                    f"not yet within ±{work.precision:g} %",
                    soft_wrap=True,
                )
                _run_items(matrix, executor, env, request.output, err, recorded)
            _close_precision(matrix, cells, work.precision, work.max_repeats, err)
    except RunsStopped as exc:
        err.print(
            f"[red]{escape(str(exc))}[/]; once {exc.waiting_for} back: python -m harness run "
            f"--resume {escape(str(matrix.session_dir if matrix else '?'))} --cluster "
            f"{escape(str(request.cluster))}",
            soft_wrap=True,
        )
    except (KeyboardInterrupt, Interrupted):
        err.print(_interrupted(matrix, recorded), soft_wrap=True)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        if executor is not None:
            executor.close()
    return _close_session(matrix, err, request)


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
        f"interrupted: {done} of {matrix.runs_left} runs recorded in "
        f"{where}; resume with: python -m harness run --resume {where}"
    )


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


def _precision_round(
    matrix: Matrix, cells: list[RunItem], percent: float, max_repeats: int
) -> list[RunItem]:
    records = load_results([matrix.session_dir]).records
    first_order = max((r.order or 0 for r in records), default=0) + 1
    return precision.next_round(
        precision.standing(cells, records), percent, max_repeats, first_order
    )


def _close_precision(
    matrix: Matrix, cells: list[RunItem], percent: float, max_repeats: int, err: Console
) -> None:
    """Say what each cell reached, and keep it in session.json."""
    state = precision.standing(cells, load_results([matrix.session_dir]).records)
    for line in precision.closing_lines(state, percent, max_repeats):
        err.print(escape(line), soft_wrap=True)
    session = read_session(matrix.session_dir)
    session.precision = {
        "asked_percent": percent,
        "max_repeats": max_repeats,
        "reached": {cell.label: cell.reached for cell in state},
    }
    rewrite_session_file(matrix.session_dir, session)


def _run_matrix(
    matrix: Matrix, executor: Executor, output: Output, err: Console, recorded: list[RunItem]
) -> dict[str, Any]:
    """The matrix with a bar for the runs done and one per run in flight; returns the session's
    environment."""
    items = matrix.items
    if matrix.resumed is not None:
        done = matrix.total - matrix.runs_left
        err.print(
            f"resuming {escape(str(matrix.session_dir))}: {done} of {matrix.total} runs "
            f"already recorded, {matrix.total - done} to go",
            soft_wrap=True,
        )
    thread_counts = list(dict.fromkeys(item.threads for item in items))
    measuring = (
        err.status(
            "measuring NumPy's GEMM rate at "
            f"{', '.join(threads_label(t) for t in thread_counts)} threads …"
        )
        if executor.measure_gemm_rate and not executor.remote and not output.quiet
        else contextlib.nullcontext()
    )
    with measuring:
        env = executor.environment(thread_counts)
    _run_items(matrix, executor, env, output, err, recorded)
    return env


def _run_items(
    matrix: Matrix,
    executor: Executor,
    env: dict[str, Any],
    output: Output,
    err: Console,
    recorded: list[RunItem],
) -> None:
    """The matrix's items, with a bar for the runs done and one per run in flight."""
    items = matrix.items
    with _progress(output.quiet) as progress:
        overall = progress.add_task("runs", total=len(items), note="")
        bars: dict[int, TaskID] = {}

        def label(item: RunItem, host: Any) -> str:
            return f"{item.label} @ {host}" if executor.remote else item.label

        def on_event(item: RunItem, event: dict) -> None:
            if event["event"] == "started":
                iterations = matrix.cell(item)[0].iterations
                bars[item.order] = progress.add_task(
                    label(item, event.get("host", "?")), total=iterations, note="starting"
                )
            elif item.order not in bars:
                return
            elif event["event"] == "setup":
                progress.update(bars[item.order], note="setting up")
            elif event["event"] == "trained":
                note = f"test acc {event['test_acc']:.4f}"
                progress.update(bars[item.order], completed=event["iteration"], note=note)

        started = time.monotonic()

        def on_record(item: RunItem, record: RunRecord) -> None:
            if item.order in bars:
                progress.remove_task(bars.pop(item.order))
            progress.advance(overall)
            recorded.append(item)
            host = (record.env or {}).get("hostname", "?")
            name = label(item, host)
            if not progress.console.is_terminal:  # a log has no live bar: say where it stands
                name = f"{_where(len(recorded), len(items), time.monotonic() - started)} {name}"
            _print_outcome(progress, output, name, record, item.warmup)

        execute(matrix, executor, env, on_event, on_record)


def _where(done: int, total: int, elapsed_s: float) -> str:
    """``run 3/10, ~1:24 left``: the runs so far, and the rest at their average pace."""
    left = round(elapsed_s / done * (total - done))
    return f"run {done}/{total}, ~{left // 60}:{left % 60:02d} left:"


def _print_outcome(
    progress: Progress, output: Output, label: str, record: RunRecord, discarded: bool
) -> None:
    """One line per finished run (ok runs are left out with -q)."""
    if output.quiet and record.status == "ok":
        return
    line = f"{label}: {record.status}" + (" (discarded)" if discarded else "")
    if record.status == "ok":
        line += f", {record.train_time_s:.2f} s, test acc {record.test_acc:.4f}"
    else:
        line += f" — {record.error if output.verbose else first_line(record.error)}"
    progress.console.print(escape(terminal(line, lines=True)), soft_wrap=True, highlight=False)


def _close_session(matrix: Matrix | None, err: Console, request: RunRequest) -> int:
    if matrix is None:
        raise AssertionError("a run without a matrix ended without an error")
    console = stdout_console()
    # The whole session, resumed or not: what is on disk is what the session measured.
    results = load_results([matrix.session_dir])
    warn_unreadable(results)
    frame = to_frame(results.records)
    if request.output.json:
        print(export("json", ExportData(frame, request.baseline)).decode(), end="")
    else:
        print_summary(console, frame, request.baseline)
        console.print(f"results: {escape(str(matrix.session_dir))}", soft_wrap=True)
    failed = [r for r in results.records if r.status != "ok"]
    missing = matrix.total - len(results.records)
    if failed or missing:
        err.print(f"[red]{len(failed) + missing} of {matrix.total} runs did not finish ok[/]")
        lost = sum(r.status == "lost" for r in failed)
        where = escape(str(matrix.session_dir))
        cluster = f" --cluster {escape(request.cluster)}" if request.cluster else ""
        if lost:
            err.print(
                f"{lost} run(s) lost with their machine, not failed by their backend; redo them "
                f"with: python -m harness run --resume {where}{cluster}",
                soft_wrap=True,
            )
        if len(failed) > lost:
            err.print(
                f"to redo the {len(failed) - lost} that failed too: python -m harness run "
                f"--resume {where}{cluster} --retry-failed",
                soft_wrap=True,
            )
        return EXIT_RUN_FAILED
    return EXIT_OK
