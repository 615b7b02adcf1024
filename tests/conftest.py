from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, write_dataset

_TORCH_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
    tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}"
)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """No test reads the user's cache or downloads; workers can import the test backends.

    Each test has its own temporary folder for the harness's scratch, so tests running side by
    side (pytest -n) never see, or tidy away, each other's."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    scratch = str(tmp_path_factory.mktemp("tmp"))
    monkeypatch.setenv("TMPDIR", scratch)
    monkeypatch.setattr(tempfile, "tempdir", scratch)
    # ...but torch.compile keeps its compiled graphs where it would have without that.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", _TORCH_CACHE)
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (the end-to-end runs, the cargo builds, torch.compile's), so that
    under ``pytest -n`` no worker starts one of them while the other has run out of work."""

    def long(item: pytest.Item) -> bool:
        marked = item.get_closest_marker("slow") or item.get_closest_marker("rust")
        return bool(marked) or "torch-compile" in item.name

    items.sort(key=lambda item: not long(item))
