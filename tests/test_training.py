"""Training features on both backends: the optimizers beyond sgd/adam (C against the NumPy twin and against their
update rules written out here), sample and class weights, validation_split, early stopping, schedules, callbacks,
the progress display, and iRPROP- on a PROBEN1 problem against Prechelt's published result."""
import math
import os

import numpy as np
import pytest

import fastnn

PROBEN1 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "proben1", "prechelt")


# ------------------------------------------------------------------------------------ optimizer update rules
def test_rmsprop_step_matches_rule(kernels, dtype, rng):
    n, n_decay = 37, 30
    p0 = rng.normal(size=n).astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    sq0 = rng.uniform(0, 1, size=n).astype(dtype)
    p, sq = p0.copy(), sq0.copy()
    kernels.rmsprop_step(p, g, sq, n_decay, 0.01, 0.9, 1e-8, 0.1, 1)
    gd = g.astype(np.float64) + np.r_[0.1 * p0[:n_decay], np.zeros(n - n_decay)]
    s = 0.9 * sq0 + 0.1 * gd * gd
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(sq, s, rtol=rtol)
    np.testing.assert_allclose(p, p0 - 0.01 * gd / (np.sqrt(s) + 1e-8), rtol=rtol, atol=rtol)


def test_adamw_first_step_matches_rule(kernels, dtype, rng):
    n, n_decay = 29, 20
    p0 = rng.normal(size=n).astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    p, m, v = p0.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
    kernels.adamw_step(p, g, m, v, n_decay, 0.01, 0.9, 0.999, 1e-8, 0.5, 1, 1)
    # t = 1: mhat = g, vhat = g^2, so the Adam step is lr * g / (|g| + eps); decay multiplies the weights first
    shrink = np.r_[np.full(n_decay, 1 - 0.01 * 0.5), np.ones(n - n_decay)]
    gd = g.astype(np.float64)
    expected = p0 * shrink - 0.01 * gd / (np.abs(gd) + 1e-8)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, expected, rtol=rtol, atol=rtol)


def test_irprop_minus_step_matches_rule(kernels, dtype):
    p = np.zeros(6, dtype)
    g = np.array([1.0, -1.0, 1.0, -1.0, 0.0, 2.0], dtype)
    prev = np.array([1.0, -3.0, -1.0, 1.0, 1.0, 0.0], dtype)
    steps = np.full(6, 0.1, dtype)
    kernels.irprop_minus_step(p, g, prev, steps, 6, 1.2, 0.5, 0.0, 50.0, 0.0, 1)
    # same sign: grow and move; sign flip: shrink and skip; zero gradient: keep the step, no move
    np.testing.assert_allclose(steps, [0.12, 0.12, 0.05, 0.05, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(p, [-0.12, 0.12, 0.0, 0.0, 0.0, -0.1], rtol=1e-6)
    np.testing.assert_array_equal(prev, [1.0, -1.0, 0.0, 0.0, 0.0, 2.0])


@pytest.mark.parametrize("step", ["rmsprop_step", "adamw_step", "irprop_minus_step"])
def test_new_optimizers_c_equals_numpy(c_kernels, py_kernels, dtype, rng, step):
    n, n_decay = 1 << 20, 600_000  # big enough for the threaded path
    base = [rng.normal(size=n).astype(dtype) for _ in range(2)]
    results = []
    for kernels in (c_kernels, py_kernels):
        p, g = base[0].copy(), base[1].copy()
        if step == "rmsprop_step":
            sq = np.full(n, 0.5, dtype)
            kernels.rmsprop_step(p, g, sq, n_decay, 0.01, 0.9, 1e-8, 0.01, 2)
            results.append((p, sq))
        elif step == "adamw_step":
            m, v = np.zeros(n, dtype), np.zeros(n, dtype)
            for t in (1, 2, 3):
                kernels.adamw_step(p, g, m, v, n_decay, 0.01, 0.9, 0.999, 1e-8, 0.01, t, 2)
            results.append((p, m, v))
        else:
            prev, steps = np.zeros(n, dtype), np.full(n, 0.1, dtype)
            for sign in (1, 1, -1):
                kernels.irprop_minus_step(p, sign * g, prev, steps, n_decay, 1.2, 0.5, 1e-6, 50.0, 0.01, 2)
            results.append((p, prev, steps))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("optimizer,opts", [("rmsprop", {"learning_rate": 1e-3}),
                                            ("adamw", {"learning_rate": 1e-3, "weight_decay": 1e-2}),
                                            ("irprop-", {})])
def test_backends_train_the_same_float64_weights(digits, optimizer, opts):
    from conftest import BACKENDS
    if BACKENDS != ["c", "python"] or not fastnn._backend.c_available():
        pytest.skip("needs both backends")
    X_train, _, y_train, _ = digits
    nets = []
    for backend in ("c", "python"):
        net = fastnn.Network([64, 16, 10], loss="cross_entropy", dtype="float64", seed=3, backend=backend)
        net.fit(X_train[:400], y_train[:400], epochs=4, batch_size=40, optimizer=optimizer, **opts)
        nets.append(net)
    np.testing.assert_allclose(nets[0]._params, nets[1]._params, rtol=0, atol=1e-9)


@pytest.mark.parametrize("optimizer,lr", [("rmsprop", 1e-3), ("adamw", 1e-3), ("irprop-", 0.01)])
def test_new_optimizers_learn_digits(backend, digits, optimizer, lr):
    X_train, X_test, y_train, y_test = digits
    net = fastnn.Network([64, 32, 10], loss="cross_entropy", seed=0, backend=backend)
    net.fit(X_train, y_train, epochs=40 if optimizer == "irprop-" else 15, batch_size=32, optimizer=optimizer,
            learning_rate=lr)
    assert np.mean(net.predict(X_test).argmax(axis=1) == y_test) > 0.9


# ----------------------------------------------------------------------------------------------- weights
def test_sample_weights_weight_each_sample_loss(kernels, dtype, rng):
    from fastnn import _codes
    n, d = 9, 4
    out = rng.normal(size=(n, d)).astype(dtype)
    target = np.eye(d, dtype=dtype)[rng.integers(0, d, n)]
    w = rng.uniform(0, 3, size=n).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for code in (_codes.MSE, _codes.CROSS_ENTROPY, _codes.BINARY_CROSS_ENTROPY):
        per_sample = []
        grads = []
        for i in range(n):  # each sample alone: its own loss and gradient
            g = np.empty((1, d), dtype)
            per_sample.append(kernels.loss(g, out[i:i + 1], target[i:i + 1], code, 1))
            grads.append(g[0])
        grad = np.empty((n, d), dtype)
        value = kernels.loss(grad, out, target, code, 1, w)
        assert value == pytest.approx(np.dot(w, per_sample) / n, rel=rtol)
        np.testing.assert_allclose(grad, np.array(grads) * w[:, None] / n, rtol=rtol, atol=rtol * 1e-3)


def test_sample_weight_zero_ignores_samples(backend):
    """Weight-0 samples contribute nothing: training with them equals training without them, full batch."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = rng.normal(size=(20, 1))
    w = np.r_[np.ones(12), np.zeros(8)]
    a = fastnn.Network([3, 5, 1], activations="tanh", dtype="float64", seed=1, backend=backend)
    b = fastnn.Network([3, 5, 1], activations="tanh", dtype="float64", seed=1, backend=backend)
    a.fit(X, y, epochs=5, batch_size=20, learning_rate=0.1, shuffle=False, sample_weight=w)
    # without the weight-0 samples the mean is over 12, not 20: scale the learning rate to match
    b.fit(X[:12], y[:12], epochs=5, batch_size=12, learning_rate=0.1 * 12 / 20, shuffle=False)
    np.testing.assert_allclose(a._params, b._params, rtol=1e-12, atol=1e-14)


def test_class_weight_balanced_equals_sample_weight(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    y = np.r_[np.zeros(30, int), np.ones(6, int), np.full(4, 2)]
    counts = np.bincount(y)
    manual = (40 / (3 * counts))[y]
    a = fastnn.Network([4, 6, 3], loss="cross_entropy", dtype="float64", seed=2, backend=backend)
    b = fastnn.Network([4, 6, 3], loss="cross_entropy", dtype="float64", seed=2, backend=backend)
    a.fit(X, y, epochs=3, batch_size=8, class_weight="balanced")
    b.fit(X, y, epochs=3, batch_size=8, sample_weight=manual)
    np.testing.assert_array_equal(a._params, b._params)
    c = fastnn.Network([4, 6, 3], loss="cross_entropy", dtype="float64", seed=2, backend=backend)
    c.fit(X, y, epochs=3, batch_size=8, class_weight={1: 5.0})
    d = fastnn.Network([4, 6, 3], loss="cross_entropy", dtype="float64", seed=2, backend=backend)
    d.fit(X, y, epochs=3, batch_size=8, sample_weight=np.where(y == 1, 5.0, 1.0))
    np.testing.assert_array_equal(c._params, d._params)


# ------------------------------------------------------------------------------- validation, early stopping
def test_validation_split_holds_out_the_last_samples(backend):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    y = rng.normal(size=(50, 2))
    a = fastnn.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    b = fastnn.Network([3, 4, 2], dtype="float64", seed=0, backend=backend)
    ha = a.fit(X, y, epochs=3, validation_split=0.2)
    hb = b.fit(X[:40], y[:40], epochs=3, validation_data=(X[40:], y[40:]))
    assert ha["val_loss"] == hb["val_loss"] and ha["loss"] == hb["loss"]


def test_early_stopping_restores_the_best_weights(backend, digits):
    X_train, X_test, y_train, y_test = digits
    net = fastnn.Network([64, 128, 10], loss="cross_entropy", seed=0, dtype="float64", backend=backend)
    # a learning rate high enough that the validation loss turns up well before 200 epochs
    rule = fastnn.EarlyStopping(patience=5, restore_best_weights=True)
    history = net.fit(X_train[:300], y_train[:300], epochs=200, batch_size=16, optimizer="adam",
                      learning_rate=0.01, validation_data=(X_test, y_test), early_stopping=rule)
    assert history.stopped_epoch is not None and history.stopped_epoch < 199
    best = int(np.argmin(history["val_loss"]))
    assert history.best_epoch == best
    assert history.stopped_epoch == best + rule.patience
    assert net.evaluate(X_test, y_test) == history["val_loss"][best]


def test_early_stopping_without_validation_monitors_loss(backend):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([0, 1, 1, 0])
    net = fastnn.Network([2, 4, 1], activations=["sigmoid", "linear"], seed=1, backend=backend)
    history = net.fit(X, y, epochs=50, batch_size=4, learning_rate=0.5, early_stopping=True)
    assert history.stopped_epoch is None and history.best_epoch == 49
    with pytest.raises(ValueError, match="val_loss needs validation_data"):
        net.fit(X, y, epochs=2, early_stopping=fastnn.EarlyStopping(monitor="val_loss"))


# --------------------------------------------------------------------------------- schedules and callbacks
def test_schedules():
    assert [fastnn.StepDecay(2, 0.5)(e, 1.0, {}) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert fastnn.ExponentialDecay(0.9)(3, 2.0, {}) == pytest.approx(2.0 * 0.9 ** 3)
    cosine = fastnn.CosineDecay(10, lr_min=0.1)
    assert cosine(0, 1.0, {}) == 1.0 and cosine(5, 1.0, {}) == pytest.approx(0.55) and cosine(12, 1.0, {}) == 0.1
    plateau = fastnn.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.0)
    history = {"loss": []}
    lrs = []
    for epoch, loss in enumerate([5, 4, 4, 4, 4, 4, 3]):
        lrs.append(plateau(epoch, 1.0, history))
        history["loss"].append(loss)
    # improvements at epochs 0 and 1; no improvement after epochs 2, 3 -> halve; after 4, 5 -> halve again
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_lr_schedule_and_callbacks_drive_fit(backend):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 1))
    net = fastnn.Network([3, 4, 1], seed=0, backend=backend)
    seen = []

    def stop_after_three(epoch, history):
        seen.append((epoch, len(history["loss"])))
        return epoch < 2

    history = net.fit(X, y, epochs=10, learning_rate=0.1, lr_schedule=fastnn.StepDecay(1, 0.5),
                      callbacks=[stop_after_three])
    assert history["lr"] == [0.1, 0.05, 0.025]
    assert seen == [(0, 1), (1, 2), (2, 3)] and history.stopped_epoch == 2


def test_verbose_prints_epoch_loss_and_speed(backend, capsys):
    X, y = np.eye(3), np.eye(3)
    net = fastnn.Network([3, 3], seed=0, backend=backend)
    net.fit(X, y, epochs=2, verbose=2, validation_data=(X, y))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("epoch 2/2") and "val_loss" in out[1] and "samples/s" in out[1]


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    net = fastnn.Network([3, 3], seed=0)
    history = net.fit(np.eye(3), np.eye(3), epochs=3, validation_data=(np.eye(3), np.eye(3)))
    path = tmp_path / "history.png"
    history.plot(path)
    assert path.stat().st_size > 1000


def test_reset_optimizer_false_continues_adam(backend):
    """Two fits of one epoch with the state kept equal one fit of two epochs."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(24, 3)), rng.normal(size=(24, 2))
    a = fastnn.Network([3, 5, 2], dtype="float64", seed=0, backend=backend)
    b = fastnn.Network([3, 5, 2], dtype="float64", seed=0, backend=backend)
    a.fit(X, y, epochs=2, batch_size=8, optimizer="adam")
    b.fit(X, y, epochs=1, batch_size=8, optimizer="adam")
    b.fit(X, y, epochs=1, batch_size=8, optimizer="adam", reset_optimizer=False)
    np.testing.assert_array_equal(a._params, b._params)


# ---------------------------------------------------------------------------------------- PROBEN1 / iRPROP-
def read_proben1(path):
    with open(path) as f:
        header = dict(line.strip().split("=") for _, line in zip(range(7), f))
        data = np.loadtxt(f)
    n_in = int(header["bool_in"]) + int(header["real_in"])
    n_train, n_val = int(header["training_examples"]), int(header["validation_examples"])
    X, Y = data[:, :n_in], data[:, n_in:]
    return (X[:n_train], Y[:n_train]), (X[n_train:n_train + n_val], Y[n_train:n_train + n_val]), \
        (X[n_train + n_val:], Y[n_train + n_val:])


def gl5(epoch, history):
    """Prechelt's GL5 stopping rule, checked at the end of each 5-epoch strip: stop once the validation error is
    more than 5% above the best so far."""
    if (epoch + 1) % 5:
        return True
    return 100 * (history["val_loss"][-1] / min(history["val_loss"]) - 1) <= 5


@pytest.mark.skipif(not os.path.exists(os.path.join(PROBEN1, "cancer1.dt")), reason="needs ../shared/data")
def test_irprop_minus_on_proben1_cancer1(backend):
    """Prechelt (TR 21/94, Table 10): cancer1, no-shortcut 4+2 hidden, linear outputs, RPROP, GL5 early
    stopping keeping the minimum-validation-error network: test classification error 1.38% (sd 0.49) over 60
    runs. We accept within 2 points, averaged over 5 seeds."""
    (X_tr, Y_tr), (X_va, Y_va), (X_te, Y_te) = read_proben1(os.path.join(PROBEN1, "cancer1.dt"))
    errors = []
    for seed in range(5):
        net = fastnn.Network([9, 4, 2, 2], activations=["tanh", "tanh", "linear"], loss="mse", dtype="float64",
                             seed=seed, backend=backend)
        net.fit(X_tr, Y_tr, epochs=3000, optimizer="irprop-", step_init=0.0125, validation_data=(X_va, Y_va),
                early_stopping=fastnn.EarlyStopping(patience=3000), callbacks=[gl5], shuffle=False)
        errors.append(100 * np.mean(net.predict(X_te).argmax(axis=1) != Y_te.argmax(axis=1)))
    assert np.mean(errors) <= 1.38 + 2.0, errors


def test_weighted_gradients_match_finite_differences(backend):
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(7, 3)), rng.integers(0, 3, size=7)
    w = rng.uniform(0, 2, size=7)
    net = fastnn.Network([3, 4, 3], activations="tanh", loss="cross_entropy", dtype="float64", seed=0,
                         backend=backend)
    value, grads = net.loss_and_gradients(X, y, sample_weight=w)
    assert value == net.evaluate(X, y, sample_weight=w)
    for (dW, db), (gW, gb) in zip(grads, net.gradients(X, y, sample_weight=w)):
        np.testing.assert_array_equal(dW, gW)
    eps = 1e-6
    for (dW, db), W in zip(grads, net.weights):
        numeric = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + eps
            up = net.evaluate(X, y, sample_weight=w)
            W[idx] = old - eps
            down = net.evaluate(X, y, sample_weight=w)
            W[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(dW, numeric, rtol=1e-5, atol=1e-8)
