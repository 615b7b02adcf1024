"""The matrix of a session: the work, the runs still to do, and what each run's record starts as.

Made by ``planning`` (a new session or the rest of a stored one); run by an ``executor``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.requests import Flags, Target
from harness.results.key import threads_label
from harness.results.model import RunRecord, Session, SweepPointInfo
from harness.results.store import read_session
from harness.runner.items import RunItem, pinned_cpus
from harness.runner.job import Job
from harness.runner.session import rewrite_session_file, timestamp
from harness.spec import Spec
from harness.work.plan import Plan


@dataclass(frozen=True)
class Matrix:
    """Everything a run needs: the job, where records go, what to run, with which flags."""

    job: Job
    session: str
    session_dir: Path
    items: list[RunItem]
    timeout_s: float | None
    total: int  # runs in the whole matrix (a resumed one runs only the missing)
    variants: dict[str, tuple[Spec, Plan]]  # sweep points; empty without --sweep
    flags: Flags
    resumed: Session | None = None  # the stored session, when finishing one
    target: Target | None = None  # run --target: each record says when its run reached it

    @property
    def spec(self) -> Spec:
        return self.job.spec

    @property
    def runs_left(self) -> int:
        return sum(not item.warmup for item in self.items)

    def cell(self, item: RunItem) -> tuple[Spec, Plan]:
        return self.variants[item.variant] if item.variant else (self.job.spec, self.job.plan)

    def identity(self, item: RunItem, env: dict[str, Any]) -> RunRecord:
        """The record of ``item`` before it runs: what is run, how, and where."""
        spec, plan = self.cell(item)
        return RunRecord(
            backend=item.backend.name,
            backend_target=item.backend.target,
            status="failed",  # until the worker says otherwise
            repeat=item.repeat,
            threads=item.threads,
            spec=spec.to_dict(),
            spec_hash=spec.hash,
            seed=spec.seed,
            init_sha256=plan.init_sha256,
            batches_sha256=plan.batches_sha256,
            variant=item.variant,
            session=self.session,
            train_time_s=None,
            # "verified" only once the run's own worker has checked the bytes it trains on.
            data={**self.job.files.to_json(), "verified": False},
            env=env,
            order=item.order,
            attempt=item.attempt,
            pin=self.flags.pin,
            profile=self.flags.profile,
            warmup=self.flags.warmup,
            timeout_s=self.timeout_s,
            pinned_cpus=pinned_cpus(item.threads) if self.flags.pin else None,
            gemm_rate_gflops=(env.get("gemm_rates") or {}).get(threads_label(item.threads)),
            target=self.target.to_json() if self.target else None,  # type: ignore[typeddict-item]
            started_at=timestamp(),
        )

    def session_record(self, env: dict[str, Any]) -> Session:
        job = self.job
        return Session(
            session=self.session,
            created_at=timestamp(),
            spec=job.spec.to_dict(),
            spec_hash=job.spec.hash,
            data=job.files.to_json(),
            init_sha256=job.plan.init_sha256,
            batches_sha256=job.plan.batches_sha256,
            matrix=[item.entry() for item in self.items if not item.warmup],
            variants={
                name: SweepPointInfo(
                    spec=spec.to_dict(),
                    init_sha256=plan.init_sha256,
                    batches_sha256=plan.batches_sha256,
                )
                for name, (spec, plan) in self.variants.items()
            },
            timeout_s=self.timeout_s,
            env=env,
            pin=self.flags.pin,
            profile=self.flags.profile,
            warmup=self.flags.warmup,
            target=self.target.to_json() if self.target else None,  # type: ignore[typeddict-item]
        )


def extend(matrix: Matrix, items: list[RunItem]) -> Matrix:
    """``matrix`` with ``items`` added to its session, to run next: session.json's matrix gains
    them first, so that an interrupted session resumes with them."""
    session = read_session(matrix.session_dir)
    session.matrix = [*session.matrix, *(item.entry() for item in items)]
    rewrite_session_file(matrix.session_dir, session)
    return replace(matrix, items=items, total=matrix.total + len(items), resumed=session)
