"""Report, compare and export from stored records only (synthetic sessions; nothing is run)."""

from __future__ import annotations

import html
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.spec import Spec
from tests.helpers import make_record, make_session

CHARTS = ("training_time", "cpu_utilisation", "accuracy", "time_to_accuracy", "learning_curves")


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    make_session(
        root,
        "20260101-000000-aaaa",
        [
            *(make_record("numpy", t, i) for i, t in enumerate([9.0, 11.0, 10.0])),
            *(make_record("rust", t, i) for i, t in enumerate([3.0, 1.0, 2.0])),
            make_record("rust", 0, 3, status="failed"),
        ],
    )
    return root


def test_report_writes_every_file(results, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--results-dir", str(results), "--out", str(out)]) == 0
    expected = {"report.md", "index.html"} | {f"{c}.{s}" for c in CHARTS for s in ("png", "svg")}
    assert {p.name for p in out.iterdir()} == expected
    assert all((out / name).stat().st_size > 500 for name in expected)
    assert "report: " in capsys.readouterr().out


def test_table_numbers_are_the_medians(results, tmp_path):
    out = tmp_path / "report"
    main(["report", "latest", "--results-dir", str(results), "--out", str(out)])
    markdown = (out / "report.md").read_text()
    rust_median = statistics.median([3.0, 1.0, 2.0])
    numpy_median = statistics.median([9.0, 11.0, 10.0])
    rust_row = next(line for line in markdown.splitlines() if line.startswith("| rust "))
    assert f"| {rust_median:.2f} " in rust_row and "| 1.00–3.00 " in rust_row
    assert f"{numpy_median / rust_median:.2f}× [" in rust_row
    assert f"{159.8 / rust_median:.1f}" in rust_row  # GFLOP/s of the default job
    assert "3/4" in rust_row
    # The failed run is listed with its error, not dropped.
    assert re.search(r"\| rust .*\| failed .*\| failed: it broke", markdown)


def test_missing_optional_and_unknown_fields_still_report(tmp_path):
    bare = make_record("numpy", 5.0, 0, brand_new_field={"x": 1})
    for optional in ("cpu_util", "curve", "peak_rss_bytes", "setup_time_s", "build_info"):
        del bare[optional]
    root = tmp_path / "results"
    make_session(root, "s1", [bare])
    assert main(["report", "--results-dir", str(root), "--out", str(tmp_path / "o")]) == 0
    assert "| numpy " in (tmp_path / "o" / "report.md").read_text()


def test_unreadable_record_is_skipped_and_named(results, tmp_path, capsys):
    session = next(results.iterdir())
    (session / "broken.json").write_text('{"backend": "numpy", "stat')
    assert main(["report", "--results-dir", str(results), "--out", str(tmp_path / "o")]) == 0
    line = f"unreadable: {session / 'broken.json'}: not valid JSON"
    assert line in capsys.readouterr().err
    assert line in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("setup", ["missing", "empty", "no-records"])
def test_no_results_is_one_line(tmp_path, setup):
    root = tmp_path / "results"
    if setup == "empty":
        root.mkdir()
    elif setup == "no-records":
        make_session(root, "s1", [])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "report",
            "--results-dir",
            str(root),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    message = {
        "missing": "does not exist",
        "empty": "no sessions in",
        "no-records": "no run records in",
    }[setup]
    assert message in result.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def compare_json(tmp_path, a_times, b_times, capsys) -> dict:
    root = tmp_path / "results"
    make_session(root, "a", [make_record("numpy", t, i) for i, t in enumerate(a_times)])
    make_session(root, "b", [make_record("numpy", t, i) for i, t in enumerate(b_times)])
    assert main(["compare", "a", "b", "--results-dir", str(root), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    return row


def test_compare_twice_as_slow(tmp_path, capsys):
    a = [1.00, 1.02, 0.98, 1.01, 0.99]
    row = compare_json(tmp_path, a, [2 * t for t in a], capsys)
    assert row["verdict"] == "slower"
    assert row["ratio_b_over_a"] == pytest.approx(2.0)
    assert row["p_value"] < 0.05


def test_compare_identical_distributions(tmp_path, capsys):
    a = [1.000, 1.002, 0.998, 1.001, 0.999]
    row = compare_json(tmp_path, a, list(reversed(a)), capsys)
    assert row["verdict"] == "same"
    assert row["ratio_b_over_a"] == pytest.approx(1.0)
    assert 0.98 <= row["ci_low"] <= 1 <= row["ci_high"] <= 1.02


def test_compare_noise_wider_than_the_change_is_inconclusive(tmp_path, capsys):
    a = [1.00, 1.10, 0.90, 1.05, 0.95]
    row = compare_json(tmp_path, a, [t * 1.03 for t in reversed(a)], capsys)
    assert row["verdict"] == "inconclusive"
    assert row["ci_low"] < 1 < row["ci_high"]


def test_compare_json_has_the_documented_keys(tmp_path, capsys):
    row = compare_json(tmp_path, [1.0, 1.1, 0.9], [2.0, 2.2, 1.8], capsys)
    assert {"key", "ratio", "ci_low", "ci_high", "verdict", "n_a", "n_b"} <= set(row)
    assert (row["n_a"], row["n_b"], row["verdict"]) == (3, 3, "slower")
    assert row["key"]["backend"] == "numpy" and row["ratio"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    # A 0 % limit is never ruled out by an interval of any width: the gate cannot tell (3).
    ("slowdown", "limit", "status"),
    [(2.0, 10, 1), (2.0, 150, 0), (1.0, 0, 3), (1.0, 5, 0)],
)
def test_compare_fail_if_slower_gates(tmp_path, capsys, slowdown, limit, status):
    root = tmp_path / "results"
    a = [1.00, 1.02, 0.98, 1.01, 0.99]
    make_session(root, "a", [make_record("numpy", t, i) for i, t in enumerate(a)])
    make_session(root, "b", [make_record("numpy", slowdown * t, i) for i, t in enumerate(a)])
    argv = ["compare", "a", "b", "--results-dir", str(root), "--fail-if-slower", str(limit)]
    assert main(argv) == status
    err = capsys.readouterr().err
    assert ("gate: slower: numpy @1: B/A" in err) == (status == 1)


def test_compare_markdown(results, capsys):
    assert main(["compare", "latest", "latest", "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "| rust " in out and "| inconclusive " in out  # 3 repeats a side, 2× spread
    assert "1.000 [0.333–3.000]" in out and "no significant change" not in out


def test_pyperf_export_loads(results, tmp_path):
    import pyperf

    path = tmp_path / "bench.json"
    assert main(["export", "--pyperf", str(path), "--results-dir", str(results)]) == 0
    suite = pyperf.BenchmarkSuite.load(str(path))
    names = sorted(suite.get_benchmark_names())
    spec = f"[spec {Spec().hash[:8]}]"
    assert names == [f"numpy-t1{spec}", f"rust-t1{spec}"]
    assert sorted(suite.get_benchmark(f"rust-t1{spec}").get_values()) == [1.0, 2.0, 3.0]
    stats = subprocess.run(
        [sys.executable, "-m", "pyperf", "stats", str(path)], capture_output=True, text=True
    )
    assert stats.returncode == 0, stats.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("width", [1400, 420])
def test_html_renders_in_a_real_browser_with_no_outside_requests(results, tmp_path, width):
    out = tmp_path / "report"
    main(["report", "--results-dir", str(results), "--out", str(out)])
    page = (out / "index.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "page links outside"
    # Headless Chromium will not make a window narrower than 500 px, so the page goes into an
    # iframe of the wanted width (srcdoc: same origin, so the probe can look inside).
    probe = f"""<!doctype html><html><body style="margin:0">
<iframe id="page" style="width:{width}px;height:900px;border:0"
 srcdoc="{html.escape(page)}"></iframe>
<script>
const frame = document.getElementById("page");
frame.addEventListener("load", () => {{
  const win = frame.contentWindow, doc = frame.contentDocument;
  const wide = [...doc.body.querySelectorAll("*")].filter(
    e => e.getBoundingClientRect().right > win.innerWidth + 1 && !e.closest(".scroll"));
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({{
    images: [...doc.images].map(i => i.naturalWidth),
    requests: win.performance.getEntriesByType("resource").map(e => e.name),
    innerWidth: win.innerWidth,
    scrollWidth: doc.documentElement.scrollWidth,
    overflowing: wide.map(e => e.tagName + "." + e.className).slice(0, 5),
  }});
  document.body.appendChild(pre);
}});
</script></body></html>"""
    probed = tmp_path / "probed.html"
    probed.write_text(probe)
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1500,1000",
            "--dump-dom",
            "--virtual-time-budget=10000",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    state = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(state["images"]) == len(CHARTS)
    assert all(w > 0 for w in state["images"]), "a chart did not load"
    assert [r for r in state["requests"] if not r.startswith("data:")] == []
    assert state["innerWidth"] <= width
    assert state["scrollWidth"] <= state["innerWidth"], state  # no sideways scroll of the page
    assert state["overflowing"] == []


def test_report_flags_runs_that_got_different_work(tmp_path):
    root = tmp_path / "results"
    make_session(
        root, "s", [make_record("numpy", 1.0, 0), make_record("rust", 1.0, 0, init_sha256="other")]
    )
    assert main(["report", "--results-dir", str(root), "--out", str(tmp_path / "o")]) == 0
    markdown = (tmp_path / "o" / "report.md").read_text()
    assert (
        f"WARNING spec {Spec().hash}: runs got different work (2 init hashes, 1 batch "
        "hashes): numpy@1 r0, rust@1 r0" in markdown
    )


def test_report_confirms_runs_that_got_the_same_work(results, tmp_path):
    main(["report", "--results-dir", str(results), "--out", str(tmp_path / "o")])
    assert (
        "all 7 runs got the same initial parameters" in (tmp_path / "o" / "report.md").read_text()
    )


def test_sweep_reports_scaling_charts(tmp_path):
    runs = []
    for batch in (50, 100):
        for hidden in (25, 50):
            spec = {**Spec().to_dict(), "batch": batch, "hidden": hidden}
            runs.append(
                make_record(
                    "numpy",
                    batch * hidden / 1000,
                    0,
                    spec=spec,
                    variant=f"batch={batch},hidden={hidden}",
                )
            )
    root = tmp_path / "results"
    make_session(root, "sweep", runs)
    assert main(["report", "--results-dir", str(root), "--out", str(tmp_path / "o")]) == 0
    names = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"scaling_batch.png", "scaling_batch.svg", "scaling_hidden.png"} <= names


def test_every_chart_has_a_legend_on_every_panel(tmp_path):
    runs = []
    for batch in (50, 100):
        for hidden in (25, 50):
            spec = {**Spec().to_dict(), "batch": batch, "hidden": hidden}
            variant = f"batch={batch},hidden={hidden}"
            runs += [
                make_record(
                    "numpy",
                    batch * hidden / 1000 + r / 100,
                    r,
                    spec=spec,
                    variant=variant,
                    profile=True,
                    phases={"batch": 0.1, "forward": 0.5, "backward": 0.4, "update": 0.1},
                )
                for r in range(2)
            ]
    root = tmp_path / "results"
    make_session(root, "sweep", runs)
    out = tmp_path / "o"
    assert main(["report", "--results-dir", str(root), "--out", str(out)]) == 0
    svgs = sorted(out.glob("*.svg"))
    assert {p.stem for p in svgs} >= {*CHARTS, "scaling_batch", "scaling_hidden", "phases"}
    for svg in svgs:
        text = svg.read_text()
        assert 'id="legend_1"' in text, svg.name
    assert 'id="legend_2"' in (out / "learning_curves.svg").read_text()  # both panels


def test_pyperf_compare_to_never_pairs_exports_of_different_specs(tmp_path):
    """Each export holds one spec, so no name varies within it; the spec hash still tells them
    apart, and pyperf finds nothing to compare."""
    import pyperf

    root = tmp_path / "results"
    uniform = {**Spec().to_dict(), "init": "uniform"}
    make_session(root, "book", [make_record("numpy", t, i) for i, t in enumerate([1.0, 1.1, 1.2])])
    make_session(
        root,
        "uniform",
        [make_record("numpy", t, i, spec=uniform) for i, t in enumerate([1.0, 1.1, 1.2])],
    )
    paths = [tmp_path / "book.json", tmp_path / "uniform.json"]
    for session, path in zip(["book", "uniform"], paths, strict=True):
        assert main(["export", session, "--results-dir", str(root), "--pyperf", str(path)]) == 0
    names = [pyperf.BenchmarkSuite.load(str(p)).get_benchmark_names() for p in paths]
    assert names[0] != names[1] and not set(names[0]) & set(names[1])
    compared = subprocess.run(
        [sys.executable, "-m", "pyperf", "compare_to", *map(str, paths)],
        capture_output=True,
        text=True,
    )
    assert compared.returncode == 1
    assert "no benchmark in common" in compared.stderr


def test_the_headline_ranks_only_keys_that_did_the_job_and_says_when_it_cannot_tell(tmp_path):
    records = [make_record("numpy", t, i) for i, t in enumerate([1.0, 1.1, 0.9])]
    # Trains nothing, predicts one class: fast, and at chance accuracy.
    records += [make_record("one-class", 0.01, i, test_acc=0.1) for i in range(3)]
    records += [make_record("rust", 0.5, 0)]  # one run: no interval
    make_session(tmp_path, "s", records)
    out = tmp_path / "o"
    assert main(["report", "s", "--results-dir", str(tmp_path), "--out", str(out)]) == 0
    lines = (out / "report.md").read_text().splitlines()
    assert lines[2] == (
        "**fastest at 1 thread: rust, 0.50 s (2.00× numpy; too few repeats to say by how much)**  "
    )
    assert lines[3].startswith("**not ranked: one-class @1, test accuracy 0.1000, more than 0.01")
    comparison = (out / "report.md").read_text().split("## Comparison")[1].split("##")[0]
    rows = [line.split("|")[1].strip() for line in comparison.splitlines() if line[:2] == "| "]
    assert rows[1:] == ["one-class", "rust", "numpy"]  # fastest first, the header aside


def test_a_report_summarises_its_runs_once(tmp_path, monkeypatch, capsys):
    """The files and the terminal table are rendered from one summary, not one each."""
    from harness.results import summary

    calls = []
    real = summary.summarize

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    import importlib
    import sys

    for name in ("commands.results", "report.write", "report.html", "export.terminal_table"):
        importlib.import_module(f"harness.{name}")  # with everything they import
    # Every module that holds the name, so that no renderer can summarise on its own unseen.
    holders = [
        name
        for name, module in list(sys.modules.items())
        if name.startswith("harness") and getattr(module, "summarize", None) is real
    ]
    assert "harness.report.tables" in holders and "harness.export.rows" in holders
    for name in holders:
        monkeypatch.setattr(f"{name}.summarize", counting)
    records = [make_record(b, t, i) for b, t in (("numpy", 1.0), ("rust", 0.5)) for i in range(3)]
    make_session(tmp_path, "s", records)
    assert main(["report", "s", "--results-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert len(calls) == 1
