"""Comparison charts from the runs DataFrame (matplotlib, PNG and SVG, one colour per backend)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.results.summary import group_labels, groups

# Built-ins get fixed colours, so a backend looks the same in every report.
_FIXED_COLOURS = {"numpy": "#1f77b4", "rust": "#ff7f0e", "keras": "#d62728", "keras-fit": "#9467bd"}
_PALETTE = ["#2ca02c", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MARKERS = "osD^v<>ph*"
plt.rcParams.update({"font.size": 11})  # readable when a phone shrinks the picture


def colour(backend: str) -> str:
    return _FIXED_COLOURS.get(backend) or _PALETTE[zlib.crc32(backend.encode()) % len(_PALETTE)]


def _groups(ok: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(backend, label, runs) per comparability key; labels name what varies (spec, machine)."""
    labels = group_labels(ok)
    return [(key.backend, labels[key], g) for key, g in groups(ok)]


def time_to_accuracy(curve: list[dict] | None, target: float) -> float | None:
    """Cumulative training time at the first evaluation whose test accuracy reached ``target``."""
    for point in curve or []:
        if point.get("test_acc", 0.0) >= target:
            return float(point["train_time_s"])
    return None


def save(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    paths = []
    for suffix in ("png", "svg"):
        path = out_dir / f"{name}.{suffix}"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _grey_legend(ax: plt.Axes, handles: list, **kwargs: object) -> None:
    ax.legend(handles=handles, fontsize=9, framealpha=0.9, **kwargs)


def _dot(label: str, **style: object) -> Line2D:
    return Line2D([], [], ls="", marker="o", label=label, **{"color": "grey", **style})


def _rows_axis(ax: plt.Axes, groups: list, xlabel: str, title: str) -> None:
    """One row per comparability key, labelled; the value axis, its grid and the title."""
    ax.set_yticks(range(len(groups)), [label for _, label, _ in groups])
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.set_title(title)


def training_times(ok: pd.DataFrame, ax: plt.Axes) -> None:
    groups = _groups(ok)
    for y, (backend, _, g) in enumerate(groups):
        times = g["train_time_s"].dropna()
        ax.scatter(times, [y] * len(times), color=colour(backend), alpha=0.7, s=30, zorder=3)
        ax.plot([times.median()] * 2, [y - 0.3, y + 0.3], color=colour(backend), lw=2.5)
    ax.set_yticks(range(len(groups)), [label for _, label, _ in groups])
    times = ok["train_time_s"].dropna()
    if len(times) and times.min() > 0 and times.max() / times.min() > 5:
        ax.set_xscale("log")  # a wide range: equal ratios get equal room
        ax.set_xlabel("training time (s, log scale)")
    else:
        ax.set_xlim(left=0)
        ax.set_xlabel("training time (s)")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.set_title("Training time")
    _grey_legend(
        ax,
        [_dot("each repeat", alpha=0.7), Line2D([], [], color="grey", lw=2.5, label="median")],
        loc="best",
    )


def cpu_utilisation(ok: pd.DataFrame, ax: plt.Axes) -> None:
    groups = _groups(ok)
    for y, (backend, _, g) in enumerate(groups):
        values = g["cpu_util"].dropna() * 100
        ax.barh(y, values.median(), color=colour(backend), alpha=0.6, height=0.6)
        ax.scatter(values, [y] * len(values), color="black", s=12, zorder=3)
        threads = g["threads"].iloc[0]
        if str(threads).isdigit():  # what the budget allows: threads × one busy core
            ax.plot([int(threads) * 100] * 2, [y - 0.4, y + 0.4], color="black", ls="--", lw=1.2)
    xlabel = "CPU use (%): CPU seconds ÷ wall seconds; 200 % = two busy cores"
    _rows_axis(ax, groups, xlabel, "CPU use during training")
    _grey_legend(
        ax,
        [
            Patch(color="grey", alpha=0.6, label="median"),
            _dot("each repeat", markersize=4, color="black"),
            Line2D([], [], color="black", ls="--", label="threads × 100 %"),
        ],
        loc="best",
    )


def accuracies(ok: pd.DataFrame, ax: plt.Axes) -> None:
    """Dots, not bars: a bar's length would claim a zero the axis does not show."""
    groups = _groups(ok)
    for y, (backend, _, g) in enumerate(groups):
        ax.scatter(
            g["train_acc"],
            [y - 0.15] * len(g),
            color=colour(backend),
            marker="o",
            facecolors="none",
            s=40,
            zorder=3,
        )
        ax.scatter(
            g["test_acc"], [y + 0.15] * len(g), color=colour(backend), marker="o", s=40, zorder=3
        )
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3f"))
    xlabel = "final accuracy, every run (the axis is zoomed: read the numbers)"
    _rows_axis(ax, groups, xlabel, "Final accuracy")
    _grey_legend(
        ax,
        [_dot("train", markerfacecolor="none"), _dot("test")],
        loc="best",
    )


def learning_curves(ok: pd.DataFrame, axes: tuple[plt.Axes, plt.Axes]) -> None:
    by_iteration, by_time = axes
    labelled: set[str] = set()
    labels = group_labels(ok)
    for _, run in ok.iterrows():
        curve = run["curve"] or []
        if not curve:
            continue
        label = labels[run["key"]]
        style = {
            "color": colour(run["backend"]),
            "alpha": 0.8,
            "lw": 1.2,
            "ls": "-" if str(run["threads"]) in ("1", "default") else "--",
            "label": None if label in labelled else label,
        }
        labelled.add(label)
        iterations = [p["iteration"] for p in curve]
        times = [p["train_time_s"] for p in curve]
        accuracy = [p["test_acc"] for p in curve]
        by_iteration.plot(iterations, accuracy, **style)
        by_time.plot(times, accuracy, **style)
    by_iteration.set_xlabel("iteration")
    by_time.set_xlabel("cumulative training time (s)")
    for ax in axes:
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        if labelled:
            ax.legend(fontsize=8, loc="lower right")
    by_iteration.set_title("Test accuracy per iteration (every repeat)")
    by_time.set_title("Test accuracy per second of training")


def accuracy_targets(ok: pd.DataFrame) -> tuple[float, ...]:
    """Targets every group reached: the lowest best test accuracy rounded down, and 0.02 less."""
    best = [max((p["test_acc"] for p in c), default=0.0) for c in ok["curve"] if c]
    if not best:
        return ()
    top = math.floor(min(best) * 100) / 100
    return tuple(t for t in (round(top - 0.02, 2), top) if t > 0)


def time_to_targets(ok: pd.DataFrame, ax: plt.Axes) -> None:
    groups = _groups(ok)
    targets = accuracy_targets(ok)
    width = 0.8 / max(1, len(targets))
    shades = [0.45, 1.0][-len(targets) :] if targets else []
    for i, target in enumerate(targets):
        for y, (backend, _, g) in enumerate(groups):
            reached = [t for t in (time_to_accuracy(c, target) for c in g["curve"]) if t]
            offset = y - 0.4 + width * (i + 0.5)
            if reached:
                ax.barh(
                    offset,
                    pd.Series(reached).median(),
                    height=width * 0.9,
                    color=colour(backend),
                    alpha=shades[i],
                )
                ax.scatter(reached, [offset] * len(reached), color="black", s=8, zorder=3)
    xlabel = "training time until test accuracy first reached the target (s)"
    _rows_axis(ax, groups, xlabel, "Time to accuracy")
    _grey_legend(
        ax,
        [
            Patch(color="grey", alpha=a, label=f"test accuracy ≥ {t:.2f} (median)")
            for t, a in zip(targets, shades, strict=True)
        ]
        + [_dot("each repeat", markersize=3, color="black")],
        loc="best",
    )


def phases(ok: pd.DataFrame, ax: plt.Axes) -> None:
    """Stacked bars: median seconds per phase of a step, for the runs made with --profile."""
    profiled = ok[ok["phases"].map(lambda p: isinstance(p, dict) and bool(p))]
    groups = _groups(profiled)
    names = list(dict.fromkeys(n for p in profiled["phases"] for n in p))
    palette = plt.get_cmap("tab10")
    for y, (_, _, g) in enumerate(groups):
        table = pd.DataFrame(list(g["phases"])).median()
        left = 0.0
        for phase, seconds in table.items():
            ax.barh(
                y, seconds, left=left, color=palette(names.index(phase) % 10), edgecolor="white"
            )
            left += seconds
    xlabel = "training time per phase (s), median over --profile runs"
    _rows_axis(ax, groups, xlabel, "Where the training time goes")
    ax.legend(
        handles=[Patch(color=palette(i % 10), label=n) for i, n in enumerate(names)]
        + [Line2D([], [], color="black", lw=1.5, label="total, min–max over runs")],
        fontsize=9,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),  # beside the bars, never over them
    )


def _swept(ok: pd.DataFrame, key: str) -> pd.DataFrame:
    """Median training time per backend, threads and value of ``key``, for swept sessions."""
    rows = []
    for run_key, g in groups(ok):
        spec = g["spec"].iloc[0]
        others = ",".join(p for p in run_key.variant.split(",") if not p.startswith(f"{key}="))
        if ok["machine"].nunique() > 1:  # a line never joins points of two machines
            others += f" {g['machine_label'].iloc[0]}"
        if ok["flags"].nunique() > 1:
            others += f" +{run_key.flags()}"
        rows.append(
            {
                "backend": run_key.backend,
                "threads": run_key.threads,
                "others": others,
                "value": spec[key],
                "iterations": spec["iterations"],
                "batch": spec["batch"],
                "time": g["train_time_s"].median(),
                "low": g["train_time_s"].min(),
                "high": g["train_time_s"].max(),
            }
        )
    return pd.DataFrame(rows)


def _varies(ok: pd.DataFrame, key: str) -> bool:
    return ok["spec"].map(lambda s: s.get(key) if isinstance(s, dict) else None).nunique() > 1


def _lines(table: pd.DataFrame):
    """Each line of a scaling chart with its own marker and line style; colour = backend."""
    keys = table.groupby(["backend", "threads", "others"]).groups
    for i, (backend, threads, others) in enumerate(keys):
        line = table[
            (table["backend"] == backend)
            & (table["threads"] == threads)
            & (table["others"] == others)
        ].sort_values("value")
        style = {
            "color": colour(backend),
            "marker": MARKERS[i % len(MARKERS)],
            "ls": ["-", "--", "-.", (0, (5, 1))][(i // len(MARKERS)) % 4],
            "label": f"{backend} @{threads}t" + (f" {others}" if others else ""),
        }
        yield line, style


def _whiskers(ax: plt.Axes, x: pd.Series, low: pd.Series, high: pd.Series, color: str) -> None:
    """The spread over repeats: a vertical line from the fastest to the slowest."""
    ax.vlines(x, low, high, color=color, alpha=0.6, lw=2)


def _ticks_at_data(ax: plt.Axes, values: pd.Series) -> None:
    ax.set_xticks(sorted(set(values)), [f"{v:g}" for v in sorted(set(values))])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def scaling_batch(ok: pd.DataFrame, ax: plt.Axes) -> None:
    table = _swept(ok, "batch")
    for line, style in _lines(table):
        scale = 1e6 / (line["iterations"] * line["batch"])
        per_sample = line["time"] * scale
        ax.plot(line["value"], per_sample, **style)
        _whiskers(ax, line["value"], line["low"] * scale, line["high"] * scale, style["color"])
    ax.set_xscale("log", base=2)
    _ticks_at_data(ax, table["value"])
    ax.set_xlabel("batch size")
    ax.set_ylabel("training time per sample (µs)")
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    spread = Line2D([], [], color="grey", lw=2, alpha=0.6, label="min–max over repeats")
    ax.legend(handles=[*handles, spread], fontsize=8)
    ax.set_title("Cost per training sample as the batch grows (lower: better use of the CPU)")


def scaling_hidden(ok: pd.DataFrame, ax: plt.Axes) -> None:
    table = _swept(ok, "hidden")
    for line, style in _lines(table):
        ax.plot(line["value"], line["time"], **style)
        _whiskers(ax, line["value"], line["low"], line["high"], style["color"])
        first = line.iloc[0]  # ideal: cost proportional to the hidden size from the first point
        ax.plot(
            line["value"],
            first["time"] * line["value"] / first["value"],
            ":",
            color=style["color"],
            alpha=0.6,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    _ticks_at_data(ax, table["value"])
    ax.set_xlabel("hidden units")
    ax.set_ylabel("training time (s)")
    ax.grid(alpha=0.3, which="both")
    handles, _ = ax.get_legend_handles_labels()
    ideal = Line2D([], [], ls=":", color="grey", label="ideal: time ∝ hidden units")
    spread = Line2D([], [], color="grey", lw=2, alpha=0.6, label="min–max over repeats")
    ax.legend(handles=[*handles, ideal, spread], fontsize=8)
    ax.set_title("Training time against hidden size")


def _figure(rows: int, draw: Callable[[plt.Axes], None], width: float = 8.0) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(width, 1.2 + 0.45 * max(rows, 2)))
    draw(ax)
    ax.invert_yaxis()  # first group on top, as in the tables
    return fig


def render_all(frame: pd.DataFrame, out_dir: Path) -> dict[str, list[Path]]:
    """Every chart for the ok runs of ``frame``; returns name → [png, svg]."""
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return {}
    rows = len(groups(ok))
    charts: dict[str, list[Path]] = {}
    for name, draw in (
        ("training_time", training_times),
        ("cpu_utilisation", cpu_utilisation),
        ("accuracy", accuracies),
        ("time_to_accuracy", time_to_targets),
    ):
        charts[name] = save(_figure(rows, lambda ax, d=draw: d(ok, ax)), out_dir, name)
    for key, draw in (("batch", scaling_batch), ("hidden", scaling_hidden)):
        if _varies(ok, key):
            fig, ax = plt.subplots(figsize=(8, 4.5))
            draw(ok, ax)
            charts[f"scaling_{key}"] = save(fig, out_dir, f"scaling_{key}")
    if "phases" in ok and ok["phases"].map(lambda p: isinstance(p, dict) and bool(p)).any():
        charts["phases"] = save(_figure(rows, lambda ax: phases(ok, ax)), out_dir, "phases")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    learning_curves(ok, (axes[0], axes[1]))
    charts["learning_curves"] = save(fig, out_dir, "learning_curves")
    return charts
