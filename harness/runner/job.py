"""The work of a session, made ready: the spec, the data files it trains on, and the plan.

``run`` (new or resumed), ``verify`` and each sweep point go through here, so a spec is always
checked against the data it will use before a plan is derived from its seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import data
from harness.spec import Spec, SweepPoint, check_fits_data
from harness.work.plan import Plan, make_plan


@dataclass(frozen=True)
class Job:
    spec: Spec
    files: data.DataFiles
    plan: Plan


def plan_for(spec: Spec, files: data.DataFiles) -> Plan:
    """The spec's plan over these files, once the spec is known to fit them."""
    check_fits_data(spec, files.n_train)
    return make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)


def prepare_job(spec: Spec, data_dir: Path | None) -> Job:
    """Find (or fetch) the spec's data, check it fits, derive the plan."""
    files = data.locate(spec.dataset, data_dir)
    return Job(spec, files, plan_for(spec, files))


def sweep_plans(
    points: Iterable[SweepPoint], files: data.DataFiles
) -> dict[str, tuple[Spec, Plan]]:
    """Each sweep point's spec and plan, by the point's name."""
    return {point.name: (point.spec, plan_for(point.spec, files)) for point in points}
