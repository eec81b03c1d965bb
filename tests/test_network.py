"""fastnn.Network on both backends, checked against independent computations: a forward pass and losses written
out here in float64 NumPy, central finite differences, known problems (XOR, digits) and the other backend."""
import numpy as np
import pytest

import fastnn
from fastnn import _backend

ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "linear", "softmax"]
OUTPUT_OF = {"mse": "linear", "cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


# ---------------------------------------------------------------------------------------- independent reference
def ref_activation(z, name):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def ref_forward(net, X):
    a = np.asarray(X, dtype=np.float64)
    for W, b, name in zip(net.weights, net.biases, net.activations):
        a = ref_activation(a @ W.astype(np.float64) + b, name)
    return a


def ref_loss(net, X, T):
    out = ref_forward(net, X)
    if net.loss == "mse":
        return np.mean((out - T) ** 2)
    if net.loss == "cross_entropy":
        return -np.mean(np.sum(T * np.log(out), axis=1))
    return -np.mean(T * np.log(out) + (1 - T) * np.log(1 - out))


def make_problem(rng, loss, n, d_in, d_out):
    X = rng.normal(size=(n, d_in))
    if loss == "mse":
        T = rng.normal(size=(n, d_out))
    elif loss == "cross_entropy":
        T = np.eye(d_out)[rng.integers(0, d_out, size=n)]
    else:
        T = rng.uniform(0, 1, size=(n, d_out))
    return X, T


# ------------------------------------------------------------------------------------------------- gradients
def numerical_gradients(net, X, T, eps=1e-6):
    """Central differences of net.evaluate with respect to every parameter (float64 networks)."""
    grads = []
    for arrays in zip(net.weights, net.biases):
        per_layer = []
        for p in arrays:
            g = np.zeros_like(p)
            flat, gflat = p.reshape(-1), g.reshape(-1)
            for k in range(flat.size):
                old = flat[k]
                flat[k] = old + eps
                up = net.evaluate(X, T)
                flat[k] = old - eps
                down = net.evaluate(X, T)
                flat[k] = old
                gflat[k] = (up - down) / (2 * eps)
            per_layer.append(g)
        grads.append(tuple(per_layer))
    return grads


PAIRS = [(hidden, loss, OUTPUT_OF[loss]) for hidden in ACTIVATIONS for loss in OUTPUT_OF]
PAIRS += [("tanh", "mse", out) for out in ("sigmoid", "tanh", "relu", "leaky_relu", "softmax")]


@pytest.mark.parametrize("hidden,loss,output", PAIRS)
def test_gradients_match_finite_differences(backend, hidden, loss, output):
    rng = np.random.default_rng(7)
    d_out = 3
    net = fastnn.Network([4, 5, 4, d_out], activations=[hidden, hidden, output], loss=loss, dtype="float64",
                         seed=3, backend=backend)
    for b in net.biases:  # non-zero biases so every term of the gradient is exercised
        b[...] = rng.normal(scale=0.1, size=b.shape)
    X, T = make_problem(rng, loss, 6, 4, d_out)
    analytic = net.gradients(X, T)
    numeric = numerical_gradients(net, X, T)
    for (dW, db), (nW, nb) in zip(analytic, numeric):
        np.testing.assert_allclose(dW, nW, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(db, nb, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("loss", list(OUTPUT_OF))
def test_evaluate_matches_reference_loss(backend, dtype, loss):
    rng = np.random.default_rng(1)
    net = fastnn.Network([5, 8, 3], activations="tanh", loss=loss, dtype=dtype.name, seed=0, backend=backend)
    X, T = make_problem(rng, loss, 40, 5, 3)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert net.evaluate(X, T) == pytest.approx(ref_loss(net, X, T), rel=rtol)


def test_cross_entropy_labels_equal_one_hot(backend):
    rng = np.random.default_rng(2)
    net = fastnn.Network([4, 6, 5], loss="cross_entropy", dtype="float64", seed=1, backend=backend)
    X = rng.normal(size=(9, 4))
    labels = rng.integers(0, 5, size=9)
    assert net.evaluate(X, labels) == net.evaluate(X, np.eye(5)[labels])
    for (a, b), (c, d) in zip(net.gradients(X, labels), net.gradients(X, np.eye(5)[labels])):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


# --------------------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("loss", list(OUTPUT_OF))
def test_forward_matches_reference(backend, dtype, loss):
    rng = np.random.default_rng(3)
    net = fastnn.Network([7, 13, 9, 4], activations=["relu", "sigmoid", OUTPUT_OF[loss]], loss=loss,
                         dtype=dtype.name, seed=5, backend=backend)
    X = rng.normal(size=(33, 7))
    out = net.forward(X)
    assert out.shape == (33, 4) and out.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_forward(net, X), rtol=rtol, atol=rtol)
    # one sample (the matrix-vector path) gives the same row as the batch path
    single = net.predict(X[4])
    assert single.shape == (4,)
    np.testing.assert_allclose(single, out[4], rtol=rtol, atol=rtol)


def test_weights_are_writable_views(backend):
    net = fastnn.Network([3, 4, 2], activations="linear", seed=0, dtype="float64", backend=backend)
    X = np.eye(3)
    net.weights[0][...] = 0
    net.biases[0][...] = 1
    net.weights[1][...] = np.arange(8.0).reshape(4, 2)
    net.biases[1][...] = [0.5, -0.5]
    expected = np.ones((3, 4)) @ np.arange(8.0).reshape(4, 2) + [0.5, -0.5]
    np.testing.assert_array_equal(net.forward(X), expected)
    assert net.weights[0].shape == (3, 4) and net.biases[1].shape == (2,)
    assert net.n_params == 3 * 4 + 4 + 4 * 2 + 2


def test_repr_and_attributes(backend):
    net = fastnn.Network([10, 5, 3], loss="cross_entropy", backend=backend)
    text = repr(net)
    assert "[10, 5, 3]" in text and "cross_entropy" in text and backend in text and "n_params=73" in text
    assert net.backend == backend
    assert net.activations == ["relu", "softmax"]


def test_activation_list_and_output_rules():
    assert fastnn.Network([2, 3, 1], activations="tanh").activations == ["tanh", "linear"]
    assert fastnn.Network([2, 3, 1], activations="tanh", loss="binary_cross_entropy").activations == \
        ["tanh", "sigmoid"]
    with pytest.raises(ValueError, match="softmax"):
        fastnn.Network([2, 3, 2], activations=["relu", "linear"], loss="cross_entropy")
    with pytest.raises(ValueError, match="one name per weight layer"):
        fastnn.Network([2, 3, 2], activations=["relu"])
    with pytest.raises(ValueError, match="sigmoid"):
        fastnn.Network([2, 3, 2], activations="swish")


# ------------------------------------------------------------------------------------------------- training
def test_xor_is_learned(backend, dtype):
    """The classic network: one sigmoid hidden layer, linear output, MSE, plain full-batch gradient descent."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([0, 1, 1, 0])
    net = fastnn.Network([2, 4, 1], activations=["sigmoid", "linear"], loss="mse", dtype=dtype.name, seed=1,
                         backend=backend)
    history = net.fit(X, y, epochs=3000, batch_size=4, learning_rate=0.5)
    assert history["loss"][-1] < 1e-3
    np.testing.assert_array_equal(net.predict(X).ravel() > 0.5, y == 1)


def test_digits_accuracy(backend, digits):
    X_train, X_test, y_train, y_test = digits
    net = fastnn.Network([64, 64, 10], activations="relu", loss="cross_entropy", seed=0, backend=backend)
    net.fit(X_train, y_train, epochs=30, batch_size=32, optimizer="adam", learning_rate=1e-3)
    accuracy = np.mean(net.predict(X_test).argmax(axis=1) == y_test)
    assert accuracy >= 0.95


def test_fit_history_and_validation(backend):
    rng = np.random.default_rng(4)
    X, T = make_problem(rng, "mse", 64, 3, 2)
    net = fastnn.Network([3, 8, 2], activations="tanh", seed=0, dtype="float64", backend=backend)
    history = net.fit(X, T, epochs=5, batch_size=16, learning_rate=0.05, validation_data=(X[:10], T[:10]))
    assert len(history["loss"]) == 5 and len(history["val_loss"]) == 5
    assert history["val_loss"][-1] == pytest.approx(ref_loss(net, X[:10], T[:10]), rel=1e-12)
    assert history["loss"][-1] < history["loss"][0]


def test_train_step_matches_manual_sgd(backend):
    """One SGD step equals W - lr * (dW + weight_decay * W) and b - lr * db with gradients from `gradients`."""
    rng = np.random.default_rng(5)
    X, T = make_problem(rng, "cross_entropy", 20, 4, 3)
    net = fastnn.Network([4, 6, 3], loss="cross_entropy", dtype="float64", seed=2, backend=backend)
    before = [(W.copy(), b.copy()) for W, b in zip(net.weights, net.biases)]
    grads = net.gradients(X, T)
    loss = net.train_step(X, T, learning_rate=0.1, weight_decay=0.01)
    assert loss == pytest.approx(ref_loss(_clone_params(net, before), X, T), rel=1e-12)
    for (W0, b0), (dW, db), W, b in zip(before, grads, net.weights, net.biases):
        np.testing.assert_allclose(W, W0 - 0.1 * (dW + 0.01 * W0), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(b, b0 - 0.1 * db, rtol=1e-13, atol=1e-15)


def _clone_params(net, params):
    other = fastnn.Network(net.sizes, activations=net.activations, loss=net.loss, dtype=net.dtype.name,
                           backend="python")
    for (W, b), W2, b2 in zip(params, other.weights, other.biases):
        W2[...] = W
        b2[...] = b
    return other


def test_adam_and_momentum_train(backend, digits):
    X_train, _, y_train, _ = digits
    for opts in ({"optimizer": "adam", "learning_rate": 1e-2},
                 {"optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
                 {"optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 1e-4}):
        net = fastnn.Network([64, 32, 10], loss="cross_entropy", seed=0, backend=backend)
        history = net.fit(X_train[:500], y_train[:500], epochs=5, batch_size=32, **opts)
        assert history["loss"][-1] < 0.5 * history["loss"][0], opts


# --------------------------------------------------------------------------------------- backends agree
def test_same_seed_same_initial_weights():
    nets = [fastnn.Network([5, 7, 3], activations="tanh", seed=42, backend=b) for b in _available()]
    again = fastnn.Network([5, 7, 3], activations="tanh", seed=42, backend="python")
    for net in nets:
        for W, W2 in zip(net.weights, again.weights):
            np.testing.assert_array_equal(W, W2)
    different = fastnn.Network([5, 7, 3], activations="tanh", seed=43, backend="python")
    assert not np.array_equal(different.weights[0], again.weights[0])


@pytest.mark.parametrize("opts", [{"optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9},
                                  {"optimizer": "adam", "learning_rate": 1e-3, "weight_decay": 1e-4}])
def test_backends_train_to_the_same_float64_weights(opts, digits):
    if len(_available()) < 2:
        pytest.skip("needs both backends")
    X_train, _, y_train, _ = digits
    trained = []
    for b in ("c", "python"):
        net = fastnn.Network([64, 32, 16, 10], activations=["relu", "tanh", "softmax"], loss="cross_entropy",
                             dtype="float64", seed=9, backend=b)
        net.fit(X_train[:600], y_train[:600], epochs=3, batch_size=50, **opts)
        trained.append(net)
    for W1, W2 in zip(trained[0].weights + trained[0].biases, trained[1].weights + trained[1].biases):
        np.testing.assert_allclose(W1, W2, rtol=0, atol=1e-9)


def test_thread_counts_give_identical_results(digits):
    if not _backend.c_available() or "c" not in _available():
        pytest.skip("needs the C backend")
    X_train, _, y_train, _ = digits
    results = []
    old = fastnn.get_num_threads()
    try:
        for n_threads in (1, 2, 3):
            fastnn.set_num_threads(n_threads)
            net = fastnn.Network([64, 300, 10], loss="cross_entropy", seed=0, backend="c")
            net.fit(X_train, y_train, epochs=2, batch_size=256, optimizer="adam", learning_rate=1e-3)
            results.append(net._params.copy())
    finally:
        fastnn.set_num_threads(old)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def _available():
    from conftest import BACKENDS
    return [b for b in BACKENDS if b == "python" or _backend.c_available()]


# --------------------------------------------------------------------------------------------- model files
def test_save_load_round_trip_is_bit_exact(backend, dtype, tmp_path, digits):
    X_train, X_test, y_train, _ = digits
    net = fastnn.Network([64, 20, 10], activations="tanh", loss="cross_entropy", dtype=dtype.name, seed=0,
                         backend=backend)
    net.fit(X_train[:200], y_train[:200], epochs=2)
    path = tmp_path / "model.fastnn"
    net.save(path)
    assert path.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model.fastnn"]
    for load_backend in _available():
        loaded = fastnn.load(path, backend=load_backend)
        assert loaded.backend == load_backend and loaded.dtype == net.dtype
        assert loaded.sizes == net.sizes and loaded.activations == net.activations and loaded.loss == net.loss
        for a, b in zip(net.weights + net.biases, loaded.weights + loaded.biases):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        if load_backend == backend:
            np.testing.assert_array_equal(loaded.predict(X_test), net.predict(X_test))
    # loading never needs pickle
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["meta", "params"]


def test_load_refuses_foreign_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(ValueError, match="not a valid fastnn model file"):
        fastnn.load(bad)
    np.savez(tmp_path / "other.npz", meta=np.zeros(3), params=np.zeros(3))
    with pytest.raises(ValueError, match="not a valid fastnn model file"):
        fastnn.load(tmp_path / "other.npz")


# -------------------------------------------------------------------------------------------- bad input
def test_bad_input_leaves_network_unchanged(backend):
    net = fastnn.Network([3, 4, 2], loss="cross_entropy", seed=0, backend=backend)
    before = net._params.copy()
    X = np.ones((5, 3))
    with pytest.raises(ValueError, match="features"):
        net.fit(np.ones((5, 4)), [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="labels"):
        net.fit(X, [0, 1, 2, 1, 0])
    with pytest.raises(ValueError, match="NaN"):
        net.fit(np.full((5, 3), np.nan), [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="batch_size"):
        net.fit(X, [0, 1, 0, 1, 0], batch_size=0)
    with pytest.raises(ValueError, match="optimizer"):
        net.fit(X, [0, 1, 0, 1, 0], optimizer="lbfgs-ish")
    with pytest.raises(TypeError, match="dtype"):
        net.predict(np.array([["a", "b", "c"]]))
    np.testing.assert_array_equal(net._params, before)


def test_non_contiguous_inputs_are_handled(backend):
    rng = np.random.default_rng(8)
    net = fastnn.Network([3, 4, 2], seed=0, dtype="float64", backend=backend)
    X = rng.normal(size=(6, 3))
    expected = net.predict(X)
    np.testing.assert_array_equal(net.predict(np.asfortranarray(X)), expected)
    np.testing.assert_array_equal(net.predict(X[::-1])[::-1], expected)
    wide = np.zeros((6, 6))
    wide[:, ::2] = X
    np.testing.assert_array_equal(net.predict(wide[:, ::2]), expected)
    frozen = X.copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(net.predict(frozen), expected)
    np.testing.assert_array_equal(net.predict(X.astype(np.float32).astype(np.int64)),
                                  net.predict(X.astype(np.int64).astype(np.float64)))


def test_network_n_threads_overrides_the_global_setting(digits):
    if not _backend.c_available() or "c" not in _available():
        pytest.skip("needs the C backend")
    X_train, _, y_train, _ = digits
    results = []
    for n_threads in (1, 3):
        net = fastnn.Network([64, 300, 10], loss="cross_entropy", seed=0, backend="c")
        net.n_threads = n_threads
        assert net.n_threads == n_threads
        net.fit(X_train, y_train, epochs=1, batch_size=256)
        results.append(net._params.copy())
    np.testing.assert_array_equal(results[0], results[1])
    with pytest.raises(ValueError, match="n_threads"):
        net.n_threads = 0
