"""fastnn.from_sklearn (fastnn/convert.py) against scikit-learn's own predict / predict_proba of the estimator
converted (skipped without scikit-learn). Nothing here compares fastnn with values taken from its own output."""
import warnings

import numpy as np
import pytest

import fastnn

pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402

TOL = {"float32": 1e-6, "float64": 1e-12}


def assert_close(ours, theirs, dtype):
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_allclose(ours, theirs, rtol=TOL[dtype], atol=TOL[dtype])



def fit_quietly(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


def data(n=60, d=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(dtype), rng


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sklearn_multiclass(backend, activation, dtype):
    X, rng = data(dtype=dtype)
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, size=len(X))]
    est = fit_quietly(MLPClassifier(hidden_layer_sizes=(8, 6), activation=activation, max_iter=30,
                                    random_state=0), X, y)
    net = fastnn.from_sklearn(est, backend=backend)
    assert net.loss == "cross_entropy"
    assert_close(net.predict(X), est.predict_proba(X).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sklearn_binary_and_multilabel(backend, dtype):
    X, rng = data(dtype=dtype)
    y = rng.integers(0, 2, size=len(X))
    est = fit_quietly(MLPClassifier(hidden_layer_sizes=(7,), activation="tanh", max_iter=30, random_state=0),
                      X, y)
    net = fastnn.from_sklearn(est, backend=backend)
    assert net.loss == "binary_cross_entropy" and net.n_outputs == 1
    assert_close(net.predict(X)[:, 0], est.predict_proba(X)[:, 1].astype(dtype), dtype)
    Y = rng.integers(0, 2, size=(len(X), 3))
    est = fit_quietly(MLPClassifier(hidden_layer_sizes=(7,), max_iter=30, random_state=0), X, Y)
    assert_close(fastnn.from_sklearn(est, backend=backend).predict(X), est.predict_proba(X).astype(dtype), dtype)


@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sklearn_regressor(backend, outputs, dtype):
    X, rng = data(dtype=dtype)
    y = rng.normal(size=(len(X), outputs)).astype(dtype)
    y = y[:, 0] if outputs == 1 else y
    est = fit_quietly(MLPRegressor(hidden_layer_sizes=(9, 4), activation="relu", max_iter=30, random_state=0),
                      X, y)
    net = fastnn.from_sklearn(est, backend=backend)
    assert net.loss == "mse" and net.dtype == np.dtype(dtype)
    ours = net.predict(X)
    assert_close(ours[:, 0] if outputs == 1 else ours, est.predict(X).astype(dtype), dtype)


def test_sklearn_dtype_can_be_chosen():
    X, rng = data()
    est = fit_quietly(MLPRegressor(hidden_layer_sizes=(5,), max_iter=20, random_state=0), X,
                      rng.normal(size=len(X)))
    net = fastnn.from_sklearn(est, dtype="float32")
    assert net.dtype == np.float32
    assert_close(net.predict(X.astype(np.float32))[:, 0], est.predict(X).astype(np.float32), "float32")


def test_sklearn_poisson():
    X, rng = data()
    y = rng.poisson(2.0, size=len(X))
    try:
        est = fit_quietly(MLPRegressor(hidden_layer_sizes=(6,), loss="poisson", max_iter=30, random_state=0),
                          X, y)
    except (TypeError, ValueError):
        pytest.skip("this scikit-learn has no MLPRegressor(loss='poisson') (scikit-learn >= 1.7)")
    try:
        fastnn.Network([5, 1], loss="poisson")
    except ValueError:
        with pytest.raises(NotImplementedError, match="poisson"):
            fastnn.from_sklearn(est)
        pytest.skip("fastnn has no 'poisson' loss yet: from_sklearn refuses it clearly")
    net = fastnn.from_sklearn(est)
    assert_close(net.predict(X)[:, 0], est.predict(X), "float64")


def test_sklearn_unfitted_and_wrong_objects():
    with pytest.raises(NotFittedError, match="fit"):
        fastnn.from_sklearn(MLPClassifier())
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor"):
        fastnn.from_sklearn(object())


def test_fastnn_estimators_convert_too(backend):
    X, rng = data()
    y = rng.integers(0, 3, size=len(X))
    est = fit_quietly(fastnn.MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0), X, y)
    net = fastnn.from_sklearn(est, backend=backend)
    assert_close(net.predict(X), est.predict_proba(X), "float64")
    with pytest.raises((NotFittedError, AttributeError), match="fit"):
        fastnn.from_sklearn(fastnn.MLPRegressor())
