"""Run records → pandas → one summary row per comparability key; for the CLI and the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from typing import Any, NamedTuple

import pandas as pd

from harness.data.idx import N_CLASSES
from harness.errors import HarnessError, did_you_mean
from harness.requests import DEFAULT_TARGET, Target
from harness.results.key import (
    KEY_FIELDS,
    RunKey,
    Variation,
    machine_fingerprint,
    machine_label,
    spec_differences,
    spec_label,
)
from harness.results.model import RunRecord
from harness.results.stats import Ratio, ratio_of_medians
from harness.results.suspect import (
    BUSY_ABOVE,
    Flagged,
    flagged_status,
    proof_cost,
    untimed_medians,
)
from harness.results.target import common_target, time_to_target
from harness.spec import spec_from_dict


def is_busy(cpu_busy_before: Any) -> bool:
    return isinstance(cpu_busy_before, float) and cpu_busy_before > BUSY_ABOVE


LABEL_COLUMNS = {"session": "session", "machine": "machine_label", "spec": "spec_label"}


def _job_gflop(record: RunRecord) -> float | None:
    """The FLOPs of the record's whole job (its spec, its data's input width), in GFLOP."""
    try:
        spec = spec_from_dict(record.spec)
    except (TypeError, HarnessError):
        return None
    n_features = record.data.get("n_features", 784)
    if not isinstance(n_features, int):
        return None
    return spec.flops_per_iteration(n_features, N_CLASSES) * spec.iterations / 1e9


_DERIVED = ("key", "machine_label", "spec_label", "flags", "job_gflop")


def to_frame(records: Sequence[RunRecord], target: Target | None = None) -> pd.DataFrame:
    """One row per run: every record field, the key's fields and the labels tables print.

    ``threads`` becomes the key's label ("1", "default"); ``machine`` is the fingerprint.
    ``target`` (report or export ``--target``) replaces the time-to-accuracy target the runs
    were given, for every reader of the frame.
    """
    differing = spec_differences(record.spec for record in records)
    rows: list[dict[str, Any]] = []
    for record in records:
        key = RunKey.of(record)
        rows.append(
            {
                **asdict(record),
                **asdict(key),
                "key": key,
                "machine_label": machine_label(record.env),
                "spec_label": spec_label(record.spec, differing),
                "flags": key.flags(),
                "job_gflop": _job_gflop(record),
                **({"target": target.to_json()} if target else {}),
            }
        )
    if not rows:
        columns = [f.name for f in fields(RunRecord)] + [*KEY_FIELDS, *_DERIVED]
        return pd.DataFrame(columns=list(dict.fromkeys(columns)))
    frame = pd.DataFrame.from_records(rows)
    for column in (
        "train_time_s",
        "cpu_util",
        "setup_time_s",
        "peak_rss_bytes",
        "job_gflop",
        "executed_gflop",
        "train_acc",
        "test_acc",
        "threads_observed",
        "gemm_rate_gflops",
    ):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def variation(frame: pd.DataFrame) -> Variation:
    """What varies across the runs (or summary rows) of ``frame``."""
    if frame.empty:
        return Variation((), 1, 1, 1)
    sessions = [s for cell in frame["session"] for s in str(cell).split(", ")]
    return Variation.measure(frame["spec"], frame["machine"], frame["flags"], sessions)


def fmt(value: Any, pattern: str, suffix: str = "") -> str:
    """A number for a table; a missing one (None or NaN) as an en dash."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return format(value, pattern) + suffix


def matched(frame: pd.DataFrame, match: str) -> pd.DataFrame:
    """``frame`` with the machine part of each key as ``match`` compares machines ("exact":
    the same machine; "cpu": the same CPU model, core count and memory; "any": any machine)."""
    if match == "exact" or frame.empty:
        return frame
    frame = frame.copy()
    envs = [env if isinstance(env, dict) else {} for env in frame["env"]]
    frame["machine"] = [machine_fingerprint(env, match) for env in envs]
    frame["key"] = [
        replace(k, machine=m) for k, m in zip(frame["key"], frame["machine"], strict=True)
    ]
    return frame


def groups(frame: pd.DataFrame) -> list[tuple[RunKey, pd.DataFrame]]:
    """The runs of each comparability key, in key order; never a group across keys."""
    if frame.empty:
        return []
    return sorted(frame.groupby("key", sort=False), key=lambda item: item[0].sort_key())


def gemm_rates(env: dict[str, Any]) -> dict[str, float]:
    """A session's GEMM rate per thread count ("1", "2", …, "default"), from its env.

    Schema-1 sessions measured one core and all cores only (``roofline``); their runs at the
    libraries' default thread count used all cores.
    """
    if env.get("gemm_rates"):
        return dict(env["gemm_rates"])
    old = env.get("roofline")
    if not old:
        return {}
    every_core = old["gflops_all_cores"]
    return {"1": old["gflops_1core"], str(old["cores"]): every_core, "default": every_core}


def _gemm_rate(runs: pd.DataFrame, threads: str) -> float | None:
    """The GEMM rate measured for this thread count, never another thread count's."""
    rates = runs["gemm_rate_gflops"].dropna()
    if len(rates):
        return float(rates.median())
    return next((r for r in (gemm_rates(env).get(threads) for env in runs["env"]) if r), None)


def check_baseline(baseline: str | None, names: Sequence[str], where: str) -> None:
    """``--baseline`` must name a backend that is there (``where``: "this matrix", …)."""
    if baseline is not None and baseline not in names:
        known = ", ".join(sorted(set(names))) or "none"
        raise HarnessError(
            f"--baseline {baseline}: no {baseline} runs in {where}"
            f"{did_you_mean(baseline, set(names))} backends there: {known}; choose one of them"
        )


def default_baseline(frame: pd.DataFrame) -> str | None:
    """numpy when it ran, else the backend that ran first."""
    if frame.empty:
        return None
    if (frame["backend"] == "numpy").any():
        return "numpy"
    first = frame.sort_values(["session", "order"], na_position="last").iloc[0]
    return str(first["backend"])


def median(values: Sequence[float]) -> float | None:
    return float(pd.Series(values).median()) if values else None


def _ok_times(runs: pd.DataFrame) -> pd.Series:
    """The training times of the runs that finished ok: what medians and ratios are taken of."""
    return runs.loc[runs["status"] == "ok", "train_time_s"].dropna()


def target_of(frame: pd.DataFrame) -> Target:
    """The time-to-accuracy target the frame's runs are read against (``common_target``)."""
    return common_target(frame["target"]) if "target" in frame else DEFAULT_TARGET


def _times_to_target(ok: pd.DataFrame, target: Target) -> list[float | None]:
    """Each ok run's training time to ``target``, from its curve (None: not reached)."""
    return [time_to_target(curve or [], target) for curve in ok["curve"]]


class Summarized(NamedTuple):
    """The runs' frame and its summary, made once per command and handed to every renderer."""

    frame: pd.DataFrame
    summary: pd.DataFrame


def summarize(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Medians over the ok runs of each key; counts of all its runs. One row per key.

    ``speedup`` is the baseline's median time over this key's (with everything else in the key
    equal) and its 95 % bootstrap interval; ``baseline`` defaults to ``default_baseline``.
    ``time_to_target_s`` is the median time to ``target_of(frame)`` when every ok run reached
    it (``target_reached`` counts those that did), with ``target_speedup`` as ``speedup``.
    """
    rows = []
    times_of: dict[RunKey, list[float]] = {}
    to_target_of: dict[RunKey, list[float]] = {}
    target = target_of(frame)
    for key, group in groups(frame):
        ok = group[group["status"] == "ok"]
        bad = group[group["status"] != "ok"]
        debug = any(info.get("profile") == "debug" for info in group["build_info"])
        times = _ok_times(group)
        times_of[key] = list(times)
        to_target = _times_to_target(ok, target)
        reached = [t for t in to_target if t is not None]
        # A median over the runs that got there would flatter a key whose other runs did not.
        to_target_of[key] = reached if len(reached) == len(to_target) else []
        rate = _gemm_rate(ok, key.threads)
        flags = Flagged.of(ok["flagged"])
        gflop = ok["job_gflop"].median()
        executed = ok["executed_gflop"].median()  # NaN unless the backend declared its work
        skipped = next((str(s) for s in group["skipped_work"] if isinstance(s, str)), None)
        rows.append(
            {
                **{name: getattr(key, name) for name in KEY_FIELDS},
                "key": key,
                "session": ", ".join(sorted(set(group["session"]))),
                "machine_label": group["machine_label"].iloc[0],
                "spec_label": group["spec_label"].iloc[0],
                "flags": group["flags"].iloc[0],
                "spec": group["spec"].iloc[0],
                "runs_ok": len(ok),
                "runs": len(group),
                "train_time_s": times.median(),
                "train_time_min_s": times.min(),
                "train_time_max_s": times.max(),
                "cpu_util": ok["cpu_util"].median(),
                "train_acc": ok["train_acc"].median(),
                "test_acc": ok["test_acc"].median(),
                "setup_time_s": ok["setup_time_s"].median(),
                "peak_rss_bytes": ok["peak_rss_bytes"].median(),
                "statuses": flagged_status(", ".join(sorted(set(bad["status"]))) or "ok", flags),
                "debug_build": debug,
                # The job's FLOPs per second; and the FLOPs the backend declared it executed
                # (hooks.DeclaresWork), where it did: a sparse algorithm does less work.
                "gflops": gflop / times.median() if len(times) else None,
                "executed_gflops": executed / times.median() if len(times) else None,
                "skipped_work": skipped,
                "train_time_iqr_s": times.quantile(0.75) - times.quantile(0.25),
                # Sample standard deviation over mean; needs two runs.
                "train_time_cv": times.std(ddof=1) / times.mean() if len(times) > 1 else None,
                "gemm_rate_gflops": rate,
                # The job's GEMM-rate bound: its FLOPs at the GEMM rate for this thread count.
                "gemm_bound_s": gflop / rate if rate and pd.notna(gflop) else None,
                "threads_observed": ok["threads_observed"].max(),
                "target": target.label(),
                "target_reached": len(reached),
                "time_to_target_s": median(to_target_of[key]),
                "busy_runs": int(sum(is_busy(b) for b in group["cpu_busy_before"])),
                # What one median pools: never silently more than one commit or version.
                "commits": _distinct(str(env.get("git_commit"))[:7] for env in ok["env"]),
                "versions": _distinct(ok["backend_version"]),
                # Ok runs whose time is suspect (harness.runner.flags), and why: one line a kind.
                "flagged_runs": flags.runs,
                "flag_lines": flags.lines,
                # Outside the timed region: median seconds per kind of call, and the proof's.
                "untimed_s": untimed_medians(ok["untimed"]),
                "proof_cost_s": proof_cost(ok["proof"]),
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    baseline = baseline or default_baseline(frame)
    speedups = [
        # The baseline against itself is 1 by definition, not a resampled estimate.
        Ratio(1.0, 1.0, 1.0, len(times_of[key]), len(times_of[key]))
        if key.backend == baseline and times_of[key]
        else ratio_of_medians(_baseline_times(times_of, key, str(baseline)), times_of[key])
        for key in summary["key"]
    ]
    summary["baseline"] = baseline
    summary["speedup"] = speedups
    summary["target_speedup"] = [
        Ratio(1.0, 1.0, 1.0, len(to_target_of[key]), len(to_target_of[key]))
        if key.backend == baseline and to_target_of[key]
        else ratio_of_medians(_baseline_times(to_target_of, key, str(baseline)), to_target_of[key])
        for key in summary["key"]
    ]
    return summary


def _distinct(values: Any) -> list[str]:
    return sorted({str(v) for v in values if v is not None and str(v) not in ("None", "nan")})


def _baseline_times(times_of: dict[RunKey, list[float]], key: RunKey, baseline: str) -> list[float]:
    """The baseline's times for the same work as ``key`` (whatever algorithm the baseline ran,
    when it ran one only); none when it ran several there, which no single ratio can stand for."""
    same_work = [
        times
        for other, times in times_of.items()
        if replace(other, algorithm=key.algorithm) == replace(key, backend=baseline)
    ]
    return same_work[0] if len(same_work) == 1 else []


def thread_scaling(frame: pd.DataFrame, backend: str, threads: str) -> Ratio:
    """``backend``'s speed-up at ``threads`` threads over its own 1 thread: its median time at 1
    over its median at ``threads`` (ok runs), with the 95 % bootstrap interval. Only runs whose
    keys differ in the thread count alone are compared; NaN when the frame lacks one side or
    holds several keys of the backend at ``threads`` (a sweep: no single figure).
    """
    times_of = {key: list(_ok_times(group)) for key, group in groups(frame)}
    many = [key for key in times_of if key.backend == backend and key.threads == threads]
    if len(many) != 1:
        return ratio_of_medians([], [])
    return ratio_of_medians(times_of.get(replace(many[0], threads="1"), []), times_of[many[0]])


def to_target_text(row: Any, unit: str = "") -> str:
    """A row's median time to its target, or how many of its ok runs got there."""
    if row.time_to_target_s is not None and pd.notna(row.time_to_target_s):
        return f"{row.time_to_target_s:.2f}{unit}"
    if not row.runs_ok:
        return "–"
    if row.target_reached:
        return f"{row.target_reached} of {row.runs_ok} runs reached it"
    return "not reached"


def backend_label(backend: str, algorithm: str) -> str:
    """The backend's name where runs are ranked, marked when it ran an algorithm that does other
    work than the job's dense products (``rust [sparse]``); ``work_notes`` says what."""
    return backend if algorithm == "dense" else f"{backend} [{algorithm}]"


def skips_work(summary: pd.DataFrame) -> bool:
    """Whether any row ran an algorithm that does other work than the job's dense products."""
    return bool(len(summary)) and bool((summary["algorithm"] != "dense").any())


def work_notes(summary: pd.DataFrame) -> list[str]:
    """One line per backend and algorithm that skips work: what it skips, and how much of the
    job's FLOPs it executed where it declared them."""
    lines = []
    rows = summary[summary["algorithm"] != "dense"] if len(summary) else summary
    for (backend, algorithm), group in rows.groupby(["backend", "algorithm"], sort=True):
        skipped = next((s for s in group["skipped_work"] if isinstance(s, str)), None)
        shares = (group["executed_gflops"] / group["gflops"]).dropna()
        done = (
            f"it executed {shares.median():.0%} of the job's FLOPs"
            if len(shares)
            else "its executed work was not recorded"
        )
        lines.append(
            f"{backend_label(backend, algorithm)} skips work, {skipped or 'without saying what'}"
            f"; {done}. Its job GFLOP/s and % of the GEMM rate count the work it was assigned, "
            "not the work it did."
        )
    return lines


def label_columns(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(heading, column) pairs for the key parts that vary across ``frame``'s runs."""
    return [
        (heading, LABEL_COLUMNS.get(heading, heading)) for heading in variation(frame).columns()
    ]


def group_labels(frame: pd.DataFrame) -> dict[RunKey, str]:
    """``numpy @1t`` per key, plus whatever else tells the keys apart here (spec, machine, flags).

    Read through itertuples: a Series would answer ``.flags`` with pandas' own attribute.
    """
    extra = [column for heading, column in label_columns(frame) if heading != "session"]
    labels = {}
    for row in frame.itertuples():
        name = backend_label(row.backend, row.algorithm)
        label = f"{name} @{row.threads}t" if row.threads != "default" else name
        parts = [str(getattr(row, column)) for column in extra]
        labels[row.key] = label + (f" [{' · '.join(parts)}]" if parts else "")
    return labels
