"""Ratios of median times with 95 % bootstrap confidence intervals, and verdicts drawn from them.

A ratio without its uncertainty invites reading noise as a result. The interval is a percentile
bootstrap (scipy.stats.bootstrap) of the ratio of the two medians, resampling each side's
repeats independently, with a fixed seed so the same records always give the same interval.
With few repeats it is wide, and the verdict says so rather than guessing.

SciPy is imported only when an interval is computed: it costs most of a second, and a command
over single runs (every ``run --repeats 1``) never needs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 4000
SAME_WITHIN = 0.02  # a ratio whose whole interval lies within ±2 % of 1 is "same"
MIN_REPEATS = 3  # fewer on either side: "inconclusive", whatever the interval says


@dataclass(frozen=True)
class Ratio:
    """``over / under`` of median times, with its 95 % interval (NaN when it cannot be had)."""

    value: float
    low: float
    high: float
    n_over: int
    n_under: int

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def text(self, suffix: str = "×") -> str:
        """``1.38× [1.31–1.45]``; without an interval just ``1.38×``."""
        if not math.isfinite(self.value):
            return "–"
        interval = f" [{self.low:.2f}–{self.high:.2f}]" if self.has_interval else ""
        return f"{self.value:.2f}{suffix}{interval}"


def _median_ratio(over, under, axis=-1):
    return np.median(over, axis=axis) / np.median(under, axis=axis)


def ratio_of_medians(over: Sequence[float], under: Sequence[float]) -> Ratio:
    """median(over) / median(under) and its bootstrap interval."""
    over_a = np.asarray(over, dtype=float)
    under_a = np.asarray(under, dtype=float)
    if not len(over_a) or not len(under_a) or np.median(under_a) == 0:
        return Ratio(math.nan, math.nan, math.nan, len(over_a), len(under_a))
    value = float(_median_ratio(over_a, under_a))
    low = high = math.nan
    if len(over_a) > 1 and len(under_a) > 1:
        if np.ptp(over_a) == 0 and np.ptp(under_a) == 0:
            low = high = value  # no spread at all: every resample gives the same ratio
        else:
            from scipy.stats import bootstrap

            result = bootstrap(
                (over_a, under_a),
                _median_ratio,
                vectorized=True,
                paired=False,
                confidence_level=CONFIDENCE,
                n_resamples=RESAMPLES,
                method="percentile",
                rng=np.random.default_rng(0),
            )
            low, high = map(
                float, (result.confidence_interval.low, result.confidence_interval.high)
            )
    return Ratio(value, low, high, len(over_a), len(under_a))


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The median and its 95 % percentile-bootstrap interval (NaN bounds under 2 values)."""
    data = np.asarray(values, dtype=float)
    if not len(data):
        return math.nan, math.nan, math.nan
    median = float(np.median(data))
    if len(data) < 2:
        return median, math.nan, math.nan
    if np.ptp(data) == 0:
        return median, median, median
    from scipy.stats import bootstrap

    result = bootstrap(
        (data,),
        np.median,
        vectorized=True,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    return median, float(result.confidence_interval.low), float(result.confidence_interval.high)


def min_detectable(ratio: Ratio) -> float | None:
    """The smallest slowdown (0.08 = 8 %) this comparison's spread lets it tell from noise.

    The interval scales with the ratio, so were the truth 1 + d instead of ``value``, the
    interval's lower end would be (1 + d)·low/value: it passes 1, and the slowdown shows, once
    d > value/low − 1. None when the comparison cannot tell any (too few repeats, no interval).
    """
    if min(ratio.n_over, ratio.n_under) < MIN_REPEATS or not ratio.has_interval:
        return None
    if ratio.low <= 0:
        return None
    return max(ratio.value / ratio.low - 1.0, 0.0)


def repeats_to_tell(ratio: Ratio, bound: float) -> int | None:
    """Roughly how many repeats a side would put ``bound`` outside the interval, the interval's
    half-width shrinking as 1/√n from what ``ratio``'s repeats gave. None: no estimate (no
    interval), or the ratio sits on the bound, where no number of repeats settles it."""
    if not ratio.has_interval:
        return None
    n = min(ratio.n_over, ratio.n_under)
    if ratio.value < bound:  # to pass: the upper end below the bound
        have, need = ratio.high - ratio.value, bound - ratio.value
    else:  # to fail as slower: the lower end above 1
        have, need = ratio.value - ratio.low, ratio.value - 1.0
    if need <= 0:
        return None
    return max(MIN_REPEATS, math.ceil(n * (have / need) ** 2))


def verdict(ratio: Ratio) -> str:
    """For a time ratio B/A: "faster", "slower", "same" or "inconclusive"."""
    if min(ratio.n_over, ratio.n_under) < MIN_REPEATS or not ratio.has_interval:
        return "inconclusive"
    if ratio.high < 1:
        return "faster"
    if ratio.low > 1:
        return "slower"
    if ratio.low >= 1 - SAME_WITHIN and ratio.high <= 1 + SAME_WITHIN:
        return "same"
    return "inconclusive"
