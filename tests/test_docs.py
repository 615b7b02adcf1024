"""docs/ stays true: the JSON Schemas are the models', every link points at a file."""

from __future__ import annotations

import re

from harness.results.schema import schema_texts
from tests.helpers import REPO_ROOT


def test_the_json_schemas_in_docs_are_generated_from_the_models():
    for name, text in schema_texts().items():
        kept = (REPO_ROOT / "docs" / name).read_text()
        assert kept == text, f"docs/{name} is stale: run python -m harness.results.schema"


def test_the_record_schema_states_the_ranges_readers_enforce():
    schema = schema_texts()["run-record.schema.json"]
    assert '"minimum": -1e-06' in schema  # LOSS_FLOOR on final_loss and curve losses
    assert '"train_time_s"' in schema and '"schema_version"' in schema


def test_every_relative_link_in_the_readme_and_docs_exists():
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target}")
    assert not broken, broken


def test_the_readme_stays_a_first_five_minutes_page():
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 200


def test_the_backend_guide_lists_every_hook_with_its_members():
    import typing

    from harness.hooks import HOOKS

    guide = (REPO_ROOT / "docs" / "writing-a-backend.md").read_text()
    rows = {
        line.split("|")[1].strip(): line for line in guide.splitlines() if line.startswith("| `")
    }
    for hook in HOOKS:
        row = next(
            (line for name, line in rows.items() if name.startswith(f"`{hook.__name__}`")), None
        )
        assert row is not None, f"docs/writing-a-backend.md has no row for {hook.__name__}"
        members = (
            typing.get_protocol_members(hook)
            if hasattr(typing, "get_protocol_members")
            else {name for name in vars(hook) if not name.startswith("_")}
            | set(getattr(hook, "__annotations__", {}))
        )
        for member in members:
            assert f"`{member}" in row, f"{hook.__name__}'s row does not name {member}"


def test_the_readme_design_names_every_module_and_only_real_ones():
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("## Design in a screenful", 1)[1].split("```")[1]
    named = set(re.findall(r"[a-z_]+\.py", block))
    modules = {p.name for p in (REPO_ROOT / "harness").rglob("*.py") if p.name != "__init__.py"}
    modules -= {"__main__.py"}
    assert modules - named == set(), "modules the README's design does not name"
    assert named - modules - {"__init__.py"} == set(), "names in the design that are no module"


def test_the_license_file_and_the_build_requirement_match_the_license_field():
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert "MIT License" in (REPO_ROOT / "LICENSE").read_text()
    assert project["project"]["license-files"] == ["LICENSE"]
    # An SPDX string in `license` needs setuptools 77 (PEP 639); an older one fails to build
    # with --no-build-isolation.
    (setuptools,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"
