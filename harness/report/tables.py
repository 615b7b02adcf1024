"""The report's tables and lines, from the runs frame; one row per comparability key, always.

When the runs span more than one spec, machine or set of measurement flags, each table gains the
columns that tell its rows apart (session, machine, spec, flags), and ``what_differs`` says so in
one line at the top of the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from harness.errors import first_line
from harness.export import columns
from harness.export.rows import fastest_first
from harness.results.key import machine_fingerprint, machine_label
from harness.results.summary import (
    backend_label,
    fmt,
    gemm_rates,
    groups,
    is_busy,
    label_columns,
    summarize,
    variation,
)


def what_differs(frame: pd.DataFrame) -> str:
    return variation(frame).sentence()


def _key_cells(row: Any, frame: pd.DataFrame) -> dict[str, str]:
    """backend, threads, and the key parts that vary here."""
    name = backend_label(row.backend, row.algorithm)
    name = f"{name} (debug build)" if getattr(row, "debug_build", False) else name
    cells = {"backend": name, "threads": str(row.threads)}
    for heading, column in label_columns(frame):
        cells[heading] = str(getattr(row, column))
    return cells


def comparison_table(
    frame: pd.DataFrame, baseline: str | None = None, summary: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every column of the one row model (``export.columns``), fastest first. Where a backend
    skips work, the executed-work columns stand beside the job's (``work_notes`` says what it
    skips)."""
    summary = fastest_first(summarize(frame, baseline) if summary is None else summary)
    return columns.cells(summary).frame()


OUTSIDE_TIMER_NOTE = (
    "Medians per run of the wall time each kind of call into the backend took outside the "
    "timed region (predict: every evaluation's train and test predictions; params: two reads "
    "after every train_steps call; other: construction, hooks, close), the proof of the first "
    "call against the float64 reference, CPU use against the thread budget, and the runs "
    "flagged as suspect."
)


def outside_timer(
    frame: pd.DataFrame, baseline: str | None = None, summary: pd.DataFrame | None = None
) -> pd.DataFrame:
    """What each key's runs spent outside the timed region, and whether their time holds."""
    rows = []
    for row in (summarize(frame, baseline) if summary is None else summary).itertuples():
        if not row.runs_ok:
            continue
        untimed = row.untimed_s
        budget = frame.loc[frame["key"] == row.key, "cpu_budget"].dropna()
        rows.append(
            {
                **_key_cells(row, frame),
                "train s": fmt(row.train_time_s, ".2f"),
                **{
                    f"{kind} s": fmt(untimed.get(kind), ".2f" if kind != "params" else ".4f")
                    for kind in ("setup", "predict", "params", "other")
                },
                "proof ms": fmt(
                    None if row.proof_cost_s is None else row.proof_cost_s * 1e3, ".1f"
                ),
                "CPU use / budget": fmt(row.cpu_util * 100, ".0f", " %")
                + (f" / {budget.iloc[0] * 100:.0f} %" if len(budget) else " / none"),
                "flagged": f"{row.flagged_runs}/{row.runs_ok}",
            }
        )
    return pd.DataFrame(rows)


def thread_audit(frame: pd.DataFrame) -> pd.DataFrame:
    """Threads asked for against threads used, per comparability key."""
    rows = []
    for _, group in groups(frame):
        pools, told, builds = set(), set(), set()
        for env, build in zip(group["env"], group["build_info"], strict=True):
            shown = {
                k: v for k, v in build.items() if not k.startswith("tf_") and k != "threads_told"
            }
            if shown:
                builds.add(", ".join(f"{k}={v}" for k, v in shown.items()))
            for pool in env.get("blas", []) or []:
                if isinstance(pool, dict):
                    pools.add(f"{pool.get('internal_api')}={pool.get('num_threads')}")
            if "tf_intra_op_threads" in build:
                told.add(
                    f"TF intra={build['tf_intra_op_threads']} inter={build['tf_inter_op_threads']}"
                )
            if build.get("threads_told"):
                told.add(str(build["threads_told"]))
        cells = _key_cells(next(group.itertuples()), frame)
        cells["threads asked"] = cells.pop("threads")
        rows.append(
            {
                **cells,
                "BLAS pools (threadpoolctl)": ", ".join(sorted(pools)) or "–",
                "told in code": ", ".join(sorted(told)) or "–",
                "build info": " | ".join(sorted(builds)) or "–",
                "peak process threads": fmt(group["threads_observed"].max(), ".0f"),
                "CPU use": fmt(group["cpu_util"].median() * 100, ".0f", " %"),
            }
        )
    return pd.DataFrame(rows)


def _machines(frame: pd.DataFrame) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
    """(label, env, runs) per machine, in the order first seen."""
    out = []
    for fingerprint in dict.fromkeys(frame["machine"]):
        runs = frame[frame["machine"] == fingerprint]
        out.append((machine_label(runs["env"].iloc[0]), runs["env"].iloc[0], runs))
    return out


def machines_side_by_side(frame: pd.DataFrame, summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Median training time per backend, threads and spec (rows) on each machine (columns).

    Empty unless the runs come from more than one machine (a cluster session, or several
    sessions): then the same work can be read across machines.
    """
    if frame["machine"].nunique() < 2:
        return pd.DataFrame()
    summary = summarize(frame) if summary is None else summary
    labels = {m: machine_label(env) for m, env in zip(frame["machine"], frame["env"], strict=True)}
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    for row in summary.itertuples():
        cell = (row.backend, row.threads, row.spec_label, row.flags)
        rows.setdefault(cell, {})[labels[row.machine]] = fmt(row.train_time_s, ".2f", " s")
    table = pd.DataFrame(
        [
            {"backend": b, "threads": t, "spec": s, "flags": f, **times}
            for (b, t, s, f), times in rows.items()
        ]
    ).fillna("–")
    return table.drop(columns=[c for c in ("spec", "flags") if table[c].nunique() < 2])


GEMM_DEFINITIONS = (
    "GEMM rate: NumPy's float32 rate on one large square matrix product, measured on the "
    "machine for each thread count at the start of the session.",
    "GEMM-rate bound: the job's FLOPs ÷ the GEMM rate at the run's thread count, i.e. how long "
    "the job would take if all of its arithmetic ran as fast as that one large product; a "
    "yardstick, not a hardware limit.",
    "% of GEMM rate: the run's FLOP rate (the job's FLOPs ÷ median training time) ÷ that GEMM "
    "rate.",
)


def gemm_lines(frame: pd.DataFrame) -> list[str]:
    """The GEMM rate per thread count, per machine and session."""
    lines = []
    several = frame["machine"].nunique() > 1
    for label, _, runs in _machines(frame):
        prefix = f"{label}: " if several else ""
        measured = False
        for session, session_runs in runs.groupby("session", sort=True):
            env = next(
                (e for e in session_runs["env"] if e.get("gemm_rates") or e.get("roofline")), None
            )
            if env is None:
                continue
            measured = True
            size = env.get("gemm_size") or env["roofline"]["size"]
            rates = gemm_rates(env)
            per_thread = ", ".join(
                f"{rate:.1f} GFLOP/s at {threads} thread{'s' if threads != '1' else ''}"
                for threads, rate in sorted(rates.items(), key=lambda kv: thread_order(kv[0]))
            )
            lines.append(f"{prefix}session {session}: {size}² float32 product: {per_thread}")
            suspect = {t: b for t, b in (env.get("gemm_busy") or {}).items() if is_busy(b)}
            if suspect:
                which = ", ".join(f"{t} thread(s) with {b:.0%}" for t, b in suspect.items())
                lines.append(
                    f"⚠ {prefix}session {session}: the rate was measured at {which} of the CPUs "
                    "busy elsewhere: it, and every share of it, is suspect"
                )
        if not measured:
            lines.append(f"{prefix}not measured (run without --no-gemm-rate)")
    return lines


def thread_order(label: str) -> float:
    return int(label) if label.isdigit() else float("inf")


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame[frame["status"] != "ok"]
    rows = []
    for run in bad.itertuples():
        rows.append(
            {
                **_key_cells(run, frame),
                "repeat": str(run.repeat),
                "status": run.status,
                "error": first_line(run.error),
            }
        )
    return pd.DataFrame(rows)


def same_work_check(frame: pd.DataFrame) -> list[str]:
    """One line per spec: did every run of it get the same initial parameters and batches?"""
    lines = []
    for spec_hash, group in frame.groupby("spec_hash", sort=True):
        inits, batches = set(group["init_sha256"]), set(group["batches_sha256"])
        if len(inits) == 1 and len(batches) == 1:
            lines.append(
                f"spec {spec_hash}: all {len(group)} runs got the same initial "
                f"parameters ({next(iter(inits))[:12]}…) and batches "
                f"({next(iter(batches))[:12]}…)"
            )
        else:
            odd = ", ".join(
                sorted(f"{r.backend}@{r.threads} r{r.repeat}" for r in group.itertuples())
            )
            lines.append(
                f"WARNING spec {spec_hash}: runs got different work "
                f"({len(inits)} init hashes, {len(batches)} batch hashes): {odd}"
            )
    return lines


def _blas(pools: Iterable[Any]) -> str:
    return ", ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
        for p in pools
        if isinstance(p, dict)
    )


def environments(frame: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    """(title, facts) per machine and session: which environment each number came from."""
    out = []
    for label, _, runs in _machines(frame):
        for session, session_runs in runs.groupby("session", sort=True):
            env = dict(session_runs["env"].iloc[0])
            for measured in ("roofline", "gemm_rates", "gemm_size"):  # in their own section
                env.pop(measured, None)
            facts: dict[str, Any] = {k: v for k, v in env.items() if k != "blas"}
            if isinstance(facts.get("memory_bytes"), int):  # people read GiB, not bytes
                facts["memory"] = f"{facts.pop('memory_bytes') / 2**30:.1f} GiB"
            facts["machine fingerprint"] = machine_fingerprint(env)
            blas = _blas(env.get("blas") or [])
            if blas:
                facts["blas"] = blas
            builds = {}
            versions = {}
            for _, run in session_runs.iterrows():
                info = ", ".join(f"{k}={v}" for k, v in run["build_info"].items())
                if info:
                    builds.setdefault(run["backend"], set()).add(info)
                if run["backend_version"]:
                    versions.setdefault(run["backend"], set()).add(str(run["backend_version"]))
            gpus = {
                json.dumps(e["gpu"], sort_keys=True) for e in session_runs["env"] if e.get("gpu")
            }
            if gpus:
                facts["gpu"] = "; ".join(sorted(gpus))
            facts["build info"] = (
                "; ".join(f"{b}: {' | '.join(sorted(i))}" for b, i in sorted(builds.items())) or "–"
            )
            facts["backend versions"] = (
                "; ".join(f"{b}: {', '.join(sorted(v))}" for b, v in sorted(versions.items()))
                or "–"
            )
            out.append((f"session {session} on {label}", facts))
    return out


def specs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for spec_hash, spec in zip(frame["spec_hash"], frame["spec"], strict=True):
        seen.setdefault(spec_hash, spec)
    return [seen[h] for h in sorted(seen)]
