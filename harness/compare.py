"""Compare two result sets: per backend and thread count, the ratio of median training times with
a Mann–Whitney U test, accuracy deltas, and a plain verdict.

With 3 repeats a side the smallest two-sided p-value Mann–Whitney U can give is 0.1, so nothing
is called significant; use 4 or more repeats per side (p can then reach 0.029).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from scipy.stats import mannwhitneyu

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    backend: str
    threads: str
    runs_a: int
    runs_b: int
    median_a_s: float
    median_b_s: float
    ratio_b_over_a: float
    p_value: float
    verdict: str  # "faster", "slower" or "no significant change" (for B against A)
    test_acc_delta: float
    train_acc_delta: float

    def to_json(self) -> dict:
        return asdict(self)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> list[Comparison]:
    results = []
    ok_a, ok_b = a[a["status"] == "ok"], b[b["status"] == "ok"]
    groups_b = dict(iter(ok_b.groupby(["backend", "threads"])))
    for key, group_a in ok_a.groupby(["backend", "threads"], sort=True):
        group_b = groups_b.get(key)
        if group_b is None:
            continue
        times_a, times_b = group_a["train_time_s"].dropna(), group_b["train_time_s"].dropna()
        if times_a.empty or times_b.empty:
            continue
        p_value = float(mannwhitneyu(times_a, times_b, alternative="two-sided").pvalue)
        ratio = times_b.median() / times_a.median()
        if p_value < ALPHA:
            verdict = "slower" if ratio > 1 else "faster"
        else:
            verdict = "no significant change"
        results.append(
            Comparison(
                backend=str(key[0]),
                threads=str(key[1]),
                runs_a=len(times_a),
                runs_b=len(times_b),
                median_a_s=float(times_a.median()),
                median_b_s=float(times_b.median()),
                ratio_b_over_a=float(ratio),
                p_value=p_value,
                verdict=verdict,
                test_acc_delta=float(group_b["test_acc"].median() - group_a["test_acc"].median()),
                train_acc_delta=float(
                    group_b["train_acc"].median() - group_a["train_acc"].median()
                ),
            )
        )
    return results


def to_markdown(results: list[Comparison], name_a: str, name_b: str) -> str:
    if not results:
        return f"No backend and thread count has ok runs in both {name_a} and {name_b}."
    table = pd.DataFrame(
        {
            "backend": [r.backend for r in results],
            "threads": [r.threads for r in results],
            "A median": [f"{r.median_a_s:.3f} s (n={r.runs_a})" for r in results],
            "B median": [f"{r.median_b_s:.3f} s (n={r.runs_b})" for r in results],
            "B / A": [f"{r.ratio_b_over_a:.3f}" for r in results],
            "p (Mann–Whitney U)": [f"{r.p_value:.3g}" for r in results],
            "B is": [r.verdict for r in results],
            "Δ test acc": [f"{r.test_acc_delta:+.4f}" for r in results],
            "Δ train acc": [f"{r.train_acc_delta:+.4f}" for r in results],
        }
    )
    return f"A = {name_a}, B = {name_b}\n\n{table.to_markdown(index=False)}"
