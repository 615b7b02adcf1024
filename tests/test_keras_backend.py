"""Keras on TensorFlow: the same arithmetic as NumPy, threads applied, noise kept out of sight."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from harness import backends
from harness.spec import Spec
from harness.work.plan import make_plan
from impls.keras_tf import INSTALL_HINT, KerasBackend
from impls.numpy_scratch import NumpyBackend
from tests.helpers import run_cli, synthetic_mnist

tf = pytest.importorskip("tensorflow", reason=INSTALL_HINT)


def test_100_steps_match_numpy():
    spec = Spec(iterations=100)
    x, y = synthetic_mnist()
    x = x.astype(np.float32)
    plan = make_plan(spec, 784, 10, len(x))
    ours, book = KerasBackend(), NumpyBackend()
    ours.setup(spec, x, y, plan.init)
    book.setup(spec, x, y, plan.init)
    our_loss = ours.train_steps(plan.batches[:60]) * 60 + ours.train_steps(plan.batches[60:]) * 40
    book_loss = book.train_steps(plan.batches)
    for name, value in book.params().items():
        got = ours.params()[name]
        assert got.dtype == np.float32 and got.shape == value.shape
        np.testing.assert_allclose(got, value, rtol=1e-3, atol=1e-4, err_msg=name)
    assert our_loss / 100 == pytest.approx(book_loss, rel=1e-3)
    assert (ours.predict(x) == book.predict(x)).mean() > 0.99


def test_keras_through_the_harness(idx_dir, tmp_path):
    result, record = run_cli(idx_dir, tmp_path, "keras")
    assert result.returncode == 0, record["error"]
    assert record["status"] == "ok" and record["follows_batch_stream"] is True
    assert record["build_info"] == {"tf_intra_op_threads": 1, "tf_inter_op_threads": 1}
    assert record["setup_time_s"] > record["train_time_s"]  # import + tracing are setup
    # TensorFlow's start-up chatter stays in the worker's log, not the user's terminal.
    for noise in ("oneDNN", "cpu_feature_guard", "TF_ENABLE_ONEDNN_OPTS"):
        assert noise not in result.stderr and noise not in result.stdout


def test_keras_fit_says_it_does_not_follow_the_batch_stream(idx_dir, tmp_path):
    result, record = run_cli(idx_dir, tmp_path, "keras-fit")
    assert result.returncode == 0, record["error"]
    assert record["follows_batch_stream"] is False
    assert record["iterations_done"] == 40


def test_missing_tensorflow_is_reported_with_the_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real(name, *a),
    )
    for name in ("keras", "keras-fit"):
        state = backends.status(backends.lookup(name))
        assert not state.available
        assert (
            state.reason == "TensorFlow/Keras are not installed; install them with: "
            "pip install -e '.[keras]'"
        )
