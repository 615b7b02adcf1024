"""What a backend is handed, and what the harness keeps for itself.

Every array a backend gets (training and test inputs, labels, initial parameters, batch
indices) is a read-only view whose read-only flag cannot be turned back on: it looks at the
harness's memory through a read-only memoryview, so ``x *= 2``, ``x[...] = 0`` and
``x.setflags(write=True)`` all raise. What the harness checks against (the labels accuracy is
scored on, the initial parameters and batches verify compares with) are copies taken before any
backend code runs and never handed out, so even a backend that got round the flag could not
change what it is judged by.

A backend that writes into one of its inputs gets a ``ValueError`` from NumPy ("assignment
destination is read-only"); ``written_input`` finds which input it was, for the run's error.
"""

from __future__ import annotations

import linecache
import re
import types
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_HARNESS_DIR = Path(__file__).resolve().parent.parent

# NumPy's words for a write into a read-only array (ufunc output, item assignment, setflags).
_READ_ONLY = re.compile(r"read-only|WRITEABLE flag", re.IGNORECASE)


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that cannot be written through, nor made writable again."""
    contiguous = np.ascontiguousarray(array)
    view = np.asarray(memoryview(contiguous).toreadonly())
    # memoryview keeps the dtype and shape, but a 0-d or empty array may come back flattened.
    return view.reshape(contiguous.shape).view(contiguous.dtype)


@dataclass(frozen=True)
class Handed:
    """The arrays one backend was given, by the name its error messages use."""

    arrays: Mapping[str, np.ndarray]

    @classmethod
    def of(
        cls,
        train_x: np.ndarray,
        train_y: np.ndarray,
        test_x: np.ndarray,
        init: Mapping[str, np.ndarray],
    ) -> Handed:
        arrays = {"train_x": train_x, "train_y": train_y, "test_x": test_x}
        arrays.update({f"init[{name!r}]": value for name, value in init.items()})
        return cls(arrays)

    def plus(self, name: str, array: np.ndarray) -> Handed:
        return Handed({**self.arrays, name: array})


def is_read_only_write(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and bool(_READ_ONLY.search(str(exc)))


def written_input(exc: BaseException, handed: Handed) -> list[str]:
    """The inputs the failing statement of ``exc`` wrote into, by name; [] if none is found.

    Walks the traceback from the statement that raised outwards; in each frame, the local
    variables named on the failing line (and, one level down, the dict keys and attributes
    also named there) are matched by memory against what the backend was handed.
    """
    frames = [f for f in _frames(exc.__traceback__) if not _harness_code(f[0])]
    for frame, lineno in reversed(frames):
        line = linecache.getline(frame.f_code.co_filename, lineno)
        words = set(re.findall(r"[A-Za-z_]\w*", line))
        found: list[str] = []
        for word in sorted(words & frame.f_locals.keys()):
            for candidate in _arrays_named(frame.f_locals[word], words):
                found += [
                    name
                    for name, given in handed.arrays.items()
                    if name not in found and _same_memory(candidate, given)
                ]
        if found:
            return found
    return []


def _frames(tb: types.TracebackType | None) -> Iterator[tuple[types.FrameType, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _harness_code(frame: types.FrameType) -> bool:
    """The harness's own frames call the backend with every input on one line: not evidence."""
    return Path(frame.f_code.co_filename).resolve().is_relative_to(_HARNESS_DIR)


def _arrays_named(value: Any, words: set[str]) -> Iterator[np.ndarray]:
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, Mapping):
        named = [key for key in value if isinstance(key, str) and key in words]
        for key in named or list(value):
            if isinstance(value[key], np.ndarray):
                yield value[key]
    elif hasattr(value, "__dict__"):
        for attribute, item in vars(value).items():
            if attribute in words and isinstance(item, np.ndarray):
                yield item


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.size > 0 and b.size > 0 and bool(np.may_share_memory(a, b))


def read_only_message(exc: BaseException, handed: Handed) -> str:
    """One line: which input the backend wrote into, and what to do instead."""
    names = written_input(exc, handed)
    if not names:  # not traced to an input: say so rather than blame one
        return (
            f"the backend wrote into a read-only array ({type(exc).__name__}: {exc}); the "
            f"harness hands over {', '.join(handed.arrays)} read-only: if it is one of them, "
            "copy it first (np.array(x))"
        )
    return (
        f"the backend wrote into {' and '.join(names)}, which the harness hands over read-only "
        f"({type(exc).__name__}: {exc}); copy it first (np.array({names[0]}))"
    )


class RunInputs:
    """One run's inputs: read-only views for the backend, and the harness's own copies.

    The harness's copies (labels, initial parameters, batches) are taken before any backend
    code runs and never handed out: accuracy is scored, and verify compares, against them.
    Each chunk of batch indices is a fresh read-only copy, so not even a backend that got round
    the flag can change the batches of a later step. What cannot be copied cheaply (the inputs)
    is fingerprinted instead, and ``changed`` says which handed array differs from what it was.
    """

    def __init__(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        init: Mapping[str, np.ndarray],
        batches: np.ndarray,
    ) -> None:
        self.own_train_y = np.array(train_y, copy=True)
        self.own_test_y = np.array(test_y, copy=True)
        self.own_init = {name: np.array(value, copy=True) for name, value in init.items()}
        self.own_batches = np.array(batches, copy=True)
        self.train_x = read_only(train_x)
        self.train_y = read_only(train_y)
        self.test_x = read_only(test_x)
        self.init = {name: read_only(value) for name, value in init.items()}
        self.handed = Handed.of(self.train_x, self.train_y, self.test_x, self.init)
        self._fingerprints = {name: _fingerprint(a) for name, a in self.handed.arrays.items()}

    def chunk(self, start: int, end: int) -> np.ndarray:
        """Steps ``start``…``end − 1`` of the batch stream, as the backend gets them."""
        chunk = read_only(self.own_batches[start:end].copy())
        self.handed = self.handed.plus("batch_indices", chunk)
        return chunk

    def changed(self) -> list[str]:
        """The handed arrays whose bytes are no longer what they were before the backend ran."""
        return [
            name
            for name, before in self._fingerprints.items()
            if _fingerprint(self.handed.arrays[name]) != before
        ]


def _fingerprint(array: np.ndarray) -> int:
    """CRC-32 of the bytes: any change a mistake or a bypass makes shows; ~3 GB/s."""
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))
