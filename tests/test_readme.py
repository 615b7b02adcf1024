"""The README's two commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re

from tests.helpers import REPO_ROOT


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    return [
        line
        for block in blocks
        for line in block.splitlines()
        if line.startswith("python3 -m venv")
    ]


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    # verbatim, with its exit status kept for the script's own
    assert f"{test_command} || status=$?" in ci_lines
    assert ci_lines[-1] == 'exit "$status"'


def test_main_command_runs_every_backend():
    main_command = next(c for c in _readme_commands() if "pytest" not in c)
    assert "-m harness run --all" in main_command
