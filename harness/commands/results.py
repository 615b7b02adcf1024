"""The commands that read stored results: ``report``, ``compare`` and ``export``."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.commands.console import (
    EXIT_OK,
    stdout_console,
    warn_unreadable,
    write_output,
)
from harness.errors import HarnessError, ResultsError
from harness.export import ExportData, export
from harness.export.terminal_table import print_summary
from harness.report.write import write_report
from harness.requests import CompareRequest, ExportRequest, ReportRequest
from harness.results import compare, gate
from harness.results.store import load_results, resolve_sessions
from harness.results.summary import (
    Summarized,
    check_baseline,
    summarize,
    to_frame,
    variation,
)


def cmd_report(request: ReportRequest) -> int:
    sessions = resolve_sessions(list(request.sessions), request.results_dir)
    out = request.out
    if out is None:  # next to the data it is made from, not over anything tracked
        first = sessions[0]
        many = f"report-{first.name}+{len(sessions) - 1}"
        out = first / "report" if len(sessions) == 1 else request.results_dir / many
    results = load_results(sessions)
    warn_unreadable(results)
    frame = to_frame(results.records, request.target)
    baseline = request.baseline
    check_baseline(baseline, list(frame["backend"]), "these results")
    summary = summarize(frame, baseline)  # once, for the files and the terminal alike
    written = write_report(results, out, baseline, request.target, Summarized(frame, summary))
    console = stdout_console()
    console.print(variation(frame).sentence(), soft_wrap=True)
    print_summary(console, frame, baseline, summary)
    print(f"report: {out / 'index.html'} ({len(written)} files in {out})")
    return EXIT_OK


def cmd_compare(request: CompareRequest) -> int:
    (a,) = resolve_sessions([request.a], request.results_dir)
    (b,) = resolve_sessions([request.b], request.results_dir)
    results_a, results_b = load_results([a]), load_results([b])
    warn_unreadable(results_a)
    warn_unreadable(results_b)
    frame_b = to_frame(results_b.records)
    if request.match == "any":
        print(
            "warning: --match any pairs runs of different machines: each ratio compares the "
            "machines as well as A and B",
            file=sys.stderr,
        )
    result = compare.compare(to_frame(results_a.records), frame_b, request.match)
    verdict = None
    if request.fail_if_slower is not None:
        failures = gate.gate(
            result, frame_b, request.fail_if_slower, request.accuracy_tolerance, request.match
        )
        if a.resolve() == b.resolve():
            failures.insert(0, gate.GateFailure("same session", _same_session(a)))
        verdict = gate.GateResult(
            request.fail_if_slower, request.accuracy_tolerance, request.match, failures
        )
    data = ExportData(frame_b, comparison=result, names=(str(a), str(b)), gate=verdict)
    sys.stdout.write(export("compare-json" if request.json else "compare-markdown", data).decode())
    if request.json and verdict is None:  # the pairs on stdout; what was not paired to stderr
        for unpaired in result.unpaired:
            print(f"warning: {compare.describe(unpaired)}", file=sys.stderr)
    elif a.resolve() == b.resolve():
        print(f"warning: {_same_session(a)}", file=sys.stderr)
    if verdict is not None:
        for failure in verdict.failures:
            print(failure, file=sys.stderr)
        if not verdict.failures:
            line = gate.passed_line(result, request.fail_if_slower, request.accuracy_tolerance)
            print(line, file=sys.stderr)
        return verdict.exit_status
    return EXIT_OK


def _same_session(session: Path) -> str:
    return (
        f"A and B are both {session}: a session compared with itself says nothing about a "
        "change (give two sessions)"
    )


def cmd_export(request: ExportRequest) -> int:
    if request.format == "pyperf" and request.out is None:
        raise HarnessError("--format pyperf writes a file: give it with --out FILE")
    results = load_results(resolve_sessions(list(request.sessions), request.results_dir))
    warn_unreadable(results)
    frame = to_frame(results.records, request.target)
    if frame.empty:
        raise ResultsError("no runs to export")
    payload = export(request.format, ExportData(frame))
    if request.out is None:
        sys.stdout.write(payload.decode())
        return EXIT_OK
    write_output(request.out, payload)
    if request.format == "pyperf":
        print(f"wrote {request.out}; try: python -m pyperf stats {request.out}")
    else:
        print(f"wrote {request.out}", file=sys.stderr)
    return EXIT_OK
