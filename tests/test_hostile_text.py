"""Text a backend, a program or a record supplies is inert wherever it is rendered: it cannot
split a Markdown table, run in a page, become a spreadsheet formula or drive a terminal."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from harness import export
from harness.cli import main
from harness.export import ExportData
from harness.results.compare import compare
from harness.results.model import RunRecord
from harness.results.summary import to_frame
from tests.helpers import make_record, make_session

HOSTILE = "=HYPERLINK(1) | <script>alert(1)</script> `tick` \x1b[2J\u202e\n## injected | x"


def _records() -> list[dict]:
    ok = [
        make_record(
            "numpy",
            1.0 + r / 10,
            r,
            build_info={"note": HOSTILE},
            backend_version=HOSTILE,
            skipped_work=HOSTILE,
            algorithm="sparse",
            flagged=[HOSTILE],
            env={"hostname": HOSTILE, "cpu_model": HOSTILE},
        )
        for r in range(3)
    ]
    failed = make_record("numpy", 1.0, 3, status="failed", error=HOSTILE)
    failed.update(env={"hostname": HOSTILE, "cpu_model": HOSTILE}, algorithm="sparse")
    return [*ok, failed]


def _tables_are_whole(markdown: str) -> None:
    """Every row of every pipe table has as many cells as its header; no line was injected."""
    cells = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            cells = None
            continue
        count = len(re.split(r"(?<!\\)\|", line))
        cells = count if cells is None else cells
        assert count == cells, line
    assert "\n## injected" not in markdown and "<script" not in markdown
    assert "\x1b" not in markdown and "\u202e" not in markdown


def test_hostile_text_is_inert_in_every_renderer(tmp_path, capsys):
    root = tmp_path / "results"
    make_session(root, "s", _records())
    out = tmp_path / "report"
    assert main(["report", "--results-dir", str(root), "--out", str(out)]) == 0
    terminal = capsys.readouterr().out
    assert "\x1b" not in terminal and "\u202e" not in terminal and "\\x1b" in terminal

    report = (out / "report.md").read_text()
    _tables_are_whole(report)
    assert "&lt;script&gt;" in report and "\\|" in report  # shown, as text
    page = (out / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page

    frame = to_frame([RunRecord.from_json(r) for r in _records()])
    data = ExportData(frame, comparison=compare(frame, frame), names=("a", "b"))
    _tables_are_whole(export.export("markdown", data).decode())
    _tables_are_whole(export.export("compare-markdown", data).decode())
    table = export.export("table", data).decode()
    assert "\x1b" not in table and "\u202e" not in table
    rows = list(csv.reader(io.StringIO(export.export("csv", data).decode())))
    texts = [cell for row in rows for cell in row]
    assert not [c for c in texts if c[:1] in ("=", "+", "@") or re.match(r"-[^0-9.]", c)]
    assert any(c.startswith("'=HYPERLINK") for c in texts)
    # JSON is data, not a rendering: the text comes through as it was, for scripts to judge.
    (row,) = json.loads(export.export("json", data))
    assert row["flags"] == [HOSTILE] and row["skipped_work"] == HOSTILE


@pytest.mark.parametrize("command", ["compare", "history", "export"])
def test_hostile_text_reaches_no_terminal_raw(tmp_path, capsys, command):
    root = tmp_path / "results"
    make_session(root, "a", _records())
    make_session(root, "b", _records())
    args = {
        "compare": ["compare", "a", "b"],
        "history": ["history"],
        "export": ["export", "--format", "table"],
    }[command]
    main([*args, "--results-dir", str(root)])
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert "\x1b" not in text and "\u202e" not in text


def test_a_backends_error_reaches_the_terminal_inert(tmp_path, idx_dir, capsys):
    from tests.helpers import fake, run

    assert run(idx_dir, tmp_path, *fake("RaisesHostileText")) == 1
    err = capsys.readouterr().err
    assert "\\x1b[2J" in err and "\x1b[2J" not in err and "\u202e" not in err
    assert (
        main(["report", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "o")])
        == 0
    )
    _tables_are_whole((tmp_path / "o" / "report.md").read_text())
