from __future__ import annotations

import gzip
import hashlib
import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from harness import data
from harness.errors import DataError
from tests.helpers import NAMES, idx_bytes, write_dataset


def test_parse_roundtrip():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parsed = data.parse_idx(idx_bytes(images), "x", 3)
    np.testing.assert_array_equal(parsed, images)


@pytest.mark.parametrize(
    ("mutate", "ndim", "message"),
    [
        (lambda raw: raw[:2], 3, "too short for an IDX header"),
        (lambda raw: b"\x00\x00\x08\x01" + raw[4:], 3, "wrong magic number 0x00000801"),
        (lambda raw: b"\x00\x00\x0d\x03" + raw[4:], 3, "wrong magic number 0x00000d03"),
        (lambda raw: b"\x01" + raw[1:], 3, "wrong magic number"),
        (lambda raw: raw[:10], 3, "truncated header"),
        (lambda raw: raw[:-1], 3, "truncated: 39 bytes, but its dimensions (2, 3, 4) need 40"),
        (lambda raw: raw + b"\x00", 3, "has trailing bytes"),
        (lambda raw: raw[:4] + (0).to_bytes(4, "big") + raw[8:], 3, "wrong dimensions (0, 3, 4)"),
    ],
)
def test_parse_rejects_corrupt_bytes(mutate, ndim, message):
    raw = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=r"^x: ") as excinfo:
        data.parse_idx(mutate(raw), "x", ndim)
    assert message in str(excinfo.value)


def test_pair_counts_and_labels_checked():
    images = idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))
    with pytest.raises(DataError, match="3 images but labels has 2 labels"):
        data.parse_pair(images, idx_bytes(np.zeros(2, dtype=np.uint8)), "images", "labels")
    with pytest.raises(DataError, match="labels: label 10 is outside 0–9"):
        data.parse_pair(images, idx_bytes(np.array([1, 10, 2], dtype=np.uint8)), "i", "labels")


@pytest.mark.parametrize("gz", [False, True])
def test_locate_and_load_idx(tmp_path, gz):
    directory = write_dataset(tmp_path, n_train=30, n_test=10, gz=gz)
    files = data.locate("idx", directory)
    assert (files.n_train, files.n_test, files.n_features) == (30, 10, 64)
    assert not files.verified
    loaded = data.load(files, "float32")
    assert loaded.train_x.shape == (30, 64) and loaded.train_x.dtype == np.float32
    assert loaded.train_x.min() >= 0.0 and loaded.train_x.max() == 1.0
    assert loaded.test_y.dtype == np.int64 and loaded.test_y.max() <= 9
    assert data.load(files, "float64").train_x.dtype == np.float64


def test_truncated_and_corrupt_gzip(tmp_path):
    write_dataset(tmp_path, gz=True)
    path = tmp_path / f"{NAMES['train_labels']}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: truncated gzip file"):
        data.locate("idx", tmp_path)
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: corrupt gzip file"):
        data.locate("idx", tmp_path)


def test_directory_where_file_should_be(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / NAMES["test_labels"]).unlink()
    (tmp_path / NAMES["test_labels"]).mkdir()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: is a directory"):
        data.locate("idx", tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    target = tmp_path / NAMES["train_images"]
    if os.geteuid() == 0:  # root reads files whatever their mode; make the read fail instead
        real_open = type(target).open

        def open_path(path, *args, **kwargs):
            if path == target:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(type(target), "open", open_path)
    else:
        target.chmod(0)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: permission denied"):
        data.locate("idx", tmp_path)


def test_mismatched_image_sizes(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / NAMES["test_images"]).write_bytes(idx_bytes(np.zeros((100, 4, 4), np.uint8)))
    with pytest.raises(DataError, match="both sets must have the same image size"):
        data.locate("idx", tmp_path)


def test_checksum_mismatch_refused(tmp_path):
    write_dataset(tmp_path)  # tiny files under MNIST's names: wrong bytes for MNIST
    with pytest.raises(DataError) as excinfo:
        data.locate("mnist", tmp_path)
    message = str(excinfo.value)
    assert "train-images-idx3-ubyte: checksum mismatch, refusing it" in message
    assert data.DATASETS["mnist"].sha256["train_images"] in message
    actual = hashlib.sha256((tmp_path / NAMES["train_images"]).read_bytes()).hexdigest()
    assert actual in message


def test_offline_without_a_copy_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError) as excinfo:
        data.locate("mnist", tmp_path)
    message = str(excinfo.value)
    assert message.startswith("mnist: missing train-images-idx3-ubyte[.gz], train-labels")
    assert "download failed" in message
    assert "--data-dir DIR or set HARNESS_DATA_DIR" in message
    assert "\n" not in message


def test_idx_dataset_needs_a_directory(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError, match="give their directory with --data-dir"):
        data.locate("idx")


def test_a_missing_data_dir_offline_names_the_folder_and_the_sources(tmp_path):
    with pytest.raises(DataError) as excinfo:
        data.locate("mnist", tmp_path / "nope")
    message = str(excinfo.value)
    assert f"looked in {tmp_path / 'nope'}" in message
    assert "download failed: http://127.0.0.1:9/unreachable/train-images-idx3-ubyte.gz" in message
    assert f"from http://127.0.0.1:9/unreachable/ into {tmp_path / 'nope'} by hand" in message
    assert not (tmp_path / "nope").exists()  # nothing made for a download that did not happen


def test_a_missing_data_dir_is_where_the_download_goes(tmp_path, monkeypatch, mirror):
    files = _tiny_files(tmp_path)
    _fake_dataset(monkeypatch, files)
    root, url = mirror
    for role, raw in files.items():
        (root / f"{NAMES[role]}.gz").write_bytes(gzip.compress(raw))
    monkeypatch.setenv(data.MIRRORS_ENV, url)
    target = tmp_path / "shared" / "mnist"  # as the README's HARNESS_DATA_DIR=../shared/mnist
    located = data.locate("tiny", target)
    assert located.paths["train_images"] == target / f"{NAMES['train_images']}.gz"
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in NAMES.values())
    assert not list((data.cache_dir() / "tiny").glob("*"))  # not the cache: the folder named
    monkeypatch.setenv(data.MIRRORS_ENV, "http://127.0.0.1:9/")  # offline now: found there
    assert data.locate("tiny", target).paths == located.paths


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match=r"data directory .*file is not a directory"):
        data.locate("mnist", tmp_path / "file")


def test_own_idx_files_need_an_existing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist or is not a directory"):
        data.locate("idx", tmp_path / "nope")


def test_environment_variable_is_used(tmp_path, monkeypatch):
    write_dataset(tmp_path, n_train=20, n_test=5)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.locate("idx").n_train == 20


def _fake_dataset(monkeypatch, files: dict[str, bytes]) -> None:
    """Register a known dataset whose checksums are those of ``files`` (role → raw bytes)."""
    info = data.DatasetInfo(
        name="tiny",
        filenames=NAMES,
        sha256={role: hashlib.sha256(raw).hexdigest() for role, raw in files.items()},
        mirrors=("http://127.0.0.1:9/",),
    )
    monkeypatch.setitem(data.DATASETS, "tiny", info)


def _tiny_files(tmp_path):
    source = write_dataset(tmp_path / "source", n_train=20, n_test=5)
    return {role: (source / name).read_bytes() for role, name in NAMES.items()}


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server standing in for a public mirror."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_then_caches(tmp_path, monkeypatch, mirror):
    files = _tiny_files(tmp_path)
    _fake_dataset(monkeypatch, files)
    root, url = mirror
    for role, raw in files.items():
        (root / f"{NAMES[role]}.gz").write_bytes(gzip.compress(raw))
    # The first mirror is dead: the harness must fall through to the second.
    monkeypatch.setenv(data.MIRRORS_ENV, f"http://127.0.0.1:9/,{url}")
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    located = data.locate("tiny")
    cached = data.cache_dir() / "tiny"
    assert located.paths["train_images"] == cached / f"{NAMES['train_images']}.gz"
    assert located.verified and located.n_train == 20
    assert not list(cached.glob("*.part"))
    # Second time: found in the cache, no network needed.
    monkeypatch.setenv(data.MIRRORS_ENV, "http://127.0.0.1:9/")
    assert data.locate("tiny").paths == located.paths


def test_download_with_wrong_bytes_is_not_cached(tmp_path, monkeypatch, mirror):
    files = _tiny_files(tmp_path)
    _fake_dataset(monkeypatch, files)
    root, url = mirror
    for role, raw in files.items():
        (root / f"{NAMES[role]}.gz").write_bytes(gzip.compress(raw[:-1] + b"\x07"))
    monkeypatch.setenv(data.MIRRORS_ENV, url)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=r"download failed: .*checksum mismatch"):
        data.locate("tiny")
    assert not list((data.cache_dir() / "tiny").glob("*"))
