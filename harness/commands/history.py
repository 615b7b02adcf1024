"""``history``: each key's median time per session across commits, step changes flagged."""

from __future__ import annotations

import json
import re

import pandas as pd
from rich.markup import escape
from rich.table import Table

from harness.commands.console import EXIT_OK, stdout_console, warn_unreadable
from harness.errors import HarnessError
from harness.export.escape import terminal
from harness.requests import HistoryRequest
from harness.results.history import Line, history
from harness.results.key import machine_fingerprint, threads_label
from harness.results.store import all_sessions, load_results, resolve_sessions
from harness.results.summary import fmt, to_frame
from harness.runner.envinfo import machine_identity


def short_session(name: str) -> str:
    """``20261208-000308-e011`` → ``1208-0003-e011``: the year and the seconds dropped, the
    random suffix kept (docs/cli.md states the rule); any other name as it is."""
    found = re.fullmatch(r"\d{4}(\d{4})-(\d{4})\d{2}-(\w+)", name)
    return "-".join(found.groups()) if found else name


def _table(line: Line) -> Table:
    """One line's sessions, under its label: the columns fit 100 terminal columns whole."""
    table = Table(title=escape(terminal(line.label)), title_justify="left")
    for column in ("session", "commit", "n", "median s [95 % CI]", "vs before", "step"):
        table.add_column(column, justify="right" if column == "n" else "left", no_wrap=True)
    for point in line.points:
        commit = (point.commit or "?")[:7] + (" dirty" if point.dirty else "")
        interval = (
            f" [{fmt(point.low_s, '.3f')}–{fmt(point.high_s, '.3f')}]"
            if point.low_s == point.low_s
            else ""
        )
        ratio = point.versus_before.text() if point.versus_before is not None else "–"
        step = {"slower": "[red]slower[/]", "faster": "[green]faster[/]"}.get(point.step or "", "")
        table.add_row(
            escape(terminal(short_session(point.session))),
            escape(terminal(commit)),
            str(point.runs),
            f"{point.median_s:.3f}{interval}",
            ratio,
            step,
        )
    return table


def _this_machine(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The runs of this machine, and a line saying so; all runs where it has none."""
    here = machine_fingerprint(machine_identity())
    mine = (
        frame[[machine_fingerprint(env) == here for env in frame["env"]]] if len(frame) else frame
    )
    if len(mine) == len(frame):
        return frame, ""
    if not len(mine):
        return frame, "no session of this machine here: showing every machine's (one line each)"
    sessions = mine["session"].nunique()
    return mine, (
        f"this machine's {sessions} session(s) only; name sessions to follow others' "
        "(history SESSION [SESSION ...])"
    )


def cmd_history(request: HistoryRequest) -> int:
    if request.sessions:
        sessions = resolve_sessions(list(request.sessions), request.results_dir)
    else:
        sessions = all_sessions(request.results_dir)
    results = load_results(sessions)
    warn_unreadable(results)
    frame = to_frame(results.records)
    # Without sessions named: this machine's, as a CI runner or a laptop follows itself.
    frame, scope = (frame, "") if request.sessions else _this_machine(frame)
    if request.backends and len(frame):
        frame = frame[frame["backend"].isin(request.backends)]
    if request.threads is not None and len(frame):
        frame = frame[frame["threads"] == threads_label(request.threads)]
    lines = history(frame, request.match, request.threshold)
    if not lines:
        raise HarnessError(
            f"no ok runs to follow in {len(sessions)} session(s)"
            + (" with the --backend/--threads given" if request.backends or request.threads else "")
        )
    if request.json:
        print(json.dumps([line.to_json() for line in lines], indent=1))
    else:
        console = stdout_console()
        if scope:
            console.print(scope, soft_wrap=True)
        for line in lines:
            console.print(_table(line))
        steps = sum(1 for line in lines for p in line.points if p.step)
        later = [p for line in lines for p in line.points[1:]]
        blind = sum(1 for p in later if not p.judged)
        console.print(
            f"{len(lines)} line(s) over {len(sessions)} session(s); {steps} step change(s) beyond "
            f"±{request.threshold * 100:g} %"
            + (
                f" among the {len(later) - blind} point(s) it could judge; {blind} could not be "
                "judged (one run each, and fewer than two runs before them to say what noise "
                "is): a step there would not show"
                if blind
                else ""
            ),
            soft_wrap=True,
        )
    if request.chart is not None:
        from harness.report.history_chart import render_history

        request.chart.mkdir(parents=True, exist_ok=True)
        written = render_history(lines, request.chart)
        print(f"chart: {', '.join(str(p) for p in written)}")
    return EXIT_OK
