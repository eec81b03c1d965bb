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
from fastnn._sparse import CSRRows

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


# ------------------------------------------------------------------------------------------- adam epsilon
def sklearn_adam_updates(params, grads_seq, lr, beta1, beta2, eps):
    """A plain NumPy transcription of scikit-learn's AdamOptimizer (sklearn/neural_network/
    _stochastic_optimizers.py): params += -lr_t m / (sqrt(v) + eps), lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)."""
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads_seq, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (g ** 2)
        lr_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        p += -lr_t * m / (np.sqrt(v) + eps)
    return p, m, v


@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_adam_uncorrected_epsilon_is_sklearns_update(kernels, rng, eps):
    """float64 steps of adam_step with eps_placement=1 equal scikit-learn's update to a few ulps; the default
    placement (eps on sqrt(vhat)) is measurably different when eps matters."""
    n, steps = 300, 6
    p0 = rng.normal(size=n)
    grads = [rng.normal(size=n) * 10.0 ** rng.integers(-6, 1, size=n) for _ in range(steps)]
    want_p, want_m, want_v = sklearn_adam_updates(p0, grads, 0.01, 0.9, 0.999, eps)
    p, m, v = p0.copy(), np.zeros(n), np.zeros(n)
    for t, g in enumerate(grads, start=1):
        kernels.adam_step(p, g, m, v, n, 0.01, 0.9, 0.999, eps, 0.0, t, 2, _codes.EPS_UNCORRECTED)
    np.testing.assert_allclose(p, want_p, rtol=1e-15, atol=0)
    np.testing.assert_allclose(v, want_v, rtol=2e-15, atol=0)
    # m = b1 m + (1 - b1) g cancels: its rounding (a fused multiply-add or not) is a few ulps of its terms
    size = np.zeros(n)
    for g in grads:
        size = 0.9 * size + 0.1 * np.abs(g)
    assert np.all(np.abs(m - want_m) <= 4 * np.finfo(float).eps * size)
    q, m2, v2 = p0.copy(), np.zeros(n), np.zeros(n)
    for t, g in enumerate(grads, start=1):
        kernels.adam_step(q, g, m2, v2, n, 0.01, 0.9, 0.999, eps, 0.0, t, 2)
    assert np.max(np.abs(q - want_p)) > 1e-10


def test_adam_epsilon_placement_twins(c_kernels, py_kernels, dtype, rng):
    n = 257
    for step_name in ("adam_step", "adamw_step"):
        p0 = rng.normal(size=n).astype(dtype)
        results = []
        for k in (c_kernels, py_kernels):
            p, m, v = p0.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
            for t in range(1, 4):
                g = (np.sin(np.arange(n) * t) * 1e-3).astype(dtype)
                getattr(k, step_name)(p, g, m, v, 100, 0.01, 0.9, 0.999, 1e-4, 0.01, t, 1, _codes.EPS_UNCORRECTED)
            results.append(p)
        np.testing.assert_allclose(results[0], results[1], rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_adam_bad_epsilon_placement_code_raises(kernels):
    p, g = np.zeros(4), np.ones(4)
    with pytest.raises(ValueError):
        kernels.adam_step(p, g, np.zeros(4), np.zeros(4), 4, 0.01, 0.9, 0.999, 1e-8, 0.0, 1, 1, 2)


def test_fit_epsilon_placement_follows_sklearns_adam(backend, rng):
    """Network.fit with epsilon_placement="uncorrected" takes, batch after batch, the steps of the NumPy
    transcription of scikit-learn's Adam applied to the gradients fastnn computes (float64)."""
    X, y = rng.normal(size=(24, 3)), rng.normal(size=(24, 2))
    kwargs = dict(optimizer="adam", learning_rate=0.01, epsilon=1e-3, shuffle=False, batch_size=8)
    net = fastnn.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    ref = fastnn.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    net.fit(X, y, epochs=2, epsilon_placement="uncorrected", **kwargs)
    p = ref._params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    t = 0
    for _ in range(2):
        for start in range(0, 24, 8):
            ref._params[...] = p
            grads = ref.gradients(X[start:start + 8], y[start:start + 8])
            g = np.concatenate([a.ravel() for pair in grads for a in pair[:1]] +
                               [a.ravel() for pair in grads for a in pair[1:]])
            t += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + (1 - 0.999) * g ** 2
            p = p + -(0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)) * m / (np.sqrt(v) + 1e-3)
    np.testing.assert_allclose(net._params, p, rtol=1e-13, atol=1e-15)
    other = fastnn.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    other.fit(X, y, epochs=2, **kwargs)  # the default placement differs
    assert np.max(np.abs(other._params - p)) > 1e-8
    # train_step takes it too, and a bad value is refused before anything changes
    before = net._params.copy()
    with pytest.raises(ValueError, match="epsilon_placement must be one of"):
        net.train_step(X, y, optimizer="adam", epsilon_placement="sklearn")
    assert np.array_equal(before, net._params)
    net.train_step(X, y, optimizer="adam", epsilon_placement="uncorrected")


# ------------------------------------------------------------------------------------------------ sparse
sparse = pytest.importorskip("scipy.sparse")


def sparse_data(rng, n=90, d=25, density=0.15):
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) < density)
    X[3] = 0.0  # an empty row
    return X, rng.integers(0, 3, size=n)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_training_is_the_dense_trajectory(backend, rng, fmt):
    """Sparse input gives the same epoch losses, weights, predictions and evaluations as the dense matrix: bit
    for bit (the gathered batches are the dense rows)."""
    Xd, y = sparse_data(rng)
    Xs = getattr(sparse, f"{fmt}_matrix")(Xd)
    w = rng.uniform(0.5, 2.0, size=Xd.shape[0])
    out = []
    for X in (Xd, Xs):
        net = fastnn.Network([25, 12, 3], loss="cross_entropy", dtype="float64", seed=4, backend=backend)
        hist = net.fit(X, y, epochs=3, batch_size=16, optimizer="adam", learning_rate=0.01, sample_weight=w,
                       validation_split=0.25)
        step = net.train_step(X.tocsr()[:10] if fmt == "coo" and X is Xs else X[:10], y[:10], optimizer="adam")
        out.append((net._params.copy(), hist["loss"], hist["val_loss"], net.predict(X), net.evaluate(X, y),
                    step))
    (pd, *rd), (ps, *rs) = out
    assert np.array_equal(pd, ps)
    for a, b in zip(rd, rs):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_sparse_twins_and_gradients(c_kernels, rng):
    Xd, y = sparse_data(rng)
    Xs = sparse.csr_array(Xd)
    results = []
    for backend in ("c", "python"):
        net = fastnn.Network([25, 8, 3], loss="cross_entropy", dtype="float64", seed=2, backend=backend)
        hist = net.fit(Xs, y, epochs=2, batch_size=20, optimizer="sgd", learning_rate=0.1)
        results.append((hist["loss"], net.predict(Xs)))
        dense_value, dense_grads = net.loss_and_gradients(Xd, y)
        value, grads = net.loss_and_gradients(Xs, y)
        assert value == pytest.approx(dense_value, rel=1e-13)
        for gs, gd in zip(grads, dense_grads):
            for a, b in zip(gs, gd):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)


def test_sparse_duplicates_add_up_as_in_scipy(kernels, rng):
    """A CSR matrix with duplicate (row, column) entries: the gather adds them, as scipy's toarray() does."""
    data = np.array([1.0, 2.0, 0.5, -1.0, 4.0])
    indices = np.array([2, 2, 0, 1, 1], dtype=np.int64)
    indptr = np.array([0, 3, 3, 5], dtype=np.int64)
    X = sparse.csr_matrix((data, indices, indptr), shape=(3, 4))
    x = np.full((3, 4), np.nan)
    kernels.csr_gather(x, CSRRows(data, indices, indptr, (3, 4)), np.array([2, 0, 1], dtype=np.int64), 1)
    np.testing.assert_array_equal(x, X.toarray()[[2, 0, 1]])
    net = fastnn.Network([4, 2], dtype="float64", seed=0, backend=kernels.NAME)
    np.testing.assert_array_equal(net.predict(X), net.predict(X.toarray()))


def test_sparse_bad_input_is_refused_and_the_network_unchanged(backend, rng):
    Xd, y = sparse_data(rng, n=20, d=6)
    net = fastnn.Network([6, 3], loss="cross_entropy", dtype="float64", seed=0, backend=backend)
    before = net.get_weights()
    bad = sparse.csr_matrix(Xd)
    bad.data[2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.fit(bad, y)
    with pytest.raises(ValueError, match="features"):
        net.fit(sparse.csr_matrix(np.ones((20, 5))), y)
    with pytest.raises(ValueError, match="features"):
        net.predict(sparse.csr_matrix(np.ones((2, 7))))
    with pytest.raises(ValueError, match="samples"):
        net.fit(sparse.csr_matrix(Xd), y[:-1])
    # a column index out of range (scipy does not check it at construction)
    X = sparse.csr_matrix(Xd)
    X.indices = X.indices.copy()
    X.indices[0] = 6
    with pytest.raises(ValueError, match="column indices must lie in"):
        net.fit(X, y)
    with pytest.raises(ValueError, match="column indices must lie in"):
        net.predict(X)
    # row pointers that decrease
    X = sparse.csr_matrix(Xd)
    X.indptr = X.indptr.copy()
    X.indptr[5], X.indptr[6] = X.indptr[6], X.indptr[5] - 1
    with pytest.raises(ValueError, match="malformed sparse matrix"):
        net.evaluate(X, y)
    with pytest.raises(ValueError, match="irprop-"):
        net.fit(sparse.csr_matrix(Xd), y, optimizer="irprop-")
    for a, b in zip(before, net.get_weights()):
        assert np.array_equal(a, b)
    # sequence inputs take dense arrays only
    tokens = fastnn.Network([fastnn.Embedding(10, 4), fastnn.SimpleRNN(3), fastnn.Dense(2)], input_shape=(5,),
                            loss="cross_entropy", backend=backend)
    with pytest.raises(ValueError, match="sparse input is for networks whose input is a flat row"):
        tokens.fit(sparse.csr_matrix(np.ones((4, 5))), np.zeros(4, dtype=int))


def test_sparse_conv_input_as_flat_rows(backend, rng):
    X = (rng.random((12, 1 * 6 * 6)) < 0.2) * rng.normal(size=(12, 36))
    y = rng.integers(0, 2, size=12)
    out = []
    for data in (X, sparse.csr_matrix(X)):
        net = fastnn.Network([fastnn.Conv2D(2, 3, activation="relu"), fastnn.Flatten(), fastnn.Dense(2)],
                             input_shape=(1, 6, 6), loss="cross_entropy", dtype="float64", seed=0,
                             backend=backend)
        net.fit(data, y, epochs=2, batch_size=4)
        out.append((net._params.copy(), net.predict(data)))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


def test_sparse_memory_does_not_scale_with_n_times_d(backend, monkeypatch):
    """Training, evaluating and predicting on a 30000 x 4000 sparse matrix (960 MB as dense float64) allocates
    the sparse arrays' copies and one bounded chunk of dense rows (INFER_SCRATCH_BYTES, 4 MB here), nothing of
    n x d."""
    import fastnn.network
    monkeypatch.setattr(fastnn.network, "INFER_SCRATCH_BYTES", 4 << 20)
    import tracemalloc
    n, d = 30_000, 4_000
    rng = np.random.default_rng(0)
    X = sparse.random(n, d, density=2e-4, format="csr", random_state=1, dtype=np.float64)
    y = rng.integers(0, 2, size=n).astype(np.float64)
    net = fastnn.Network([d, 4, 1], loss="binary_cross_entropy", dtype="float64", seed=0, backend=backend)
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=1, batch_size=64, optimizer="adam")
        net.evaluate(X, y)
        net.predict(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    dense_bytes = n * d * 8
    sparse_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    # the NumPy twin's scipy gather makes a temporary copy or two of a chunk
    assert peak < 3 * (4 << 20) + 4 * sparse_bytes + (4 << 20), (peak, sparse_bytes)
    assert peak < dense_bytes / 20
