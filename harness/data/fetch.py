"""Find, download, verify and cache the IDX files of a dataset (MNIST, Fashion-MNIST, your own).

Lookup order for each file: ``--data-dir`` / ``HARNESS_DATA_DIR``, the user cache directory, known
system locations (Debian's ``dataset-fashion-mnist``), then the public mirrors. Known datasets are
verified by the SHA-256 of the *decompressed* IDX bytes, so ``.gz`` and raw copies both check out,
and a download is verified before it is cached.

pooch was considered for the download and cache: it checks the hash of the file it downloads (the
``.gz``), while these checksums are of the decompressed bytes so that raw and gzipped local copies
both verify; it would need a second set of hashes per mirror file and still this lookup order.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.idx import (
    MAX_IDX_BYTES,
    Dataset,
    arrays_from_bytes,
    parse_pair,
    read_idx_file,
)
from harness.errors import DataError, did_you_mean

DATA_DIR_ENV = "HARNESS_DATA_DIR"
CACHE_DIR_ENV = "HARNESS_CACHE_DIR"
MIRRORS_ENV = "HARNESS_MIRRORS"
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    filenames: dict[str, str]
    sha256: dict[str, str] | None  # None: user-supplied IDX files, nothing to verify against
    mirrors: tuple[str, ...] = ()
    system_dirs: tuple[Path, ...] = ()
    # The most one of its files may expand to: a file whose header declares more is refused
    # before it is read (a gzip bomb costs no more than an intact file).
    max_bytes: int = MAX_IDX_BYTES


# 60,000 images of 28 × 28 bytes and their 16-byte header: the largest file of either MNIST.
MNIST_LARGEST = 16 + 60_000 * 28 * 28

_STANDARD_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        filenames=_STANDARD_NAMES,
        sha256={
            "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        # The mirrors torchvision and TensorFlow Datasets use, in that order.
        max_bytes=MNIST_LARGEST,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        filenames=_STANDARD_NAMES,
        # Computed from the decompressed files of Debian's dataset-fashion-mnist
        # (upstream commit 55506a9); the gzip wrappers differ from upstream's, the bytes do not.
        sha256={
            "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        max_bytes=MNIST_LARGEST,
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
    # Any four IDX files of the same layout in --data-dir; shapes come from the files.
    "idx": DatasetInfo(name="idx", filenames=_STANDARD_NAMES, sha256=None),
}


@dataclass(frozen=True)
class DataFiles:
    """Where each file of a dataset was found, what it hashes to and what shape it has."""

    dataset: str
    paths: dict[str, Path]
    sha256: dict[str, str]
    verified: bool
    n_train: int
    n_test: int
    n_features: int

    def to_json(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "paths": {role: str(path) for role, path in self.paths.items()},
            "sha256": self.sha256,
            "verified": self.verified,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_features": self.n_features,
        }

    @classmethod
    def from_json(cls, data: dict) -> DataFiles:
        return cls(
            dataset=data["dataset"],
            paths={role: Path(p) for role, p in data["paths"].items()},
            sha256=data["sha256"],
            verified=data["verified"],
            n_train=data["n_train"],
            n_test=data["n_test"],
            n_features=data["n_features"],
        )


def cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlp-bench"


def _candidates(directory: Path, filename: str) -> list[Path]:
    return [directory / filename, directory / f"{filename}.gz"]


def _verify(path: Path, actual: str, expected: str | None) -> str:
    if expected is not None and actual != expected:
        raise DataError(
            f"{path}: checksum mismatch, refusing it: expected SHA-256 {expected}, got {actual}; "
            "replace it with an intact copy"
        )
    return actual


Fetcher = Callable[[str], bytes]


# The most a download may be: MNIST's largest file is 9.9 MB gzipped, 47 MB raw.
DOWNLOAD_LIMIT = 128 * 2**20


def _urlopen_fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        payload = response.read(DOWNLOAD_LIMIT + 1)
    if len(payload) > DOWNLOAD_LIMIT:
        raise ValueError(f"more than {DOWNLOAD_LIMIT // 2**20} MiB: no dataset file is that large")
    return payload


def _download(
    info: DatasetInfo,
    role: str,
    expected: str,
    mirrors: Sequence[str],
    target_dir: Path,
    fetch: Fetcher,
) -> tuple[Path, bytes] | str:
    """Try each mirror; cache the first verified copy. Returns (path, bytes) or why it failed."""
    filename = f"{info.filenames[role]}.gz"
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            payload = fetch(url)
            raw = _bounded_gunzip(payload, info.max_bytes)
            actual = hashlib.sha256(raw).hexdigest()
        except (urllib.error.URLError, OSError, EOFError, zlib.error, ValueError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        if actual != expected:
            failures.append(f"{url}: checksum mismatch (got {actual})")
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / filename
        fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f".{filename}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        print(f"downloaded {url} (SHA-256 verified) to {target}", file=sys.stderr)
        return target, raw
    return "; ".join(failures) or "no mirrors configured"


def _bounded_gunzip(payload: bytes, limit: int) -> bytes:
    """A download's bytes, decompressed to at most ``limit``: a bomb is refused, not expanded."""
    if payload[:2] != b"\x1f\x8b":
        return payload
    inflate = zlib.decompressobj(wbits=31)
    raw = inflate.decompress(payload, limit + 1)
    if len(raw) > limit:
        raise ValueError(f"expands past {limit:,} bytes, more than any file of the dataset")
    if not inflate.eof:
        raise EOFError("truncated gzip stream")
    return raw


def _mirrors(info: DatasetInfo) -> tuple[str, ...]:
    override = os.environ.get(MIRRORS_ENV)
    if override:
        return tuple(m for m in override.split(",") if m.strip())
    return info.mirrors


def locate(
    dataset: str,
    data_dir: Path | None = None,
    *,
    download: bool = True,
    fetch: Fetcher = _urlopen_fetch,
) -> DataFiles:
    """Find (or download) and verify every file of ``dataset``; parse them to learn their shapes.

    ``data_dir`` defaults to ``$HARNESS_DATA_DIR``. Raises DataError with one line saying what is
    missing or wrong and how to fix it.
    """
    info = DATASETS.get(dataset)
    if info is None:
        raise DataError(
            f"unknown dataset {dataset!r}{did_you_mean(dataset, DATASETS)} choose one of "
            f"{', '.join(DATASETS)}"
        )
    if data_dir is None and os.environ.get(DATA_DIR_ENV):
        data_dir = Path(os.environ[DATA_DIR_ENV])
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} is not a directory")
    if data_dir is not None and not data_dir.is_dir() and not (info.sha256 and download):
        raise DataError(f"data directory {data_dir} does not exist or is not a directory")
    # A folder the user named is where a download goes (made if need be); else the cache.
    target = data_dir if data_dir is not None else cache_dir() / dataset
    if info.sha256 is None:
        if data_dir is None:
            raise DataError(
                f"dataset 'idx' reads your own IDX files: give their directory with --data-dir "
                f"or {DATA_DIR_ENV}"
            )
        search_dirs = [data_dir]
    else:
        search_dirs = [d for d in (data_dir, cache_dir() / dataset, *info.system_dirs) if d]

    paths: dict[str, Path] = {}
    raws: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    missing: dict[str, str] = {}
    for role in ROLES:
        expected = info.sha256[role] if info.sha256 else None
        found = next(
            (p for d in search_dirs for p in _candidates(d, info.filenames[role]) if p.exists()),
            None,
        )
        if found is not None:
            raws[role], actual = read_idx_file(found, info.max_bytes)
            hashes[role] = _verify(found, actual, expected)
            paths[role] = found.absolute()  # workers run in a scratch folder of their own
            continue
        mirrors = _mirrors(info) if download and expected else ()
        if expected and mirrors:
            outcome = _download(info, role, expected, mirrors, target, fetch)
            if not isinstance(outcome, str):
                paths[role], raws[role] = outcome[0].absolute(), outcome[1]
                hashes[role] = expected  # _download kept only a copy that hashed to it
                continue
            missing[role] = outcome
        else:
            missing[role] = "not found"

    if missing:
        names = ", ".join(f"{info.filenames[r]}[.gz]" for r in missing)
        where = ", ".join(str(d) for d in search_dirs)
        reason = next(iter(missing.values()))
        hint = f"put them in a directory and pass --data-dir DIR or set {DATA_DIR_ENV}"
        if info.mirrors and reason != "not found":
            sources = ", ".join(_mirrors(info))
            raise DataError(
                f"{dataset}: missing {names} (looked in {where}; download failed: {reason}); "
                f"download the .gz files from {sources} into {target} by hand, or {hint}"
            )
        raise DataError(f"{dataset}: missing {names} (looked in {where}); {hint}")

    def images_of(split: str) -> np.ndarray:
        images_role, labels_role = f"{split}_images", f"{split}_labels"
        images, _ = parse_pair(
            raws[images_role], raws[labels_role], str(paths[images_role]), str(paths[labels_role])
        )
        return images

    train_images, test_images = images_of("train"), images_of("test")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{paths['test_images']}: images are {test_images.shape[1:]} but training images are "
            f"{train_images.shape[1:]}; both sets must have the same image size"
        )
    return DataFiles(
        dataset=dataset,
        paths=paths,
        sha256=hashes,
        verified=info.sha256 is not None,
        n_train=train_images.shape[0],
        n_test=test_images.shape[0],
        n_features=int(np.prod(train_images.shape[1:])),
    )


def load(files: DataFiles, dtype: str = "float32") -> Dataset:
    """The arrays of files that ``locate`` found, from bytes checked again here.

    Each file is read once and its SHA-256 compared with the one ``locate`` recorded, so what a
    run trains on is what its session verified: a file changed on disk since (a re-download,
    another process, a backend) is refused with a DataError naming it, never used.
    """
    raws = {}
    info = DATASETS.get(files.dataset)
    limit = info.max_bytes if info else MAX_IDX_BYTES
    for role, path in files.paths.items():
        raw, actual = read_idx_file(path, limit)
        expected = files.sha256[role]
        if actual != expected:
            raise DataError(
                f"{path}: changed since the session checked it (SHA-256 was {expected}, is now "
                f"{actual}); restore the file, or start a new session to use the new one"
            )
        raws[role] = raw
    names = {role: str(path) for role, path in files.paths.items()}
    return Dataset(*arrays_from_bytes(raws, names, dtype))
