"""Habits users bring from Keras, PyTorch and scikit-learn (issue 11, item 5), each checked: the silent cases
first (assignments that used to change nothing), then errors that say what to do, then discoverability
(dir, --help, scikit-learn's spellings) and the sdist.

Every numeric check compares with a computation written here in float64 NumPy, or with the same call made in the
form fastnn already took (labels (n,) against a column (n, 1)); every refused call checks the network is
unchanged."""
import argparse
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastnn


def ref_forward(X, weights, biases, activations):
    """A dense network's outputs in float64 NumPy, from arrays given here (not read back from the network)."""
    a = np.asarray(X, dtype=np.float64)
    for W, b, name in zip(weights, biases, activations):
        z = a @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        if name == "relu":
            a = np.maximum(z, 0)
        elif name == "tanh":
            a = np.tanh(z)
        elif name == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            a = z
    return a


def snapshot(net):
    return net.get_weights()


def assert_unchanged(net, before):
    after = net.get_weights()
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------ weights / biases item assignment
def test_weights_item_assignment_writes_through(backend, dtype, rng):
    net = fastnn.Network([3, 5, 2], activations="tanh", dtype=dtype, seed=0, backend=backend)
    Ws = [rng.normal(size=(3, 5)), rng.normal(size=(5, 2))]
    bs = [rng.normal(size=5), rng.normal(size=2)]
    for i in range(2):
        net.weights[i] = Ws[i]
        net.biases[i] = bs[i].tolist()  # any array-like
    X = rng.normal(size=(7, 3))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(net.predict(X), ref_forward(X, Ws, bs, ["tanh", "linear"]), rtol=tol, atol=tol)
    # the arrays read back are still views: writing into them changes the network, too
    for got, W in zip(net.weights, Ws):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, W, rtol=tol)
    net.weights[1][...] = 0
    net.biases[1][...] = [1.5, -2.0]
    np.testing.assert_allclose(net.predict(X), np.tile([1.5, -2.0], (7, 1)), rtol=tol)


def test_weights_list_kept_by_the_user_writes_through(rng):
    net = fastnn.Network([2, 3, 1], dtype="float64", seed=0)
    ws, bs = net.weights, net.biases
    W = rng.normal(size=(2, 3))
    ws[0] = W
    bs[-1] = [0.25]
    np.testing.assert_array_equal(net.get_weights()[0], W)
    np.testing.assert_array_equal(net.get_weights()[-1], [0.25])
    np.testing.assert_array_equal(ws[0], W)  # the list still holds the (updated) view
    ws[:] = [np.ones((2, 3)), np.full((3, 1), 2.0)]  # a slice of the same length
    np.testing.assert_array_equal(net.weights[1], np.full((3, 1), 2.0))


def test_weights_assignment_to_conv_and_recurrent_layers(rng):
    net = fastnn.Network([fastnn.Conv2D(2, 3), fastnn.Flatten(), fastnn.Dense(2)], input_shape=(1, 5, 5),
                         dtype="float64", seed=0)
    W = rng.normal(size=(2, 1, 3, 3))
    net.weights[0] = W
    np.testing.assert_array_equal(net.layers[0].W, W)
    rnn = fastnn.Network([fastnn.Embedding(7, 3), fastnn.GRU(4), fastnn.Dense(2)], input_shape=(5,),
                         dtype="float64", seed=0)
    E = rng.normal(size=(7, 3))
    rnn.weights[0] = E
    np.testing.assert_array_equal(rnn.layers[0].W, E)
    w_ih = rng.normal(size=(12, 3))
    rnn.weights[1] = w_ih
    np.testing.assert_array_equal(rnn.layers[1].weight_ih, w_ih)
    before = snapshot(rnn)
    with pytest.raises(ValueError, match="no biases"):
        rnn.biases[0] = np.zeros(3)  # Embedding
    assert_unchanged(rnn, before)


@pytest.mark.parametrize("value, error, match", [
    (np.zeros((5, 3)), ValueError, r"shape \(3, 5\).*\(5, 3\)"),
    (np.zeros(15), ValueError, "shape"),
    (np.zeros((3, 5), dtype=complex), TypeError, "real numbers"),
    (np.array([["a"] * 5] * 3), TypeError, "real numbers"),
    (np.empty((3, 5), dtype=object), TypeError, "real numbers"),
    ("abc", TypeError, "array of real numbers"),
    (np.full((3, 5), np.nan), ValueError, "NaN or infinity"),
    (np.full((3, 5), np.inf), ValueError, "NaN or infinity"),
    (np.full((3, 5), 1e300), ValueError, "float32 range"),
])
def test_weights_assignment_refuses_bad_arrays_and_changes_nothing(value, error, match):
    net = fastnn.Network([3, 5, 2], dtype="float32", seed=0)
    before = snapshot(net)
    with pytest.raises(error, match=match):
        net.weights[0] = value
    assert_unchanged(net, before)


def test_weights_slice_assignment_is_all_or_nothing():
    net = fastnn.Network([3, 5, 2], dtype="float64", seed=0)
    before = snapshot(net)
    with pytest.raises(ValueError, match="shape"):
        net.weights[:] = [np.ones((3, 5)), np.ones((2, 5))]  # the first is fine, the second is not
    assert_unchanged(net, before)
    with pytest.raises(ValueError, match="length is fixed"):
        net.weights[:] = [np.ones((3, 5))]
    with pytest.raises(IndexError, match="out of range"):
        net.biases[2] = np.ones(2)
    with pytest.raises(TypeError, match="integers or slices"):
        net.biases["0"] = np.ones(5)
    assert_unchanged(net, before)


@pytest.mark.parametrize("change", [
    lambda ws: ws.append(np.zeros(2)),
    lambda ws: ws.extend([np.zeros(2)]),
    lambda ws: ws.insert(0, np.zeros(2)),
    lambda ws: ws.pop(),
    lambda ws: ws.remove(ws[0]),
    lambda ws: ws.clear(),
    lambda ws: ws.sort(key=lambda a: a.size),
    lambda ws: ws.reverse(),
    lambda ws: ws.__delitem__(0),
    lambda ws: ws.__iadd__([np.zeros(2)]),
    lambda ws: ws.__imul__(2),
])
def test_weights_list_refuses_to_change_length_or_order(change):
    net = fastnn.Network([3, 5, 2], seed=0)
    before = snapshot(net)
    for ws in (net.weights, net.biases):
        with pytest.raises(TypeError, match=r"item.*set_weights"):
            change(ws)
        assert len(ws) == 2
    assert_unchanged(net, before)


def test_weights_list_still_behaves_as_a_list():
    net = fastnn.Network([3, 5, 2], seed=0)
    both = net.weights + net.biases  # as the existing tests and users combine them
    assert type(both) is list and len(both) == 4
    assert isinstance(net.weights, list)
    copied = pickle.loads(pickle.dumps(net.weights))
    assert type(copied) is list
    for a, b in zip(copied, net.weights):
        np.testing.assert_array_equal(a, b)
    assert [w.shape for w in net.weights] == [(3, 5), (5, 2)]


# ---------------------------------------------------------------------------------------- errors that help
def test_string_labels_to_fit_say_how_to_encode_them(backend):
    net = fastnn.Network([4, 3], loss="cross_entropy", seed=0, backend=backend)
    X = np.random.default_rng(0).normal(size=(6, 4))
    before = snapshot(net)
    for y in (np.array(["cat", "dog", "cow"] * 2), ["cat", "dog", "cow"] * 2,
              np.array(["cat", "dog", "cow"] * 2, dtype=object)):
        with pytest.raises(TypeError) as info:
            net.fit(X, y)
        text = str(info.value)
        assert "'cat'" in text and "return_inverse=True" in text and "LabelEncoder" in text
        assert "fastnn.MLPClassifier" in text
        with pytest.raises(TypeError, match="holds strings"):
            net.evaluate(X, y)
    assert_unchanged(net, before)


def test_integer_labels_as_a_column_train_as_labels(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, size=40)
    nets = [fastnn.Network([4, 6, 3], loss="cross_entropy", dtype="float64", seed=3, backend=backend)
            for _ in range(2)]
    # the loss of labels in a column is the cross-entropy of those labels, computed here
    p = ref_forward(X, nets[0].weights, nets[0].biases, nets[0].activations)
    expected = -np.mean(np.log(p[np.arange(40), y]))
    np.testing.assert_allclose(nets[0].evaluate(X, y[:, None]), expected, rtol=1e-12)
    h1 = nets[0].fit(X, y, epochs=3, batch_size=8, class_weight="balanced")
    h2 = nets[1].fit(X, y[:, None], epochs=3, batch_size=8, class_weight="balanced")
    assert h1["loss"] == h2["loss"]
    for a, b in zip(nets[0].get_weights(), nets[1].get_weights()):
        np.testing.assert_array_equal(a, b)
    # one sample: its label as an array of one
    np.testing.assert_allclose(nets[0].evaluate(X[0], np.array([y[0]])), nets[0].evaluate(X[:1], y[:1]),
                               rtol=1e-12)


def test_three_d_input_to_a_dense_network_suggests_flatten(backend):
    net = fastnn.Network([12, 4, 2], seed=0, backend=backend)
    X = np.random.default_rng(0).normal(size=(5, 3, 4))
    before = snapshot(net)
    for call in (lambda: net.predict(X), lambda: net.fit(X, np.zeros((5, 2))),
                 lambda: net.evaluate(X[None], np.zeros((5, 2)))):
        with pytest.raises(ValueError) as info:
            call()
        text = str(info.value)
        assert "Flatten" in text and ".reshape(len(X), -1)" in text
    assert "input_shape=(3, 4)" in str(pytest.raises(ValueError, net.predict, X).value)
    assert_unchanged(net, before)
    # the advice works: reshaped, or with a Flatten first, the same numbers as computed here
    flat = X.reshape(len(X), -1)
    expected = ref_forward(flat, net.weights, net.biases, net.activations)
    np.testing.assert_allclose(net.predict(flat), expected, rtol=1e-5, atol=1e-6)
    with_flatten = fastnn.Network([fastnn.Flatten(), fastnn.Dense(4, "relu"), fastnn.Dense(2)], input_shape=(3, 4),
                                  backend=backend)
    with_flatten.set_weights(net.get_weights())
    np.testing.assert_allclose(with_flatten.predict(X), expected, rtol=1e-5, atol=1e-6)


def test_save_into_a_missing_folder_names_the_users_path(tmp_path):
    net = fastnn.Network([2, 2], seed=0)
    path = os.path.join(str(tmp_path), "missing", "dir", "model.fastnn")
    with pytest.raises(FileNotFoundError) as info:
        net.save(path)
    text = str(info.value)
    assert path in text and "does not exist" in text and ".tmp" not in text
    assert info.value.filename == path
    assert not os.path.exists(os.path.dirname(path))
    with pytest.raises(IsADirectoryError, match="is a folder"):
        net.save(str(tmp_path))
    assert os.listdir(tmp_path) == []  # no temporary file left behind


# ------------------------------------------------------------------------------------------ discoverability
def test_dir_fastnn_lists_the_estimators():
    names = dir(fastnn)
    assert "MLPClassifier" in names and "MLPRegressor" in names
    assert "Network" in names and "from_state_dict" in names  # the ordinary names are still there
    assert set(fastnn.__all__) <= set(names)


def test_dir_datasets_lists_only_its_own_names():
    names = dir(fastnn.datasets)
    for private in ("gzip", "os", "np", "images", "text", "math", "numbers"):
        assert private not in names
    assert not [n for n in names if n.startswith("_")]
    assert names == sorted(fastnn.datasets.__all__)
    for name in names:  # everything listed exists, and is a function, a class or a constant
        value = getattr(fastnn.datasets, name)
        assert callable(value) or name.isupper(), name
    assert {"load_digits", "train_test_split", "load_mnist", "load_cifar10", "load_words"} <= set(names)
    from fastnn.datasets import images, text  # the submodules still import
    assert callable(images.load_mnist) and callable(text.load_words)


def _all_options(parser, where="python -m fastnn"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_options(sub, f"python -m fastnn {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield where, action


def test_every_command_line_option_has_help_and_its_default():
    from fastnn.__main__ import build_parser
    options = list(_all_options(build_parser()))
    assert len(options) > 20  # the top level and every demo's
    for where, action in options:
        assert action.help and "(default" in action.help, (where, action.option_strings or action.dest)


def test_python_m_fastnn_help_runs_and_shows_defaults():
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ, PYTHONPATH=root)  # the fastnn under test, wherever it is
    out = subprocess.run([sys.executable, "-m", "fastnn", "--help"], capture_output=True, text=True, env=env,
                         cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--epochs", "--batch-size", "--backend", "--dtype", "--threads", "--seed", "--hidden"):
        assert flag in out.stdout
    assert out.stdout.count("(default") >= 7


# ---------------------------------------------------------------------------------- train_test_split
def split_equal(a, b):
    return len(a) == len(b) == 4 and all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("test_size", [0.25, 0.3, 0.5, 1, 7, 19])
@pytest.mark.parametrize("random_state", [0, 3, 12345])
def test_train_test_split_takes_scikit_learns_spelling(test_size, random_state):
    sklearn_split = pytest.importorskip("sklearn.model_selection").train_test_split
    X = np.arange(60).reshape(20, 3)
    y = np.arange(20) * 10
    ours = fastnn.datasets.train_test_split(X, y, test_size=test_size, random_state=random_state)
    theirs = sklearn_split(X, y, test_size=test_size, random_state=random_state)
    assert split_equal(ours, theirs)
    ours = fastnn.datasets.train_test_split(X, y, test_size=test_size,
                                            random_state=np.random.RandomState(random_state))
    theirs = sklearn_split(X, y, test_size=test_size, random_state=np.random.RandomState(random_state))
    assert split_equal(ours, theirs)


def test_train_test_split_generator_and_the_old_spelling():
    X, y = np.arange(40).reshape(20, 2), np.arange(20)
    X_tr, X_te, y_tr, y_te = fastnn.datasets.train_test_split(X, y, test_size=0.25,
                                                              random_state=np.random.default_rng(4))
    order = np.random.default_rng(4).permutation(20)
    np.testing.assert_array_equal(y_te, order[:5])
    np.testing.assert_array_equal(y_tr, order[5:])
    np.testing.assert_array_equal(X_te, X[order[:5]])
    # today's spelling and defaults are unchanged: default_rng(seed), round(n * test_fraction)
    order = np.random.default_rng(0).permutation(20)
    for split in (fastnn.datasets.train_test_split(X, y), fastnn.datasets.train_test_split(X, y, 0.25, 0),
                  fastnn.datasets.train_test_split(X, y, test_fraction=0.25, seed=0)):
        np.testing.assert_array_equal(split[3], order[:5])
        np.testing.assert_array_equal(split[2], order[5:])
    a = fastnn.datasets.train_test_split(X, y, seed=7, test_size=6)  # one of each pair: fine
    np.testing.assert_array_equal(a[3], np.random.default_rng(7).permutation(20)[:6])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"test_fraction": 0.2, "test_size": 0.2}, TypeError, "not both"),
    ({"seed": 1, "random_state": 1}, TypeError, "not both"),
    ({"seed": None, "random_state": None}, TypeError, "not both"),
    ({"test_size": 0}, ValueError, "test_size"),
    ({"test_size": 20}, ValueError, r"\[1, 19\]"),
    ({"test_size": 1.0}, ValueError, "test_size"),
    ({"test_size": True}, ValueError, "test_size"),
    ({"test_size": "0.2"}, ValueError, "test_size"),
    ({"random_state": "0"}, TypeError, "random_state"),
    ({"random_state": True}, TypeError, "random_state"),
    ({"test_fraction": 1.5}, ValueError, "test_fraction"),
])
def test_train_test_split_refusals(kwargs, error, match):
    X, y = np.arange(40).reshape(20, 2), np.arange(20)
    with pytest.raises(error, match=match):
        fastnn.datasets.train_test_split(X, y, **kwargs)


def test_train_test_split_lengths_must_agree():
    with pytest.raises(ValueError, match="as many"):
        fastnn.datasets.train_test_split(np.zeros((5, 2)), np.zeros(4))
