"""The history chart: each line's median training time per session, in commit order, with its
95 % interval; a step change is ringed. In the report when its sessions span several commits."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from harness.report.charts import MARKERS, colour, save
from harness.results.history import Line


def spans_commits(lines: list[Line]) -> bool:
    return len({p.commit for line in lines for p in line.points}) > 1


def render_history(lines: list[Line], out_dir: Path, name: str = "history") -> list[Path]:
    """PNG and SVG of every line; the x axis is the session's place in commit order."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    order = sorted(
        {(p.commit_date or p.started_at or "", p.session) for line in lines for p in line.points}
    )
    position = {session: i for i, (_, session) in enumerate(order)}
    ticks = {}
    for index, line in enumerate(lines):
        xs = [position[p.session] for p in line.points]
        ys = [p.median_s for p in line.points]
        low = [p.median_s - p.low_s if p.low_s == p.low_s else 0 for p in line.points]
        high = [p.high_s - p.median_s if p.high_s == p.high_s else 0 for p in line.points]
        ax.errorbar(
            xs,
            ys,
            yerr=[low, high],
            color=colour(line.key.backend),
            marker=MARKERS[index % len(MARKERS)],
            capsize=3,
            label=line.label,
        )
        for x, point in zip(xs, line.points, strict=True):
            ticks[x] = (point.commit or "?")[:7] + ("*" if point.dirty else "")
            if point.step:
                ax.plot(x, point.median_s, "o", ms=16, mfc="none", color="black")
    ax.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)], rotation=45, ha="right")
    ax.set_xlabel("commit, in commit order (* = uncommitted changes); ringed: a step change")
    ax.set_ylabel("median training time, s (95 % interval)")
    ax.set_title("Training time across commits")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out_dir, name)
