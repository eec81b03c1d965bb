"""The places where a scikit-learn user's habits used to break fastnn's estimators, each side by side with
sklearn.neural_network's own behaviour: writing into coefs_ / intercepts_, warm starts from given weights, the
training dtype following X, a diverging fit with early stopping, and the classes named in errors."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402

from fastnn import MLPClassifier, MLPRegressor  # noqa: E402


def _data(n=120, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    return X, X[:, 0] - 0.5 * X[:, 1] ** 2


def _quiet_fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return est.fit(X, y, **kwargs)


# ------------------------------------------------------------------------------------- coefs_ / intercepts_
@pytest.mark.parametrize("cls, sk_cls", [(MLPRegressor, SkMLPRegressor), (MLPClassifier, SkMLPClassifier)])
def test_item_assignment_changes_the_model(cls, sk_cls, backend):
    """est.coefs_[0] = W must change what predict returns, as in scikit-learn (it used to be dropped)."""
    X, y = _data()
    if cls is MLPClassifier:
        y = (y > 0).astype(int)
    params = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    ours = _quiet_fit(cls(backend=backend, **params), X, y)
    theirs = _quiet_fit(sk_cls(**params), X, y)
    rng = np.random.RandomState(1)
    W0, b1, W1 = rng.randn(4, 5), rng.randn(1), rng.randn(5, 1)
    for est in (ours, theirs):
        est.coefs_[0] = W0
        est.intercepts_[1] = b1
        est.coefs_[1][...] = W1  # in place into the returned array, too
    np.testing.assert_array_equal(ours.coefs_[0], W0)
    out = ours.predict_proba(X) if cls is MLPClassifier else ours.predict(X)
    ref = theirs.predict_proba(X) if cls is MLPClassifier else theirs.predict(X)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_item_assignment_checks_shape_and_leaves_the_model(backend):
    X, y = _data()
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, random_state=0, backend=backend), X, y)
    before = [W.copy() for W in est.coefs_]
    with pytest.raises(ValueError, match="shape"):
        est.coefs_[0] = np.ones((5, 4))
    with pytest.raises(ValueError, match="coefs_.*2 arrays"):
        est.coefs_ = [np.ones((4, 5))]
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape"):
        est.coefs_ = [np.zeros((4, 5)), np.zeros((3, 1))]  # the first array is not written either
    for a, b in zip(est.coefs_, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("when", ["before-fit", "after-fit"])
def test_whole_lists_warm_start_from_given_weights(when, backend):
    """Assigning coefs_ / intercepts_ as whole lists, then a warm_start fit, continues from those weights:
    the same trajectory as scikit-learn's from the same weights. (scikit-learn itself needs a fit first: before
    one it fails with an AttributeError; fastnn takes the lists as the initial weights.)"""
    X, y = _data()
    rng = np.random.RandomState(2)
    W = [rng.randn(4, 6) * 0.5, rng.randn(6, 1) * 0.5]
    b = [rng.randn(6) * 0.1, rng.randn(1) * 0.1]
    params = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.01, max_iter=4, random_state=0)
    theirs = _quiet_fit(SkMLPRegressor(**params), X, y)
    theirs.set_params(warm_start=True)
    theirs.coefs_, theirs.intercepts_ = [w.copy() for w in W], [c.copy() for c in b]
    _quiet_fit(theirs, X, y)

    ours = MLPRegressor(backend=backend, **params)
    if when == "after-fit":
        _quiet_fit(ours, X, y)
    ours.set_params(warm_start=True)
    ours.coefs_, ours.intercepts_ = W, b
    _quiet_fit(ours, X, y)
    for a, c in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-12)


def test_lists_given_before_fit_are_ignored_without_warm_start():
    """warm_start=False starts afresh, as scikit-learn's first pass does (the given lists are dropped)."""
    X, y = _data()
    params = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    plain = _quiet_fit(MLPRegressor(**params), X, y)
    est = MLPRegressor(**params)
    est.coefs_ = [np.zeros((4, 5)), np.zeros((5, 1))]
    _quiet_fit(est, X, y)
    for a, c in zip(est.coefs_, plain.coefs_):
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------------------------- dtype
@pytest.mark.parametrize("cls, sk_cls", [(MLPRegressor, SkMLPRegressor), (MLPClassifier, SkMLPClassifier)])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.int64])
def test_training_dtype_follows_the_input(cls, sk_cls, x_dtype):
    X, y = _data()
    if cls is MLPClassifier:
        y = (y > 0).astype(int)
    X = (X * 10).astype(x_dtype)
    params = dict(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    ours, theirs = _quiet_fit(cls(**params), X, y), _quiet_fit(sk_cls(**params), X, y)
    assert ours.coefs_[0].dtype == theirs.coefs_[0].dtype
    assert ours.intercepts_[0].dtype == theirs.intercepts_[0].dtype
    assert ours.network_.dtype == theirs.coefs_[0].dtype
    out, ref = ours.predict(X[:5]), theirs.predict(X[:5])
    assert out.dtype == ref.dtype


def test_explicit_dtype_wins_and_warm_start_keeps_the_dtype():
    X, y = _data()
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, dtype="float64"), X.astype(np.float32), y)
    assert est.coefs_[0].dtype == np.float64
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, warm_start=True), X.astype(np.float32), y)
    _quiet_fit(est, X, y)  # float64 X continues the float32 network
    assert est.coefs_[0].dtype == np.float32
    est.partial_fit(X, y)
    assert est.coefs_[0].dtype == np.float32


# --------------------------------------------------------------------------------- a diverging fit
@pytest.mark.parametrize("early_stopping", [True, False])
def test_divergence_with_early_stopping_as_sklearn(early_stopping, backend):
    """A fit that diverges: with early_stopping scikit-learn keeps going to max_iter, records NaN validation
    scores and ends with the best weights; without it, it raises at the end. fastnn does the same."""
    X, y = _data()
    X, y = X * 1e3, y * 1e6
    params = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=10.0, momentum=0.0, max_iter=8,
                  random_state=0, early_stopping=early_stopping)
    ours, theirs = MLPRegressor(backend=backend, **params), SkMLPRegressor(**params)
    if not early_stopping:
        for est in (ours, theirs):
            with pytest.raises(ValueError, match="non-finite"):
                _quiet_fit(est, X, y)
        return
    _quiet_fit(ours, X, y)
    _quiet_fit(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 8
    ours_scores, their_scores = np.array(ours.validation_scores_), np.array(theirs.validation_scores_)
    finite = np.isfinite(their_scores)
    assert 0 < finite.sum() < len(their_scores)  # the case diverges, after some finite epochs
    np.testing.assert_array_equal(np.isfinite(ours_scores), finite)
    np.testing.assert_allclose(ours_scores[finite], their_scores[finite], rtol=1e-9)
    np.testing.assert_allclose(ours.best_validation_score_, theirs.best_validation_score_, rtol=1e-9)
    for a, c in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, c, rtol=1e-9)
    np.testing.assert_allclose(ours.predict(X[:10]), theirs.predict(X[:10]), rtol=1e-9)


# ------------------------------------------------------------------------------- classes named in errors
@pytest.mark.parametrize("labels", [np.array([True] * 29 + [False]), np.array(["cat"] * 29 + ["dog"])])
def test_stratification_error_names_the_users_classes(labels):
    X, _ = _data(n=30)
    with pytest.raises(ValueError, match="too few") as info:
        MLPClassifier(early_stopping=True, max_iter=2).fit(X, labels)
    rare = str(labels[-1])
    assert f"'{rare}'" in str(info.value) or f"[{rare}]" in str(info.value)
    assert "1.0" not in str(info.value) and "0.0" not in str(info.value)


def test_early_stopping_split_is_still_sklearns():
    """Stratifying on the user's labels instead of the binarized ones keeps scikit-learn's split."""
    X, y = _data(n=200)
    labels = np.where(y > 0, "pos", "neg")
    params = dict(hidden_layer_sizes=(5,), early_stopping=True, max_iter=4, random_state=3, solver="sgd")
    ours, theirs = _quiet_fit(MLPClassifier(**params), X, labels), _quiet_fit(SkMLPClassifier(**params), X, labels)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-9)


# -------------------------------------------------------------------------------------------- sparse X
def _sparse_classification(n=300, d=40, seed=0):
    from scipy import sparse
    rng = np.random.RandomState(seed)
    X = sparse.random(n, d, density=0.15, format="csr", random_state=rng, data_rvs=rng.randn)
    w = rng.randn(d, 3)
    y = np.asarray(X @ w).argmax(axis=1)
    return X, y


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sparse_input_as_sklearn(fmt, solver, backend):
    """CSR, CSC and COO X train the same model as the dense X (the same trajectory) and as scikit-learn's MLP
    on the same sparse X."""
    X, y = _sparse_classification()
    Xs = X.asformat(fmt)
    params = dict(hidden_layer_sizes=(12,), max_iter=8, random_state=0, solver=solver, batch_size=64,
                  early_stopping=solver == "sgd")
    ours = _quiet_fit(MLPClassifier(backend=backend, **params), Xs, y)
    dense = _quiet_fit(MLPClassifier(backend=backend, **params), X.toarray(), y)
    theirs = _quiet_fit(SkMLPClassifier(**params), Xs, y)
    for a, b, c in zip(ours.coefs_ + ours.intercepts_, dense.coefs_ + dense.intercepts_,
                       theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a, c, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(Xs), theirs.predict_proba(Xs), rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(Xs), dense.predict(X.toarray()))


def test_sparse_partial_fit_and_regressor(backend):
    X, y = _sparse_classification()
    target = np.asarray(X.sum(axis=1)).ravel()
    params = dict(hidden_layer_sizes=(8,), random_state=0, batch_size=50)
    ours, theirs = MLPRegressor(backend=backend, **params), SkMLPRegressor(**params)
    for _ in range(3):
        ours.partial_fit(X, target)
        theirs.partial_fit(X, target)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-7, atol=1e-9)


def test_sparse_input_is_never_densified():
    """A CSR matrix whose dense form would take 1.28 GB trains within a few MB of Python memory (one dense batch
    at a time) and predicts in bounded dense chunks (Network's inference chunk of 64 MiB, and the NumPy
    backend's temporaries of that size)."""
    import tracemalloc

    from scipy import sparse
    rng = np.random.RandomState(0)
    n, d = 40_000, 4_000
    nnz = n * d // 2000
    X = sparse.coo_matrix((rng.randn(nnz), (rng.randint(0, n, nnz), rng.randint(0, d, nnz))), shape=(n, d)).tocsr()
    y = rng.randint(0, 2, n)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, batch_size=100, random_state=0)
    tracemalloc.start()
    try:
        _quiet_fit(est, X, y)
        fit_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        predicted = est.predict(X)
        predict_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    dense_bytes = n * d * 8
    assert fit_peak < dense_bytes / 50, f"fit peak {fit_peak / 2**20:.1f} MiB"
    assert predict_peak < dense_bytes / 5, f"predict peak {predict_peak / 2**20:.1f} MiB"
    np.testing.assert_array_equal(predicted[:500], est.predict(X[:500].toarray()))


# ------------------------------------------------------------------------------------------- poisson
@pytest.mark.parametrize("solver, extra", [("adam", {}), ("sgd", dict(learning_rate_init=0.01)),
                                           ("lbfgs", {}), ("adam", dict(early_stopping=True))])
def test_poisson_regressor_as_sklearn(solver, extra, backend):
    """MLPRegressor(loss="poisson"): exp output, half Poisson deviance; the same model and loss curve as
    scikit-learn's for the same random_state."""
    rng = np.random.RandomState(0)
    X = rng.randn(300, 5)
    y = rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1])).astype(np.float64)
    params = dict(loss="poisson", hidden_layer_sizes=(10,), max_iter=10, random_state=0, solver=solver, **extra)
    ours = _quiet_fit(MLPRegressor(backend=backend, **params), X, y)
    theirs = _quiet_fit(SkMLPRegressor(**params), X, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert ours.n_iter_ == theirs.n_iter_
    for a, c in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, c, rtol=1e-7, atol=1e-9)
    if solver != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-7)
    assert (ours.predict(X) > 0).all()


def test_poisson_refuses_negative_targets_and_unknown_losses():
    X, _ = _data()
    with pytest.raises(ValueError, match=">= 0"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, -np.ones(len(X)))
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="huber").fit(X, np.ones(len(X)))
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor((8,)).fit(X, np.ones(len(X)))  # scikit-learn's positional order: loss comes first
