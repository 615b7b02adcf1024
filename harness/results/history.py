"""A backend's speed across sessions: one line per comparability key, one point per session.

Sessions are ordered by the date of the commit they ran (``env.git_commit_date``; the session's
start where a record does not say), then by start time. Each point is the session's median
training time with its 95 % bootstrap interval. A point is flagged as a step change when the
ratio of its median to the median of the sessions before it (back to the previous step) has its
whole 95 % interval above ``1 + threshold`` (slower) or below ``1 - threshold`` (faster): the
first session of a new level is flagged, the ones after it are measured against that level.

Only runs of one key are joined into a line (spec, sweep point, backend, threads, flags and the
machine as ``match`` compares machines): a line never mixes unlike runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.requests import DEFAULT_STEP_THRESHOLD
from harness.results.key import RunKey
from harness.results.stats import Ratio, median_interval, ratio_of_medians
from harness.results.summary import group_labels, groups, matched


@dataclass(frozen=True)
class Point:
    """One session of one line."""

    session: str
    commit: str | None
    commit_date: str | None
    started_at: str | None
    dirty: bool | None
    runs: int
    median_s: float
    low_s: float  # 95 % interval of the median
    high_s: float
    versus_before: Ratio | None  # this median ÷ the level before it; None for the first
    step: str | None = None  # "slower" or "faster" when a step change starts here
    # Whether a step here could have been seen: False for a first point, and where neither an
    # interval nor the spread of at least two earlier runs says what noise is.
    judged: bool = False

    def to_json(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return value if math.isfinite(value) else None

        ratio = self.versus_before
        return {
            "session": self.session,
            "commit": self.commit,
            "commit_date": self.commit_date,
            "started_at": self.started_at,
            "dirty": self.dirty,
            "runs": self.runs,
            "median_s": number(self.median_s),
            "ci_low_s": number(self.low_s),
            "ci_high_s": number(self.high_s),
            "ratio_to_before": None if ratio is None else number(ratio.value),
            "ratio_ci_low": None if ratio is None else number(ratio.low),
            "ratio_ci_high": None if ratio is None else number(ratio.high),
            "step": self.step,
            "judged": self.judged,
        }


@dataclass(frozen=True)
class Line:
    key: RunKey
    label: str  # backend, threads and whatever else tells this line from the others
    points: list[Point] = field(default_factory=list)

    @property
    def commits(self) -> int:
        return len({p.commit for p in self.points})

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key.__dict__,
            "label": self.label,
            "points": [p.to_json() for p in self.points],
        }


def _first(values: pd.Series) -> Any:
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return present[0] if present else None


def _session_facts(runs: pd.DataFrame) -> dict[str, Any]:
    envs = [env for env in runs["env"] if isinstance(env, dict)]
    started = sorted(
        s for s in runs.get("started_at", pd.Series(dtype=object)) if isinstance(s, str)
    )
    return {
        "commit": _first(pd.Series([env.get("git_commit") for env in envs], dtype=object)),
        "commit_date": _first(
            pd.Series([env.get("git_commit_date") for env in envs], dtype=object)
        ),
        "dirty": _first(pd.Series([env.get("git_dirty") for env in envs], dtype=object)),
        "started_at": started[0] if started else None,
    }


def history(
    frame: pd.DataFrame, match: str = "exact", threshold: float = DEFAULT_STEP_THRESHOLD
) -> list[Line]:
    """The lines of every key in ``frame`` (all sessions' records), points in commit order."""
    frame = matched(frame, match)
    ok = frame[(frame["status"] == "ok") & frame["train_time_s"].notna()] if len(frame) else frame
    labels = group_labels(ok) if len(ok) else {}
    lines = []
    for key, runs in groups(ok):
        sessions = []
        for session, session_runs in runs.groupby("session", sort=False):
            facts = _session_facts(session_runs)
            times = [float(t) for t in session_runs["train_time_s"]]
            order = (facts["commit_date"] or facts["started_at"] or "", facts["started_at"] or "")
            sessions.append((order, str(session), facts, times))
        sessions.sort(key=lambda item: item[0])
        points: list[Point] = []
        level: list[float] = []  # the times since the last step
        for _, session, facts, times in sessions:
            median, low, high = median_interval(times)
            ratio = ratio_of_medians(times, level) if level else None
            step, judged = _step(ratio, level, threshold)
            level = list(times) if step else level + times
            points.append(
                Point(session, runs=len(times), median_s=median, low_s=low, high_s=high,
                      versus_before=ratio, step=step, judged=judged, **facts)
            )  # fmt: skip
        lines.append(Line(key, labels.get(key, key.backend), points))
    return lines


# Without an interval, a change counts as a step when it exceeds both the threshold and this
# many noise widths, the noise being the spread of the level's own runs.
NOISE_WIDTHS = 3.0


def _step(ratio: Ratio | None, level: list[float], threshold: float) -> tuple[str | None, bool]:
    """(the step that starts at this point, or None; whether one could have been seen).

    With repeats on both sides, the ratio's 95 % interval decides, as before. With one run a
    session (as a CI job on each commit leaves them), the noise is estimated along the sequence,
    as asv does: from the spread of the runs since the last step (at least two of them)."""
    if ratio is None or not math.isfinite(ratio.value):
        return None, False
    if ratio.has_interval:
        if ratio.low > 1 + threshold:
            return "slower", True
        if ratio.high < 1 - threshold:
            return "faster", True
        return None, True
    if len(level) < 2:
        return None, False
    bound = max(threshold, NOISE_WIDTHS * _relative_noise(level))
    if ratio.value > 1 + bound:
        return "slower", True
    if ratio.value < 1 - bound:
        return "faster", True
    return None, True


def _relative_noise(times: list[float]) -> float:
    """A robust standard deviation of ``times`` over their median (1.4826·MAD; from two
    values, their difference over √2)."""
    series = pd.Series(times, dtype=float)
    middle = float(series.median())
    if middle <= 0:
        return math.inf
    if len(series) == 2:
        return abs(times[0] - times[1]) / math.sqrt(2) / middle
    return 1.4826 * float((series - middle).abs().median()) / middle
