"""Ratios with bootstrap intervals and the verdicts drawn from them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.results.stats import Ratio, ratio_of_medians, verdict
from harness.results.summary import summarize, to_frame
from tests.helpers import run_record


def test_the_ratio_is_of_medians_and_its_interval_contains_it():
    ratio = ratio_of_medians([2.0, 2.2, 1.8, 2.1, 1.9], [1.0, 1.1, 0.9, 1.05, 0.95])
    assert ratio.value == pytest.approx(2.0)
    assert ratio.low < 2.0 < ratio.high
    assert ratio.text() == f"2.00× [{ratio.low:.2f}–{ratio.high:.2f}]"


def test_the_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        a = rng.lognormal(0, 0.05, 9)
        b = 1.3 * rng.lognormal(0, 0.05, 9)
        r = ratio_of_medians(b, a)
        covered += r.low <= 1.3 <= r.high
    # Percentile bootstrap runs a little narrow at n=9; an interval that always covered (200 of
    # 200: 0.95**200 ≈ 4e-5 by chance) would be too wide to tell anything.
    assert 0.85 <= covered / 200 < 1.0


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (Ratio(2.0, 1.8, 2.2, 5, 5), "slower"),
        (Ratio(0.5, 0.45, 0.55, 5, 5), "faster"),
        (Ratio(1.0, 0.99, 1.01, 5, 5), "same"),
        (Ratio(1.0, 0.95, 1.05, 5, 5), "inconclusive"),
        (Ratio(2.0, 1.8, 2.2, 2, 5), "inconclusive"),  # too few repeats on one side
        (Ratio(2.0, math.nan, math.nan, 5, 5), "inconclusive"),
    ],
)
def test_verdicts(ratio, expected):
    assert verdict(ratio) == expected


def test_one_repeat_has_a_ratio_but_no_interval():
    ratio = ratio_of_medians([2.0], [1.0])
    assert ratio.value == 2.0 and not ratio.has_interval and ratio.text() == "2.00×"


def test_speed_ratios_default_to_numpy_and_follow_baseline():
    records = [run_record("numpy", t, repeat=i) for i, t in enumerate([4.0, 4.2, 3.8])]
    records += [run_record("rust", t, repeat=i) for i, t in enumerate([2.0, 2.1, 1.9])]
    rows = {r.backend: r for r in summarize(to_frame(records)).itertuples()}
    assert rows["rust"].speedup.value == pytest.approx(2.0)
    assert rows["numpy"].speedup.text() == "1.00× [1.00–1.00]"
    rows = {r.backend: r for r in summarize(to_frame(records), "rust").itertuples()}
    assert rows["numpy"].speedup.value == pytest.approx(0.5) and rows["numpy"].baseline == "rust"


def test_without_numpy_the_first_backend_run_is_the_baseline():
    records = [run_record("rust", 2.0, order=1), run_record("keras", 4.0, order=0)]
    (row, _) = summarize(to_frame(records)).itertuples()
    assert row.baseline == "keras"


def test_a_baseline_that_did_not_run_is_one_line(tmp_path, capsys, idx_dir):
    from harness.cli import main
    from tests.helpers import TINY, make_record, make_session

    make_session(tmp_path / "r", "s", [make_record("numpy", 1.0, 0)])
    assert main(["report", "--results-dir", str(tmp_path / "r"), "--baseline", "rust"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --baseline rust: no rust runs in these results; backends there: numpy; "
        "choose one of them"
    )
    argv = ["run", "--data-dir", str(idx_dir), "--results-dir", str(tmp_path / "new"), *TINY]
    assert main([*argv, "--backend", "numpy", "--baseline", "rust"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --baseline rust: no rust runs in this matrix; backends there: numpy; "
        "choose one of them"
    )
    assert not (tmp_path / "new").exists()
