"""The Rust crate's own gates: formatting, clippy with warnings as errors, and its unit tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers import REPO_ROOT

CRATE = REPO_ROOT / "rust_impl"

pytestmark = [
    pytest.mark.rust,
    # One worker under pytest -n: cargo locks the build folder, so a second would only wait.
    pytest.mark.xdist_group("cargo"),
    pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed"),
]


@pytest.mark.parametrize(
    "command",
    [
        ["cargo", "fmt", "--check"],
        ["cargo", "clippy", "--all-targets", "--features", "python", "--", "-D", "warnings"],
        ["cargo", "test", "--quiet"],
        # As on a CPU without AVX-512: the AVX2 forward kernel and the crates take the products.
        ["cargo", "test", "--quiet", "--no-default-features"],
    ],
    ids=["fmt", "clippy", "test", "test-without-avx512"],
)
def test_cargo(command):
    result = subprocess.run(command, cwd=CRATE, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
