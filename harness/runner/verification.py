"""``harness verify``: each backend in its own worker, stepped against the float64 reference.

The arithmetic of the check is in harness.work.equivalence; this runs it the way ``run`` runs a
job (a fresh process per backend, the thread environment set before imports, the timeout) and
turns what each worker says into a verdict.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness import backends
from harness.backends import BackendRef
from harness.data import DataFiles
from harness.errors import first_line
from harness.runner import processes
from harness.runner.supervised import run_worker
from harness.spec import Spec
from harness.work.plan import Plan


@dataclass(frozen=True)
class Verdict:
    backend: str
    verdict: str  # "pass", "FAIL: …", "FAILED TO RUN: …" or "not comparable (…)"
    checkpoints: list[dict[str, Any]]  # the error table, when the check ran

    @property
    def failed(self) -> bool:
        return self.verdict != "pass" and not self.verdict.startswith("not")


def verify_backends(
    refs: Sequence[BackendRef],
    spec: Spec,
    files: DataFiles,
    plan: Plan,
    *,
    threads: int,
    checkpoints: list[int],
    timeout_s: float | None,
    on_start: Callable[[BackendRef], None] = lambda ref: None,
) -> list[Verdict]:
    reference_target = backends.reference_target()
    verdicts = []
    for ref in refs:
        scratch = processes.scratch_dir()
        try:
            plan.save(scratch / "plan.npz")
            if not backends.follows_batch_stream(backends.load_class(ref.target)):
                verdicts.append(Verdict(ref.name, "not comparable (draws its own batches)", []))
                continue
            on_start(ref)
            job = {
                "mode": "verify",
                "backend_target": ref.target,
                "reference_target": reference_target,
                "spec": spec.to_dict(),
                "data": files.to_json(),
                "plan_path": str(scratch / "plan.npz"),
                "threads": threads,
                "steps": spec.iterations,
                "checkpoints": checkpoints,
            }
            result = run_worker(job, scratch, threads, timeout_s)
            answer = result.read_json()
            outcome = answer.get("verify")
            if answer.get("status") != "ok" or not isinstance(outcome, dict):
                if result.timed_out:
                    why = f"killed after the {timeout_s:g} s timeout"
                else:
                    why = str(answer.get("error") or result.output_tail or "no result")
                verdicts.append(Verdict(ref.name, f"FAILED TO RUN: {first_line(why)}", []))
                continue
            try:
                failure = outcome["first_failure"]
                in_calls = outcome["in_calls"]["first_failure"]
                if failure is not None:
                    verdict = (
                        f"FAIL: tolerance first broken at step {failure['step']} "
                        f"({', '.join(failure['what'])})"
                    )
                elif in_calls is not None:
                    verdict = (
                        f"FAIL: right one step per call, but in calls of {in_calls['call_steps']} "
                        f"steps, as runs make them, tolerance broken after step "
                        f"{in_calls['after_step']} ({', '.join(in_calls['what'])})"
                    )
                else:
                    verdict = "pass"
                verdicts.append(Verdict(ref.name, verdict, list(outcome["checkpoints"])))
            except (KeyError, TypeError) as exc:
                why = f"the worker's result is malformed ({type(exc).__name__}: {exc})"
                verdicts.append(Verdict(ref.name, f"FAILED TO RUN: {why}", []))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return verdicts
