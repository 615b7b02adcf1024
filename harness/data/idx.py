"""The IDX format: a strict parser and the arrays every backend gets (scaled inputs, int labels).

IDX is the format of MNIST and Fashion-MNIST: a magic number (two zero bytes, a type code, the
number of dimensions), big-endian 32-bit dimensions, then the values. Only unsigned bytes occur in
these datasets, so only they are accepted; anything else is a DataError naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

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


# The most any IDX file may expand to. MNIST's largest is 47 MB; a file whose header declares
# more, or whose stream runs past what its header declares, is refused without reading on.
MAX_IDX_BYTES = 2**30
_CHUNK = 2**20


def read_idx_file(path: Path, limit: int = MAX_IDX_BYTES) -> tuple[bytes, str]:
    """The decompressed bytes of ``path`` (gzip detected by its magic, not its name) and their
    SHA-256, hashed as they stream.

    Bounded whatever the file holds (a gzip bomb, a header that lies): the header is read first,
    and no more is decompressed than the size it declares, which may not exceed ``limit``; the
    file is refused as soon as its header or its length cannot match. Time and memory are those
    of the declared size, never of what the file would expand to.
    """
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an IDX file")
    try:
        with path.open("rb") as file:
            packed = file.read(2) == b"\x1f\x8b"
            file.seek(0)
            stream = gzip.GzipFile(fileobj=file) if packed else file
            return _read_declared(stream, path, limit)
    except PermissionError:
        raise DataError(f"{path}: permission denied; make it readable") from None
    except EOFError:
        raise DataError(f"{path}: truncated gzip file; download it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip file ({exc}); download it again") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _read_declared(stream: BinaryIO, path: Path, limit: int) -> tuple[bytes, str]:
    digest = hashlib.sha256()
    raw = bytearray(stream.read(4))
    if len(raw) == 4:
        if raw[:2] != b"\x00\x00" or raw[2] != _UBYTE or not 1 <= raw[3] <= 4:
            raise DataError(
                f"{path}: wrong magic number 0x{bytes(raw).hex()}; expected an unsigned-byte IDX "
                "file (0x0000080N); replace it with an intact copy"
            )
        raw += stream.read(4 * raw[3])
        digest.update(raw)
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
        declared = 4 + 4 * raw[3] + math.prod(dims)
        if declared > limit:
            raise DataError(
                f"{path}: its IDX header declares {declared:,} bytes {tuple(dims)}, more than the "
                f"{limit:,} such a file may hold; replace it with an intact copy"
            )
        while len(raw) < declared:
            chunk = stream.read(min(_CHUNK, declared - len(raw)))
            if not chunk:
                break  # shorter than declared: parse_idx names how much is missing
            raw += chunk
            digest.update(chunk)
        if len(raw) == declared and stream.read(1):
            raise DataError(
                f"{path}: has trailing bytes: it runs past the {declared:,} bytes its IDX header "
                "declares; replace it with an intact copy"
            )
    else:
        digest.update(raw)  # too short for a header: parse_idx says so
    return bytes(raw), digest.hexdigest()


def read_idx_bytes(path: Path, limit: int = MAX_IDX_BYTES) -> bytes:
    """``read_idx_file``'s bytes alone."""
    return read_idx_file(path, limit)[0]


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
