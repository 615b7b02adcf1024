"""``list`` (every backend and whether it runs here) and ``new-backend`` (a plugin to fill in)."""

from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from harness import backends, scaffold
from harness.commands.console import EXIT_OK, stdout_console
from harness.requests import ListRequest, NewBackendRequest


def cmd_list(request: ListRequest) -> int:
    choice = request.backends
    programs = backends.refs_from_commands(choice.commands, choice.command_files)
    listed = [(ref, backends.status(ref)) for ref in [*backends.registry().values(), *programs]]
    if request.json:
        listing = [
            {
                "name": ref.name,
                "version": None if state.version == "?" else state.version,  # unknown: null
                "available": state.available,
                "target": ref.target,
                "source": ref.source,
                "reason": state.reason,
            }
            for ref, state in listed
        ]
        print(json.dumps(listing, indent=1))
        return EXIT_OK
    table = Table(title="backends")
    for column in ("name", "version", "available", "source / how to enable"):
        table.add_column(column)
    for ref, state in listed:
        table.add_row(
            ref.name,
            state.version,
            "yes" if state.available else "[red]no[/]",
            escape(ref.source if state.available else str(state.reason)),
        )
    stdout_console().print(table)
    return EXIT_OK


def cmd_new_backend(request: NewBackendRequest) -> int:
    target = scaffold.write_scaffold(request.name, request.directory, request.lang)
    for line in scaffold.next_steps(request.name, target, request.lang):
        print(line)
    return EXIT_OK
