"""Option groups that several commands share (backends, spec and data, timeout, --match), so
each reads and checks the same way wherever it appears."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import data
from harness.argument_types import timeout_seconds
from harness.requests import DEFAULT_TIMEOUT_S


def add_timeout(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--timeout",
        type=timeout_seconds,
        default=None,
        metavar="S",
        help=f"kill a worker after S seconds (default {DEFAULT_TIMEOUT_S:g}, or the resumed "
        "session's; 0: never)",
    )


def add_backend_choice(group: argparse._ActionsContainer, note: str) -> None:
    group.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a registered backend (repeatable; {note})",
    )
    group.add_argument(
        "--backend-path",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="a backend class that is not installed as a plugin (repeatable)",
    )
    add_command_backends(group)


def add_command_backends(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--backend-cmd",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="a program in any language speaking the process protocol "
        '(docs/process-protocol.md), e.g. "c=examples/c-backend/mlp-c" (repeatable)',
    )
    group.add_argument(
        "--backend-cmds",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help='a TOML file declaring such programs: [backend-cmd] NAME = "COMMAND ARGS" '
        "(repeatable)",
    )


def add_spec_and_data(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one spec value, e.g. --set lr=0.05 (repeatable; last wins)",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where the IDX files are (default: ${data.DATA_DIR_ENV}, the cache, then download)",
    )


def add_match(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--match",
        choices=("exact", "cpu", "any"),
        default="exact",
        help="which runs of two machines pair: exact, only the same machine (default); cpu, "
        "machines of one CPU model, core count and memory, as CI runners of one type are; any, "
        "whatever the machine (the ratio then compares the machines too)",
    )


def add_resume_options(command: argparse.ArgumentParser) -> None:
    """How ``run --resume`` treats another harness on the session and runs that did not end ok."""
    command.add_argument(
        "--wait",
        action="store_true",
        help="with --resume: wait for another "
        "harness running SESSION to finish (else: one line naming it, exit 2)",
    )
    command.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --resume: redo failed, "
        "timed-out and diverged runs too, not only lost ones (the old record stays)",
    )
