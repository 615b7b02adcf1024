"""Compare two result sets key by key: the B/A ratio of median training times with its 95 %
bootstrap interval, a verdict drawn from that interval, and accuracy deltas. Only equal
comparability keys are paired; the rest is listed with the reason it could not be paired.

Verdicts (harness.results.stats): "faster" or "slower" when the interval excludes 1, "same" when
it lies within ±2 %, "inconclusive" otherwise or with fewer than 3 repeats a side. The
Mann–Whitney U p-value is kept in the JSON for scripts that read it; it decides nothing (with 3
repeats a side it cannot go below 0.1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

from harness.results.key import (
    RunKey,
    machine_differences,
    spec_differences,
    spec_label,
    threads_text,
)
from harness.results.stats import (
    min_detectable,
    ratio_of_medians,
    verdict,
)
from harness.results.summary import groups, is_busy, matched
from harness.results.suspect import flag_lines


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
    verdict: str  # "faster", "slower", "same" or "inconclusive" (for B against A)
    test_acc_delta: float
    train_acc_delta: float
    spec: str = ""  # the spec values that tell this pair apart from others ("" if one spec)
    key: dict | None = None
    ratio: float = float("nan")  # = ratio_b_over_a
    ci_low: float = float("nan")  # 95 % bootstrap interval of the ratio
    ci_high: float = float("nan")
    n_a: int = 0
    n_b: int = 0
    # Ok runs whose time is suspect on each side, and why (one line per kind).
    flagged_a: int = 0
    flagged_b: int = 0
    flags: tuple[str, ...] = ()
    # The smallest slowdown its repeats' spread could tell from noise; None: none at all.
    min_detectable: float | None = None
    # Ok runs that started while other processes kept the CPUs busy (suspect times).
    busy_a: int = 0
    busy_b: int = 0

    def to_json(self) -> dict:
        """JSON has no NaN: a ratio or bound that could not be had is null."""
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class Unpaired:
    side: str  # "A" or "B": where the runs are
    backend: str
    threads: str
    spec: str
    reason: str
    # The key parts in which its nearest runs on the other side differ ("machine", "spec", …);
    # empty when the other side has no runs of that backend at that thread count.
    differs: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CompareResult:
    pairs: list[Comparison]
    unpaired: list[Unpaired]

    def to_json(self) -> dict:
        return {
            "pairs": [p.to_json() for p in self.pairs],
            "unpaired": [u.to_json() for u in self.unpaired],
        }


def _ok_groups(frame: pd.DataFrame) -> dict[RunKey, pd.DataFrame]:
    ok = frame[(frame["status"] == "ok")] if not frame.empty else frame
    return {key: group for key, group in groups(ok) if group["train_time_s"].notna().any()}


def _nearest(key: RunKey, other: dict[RunKey, pd.DataFrame]) -> list[RunKey]:
    return [k for k in other if (k.backend, k.threads) == (key.backend, key.threads)]


def _differing(key: RunKey, near: list[RunKey]) -> tuple[str, ...]:
    """The key parts in which ``near`` (same backend and threads) differ from ``key``."""
    names = {"spec_hash": "spec", "variant": "sweep point", "machine": "machine"}
    differing = {
        names.get(f.name, f.name)
        for k in near
        for f in fields(RunKey)
        if getattr(k, f.name) != getattr(key, f.name)
    }
    if "sweep point" in differing:
        differing.discard("spec")
    return tuple(sorted(differing))


def _why_unpaired(
    key: RunKey,
    other: dict[RunKey, pd.DataFrame],
    other_side: str,
    labels: dict[RunKey, str],
    env: dict[str, Any],
) -> str:
    """What differs from the nearest keys on the other side (same backend and threads)."""
    near = _nearest(key, other)
    if not near:
        return f"no ok {key.backend} runs at {threads_text(key.threads)} in {other_side}"
    differing = set(_differing(key, near))
    detail = ""
    if differing & {"spec", "sweep point"}:
        detail = f" ({labels[key]} vs {', '.join(sorted({labels[k] for k in near}))})"
    if "algorithm" in differing:
        # One name, other work (the sparse kernels on one CPU, dense on another): no ratio.
        theirs = ", ".join(sorted({k.algorithm for k in near}))
        detail += f" ({key.algorithm} on this side, {theirs} in {other_side})"
    if "machine" in differing:
        detail += _machine_detail(env, [_env_of(other[k]) for k in near])
    return (
        f"{other_side} has {key.backend} at {threads_text(key.threads)} only with another "
        + ", ".join(sorted(differing))
        + detail
    )


def _env_of(group: pd.DataFrame) -> dict[str, Any]:
    env = group["env"].iloc[0]
    return env if isinstance(env, dict) else {}


def _machine_detail(env: dict[str, Any], others: list[dict[str, Any]]) -> str:
    """Which machine fields differ, and the --match that would pair the runs anyway."""
    fields_differing = sorted({f for other in others for f in machine_differences(env, other)})
    if set(fields_differing) <= {"hostname", "machine_id"}:
        hint = "--match cpu pairs machines of one CPU model, core count and memory"
    else:
        hint = "--match any pairs them anyway, comparing the machines as well as the runs"
    return f" ({', '.join(fields_differing)} differ; {hint})"


def compare(a: pd.DataFrame, b: pd.DataFrame, match: str = "exact") -> CompareResult:
    """Pair A's and B's keys; ``match`` says how much of the machine must agree (key.py)."""
    from scipy.stats import mannwhitneyu  # SciPy loads only for a comparison (~0.6 s)

    groups_a, groups_b = _ok_groups(matched(a, match)), _ok_groups(matched(b, match))
    specs = [*a["spec"], *b["spec"]] if not (a.empty and b.empty) else []
    differing = spec_differences(s for s in specs if isinstance(s, dict))

    def label(group: pd.DataFrame) -> str:
        return spec_label(group["spec"].iloc[0], differing) if differing else ""

    pairs = []
    for key, group_a in groups_a.items():
        group_b = groups_b.get(key)
        if group_b is None:
            continue
        times_a, times_b = group_a["train_time_s"].dropna(), group_b["train_time_s"].dropna()
        p_value = float(mannwhitneyu(times_a, times_b, alternative="two-sided").pvalue)
        ratio = ratio_of_medians(list(times_b), list(times_a))
        pairs.append(
            Comparison(
                backend=key.backend,
                threads=key.threads,
                runs_a=len(times_a),
                runs_b=len(times_b),
                median_a_s=float(times_a.median()),
                median_b_s=float(times_b.median()),
                ratio_b_over_a=ratio.value,
                p_value=p_value,
                verdict=verdict(ratio),
                test_acc_delta=float(group_b["test_acc"].median() - group_a["test_acc"].median()),
                train_acc_delta=float(
                    group_b["train_acc"].median() - group_a["train_acc"].median()
                ),
                spec=label(group_a),
                key=asdict(key),
                ratio=ratio.value,
                ci_low=ratio.low,
                ci_high=ratio.high,
                n_a=ratio.n_under,
                n_b=ratio.n_over,
                flagged_a=int(sum(bool(f) for f in group_a["flagged"])),
                flagged_b=int(sum(bool(f) for f in group_b["flagged"])),
                flags=tuple(flag_lines([*group_a["flagged"], *group_b["flagged"]])),
                min_detectable=min_detectable(ratio),
                busy_a=int(sum(is_busy(b) for b in group_a["cpu_busy_before"])),
                busy_b=int(sum(is_busy(b) for b in group_b["cpu_busy_before"])),
            )
        )
    labels = {key: label(group) for key, group in (*groups_a.items(), *groups_b.items())}
    unpaired = [
        Unpaired(
            side,
            key.backend,
            key.threads,
            labels[key],
            _why_unpaired(key, other, o, labels, _env_of(mine[key])),
            _differing(key, _nearest(key, other)),
        )
        for side, mine, other, o in (("A", groups_a, groups_b, "B"), ("B", groups_b, groups_a, "A"))
        for key in mine
        if key not in other
    ]
    return CompareResult(pairs, unpaired)


def slower_than(pairs: list[Comparison], percent: float) -> list[Comparison]:
    """Pairs where B is slower than A, surely (the verdict) and by more than ``percent``."""
    return [p for p in pairs if p.verdict == "slower" and p.ratio > 1 + percent / 100]


def pair_name(pair: Comparison) -> str:
    return f"{pair.backend} @{pair.threads}" + (f" [{pair.spec}]" if pair.spec else "")


def describe(unpaired: Unpaired) -> str:
    spec = f" [{unpaired.spec}]" if unpaired.spec else ""
    return (
        f"not paired: only in {unpaired.side}: {unpaired.backend} @{unpaired.threads}{spec}: "
        f"{unpaired.reason}"
    )
