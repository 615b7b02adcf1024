"""Comparison charts from the runs DataFrame (matplotlib, PNG and SVG, one colour per backend)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from harness.results.summary import group_label, groups

# Built-ins get fixed colours, so a backend looks the same in every report.
_FIXED_COLOURS = {"numpy": "#1f77b4", "rust": "#ff7f0e", "keras": "#d62728", "keras-fit": "#9467bd"}
_PALETTE = ["#2ca02c", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
ACCURACY_TARGETS = (0.95, 0.97)


def colour(backend: str) -> str:
    return _FIXED_COLOURS.get(backend) or _PALETTE[zlib.crc32(backend.encode()) % len(_PALETTE)]


def _groups(ok: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(backend, label, runs) per comparability key; labels name what varies (spec, machine)."""
    return [(key.backend, group_label(g.iloc[0], ok), g) for key, g in groups(ok)]


def time_to_accuracy(curve: list[dict] | None, target: float) -> float | None:
    """Cumulative training time at the first evaluation whose test accuracy reached ``target``."""
    for point in curve or []:
        if point.get("test_acc", 0.0) >= target:
            return float(point["train_time_s"])
    return None


def _save(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    paths = []
    for suffix in ("png", "svg"):
        path = out_dir / f"{name}.{suffix}"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def training_times(ok: pd.DataFrame, ax: plt.Axes) -> None:
    groups = _groups(ok)
    for y, (backend, _, g) in enumerate(groups):
        times = g["train_time_s"].dropna()
        ax.scatter(times, [y] * len(times), color=colour(backend), alpha=0.7, s=30, zorder=3)
        ax.plot([times.median()] * 2, [y - 0.3, y + 0.3], color=colour(backend), lw=2.5)
    ax.set_yticks(range(len(groups)), [label for _, label, _ in groups])
    ax.set_xlabel("training time (s) — dots: every repeat, bar: median")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Training time")


def cpu_utilisation(ok: pd.DataFrame, ax: plt.Axes) -> None:
    groups = _groups(ok)
    values = [g["cpu_util"].median() * 100 for _, _, g in groups]
    ax.barh(range(len(groups)), values, color=[colour(b) for b, _, _ in groups])
    ax.set_yticks(range(len(groups)), [label for _, label, _ in groups])
    ax.set_xlabel("CPU utilisation (%) — CPU seconds ÷ wall seconds; 200 % = two busy cores")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("CPU utilisation during training")


def accuracies(ok: pd.DataFrame, ax: plt.Axes) -> None:
    groups = _groups(ok)
    for y, (backend, _, g) in enumerate(groups):
        ax.barh(y - 0.2, g["train_acc"].median(), height=0.38, color=colour(backend), alpha=0.55)
        ax.barh(y + 0.2, g["test_acc"].median(), height=0.38, color=colour(backend))
    ax.set_yticks(range(len(groups)), [label for _, label, _ in groups])
    low = min(ok["test_acc"].min(), ok["train_acc"].min())
    ax.set_xlim(max(0.0, low - 0.02), 1.0)
    ax.set_xlabel("final accuracy — pale: train, solid: test")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Final accuracy")


def learning_curves(ok: pd.DataFrame, axes: tuple[plt.Axes, plt.Axes]) -> None:
    by_iteration, by_time = axes
    labelled: set[str] = set()
    for _, run in ok.iterrows():
        curve = run["curve"] or []
        if not curve:
            continue
        label = group_label(run, ok)
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
    by_iteration.set_title("Learning curve per iteration (same for backends doing the same job)")
    by_time.set_title("Learning curve per second of training")
    if labelled:
        by_time.legend(fontsize=8, loc="lower right")


def time_to_targets(ok: pd.DataFrame, ax: plt.Axes) -> None:
    groups = _groups(ok)
    width = 0.8 / len(ACCURACY_TARGETS)
    for i, target in enumerate(ACCURACY_TARGETS):
        for y, (backend, _, g) in enumerate(groups):
            reached = [t for t in (time_to_accuracy(c, target) for c in g["curve"]) if t]
            offset = y - 0.4 + width * (i + 0.5)
            if reached:
                value = pd.Series(reached).median()
                ax.barh(
                    offset,
                    value,
                    height=width * 0.9,
                    color=colour(backend),
                    alpha=0.5 + 0.5 * i / max(1, len(ACCURACY_TARGETS) - 1),
                )
                ax.text(value, offset, f" {target:.2f}: {value:.1f} s", va="center", fontsize=8)
            else:
                ax.text(0, offset, f" {target:.2f}: not reached", va="center", fontsize=8)
    ax.set_yticks(range(len(groups)), [label for _, label, _ in groups])
    ax.set_xlim(0, ax.get_xlim()[1] * 1.25)  # room for the value labels
    ax.set_xlabel("training time until test accuracy first reached the target (s), median")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Time to accuracy " + " and ".join(f"{t:.2f}" for t in ACCURACY_TARGETS))


def phases(ok: pd.DataFrame, ax: plt.Axes) -> None:
    """Stacked bars: median seconds per phase of a step, for the runs made with --profile."""
    profiled = ok[ok["phases"].map(lambda p: isinstance(p, dict) and bool(p))]
    groups = _groups(profiled)
    shades = [0.35, 0.55, 0.75, 1.0]
    widest = max(pd.DataFrame(list(g["phases"])).median().sum() for _, _, g in groups)
    for y, (backend, _, g) in enumerate(groups):
        table = pd.DataFrame(list(g["phases"])).median()
        left = 0.0
        for i, (phase, seconds) in enumerate(table.items()):
            ax.barh(
                y, seconds, left=left, color=colour(backend), alpha=shades[i % 4], edgecolor="white"
            )
            if seconds > 0.12 * widest:  # label only segments wide enough to hold it
                ax.text(left + seconds / 2, y, phase, ha="center", va="center", fontsize=7)
            left += seconds
    ax.set_yticks(range(len(groups)), [label for _, label, _ in groups])
    ax.set_xlabel("training time per phase (s), median over --profile runs")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Where the training time goes")


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
            }
        )
    return pd.DataFrame(rows)


def _varies(ok: pd.DataFrame, key: str) -> bool:
    return ok["spec"].map(lambda s: s.get(key) if isinstance(s, dict) else None).nunique() > 1


def scaling_batch(ok: pd.DataFrame, ax: plt.Axes) -> None:
    table = _swept(ok, "batch")
    for (backend, threads, others), line in table.groupby(["backend", "threads", "others"]):
        line = line.sort_values("value")
        per_sample = line["time"] / (line["iterations"] * line["batch"]) * 1e6
        ax.plot(
            line["value"],
            per_sample,
            "o-",
            color=colour(backend),
            label=f"{backend} @{threads}t" + (f" {others}" if others else ""),
        )
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("batch size")
    ax.set_ylabel("training time per sample (µs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Cost per training sample as the batch grows (lower: better use of the CPU)")


def scaling_hidden(ok: pd.DataFrame, ax: plt.Axes) -> None:
    table = _swept(ok, "hidden")
    for (backend, threads, others), line in table.groupby(["backend", "threads", "others"]):
        line = line.sort_values("value")
        ax.plot(
            line["value"],
            line["time"],
            "o-",
            color=colour(backend),
            label=f"{backend} @{threads}t" + (f" {others}" if others else ""),
        )
        first = line.iloc[0]  # ideal: cost proportional to the hidden size from the first point
        ax.plot(
            line["value"],
            first["time"] * line["value"] / first["value"],
            ":",
            color=colour(backend),
            alpha=0.6,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("hidden units")
    ax.set_ylabel("training time (s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("Training time against hidden size (dotted: ideal linear cost)")


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
        charts[name] = _save(_figure(rows, lambda ax, d=draw: d(ok, ax)), out_dir, name)
    for key, draw in (("batch", scaling_batch), ("hidden", scaling_hidden)):
        if _varies(ok, key):
            fig, ax = plt.subplots(figsize=(8, 4.5))
            draw(ok, ax)
            charts[f"scaling_{key}"] = _save(fig, out_dir, f"scaling_{key}")
    if "phases" in ok and ok["phases"].map(lambda p: isinstance(p, dict) and bool(p)).any():
        charts["phases"] = _save(_figure(rows, lambda ax: phases(ok, ax)), out_dir, "phases")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    learning_curves(ok, (axes[0], axes[1]))
    charts["learning_curves"] = _save(fig, out_dir, "learning_curves")
    return charts
