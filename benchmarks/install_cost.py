"""Benchmark: what installing each library backend's extra costs, in time and disk.

    python benchmarks/install_cost.py [--extra jax --extra torch] [--json FILE]

For each extra named in pyproject.toml, a fresh virtual environment gets exactly that extra's
requirements from the package registry, without pip's cache; the wall time of the install and the
growth of the environment on disk are kept. The numbers depend on the network and the registry's
wheels of the day, which is why the README quotes them from this file, with its date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from kept import keep

REPO = Path(__file__).resolve().parent.parent


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=None, help="default: jax and torch")
    parser.add_argument("--json", type=Path, default=None, help="keep the numbers in this file")
    args = parser.parse_args()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    numbers = {}
    for extra in args.extra or ["jax", "torch"]:
        with tempfile.TemporaryDirectory() as folder:
            venv = Path(folder) / "venv"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            empty = tree_bytes(venv)
            started = time.perf_counter()
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", *extras[extra]],
                check=True,
            )
            seconds = time.perf_counter() - started
            numbers[extra] = {
                "requirements": extras[extra],
                "seconds": seconds,
                "bytes": tree_bytes(venv) - empty,
            }
        print(
            f"[{extra}] {numbers[extra]['seconds']:.0f} s, {numbers[extra]['bytes'] / 1e9:.2f} GB"
        )
    keep(args.json, "install_cost", numbers)


if __name__ == "__main__":
    main()
