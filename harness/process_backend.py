"""Backends in any language: a program that speaks a small protocol over its stdin and stdout.

The protocol is on one page in docs/process-protocol.md; this module is the harness's side. A
``ProcessBackend`` is an ordinary backend to the rest of the harness: the worker loads it, times
its ``train_steps`` and scores its ``predict``; it starts the program as the worker's child, so
the program inherits the worker's thread environment, timeout and kill of all descendants.

Declared three ways, all ending here: ``--backend-cmd "NAME=COMMAND ARGS…"``, a TOML file of
such commands (``--backend-cmds FILE``), or an entry point to a subclass that sets ``command``.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from harness.errors import BackendError
from harness.files import FileRefused, read_small_text, sha256_of
from harness.spec import Spec

PROTOCOL_VERSION = 1
# A backend target naming a command; the "-" keeps it apart from every "module:Class" target.
TARGET_PREFIX = "backend-cmd:"
LINE_LIMIT = 4096  # a reply line longer than this is garbage, not a slow answer
PARAM_ORDER = ("W1", "b1", "W2", "b2")


class ProtocolError(Exception):
    """The program broke the protocol; the message names the step."""


class ProcessBackend:
    """The harness's side of the protocol. Subclasses (or ``command_class``) set the command."""

    name: ClassVar[str] = "process"
    command: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.threads: int | None = None
        self.proc: subprocess.Popen | None = None
        # id(array) → (the array, kept alive so its id stays its own; the file the program reads)
        self.files: dict[int, tuple[np.ndarray, Path]] = {}
        self.ready_text = ""
        self.exchange_s = 0.0  # train requests, as timed from here
        self.program_s = 0.0  # the same requests, as the program timed them
        self.program_timed = True

    # -- what the rest of the harness asks of any backend ------------------------------------

    @classmethod
    def version(cls) -> str:
        """The executable's SHA-256 prefix: a rebuilt program is visibly another version."""
        exe = resolve_executable(cls.command[0]) if cls.command else None
        if exe is None:
            return "?"
        digest = sha256_of(Path(exe))
        return f"{Path(exe).name} sha256:{digest[:12]}"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """For `harness list`; a run of a missing program is still recorded failed, naming it."""
        if cls.command and resolve_executable(cls.command[0]) is None:
            return f"command not found: {cls.command[0]!r} (build it, or give its path)"
        return None

    def configure_threads(self, threads: int | None) -> None:
        self.threads = threads

    def build_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "command": shlex.join(self.command),
            "protocol": PROTOCOL_VERSION,
            "program": self.ready_text,
            "threads_told": f"setup threads={self.threads or 0}, and the worker's environment",
        }
        if self.exchange_s and self.program_timed:
            overhead = max(self.exchange_s - self.program_s, 0.0)
            info["protocol_s"] = round(overhead, 6)
            info["protocol_share"] = round(overhead / self.exchange_s, 6)
        return info

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        self.dtype = np.dtype(spec.dtype)
        self.dir = (
            Path(os.environ.get("HARNESS_SCRATCH_DIR") or ".").resolve() / f"proc-{self.name}"
        )
        if any(c.isspace() or c == "=" for c in str(self.dir)):
            raise ProtocolError(
                f"protocol step 'setup': the run's folder {str(self.dir)!r} has a space or '=' "
                "in its path, which the protocol's space-separated lines cannot carry; set "
                "TMPDIR to a folder without them"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        floats = self.dtype.newbyteorder("<")
        arrays = {
            "train_x": np.ascontiguousarray(train_x, dtype=floats),
            "train_y": np.ascontiguousarray(train_y, dtype="<i4"),
            **{k: np.ascontiguousarray(init[k], dtype=floats) for k in PARAM_ORDER},
        }
        header = {}
        for key, array in arrays.items():
            path = self.dir / f"{key}.bin"
            _write_read_only(path, array)
            header[key] = {"file": path.name, "dtype": array.dtype.name, "shape": array.shape}
        self.files[id(train_x)] = (train_x, self.dir / "train_x.bin")
        (self.dir / "arrays.json").write_text(json.dumps(header, indent=1))
        (self.dir / "spec.json").write_text(json.dumps(spec.to_dict(), indent=1))
        self.shapes = {k: init[k].shape for k in PARAM_ORDER}
        self._start()
        rows, features = train_x.shape
        fields = {
            "protocol": PROTOCOL_VERSION,
            "dir": self.dir.resolve(),
            "dtype": self.dtype.name,
            "rows": rows,
            "features": features,
            "hidden": init["W1"].shape[1],
            "classes": init["W2"].shape[1],
            "batch": spec.batch,
            "lr": repr(float(spec.lr)),
            "threads": self.threads or 0,
            "seed": spec.seed,
        }
        self._send("setup", " ".join(f"{k}={v}" for k, v in fields.items()))
        self.ready_text = self._expect("setup", "ready")

    def train_steps(self, batch_indices: np.ndarray) -> float:
        # Everything from here to the reply is the protocol's cost or the program's work.
        started = time.perf_counter()
        steps, batch = batch_indices.shape
        self._send("train", f"{steps} {batch}", np.ascontiguousarray(batch_indices, dtype="<i4"))
        reply = self._expect("train", "loss")
        self.exchange_s += time.perf_counter() - started
        words = reply.split()
        try:
            loss = float(words[0])
            seconds = float(words[1]) if len(words) > 1 else None
        except (IndexError, ValueError):
            raise ProtocolError(
                f"protocol step 'train': expected 'loss MEAN [SECONDS]', got 'loss {reply[:80]}'"
            ) from None
        if seconds is None:
            self.program_timed = False
        elif not math.isfinite(seconds) or seconds < 0:
            raise ProtocolError(
                f"protocol step 'train': the program timed its steps at {words[1]!r} s "
                "(rule: a time is finite and ≥ 0)"
            )
        else:
            self.program_s += seconds
        return loss  # its range is checked by the worker, as for every backend

    def predict(self, x: np.ndarray) -> np.ndarray:
        known = self.files.get(id(x))
        if known is None:  # first time this array is asked about: write it once
            known = (x, self.dir / f"predict-{len(self.files)}.bin")
            _write_read_only(known[1], np.ascontiguousarray(x, dtype=self.dtype.newbyteorder("<")))
            self.files[id(x)] = known
        path = known[1]
        rows = len(x)
        self._send("predict", f"{path.resolve()} {rows}")
        count = self._expect("predict", "ids")
        if count.strip() != str(rows):
            raise ProtocolError(
                f"protocol step 'predict': asked for {rows} ids, the program announced {count!r}"
            )
        return np.frombuffer(self._read_exact("predict", rows * 4), dtype="<i4").astype(np.int64)

    def params(self) -> dict[str, np.ndarray]:
        self._send("params", "")
        self._expect("params", "params")
        out = {}
        for key in PARAM_ORDER:
            shape = self.shapes[key]
            size = int(np.prod(shape)) * self.dtype.itemsize
            raw = self._read_exact("params", size)
            out[key] = np.frombuffer(raw, dtype=self.dtype.newbyteorder("<")).reshape(shape)
        return {k: v.astype(self.dtype) for k, v in out.items()}

    def close(self) -> None:
        """Ask the program to quit and wait for it, so it is not left as a stray process."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.stdin.write(b"quit\n")
                proc.stdin.flush()
            proc.wait(timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- the pipe ----------------------------------------------------------------------------

    def _start(self) -> None:
        exe = resolve_executable(self.command[0])
        if exe is None:
            raise ProtocolError(
                f"protocol step 'start': command not found: {self.command[0]!r} (build it, or "
                "give its path)"
            )
        try:
            self.proc = subprocess.Popen(
                [exe, *self.command[1:]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,  # stderr stays the worker's: its tail reaches the record
                bufsize=1 << 16,
            )
        except OSError as exc:
            raise ProtocolError(f"protocol step 'start': cannot run {exe!r}: {exc}") from None

    def _send(self, step: str, args: str, payload: np.ndarray | None = None) -> None:
        proc = self._alive(step)
        try:
            proc.stdin.write(f"{step} {args}".rstrip().encode() + b"\n")
            if payload is not None:
                proc.stdin.write(memoryview(payload).cast("B"))  # no copy of the indices
            proc.stdin.flush()
        except BrokenPipeError:
            raise ProtocolError(self._ended(step, "stopped reading its stdin")) from None

    def _expect(self, step: str, word: str) -> str:
        """Read one reply line; it must start with ``word``. Returns the rest of the line."""
        stdout = self._alive(step).stdout
        line = stdout.readline(LINE_LIMIT)
        if not line:
            raise ProtocolError(self._ended(step, f"closed its stdout before answering {word!r}"))
        if not line.endswith(b"\n"):
            raise ProtocolError(
                f"protocol step {step!r}: expected a line starting {word!r}, got "
                f"{_shown(line)} with no newline within {LINE_LIMIT} bytes"
            )
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        head, _, rest = text.partition(" ")
        if head == "error":
            raise ProtocolError(f"protocol step {step!r}: the program reported: {rest}")
        if head != word:
            raise ProtocolError(
                f"protocol step {step!r}: expected a line starting {word!r}, got {_shown(line)}"
            )
        return rest

    def _read_exact(self, step: str, size: int) -> bytes:
        data = _read_all(self._alive(step).stdout, size)
        if len(data) != size:
            raise ProtocolError(
                self._ended(step, f"sent {len(data)} of the {size} bytes it announced")
            )
        return data

    def _alive(self, step: str) -> subprocess.Popen:
        if self.proc is None:
            raise ProtocolError(f"protocol step {step!r}: the program is not running")
        return self.proc

    def _ended(self, step: str, what: str) -> str:
        status = self.proc.poll() if self.proc else None
        if status is None and self.proc is not None:
            try:
                status = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                status = None
        if status is None:
            how = ""
        elif status < 0:
            how = f" (it was killed by signal {signal.Signals(-status).name})"
        else:
            how = f" (it exited with status {status})"
        return f"protocol step {step!r}: the program {what}{how}"


def _write_read_only(path: Path, array: np.ndarray) -> None:
    """The program gets a copy it may read, not write (mode 0444): the file stays what the
    harness wrote for the whole run, as predict reuses it."""
    array.tofile(path)
    path.chmod(0o444)


def _read_all(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _shown(line: bytes) -> str:
    return repr(line[:60].decode("utf-8", "replace")) + ("…" if len(line) > 60 else "")


def resolve_executable(program: str) -> str | None:
    """An absolute path for ``program``: a path as given (made absolute), else found on PATH."""
    if os.sep in program:  # abspath, not resolve: a venv's python is a link that must stay one
        path = os.path.abspath(program)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(program)


# -- declaring process backends --------------------------------------------------------------


def target_for(name: str, argv: list[str]) -> str:
    """The backend target that names a command: stored in sessions, so --resume finds it."""
    return TARGET_PREFIX + json.dumps({"name": name, "argv": argv})


def command_class(target: str) -> type[ProcessBackend]:
    """The ProcessBackend subclass a ``backend-cmd:`` target stands for."""
    spec = json.loads(target[len(TARGET_PREFIX) :])
    return type(
        f"ProcessBackend_{spec['name']}",
        (ProcessBackend,),
        {"name": spec["name"], "command": tuple(spec["argv"])},
    )


def parse_declaration(text: str) -> tuple[str, list[str]]:
    """``NAME=COMMAND ARGS…`` → (name, argv), a relative program path made absolute."""
    name, sep, command = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise BackendError(f"--backend-cmd {text!r}: write it as NAME=COMMAND [ARGS…]")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise BackendError(f"--backend-cmd {text!r}: {exc}") from None
    if not argv:
        raise BackendError(f"--backend-cmd {text!r}: no command after '{name}='")
    return name, _absolute(argv, Path.cwd())


def read_declarations(path: Path) -> list[tuple[str, list[str]]]:
    """A TOML file of ``NAME = "COMMAND ARGS…"`` (or an argv list) under ``[backend-cmd]``.

    Relative program paths are taken relative to the file's folder.
    """
    try:
        table = tomllib.loads(read_small_text(path)).get("backend-cmd")
    except (FileRefused, tomllib.TOMLDecodeError) as exc:
        raise BackendError(f"--backend-cmds {path}: {exc}") from None
    if not isinstance(table, dict) or not table:
        raise BackendError(f'--backend-cmds {path}: no [backend-cmd] table of NAME = "COMMAND"')
    out = []
    for name, value in table.items():
        if isinstance(value, str):
            argv = shlex.split(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            argv = list(value)
        else:
            raise BackendError(
                f"--backend-cmds {path}: {name} must be a command string or a list of strings"
            )
        out.append((name, _absolute(argv, path.parent)))
    return out


def _absolute(argv: list[str], base: Path) -> list[str]:
    """A program given as a path is made absolute from ``base``; a bare name stays for PATH.

    abspath, not resolve: a venv's python is a link that must stay one.
    """
    if os.sep in argv[0]:
        argv = [os.path.abspath(base / argv[0]), *argv[1:]]
    return argv
