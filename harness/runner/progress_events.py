"""The worker's progress pipe, read defensively: a backend shares the worker's descriptors."""

from __future__ import annotations

import json
import math
from typing import Any


class ProgressEvents:
    """Reads the worker's progress pipe: whole, well-formed events only; the rest is counted.

    A backend shares the worker's process and descriptors, so anything may arrive here: lines
    are bounded in length, and an event is passed on only if it has the expected fields and types.
    """

    MAX_LINE = 4096

    def __init__(self) -> None:
        self.buffer = b""
        self.junk = 0

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > self.MAX_LINE:  # no newline in sight: not an event of ours
            self.buffer, self.junk = b"", self.junk + 1
        events = []
        for line in lines:
            event = self._parse(line)
            if event is None:
                self.junk += 1
            else:
                events.append(event)
        return events

    @classmethod
    def _parse(cls, line: bytes) -> dict[str, Any] | None:
        if len(line) > cls.MAX_LINE:
            return None
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):  # "[[[[…" nests past the parser's limit
            return None
        if not isinstance(event, dict):
            return None
        if event.get("event") == "setup":
            return {"event": "setup"}
        if event.get("event") != "trained":
            return None
        iteration, test_acc, loss = event.get("iteration"), event.get("test_acc"), event.get("loss")
        if not (_real(iteration) and float(iteration).is_integer() and iteration >= 0):
            return None
        if not (_real(test_acc) and 0 <= test_acc <= 1) or not (loss is None or _real(loss)):
            return None
        return {"event": "trained", "iteration": int(iteration), "test_acc": test_acc, "loss": loss}


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
