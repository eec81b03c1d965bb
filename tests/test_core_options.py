"""Poisson loss with log link, Adam's epsilon placement, sparse input and training metrics (issue 11, the C-core
items), each against an independent computation: scikit-learn's functions, a NumPy transcription of
scikit-learn's optimizer, central differences, dense input, sklearn.metrics on an independent forward pass."""
import os
import tempfile

import numpy as np
import pytest

import fastnn
from fastnn import _codes
from fastnn._sparse import CSRRows
from references import central_differences

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
    fd = central_differences(lambda v: kernels.loss(None, v, y, _codes.POISSON, 1, w), z)
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
    np.testing.assert_allclose(net.predict(X[0]), mu_ref[0], rtol=1e-13)  # the one-sample path
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


# ------------------------------------------------------------------------------------------------ metrics
skm = pytest.importorskip("sklearn.metrics")
FROZEN = dict(optimizer="sgd", learning_rate=1e-300, shuffle=False)  # the weights cannot move: p - 1e-300 g == p


def forward_logits(net, X):
    """An independent NumPy forward pass of a network of Dense layers, to the output layer's raw values."""
    acts = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "linear": lambda z: z}
    a = X
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        a = a @ W + b
        if i < len(net.weights) - 1:
            a = acts[net.layers[i].activation](a)
    return a


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_metrics_multiclass_match_sklearn(backend, rng, weighted):
    n, classes = 120, 7
    X, y = rng.normal(size=(n, 6)), rng.integers(0, classes, size=n)
    Xv, yv = rng.normal(size=(40, 6)), rng.integers(0, classes, size=40)
    w = rng.uniform(0.2, 3.0, size=n) if weighted else None
    net = fastnn.Network([6, 9, classes], activations="tanh", loss="cross_entropy", dtype="float64", seed=3,
                         backend=backend)
    names = ["accuracy", "top3_accuracy", "sparse_top_k_categorical_accuracy", "mae"]
    hist = net.fit(X, y, epochs=2, batch_size=16, metrics=names, validation_data=(Xv, yv), sample_weight=w,
                   **FROZEN)
    for data, labels, prefix, sw in ((X, y, "", w), (Xv, yv, "val_", None)):
        p = softmax(forward_logits(net, data))
        want = {"accuracy": skm.accuracy_score(labels, p.argmax(axis=1), sample_weight=sw),
                "top3_accuracy": skm.top_k_accuracy_score(labels, p, k=3, labels=range(classes), sample_weight=sw),
                "sparse_top_k_categorical_accuracy": skm.top_k_accuracy_score(labels, p, k=5, labels=range(classes),
                                                                              sample_weight=sw),
                "mae": skm.mean_absolute_error(np.eye(classes)[labels], p, sample_weight=sw)}
        for name in names:
            assert len(hist[prefix + name]) == 2
            for value in hist[prefix + name]:
                assert value == pytest.approx(want[name], rel=1e-12, abs=1e-15), (prefix + name)
    got = net.evaluate(Xv, yv, metrics=["accuracy", "mae"])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yv, softmax(forward_logits(net, Xv)).argmax(1)))
    assert got["loss"] == net.evaluate(Xv, yv)


@pytest.mark.parametrize("outputs", [1, 3], ids=["binary", "multilabel"])
def test_metrics_sigmoid_outputs_match_sklearn(backend, rng, outputs):
    """One sigmoid output: accuracy thresholds the probability at 0.5; several (multilabel): Keras' binary
    accuracy, each output on its own (sklearn's accuracy over the flattened outputs, weights repeated)."""
    n = 90
    X = rng.normal(size=(n, 5))
    Y = (rng.random((n, outputs)) < 0.4).astype(np.float64)
    w = rng.uniform(0.5, 2.0, size=n)
    net = fastnn.Network([5, 6, outputs], loss="binary_cross_entropy", dtype="float64", seed=1, backend=backend)
    hist = net.fit(X, Y if outputs > 1 else Y[:, 0], epochs=1, batch_size=20, metrics=["accuracy", "mae"],
                   sample_weight=w, **FROZEN)
    z = forward_logits(net, X)
    acc = skm.accuracy_score(Y.ravel(), (z > 0).ravel(), sample_weight=np.repeat(w, outputs))
    assert hist["accuracy"][0] == pytest.approx(acc, rel=1e-12)
    mae = skm.mean_absolute_error(Y, 1 / (1 + np.exp(-z)), sample_weight=w)
    assert hist["mae"][0] == pytest.approx(mae, rel=1e-12)


@pytest.mark.parametrize("loss", ["mse", "poisson"])
def test_metrics_regression_mae_matches_sklearn(backend, rng, loss):
    X = rng.normal(size=(70, 4))
    Y = rng.poisson(2.0, size=(70, 2)).astype(np.float64)
    net = fastnn.Network([4, 5, 2], loss=loss, dtype="float64", seed=0, backend=backend)
    hist = net.fit(X, Y, epochs=1, batch_size=16, metrics=["mean_absolute_error"], validation_split=0.3,
                   **FROZEN)
    z = forward_logits(net, X)
    pred = np.exp(z) if loss == "poisson" else z
    assert hist["mean_absolute_error"][0] == pytest.approx(skm.mean_absolute_error(Y[:49], pred[:49]), rel=1e-12)
    assert hist["val_mean_absolute_error"][0] == pytest.approx(skm.mean_absolute_error(Y[49:], pred[49:]),
                                                               rel=1e-12)
    with pytest.raises(ValueError, match="needs a softmax or sigmoid output"):
        net.fit(X, Y, metrics=["accuracy"])


def test_metrics_sequences_count_only_valid_tokens(backend, rng):
    n, steps, vocab, classes = 24, 6, 11, 4
    X = rng.integers(1, vocab, size=(n, steps))
    y = rng.integers(0, classes, size=(n, steps))
    y[rng.random((n, steps)) < 0.3] = -1
    net = fastnn.Network([fastnn.Embedding(vocab, 5), fastnn.LSTM(6, return_sequences=True), fastnn.Dense(classes)],
                         input_shape=(steps,), loss="cross_entropy", ignore_index=-1, dtype="float64", seed=0,
                         backend=backend)
    hist = net.fit(X, y, epochs=1, batch_size=8, metrics=["accuracy", "top2_accuracy"], **FROZEN)
    p = net.predict(X)  # an independent pass (n, steps, classes)
    keep = y != -1
    assert hist["accuracy"][0] == pytest.approx(skm.accuracy_score(y[keep], p.argmax(axis=2)[keep]), rel=1e-12)
    assert hist["top2_accuracy"][0] == pytest.approx(
        skm.top_k_accuracy_score(y[keep], p[keep], k=2, labels=range(classes)), rel=1e-12)


def test_metrics_twins_agree_while_training(c_kernels, rng):
    X, y = rng.normal(size=(80, 5)), rng.integers(0, 3, size=80)
    hists = []
    for backend in ("c", "python"):
        net = fastnn.Network([5, 7, 3], loss="cross_entropy", dtype="float64", seed=2, backend=backend)
        hists.append(net.fit(X, y, epochs=3, batch_size=10, optimizer="adam", learning_rate=0.05,
                             metrics=["acc", "mae"], validation_split=0.2))
    for key in ("acc", "mae", "val_acc", "val_mae"):
        np.testing.assert_allclose(hists[0][key], hists[1][key], rtol=1e-12)
    assert hists[0].metric_names == ("acc", "mae")


def test_metric_kernels_are_twins(c_kernels, py_kernels, dtype, rng):
    from fastnn.training import MetricAccumulator, parse_metrics
    specs = parse_metrics(["accuracy", "top2_accuracy", "mae"], "softmax")
    z = rng.normal(size=(33, 4)).astype(dtype)
    t = np.eye(4, dtype=dtype)[rng.integers(0, 4, size=33)]
    t[5] = 0  # a padding row
    w = rng.uniform(0.5, 2, size=33).astype(dtype)
    accs = []
    for k in (c_kernels, py_kernels):
        acc = MetricAccumulator(specs)
        k.metrics_accumulate(acc, z, t, w, _codes.SOFTMAX, True, True)
        accs.append(acc)
    np.testing.assert_allclose(accs[0].sums, accs[1].sums, rtol=1e-6 if dtype == np.float32 else 1e-13)
    assert accs[0].weight == pytest.approx(accs[1].weight, rel=1e-12)
    with pytest.raises(ValueError):
        c_kernels.metrics_accumulate(MetricAccumulator(specs), z, t, w, _codes.LINEAR, False, False)


@pytest.mark.parametrize("bad, match", [(["accuracy", "f1"], r"unknown metric 'f1'; valid names: \[.*'accuracy'"),
                                        (["top0_accuracy"], "unknown metric"), ([3], "each metric is a name"),
                                        (["mae", "mae"], "given twice")])
def test_bad_metric_names_are_refused(backend, rng, bad, match):
    X, y = rng.normal(size=(10, 3)), rng.integers(0, 2, size=10)
    net = fastnn.Network([3, 2], loss="cross_entropy", seed=0, backend=backend)
    before = net.get_weights()
    with pytest.raises((ValueError, TypeError), match=match):
        net.fit(X, y, metrics=bad)
    for a, b in zip(before, net.get_weights()):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="needs a softmax output"):
        fastnn.Network([3, 1], loss="binary_cross_entropy", backend=backend).fit(X, y, metrics=["top2_accuracy"])


def test_history_plot_draws_metrics_in_a_second_panel(rng, tmp_path):
    pytest.importorskip("matplotlib")
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, size=30)
    net = fastnn.Network([3, 2], loss="cross_entropy", seed=0)
    hist = net.fit(X, y, epochs=3, metrics=["accuracy"], validation_split=0.2)
    ax = hist.plot(tmp_path / "h.png")
    axes = ax.figure.axes
    assert len(axes) == 2
    assert {line.get_label() for line in axes[1].get_lines()} == {"accuracy", "val_accuracy"}
    assert (tmp_path / "h.png").exists()


def test_sparse_epoch_and_metrics_do_not_depend_on_the_thread_count(c_kernels, rng):
    Xd, y = sparse_data(rng, n=200, d=300, density=0.05)
    Xs = sparse.csr_matrix(Xd)
    runs = []
    for threads in (1, 2, 4):
        net = fastnn.Network([300, 64, 3], loss="cross_entropy", dtype="float32", seed=0, backend="c")
        net.n_threads = threads
        hist = net.fit(Xs, y, epochs=2, batch_size=100, optimizer="adam", metrics=["accuracy", "mae"],
                       validation_split=0.2)
        runs.append((net._params.copy(), hist["loss"], hist["mae"], hist["val_mae"], net.predict(Xs)))
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("backend_name", ["c", "python"])
def test_poisson_with_sklearns_adam_follows_mlpregressor(backend_name, rng):
    """Poisson loss and epsilon_placement="uncorrected" together: from scikit-learn's own initial weights, a
    full-batch fit follows MLPRegressor(loss="poisson", solver="adam") epoch for epoch: the same loss_curve_ and
    the same final weights (float64)."""
    nn = pytest.importorskip("sklearn.neural_network")
    from sklearn.utils import check_random_state
    if backend_name == "c" and not fastnn._backend.c_available():
        pytest.skip("the C extension is not built")
    n, d, hidden, epochs = 60, 4, 5, 6
    X = rng.normal(size=(n, d))
    y = rng.poisson(np.exp(0.4 * X[:, 0] - 0.2 * X[:, 1] + 0.3)).astype(np.float64)
    params = dict(hidden_layer_sizes=(hidden,), activation="relu", solver="adam", alpha=0.0, batch_size=n,
                  learning_rate_init=0.01, max_iter=epochs, shuffle=False, tol=0.0, n_iter_no_change=10 ** 6,
                  random_state=0, epsilon=1e-3)
    sk = nn.MLPRegressor(loss="poisson", **params)
    init = nn.MLPRegressor(loss="poisson", **params)
    init._random_state = check_random_state(0)
    init._initialize(y.reshape(-1, 1), [d, hidden, 1], np.float64)  # what fit draws first
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        sk.fit(X, y)
    net = fastnn.Network([d, hidden, 1], activations="relu", loss="poisson", dtype="float64", seed=0,
                         backend=backend_name)
    net.set_weights([init.coefs_[0], init.intercepts_[0], init.coefs_[1], init.intercepts_[1]])
    hist = net.fit(X, y, epochs=epochs, batch_size=n, optimizer="adam", learning_rate=0.01, epsilon=1e-3,
                   epsilon_placement="uncorrected", shuffle=False)
    np.testing.assert_allclose(hist["loss"], sk.loss_curve_, rtol=1e-12)
    for mine, theirs in zip(net.weights + net.biases, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(net.predict(X)[:, 0], sk.predict(X), rtol=1e-10)
