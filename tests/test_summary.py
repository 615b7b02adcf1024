from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest
from rich.console import Console

from harness.cli import print_summary
from harness.results.summary import summarize, thread_scaling, to_frame
from harness.spec import Spec
from tests.helpers import run_record


def record(backend, time_s, status="ok", threads=1, **extra):
    return run_record(backend, time_s, status=status, threads=threads, **extra)


def test_medians_over_ok_runs_and_counts_of_all():
    records = [record("a", t) for t in (3.0, 1.0, 2.0, 10.0)] + [record("a", None, "failed")]
    (row,) = summarize(to_frame(records)).itertuples()
    assert row.train_time_s == statistics.median([3.0, 1.0, 2.0, 10.0])
    assert (row.runs_ok, row.runs, row.statuses) == (4, 5, "failed")
    assert (row.train_time_min_s, row.train_time_max_s) == (1.0, 10.0)


def test_default_threads_are_labelled_default():
    (row,) = summarize(to_frame([record("b", 2.0, threads=None)])).itertuples()
    assert row.train_time_s == 2.0 and row.threads == "default"


def test_debug_build_is_flagged_in_the_table():
    records = [record("rust", 50.0, build_info={"profile": "debug"}), record("numpy", 9.0)]
    console = Console(record=True, width=120)
    print_summary(console, to_frame(records))
    text = console.export_text()
    assert "rust (debug build)" in text
    assert "numpy (debug build)" not in text


def test_spread_statistics_against_hand_computed_values():
    times = [10.0, 12.0, 11.0, 13.0]
    (row,) = summarize(to_frame([record("a", t) for t in times])).itertuples()
    assert row.train_time_s == 11.5
    # numpy's default (linear) quantiles: q1 = 10.75, q3 = 12.25
    assert row.train_time_iqr_s == 1.5
    mean = sum(times) / 4
    sample_std = (sum((t - mean) ** 2 for t in times) / 3) ** 0.5
    assert abs(row.train_time_cv - sample_std / mean) < 1e-12


def test_noisy_groups_are_warned_about():
    records = [record("calm", t) for t in (10.0, 10.1, 9.9)]
    records += [record("noisy", t) for t in (10.0, 14.0, 7.0)]
    console = Console(record=True, width=120)
    print_summary(console, to_frame(records))
    text = console.export_text()
    assert "noisy: 1 of 2 keys varied by more than 5% (CV) across repeats (noisy @1 " in text
    assert "calm @1" not in text


def test_percent_of_gemm_rate_uses_the_rate_of_the_runs_own_thread_count():
    # 16 cores, runs at 2 threads: scored against the 2-thread rate, never the 16-core one.
    env = {"roofline": {"gflops_1core": 40.0, "gflops_all_cores": 500.0, "cores": 16, "size": 64}}
    records = [
        record("a", 8.0, env=env, gemm_rate_gflops=40.0),
        record("a", 4.0, threads=2, env=env, gemm_rate_gflops=75.0),
    ]
    rows = {r.threads: r for r in summarize(to_frame(records)).itertuples()}
    assert rows["1"].gemm_rate_gflops == 40.0 and rows["2"].gemm_rate_gflops == 75.0
    assert rows["2"].gemm_bound_s == pytest.approx(159.8 / 75.0, rel=1e-3)


def test_schema_1_records_get_no_rate_for_a_thread_count_that_was_not_measured():
    env = {"roofline": {"gflops_1core": 40.0, "gflops_all_cores": 500.0, "cores": 16, "size": 64}}
    records = [record("a", t, threads=n, env=env) for t, n in ((8.0, 1), (4.0, 2), (1.0, 16))]
    rows = {r.threads: r for r in summarize(to_frame(records)).itertuples()}
    assert rows["1"].gemm_rate_gflops == 40.0 and rows["16"].gemm_rate_gflops == 500.0
    assert pd.isna(rows["2"].gemm_rate_gflops)


def test_runs_started_on_a_busy_machine_are_flagged_with_the_threshold(tmp_path):
    from harness.cli import main
    from tests.helpers import make_record, make_session

    records = [record("calm", 1.0, cpu_busy_before=0.05) for _ in range(3)]
    records += [record("busy", 1.0, cpu_busy_before=b) for b in (0.05, 0.6, 0.9)]
    console = Console(record=True, width=200)
    print_summary(console, to_frame(records))
    text = console.export_text()
    assert "busy: 2 of 6 runs started while other processes kept more than 20% of the CPUs" in text
    assert "(busy @1: 2 of 3)" in text and "calm @1" not in text
    runs = [make_record("numpy", 1.0, i, cpu_busy_before=0.5) for i in range(2)]
    make_session(tmp_path / "r", "s", runs)
    assert main(["report", "--results-dir", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "⚠ busy: 2 of 2 runs started while other processes" in report


def test_chart_labels_name_the_flags_that_tell_keys_apart():
    from harness.results.summary import group_labels

    frame = to_frame([record("numpy", 1.0), record("numpy", 2.0, pin=True)])
    assert sorted(group_labels(frame).values()) == ["numpy @1t [none]", "numpy @1t [pin]"]


def test_thread_scaling_is_the_ratio_of_medians_of_runs_that_differ_in_threads_alone():
    records = [record("a", t) for t in (10.0, 10.4, 9.8, 11.0)]
    records += [record("a", t, threads=2) for t in (6.0, 6.5, 5.9, 6.2)]
    records += [record("a", None, "failed", threads=2)]  # not a time
    records += [record("b", t, threads=2) for t in (1.0, 1.1)]  # another backend
    scaling = thread_scaling(to_frame(records), "a", "2")
    assert scaling.value == pytest.approx(statistics.median([10.0, 10.4, 9.8, 11.0]) / 6.1)
    assert scaling.low < scaling.value < scaling.high
    # Its extremes: the slowest 1-thread run over the fastest 2-thread one, and the reverse.
    assert scaling.high <= 11.0 / 5.9 and scaling.low >= 9.8 / 6.5
    assert (scaling.n_over, scaling.n_under) == (4, 4)


def test_thread_scaling_mixes_no_unlike_runs():
    other_spec = {**Spec().to_dict(), "lr": 0.05}
    one = [record("a", t) for t in (10.0, 11.0)]
    two = [record("a", t, threads=2, spec=other_spec) for t in (6.0, 6.5)]
    # The 1-thread runs have another spec: no figure rather than a mixed one.
    assert math.isnan(thread_scaling(to_frame(one + two), "a", "2").value)
    # No 1-thread runs, or a sweep (two keys at 2 threads): no single figure either.
    assert math.isnan(thread_scaling(to_frame(two), "a", "2").value)
    sweep = two + [record("a", t, threads=2) for t in (6.0, 6.5)] + one
    assert math.isnan(thread_scaling(to_frame(sweep), "a", "2").value)
    assert math.isnan(thread_scaling(to_frame(one), "a", "2").value)


def test_many_busy_or_noisy_keys_fold_into_one_line_each():
    records = []
    for name in ("a", "b", "c"):
        records += [record(name, t, cpu_busy_before=0.5) for t in (10.0, 14.0, 7.0)]
    console = Console(record=True, width=400)
    print_summary(console, to_frame(records))
    text = console.export_text()
    assert text.count("busy:") == 1 and "busy: 9 of 9 runs started" in text
    assert text.count("noisy:") == 1 and "noisy: 3 of 3 keys varied" in text


def test_runs_of_two_commits_pooled_into_one_median_are_warned_about():
    records = [record("numpy", 1.0, env={"git_commit": "aaaaaaa111"}) for _ in range(2)]
    records += [record("numpy", 1.1, env={"git_commit": "bbbbbbb222"}) for _ in range(2)]
    console = Console(record=True, width=300)
    print_summary(console, to_frame(records))
    text = " ".join(console.export_text().split())
    assert "mixed numpy @1: its ok runs come from 2 commits (aaaaaaa, bbbbbbb)" in text
