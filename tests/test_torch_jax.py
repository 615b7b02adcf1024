"""PyTorch and JAX: the book's arithmetic on the harness's batches, threads applied as documented.

The checks that drive a backend directly run in a fresh interpreter: TensorFlow and PyTorch each
carry their own LLVM, and a process that loads both aborts ("Option 'bitcode-mdindex-threshold'
registered more than once"), while other test modules load TensorFlow into pytest's process. That
is one more reason the harness runs every backend in a process of its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness import backends
from harness.spec import Spec
from harness.work.plan import make_plan
from impls.numpy_scratch import NumpyBackend
from tests.helpers import run_cli, synthetic_mnist, verify

BACKENDS = [("jax", "jax"), ("torch", "torch"), ("torch-compile", "torch")]


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed")


def _backend(name: str):
    return backends.load_class(backends.lookup(name).target)()


def _in_fresh_python(call: str) -> None:
    """Run ``call`` (a check of this module) in a new interpreter; its assertion errors fail."""
    code = f"from tests.test_torch_jax import *\n{call}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize(("name", "module"), BACKENDS)
def test_100_steps_match_numpy_across_uneven_chunks(name, module):
    _needs(module)
    _in_fresh_python(f"check_100_steps_match_numpy({name!r})")


def check_100_steps_match_numpy(name: str) -> None:
    spec = Spec(iterations=100)
    x, y = synthetic_mnist()
    x = x.astype(np.float32)
    plan = make_plan(spec, 784, 10, len(x))
    ours, book = _backend(name), NumpyBackend()
    ours.setup(spec, x, y, plan.init)
    # Training starts from init: torch-compile's step compiled (and taken) in setup is undone.
    for param, value in plan.init.items():
        np.testing.assert_array_equal(ours.params()[param], value, err_msg=f"{param} after setup")
    book.setup(spec, x, y, plan.init)
    # 60 + 37 + 3: chunk lengths the spec's schedule never announced must work too.
    chunks = [plan.batches[:60], plan.batches[60:97], plan.batches[97:]]
    our_loss = sum(ours.train_steps(chunk) * len(chunk) for chunk in chunks)
    book_loss = book.train_steps(plan.batches)
    for param, value in book.params().items():
        got = ours.params()[param]
        assert got.dtype == np.float32 and got.shape == value.shape, param
        np.testing.assert_allclose(got, value, rtol=1e-3, atol=1e-4, err_msg=param)
    assert our_loss / 100 == pytest.approx(book_loss, rel=1e-3)
    predicted = ours.predict(x)
    assert predicted.dtype == np.int64 and predicted.shape == (len(x),)
    assert (predicted == book.predict(x)).mean() > 0.99


@pytest.mark.parametrize(("name", "module"), BACKENDS)
def test_through_the_harness_with_the_thread_budget_recorded(idx_dir, tmp_path, name, module):
    _needs(module)
    result, record = run_cli(idx_dir, tmp_path, name)
    assert result.returncode == 0, record["error"]
    assert record["status"] == "ok" and record["follows_batch_stream"] is True
    told = record["build_info"]["threads_told"]
    if module == "torch":
        assert told == "torch intra=1 interop=1"
        assert record["build_info"]["compiled"] is (name == "torch-compile")
    else:
        assert "--xla_cpu_multi_thread_eigen=false" in told
        assert record["build_info"]["device"] == "cpu"
        # Float32 products in float32, never TF32 (JAX's GPU default; verify fails it).
        assert record["build_info"]["matmul_precision"] == "highest"
        assert ("affinity narrowed to CPUs" in told) == (len(os.sched_getaffinity(0)) > 1)


def test_jax_thread_budget_is_set_before_import():
    """XLA sizes its pool from the affinity mask: one thread means one CPU, and the flag set."""
    _needs("jax")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to see the affinity narrowed")
    code = (
        "import os, json\n"
        "from impls.jax_xla import JaxBackend\n"
        "b = JaxBackend(); b.configure_threads(1)\n"
        "import jax\n"
        "print(json.dumps({'cpus': sorted(os.sched_getaffinity(0)),"
        " 'flags': os.environ['XLA_FLAGS'], 'platform': jax.devices()[0].platform}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(seen["cpus"]) == 1
    assert seen["flags"] == "--xla_cpu_multi_thread_eigen=false"
    assert seen["platform"] == "cpu"


@pytest.mark.parametrize(
    ("names", "module", "hint"),
    [
        (["jax"], "jax", "JAX is not installed; install it with: pip install -e '.[jax]'"),
        (
            ["torch", "torch-compile"],
            "torch",
            "PyTorch is not installed; install it with: pip install -e '.[torch]'",
        ),
    ],
)
def test_missing_library_is_reported_with_the_install_hint(monkeypatch, names, module, hint):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda m, *a: None if m == module else real(m, *a)
    )
    for name in names:
        state = backends.status(backends.lookup(name))
        assert not state.available
        assert state.reason == hint


@pytest.mark.parametrize(("name", "module"), BACKENDS[:2])
def test_float64_verify_accepts_the_libraries_plain_cross_entropy(idx_dir, name, module):
    """Fused library losses have no 1e-7 inside the log; in float64 verify must still pass."""
    _needs(module)
    result = verify(idx_dir, "--backend", name, "--steps", "10", "--set", "dtype=float64")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{name}: pass" in result.stdout
