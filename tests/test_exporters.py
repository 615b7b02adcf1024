"""One exporter interface: every format in the table serializes, and a new one is a module plus
one table entry."""

from __future__ import annotations

import io
import json
import sys

import pandas as pd
import pytest

from harness import export
from harness.commands import execute
from harness.errors import ResultsError
from harness.export import FORMATS, ExportData
from harness.requests import ExportRequest
from harness.results.compare import compare
from harness.results.model import RunRecord
from harness.results.summary import to_frame
from tests.helpers import first_html_table, make_record, make_session


def _frame():
    raw = [make_record("numpy", t, i) for i, t in enumerate((1.0, 1.1, 1.2))]
    raw += [make_record("rust", t, i) for i, t in enumerate((0.5, 0.55, 0.6))]
    return to_frame([RunRecord.from_json(r) for r in raw])


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_in_the_table_serializes_to_bytes(name):
    frame = _frame()
    data = ExportData(frame, comparison=compare(frame, frame), names=("a", "b"))
    payload = export.export(name, data)
    assert isinstance(payload, bytes) and payload
    text = payload.decode()
    assert "\x1b" not in text  # no terminal control characters in any file format
    if name != "compare-json":  # compare's JSON names backends inside keys, checked below
        assert "numpy" in text and "rust" in text


def test_the_summary_formats_agree_on_the_medians():
    data = ExportData(_frame())
    rows = {row["key"]["backend"]: row for row in json.loads(export.export("json", data))}
    assert rows["numpy"]["train_time_median_s"] == pytest.approx(1.1)
    csv = pd.read_csv(io.BytesIO(export.export("csv", data))).set_index("backend")
    assert csv.loc["rust", "train_time_median_s"] == pytest.approx(0.55)
    table = export.export("table", data).decode()
    assert "1.10" in table and "0.55" in table  # the terminal table's "time s" column


def test_compare_formats_need_a_comparison():
    with pytest.raises(ValueError, match=r"needs ExportData\.comparison"):
        export.export("compare-json", ExportData(_frame()))


def test_an_unknown_format_is_one_line():
    with pytest.raises(ResultsError, match="no exporter 'tsv'; formats: json, csv"):
        export.exporter("tsv")


def test_a_new_format_is_one_module_and_one_table_entry(tmp_path, monkeypatch, capsys):
    (tmp_path / "tsv_summary.py").write_text(
        "from harness.export import ExportData\n"
        "from harness.export.rows import flat_summary\n\n\n"
        "class TsvExporter:\n"
        "    def serialize(self, data: ExportData) -> bytes:\n"
        "        return flat_summary(data.frame).to_csv(sep='\\t', index=False).encode()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(FORMATS, "tsv", ("tsv_summary:TsvExporter", "summary"))
    make_session(tmp_path / "r", "s", [make_record("numpy", 1.0, 0)])
    assert execute(ExportRequest(sessions=("s",), format="tsv", results_dir=tmp_path / "r")) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "backend" in header.split("\t") and "train_time_median_s" in header.split("\t")
    sys.modules.pop("tsv_summary", None)


def _pipe_rows(text: str) -> list[list[str]]:
    """The cells of a Markdown pipe table, header first, the rule line dropped."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in rows if "---" not in line]


def test_every_renderer_draws_the_one_row_model(tmp_path):
    """Terminal, report.md, index.html and every export show the same columns under the same
    headings with the same text; the terminal shows the first screen's columns of them."""
    from harness.cli import main
    from harness.export import columns
    from harness.export.rows import summary_table

    raw = [make_record("numpy", t, i) for i, t in enumerate((1.0, 1.1, 1.2))]
    raw += [make_record("rust", t, i) for i, t in enumerate((0.5, 0.55, 0.6))]
    make_session(tmp_path / "results", "s", raw)
    frame = to_frame([RunRecord.from_json(r) for r in raw])
    model = columns.cells(summary_table(frame))
    assert model.headings[:3] == ["backend", "threads", "train time s"]

    out = tmp_path / "report"
    assert main(["report", "--results-dir", str(tmp_path / "results"), "--out", str(out)]) == 0
    report = (out / "report.md").read_text().split("## Comparison")[1].split("\n- ")[0]
    assert _pipe_rows(report) == [model.headings, *model.rows]
    exported = _pipe_rows(export.export("markdown", ExportData(frame)).decode())
    assert exported == [model.headings, *model.rows]
    assert first_html_table((out / "index.html").read_text()) == [model.headings, *model.rows]

    first = columns.cells(summary_table(frame), first_screen_only=True)
    assert set(first.headings) < set(model.headings)
    table = export.export("table", ExportData(frame)).decode()
    header = next(line for line in table.splitlines() if "backend" in line)
    assert [h.strip() for h in header.strip("┃ ").split("┃")] == first.headings
    rust = next(line for line in table.splitlines() if line.startswith("│ rust"))
    assert [c.strip() for c in rust.strip("│ ").split("│")] == first.rows[0]

    # Scripts get every column's fields, whether or not people see the column here.
    (record,) = [
        r
        for r in json.loads(export.export("json", ExportData(frame)))
        if r["key"]["backend"] == "rust"
    ]
    for column in columns.COLUMNS:
        assert set(column.fields(next(summary_table(frame).itertuples()))) <= set(record)
    assert record["executed_gflops"] is None and record["speedup_min_detectable"] is not None
