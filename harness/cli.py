"""Command line: ``python -m harness run|report|compare|export|verify|new-backend|list``.

Exit status: 0 every run ok; 1 at least one run failed, timed out or diverged (or verify failed,
or compare --fail-if-slower tripped); 2 a user mistake (bad option, spec, data or backend),
reported in one line; 130 interrupted. A reader of standard output that goes away (``| head``)
ends the command quietly with the status it would have had; a closed standard stream (``>&-``)
reads as /dev/null.

Parsing needs only the grammar (harness.arguments) and the request types; the commands, and
pandas, SciPy and matplotlib with them, load after it, so ``--help``, ``--version`` and mistakes
answer at once. The parsed arguments stop here: the commands get a frozen request.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from harness.arguments import build_parser
from harness.requests import (
    BackendChoice,
    CompareRequest,
    ExportRequest,
    Flags,
    HistoryRequest,
    ListRequest,
    NewBackendRequest,
    Output,
    ReportRequest,
    Request,
    RunRequest,
    VerifyRequest,
    WorkRequest,
)


def main(argv: Sequence[str] | None = None) -> int:
    _open_closed_streams()
    request = to_request(build_parser().parse_args(argv))
    from harness import commands

    return commands.execute(request)


def _open_closed_streams() -> None:
    """/dev/null on each standard descriptor that was closed (``>&-``, a service with none).

    Left closed, the descriptor would be handed to the next file opened, a record among them,
    and whatever a worker process printed would land in it.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 – kept for the run


def _backends(args: argparse.Namespace) -> BackendChoice:
    return BackendChoice(
        all=getattr(args, "all", False),
        names=tuple(getattr(args, "backend", ())),
        paths=tuple(getattr(args, "backend_path", ())),
        commands=tuple(args.backend_cmd),
        command_files=tuple(args.backend_cmds),
    )


def _output(args: argparse.Namespace) -> Output:
    return Output(json=getattr(args, "json", False), quiet=args.quiet, verbose=args.verbose)


def to_request(args: argparse.Namespace) -> Request:
    """The request the parsed command line makes; the only reader of the Namespace."""
    command = args.command
    if command == "run":
        work = WorkRequest(
            backends=_backends(args),
            spec_file=args.spec,
            overrides=tuple(args.set),
            quick=args.quick,
            sweeps=tuple(args.sweep),
            threads=tuple(args.threads or ()),
            repeats=args.repeats,
            precision=args.precision,
            max_repeats=args.max_repeats,
        )
        return RunRequest(
            work=work,
            resume=args.resume,
            wait=args.wait,
            retry_failed=args.retry_failed,
            data_dir=args.data_dir,
            results_dir=args.results_dir,
            timeout_s=args.timeout,
            flags=Flags(pin=args.pin, profile=args.profile, warmup=args.warmup),
            measure_gemm_rate=not args.no_gemm_rate,
            cluster=args.cluster,
            cluster_wait_s=args.cluster_wait,
            baseline=args.baseline,
            output=_output(args),
            target=args.target,
        )
    if command == "verify":
        choice = _backends(args)
        return VerifyRequest(
            backends=choice if choice.given else BackendChoice(all=True),
            steps=args.steps,
            checkpoints=tuple(args.checkpoints or ()),
            overrides=tuple(args.set),
            data_dir=args.data_dir,
            threads=args.threads,
            timeout_s=args.timeout,
            output=_output(args),
        )
    if command == "report":
        return ReportRequest(
            sessions=tuple(args.results),
            out=args.out,
            baseline=args.baseline,
            results_dir=args.results_dir,
            target=args.target,
        )
    if command == "compare":
        return CompareRequest(
            a=args.a,
            b=args.b,
            results_dir=args.results_dir,
            json=args.json,
            fail_if_slower=args.fail_if_slower,
            accuracy_tolerance=args.accuracy_tolerance,
            match=args.match,
        )
    if command == "history":
        return HistoryRequest(
            sessions=tuple(args.results),
            results_dir=args.results_dir,
            backends=tuple(args.backend),
            threads=args.threads,
            match=args.match,
            threshold=args.threshold / 100,
            json=args.json,
            chart=args.chart,
        )
    if command == "export":
        return ExportRequest(
            sessions=tuple(args.results),
            format=args.format or ("pyperf" if args.pyperf else "json"),
            out=args.out or args.pyperf,
            results_dir=args.results_dir,
            target=args.target,
        )
    if command == "list":
        return ListRequest(backends=_backends(args), json=args.json)
    if command == "new-backend":
        return NewBackendRequest(name=args.name, directory=args.dir, lang=args.lang)
    raise AssertionError(f"the grammar has a command without a request: {command}")


def __getattr__(name: str) -> Any:
    """``from harness.cli import print_summary`` and friends, as before the split."""
    if name.startswith("__"):  # the import system asks for __path__ and the like
        raise AttributeError(name)
    from harness import commands

    return getattr(commands, name)
