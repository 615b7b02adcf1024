"""The values the command line accepts (argparse ``type=`` functions): a bad one is one line
naming what was expected, before anything runs."""

from __future__ import annotations

import argparse
import math
import os

from harness.errors import HarnessError
from harness.requests import Target, parse_target


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 1")
    return value


def thread_counts(text: str) -> list[int | None]:
    if text == "default":
        return [None]
    if text == "all":
        return list(range(1, len(os.sched_getaffinity(0)) + 1))
    try:
        return [positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give thread counts ≥ 1 (1,2), 'all' (1 up to every CPU allowed) or "
            "'default' (each library's own setting)"
        ) from None


def percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a percentage ≥ 0")
    return value


def precision_percent(text: str) -> float:
    """``--precision``: a half-width in percent, above 0 (no interval is ever exactly a point)."""
    value = percent(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a percentage above 0, e.g. 2")
    return value


def accuracy_delta(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be an accuracy difference from 0 to 1")
    return value


def step_numbers(text: str) -> list[int]:
    """``1,10,100``: step numbers only (not "all" or "default", which mean nothing here)."""
    steps = []
    for part in text.split(","):
        try:
            steps.append(positive_int(part.strip()))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give step numbers ≥ 1 separated by commas, e.g. 1,10,100"
            ) from None
    return steps


def timeout_seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 0 seconds (0: no timeout)")
    return value  # 0 means no timeout; None (not given) means the default


def target(text: str) -> Target:
    try:
        return parse_target(text)
    except HarnessError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--target {text!r}: ")) from None
