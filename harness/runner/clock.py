"""The worker's clocks: wall and CPU time of everything a backend runs, call by call.

CPU time is the backend's whole process tree, so a budget can be held to it:
- the worker's own threads, exactly (``CLOCK_PROCESS_CPUTIME_ID``), less the harness's own
  threads (its watchdog), each read from its thread clock;
- every live descendant (a process backend's program, a pool's workers), with what each has
  reaped of its own children, from ``/proc`` (10 ms ticks);
- every descendant that ended and was reaped within the worker (``RUSAGE_CHILDREN``): a pool
  whose workers start and end inside one call still counts. The worker is the subreaper of all
  it starts, so an orphan's time comes back to it too.

``UntimedCalls`` times each call the harness makes into a backend outside ``train_steps``
(setup, params, predict, the rest), so the record says what the timed region left out.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import psutil


class TreeClock:
    """CPU seconds used by the worker and all its descendants, the harness's threads left out."""

    def __init__(self, harness_threads: tuple[int, ...] = ()) -> None:
        self.process = psutil.Process()
        self.harness_threads = harness_threads  # threading idents

    def start(self) -> float:
        """A reading to subtract from ``stop()``'s: its own cost (listing the descendants,
        milliseconds) is left out of the interval by reading the worker's clock last."""
        others = self._others()
        return others + self._own()

    def stop(self) -> float:
        own = self._own()
        return own + self._others()

    def _own(self) -> float:
        own = time.process_time()
        for ident in self.harness_threads:
            try:
                own -= time.clock_gettime(time.pthread_getcpuclockid(ident))
            except OSError:  # the thread ended: its time stays in the process total
                continue
        return own

    def _others(self) -> float:
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return reaped.ru_utime + reaped.ru_stime + sum(_cpu_of(p) for p in self.live())

    def live(self) -> list[psutil.Process]:
        try:
            return self.process.children(recursive=True)
        except psutil.Error:
            return []

    def threads(self) -> int:
        """Threads of the worker and its live descendants right now."""
        total = self.process.num_threads()
        for member in self.live():
            try:
                total += member.num_threads()
            except psutil.Error:
                continue
        return total


def _cpu_of(process: psutil.Process) -> float:
    try:
        t = process.cpu_times()
    except psutil.Error:  # ended between the listing and the reading: its parent reaps it
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class CallTime:
    """One kind of call: how often it was made, its wall and CPU seconds summed."""

    calls: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class Took:
    """One call's wall seconds, known when its ``with`` block ends."""

    wall_s: float = 0.0


class UntimedCalls:
    """Wall and CPU time of the calls into a backend that the training time leaves out."""

    def __init__(self, clock: TreeClock) -> None:
        self.clock = clock
        self.by_name: dict[str, CallTime] = {}

    @contextmanager
    def timing(self, name: str) -> Iterator[Took]:
        took = Took()
        cpu, wall = self.clock.start(), time.perf_counter()
        try:
            yield took
        finally:
            took.wall_s = time.perf_counter() - wall
            entry = self.by_name.setdefault(name, CallTime())
            entry.calls += 1
            entry.wall_s += took.wall_s
            entry.cpu_s += max(self.clock.stop() - cpu, 0.0)

    def to_json(self) -> dict[str, dict[str, float]]:
        return {name: asdict(entry) for name, entry in self.by_name.items()}
