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


def _verify_table(name: str, checkpoints: list[dict]) -> Table:
    table = Table(
        title=f"{name}: |error| ÷ tolerance against the float64 reference (≤ 1 passes); "
        "max absolute error in brackets",
        title_justify="left",
    )
    table.add_column("step", justify="right")
    table.add_column("loss (ref)", justify="right")
    for param in PARAM_NAMES:
        table.add_column(param, justify="right")
    table.add_column("ok")
    for row in checkpoints:
        loss = "–"
        if row["loss"] is not None:
            used = row.get("loss_tolerance_used")
            loss = f"{row['loss']:.6f} ({row['reference_loss']:.6f})" + (
                f" {used:.2g}" if used is not None else ""
            )
        cells = [f"{e['tolerance_used']:.2g} [{e['max_abs']:.1e}]" for e in row["errors"].values()]
        table.add_row(str(row["step"]), loss, *cells, "yes" if row["ok"] else "[red]NO[/]")
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
            console.print(_verify_table(verdict.backend, verdict.checkpoints))
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
