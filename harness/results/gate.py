"""``compare --fail-if-slower PCT``: the CI gate over a comparison, failing closed.

It passes only when every key of A with ok runs is paired in B, none is slower by more than PCT %
and the interval rules that out, none lost accuracy, and no run of B failed, was flagged or
started on a busy machine. Exit 3 when its only reasons are that it cannot tell; 1 otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from harness.results.compare import CompareResult, Comparison, pair_name, slower_than
from harness.results.stats import MIN_REPEATS, Ratio, repeats_to_tell
from harness.results.summary import groups, matched
from harness.results.suspect import BUSY_ABOVE


@dataclass(frozen=True)
class GateFailure:
    # "slower", "cannot tell", "missing", "not ok in B", "accuracy", "flagged", "busy",
    # "same session" or "nothing paired"
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"gate: {self.reason}: {self.detail}"


@dataclass(frozen=True)
class GateResult:
    """What ``--fail-if-slower`` decided, and with which settings (for ``--json``)."""

    percent: float
    accuracy_tolerance: float
    match: str
    failures: list[GateFailure]

    @property
    def exit_status(self) -> int:
        """0 passed; 3 when the only reason is that it cannot tell; 1 for anything else."""
        if not self.failures:
            return 0
        return 3 if all(f.reason == "cannot tell" for f in self.failures) else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": not self.failures,
            "exit_status": self.exit_status,
            "fail_if_slower_percent": self.percent,
            "accuracy_tolerance": self.accuracy_tolerance,
            "match": self.match,
            "failures": [asdict(failure) for failure in self.failures],
        }


def gate(
    result: CompareResult,
    b: pd.DataFrame,
    percent: float,
    accuracy_tolerance: float,
    match: str = "exact",
) -> list[GateFailure]:
    """Why B may not pass for A; [] only when every key of A with ok runs is paired in B, none
    is slower by more than ``percent`` %, and none lost more test accuracy than the tolerance.

    Fails closed: a gate with nothing to compare, or a backend that fails in B, does not pass.
    """
    slower = slower_than(result.pairs, percent)
    failures = [
        GateFailure(
            "slower",
            f"{pair_name(p)}: B/A {p.ratio:.3f} [{p.ci_low:.3f}–{p.ci_high:.3f}], more than "
            f"{percent:g} % slower",
        )
        for p in slower
    ]
    failures += [cannot_tell(p, percent) for p in result.pairs if p not in slower]
    failures = [f for f in failures if f is not None]
    failures += [
        GateFailure(
            "accuracy",
            f"{pair_name(p)}: test accuracy {p.test_acc_delta:+.4f} against A, more than the "
            f"{accuracy_tolerance:g} allowed",
        )
        for p in result.pairs
        if p.test_acc_delta < -accuracy_tolerance
    ]
    failures += [
        GateFailure(
            "flagged",
            f"{pair_name(p)}: {p.flagged_b} of B's {p.runs_b} ok runs are flagged, so their "
            f"time is suspect: {'; '.join(p.flags)}",
        )
        for p in result.pairs
        if p.flagged_b
    ]
    failures += [
        GateFailure(
            "busy",
            f"{pair_name(p)}: {p.busy_b} of B's {p.runs_b} ok runs started while other "
            f"processes kept more than {BUSY_ABOVE:.0%} of the CPUs busy: their times are suspect",
        )
        for p in result.pairs
        if p.busy_b
    ]
    statuses = {key: group["status"] for key, group in groups(matched(b, match))}
    for p in result.pairs:
        in_b = next((v for k, v in statuses.items() if asdict(k) == p.key), None)
        bad = in_b[in_b != "ok"] if in_b is not None else []
        if len(bad):
            counts = ", ".join(f"{n} {status}" for status, n in sorted(bad.value_counts().items()))
            failures.append(
                GateFailure(
                    "not ok in B",
                    f"{pair_name(p)}: {len(bad)} of B's {len(in_b)} runs did not finish ok "
                    f"({counts})",
                )
            )
    for unpaired in result.unpaired:
        if unpaired.side != "A":
            continue
        in_b = next(
            (
                status
                for key, status in statuses.items()
                if (key.backend, key.threads) == (unpaired.backend, unpaired.threads)
            ),
            None,
        )
        what = (
            "B's runs of it: "
            + ", ".join(f"{n} {status}" for status, n in sorted(in_b.value_counts().items()))
            + ", none ok"
            if in_b is not None and not (in_b == "ok").any()
            else unpaired.reason
        )
        name = f"{unpaired.backend} @{unpaired.threads}" + (
            f" [{unpaired.spec}]" if unpaired.spec else ""
        )
        failures.append(GateFailure("missing", f"{name}: no ok runs in B to compare ({what})"))
    if not result.pairs:
        # --match pairs other machines only: never the answer when the spec or flags differ.
        other_machine = any("machine" in u.differs for u in result.unpaired)
        hint = "; runs of other machines pair with --match cpu or any" if other_machine else ""
        failures.append(
            GateFailure(
                "nothing paired",
                "no comparability key (spec, sweep point, backend, threads, machine, flags) has "
                f"ok runs in both A and B, so there is nothing to gate on (each missing line "
                f"says what differed{hint})",
            )
        )
    return failures


def cannot_tell(pair: Comparison, percent: float) -> GateFailure | None:
    """Why the pair cannot show it is within ``percent`` % of A; None when it can."""
    name = pair_name(pair)
    if min(pair.n_a, pair.n_b) < MIN_REPEATS or not math.isfinite(pair.ci_high):
        return GateFailure(
            "cannot tell",
            f"{name}: B/A {pair.ratio:.3f} from {pair.n_a} and {pair.n_b} repeats; at least "
            f"{MIN_REPEATS} a side (5 or more on a noisy machine) before a gate can tell",
        )
    bound = 1 + percent / 100
    if pair.ci_high <= bound:
        return None
    ratio = Ratio(pair.ratio, pair.ci_low, pair.ci_high, pair.n_b, pair.n_a)
    needed = repeats_to_tell(ratio, bound)
    seen = pair.min_detectable
    return GateFailure(
        "cannot tell",
        f"{name}: B/A {pair.ratio:.3f} [{pair.ci_low:.3f}–{pair.ci_high:.3f}] could not rule out "
        f"a slowdown of more than {percent:g} % (its repeats could see "
        + (f"{seen:.0%} or more" if seen is not None else "no change")
        + "); "
        + (
            f"about {needed} repeats a side would tell"
            if needed is not None
            else "the ratio sits on the threshold: no number of repeats settles it"
        ),
    )


def passed_line(result: CompareResult, percent: float, accuracy_tolerance: float) -> str:
    """What a passing gate checked, in one line."""
    pairs = len(result.pairs)
    return (
        f"gate passed: {pairs} pair{'s' if pairs != 1 else ''}, none slower by more than "
        f"{percent:g} % (every interval's upper end within +{percent:g} %), test accuracy within "
        f"{accuracy_tolerance:g}, every run of A's keys ok and unflagged in B"
    )
