"""The on-disk results: one ``RunRecord`` per run, one ``Session`` per ``harness run``.

Both are plain dataclasses, written by ``to_json`` and read back by ``from_json``, which checks
every field's type against the annotations (pydantic, strict) plus the rules types cannot say
(an ok run has a training time). Field names are fixed for users' scripts: new fields may be
added, none renamed; a change that old readers would misread bumps ``SCHEMA_VERSION``.

Schema versions:
  1 (no ``schema_version`` field): records and session files before the results model.
  2: ``schema_version`` in every file; records name their measurement flags (``pin``,
     ``profile``, ``warmup``), ``timeout_s`` and ``gemm_rate_gflops``; the session file stores
     the flags; ``env`` gains ``hostname`` and ``machine_id`` for the machine fingerprint and
     ``gemm_rates`` (per thread count). Later additions within version 2: ``data`` gains
     ``checked_in_worker`` and ``check_s`` (the run's own worker checked the data's SHA-256),
     and ``data.verified`` is true only then; a loss below LOSS_FLOOR or a negative phase time
     makes a record unreadable, as no run can have measured it. Records gain ``algorithm``,
     ``executed_gflop`` and ``skipped_work`` (the work a backend declared it executed; older
     records read as ``dense``, or ``sparse`` where ``build_info.products`` names the sparse
     kernels, with the executed work unknown), and ``target``, ``time_to_target_s`` (the
     training time until the first evaluation at or above ``run --target``).
  3: records say what the timed region left out and prove what it held: ``untimed`` (wall and
     CPU seconds of every other kind of call into the backend: setup, params, predict, other),
     ``untimed_excess_s``, ``proof`` (the first call checked against the float64 reference) or
     ``proof_note`` (why not), ``cpu_budget`` and ``flagged`` (why an ok run's time is suspect).
     CPU time now counts every descendant, also those that ended within a call. Version 2 files
     load with these empty: their runs were neither proven nor judged.
  4: a run can be ``lost`` (its machine, Dask worker or scheduler went away: not the backend's
     doing) and redone by ``run --resume``; each record has an ``attempt`` (1 unless it redoes
     an earlier record of the same run, which stays beside it, never pooled with it). Files of
     versions 1–3 load as first attempts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import FailFast, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from harness.errors import SpecError
from harness.spec import spec_from_dict, spec_hash

SCHEMA_VERSION = 4
SESSION_FILE = "session.json"
STATUSES = ("ok", "failed", "timeout", "diverged", "lost")
T = TypeVar("T")
# Ranges a measurement cannot leave; outside them a record was damaged or forged.
Seconds = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
# A cross-entropy is ≥ 0; the book's −log(p + 1e-7) dips to −1.2e-7 in float32 when p rounds to 1.
LOSS_FLOOR = -1e-6
Loss = Annotated[float, Field(ge=LOSS_FLOOR)]


class _FailFast(FailFast):
    """pydantic's FailFast, hashable: typing hashes the metadata of ``Annotated[…] | None``, and
    the adapters are cached by type."""

    __hash__ = object.__hash__


# Lists and maps stop at their first bad item: a damaged file costs one error, not millions.
FAIL_FAST = _FailFast()
Ints = Annotated[list[int], FAIL_FAST]
Count = Annotated[int, Field(ge=0)]
Status = Literal["ok", "failed", "timeout", "diverged", "lost"]


class InvalidFile(ValueError):
    """A results file that cannot be used; the message is the reason, for one line."""


class CurvePoint(TypedDict):
    """One evaluation: cumulative training time and accuracy after ``iteration`` steps."""

    iteration: Count
    train_time_s: Seconds
    train_acc: Fraction
    test_acc: Fraction
    loss: Loss | None


class TargetSetting(TypedDict):
    metric: Literal["train_acc", "test_acc"]
    value: Fraction


class Roofline(TypedDict):
    """``env["roofline"]``: the GEMM rate measured at the start of the session."""

    gflops_1core: float
    gflops_all_cores: float
    cores: int
    size: int


class UntimedCall(TypedDict):
    """One kind of call into the backend outside the timed region, summed over the run."""

    calls: Count
    wall_s: Seconds
    cpu_s: Seconds


class ProofResult(TypedDict):
    """The run's first call against the float64 reference (harness.work.proof)."""

    steps: Count
    passed: bool
    tolerance_used: Annotated[float, Field(ge=0)] | None  # ≤ 1 passes; null: not measurable
    closest_step: Count
    cost_s: Seconds


@dataclass(kw_only=True)
class RunRecord:
    """One run: what was run (identity), how it was measured (flags) and what it measured."""

    schema_version: int = SCHEMA_VERSION
    # Identity: set by the runner before the worker starts.
    backend: str
    status: Status
    repeat: Count
    threads: Annotated[int, Field(ge=1)] | None
    spec: dict[str, Any]
    spec_hash: str
    seed: int
    init_sha256: str
    batches_sha256: str
    session: str
    train_time_s: Seconds | None  # required: a record that does not say is not a run
    backend_target: str = ""
    variant: str = ""  # the sweep point ("batch=50,hidden=100"); "" without --sweep
    order: int | None = None  # position in the session's run order (interleaved)
    # 2, 3, …: this record redoes the run's earlier record (lost, or failed with --retry-failed),
    # which stays beside it; readers count the latest attempt only (schema 4).
    attempt: Annotated[int, Field(ge=1)] = 1
    data: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)  # machine, versions, git, "blas" pools
    # Measurement flags: runs that differ in these are never pooled (see results.key).
    pin: bool = False
    profile: bool = False
    warmup: bool = False  # the session ran a discarded warm-up per cell first
    timeout_s: float | None = None
    pinned_cpus: Ints | None = None  # asked for with --pin
    # NumPy's float32 GEMM rate at this run's thread count, measured at the session's start.
    gemm_rate_gflops: Annotated[float, Field(gt=0)] | None = None
    # The machine just before and after the run (see harness.runner.machine_state).
    cpu_busy_before: Fraction | None = None  # share of all CPUs busy, the harness idle
    load_avg_1min_before: Annotated[float, Field(ge=0)] | None = None
    load_avg_1min_after: Annotated[float, Field(ge=0)] | None = None
    cpu_freq_mhz: Annotated[float, Field(ge=0)] | None = None
    # Measured by the worker.
    backend_version: str | None = None
    follows_batch_stream: bool = True
    error: str | None = None
    setup_time_s: Seconds | None = None
    cpu_time_s: Seconds | None = None
    cpu_util: Annotated[float, Field(ge=0)] | None = None
    peak_rss_bytes: Count | None = None
    threads_observed: Count | None = None
    train_acc: Fraction | None = None
    test_acc: Fraction | None = None
    final_loss: Loss | None = None
    iterations_done: Count = 0
    curve: Annotated[list[CurvePoint], FAIL_FAST] = field(default_factory=list)
    build_info: dict[str, Any] = field(default_factory=dict)
    # The work the run executed, as the backend declared it (hooks.DeclaresWork): "dense"
    # (the job's products, and the job's FLOPs) unless it said otherwise.
    algorithm: str = "dense"
    executed_gflop: Annotated[float, Field(ge=0)] | None = None
    skipped_work: str | None = None  # one line: what the algorithm leaves out
    target: TargetSetting | None = None  # run --target; time_to_target_s is null when not reached
    time_to_target_s: Seconds | None = None
    # --profile: training seconds per phase
    phases: Annotated[dict[str, Seconds], FAIL_FAST] | None = None
    phases_note: str | None = None  # how the phases were measured, or why there are none
    cpus_allowed: Ints | None = None  # what the worker could run on, as it saw it
    # What the timed region left out, and why its time can be trusted (schema 3).
    untimed: Annotated[dict[str, UntimedCall], FAIL_FAST] = field(default_factory=dict)
    untimed_excess_s: Seconds | None = None  # first params() after a call over its repeat, summed
    proof: ProofResult | None = None
    proof_note: str | None = None  # why the run was not proven, when it was not
    cpu_budget: Annotated[float, Field(gt=0)] | None = None  # CPUs it may use; null: no budget
    flagged: Annotated[list[str], FAIL_FAST] = field(default_factory=list)  # why it is suspect
    stray_processes: Count = 0  # the backend's processes still alive at the end, killed then
    progress_junk: Count = 0  # malformed progress events the backend's process wrote, ignored
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        record = _validate(cls, _upgrade_record(data))
        try:
            spec_from_dict(record.spec)
        except (SpecError, TypeError) as exc:
            raise InvalidFile(str(exc) if str(exc).startswith("spec") else f"spec: {exc}") from None
        if spec_hash(record.spec) != record.spec_hash:
            # Runs are grouped by this hash: one that does not match its spec would pool unlike
            # jobs (a spec edited by hand, say).
            raise InvalidFile(
                f"spec_hash {record.spec_hash} does not match its spec (which hashes to "
                f"{spec_hash(record.spec)})"
            )
        for name, shape in (
            ("roofline", Roofline),
            ("blas", Annotated[list[dict[str, Any]], FAIL_FAST]),
            ("gemm_rates", Annotated[dict[str, Annotated[float, Field(gt=0)]], FAIL_FAST]),
        ):
            if record.env.get(name) is not None:
                _check(shape, record.env[name], f"env.{name}")
        if record.status == "ok":
            missing = [
                name
                for name in ("train_time_s", "train_acc", "test_acc")
                if getattr(record, name) is None
            ]
            if missing:
                raise InvalidFile(f"status is ok but {', '.join(missing)} is null")
        return record


@dataclass(frozen=True, kw_only=True)
class MatrixEntry:
    """One planned run of a session, as stored in session.json."""

    backend: str
    target: str
    threads: int | None
    repeat: int
    order: int = 0
    variant: str = ""

    @property
    def filename(self) -> str:
        return record_filename(self.backend, self.threads, self.repeat, self.variant)


@dataclass(frozen=True, kw_only=True)
class SweepPointInfo:
    spec: dict[str, Any]
    init_sha256: str
    batches_sha256: str


@dataclass(kw_only=True)
class Session:
    """What one ``harness run`` set out to do; enough to resume it."""

    schema_version: int = SCHEMA_VERSION
    session: str
    created_at: str
    spec: dict[str, Any]
    spec_hash: str
    data: dict[str, Any]
    init_sha256: str
    batches_sha256: str
    matrix: Annotated[list[MatrixEntry], FAIL_FAST]
    variants: dict[str, SweepPointInfo] = field(default_factory=dict)
    timeout_s: float | None = None
    env: dict[str, Any] = field(default_factory=dict)
    # None: a schema-1 session, which did not store them.
    pin: bool | None = None
    profile: bool | None = None
    warmup: bool | None = None
    target: TargetSetting | None = None  # run --target, for the runs a resume adds
    # run --precision: what was asked, and the half-width each cell's median reached.
    precision: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return _validate(cls, _check_version(data))


def record_filename(
    backend: str, threads: int | None, repeat: int, variant: str = "", attempt: int = 1
) -> str:
    """``<backend>-t<threads>-r<repeat>[-<sweep point>][.attempt<N>].json``: fixed, users'
    scripts glob it; a first attempt has no suffix."""
    threads_part = "d" if threads is None else str(threads)
    point = "-" + variant.replace(",", "-").replace("=", "") if variant else ""
    again = f".attempt{attempt}" if attempt > 1 else ""
    return f"{backend}-t{threads_part}-r{repeat}{point}{again}.json"


@cache
def _adapter(shape: Any) -> TypeAdapter:
    return TypeAdapter(shape)


def _check_version(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidFile(f"expected a JSON object, found {type(data).__name__}")
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidFile(f"schema_version {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise InvalidFile(
            f"schema version {version} is newer than this harness reads ({SCHEMA_VERSION}); "
            "upgrade mlp-bench to read it"
        )
    return data


# The Rust backend's sparse kernels, as its build_info named them before records said which
# algorithm ran.
_SPARSE_PRODUCTS = "own sparse kernel (nonzero inputs only)"


def _upgrade_record(data: Any) -> dict[str, Any]:
    """Schema 1 → 2: the flags were not stored, but pinning and profiling leave traces. Before
    ``algorithm``: the sparse kernels named themselves in ``build_info.products``."""
    data = _check_version(data)
    if "algorithm" not in data:
        build_info = data.get("build_info")
        products = build_info.get("products") if isinstance(build_info, dict) else None
        if isinstance(products, str) and _SPARSE_PRODUCTS in products:
            data = {
                **data,
                "algorithm": "sparse",
                "skipped_work": "the first layer's products over zero inputs",
            }
    if data.get("schema_version", 1) == 1:
        data = {
            "pin": data.get("pinned_cpus") is not None,
            "profile": data.get("phases") is not None or data.get("phases_note") is not None,
            **data,
            "schema_version": 1,
        }
    return data


def _validate(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    # Unknown keys come from newer minor additions or hand edits; they are not this model's.
    return _check(cls, {key: value for key, value in data.items() if key in known})


def _check(shape: Any, data: Any, where: str = "") -> Any:
    """``data`` validated strictly against ``shape``; InvalidFile naming the first bad field."""
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:  # this harness writes null for them; in a file, they are damage
        raise InvalidFile("holds NaN or infinity, which JSON does not allow") from None
    try:
        return _adapter(shape).validate_json(text, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        missing = [
            ".".join(map(str, [where, *e["loc"]] if where else e["loc"]))
            for e in errors
            if e["type"] == "missing"
        ]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise InvalidFile(f"required field{plural} missing: {', '.join(missing)}") from None
        first = errors[0]
        where = (
            ".".join(str(part) for part in [where, *first["loc"]] if part != "") or "(top level)"
        )
        given = json.dumps(first.get("input"), default=str)
        given = given if len(given) <= 40 else given[:37] + "..."
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidFile(f"{where}: {first['msg'].lower()}, found {given}{more}") from None
