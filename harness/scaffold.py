"""``harness new-backend NAME [DIR] [--lang python|c|rust]``: a ready-to-edit backend.

Python: a plugin package whose backend raises NotImplementedError from each method, with a
message saying what to fill in; ``harness verify`` shows that message, so an unedited scaffold
fails verify politely. C and Rust: a program speaking the process protocol with the book's
network written plainly, and its build file (from ``harness/templates/LANG``); as written it
builds and passes ``verify``.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from harness.errors import HarnessError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]*")

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]  # PEP 621 metadata
build-backend = "setuptools.build_meta"

[project]
name = "harness-backend-{name}"
version = "0.1.0"
description = "The {name} backend for mlp-bench"
requires-python = ">=3.11"
dependencies = ["numpy>=1.26"]  # add the library your backend uses

[project.optional-dependencies]
test = ["pytest>=8"]

# This line is what makes `python -m harness list` find the backend.
[project.entry-points."harness.backends"]
{name} = "{module}.backend:Backend"

[tool.setuptools]
packages = ["{module}"]
"""

BACKEND = '''"""The {name} backend for mlp-bench: fill in the four methods, then run
`python -m harness verify --backend {name}` until it passes.
"""

from __future__ import annotations

import numpy as np


class Backend:
    name = "{name}"

    # Optional hooks (delete what you do not need):
    #   version() -> str, unavailable_reason() -> str | None, configure_threads(n),
    #   build_info() -> dict, follows_batch_stream = False if you draw your own batches.

    def setup(self, spec, train_x: np.ndarray, train_y: np.ndarray, init: dict) -> None:
        """Untimed. Copy the training set in and build the 784-{{spec.hidden}}-10 net with
        exactly the given init["W1"], init["b1"], init["W2"], init["b2"] (dtype spec.dtype)."""
        raise NotImplementedError(
            "fill in setup() in {path}: copy train_x/train_y in and set the weights from init"
        )

    def train_steps(self, batch_indices: np.ndarray) -> float:
        """Timed. For each row of batch_indices (k, batch): gather those training rows, take one
        SGD step (lr = spec.lr, softmax cross-entropy averaged over the batch); return the mean
        loss."""
        raise NotImplementedError(
            "fill in train_steps() in {path}: one SGD step per row of batch_indices"
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class ids (n,) as integers; the harness computes accuracy itself."""
        raise NotImplementedError("fill in predict() in {path}: return argmax class ids")

    def params(self) -> dict[str, np.ndarray]:
        """The current W1, b1, W2, b2 as NumPy arrays."""
        raise NotImplementedError("fill in params() in {path}: return W1, b1, W2, b2")
'''

TEST = '''"""Conformance: the backend does the same job as the book's code, step by step."""

import os
import subprocess
import sys

import pytest
from harness import data
from harness.errors import DataError


def test_verify_passes():
    try:  # verify trains on MNIST: the folder in HARNESS_DATA_DIR, or the harness's cache
        data.locate("mnist", download=False)
    except DataError as exc:
        pytest.skip(f"no MNIST here ({{exc}}); set HARNESS_DATA_DIR to a folder holding it")
    result = subprocess.run(
        [sys.executable, "-m", "harness", "verify", "--backend", "{name}", "--steps", "50"],
        capture_output=True, text=True, env={{**os.environ}},
    )
    assert result.returncode == 0, result.stdout + result.stderr
'''

README = """# harness-backend-{name}

An mlp-bench backend. Install it next to mlp-bench and check it:

```bash
pip install -e '.[test]'
python -m harness list                     # shows {name}
export HARNESS_DATA_DIR=/path/to/mnist     # the four MNIST files (.gz or not)
python -m harness verify --backend {name}  # the conformance test
python -m harness run --backend {name} --quick
pytest                                     # runs the same verify (skips without MNIST)
```
"""

PROGRAM_README = """# {name}: an mlp-bench backend in {language}

The book's network written plainly, speaking mlp-bench's process protocol on stdin and stdout
(docs/writing-a-backend.md in mlp-bench). As written it builds and passes verify:

```bash
{build}
export HARNESS_DATA_DIR=/path/to/mnist     # the four MNIST files (.gz or not)
python -m harness verify --backend-cmd {name}={program} --timeout 60
python -m harness run --backend-cmd {name}={program} --backend numpy --quick
```

Then make {edit} yours and run verify again.
"""


def backend_file(name: str, target: Path) -> Path:
    """The file of the four methods to fill in."""
    return target / ("harness_backend_" + name.replace("-", "_")) / "backend.py"


LANGUAGE_NAMES = {"python": "Python", "c": "C", "rust": "Rust"}
# What to do with a program template once written: (file to edit, build command, program path).
PROGRAMS = {
    "c": ("backend.c", "make -C {dir}", "{dir}/{name}"),
    "rust": (
        "src/main.rs",
        "cargo build --release --manifest-path {dir}/Cargo.toml",
        "{dir}/target/release/{name}",
    ),
}


def next_steps(name: str, target: Path, lang: str) -> list[str]:
    """What the user does next: which file to fill in or edit, how to build, how to verify."""
    if lang == "python":
        return [
            f"wrote {target}: fill in {backend_file(name, target)}, then:",
            f"  pip install -e {target} && python -m harness verify --backend {name}",
        ]
    edit, build, program = PROGRAMS[lang]
    return [
        f"wrote {target}: the book's network in {LANGUAGE_NAMES[lang]}, speaking the process "
        f"protocol; make {target / edit} yours, then:",
        f"  {build.format(dir=target)} && python -m harness verify --backend-cmd "
        f"{name}={program.format(dir=target, name=name)} --timeout 60",
    ]


def _program_files(name: str, target: Path, lang: str) -> dict[Path, str]:
    root = resources.files("harness") / "templates" / lang
    edit, build, program = PROGRAMS[lang]
    files: dict[Path, str] = {
        target / "README.md": PROGRAM_README.format(
            name=name,
            language=LANGUAGE_NAMES[lang],
            build=build.format(dir="."),
            program=program.format(dir=".", name=name),
            edit=edit,
        )
    }
    pending = [(root, Path())]
    while pending:
        folder, relative = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append((entry, relative / entry.name))
            else:
                files[target / relative / entry.name] = entry.read_text().replace("__NAME__", name)
    return files


def _checkout_around(folder: Path) -> Path | None:
    """The git checkout ``folder`` is in, if any (its top folder)."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _default_place(name: str) -> Path:
    """./harness-backend-NAME, unless that is inside a git checkout: a backend there would lie
    among the checkout's files as untracked ones, so the user names the place instead."""
    folder = Path(f"harness-backend-{name}")
    checkout = _checkout_around(Path.cwd().resolve())
    if checkout is not None:
        beside = Path(os.path.relpath(checkout.parent / folder.name))
        raise HarnessError(
            f"this folder is inside the git checkout {checkout}: new-backend would write "
            f"{folder} into it; give the place, e.g. python -m harness new-backend {name} "
            f"{beside} (beside the checkout), or {folder} to write it here anyway"
        )
    return folder


def write_scaffold(name: str, directory: Path | None, lang: str = "python") -> Path:
    if not NAME_PATTERN.fullmatch(name):
        raise HarnessError(
            f"backend name {name!r} must be lower-case letters, digits and '-', starting with a "
            "letter (e.g. numpy-fused)"
        )
    target = directory or _default_place(name)
    if target.exists() and any(target.iterdir()):
        raise HarnessError(f"{target} already exists and is not empty; choose another DIR")
    if lang == "python":
        backend_path = backend_file(name, target)
        module = backend_path.parent.name
        files = {
            target / "pyproject.toml": PYPROJECT.format(name=name, module=module),
            target / "README.md": README.format(name=name),
            target / module / "__init__.py": f'"""The {name} backend for mlp-bench."""\n',
            backend_path: BACKEND.format(name=name, path=backend_path),
            target / "tests" / "test_verify.py": TEST.format(name=name),
        }
    else:
        files = _program_files(name, target, lang)
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except OSError as exc:
        raise HarnessError(
            f"cannot write the scaffold to {target}: {exc.strerror or exc}"
        ) from None
    return target
