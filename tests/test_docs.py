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
