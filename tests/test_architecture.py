"""The layout's rules, checked on the source: layers import downward only, nothing below the
commands sees the command line, and no module outgrows a reader."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "harness"
# Lower first; a module may import its own layer and the ones below it.
LAYERS = [
    ["harness", "harness.errors"],
    ["harness.requests"],
    ["harness.data", "harness.spec"],
    ["harness.work"],
    [
        "harness.results",
        "harness.backends",
        "harness.hooks",
        "harness.plugin_shape",
        "harness.process_backend",
        "harness.scaffold",
    ],
    ["harness.runner", "harness.export"],
    ["harness.report"],
    ["harness.commands", "harness.argument_types", "harness.argument_groups"],
    ["harness.arguments"],
    ["harness.cli", "harness.__main__"],
]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every harness module ``path`` imports, at the top or inside a function."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
            found.update(resolve(f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(resolve(a.name) for a in node.names if a.name.startswith("harness"))
    found.discard(None)
    return {name for name in found if name is not None}


def _layer(module: str) -> int:
    best = (-1, -1)  # (length of the matching prefix, layer)
    for index, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    assert best[1] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def test_layers_import_downward_only():
    modules = _modules()
    upward = [
        f"{name} imports {target}"
        for name, path in sorted(modules.items())
        for target in sorted(_imports(path, modules) - {name})
        if _layer(target) > _layer(name)
    ]
    assert upward == []


def test_no_module_imports_one_that_imports_it_back():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}

    def reachable(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()] - seen:
                seen.add(nxt)
                stack.append(nxt)
        return seen

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in reachable(b)})
    assert cycles == []


def test_nothing_below_the_commands_sees_the_command_line():
    below = [
        p
        for d in ("runner", "results", "report", "export", "work")
        for p in (PACKAGE / d).rglob("*.py")
    ]
    below += [PACKAGE / name for name in ("backends.py", "requests.py", "spec.py", "errors.py")]
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in below
        if any(
            word in path.read_text() for word in ("Namespace", "harness.arguments", "parse_args")
        )
    ]
    assert offenders == []


def test_no_module_is_longer_than_a_reader_follows():
    long = {
        str(path.relative_to(REPO_ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check itself can fail: a runner module importing the CLI grammar is caught."""
    fake = tmp_path / "harness" / "runner"
    fake.mkdir(parents=True)
    (fake / "sneaky.py").write_text("from harness.arguments import build_parser\n")
    modules = {**_modules(), "harness.runner.sneaky": fake / "sneaky.py"}
    targets = _imports(fake / "sneaky.py", modules)
    assert targets == {"harness.arguments"}
    assert _layer("harness.arguments") > _layer("harness.runner.sneaky")
