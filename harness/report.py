"""The report, from stored run records only: report.md, charts (PNG + SVG) and one index.html.

Nothing is re-run. Every file is rendered into a scratch directory first and moved into place
only when all of them exist, so a failure never leaves half a report.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import charts
from harness.errors import ResultsError
from harness.records import SESSION_FILE, load_records
from harness.summary import NOISY_CV, fmt, summarize, to_frame


@dataclass(frozen=True)
class Loaded:
    frame: pd.DataFrame
    sessions: list[Path]
    problems: list[str]  # unreadable records, skipped
    session_info: list[dict[str, Any]]


def resolve_sessions(names: list[str], results_root: Path) -> list[Path]:
    """Session directories from names: paths, session ids under the root, or ``latest``."""
    sessions = []
    for name in names or ["latest"]:
        if name == "latest":
            if not results_root.is_dir():
                raise ResultsError(
                    f"results directory {results_root} does not exist; run "
                    "'python -m harness run' first or pass --results-dir"
                )
            found = sorted(p for p in results_root.iterdir() if (p / SESSION_FILE).exists())
            if not found:
                raise ResultsError(
                    f"no sessions in {results_root}; run 'python -m harness run' "
                    "first or pass --results-dir"
                )
            sessions.append(found[-1])
        elif Path(name).is_dir():
            sessions.append(Path(name))
        elif (results_root / name).is_dir():
            sessions.append(results_root / name)
        else:
            raise ResultsError(f"no results at {name} (nor {results_root / name})")
    return sessions


def load(sessions: list[Path]) -> Loaded:
    """All records of the sessions in one DataFrame; the one loader report/compare/export use."""
    records, problems, info = [], [], []
    for session in sessions:
        found, bad = load_records(session)
        records += found
        problems += bad
        try:
            info.append(json.loads((session / SESSION_FILE).read_text()))
        except (OSError, ValueError):
            info.append({})
    if not records:
        raise ResultsError(f"no run records in {', '.join(str(s) for s in sessions)}")
    return Loaded(to_frame(records), sessions, problems, info)


def _cv(cv: float | None) -> str:
    """Coefficient of variation of the repeats, flagged when the machine was too noisy."""
    if cv is None or pd.isna(cv):
        return "–"
    return f"{cv * 100:.1f} %" + (" ⚠" if cv > NOISY_CV else "")


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The published comparison's columns, one row per backend and thread count."""
    rows = []
    for row in summarize(frame).itertuples():
        name = f"{row.backend} (debug build)" if row.debug_build else row.backend
        rows.append(
            {
                "backend": name,
                "threads": row.threads,
                "CPU use": fmt(row.cpu_util * 100 if pd.notna(row.cpu_util) else None, ".0f", " %"),
                "train time (median [min–max])": (
                    f"{fmt(row.train_time_s, '.2f')} s [{fmt(row.train_time_min_s, '.2f')}–"
                    f"{fmt(row.train_time_max_s, '.2f')}]"
                ),
                "train acc": fmt(row.train_acc, ".4f"),
                "test acc": fmt(row.test_acc, ".4f"),
                "CV": _cv(row.train_time_cv),
                "speed-up vs numpy": fmt(row.speedup_vs_numpy, ".2f", "×"),
                "GFLOP/s": fmt(row.gflops, ".1f"),
                "% of peak": fmt(
                    row.gflops / row.peak_gflops * 100 if pd.notna(row.peak_gflops) else None,
                    ".0f",
                    " %",
                ),
                "peak RSS": fmt(
                    row.peak_rss_bytes / 2**20 if pd.notna(row.peak_rss_bytes) else None,
                    ".0f",
                    " MiB",
                ),
                "setup": fmt(row.setup_time_s, ".2f", " s"),
                "runs ok": f"{row.runs_ok}/{row.runs}",
            }
        )
    return pd.DataFrame(rows)


def thread_audit(frame: pd.DataFrame) -> pd.DataFrame:
    """Threads asked for against threads used, per backend and thread count."""
    rows = []
    for (backend, threads), group in frame.groupby(["backend", "threads"], sort=True):
        pools, told = set(), set()
        for env, build in zip(group["env"], group["build_info"], strict=True):
            for pool in (env or {}).get("blas", []) if isinstance(env, dict) else []:
                pools.add(f"{pool.get('internal_api')}={pool.get('num_threads')}")
            if isinstance(build, dict) and "tf_intra_op_threads" in build:
                told.add(
                    f"TF intra={build['tf_intra_op_threads']} inter={build['tf_inter_op_threads']}"
                )
        observed = pd.to_numeric(group["threads_observed"], errors="coerce").max()
        rows.append(
            {
                "backend": backend,
                "threads asked": threads,
                "BLAS pools (threadpoolctl)": ", ".join(sorted(pools)) or "–",
                "told in code": ", ".join(sorted(told)) or "–",
                "peak process threads": fmt(observed, ".0f"),
                "CPU use": fmt(group["cpu_util"].median() * 100, ".0f", " %"),
            }
        )
    return pd.DataFrame(rows)


def roofline_lines(frame: pd.DataFrame) -> list[str]:
    for env in frame["env"]:
        roofline = env.get("roofline") if isinstance(env, dict) else None
        if roofline:
            gflop = frame["job_gflop"].dropna()
            job = gflop.median() if not gflop.empty else None
            lines = [
                f"float32 GEMM, NumPy, {roofline['size']}² square: "
                f"{roofline['gflops_1core']:.1f} GFLOP/s on one core, "
                f"{roofline['gflops_all_cores']:.1f} GFLOP/s on {roofline['cores']} cores"
            ]
            if job:
                lines.append(
                    f"FLOP floor of the job ({job:.1f} GFLOP): "
                    f"{job / roofline['gflops_1core']:.2f} s on one core, "
                    f"{job / roofline['gflops_all_cores']:.2f} s on all cores"
                )
            return lines
    return ["not measured in these sessions (run without --no-roofline)"]


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame[frame["status"] != "ok"]
    return pd.DataFrame(
        {
            "backend": bad["backend"],
            "threads": bad["threads"],
            "repeat": bad["repeat"],
            "status": bad["status"],
            "error": [str(e or "").strip().splitlines()[0] if e else "" for e in bad["error"]],
        }
    )


def same_work_check(frame: pd.DataFrame) -> list[str]:
    """One line per spec: did every run of it get the same initial parameters and batches?"""
    lines = []
    for column in ("spec_hash", "init_sha256", "batches_sha256"):
        if column not in frame:
            return ["runs carry no init/batch hashes; cannot check they did the same work"]
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


def _environment(loaded: Loaded) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for info in loaded.session_info:
        env.update(info.get("env") or {})
    first = loaded.frame.iloc[0]
    blas = (first.get("env") or {}).get("blas") if isinstance(first.get("env"), dict) else None
    if blas:
        env["blas"] = ", ".join(
            f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
            for p in blas
        )
    builds = {
        f"{r['backend']}": ", ".join(f"{k}={v}" for k, v in (r["build_info"] or {}).items())
        for _, r in loaded.frame.iterrows()
        if isinstance(r["build_info"], dict)
    }
    env["build info"] = "; ".join(f"{b}: {i}" for b, i in sorted(builds.items()) if i) or "–"
    versions = loaded.frame.drop_duplicates("backend")
    if "backend_version" in versions:
        env["backend versions"] = "; ".join(
            f"{r['backend']}: {r['backend_version']}" for _, r in versions.iterrows()
        )
    return env


def _specs(loaded: Loaded) -> list[dict[str, Any]]:
    unique = {json.dumps(s, sort_keys=True) for s in loaded.frame["spec"] if isinstance(s, dict)}
    return [json.loads(s) for s in sorted(unique)]


def render_markdown(loaded: Loaded, chart_names: list[str]) -> str:
    lines = [
        "# mlp-bench report",
        "",
        f"Sessions: {', '.join(s.name for s in loaded.sessions)}",
        "",
        "## Comparison",
        "",
        "Medians over the ok runs of each backend and thread count. CPU use = CPU seconds ÷ "
        "wall seconds of the timed training (200 % = two busy cores). GFLOP/s = the job's "
        "FLOPs ÷ median training time.",
        "",
        comparison_table(loaded.frame).to_markdown(index=False, disable_numparse=True),
        "",
    ]
    lines += ["## Roofline", ""]
    lines += [f"- {line}" for line in roofline_lines(loaded.frame)] + [""]
    lines += [
        "## Thread audit",
        "",
        thread_audit(loaded.frame).to_markdown(index=False, disable_numparse=True),
        "",
    ]
    lines += ["## Same work?", ""]
    lines += [f"- {line}" for line in same_work_check(loaded.frame)] + [""]
    bad = failures(loaded.frame)
    lines += ["## Runs that did not finish ok", ""]
    lines += [bad.to_markdown(index=False, disable_numparse=True) if not bad.empty else "None.", ""]
    if loaded.problems:
        lines += ["## Records that could not be read", ""]
        lines += [f"- {p}" for p in loaded.problems] + [""]
    if chart_names:
        lines += ["## Charts", ""]
        lines += [f"![{name}]({name}.png)" for name in chart_names] + [""]
    lines += ["## Environment", ""]
    lines += [f"- **{k}**: {v}" for k, v in _environment(loaded).items()] + [""]
    lines += ["## Spec", ""]
    for spec in _specs(loaded):
        lines += ["```json", json.dumps(spec, indent=1), "```", ""]
    return "\n".join(lines)


def render_html(loaded: Loaded, chart_pngs: dict[str, Path]) -> str:
    """One self-contained page: styles inline, charts as data: URIs, no external request."""
    images = "\n".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"></figure>'
        for name, path in chart_pngs.items()
    )
    bad = failures(loaded.frame)
    environment = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in _environment(loaded).items()
    )
    specs = "".join(f"<pre>{html.escape(json.dumps(s, indent=1))}</pre>" for s in _specs(loaded))
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in loaded.problems)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlp-bench report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; }}
pre {{ background: #f6f6f6; padding: 0.5rem; }}
</style></head><body>
<h1>mlp-bench report</h1>
<p>Sessions: {html.escape(", ".join(s.name for s in loaded.sessions))}</p>
<h2>Comparison</h2>
<p>Medians over the ok runs of each backend and thread count. CPU use = CPU seconds ÷ wall
seconds of the timed training (200 % = two busy cores).</p>
{comparison_table(loaded.frame).to_html(index=False, border=0)}
<h2>Roofline</h2>
<ul>{"".join(f"<li>{html.escape(line)}</li>" for line in roofline_lines(loaded.frame))}</ul>
<h2>Thread audit</h2>
{thread_audit(loaded.frame).to_html(index=False, border=0)}
<h2>Same work?</h2>
<ul>{"".join(f"<li>{html.escape(line)}</li>" for line in same_work_check(loaded.frame))}</ul>
<h2>Runs that did not finish ok</h2>
{bad.to_html(index=False, border=0) if not bad.empty else "<p>None.</p>"}
{f"<h2>Records that could not be read</h2><ul>{problems}</ul>" if problems else ""}
<h2>Charts</h2>
{images}
<h2>Environment</h2>
<table>{environment}</table>
<h2>Spec</h2>
{specs}
</body></html>
"""


def write_report(loaded: Loaded, out_dir: Path) -> list[Path]:
    """Render everything into a scratch directory, then move the files into ``out_dir``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=out_dir, prefix=".report-"))
    except OSError as exc:
        raise ResultsError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    try:
        rendered = charts.render_all(loaded.frame, scratch)
        (scratch / "report.md").write_text(render_markdown(loaded, list(rendered)))
        pngs = {name: paths[0] for name, paths in rendered.items()}
        (scratch / "index.html").write_text(render_html(loaded, pngs))
        written = []
        for path in sorted(scratch.iterdir()):
            os.replace(path, out_dir / path.name)
            written.append(out_dir / path.name)
        return written
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
