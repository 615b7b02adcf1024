"""``verify``: each backend stepped against the float64 reference; a table of errors per backend."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import backends
from harness.commands.console import EXIT_OK, EXIT_RUN_FAILED, stdout_console, warner
from harness.errors import HarnessError
from harness.export.escape import terminal
from harness.requests import DEFAULT_TIMEOUT_S, VerifyRequest, resolve_timeout
from harness.runner.job import prepare_job
from harness.runner.verification import verify_backends
from harness.spec import build_spec
from harness.work.equivalence import TOLERANCES
from harness.work.plan import PARAM_NAMES

VERIFY_KEY = (
    "loss: the backend's mean loss on the step's batch; ref: the float64 reference's; ÷ tol "
    "and W1, b1, W2, b2: the largest |backend − reference| ÷ its tolerance in that value or "
    "tensor (≤ 1 passes); with -v, the largest |backend − reference| in brackets"
)


def _verify_table(name: str, checkpoints: list[dict], absolute: bool) -> Table:
    """One row per checkpoint; its columns fit 100 terminal columns (``VERIFY_KEY`` reads it)."""
    table = Table(title=f"{escape(name)} against the float64 reference", title_justify="left")
    for column in ("step", "loss", "ref", "÷ tol", *PARAM_NAMES):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("ok")
    for row in checkpoints:
        loss = ref = share = "–"
        if row["loss"] is not None:
            loss, ref = f"{row['loss']:.6f}", f"{row['reference_loss']:.6f}"
            used = row.get("loss_tolerance_used")
            share = f"{used:.2g}" if used is not None else "–"
        cells = [
            f"{e['tolerance_used']:.2g}" + (f"\n[{e['max_abs']:.1e}]" if absolute else "")
            for e in row["errors"].values()
        ]
        ok = "yes" if row["ok"] else "[red]NO[/]"
        table.add_row(str(row["step"]), loss, ref, share, *map(escape, cells), ok)
    return table


def cmd_verify(request: VerifyRequest) -> int:
    console = stdout_console()
    err = Console(stderr=True, quiet=request.output.quiet)
    steps = request.steps
    spec = build_spec(None, [*request.overrides, f"iterations={steps}"], False)
    checkpoints = sorted(set(request.checkpoints or (1, min(10, steps), steps)))
    if checkpoints[-1] > steps:
        raise HarnessError(
            f"--checkpoints {checkpoints[-1]} is past --steps {steps}; "
            "choose checkpoints between 1 and the number of steps"
        )
    refs = backends.choose(request.backends, warner(err))
    job = prepare_job(spec, request.data_dir)
    verdicts = verify_backends(
        refs,
        spec,
        job.files,
        job.plan,
        threads=request.threads,
        checkpoints=checkpoints,
        timeout_s=resolve_timeout(request.timeout_s, DEFAULT_TIMEOUT_S),
        on_start=lambda ref: err.print(f"verifying {escape(ref.name)} over {steps} steps …"),
    )
    for verdict in verdicts:
        if verdict.checkpoints:
            table = _verify_table(verdict.backend, verdict.checkpoints, request.output.verbose)
            console.print(table)
    if any(verdict.checkpoints for verdict in verdicts):
        console.print(VERIFY_KEY, soft_wrap=False)
    tolerance = TOLERANCES[spec.dtype]
    console.print(
        f"tolerance ({spec.dtype}): |backend − reference| ≤ {tolerance.atol:g} + "
        f"{tolerance.rtol:g}·|reference|",
        soft_wrap=True,
    )
    for verdict in verdicts:
        text = verdict.verdict
        style = "red" if verdict.failed else "green" if text == "pass" else "yellow"
        text = escape(terminal(text, lines=True))  # it may quote the backend's own error
        console.print(f"{escape(verdict.backend)}: [{style}]{text}[/]", soft_wrap=True)
    return EXIT_RUN_FAILED if any(v.failed for v in verdicts) else EXIT_OK
