"""``--format pyperf``: every training time as a pyperf benchmark suite, for
``python -m pyperf stats|compare_to``.

One benchmark per comparability key, named after it so that ``pyperf compare_to`` can only pair
like with like across exports: the spec hash always (``numpy-t1[spec 3f2a1c9b]``), the spec values
that differ within the export (``numpy-t1[hidden=60, spec 9a8b7c6d]``), the measurement flags
when any are on (``+pin``), and the machine when the export spans several
(``@AMD EPYC 7B13, 2 cores, host a [3f2a1c]``). One pyperf run per ok run, carrying pyperf's own
metadata keys.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd
import pyperf

from harness.errors import ResultsError
from harness.export import ExportData
from harness.requests import Target
from harness.results.key import RunKey
from harness.results.summary import groups, target_of, variation
from harness.results.target import time_to_target


def benchmark_name(key: RunKey, row: pd.Series, frame: pd.DataFrame) -> str:
    columns = variation(frame).columns()
    spec = f"spec {key.spec_hash[:8]}"
    if "spec" in columns:
        spec = f"{row['spec_label']}, {spec}"
    # A backend under another algorithm is other work: its name says so, so no pyperf tool pairs
    # it with the dense runs.
    backend = key.backend if key.algorithm == "dense" else f"{key.backend}-{key.algorithm}"
    name = f"{backend}-t{key.threads}[{spec}]"
    if key.flags() != "none":
        name += f"+{key.flags()}"
    if "machine" in columns:
        name += f"@{row['machine_label']}"
    return name


def run_metadata(row: pd.Series, name: str, target: Target) -> dict[str, Any]:
    """pyperf's metadata keys where they exist (cpu_model_name, hostname, …), ours otherwise."""
    env = row["env"] if isinstance(row["env"], dict) else {}
    versions = {
        f"{lib}_version": env.get(lib) for lib in ("numpy", "rustc") if env.get(lib) is not None
    }
    for pool in env.get("blas") or []:
        if isinstance(pool, dict) and pool.get("internal_api"):
            versions[f"{pool['internal_api']}_version"] = str(pool.get("version"))
    metadata: dict[str, Any] = {
        "name": name,
        "unit": "second",
        "loops": 1,
        "cpu_model_name": env.get("cpu_model"),
        "cpu_count": env.get("cores_logical"),
        "python_version": env.get("python"),
        "platform": env.get("os"),
        "hostname": env.get("hostname"),
        "date": row.get("started_at"),
        "commit_id": env.get("git_commit"),
        "commit_dirty": None if env.get("git_dirty") is None else str(env["git_dirty"]),
        "machine_fingerprint": row["machine"],
        "backend": row["backend"],
        "backend_version": row.get("backend_version"),
        "threads": row["threads"],
        "spec_hash": row["spec_hash"],
        "session": row["session"],
        "mem_max_rss": row.get("peak_rss_bytes"),
        # Time to accuracy; absent when the run never reached the target.
        "target": target.label(),
        "time_to_target_s": time_to_target(row.get("curve") or [], target),
        **versions,
        **{f"build_{k}": v for k, v in (row.get("build_info") or {}).items()},
    }
    # pyperf takes str, int and float values; absent, empty and NaN entries are left out.
    return {
        key: int(value) if key in ("cpu_count", "mem_max_rss") else value
        for key, value in metadata.items()
        if isinstance(value, str | int | float)
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
        and value != ""
    }


def to_pyperf(frame: pd.DataFrame) -> pyperf.BenchmarkSuite:
    """One benchmark per comparability key; one pyperf run (one value) per ok run."""
    benchmarks = []
    ok = frame[(frame["status"] == "ok") & frame["train_time_s"].notna()] if len(frame) else frame
    target = target_of(frame)
    for key, group in groups(ok):
        name = benchmark_name(key, group.iloc[0], frame)
        runs = [
            pyperf.Run(
                [float(row["train_time_s"])],
                metadata=run_metadata(row, name, target),
                collect_metadata=False,  # the metadata of the machine that ran it, not of this one
            )
            for _, row in group.iterrows()
        ]
        benchmarks.append(pyperf.Benchmark(runs))
    if not benchmarks:
        raise ResultsError("no ok runs to export")
    return pyperf.BenchmarkSuite(benchmarks)


class PyperfExporter:
    def serialize(self, data: ExportData) -> bytes:
        text = io.StringIO()
        to_pyperf(data.frame).dump(text, compact=True)
        return text.getvalue().encode()
