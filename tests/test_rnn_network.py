"""Recurrent networks (Embedding, SimpleRNN, LSTM, GRU, RepeatVector, Dense per step) on both backends.

Oracles, all independent of fastnn's own output:
  - torch.nn with the same weights copied in (float64, autograd): outputs, losses and every gradient, with
    return_sequences both ways, stateful calls, ignore_index and gradient clipping (skipped without PyTorch);
  - central finite differences of `evaluate` on tiny shapes (always run);
  - the two backends against each other, and one thread against several.
"""
import io
import pickle

import numpy as np
import pytest

import fastnn

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
CELLS = {"simple": fastnn.SimpleRNN, "lstm": fastnn.LSTM, "gru": fastnn.GRU}
TORCH_CELLS = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}
RTOL = 1e-8


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(initial=0.0), 1e-12)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.abs(a - b).max(initial=0.0) <= rtol * scale, np.abs(a - b).max() / scale


def token_net(cell, return_sequences, backend, V=7, D=5, U=6, C=4, ignore_index=None, stateful=False, seed=1):
    layers = [fastnn.Embedding(V, D), CELLS[cell](U, return_sequences=return_sequences, stateful=stateful),
              fastnn.Dense(C)]
    return fastnn.Network(layers, input_shape=(None,), loss="cross_entropy", dtype="float64", seed=seed,
                          backend=backend, ignore_index=ignore_index)


class TorchTwin:
    """The same network in torch.nn, weights copied from a fastnn network of Embedding? -> recurrent -> Dense."""

    def __init__(self, net):
        torch.set_default_dtype(torch.float64)
        layers = net.layers
        self.embedding = None
        if isinstance(layers[0], fastnn.Embedding):
            self.embedding = torch.nn.Embedding(*layers[0].W.shape)
            self.embedding.weight.data = torch.tensor(layers[0].W.copy())
            layers = layers[1:]
        rnn, dense = layers
        self.return_sequences = rnn.return_sequences
        kind = [k for k, c in CELLS.items() if isinstance(rnn, c)][0]
        extra = {"nonlinearity": rnn.activation} if kind == "simple" else {}
        self.rnn = getattr(torch.nn, TORCH_CELLS[kind])(rnn.features, rnn.units, batch_first=True, **extra)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.rnn, name + "_l0").data = torch.tensor(getattr(rnn, name).copy())
        self.linear = torch.nn.Linear(*dense.W.shape)
        self.linear.weight.data = torch.tensor(dense.W.T.copy())
        self.linear.bias.data = torch.tensor(dense.b.copy())

    def parameters(self):
        mods = ([self.embedding] if self.embedding else []) + [self.rnn, self.linear]
        return [p for m in mods for p in m.parameters()]

    def gradients(self):
        """In fastnn's order: embedding W; weight_ih, weight_hh, bias_ih, bias_hh; Dense W (d_in, d_out), b."""
        g = [] if self.embedding is None else [self.embedding.weight.grad]
        g += [getattr(self.rnn, n + "_l0").grad for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        g += [self.linear.weight.grad.T, self.linear.bias.grad]
        return [x.numpy() for x in g]

    def logits(self, X, hx=None):
        x = torch.tensor(X)
        if self.embedding is not None:
            x = self.embedding(x)
        out, h = self.rnn(x, hx)
        return self.linear(out if self.return_sequences else out[:, -1]), h


def flat_gradients(grads):
    return [g for layer in grads for g in layer]


# ------------------------------------------------------------------------------------------------ PyTorch
@needs_torch
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_token_network_matches_torch(backend, cell, return_sequences):
    rng = np.random.default_rng(3)
    net = token_net(cell, return_sequences, backend, ignore_index=-1)
    twin = TorchTwin(net)
    n, T, C = 3, 6, 4
    X = rng.integers(0, 7, size=(n, T))
    y = rng.integers(0, C, size=(n, T) if return_sequences else (n,))
    if return_sequences:
        y[0, 2] = y[2, 0] = -1  # padding
    logits, _ = twin.logits(X)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, C), torch.tensor(y).reshape(-1), ignore_index=-1)
    loss.backward()
    value, grads = net.loss_and_gradients(X, y)
    assert value == pytest.approx(loss.item(), rel=RTOL)
    assert net.evaluate(X, y) == pytest.approx(loss.item(), rel=RTOL)
    for mine, theirs in zip(flat_gradients(grads), twin.gradients()):
        close(mine, theirs)
    close(net.predict(X), torch.softmax(logits, -1).detach().numpy())


@needs_torch
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_features_network_mse_matches_torch(backend, cell):
    """Real-valued sequences (n, T, F) straight into the recurrent layer, a linear output, mse."""
    rng = np.random.default_rng(4)
    layers = [CELLS[cell](5, return_sequences=True), fastnn.Dense(2)]
    if cell == "simple":
        layers[0] = fastnn.SimpleRNN(5, activation="relu", return_sequences=True)
    net = fastnn.Network(layers, input_shape=(4, 3), loss="mse", dtype="float64", seed=2, backend=backend)
    twin = TorchTwin(net)
    X, y = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4, 2))
    out, _ = twin.logits(X)
    loss = torch.mean((out - torch.tensor(y)) ** 2)
    loss.backward()
    value, grads = net.loss_and_gradients(X, y)
    assert value == pytest.approx(loss.item(), rel=RTOL)
    for mine, theirs in zip(flat_gradients(grads), twin.gradients()):
        close(mine, theirs)
    close(net.predict(X), out.detach().numpy())


@needs_torch
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_stateful_calls_continue_the_sequence(backend, cell):
    """A stateful network fed a sequence in pieces gives what torch gives on the whole, and its gradients of
    each piece are torch's with the carried state as a constant (truncated BPTT)."""
    rng = np.random.default_rng(5)
    net = token_net(cell, True, backend, stateful=True)
    twin = TorchTwin(net)
    X = rng.integers(0, 7, size=(2, 9))
    whole, _ = twin.logits(X)
    pieces = [net.predict(X[:, :4]), net.predict(X[:, 4:5]), net.predict(X[:, 5:])]
    close(np.concatenate(pieces, axis=1), torch.softmax(whole, -1).detach().numpy())
    net.reset_states()
    close(net.predict(X[:, :4]), torch.softmax(whole[:, :4], -1).detach().numpy())
    # gradients of the second piece, from the state after the first
    _, h = twin.logits(X[:, :4])
    h = tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()
    y = rng.integers(0, 4, size=(2, 5))
    logits, _ = twin.logits(X[:, 4:], h)
    for p in twin.parameters():
        p.grad = None
    torch.nn.functional.cross_entropy(logits.reshape(-1, 4), torch.tensor(y).reshape(-1)).backward()
    _, grads = net.loss_and_gradients(X[:, 4:], y)
    for mine, theirs in zip(flat_gradients(grads), twin.gradients()):
        close(mine, theirs)


@needs_torch
def test_clip_norm_matches_torch_clip_grad_norm(backend):
    rng = np.random.default_rng(6)
    net = token_net("lstm", True, backend)
    twin = TorchTwin(net)
    X, y = rng.integers(0, 7, size=(4, 5)), rng.integers(0, 4, size=(4, 5))
    opt = torch.optim.SGD(twin.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        logits, _ = twin.logits(X)
        torch.nn.functional.cross_entropy(logits.reshape(-1, 4), torch.tensor(y).reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.05)
        opt.step()
    history = net.fit(X, y, epochs=3, batch_size=4, learning_rate=0.5, clip_norm=0.05, shuffle=False)
    assert history["clipped"] == [1, 1, 1]
    close(net.layers[1].weight_hh, twin.rnn.weight_hh_l0.detach().numpy(), 1e-7)
    close(net.layers[0].W, twin.embedding.weight.detach().numpy(), 1e-7)


@needs_torch
def test_encoder_decoder_with_repeat_vector_matches_torch(backend):
    rng = np.random.default_rng(7)
    net = fastnn.Network([fastnn.Embedding(6, 4), fastnn.LSTM(5), fastnn.RepeatVector(3),
                          fastnn.GRU(4, return_sequences=True), fastnn.Dense(6)], input_shape=(None,),
                         loss="cross_entropy", dtype="float64", seed=3, backend=backend)
    emb, enc, _, dec, dense = net.layers
    torch.set_default_dtype(torch.float64)
    t_emb = torch.nn.Embedding(6, 4)
    t_emb.weight.data = torch.tensor(emb.W.copy())
    t_enc, t_dec = torch.nn.LSTM(4, 5, batch_first=True), torch.nn.GRU(5, 4, batch_first=True)
    for mine, theirs in ((enc, t_enc), (dec, t_dec)):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(theirs, name + "_l0").data = torch.tensor(getattr(mine, name).copy())
    t_lin = torch.nn.Linear(4, 6)
    t_lin.weight.data, t_lin.bias.data = torch.tensor(dense.W.T.copy()), torch.tensor(dense.b.copy())
    X, y = rng.integers(0, 6, size=(3, 7)), rng.integers(0, 6, size=(3, 3))
    code = t_enc(t_emb(torch.tensor(X)))[0][:, -1]
    out = t_lin(t_dec(code[:, None, :].repeat(1, 3, 1))[0])
    loss = torch.nn.functional.cross_entropy(out.reshape(-1, 6), torch.tensor(y).reshape(-1))
    loss.backward()
    value, grads = net.loss_and_gradients(X, y)
    assert value == pytest.approx(loss.item(), rel=RTOL)
    theirs = [t_emb.weight.grad] + [getattr(t_enc, n + "_l0").grad for n in ("weight_ih", "weight_hh", "bias_ih",
                                                                          "bias_hh")]
    theirs += [getattr(t_dec, n + "_l0").grad for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    theirs += [t_lin.weight.grad.T, t_lin.bias.grad]
    for mine, t in zip(flat_gradients(grads), theirs):
        close(mine, t.numpy())


# ------------------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradients_match_finite_differences(backend, cell):
    rng = np.random.default_rng(8)
    net = fastnn.Network([fastnn.Embedding(5, 3), CELLS[cell](4, return_sequences=True), fastnn.GRU(3),
                          fastnn.Dense(3)], input_shape=(4,), loss="cross_entropy", dtype="float64", seed=4,
                         backend=backend)
    X, y = rng.integers(0, 5, size=(2, 4)), rng.integers(0, 3, size=2)
    grads = flat_gradients(net.gradients(X, y))
    views = [a for layer in net._param_layers for a in layer.parameter_arrays()]
    h = 1e-6
    for view, grad in zip(views, grads):
        flat = view.reshape(-1)
        for k in range(0, flat.size, max(1, flat.size // 5)):
            keep = flat[k]
            flat[k] = keep + h
            up = net.evaluate(X, y)
            flat[k] = keep - h
            down = net.evaluate(X, y)
            flat[k] = keep
            assert grad.reshape(-1)[k] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


# ------------------------------------------------------------------------------- backends and threads
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_train_alike(c_kernels, cell, dtype):
    rng = np.random.default_rng(9)
    X, y = rng.integers(0, 7, size=(20, 6)), rng.integers(0, 4, size=(20, 6))
    nets = []
    for backend in ("c", "python"):
        net = fastnn.Network([fastnn.Embedding(7, 5), CELLS[cell](6, return_sequences=True), fastnn.Dense(4)],
                             input_shape=(None,), loss="cross_entropy", dtype=dtype, seed=5, backend=backend)
        net.fit(X, y, epochs=2, batch_size=7, optimizer="adam", learning_rate=0.01, clip_norm=1.0)
        nets.append(net)
    tol = 1e-4 if dtype == "float32" else 1e-10
    close(nets[0]._params, nets[1]._params, tol)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_results_do_not_depend_on_threads(c_kernels, cell):
    rng = np.random.default_rng(10)
    X, y = rng.integers(0, 30, size=(64, 12)), rng.integers(0, 30, size=(64, 12))
    results = []
    for threads in (1, 2, 3):
        net = fastnn.Network([fastnn.Embedding(30, 32), CELLS[cell](96, return_sequences=True), fastnn.Dense(30)],
                             input_shape=(None,), loss="cross_entropy", seed=6, backend="c")
        net.n_threads = threads
        net.fit(X, y, epochs=1, batch_size=32, optimizer="adam", learning_rate=0.01)
        results.append((net._params.copy(), net.predict(X)))
    for params, pred in results[1:]:
        assert np.array_equal(params, results[0][0])
        assert np.array_equal(pred, results[0][1])


# ------------------------------------------------------------------------------------------- behaviour
def test_variable_length_and_one_sequence(backend):
    net = token_net("gru", True, backend)
    rng = np.random.default_rng(11)
    X = rng.integers(0, 7, size=(3, 8))
    full = net.predict(X)
    assert full.shape == (3, 8, 4)
    assert net.predict(X[:, :3]).shape == (3, 3, 4)
    close(net.predict(X[1]), full[1], 1e-12)
    close(net.predict(X[:, :3]), full[:, :3], 1e-12)  # causal: a prefix gives the same steps


def test_generation_step_by_step_equals_the_whole_sequence(backend):
    rng = np.random.default_rng(12)
    net = token_net("lstm", True, backend, stateful=True)
    X = rng.integers(0, 7, size=(1, 10))
    steps = [net.predict(X[:, t:t + 1])[:, 0] for t in range(10)]
    net.reset_states()
    close(np.stack(steps, axis=1), net.predict(X), 1e-12)


def test_adding_problem_is_learned_by_the_lstm(c_kernels):
    """Hochreiter & Schmidhuber's adding problem, T = 50: the sum of the two marked numbers. Guessing 1 gives
    an mse of about 0.167; the LSTM must get far below it. (C backend only: too slow on the NumPy one, whose
    kernels the C ones are tested against.)"""
    rng = np.random.default_rng(13)

    def batch(n):
        values = rng.uniform(0, 1, size=(n, 50))
        marks = np.zeros((n, 50))
        first, second = rng.integers(0, 25, size=n), rng.integers(25, 50, size=n)
        marks[np.arange(n), first] = marks[np.arange(n), second] = 1
        return np.stack([values, marks], axis=2), (values * marks).sum(axis=1, keepdims=True)

    X, y = batch(4000)
    X_test, y_test = batch(500)
    net = fastnn.Network([fastnn.LSTM(32), fastnn.Dense(1)], input_shape=(50, 2), loss="mse", seed=0)
    net.fit(X, y, epochs=15, batch_size=32, optimizer="adam", learning_rate=0.005, clip_norm=1.0)
    assert net.evaluate(X_test, y_test) < 0.01


def test_ignore_index_rows_count_for_nothing(backend):
    rng = np.random.default_rng(14)
    net = token_net("simple", True, backend, ignore_index=0)
    X, y = rng.integers(0, 7, size=(4, 5)), rng.integers(1, 4, size=(4, 5))
    padded = y.copy()
    padded[:, 3:] = 0
    # the padded loss is the loss over the first three steps only, and the mean is over those tokens
    short = token_net("simple", True, backend, ignore_index=None)
    short._params[...] = net._params
    assert net.evaluate(X, padded) == pytest.approx(short.evaluate(X[:, :3], y[:, :3]), rel=1e-12)


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, error", [
    (np.array([[1, 2, 7]]), ValueError),         # id >= vocab
    (np.array([[1, -1, 2]]), ValueError),        # negative
    (np.array([[1.5, 2, 3]]), ValueError),       # not an integer
    (np.array([[1, 2, np.nan]]), ValueError),
    (np.zeros((2, 0), dtype=int), ValueError),   # T = 0
    (np.zeros((2, 3, 1), dtype=int), ValueError),  # wrong rank
    ([[1, 2, 3], [1, 2]], ValueError),           # ragged
    (np.array([[True, False]]), TypeError),
])
def test_bad_sequences_raise_and_leave_the_network_unchanged(backend, bad, error):
    net = token_net("lstm", True, backend, stateful=True)
    net.predict(np.array([[1, 2, 3]]))
    before, state = net._params.copy(), net.layers[1].states
    with pytest.raises(error):
        net.fit(bad, np.zeros((1, 3), dtype=int), shuffle=False)
    with pytest.raises(error):
        net.predict(bad)
    assert np.array_equal(net._params, before)
    for a, b in zip(net.layers[1].states, state):
        assert np.array_equal(a, b)


def test_bad_targets_and_options(backend):
    net = token_net("gru", True, backend)
    X = np.array([[1, 2, 3]])
    with pytest.raises(ValueError, match="sequence"):
        net.fit(X, np.array([1]))
    with pytest.raises(ValueError):
        net.fit(X, np.array([[1, 2, 9]]))  # label out of range
    with pytest.raises(ValueError, match="sample_weight"):
        net.fit(X, np.array([[1, 2, 3]]), sample_weight=[1.0])
    with pytest.raises(ValueError, match="clip_norm"):
        net.fit(X, np.array([[1, 2, 3]]), clip_norm=0)
    with pytest.raises(ValueError, match="shuffle"):
        token_net("gru", True, backend, stateful=True).fit(X, np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match="first layer"):
        fastnn.Network([fastnn.Dense(3), fastnn.Embedding(4, 2), fastnn.Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match="ignore_index"):
        fastnn.Network([4, 2], loss="mse", ignore_index=0)


# ---------------------------------------------------------------------------------------- persistence
def test_model_file_and_pickle_carry_recurrent_layers(backend, tmp_path):
    rng = np.random.default_rng(15)
    net = fastnn.Network([fastnn.Embedding(9, 4), fastnn.LSTM(5, return_sequences=True),
                          fastnn.SimpleRNN(3, activation="relu"), fastnn.RepeatVector(2),
                          fastnn.GRU(4, return_sequences=True), fastnn.Dense(9)], input_shape=(None,),
                         loss="cross_entropy", seed=7, backend=backend, ignore_index=0)
    X = rng.integers(0, 9, size=(3, 6))
    expected = net.predict(X)
    net.save(tmp_path / "rnn.fnn")
    for copy in (fastnn.load(tmp_path / "rnn.fnn", backend=backend), pickle.loads(pickle.dumps(net))):
        assert copy.get_config() == net.get_config()
        assert np.array_equal(copy.predict(X), expected)
    assert "LSTM(5, return_sequences=True)" in net.summary(print_fn=None)


def test_set_weights_copies_into_a_stateful_twin_and_checks_shapes(backend):
    rng = np.random.default_rng(16)
    net = token_net("gru", True, backend)
    twin = token_net("gru", True, backend, stateful=True, seed=99)
    twin.set_weights(net.get_weights())
    X = rng.integers(0, 7, size=(2, 5))
    close(twin.predict(X), net.predict(X), 1e-12)
    before = twin.get_weights()
    bad = net.get_weights()
    bad[-1] = bad[-1][:-1]
    with pytest.raises(ValueError, match="shape"):
        twin.set_weights(bad)
    bad = net.get_weights()
    bad[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        twin.set_weights(bad)
    for a, b in zip(twin.get_weights(), before):
        assert np.array_equal(a, b)


def test_dense_on_a_sequence_acts_on_every_step(backend):
    """A Dense on (steps, features) is the same Dense applied to each step: checked against NumPy by hand,
    softmax per step included, and mse over all elements."""
    rng = np.random.default_rng(17)
    net = fastnn.Network([fastnn.Dense(3, activation="tanh"), fastnn.Dense(4, activation="softmax")],
                         input_shape=(5, 2), loss="mse", dtype="float64", seed=8, backend=backend)
    X, y = rng.normal(size=(3, 5, 2)), rng.uniform(size=(3, 5, 4))
    (W1, W2), (b1, b2) = net.weights, net.biases
    z = np.tanh(X @ W1 + b1) @ W2 + b2
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    close(net.predict(X), p, 1e-12)
    assert net.evaluate(X, y) == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)
