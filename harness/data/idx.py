"""The IDX format: a strict parser and the arrays every backend gets (scaled inputs, int labels).

IDX is the format of MNIST and Fashion-MNIST: a magic number (two zero bytes, a type code, the
number of dimensions), big-endian 32-bit dimensions, then the values. Only unsigned bytes occur in
these datasets, so only they are accepted; anything else is a DataError naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import DataError

N_CLASSES = 10
_UBYTE = 0x08


@dataclass(frozen=True)
class Dataset:
    """Inputs scaled to [0, 1], flattened to (n, features); labels as int64 class ids."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    n_classes: int = field(default=N_CLASSES)


def read_idx_bytes(path: Path) -> bytes:
    """The decompressed bytes of ``path`` (gzip detected by its magic, not its name)."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an IDX file")
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise DataError(f"{path}: permission denied; make it readable") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: truncated gzip file; download it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip file ({exc}); download it again") from None


def parse_idx(raw: bytes, name: str, ndim: int) -> np.ndarray:
    """Strictly parse one unsigned-byte IDX file of ``ndim`` dimensions."""
    if len(raw) < 4:
        raise DataError(f"{name}: too short for an IDX header ({len(raw)} bytes)")
    zero, dtype_code, got_ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != _UBYTE or got_ndim != ndim:
        raise DataError(
            f"{name}: wrong magic number 0x{raw[:4].hex()}; expected 0x0000080{ndim} "
            f"(unsigned-byte IDX with {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{name}: truncated header ({len(raw)} of {header_len} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if any(d == 0 for d in dims):
        raise DataError(f"{name}: wrong dimensions {dims}; every dimension must be ≥ 1")
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(
            f"{name}: {what}: {len(raw)} bytes, but its dimensions {dims} need {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def parse_pair(
    images_raw: bytes, labels_raw: bytes, images_name: str, labels_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, rows, cols) and labels (n,), checked against each other."""
    images = parse_idx(images_raw, images_name, 3)
    labels = parse_idx(labels_raw, labels_name, 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_name}: {images.shape[0]} images but {labels_name} has "
            f"{labels.shape[0]} labels; the counts must agree"
        )
    if labels.max() >= N_CLASSES:
        bad = int(labels.max())
        raise DataError(f"{labels_name}: label {bad} is outside 0–{N_CLASSES - 1}")
    return images, labels


def load_arrays(
    paths: dict[str, Path], dtype: str = "float32"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inputs flattened to (n, features) in ``dtype`` and scaled to [0, 1]; labels as int64."""
    raws = {role: read_idx_bytes(path) for role, path in paths.items()}
    return arrays_from_bytes(raws, {role: str(path) for role, path in paths.items()}, dtype)


def arrays_from_bytes(
    raws: dict[str, bytes], names: dict[str, str], dtype: str = "float32"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``load_arrays`` on bytes already read (and checked) by the caller."""

    def pair(images_role: str, labels_role: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = parse_pair(
            raws[images_role], raws[labels_role], names[images_role], names[labels_role]
        )
        x = images.reshape(images.shape[0], -1).astype(dtype)
        x /= 255.0
        return x, labels.astype(np.int64)

    train_x, train_y = pair("train_images", "train_labels")
    test_x, test_y = pair("test_images", "test_labels")
    return train_x, train_y, test_x, test_y
