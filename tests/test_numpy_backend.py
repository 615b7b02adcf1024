"""The book's layers: analytic gradients against numerical ones, and the backend's contract."""

from __future__ import annotations

import numpy as np
import pytest

from harness.spec import Spec
from harness.work.plan import make_plan
from impls.numpy_scratch import NumpyBackend, SoftmaxWithLoss, TwoLayerNet, softmax


def numerical_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = f()
        x[index] = original - h
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def test_gradients_match_numerical_gradients():
    # Small weights keep every probability far from 0, where the book's "+ 1e-7" inside the log
    # would bend the loss away from what the analytic gradient assumes.
    rng = np.random.default_rng(3)
    init = {
        "W1": rng.standard_normal((6, 5)) * 0.3,
        "b1": rng.standard_normal(5) * 0.1,
        "W2": rng.standard_normal((5, 4)) * 0.3,
        "b2": rng.standard_normal(4) * 0.1,
    }
    net = TwoLayerNet(init)
    x = rng.standard_normal((7, 6))
    t = rng.integers(0, 4, size=7)
    _, grads = net.gradient(x, t)
    for name, param in net.params.items():
        numeric = numerical_gradient(lambda: net.loss(x, t), param)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-7, err_msg=name)


def test_input_gradient_of_hidden_layer_matches():
    rng = np.random.default_rng(4)
    net = TwoLayerNet(
        {
            "W1": rng.standard_normal((3, 4)) * 0.3,
            "b1": np.zeros(4),
            "W2": rng.standard_normal((4, 3)) * 0.3,
            "b2": np.zeros(3),
        }
    )
    h = rng.standard_normal((2, 4))
    t = np.array([0, 2])
    last = SoftmaxWithLoss()
    affine = net.layers["Affine2"]

    def loss() -> float:
        return last.forward(affine.forward(h), t)

    loss()
    dh = affine.backward(last.backward())
    np.testing.assert_allclose(dh, numerical_gradient(loss, h), rtol=1e-5, atol=1e-8)


def test_softmax_is_finite_for_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [3e38, 3e38, 0.0]], dtype=np.float32)
    probabilities = softmax(logits)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


@pytest.fixture
def backend_and_plan():
    spec = Spec(iterations=20, batch=8, hidden=6)
    rng = np.random.default_rng(0)
    train_x = rng.random((40, 12), dtype=np.float32)
    train_y = rng.integers(0, 10, size=40)
    plan = make_plan(spec, 12, 10, 40)
    backend = NumpyBackend()
    backend.setup(spec, train_x, train_y, plan.init)
    return backend, plan, train_x


def test_backend_does_not_mutate_the_harness_init(backend_and_plan):
    backend, plan, _ = backend_and_plan
    before = plan.init_sha256
    backend.train_steps(plan.batches[:5])
    assert plan.init_sha256 == before
    assert not np.array_equal(backend.params()["W1"], plan.init["W1"])


def test_backend_steps_equal_a_plain_sgd_loop(backend_and_plan):
    backend, plan, train_x = backend_and_plan
    train_y = backend.train_y
    loss = backend.train_steps(plan.batches[:20])
    params = {k: v.astype(np.float64) for k, v in plan.init.items()}
    losses = []
    for rows in plan.batches[:20]:
        x, t = train_x[rows].astype(np.float64), train_y[rows]
        h = x @ params["W1"] + params["b1"]
        a = np.maximum(h, 0)
        y = softmax(a @ params["W2"] + params["b2"])
        losses.append(-np.log(y[np.arange(len(t)), t] + 1e-7).mean())
        dy = y.copy()
        dy[np.arange(len(t)), t] -= 1
        dy /= len(t)
        da = dy @ params["W2"].T
        da[h <= 0] = 0
        grads = {"W2": a.T @ dy, "b2": dy.sum(0), "W1": x.T @ da, "b1": da.sum(0)}
        for k in params:
            params[k] -= 0.1 * grads[k]
    for name, value in backend.params().items():
        np.testing.assert_allclose(value, params[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert loss == pytest.approx(np.mean(losses), rel=1e-4)
    assert backend.predict(train_x).shape == (40,)
