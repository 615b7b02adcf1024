"""Write a report directory: report.md, charts (PNG + SVG) and index.html, from stored runs only.

Nothing is re-run. Every file is rendered into a scratch directory first and moved into place
only when all of them exist, so a failure never leaves half a report.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import ResultsError
from harness.report import charts
from harness.report.history_chart import render_history, spans_commits
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.requests import Target
from harness.results.history import history
from harness.results.store import Results
from harness.results.summary import Summarized, summarize, to_frame
from harness.runner.lock import folder_lock


def write_report(
    results: Results,
    out_dir: Path,
    baseline: str | None = None,
    target: Target | None = None,
    summary: Summarized | None = None,
) -> list[Path]:
    """Render everything into a scratch directory, then move the files into ``out_dir``;
    times to accuracy against ``target`` (None: the runs' own, else the default). ``summary``:
    the runs' frame and its summary when the caller has them, so they are made once."""
    if not results.records:
        damaged = f"; {len(results.unreadable)} unreadable" if results.unreadable else ""
        raise ResultsError(
            f"no run records in {', '.join(str(s) for s in results.sessions)}{damaged}"
        )
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=out_dir, prefix=".report-"))
    except OSError as exc:
        _remove_if_empty(out_dir, created)
        raise ResultsError(_cannot_write(out_dir, exc)) from None
    try:
        if summary is None:
            frame = to_frame(results.records, target)
            summary = Summarized(frame, summarize(frame, baseline))
        return _render(results, out_dir, scratch, baseline, summary)
    except OSError as exc:  # a full disk, say, part-way through a chart
        shutil.rmtree(scratch, ignore_errors=True)
        _remove_if_empty(out_dir, created)
        raise ResultsError(_cannot_write(out_dir, exc)) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _cannot_write(out_dir: Path, exc: OSError) -> str:
    return (
        f"cannot write the report to {out_dir}: {exc.strerror or exc}; free space there or "
        "choose another folder with --out"
    )


def _remove_if_empty(out_dir: Path, created: bool) -> None:
    if created:
        with contextlib.suppress(OSError):
            out_dir.rmdir()


def _render(
    results: Results, out_dir: Path, scratch: Path, baseline: str | None, summary: Summarized
) -> list[Path]:
    """Every file into ``scratch``, then each moved into ``out_dir``."""
    frame, rows = summary
    rendered = charts.render_all(frame, scratch)
    lines = history(frame)
    if spans_commits(lines):
        rendered["history"] = render_history(lines, scratch)
    markdown = render_markdown(results, frame, list(rendered), baseline, rows)
    (scratch / "report.md").write_text(markdown)
    pngs = {name: paths[0] for name, paths in rendered.items()}
    (scratch / "index.html").write_text(render_html(results, frame, pngs, baseline, rows))
    written = []
    # Two reports into one folder: each moves all of its files in before the other starts, so
    # the folder never ends up with one's report.md beside the other's index.html.
    with folder_lock(out_dir, wait=True):
        for path in sorted(scratch.iterdir()):
            os.replace(path, out_dir / path.name)
            written.append(out_dir / path.name)
    return written
