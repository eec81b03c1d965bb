"""Knowledge distillation: the loss kernel against PyTorch's formulation, both backends against each other, the
whole-network gradient against finite differences, and fit / train_step with teacher=."""
import numpy as np
import pytest

import fastnn


def _torch_reference(z, labels, teacher, temperature, alpha, weights=None):
    """(loss, d loss / d z) of alpha T^2 KL(softmax(t/T) || softmax(z/T)) + (1 - alpha) CE(z, y), PyTorch's
    formulation (kl_div of log_softmax against softmax, batchmean) and its autograd gradient, float64."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(teacher, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.int64)
    if weights is None:
        soft = F.kl_div(F.log_softmax(zt / temperature, 1), F.softmax(tt / temperature, 1), reduction="batchmean")
        value = soft * temperature ** 2 * alpha + (1 - alpha) * F.cross_entropy(zt, y)
    else:  # per-sample terms, each times its weight, mean over the samples
        w = torch.tensor(weights, dtype=torch.float64)
        soft = F.kl_div(F.log_softmax(zt / temperature, 1), F.softmax(tt / temperature, 1),
                        reduction="none").sum(1)
        hard = F.cross_entropy(zt, y, reduction="none")
        value = ((soft * temperature ** 2 * alpha + (1 - alpha) * hard) * w).mean()
    value.backward()
    return value.item(), zt.grad.numpy()


def _case(rng, n=13, d=7, scale=3.0, dtype=np.float64):
    z = (rng.normal(size=(n, d)) * scale).astype(dtype)
    teacher = (rng.normal(size=(n, d)) * scale).astype(dtype)
    labels = rng.integers(0, d, n)
    onehot = np.zeros((n, d), dtype=dtype)
    onehot[np.arange(n), labels] = 1
    return z, teacher, labels, onehot


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (10.0, 1.0), (0.3, 0.7)])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_and_gradient_equal_pytorch(kernels, rng, temperature, alpha, weighted):
    z, teacher, labels, onehot = _case(rng)
    weights = rng.uniform(0.2, 2.0, z.shape[0]) if weighted else None
    expected, expected_grad = _torch_reference(z, labels, teacher, temperature, alpha, weights)
    grad = np.full_like(z, np.nan)
    value = kernels.distill_loss(grad, z, onehot, teacher, temperature, alpha, 1, weights)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)
    # the loss without a gradient buffer is the same value
    assert kernels.distill_loss(None, z, onehot, teacher, temperature, alpha, 1, weights) == value


def test_extreme_logits_stay_finite_and_equal_pytorch(kernels, rng):
    """Logits far apart: teacher probabilities that underflow to 0 add nothing (0 log 0 = 0), as kl_div."""
    z, teacher, labels, onehot = _case(rng, scale=200.0)
    expected, expected_grad = _torch_reference(z, labels, teacher, 1.0, 0.5)
    grad = np.empty_like(z)
    value = kernels.distill_loss(grad, z, onehot, teacher, 1.0, 0.5, 1)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


def test_backends_agree(c_kernels, py_kernels, rng, dtype):
    z, teacher, _, onehot = _case(rng, n=40, d=10, dtype=dtype)
    weights = rng.uniform(0.5, 1.5, 40).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for args in [(4.0, 0.9, None), (2.0, 0.3, weights)]:
        g_c, g_py = np.empty_like(z), np.empty_like(z)
        v_c = c_kernels.distill_loss(g_c, z, onehot, teacher, args[0], args[1], 2, args[2])
        v_py = py_kernels.distill_loss(g_py, z, onehot, teacher, args[0], args[1], 1, args[2])
        assert v_c == pytest.approx(v_py, rel=tol)
        np.testing.assert_allclose(g_c, g_py, rtol=tol, atol=tol * 1e-2)


def test_kernel_refuses_bad_hyperparameters(kernels, rng):
    z, teacher, _, onehot = _case(rng)
    for temperature, alpha in [(0.0, 0.5), (-1.0, 0.5), (np.inf, 0.5), (np.nan, 0.5), (1.0, -0.1), (1.0, 1.5),
                               (1.0, np.nan)]:
        with pytest.raises(ValueError):
            kernels.distill_loss(None, z, onehot, teacher, temperature, alpha, 1)


def _mlp(backend, seed=0, dtype="float64", sizes=(6, 8, 4)):
    return fastnn.Network(list(sizes), activations="tanh", loss="cross_entropy", dtype=dtype, seed=seed,
                          backend=backend)


def _numpy_logits(net, X):
    """Logits of a tanh MLP computed here from its weights (independent of the network's kernels)."""
    a = np.asarray(X, dtype=np.float64)
    weights = net.get_weights()
    for i in range(0, len(weights), 2):
        a = a @ weights[i].astype(np.float64) + weights[i + 1].astype(np.float64)
        if i + 2 < len(weights):
            a = np.tanh(a)
    return a


@pytest.fixture
def data(rng):
    X = rng.normal(size=(30, 6))
    y = rng.integers(0, 4, 30)
    teacher = rng.normal(size=(30, 4)) * 2
    return X, y, teacher


def test_fit_loss_is_the_combined_loss(backend, data):
    """One epoch of one full batch: the recorded loss is the combined loss of the logits before the update."""
    X, y, teacher = data
    net = _mlp(backend)
    expected, _ = _torch_reference(_numpy_logits(net, X), y, teacher, 3.0, 0.6)
    history = net.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, teacher=teacher, temperature=3.0,
                      alpha=0.6)
    assert history["loss"][0] == pytest.approx(expected, rel=1e-10)


def test_train_step_loss_and_update(backend, data):
    """train_step's loss is PyTorch's, and plain SGD moves the output bias by -lr times PyTorch's gradient."""
    X, y, teacher = data
    net = _mlp(backend)
    expected, grad_z = _torch_reference(_numpy_logits(net, X), y, teacher, 4.0, 0.9)
    b_before = net.get_weights()[-1].copy()
    value = net.train_step(X, y, learning_rate=0.5, teacher=teacher, temperature=4.0, alpha=0.9)
    assert value == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(net.get_weights()[-1], b_before - 0.5 * grad_z.sum(axis=0), rtol=1e-10, atol=1e-13)


def test_alpha_zero_is_plain_training_bitwise(backend, data):
    X, y, teacher = data
    plain, distilled = _mlp(backend, seed=3), _mlp(backend, seed=3)
    h_plain = plain.fit(X, y, epochs=3, batch_size=8, optimizer="adam", learning_rate=0.01)
    h_dist = distilled.fit(X, y, epochs=3, batch_size=8, optimizer="adam", learning_rate=0.01, teacher=teacher,
                           temperature=2.0, alpha=0.0)
    assert h_plain["loss"] == h_dist["loss"]
    for a, b in zip(plain.get_weights(), distilled.get_weights()):
        assert np.array_equal(a, b)


def test_alpha_zero_is_plain_training_bitwise_float32(backend, data):
    X, y, teacher = data
    plain, distilled = _mlp(backend, seed=4, dtype="float32"), _mlp(backend, seed=4, dtype="float32")
    plain.fit(X, y, epochs=2, batch_size=7)
    distilled.fit(X, y, epochs=2, batch_size=7, teacher=teacher, alpha=0.0)
    for a, b in zip(plain.get_weights(), distilled.get_weights()):
        assert np.array_equal(a, b)


def test_network_gradients_match_finite_differences(kernels, data):
    """d(distillation loss)/d(every parameter) from backprop against central differences of the loss."""
    X, y, teacher = data
    net = fastnn.Network([6, 5, 4], activations="tanh", loss="cross_entropy", dtype="float64", seed=1)
    T = np.zeros((len(X), 4))
    T[np.arange(len(X)), y] = 1
    w = np.linspace(0.5, 1.5, len(X))
    handle = kernels.NetHandle([layer.descriptor(ws) for layer, ws in zip(net.layers, _workspaces(net, len(X)))],
                               net._loss_code, net._params, net._grads, net.n_decay, np.empty((len(X), 6)),
                               np.empty((len(X), 4)), np.empty(len(X)), len(X))
    distill = (teacher, 2.5, 0.8)
    kernels.net_backprop(handle, X, T, 1, w, False, 0, distill)
    analytic = net._grads.copy()
    numeric = np.empty_like(analytic)
    eps = 1e-6
    for i in range(net._params.shape[0]):
        keep = net._params[i]
        net._params[i] = keep + eps
        up = kernels.net_backprop(handle, X, T, 1, w, False, 0, distill)
        net._params[i] = keep - eps
        down = kernels.net_backprop(handle, X, T, 1, w, False, 0, distill)
        net._params[i] = keep
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def _workspaces(net, rows):
    return [{name: np.empty((rows, count), dtype=np.int32 if kind == "int32" else net.dtype)
             for name, (count, kind) in layer.workspace_sizes().items()} for layer in net.layers]


def test_teacher_network_equals_its_logits(backend, data):
    X, y, _ = data
    teacher = fastnn.Network([6, 9, 4], activations="tanh", loss="cross_entropy", dtype="float64", seed=7,
                             backend=backend)
    logits = _numpy_logits(teacher, X)
    np.testing.assert_allclose(teacher._logits(X), logits, rtol=1e-12, atol=1e-13)
    a, b = _mlp(backend, seed=2), _mlp(backend, seed=2)
    h_a = a.fit(X, y, epochs=2, batch_size=8, teacher=teacher, temperature=3.0, alpha=0.5)
    h_b = b.fit(X, y, epochs=2, batch_size=8, teacher=logits, temperature=3.0, alpha=0.5)
    np.testing.assert_allclose(h_a["loss"], h_b["loss"], rtol=1e-12)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-11, atol=1e-13)


def test_teacher_of_another_dtype_and_backend(data):
    """A float32 teacher on the NumPy backend teaches a float64 student: its logits, cast, are the targets."""
    X, y, _ = data
    teacher = fastnn.Network([6, 9, 4], activations="tanh", loss="cross_entropy", dtype="float32", seed=7,
                             backend="python")
    logits = teacher._logits(X)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, _numpy_logits(teacher, X), rtol=1e-5, atol=1e-5)
    a, b = _mlp(None, seed=2), _mlp(None, seed=2)
    a.fit(X, y, epochs=1, batch_size=8, teacher=teacher)
    b.fit(X, y, epochs=1, batch_size=8, teacher=logits.astype(np.float64))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)


def test_cnn_teacher_logits_are_its_pre_softmax_outputs(backend, rng):
    """A convolutional teacher (images in) gives logits whose softmax is its prediction; an MLP student of the
    flattened images learns from them as an array."""
    X = rng.normal(size=(12, 1, 6, 6))
    y = rng.integers(0, 3, 12)
    teacher = fastnn.Network([fastnn.Conv2D(2, 3, activation="relu"), fastnn.Flatten(), fastnn.Dense(3)],
                             input_shape=(1, 6, 6), loss="cross_entropy", dtype="float64", seed=0, backend=backend)
    logits = teacher._logits(X)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), teacher.predict(X), rtol=1e-12, atol=1e-15)
    student = fastnn.Network([36, 5, 3], loss="cross_entropy", dtype="float64", seed=0, backend=backend)
    history = student.fit(X.reshape(12, -1), y, epochs=2, batch_size=4, teacher=logits)
    assert np.all(np.isfinite(history["loss"]))


def test_validation_loss_is_plain_cross_entropy(backend, data):
    X, y, teacher = data
    net = _mlp(backend)
    history = net.fit(X, y, epochs=2, batch_size=8, teacher=teacher, validation_split=0.2)
    assert history["val_loss"][-1] == pytest.approx(net.evaluate(X[-6:], y[-6:]), rel=1e-12)


def test_backends_agree_on_a_distilled_fit(data):
    X, y, teacher = data
    nets = {b: _mlp(b, seed=5) for b in ("c", "python") if b == "python" or fastnn._backend.c_available()}
    if len(nets) < 2:
        pytest.skip("the C extension is not built")
    histories = {b: net.fit(X, y, epochs=3, batch_size=8, optimizer="adam", learning_rate=0.01, teacher=teacher,
                             temperature=4.0, alpha=0.9, sample_weight=np.linspace(0.5, 2, len(X)))
                 for b, net in nets.items()}
    np.testing.assert_allclose(histories["c"]["loss"], histories["python"]["loss"], rtol=1e-11)
    for wa, wb in zip(nets["c"].get_weights(), nets["python"].get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(teacher=np.zeros((30, 5))), "teacher logits must be"),
    (dict(teacher=np.zeros((29, 4))), "teacher logits must be"),
    (dict(teacher=np.zeros(30)), "teacher logits must be"),
    (dict(teacher=np.full((30, 4), np.nan)), "NaN"),
    (dict(teacher=np.zeros((30, 4)), temperature=0.0), "temperature"),
    (dict(teacher=np.zeros((30, 4)), temperature=-2.0), "temperature"),
    (dict(teacher=np.zeros((30, 4)), alpha=1.5), "alpha"),
    (dict(teacher=np.zeros((30, 4)), alpha=-0.1), "alpha"),
    (dict(temperature=2.0), "give a teacher"),
])
def test_bad_input_is_refused_and_changes_nothing(backend, data, kwargs, message):
    X, y, _ = data
    net = _mlp(backend)
    net.fit(X, y, epochs=1, batch_size=10)
    before, t_before = net.get_weights(), net._opt_t
    for call in (lambda: net.fit(X, y, epochs=1, reset_optimizer=False, **kwargs),
                 lambda: net.train_step(X, y, **kwargs)):
        with pytest.raises(ValueError, match=message):
            call()
        assert net._opt_t == t_before
        for a, b in zip(before, net.get_weights()):
            assert np.array_equal(a, b)


def test_bad_teachers_and_students(backend, data):
    X, y, teacher = data
    regressor = fastnn.Network([6, 4], loss="mse", dtype="float64", seed=0, backend=backend)
    with pytest.raises(ValueError, match="softmax classifier"):
        regressor.fit(X, np.eye(4)[y], teacher=teacher)
    net = _mlp(backend)
    before = net.get_weights()
    wide = fastnn.Network([6, 5], loss="cross_entropy", dtype="float64", seed=0, backend=backend)
    with pytest.raises(ValueError, match="5 outputs"):
        net.fit(X, y, teacher=wide)
    sigmoid = fastnn.Network([6, 4], loss="binary_cross_entropy", dtype="float64", seed=0, backend=backend)
    with pytest.raises(ValueError, match="softmax output"):
        net.fit(X, y, teacher=sigmoid)
    with pytest.raises(ValueError, match="another network"):
        net.fit(X, y, teacher=net)
    for a, b in zip(before, net.get_weights()):
        assert np.array_equal(a, b)


def test_sparse_x_with_a_teacher_network(backend, data):
    """A sparse X reaches the teacher in bounded dense chunks and gives the dense X's logits and training."""
    sp = pytest.importorskip("scipy.sparse")
    X, y, _ = data
    X = np.where(np.abs(X) > 0.8, X, 0.0)
    teacher = fastnn.Network([6, 9, 4], activations="tanh", loss="cross_entropy", dtype="float64", seed=7,
                             backend=backend)
    np.testing.assert_allclose(teacher._logits(sp.csr_matrix(X)), _numpy_logits(teacher, X), rtol=1e-12,
                               atol=1e-13)
    a, b = _mlp(backend, seed=2), _mlp(backend, seed=2)
    a.fit(sp.csr_matrix(X), y, epochs=2, batch_size=8, teacher=teacher)
    b.fit(X, y, epochs=2, batch_size=8, teacher=teacher)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-14)
