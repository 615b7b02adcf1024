from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, write_dataset


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """No test reads the user's cache or downloads; workers can import the test backends."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HARNESS_MIRRORS", "http://127.0.0.1:9/unreachable/")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), path])))


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    return write_dataset(tmp_path / "idx")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST, given through HARNESS_DATA_DIR; tests that need it skip without it."""
    value = os.environ.get("HARNESS_DATA_DIR")
    if not value or not any(Path(value).glob("train-images-idx3-ubyte*")):
        pytest.skip("real MNIST not available: set HARNESS_DATA_DIR to a directory holding it")
    return Path(value)
