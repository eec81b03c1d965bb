"""Poisson loss with log link, Adam's epsilon placement, sparse input and training metrics (issue 11, the C-core
items), each against an independent computation: scikit-learn's functions, a NumPy transcription of
scikit-learn's optimizer, central differences, dense input, sklearn.metrics on an independent forward pass."""
import math
import os
import tempfile

import numpy as np
import pytest

import fastnn
from fastnn import _codes

sklearn_base = pytest.importorskip("sklearn.neural_network._base")


# ------------------------------------------------------------------------------------------------- poisson
def poisson_data(rng, n=40, d_in=5, d_out=3):
    X = rng.normal(size=(n, d_in))
    rate = np.exp(0.3 * X[:, :d_out] + 0.1)
    y = rng.poisson(rate).astype(np.float64)
    y[0, 0] = 0.0  # a zero count: 0 log 0 = 0
    return X, y


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_poisson_loss_kernel_matches_sklearn(kernels, dtype, rng, weighted):
    """The kernel's value is scikit-learn's poisson_loss of mu = exp(z) (its weighted mean divides by sum(w),
    fastnn's by n: weights scaled to sum to n make them equal)."""
    n, d = 30, 4
    z = rng.normal(size=(n, d))
    y = rng.poisson(2.0, size=(n, d)).astype(np.float64)
    w = rng.uniform(0.25, 2.0, size=n) if weighted else None
    value = kernels.loss(None, z.astype(dtype), y.astype(dtype), _codes.POISSON, 1,
                         None if w is None else w.astype(dtype))
    want = sklearn_base.poisson_loss(y, np.exp(z), None if w is None else w)
    if w is not None:
        want *= w.sum() / n
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(want, rel=tol)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_poisson_gradient_finite_differences(kernels, rng, weighted):
    n, d = 4, 3
    z = rng.normal(size=(n, d))
    y = rng.poisson(1.5, size=(n, d)).astype(np.float64)
    w = rng.uniform(0.25, 2.0, size=n) if weighted else None
    grad = np.full((n, d), np.nan)
    kernels.loss(grad, z, y, _codes.POISSON, 1, w)
    h = 1e-6
    fd = np.empty((n, d))
    for i in range(n):
        for j in range(d):
            zp, zm = z.copy(), z.copy()
            zp[i, j] += h
            zm[i, j] -= h
            fd[i, j] = (kernels.loss(None, zp, y, _codes.POISSON, 1, w)
                        - kernels.loss(None, zm, y, _codes.POISSON, 1, w)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_poisson_kernels_are_twins(c_kernels, py_kernels, dtype, rng):
    z = rng.normal(size=(17, 3)).astype(dtype)
    y = rng.poisson(1.0, size=(17, 3)).astype(dtype)
    w = rng.uniform(0.5, 2, size=17).astype(dtype)
    gc, gp = np.empty_like(z), np.empty_like(z)
    vc = c_kernels.loss(gc, z, y, _codes.POISSON, 2, w)
    vp = py_kernels.loss(gp, z, y, _codes.POISSON, 1, w)
    assert vc == pytest.approx(vp, rel=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(gc, gp, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_poisson_kernel_refuses_negative_targets(kernels):
    z = np.zeros((2, 2))
    y = np.array([[1.0, -1.0], [0.0, 2.0]])
    grad = np.full((2, 2), 7.0)
    with pytest.raises(ValueError):
        kernels.loss(grad, z, y, _codes.POISSON, 1)


def test_poisson_network_matches_sklearn_forward_and_gradients(backend, rng):
    """Network(loss="poisson") predicts exp of a linear output, and its evaluate / gradients are scikit-learn's
    poisson loss and the central differences of it, through the whole network."""
    X, y = poisson_data(rng)
    net = fastnn.Network([5, 7, 3], activations="tanh", loss="poisson", dtype="float64", seed=1, backend=backend)
    assert net.layers[-1].activation == "exp"
    (W1, W2), (b1, b2) = net.weights, net.biases
    mu_ref = np.exp(np.tanh(X @ W1 + b1) @ W2 + b2)
    np.testing.assert_allclose(net.predict(X), mu_ref, rtol=1e-13)
    assert net.evaluate(X, y) == pytest.approx(sklearn_base.poisson_loss(y, mu_ref), rel=1e-13)
    w = rng.uniform(0.5, 2.0, size=X.shape[0])
    assert net.evaluate(X, y, sample_weight=w) == pytest.approx(
        sklearn_base.poisson_loss(y, mu_ref, w) * w.sum() / X.shape[0], rel=1e-13)
    grads = net.gradients(X, y)
    h = 1e-6
    for k, (i, j) in enumerate([(0, 0), (3, 2), (4, 6)]):
        W1p, W1m = W1.copy(), W1.copy()
        W1p[i, j] += h
        W1m[i, j] -= h
        lp = sklearn_base.poisson_loss(y, np.exp(np.tanh(X @ W1p + b1) @ W2 + b2))
        lm = sklearn_base.poisson_loss(y, np.exp(np.tanh(X @ W1m + b1) @ W2 + b2))
        assert grads[0][0][i, j] == pytest.approx((lp - lm) / (2 * h), rel=1e-6, abs=1e-9)


def test_poisson_refuses_negative_targets_and_keeps_the_network(backend, rng):
    X, y = poisson_data(rng)
    net = fastnn.Network([5, 3], loss="poisson", dtype="float64", seed=0, backend=backend)
    before = net.get_weights()
    y[3, 1] = -1.0
    with pytest.raises(ValueError, match="poisson targets must be >= 0"):
        net.fit(X, y)
    with pytest.raises(ValueError, match="poisson targets must be >= 0"):
        net.train_step(X, y)
    with pytest.raises(ValueError, match="poisson targets must be >= 0"):
        net.evaluate(X, y)
    for a, b in zip(before, net.get_weights()):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="exp"):
        fastnn.Network([5, 3], activations=["relu"], loss="poisson")  # output must be exp (log link)


def test_poisson_training_twins_and_persistence(rng):
    X, y = poisson_data(rng)
    nets = {}
    for backend in ("c", "python"):
        try:
            net = fastnn.Network([5, 6, 3], loss="poisson", dtype="float64", seed=3, backend=backend)
        except (ImportError, ValueError, RuntimeError):
            continue
        hist = net.fit(X, y, epochs=4, batch_size=8, optimizer="adam", learning_rate=0.01)
        nets[backend] = (net, hist["loss"])
    if len(nets) == 2:
        np.testing.assert_allclose(nets["c"][1], nets["python"][1], rtol=1e-12)
    net = next(iter(nets.values()))[0]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "poisson.fnn")
        net.save(path)
        loaded = fastnn.load(path)
    assert loaded.loss == "poisson" and loaded.get_config() == net.get_config()
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    clone = fastnn.Network.from_config(net.get_config())
    assert clone.loss == "poisson"
