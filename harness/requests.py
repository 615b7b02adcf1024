"""What each command is asked to do, as frozen values: the command line's grammar ends here.

``harness.cli`` turns the parsed arguments into one of these; everything below the commands takes
a request (or the few values it needs from one), never the parsed command line. A script can
build a request itself and hand it to ``harness.commands.execute``.

Kept light (no pandas, no NumPy): the CLI imports it before ``--help`` answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

DEFAULT_TIMEOUT_S = 1800.0
# Without --threads, every backend runs with one thread, each library told so: a controlled,
# equal budget. Libraries' own defaults (--threads default) size pools from the machine, which
# on a busy one made torch several times slower than at 1 thread (issue #42).
DEFAULT_THREADS = 1
DEFAULT_REPEATS = 5  # 3 a side cannot tell a 5 % change from noise on these machines
DEFAULT_MAX_REPEATS = 20  # run --precision stops adding rounds to a cell here
DEFAULT_RESULTS_DIR = Path("results")
# compare's gate: the most B's median test accuracy may fall below A's. float32 runs of one
# backend on one machine agree to the digit; across libraries they differ by up to ~0.0005.
DEFAULT_ACCURACY_TOLERANCE = 0.002
# history: a step change is a change of more than this, surely (its whole 95 % interval).
DEFAULT_STEP_THRESHOLD = 0.05


def resolve_timeout(given: float | None, fallback: float | None) -> float | None:
    """``--timeout`` as the runner takes it: not given → ``fallback``; 0 → no timeout (None)."""
    return fallback if given is None else given or None


METRICS = ("test_acc", "train_acc")


@dataclass(frozen=True)
class Target:
    """Time to accuracy's target (``--target test_acc=0.97``); results/target.py reads runs
    against it."""

    metric: str  # one of METRICS
    value: float

    def label(self) -> str:
        return f"{self.metric}≥{self.value:g}"

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Target:
        return cls(str(data["metric"]), float(data["value"]))


# The book's test accuracy for this job is 0.9708 (ch05; the published comparison quotes it too):
# the default target is that, to two digits.
DEFAULT_TARGET = Target("test_acc", 0.97)


def parse_target(text: str) -> Target:
    """``test_acc=0.97`` → Target; a one-line error naming what was wrong otherwise."""
    metric, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or metric not in METRICS or not 0 < number <= 1:
        raise HarnessError(
            f"--target {text!r}: give METRIC=VALUE, METRIC one of {', '.join(METRICS)} and "
            "VALUE an accuracy in (0, 1], e.g. --target test_acc=0.97"
        )
    return Target(metric, number)


@dataclass(frozen=True)
class BackendChoice:
    """Which backends: every available one, registered names, classes by path, programs."""

    all: bool = False
    names: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # MODULE:CLASS
    commands: tuple[str, ...] = ()  # NAME=COMMAND, process-protocol programs
    command_files: tuple[Path, ...] = ()  # TOML files declaring such programs

    @property
    def given(self) -> bool:
        return bool(self.all or self.names or self.paths or self.commands or self.command_files)

    def options_given(self) -> list[str]:
        """The options that made this choice, as the user typed them."""
        options = {
            "--all": self.all,
            "--backend": self.names,
            "--backend-path": self.paths,
            "--backend-cmd": self.commands,
            "--backend-cmds": self.command_files,
        }
        return [option for option, value in options.items() if value]


@dataclass(frozen=True)
class Flags:
    """Measurement flags that change timings; stored in the session and in every record."""

    pin: bool = False
    profile: bool = False
    warmup: bool = False


@dataclass(frozen=True)
class Output:
    """How much a long command prints, and in what form."""

    json: bool = False
    quiet: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class WorkRequest:
    """The job and the backends it runs on: what a new ``run`` session is made of."""

    backends: BackendChoice = field(default_factory=BackendChoice)
    spec_file: Path | None = None
    overrides: tuple[str, ...] = ()  # KEY=VALUE, last wins
    quick: bool = False
    sweeps: tuple[str, ...] = ()  # KEY=V1,V2,…
    threads: tuple[int | None, ...] = ()  # empty: each library's default
    repeats: int | None = None  # None: DEFAULT_REPEATS
    # run --precision PCT: rounds added until each cell's median is known to ±PCT % (95 %).
    precision: float | None = None
    max_repeats: int = DEFAULT_MAX_REPEATS

    def options_given(self) -> list[str]:
        """The options that chose this work; ``--resume`` takes the session's instead."""
        options = {
            "--set": self.overrides,
            "--spec": self.spec_file,
            "--quick": self.quick,
            "--sweep": self.sweeps,
            "--threads": self.threads,
            "--repeats": self.repeats,
            "--precision": self.precision,
        }
        return self.backends.options_given() + [o for o, value in options.items() if value]


@dataclass(frozen=True)
class RunRequest:
    work: WorkRequest = field(default_factory=WorkRequest)
    resume: str | None = None  # a session to finish instead of a new one
    wait: bool = False  # --resume of a session another harness holds: wait for it
    retry_failed: bool = False  # --resume redoes failed runs too, not only lost ones
    data_dir: Path | None = None
    results_dir: Path = DEFAULT_RESULTS_DIR
    timeout_s: float | None = None  # as given: None default, 0 none
    flags: Flags = field(default_factory=Flags)
    measure_gemm_rate: bool = True
    cluster: str | None = None
    cluster_wait_s: float = 120.0
    baseline: str | None = None
    output: Output = field(default_factory=Output)
    target: Target | None = None  # time to accuracy; None: the default (results/target.py)


@dataclass(frozen=True)
class VerifyRequest:
    backends: BackendChoice = field(default_factory=lambda: BackendChoice(all=True))
    steps: int = 100
    checkpoints: tuple[int, ...] = ()  # empty: 1, 10 and the last step
    overrides: tuple[str, ...] = ()
    data_dir: Path | None = None
    threads: int = 1
    timeout_s: float | None = None  # as given: None default, 0 none
    output: Output = field(default_factory=Output)


@dataclass(frozen=True)
class ReportRequest:
    sessions: tuple[str, ...] = ()  # empty: the latest
    out: Path | None = None  # None: next to the session(s)
    baseline: str | None = None
    results_dir: Path = DEFAULT_RESULTS_DIR
    target: Target | None = None  # None: the runs' own, else the default


@dataclass(frozen=True)
class CompareRequest:
    a: str
    b: str
    results_dir: Path = DEFAULT_RESULTS_DIR
    json: bool = False
    fail_if_slower: float | None = None  # percent; None: no gate
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE
    match: str = "exact"  # how much of the machine must agree: exact, cpu or any


@dataclass(frozen=True)
class HistoryRequest:
    sessions: tuple[str, ...] = ()  # empty: every session under the results folder
    results_dir: Path = DEFAULT_RESULTS_DIR
    backends: tuple[str, ...] = ()  # empty: every backend
    threads: int | None = None  # None: every thread count
    match: str = "exact"
    threshold: float = DEFAULT_STEP_THRESHOLD  # a fraction: 0.05 is 5 %
    json: bool = False
    chart: Path | None = None  # a folder for history.png and history.svg


@dataclass(frozen=True)
class ExportRequest:
    sessions: tuple[str, ...] = ()
    format: str = "json"
    out: Path | None = None  # None: stdout (a text format only)
    results_dir: Path = DEFAULT_RESULTS_DIR
    target: Target | None = None  # None: the runs' own, else the default


@dataclass(frozen=True)
class ListRequest:
    backends: BackendChoice = field(default_factory=BackendChoice)  # programs to list too
    json: bool = False


@dataclass(frozen=True)
class NewBackendRequest:
    name: str
    directory: Path | None = None
    lang: str = "python"  # python (a plugin package), c or rust (a protocol program)


Request = (
    RunRequest
    | VerifyRequest
    | ReportRequest
    | CompareRequest
    | HistoryRequest
    | ExportRequest
    | ListRequest
    | NewBackendRequest
)
