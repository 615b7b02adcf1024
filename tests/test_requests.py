"""The command line becomes a frozen request; a script can build one and run it the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.arguments import build_parser
from harness.cli import to_request
from harness.commands import execute
from harness.requests import (
    BackendChoice,
    ExportRequest,
    Flags,
    Output,
    RunRequest,
    VerifyRequest,
    WorkRequest,
)
from tests.helpers import make_record, make_session


def _request(*argv: str):
    return to_request(build_parser().parse_args(list(argv)))


def test_run_arguments_become_one_typed_request():
    request = _request(
        "run", "--backend", "numpy", "--backend", "rust", "--threads", "1,2", "--set", "lr=0.05",
        "--repeats", "3", "--pin", "--warmup", "--timeout", "0", "--results-dir", "out", "-q",
    )  # fmt: skip
    assert request == RunRequest(
        work=WorkRequest(
            backends=BackendChoice(names=("numpy", "rust")),
            overrides=("lr=0.05",),
            threads=(1, 2),
            repeats=3,
        ),
        results_dir=Path("out"),
        timeout_s=0.0,
        flags=Flags(pin=True, warmup=True),
        output=Output(quiet=True),
    )


@pytest.mark.parametrize("flag", ["--no-gemm-rate", "--no-roofline"])
def test_both_names_of_the_gemm_rate_flag_turn_it_off(flag):
    assert _request("run", "--all").measure_gemm_rate is True
    assert _request("run", "--all", flag).measure_gemm_rate is False


def test_verify_without_a_backend_means_every_available_one():
    assert _request("verify").backends == BackendChoice(all=True)
    assert _request("verify", "--backend", "numpy").backends == BackendChoice(names=("numpy",))
    assert isinstance(_request("verify"), VerifyRequest)


def test_export_pyperf_shorthand_is_format_and_out():
    request = _request("export", "--pyperf", "suite.json")
    assert (request.format, request.out) == ("pyperf", Path("suite.json"))


def test_resume_names_every_work_option_it_refuses():
    work = WorkRequest(backends=BackendChoice(all=True), quick=True, threads=(1,))
    assert work.options_given() == ["--all", "--quick", "--threads"]


def test_a_script_builds_a_request_and_runs_it(tmp_path, capsys):
    make_session(tmp_path, "s1", [make_record("numpy", 1.0, 0), make_record("numpy", 1.2, 1)])
    status = execute(ExportRequest(sessions=("s1",), format="json", results_dir=tmp_path))
    assert status == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["key"]["backend"] == "numpy" and row["runs"] == 2
