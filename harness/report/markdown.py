"""report.md: the tables and lines of ``tables`` as Markdown."""

from __future__ import annotations

import json

import pandas as pd

from harness.export.escape import fence, markdown, markdown_table
from harness.report import tables
from harness.report.headline import headline
from harness.results.store import Results
from harness.results.summary import summarize, work_notes
from harness.results.suspect import warnings


def fact(value: object) -> str:
    """An environment value for people: lists joined, numbers of bytes in GiB."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "–"
    return "–" if value is None else str(value)


def _table(frame: pd.DataFrame) -> str:
    return markdown_table(frame)


def _items(lines: list[str], mark: str = "") -> list[str]:
    return [f"- {mark}{markdown(line)}" for line in lines]


def render_markdown(
    results: Results,
    frame: pd.DataFrame,
    chart_names: list[str],
    baseline: str | None = None,
    summary: pd.DataFrame | None = None,
) -> str:
    summary = summarize(frame, baseline) if summary is None else summary
    lines = [
        "# mlp-bench report",
        "",
        *[f"**{markdown(line)}**  " for line in headline(frame, baseline, summary)],
        "",
        f"Sessions: {markdown(', '.join(s.name for s in results.sessions))}",
        "",
        markdown(tables.what_differs(frame)),
        "",
        "## Comparison",
        "",
        "Medians over the ok runs of each comparability key (spec, sweep point, backend, threads, "
        "machine, measurement flags). CPU use = CPU seconds ÷ wall seconds of the timed training "
        "(200 % = two busy cores). GFLOP/s = the job's FLOPs ÷ median training time.",
        "",
        _table(tables.comparison_table(frame, baseline, summary)),
        "",
        *_items(work_notes(summary)),
        *_items(warnings(summary), "⚠ "),
        "",
    ]
    side_by_side = tables.machines_side_by_side(frame, summary)
    if not side_by_side.empty:
        lines += [
            "## Machines side by side",
            "",
            "Median training time of the same work on each machine (ratios across machines "
            "compare the machines, not only the backends).",
            "",
            _table(side_by_side),
            "",
        ]
    lines += [
        "## Outside the timed region",
        "",
        tables.OUTSIDE_TIMER_NOTE,
        "",
        _table(tables.outside_timer(frame, baseline, summary)),
        "",
        "## GEMM rate and bound",
        "",
        *_items([*tables.GEMM_DEFINITIONS, *tables.gemm_lines(frame)]),
        "",
        "## Thread audit",
        "",
        _table(tables.thread_audit(frame)),
        "",
        "## Same work?",
        "",
        *_items(tables.same_work_check(frame)),
        "",
        "## Runs that did not finish ok",
        "",
        _table(tables.failures(frame)),
        "",
    ]
    if results.unreadable:
        lines += [
            "## Records left out (unreadable, copies of a run counted once, attempts redone)",
            "",
        ]
        lines += [*_items([str(problem) for problem in results.unreadable]), ""]
    if chart_names:
        lines += ["## Charts", ""]
        lines += [f"![{name}]({name}.png)" for name in chart_names] + [""]
    lines += ["## Environment", ""]
    for title, facts in tables.environments(frame):
        lines += [f"### {markdown(title)}", ""]
        lines += [f"- **{markdown(str(k))}**: {markdown(fact(v))}" for k, v in facts.items()]
        lines += [""]
    lines += ["## Spec", ""]
    for spec in tables.specs(frame):
        lines += [*fence(json.dumps(spec, indent=1), "json"), ""]
    return "\n".join(lines)
