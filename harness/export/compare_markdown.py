"""compare's default output: the pairs as a Markdown table, then what was not paired and why."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from harness.export import ExportData
from harness.export.escape import markdown, markdown_table
from harness.results.compare import CompareResult, Comparison, describe


def comparison_of(data: ExportData) -> CompareResult:
    if data.comparison is None:
        raise ValueError("a compare format needs ExportData.comparison")
    return data.comparison


def _ratio_text(pair: Comparison) -> str:
    interval = (
        f" [{pair.ci_low:.3f}–{pair.ci_high:.3f}]"
        if math.isfinite(pair.ci_low) and math.isfinite(pair.ci_high)
        else " [too few repeats]"
    )
    return f"{pair.ratio_b_over_a:.3f}{interval}"


class CompareMarkdownExporter:
    def serialize(self, data: ExportData) -> bytes:
        result = comparison_of(data)
        name_a, name_b = data.names
        lines = [markdown(f"A = {name_a}, B = {name_b}"), ""]
        pairs = result.pairs
        if not pairs:
            lines.append(
                "No comparability key (spec, sweep point, backend, threads, machine, flags) "
                "has ok runs in both A and B."
            )
        else:
            show_spec = any(p.spec for p in pairs)
            table = pd.DataFrame(
                {
                    "backend": [p.backend for p in pairs],
                    "threads": [p.threads for p in pairs],
                    **({"spec": [p.spec for p in pairs]} if show_spec else {}),
                    "A median": [f"{p.median_a_s:.3f} s (n={p.runs_a})" for p in pairs],
                    "B median": [f"{p.median_b_s:.3f} s (n={p.runs_b})" for p in pairs],
                    "B / A [95 % CI]": [_ratio_text(p) for p in pairs],
                    "B is": [p.verdict for p in pairs],
                    # The smallest slowdown the repeats' spread could tell from noise.
                    "could see": [
                        "–" if p.min_detectable is None else f"≥ {p.min_detectable:.1%}"
                        for p in pairs
                    ],
                    "Δ test acc": [f"{p.test_acc_delta:+.4f}" for p in pairs],
                    "Δ train acc": [f"{p.train_acc_delta:+.4f}" for p in pairs],
                }
            )
            lines.append(markdown_table(table))
        lines += _suspect_runs(
            pairs,
            "Flagged (ok runs whose time is suspect; no gate passes them):",
            lambda p: (p.flagged_a, p.flagged_b, f": {'; '.join(p.flags)}"),
        )
        lines += _suspect_runs(
            pairs,
            "Started on a busy machine (suspect times; no gate passes B's):",
            lambda p: (p.busy_a, p.busy_b, ""),
        )
        if result.unpaired:
            lines += ["", "Not paired (only runs with equal comparability keys are compared):", ""]
            lines += [f"- {markdown(describe(u))}" for u in result.unpaired]
        return ("\n".join(lines) + "\n").encode()


def _suspect_runs(
    pairs: list[Comparison], title: str, counts: Callable[[Comparison], tuple[int, int, str]]
) -> list[str]:
    """A titled list of the pairs with suspect runs on either side: how many of each side's."""
    lines = []
    for p in pairs:
        a, b, why = counts(p)
        if a or b:
            lines.append(
                "- "
                + markdown(
                    f"{p.backend} @{p.threads}: A {a} of {p.runs_a}, B {b} of {p.runs_b}{why}"
                )
            )
    return ["", title, "", *lines] if lines else []
