"""index.html: one self-contained page (styles inline, charts as data: URIs, no request out)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from harness.report import tables
from harness.report.headline import headline
from harness.report.markdown import fact
from harness.results.store import Results
from harness.results.summary import summarize, work_notes
from harness.results.suspect import warnings


def _table(frame: pd.DataFrame) -> str:
    """A table that scrolls sideways inside its box on a narrow screen, never the page."""
    if frame.empty:
        return "<p>None.</p>"
    return f'<div class="scroll">{frame.to_html(index=False, border=0)}</div>'


def _items(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def render_html(
    results: Results,
    frame: pd.DataFrame,
    chart_pngs: dict[str, Path],
    baseline: str | None = None,
    summary: pd.DataFrame | None = None,
) -> str:
    summary = summarize(frame, baseline) if summary is None else summary
    answers = headline(frame, baseline, summary)
    images = "\n".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"></figure>'
        for name, path in chart_pngs.items()
    )
    environment = "".join(
        f'<h3>{html.escape(title)}</h3><div class="scroll"><table class="facts">'
        + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(fact(v))}</td></tr>"
            for k, v in facts.items()
        )
        + "</table></div>"
        for title, facts in tables.environments(frame)
    )
    specs = "".join(
        f"<pre>{html.escape(json.dumps(s, indent=1))}</pre>" for s in tables.specs(frame)
    )
    unreadable = _items([str(p) for p in results.unreadable]) if results.unreadable else ""
    side_by_side = tables.machines_side_by_side(frame, summary)
    machines = (
        "<h2>Machines side by side</h2><p>Median training time of the same work on each "
        f"machine.</p>{_table(side_by_side)}"
        if not side_by_side.empty
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mlp-bench report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem auto; padding: 0 1rem;
        max-width: 1100px; color: #222; overflow-wrap: anywhere; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right;
          white-space: nowrap; overflow-wrap: normal; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
.facts td {{ white-space: normal; text-align: left; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; height: auto; }}
pre {{ background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }}
.answer {{ font-size: 1.15rem; font-weight: 600; }}
</style></head><body>
<h1>mlp-bench report</h1>
{"".join(f'<p class="answer">{html.escape(line)}</p>' for line in answers)}
<p>Sessions: {html.escape(", ".join(s.name for s in results.sessions))}</p>
<p class="differs">{html.escape(tables.what_differs(frame))}</p>
<h2>Comparison</h2>
<p>Medians over the ok runs of each comparability key (spec, sweep point, backend, threads,
machine, measurement flags). CPU use = CPU seconds ÷ wall seconds of the timed training
(200 % = two busy cores).</p>
{_table(tables.comparison_table(frame, baseline, summary))}
{_items(work_notes(summary))}
{_items(["⚠ " + line for line in warnings(summary)])}
{machines}<h2>Outside the timed region</h2>
<p>{html.escape(tables.OUTSIDE_TIMER_NOTE)}</p>
{_table(tables.outside_timer(frame, baseline, summary))}
<h2>GEMM rate and bound</h2>
{_items([*tables.GEMM_DEFINITIONS, *tables.gemm_lines(frame)])}
<h2>Thread audit</h2>
{_table(tables.thread_audit(frame))}
<h2>Same work?</h2>
{_items(tables.same_work_check(frame))}
<h2>Runs that did not finish ok</h2>
{_table(tables.failures(frame))}
{f"<h2>Records left out</h2>{unreadable}" if unreadable else ""}
<h2>Charts</h2>
{images}
<h2>Environment</h2>
{environment}
<h2>Spec</h2>
{specs}
</body></html>
"""
