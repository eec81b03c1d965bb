"""fastnn.from_state_dict and fastnn.from_sklearn (fastnn/convert.py), checked against the libraries the weights
come from: a PyTorch module's own forward pass and a scikit-learn estimator's own predict / predict_proba (each
test skips when its library is missing). Nothing here compares fastnn with values taken from its own output."""
import io

import numpy as np
import pytest

import fastnn

torch = pytest.importorskip("torch")
nn = torch.nn

TOL = {"float32": 1e-6, "float64": 1e-12}


@pytest.fixture(autouse=True)
def _torch_setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small modules; leave the cores to fastnn and other jobs
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def torch_module(module, dtype):
    module = module.double() if dtype == "float64" else module.float()
    return module.eval()


def torch_out(module, X):
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(X))).numpy()


def assert_close(ours, theirs, dtype):
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_allclose(ours, theirs, rtol=TOL[dtype], atol=TOL[dtype])


def randomize(module, scale=0.5):
    """Non-zero random values in every parameter (PyTorch's own init leaves some at zero, e.g. nothing here, but
    a bias left at 0 would hide a bias that was dropped)."""
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-scale, scale)
    return module


# --------------------------------------------------------------------------------------------- dense
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_mlp(backend, dtype):
    module = torch_module(randomize(nn.Sequential(
        nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 7), nn.Tanh(), nn.Linear(7, 5), nn.Sigmoid(), nn.Linear(5, 3))),
        dtype)
    layers = [fastnn.Dense(9, "relu"), fastnn.Dense(7, "tanh"), fastnn.Dense(5, "sigmoid"), fastnn.Dense(3)]
    net = fastnn.from_state_dict(layers, module.state_dict(), backend=backend)
    assert net.dtype == np.dtype(dtype) and net.backend == backend and net.input_shape == (6,)
    X = np.random.default_rng(0).normal(size=(11, 6)).astype(dtype)
    assert_close(net.predict(X), torch_out(module, X), dtype)
    assert_close(net.predict(X[0]), torch_out(module, X[:1])[0], dtype)  # one sample


def test_cross_entropy_predicts_the_softmax_of_the_modules_logits(backend):
    module = torch_module(randomize(nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(), nn.Linear(8, 3))), "float64")
    net = fastnn.from_state_dict([fastnn.Dense(8, "leaky_relu"), fastnn.Dense(3)], module.state_dict(),
                                 loss="cross_entropy", backend=backend)
    X = np.random.default_rng(1).normal(size=(9, 4))
    expected = torch.softmax(torch.from_numpy(torch_out(module, X)), dim=1).numpy()
    assert_close(net.predict(X), expected, "float64")
    y = np.arange(9) % 3
    loss = nn.functional.cross_entropy(torch.from_numpy(torch_out(module, X)), torch.from_numpy(y)).item()
    np.testing.assert_allclose(net.evaluate(X, y), loss, rtol=1e-12)


def test_bias_false_and_numpy_arrays(backend):
    module = torch_module(randomize(nn.Sequential(nn.Linear(5, 4, bias=False), nn.Tanh(), nn.Linear(4, 2))),
                          "float64")
    arrays = {k: v.numpy().copy() for k, v in module.state_dict().items()}  # a plain dict of NumPy arrays
    net = fastnn.from_state_dict([fastnn.Dense(4, "tanh"), fastnn.Dense(2)], arrays, backend=backend)
    np.testing.assert_array_equal(net.biases[0], 0)
    X = np.random.default_rng(2).normal(size=(6, 5))
    assert_close(net.predict(X), torch_out(module, X), "float64")


def test_dtype_follows_the_arrays_unless_given():
    module = randomize(nn.Sequential(nn.Linear(3, 2)))
    assert fastnn.from_state_dict([fastnn.Dense(2)], module.state_dict()).dtype == np.float32
    assert fastnn.from_state_dict([fastnn.Dense(2)], module.double().state_dict()).dtype == np.float64
    net = fastnn.from_state_dict([fastnn.Dense(2)], module.double().state_dict(), dtype="float32")
    assert net.dtype == np.float32
    X = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    assert_close(net.predict(X), torch_out(module.float(), X), "float32")


def test_a_network_as_the_architecture(backend):
    template = fastnn.Network([fastnn.Dense(6, "relu"), fastnn.Dense(4)], input_shape=(3,), loss="cross_entropy",
                              dtype="float64", backend=backend, seed=5)
    before = template.get_weights()
    module = torch_module(randomize(nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 4))), "float64")
    net = fastnn.Network.from_state_dict(template, module.state_dict())
    assert net is not template and net.loss == "cross_entropy" and net.backend == backend
    X = np.random.default_rng(4).normal(size=(5, 3))
    expected = torch.softmax(torch.from_numpy(torch_out(module, X)), dim=1).numpy()
    assert_close(net.predict(X), expected, "float64")
    for a, b in zip(template.get_weights(), before):  # the template is untouched
        np.testing.assert_array_equal(a, b)


def test_torch_save_and_load_weights_only(tmp_path, backend):
    module = torch_module(randomize(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))), "float32")
    path = tmp_path / "model.pt"
    torch.save(module.state_dict(), path)
    state = torch.load(path, weights_only=True)
    net = fastnn.from_state_dict([fastnn.Dense(5, "relu"), fastnn.Dense(2)], state, backend=backend)
    X = np.random.default_rng(5).normal(size=(7, 4)).astype(np.float32)
    assert_close(net.predict(X), torch_out(module, X), "float32")
    buffer = io.BytesIO()  # and from bytes, as a download would give them
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    again = fastnn.from_state_dict([fastnn.Dense(5, "relu"), fastnn.Dense(2)], torch.load(buffer, weights_only=True))
    assert_close(again.predict(X), torch_out(module, X), "float32")


# ---------------------------------------------------------------------------------------- convolution
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cnn(backend, dtype):
    module = torch_module(randomize(nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, stride=2, bias=False), nn.Tanh(), nn.AvgPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(5 * 2 * 2, 8), nn.ReLU(), nn.Linear(8, 3)), scale=0.3), dtype)
    layers = [fastnn.Conv2D(4, 3, padding=1, activation="relu"), fastnn.MaxPool2D(2),
              fastnn.Conv2D(5, 3, stride=2, activation="tanh"), fastnn.AvgPool2D(2, stride=1), fastnn.Flatten(),
              fastnn.Dense(8, "relu"), fastnn.Dense(3)]
    net = fastnn.from_state_dict(layers, module.state_dict(), input_shape=(2, 14, 14), backend=backend)
    np.testing.assert_array_equal(net.biases[1], 0)  # bias=False
    X = np.random.default_rng(6).normal(size=(5, 2, 14, 14)).astype(dtype)
    assert_close(net.predict(X), torch_out(module, X), dtype)


def test_a_module_itself_and_strict_false_with_missing_layers(backend):
    module = torch_module(randomize(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))), "float64")
    net = fastnn.from_state_dict([fastnn.Dense(4, "relu"), fastnn.Dense(2)], module, backend=backend)
    X = np.random.default_rng(9).normal(size=(5, 3))
    assert_close(net.predict(X), torch_out(module, X), "float64")
    first = {k: v for k, v in module.state_dict().items() if k.startswith("0.")}
    with pytest.raises(ValueError, match="missing keys"):
        fastnn.from_state_dict([fastnn.Dense(4, "relu"), fastnn.Dense(2)], first)
    partial = fastnn.from_state_dict([fastnn.Dense(4, "relu"), fastnn.Dense(2)], first, strict=False)
    np.testing.assert_array_equal(partial.weights[0], module[0].weight.detach().numpy().T)
    np.testing.assert_array_equal(partial.biases[0], module[0].bias.detach().numpy())


def test_cnn_needs_input_shape():
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 2))
    with pytest.raises(ValueError, match="input_shape"):
        fastnn.from_state_dict([fastnn.Conv2D(2, 3), fastnn.Flatten(), fastnn.Dense(2)], module.state_dict())


# ------------------------------------------------------------------------------------------ recurrent
class TokenModel(nn.Module):
    """Embedding, a recurrent module (its last step's output), Linear: as the fastnn layers below compute."""

    def __init__(self, cell, vocab=13, dim=5, units=7, classes=4, **kwargs):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.rnn = cell(dim, units, batch_first=True, **kwargs)
        self.head = nn.Linear(units, classes)

    def forward(self, x):
        out, _ = self.rnn(self.embedding(x))
        return self.head(out[:, -1])


RECURRENT = {
    "rnn-tanh": (nn.RNN, {}, lambda u, **k: fastnn.SimpleRNN(u, **k)),
    "rnn-relu": (nn.RNN, {"nonlinearity": "relu"}, lambda u, **k: fastnn.SimpleRNN(u, activation="relu", **k)),
    "lstm": (nn.LSTM, {}, lambda u, **k: fastnn.LSTM(u, **k)),
    "gru": (nn.GRU, {}, lambda u, **k: fastnn.GRU(u, **k)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", sorted(RECURRENT))
def test_embedding_recurrent_linear(backend, dtype, cell):
    torch_cell, kwargs, ours = RECURRENT[cell]
    module = torch_module(randomize(TokenModel(torch_cell, **kwargs)), dtype)
    layers = [fastnn.Embedding(13, 5), ours(7), fastnn.Dense(4)]
    net = fastnn.from_state_dict(layers, module.state_dict(), backend=backend)
    assert net.input_shape == (None,)
    for steps in (1, 9):  # any length
        X = np.random.default_rng(steps).integers(0, 13, size=(6, steps))
        assert_close(net.predict(X), torch_out(module, X), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stacked_recurrent_layers(backend, dtype, cell):
    torch_cell, _, ours = RECURRENT[cell]
    module = torch_module(randomize(TokenModel(torch_cell, num_layers=3)), dtype)
    layers = [fastnn.Embedding(13, 5), ours(7, return_sequences=True), ours(7, return_sequences=True), ours(7),
              fastnn.Dense(4)]
    net = fastnn.from_state_dict(layers, module.state_dict(), backend=backend)
    X = np.random.default_rng(7).integers(0, 13, size=(5, 8))
    assert_close(net.predict(X), torch_out(module, X), dtype)


class SequenceModel(nn.Module):
    """A GRU on features (no embedding), with bias=False, and a Linear on every step."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 6, batch_first=True, bias=False)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_recurrent_on_features_without_bias_and_a_sequence_output(backend):
    module = torch_module(randomize(SequenceModel()), "float64")
    net = fastnn.from_state_dict([fastnn.GRU(6, return_sequences=True), fastnn.Dense(2)], module.state_dict(),
                                 backend=backend)
    assert net.input_shape == (None, 3)
    X = np.random.default_rng(8).normal(size=(4, 5, 3))
    assert_close(net.predict(X), torch_out(module, X), "float64")


# --------------------------------------------------------------------------------------------- refusals
def refused(layers, state, match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        fastnn.from_state_dict(layers, state, **kwargs)
    return str(info.value)


def test_batchnorm_keys_are_named():
    module = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    text = refused([fastnn.Dense(5, "relu"), fastnn.Dense(2)], module.state_dict(), "unexpected keys")
    assert "'1.running_mean'" in text and "'1.num_batches_tracked'" in text and "strict=False" in text
    # strict=False skips them (the Linear weights still land where they belong)
    net = fastnn.from_state_dict([fastnn.Dense(5, "relu"), fastnn.Dense(2)], module.state_dict(), strict=False)
    np.testing.assert_array_equal(net.weights[1], module[3].weight.detach().numpy().T)


def test_shape_mismatch_names_the_key_and_both_shapes():
    module = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    text = refused([fastnn.Dense(6, "relu"), fastnn.Dense(2)], module.state_dict(), r"'0\.weight'",
                   input_shape=(4,))
    assert "(5, 4)" in text and "(6, 4)" in text
    text = refused([fastnn.Dense(5, "relu"), fastnn.Dense(3)], module.state_dict(), r"'2\.weight'")
    assert "(2, 5)" in text and "(3, 5)" in text
    lstm = TokenModel(nn.LSTM)
    text = refused([fastnn.Embedding(13, 5), fastnn.GRU(7), fastnn.Dense(4)], lstm.state_dict(),
                   r"'rnn\.weight_ih_l0'")
    assert "(28, 5)" in text and "(21, 5)" in text and "LSTM" in text


def test_missing_and_unexpected_modules():
    module = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    text = refused([fastnn.Dense(5, "relu"), fastnn.Dense(2, "relu"), fastnn.Dense(2)], module.state_dict(),
                   "missing keys")
    assert "layer 2" in text
    text = refused([fastnn.Dense(5)], module.state_dict(), "unexpected keys")
    assert "'2.weight'" in text
    refused([fastnn.Dense(5, "relu"), fastnn.Dense(2)], {**module.state_dict(), "0.weight_g": torch.ones(1)},
            "unexpected keys", input_shape=(4,))
    stacked = TokenModel(nn.LSTM, num_layers=2)
    refused([fastnn.Embedding(13, 5), fastnn.LSTM(7), fastnn.Dense(4)], stacked.state_dict(),
            r"stacks 2 recurrent layers")
    text = refused([fastnn.Conv2D(5, 1), fastnn.Flatten(), fastnn.Dense(2)], module.state_dict(), "order",
                   input_shape=(4, 1, 1))
    assert "'0.weight'" in text


@pytest.mark.parametrize("kwargs, match", [({"bidirectional": True}, "bidirectional"),
                                           ({"proj_size": 3}, "proj_size")])
def test_recurrent_variants_fastnn_lacks(kwargs, match):
    module = TokenModel(nn.LSTM, **kwargs)
    refused([fastnn.Embedding(13, 5), fastnn.LSTM(7), fastnn.Dense(4)], module.state_dict(), match)


def test_bad_values_are_refused_and_named():
    state = {"0.weight": np.full((2, 3), np.nan), "0.bias": np.zeros(2)}
    refused([fastnn.Dense(2)], state, r"'0\.weight'.*NaN")
    with pytest.raises(TypeError, match="mapping"):
        fastnn.from_state_dict([fastnn.Dense(2)], [np.zeros((2, 3))])
    with pytest.raises(TypeError, match="real numbers"):
        fastnn.from_state_dict([fastnn.Dense(2)], {"0.weight": np.zeros((2, 3), complex)})
    with pytest.raises(TypeError, match="list of fastnn layers"):
        fastnn.from_state_dict(3, {"0.weight": np.zeros((2, 3))})
