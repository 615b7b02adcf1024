"""The results model: validation on load, schema versions, and grouping by the comparability key
in every reader (summary table, report, compare, pyperf export)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

from harness.cli import main
from harness.results.key import RunKey, machine_fingerprint
from harness.results.model import SCHEMA_VERSION, InvalidFile, RunRecord, Session
from harness.results.store import load_results
from harness.results.summary import summarize, to_frame
from harness.spec import Spec
from tests.helpers import make_record, make_session, run, run_record

MACHINE_A = {"hostname": "a", "machine_id": "1", "cpu_model": "AMD EPYC 7B13", "cores_logical": 2}
MACHINE_B = {
    "hostname": "a",
    "machine_id": "2",
    "cpu_model": "Intel Xeon 8481C",
    "cores_logical": 2,
}

# (what is damaged, how, the reason the reader gives)
DAMAGE = [
    ("truncated", None, "not valid JSON"),
    ("train_time_s missing", {"train_time_s": ...}, "required field missing: train_time_s"),
    ("threads a list", {"threads": [1]}, "threads: input should be a valid integer"),
    ("data a string", {"data": "x"}, "data: input should be an object"),
    ("curve a string", {"curve": "x"}, "curve: input should be a valid array"),
    ("status a number", {"status": 3}, "status: input should be 'ok', 'failed'"),
    ("backend null", {"backend": None}, "backend: input should be a valid string"),
    ("newer schema", {"schema_version": 999}, "schema version 999 is newer than this harness"),
    ("ok without accuracy", {"test_acc": None}, "status is ok but test_acc is null"),
    ("not an object", [], "expected a JSON object, found list"),
    ("roofline a string", {"env": {"roofline": "x"}}, "env.roofline: input should be an object"),
    ("curve point cut", {"curve": [{"iteration": 600}]}, "required fields missing: curve.0.train"),
    ("spec value wrong", {"spec": {"hidden": "x"}}, "spec: hidden='x' must be of type int"),
    ("NaN", {"train_time_s": float("nan")}, "holds NaN or infinity"),
    (
        "spec edited",
        {"spec": {**Spec().to_dict(), "iterations": 5}, "spec_hash": Spec().hash},
        f"spec_hash {Spec().hash} does not match its spec",
    ),
    ("accuracy above 1", {"test_acc": 1.5}, "test_acc: input should be less than or equal to 1"),
    ("negative time", {"train_time_s": -2.0}, "train_time_s: input should be greater than or"),
    ("minimal", "minimal", "required fields missing: repeat, threads, spec, spec_hash"),
]


def damaged_session(root: Path, name: str, how) -> Path:
    good = [make_record("numpy", t, i) for i, t in enumerate([1.0, 1.1])]
    session = make_session(root, name, good)
    target = session / "numpy-damaged.json"
    if how is None:
        target.write_text(json.dumps(make_record("numpy", 1.0, 9))[:150])
    elif how == "minimal":
        target.write_text(json.dumps({"backend": "numpy", "status": "ok"}))
    elif isinstance(how, list):
        target.write_text(json.dumps(how))
    else:
        record = make_record("numpy", 1.0, 9)
        for key, value in how.items():
            if value is ...:
                del record[key]
            else:
                record[key] = value
        target.write_text(json.dumps(record))
    return target


@pytest.mark.parametrize("command", ["report", "compare", "export"])
@pytest.mark.parametrize(("what", "how", "reason"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_records_are_listed_as_unreadable_by_every_reader(
    tmp_path, capsys, command, what, how, reason
):
    root = tmp_path / "results"
    damaged = damaged_session(root, "s", how)
    argv = {
        "report": ["report", "s", "--out", str(tmp_path / "out")],
        "compare": ["compare", "s", "s"],
        "export": ["export", "s", "--pyperf", str(tmp_path / "b.json")],
    }[command]
    assert main([*argv, "--results-dir", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"warning: unreadable: {damaged}: {reason}" in err
    if command == "report":
        assert f"unreadable: {damaged}: {reason}" in (tmp_path / "out" / "report.md").read_text()
        assert "| 2/2 " in (tmp_path / "out" / "report.md").read_text()  # never counted as a run
    if command == "export":
        (benchmark,) = pyperf.BenchmarkSuite.load(str(tmp_path / "b.json")).get_benchmarks()
        assert benchmark.get_nrun() == 2


def test_damage_is_one_line_and_no_traceback_from_the_command_line(tmp_path):
    root = tmp_path / "results"
    damaged_session(root, "s", {"threads": [1]})
    make_session(root, "t", [])
    for argv in (["report", "s", "--out", str(tmp_path / "o")], ["compare", "s", "t"]):
        result = subprocess.run(
            [sys.executable, "-m", "harness", *argv, "--results-dir", str(root)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.count("unreadable:") == 1


def test_a_session_of_only_unreadable_records_is_one_line_exit_2(tmp_path):
    root = tmp_path / "results"
    session = make_session(root, "s", [])
    (session / "numpy-t1-r0.json").write_text('{"backend": "numpy", "status": "ok"}')
    result = subprocess.run(
        [sys.executable, "-m", "harness", "report", "--results-dir", str(root), "--out", "o"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"error: no run records in {session}; 1 unreadable"


def test_schema_1_records_load_with_their_flags_inferred():
    old = make_record("numpy", 1.0, 0, pinned_cpus=[0], phases={"forward": 0.5})
    del old["schema_version"]
    record = RunRecord.from_json(old)
    assert record.schema_version == 1
    assert (record.pin, record.profile, record.warmup) == (True, True, False)
    del old["pinned_cpus"]
    assert RunRecord.from_json(old).pin is False


def test_a_schema_1_session_still_loads():
    results = load_results([Path(__file__).parent / "data" / "schema1-session"])
    assert len(results.records) == 2 and results.unreadable == []
    assert {r.schema_version for r in results.records} == {1}


def test_records_and_sessions_round_trip():
    record = run_record("numpy", 2.0, threads=None, variant="batch=50")
    assert RunRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert record.to_json()["schema_version"] == SCHEMA_VERSION
    session = {
        "session": "s",
        "created_at": "now",
        "spec": Spec().to_dict(),
        "spec_hash": Spec().hash,
        "data": {},
        "init_sha256": "i",
        "batches_sha256": "b",
        "matrix": [{"backend": "numpy", "target": "m:C", "threads": 1, "repeat": 0}],
        "pin": True,
    }
    loaded = Session.from_json(session)
    assert loaded.matrix[0].filename == "numpy-t1-r0.json" and loaded.profile is None
    assert Session.from_json(loaded.to_json()) == loaded
    with pytest.raises(InvalidFile, match=r"matrix\.0\.threads: input should be a valid integer"):
        Session.from_json({**session, "matrix": [{**session["matrix"][0], "threads": "1"}]})


def test_machine_fingerprint_tells_same_named_machines_apart():
    assert machine_fingerprint(MACHINE_A) != machine_fingerprint(MACHINE_B)
    assert machine_fingerprint(MACHINE_A) == machine_fingerprint({**MACHINE_A, "python": "x"})


def test_two_machines_are_two_rows_never_one_median():
    records = [run_record("numpy", t, env=MACHINE_A) for t in (5.0, 5.2, 5.1)]
    records += [run_record("numpy", t, env=MACHINE_B) for t in (10.0, 10.2, 10.1)]
    rows = summarize(to_frame(records))
    assert sorted(rows["train_time_s"]) == [5.1, 10.1]
    assert set(rows["machine_label"]) == {
        f"AMD EPYC 7B13, 2 cores, host a [{machine_fingerprint(MACHINE_A)[:6]}]",
        f"Intel Xeon 8481C, 2 cores, host a [{machine_fingerprint(MACHINE_B)[:6]}]",
    }


@pytest.mark.parametrize(
    ("extra_a", "extra_b", "column"),
    [
        ({}, {"pin": True}, "flags"),
        ({}, {"profile": True}, "flags"),
        ({}, {"warmup": True}, "flags"),
        ({"env": MACHINE_A}, {"env": MACHINE_B}, "machine"),
    ],
)
def test_report_separates_and_names_every_key_part(tmp_path, extra_a, extra_b, column):
    root = tmp_path / "results"
    make_session(root, "a", [make_record("numpy", 1.0, i, **extra_a) for i in range(2)])
    make_session(root, "b", [make_record("numpy", 3.0, i, **extra_b) for i in range(2)])
    out = tmp_path / "o"
    assert main(["report", "a", "b", "--results-dir", str(root), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    comparison = markdown.split("## Comparison")[1].split("\n## ")[0]
    rows = [line for line in comparison.splitlines() if "| numpy" in line]
    assert len(rows) == 2
    assert any(re.search(r"\| 1\.00 +\| 1\.00–1\.00 ", r) for r in rows)
    assert any(re.search(r"\| 3\.00 +\| 3\.00–3\.00 ", r) for r in rows)
    assert f"| {column} " in comparison
    assert "These runs differ in " in markdown.split("## Comparison")[0]


def test_iterations_differing_are_two_rows_with_the_spec_column(tmp_path):
    quick = {**Spec().to_dict(), "iterations": 600, "eval_every": 200}
    root = tmp_path / "results"
    make_session(root, "a", [make_record("numpy", 9.0, i) for i in range(3)])
    make_session(
        root,
        "b",
        [make_record("numpy", 0.5, i, spec=quick, spec_hash=Spec(**quick).hash) for i in range(3)],
    )
    out = tmp_path / "o"
    assert main(["report", "a", "b", "--results-dir", str(root), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "These runs differ in spec (iterations, eval_every)" in markdown
    assert "| iterations=600,eval_every=200 " in markdown
    assert "| iterations=10000,eval_every=600 " in markdown
    assert "iterations=600,eval_every=200" in (out / "index.html").read_text()


def test_sweep_points_are_columns_in_markdown_and_html(tmp_path):
    runs = []
    for batch in (50, 100):
        spec = {**Spec().to_dict(), "batch": batch}
        runs += [
            make_record(
                "numpy",
                batch / 10,
                i,
                spec=spec,
                spec_hash=Spec(**spec).hash,
                variant=f"batch={batch}",
            )
            for i in range(2)
        ]
    root = tmp_path / "results"
    make_session(root, "sweep", runs)
    out = tmp_path / "o"
    assert main(["report", "--results-dir", str(root), "--out", str(out)]) == 0
    for page in ("report.md", "index.html"):
        text = (out / page).read_text()
        assert "batch=50" in text and "batch=100" in text, page


def test_compare_pairs_only_equal_keys_and_says_why_not(tmp_path, capsys):
    root = tmp_path / "results"
    make_session(
        root,
        "a",
        [make_record("numpy", 1.0, i, env=MACHINE_A) for i in range(4)]
        + [make_record("rust", 1.0, i, env=MACHINE_A) for i in range(4)],
    )
    make_session(
        root,
        "b",
        [make_record("numpy", 2.0, i, env=MACHINE_A) for i in range(4)]
        + [make_record("rust", 1.0, i, env=MACHINE_B) for i in range(4)],
    )
    assert main(["compare", "a", "b", "--results-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "| numpy " in out and "| slower " in out
    assert "| rust " not in out
    assert "not paired: only in A: rust @1: B has rust at 1 thread only with another machine" in out
    assert "not paired: only in B: rust @1: A has rust at 1 thread only with another machine" in (
        out
    )


def test_pyperf_export_is_one_benchmark_per_key_with_metadata(tmp_path):
    env = {**MACHINE_A, "python": "3.11.7", "os": "Linux-6", "git_commit": "abc", "numpy": "2.4"}
    spec60 = {**Spec().to_dict(), "hidden": 60}
    root = tmp_path / "results"
    make_session(
        root,
        "s",
        [
            make_record("numpy", 1.0 + i / 10, i, env=env, started_at="2026-11-27T04:00:00+00:00")
            for i in range(3)
        ]
        + [
            make_record("numpy", 2.0, i, env=env, spec=spec60, spec_hash=Spec(**spec60).hash)
            for i in range(3)
        ],
    )
    path = tmp_path / "b.json"
    assert main(["export", "--results-dir", str(root), "--pyperf", str(path)]) == 0
    suite = pyperf.BenchmarkSuite.load(str(path))
    name50 = f"numpy-t1[hidden=50, spec {Spec().hash[:8]}]"
    name60 = f"numpy-t1[hidden=60, spec {Spec(**spec60).hash[:8]}]"
    assert sorted(suite.get_benchmark_names()) == [name50, name60]
    metadata = suite.get_benchmark(name50).get_metadata()
    assert metadata["cpu_model_name"] == "AMD EPYC 7B13"
    assert metadata["cpu_count"] == 2
    assert metadata["python_version"] == "3.11.7"
    assert metadata["platform"] == "Linux-6"
    assert metadata["hostname"] == "a"
    assert metadata["commit_id"] == "abc"
    assert metadata["numpy_version"] == "2.4"
    runs = suite.get_benchmark(name50).get_runs()
    assert runs[0].get_metadata()["date"] == "2026-11-27T04:00:00+00:00"


def test_run_keys_compare_by_every_part():
    base = run_record("numpy", 1.0)
    assert RunKey.of(base) == RunKey.of(run_record("numpy", 7.0, repeat=3))
    for change in ({"variant": "batch=50"}, {"threads": 2}, {"pin": True}, {"env": MACHINE_B}):
        assert RunKey.of(run_record("numpy", 1.0, **change)) != RunKey.of(base), change


# --- end to end on tiny IDX data: two real sessions of different specs ----------------------


def test_two_specs_from_real_runs_stay_apart_everywhere(idx_dir, tmp_path, capsys):
    assert run(idx_dir, tmp_path, "--backend", "numpy") == 0
    assert run(idx_dir, tmp_path, "--backend", "numpy", "--set", "hidden=60") == 0
    root = tmp_path / "results"
    a, b = sorted(
        (p.name for p in root.iterdir()),
        key=lambda name: json.loads((root / name / "session.json").read_text())["spec"]["hidden"],
    )
    capsys.readouterr()
    out = tmp_path / "o"
    assert main(["report", a, b, "--results-dir", str(root), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "These runs differ in spec (hidden)" in markdown
    table = markdown.split("## Outside the timed region")[0]
    assert table.count("| numpy ") == 2 and "hidden=50" in table and "hidden=60" in table

    path = tmp_path / "b.json"
    assert main(["export", a, b, "--results-dir", str(root), "--pyperf", str(path)]) == 0
    suite = pyperf.BenchmarkSuite.load(str(path))
    names = sorted(suite.get_benchmark_names())
    assert [name.split(", spec ")[0] for name in names] == [
        "numpy-t1[hidden=50",
        "numpy-t1[hidden=60",
    ]
    assert suite.get_benchmark(names[0]).get_metadata()["cpu_model_name"]

    capsys.readouterr()
    assert main(["compare", a, b, "--results-dir", str(root)]) == 0
    compared = capsys.readouterr().out
    assert "has ok runs in both A and B" in compared
    assert "only in A: numpy @1 [hidden=50]" in compared
    assert "only in B: numpy @1 [hidden=60]" in compared


def test_a_session_named_twice_is_read_once(tmp_path):
    session = make_session(tmp_path, "s", [make_record("numpy", 1.0, 0)])
    assert len(load_results([session, tmp_path / "s" / ".." / "s"]).records) == 1


def test_thread_counts_sort_as_numbers():
    records = [run_record("numpy", 1.0, threads=t) for t in (10, 2, None, 1)]
    assert list(summarize(to_frame(records))["threads"]) == ["1", "2", "10", "default"]


def test_one_session_on_two_machines_reads_side_by_side(tmp_path):
    """A cluster session: one session, records from two machines, the same work on each."""
    records = [
        make_record(b, t, i, env=MACHINE_A)
        for b, t in (("numpy", 2.0), ("rust", 1.0))
        for i in range(2)
    ]
    records += [
        make_record(b, t, i, env=MACHINE_B)
        for b, t in (("numpy", 4.0), ("rust", 3.0))
        for i in range(2)
    ]
    root = tmp_path / "results"
    make_session(root, "cluster", records)
    out = tmp_path / "o"
    assert main(["report", "cluster", "--results-dir", str(root), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    section = markdown.split("## Machines side by side")[1].split("## GEMM rate")[0]
    label_a = f"AMD EPYC 7B13, 2 cores, host a [{machine_fingerprint(MACHINE_A)[:6]}]"
    label_b = f"Intel Xeon 8481C, 2 cores, host a [{machine_fingerprint(MACHINE_B)[:6]}]"
    assert f"| {label_a} " in section and f"| {label_b} " in section
    numpy_row = next(line for line in section.splitlines() if line.startswith("| numpy"))
    assert "2.00 s" in numpy_row and "4.00 s" in numpy_row
    assert "Machines side by side" in (out / "index.html").read_text()


def test_one_machine_has_no_side_by_side_section(tmp_path):
    root = tmp_path / "results"
    make_session(root, "one", [make_record("numpy", 2.0, i) for i in range(2)])
    out = tmp_path / "o"
    assert main(["report", "one", "--results-dir", str(root), "--out", str(out)]) == 0
    assert "Machines side by side" not in (out / "report.md").read_text()
