"""Exporters, one interface as hyperfine has them: each format is one module with one class whose
``serialize`` turns the results into bytes, and ``FORMATS`` below is the one table that names
them. Adding a format is a new module here and one line in the table.

Summary formats (``export --format``, and ``run --json`` / the terminal table) read the records;
the compare formats read a comparison of two result sets. Kept light: the CLI reads the table's
names before ``--help`` answers, so each exporter is imported only when chosen.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from harness.errors import ResultsError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from harness.results.compare import CompareResult
    from harness.results.gate import GateResult


@dataclass(frozen=True)
class ExportData:
    """What an exporter reads: every record as a frame (``results.summary.to_frame``), the
    speed ratios' baseline, and for compare's formats the comparison, the sides' names and the
    gate's verdict."""

    frame: pd.DataFrame
    baseline: str | None = None
    comparison: CompareResult | None = None
    names: tuple[str, str] = ("A", "B")
    gate: GateResult | None = None  # compare --fail-if-slower's verdict, when it was asked


class Exporter(Protocol):
    def serialize(self, data: ExportData) -> bytes: ...


# name → (module:Class, what it reads: "summary" or "compare")
FORMATS: dict[str, tuple[str, str]] = {
    "json": ("harness.export.json_summary:JsonExporter", "summary"),
    "csv": ("harness.export.csv_summary:CsvExporter", "summary"),
    "markdown": ("harness.export.markdown_summary:MarkdownExporter", "summary"),
    "pyperf": ("harness.export.pyperf_suite:PyperfExporter", "summary"),
    "table": ("harness.export.terminal_table:TableExporter", "summary"),
    "compare-markdown": ("harness.export.compare_markdown:CompareMarkdownExporter", "compare"),
    "compare-json": ("harness.export.compare_json:CompareJsonExporter", "compare"),
}
SUMMARY_FORMATS = tuple(name for name, (_, reads) in FORMATS.items() if reads == "summary")


def exporter(name: str) -> Exporter:
    """The exporter registered as ``name``."""
    try:
        target, _ = FORMATS[name]
    except KeyError:
        raise ResultsError(
            f"no exporter {name!r}{did_you_mean(name, FORMATS)} formats: {', '.join(FORMATS)}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def export(name: str, data: ExportData) -> bytes:
    return exporter(name).serialize(data)
