"""Convolutional networks (Conv2D, MaxPool2D, AvgPool2D, Flatten, Dense, Dropout) on both backends, checked
against two independent oracles in float64:

  - "torch": the same network rebuilt as a torch.nn.Sequential with the same weights, differentiated by autograd
    (skipped when PyTorch is not installed);
  - "loops": the plain-loop references of tests/layer_references.py chained by hand with a hand-written backward
    pass (always runs; test_loop_references_agree_with_torch ties them to PyTorch where it is installed).

Plus central finite differences of `evaluate` and the two backends against each other. Nothing here compares
fastnn with values taken from its own output.

Everything fastnn-specific about how a layer object is read lives in `layer_specs`.
"""
import itertools
import warnings
from collections import namedtuple

import numpy as np
import pytest

import fastnn
from fastnn import _backend

import layer_references as R

try:
    import torch
except ImportError:  # the torch oracle skips; the loop oracle, finite differences and backend tests still run
    torch = None

RTOL, ATOL = 1e-8, 1e-12
OUTPUT_FUNCTION = {"mse": None, "cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
LEAKY_SLOPE = 0.01  # fastnn's leaky_relu slope, torch.nn.LeakyReLU's default


# ----------------------------------------------------------------------------------- reading a fastnn network
def layer_specs(net):
    """The network as a list of plain dicts, one per layer, in order: the one place that reads fastnn's layer
    objects (adapt attribute names here). Parameters come from the public `net.weights` / `net.biases`, copied.

    Kinds: conv (W (F, C, kh, kw), b, stride pair, padding as the user gave it, activation), dense (W (d_in,
    d_out), b, activation), maxpool / avgpool (pool pair, stride pair), flatten, dropout (rate). The output Dense
    of cross_entropy / binary_cross_entropy gets activation "linear" (its logits feed the loss; the twins apply
    OUTPUT_FUNCTION[loss] in predict)."""
    specs, k = [], 0
    for layer in net.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "Dense"):
            W, b = np.array(net.weights[k], dtype=np.float64), np.array(net.biases[k], dtype=np.float64)
            k += 1
            spec = {"W": W, "b": b, "activation": layer.activation}
            if kind == "Conv2D":
                assert W.shape[0] == layer.filters and W.shape[2:] == R.pair(layer.kernel_size), (layer, W.shape)
                padding = layer.padding if isinstance(layer.padding, (str, int)) else tuple(layer.padding)
                spec.update(kind="conv", stride=R.pair(layer.stride), padding=padding)
            else:
                assert W.shape[1] == layer.units, (layer, W.shape)
                spec.update(kind="dense")
        elif kind in ("MaxPool2D", "AvgPool2D"):
            stride = layer.pool_size if layer.stride is None else layer.stride
            spec = {"kind": kind[:3].lower() + "pool", "pool": R.pair(layer.pool_size), "stride": R.pair(stride)}
        elif kind == "Flatten":
            spec = {"kind": "flatten"}
        elif kind == "Dropout":
            spec = {"kind": "dropout", "rate": layer.rate}
        else:
            raise AssertionError(f"no twin for layer {layer!r}")
        specs.append(spec)
    assert k == len(net.weights) == len(net.biases)
    last, out_fn = specs[-1], OUTPUT_FUNCTION[net.loss]
    assert last["kind"] == "dense", "the output layer must be Dense"
    if out_fn is not None:
        assert last["activation"] in ("linear", out_fn), last["activation"]
        last["activation"] = "linear"
    return specs


def as_nchw(X):
    X = np.asarray(X, dtype=np.float64)
    return X[:, None] if X.ndim == 3 else X


def fastnn_layout_grads(specs, grads):
    """Gradients as (dW, db) per parameterised layer from a list aligned with specs (None for the others)."""
    return [g for spec, g in zip(specs, grads) if spec["kind"] in ("conv", "dense")]


# --------------------------------------------------------------------------------------------- loop oracle
def _act(z, name):
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    raise AssertionError(name)


def _act_grad(a, name):
    """act'(z) written from a = act(z)."""
    return {"linear": lambda: np.ones_like(a), "relu": lambda: (a > 0).astype(np.float64),
            "leaky_relu": lambda: np.where(a > 0, 1.0, LEAKY_SLOPE), "tanh": lambda: 1.0 - a * a,
            "sigmoid": lambda: a * (1.0 - a)}[name]()


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class LoopTwin:
    """Forward and backward through tests/layer_references.py, with this file's losses, in float64."""

    def __init__(self, net):
        self.loss_name = net.loss
        self.specs = layer_specs(net)

    def _forward(self, X, masks):
        masks = list(masks or [])
        a, cache = as_nchw(X), []
        for spec in self.specs:
            kind, a_in, mask = spec["kind"], a, None
            if kind == "conv":
                a = _act(R.conv2d_forward(a, spec["W"], spec["b"], spec["stride"], spec["padding"]), spec["activation"])
            elif kind == "dense":
                a = _act(a @ spec["W"] + spec["b"], spec["activation"])
            elif kind == "maxpool":
                a = R.maxpool2d_forward(a, spec["pool"], spec["stride"])
            elif kind == "avgpool":
                a = R.avgpool2d_forward(a, spec["pool"], spec["stride"])
            elif kind == "flatten":
                a = a.reshape(a.shape[0], -1)  # C, H, W order: torch.flatten(x, 1)
            elif kind == "dropout":
                mask = masks.pop(0) if masks else None
                a = a if mask is None else a * mask
            cache.append((a_in, a, mask))
        return a, cache

    def predict(self, X):
        out = self._forward(X, None)[0]
        fn = OUTPUT_FUNCTION[self.loss_name]
        return out if fn is None else _softmax(out) if fn == "softmax" else _act(out, "sigmoid")

    def loss_and_gradients(self, X, y, masks=None):
        """(mean loss, [(dW, db) per parameterised layer in fastnn's layout]); masks: one array per Dropout
        layer (multipliers), or None for a pass without dropout."""
        out, cache = self._forward(X, masks)
        n = out.shape[0]
        if self.loss_name == "mse":
            T = np.asarray(y, dtype=np.float64).reshape(out.shape)
            loss = np.mean((out - T) ** 2)
            g = 2.0 * (out - T) / out.size
        elif self.loss_name == "cross_entropy":
            labels = np.asarray(y)
            m = out.max(axis=1, keepdims=True)
            lse = (m + np.log(np.exp(out - m).sum(axis=1, keepdims=True)))[:, 0]
            loss = np.mean(lse - out[np.arange(n), labels])
            g = (_softmax(out) - np.eye(out.shape[1])[labels]) / n
        else:
            T = np.asarray(y, dtype=np.float64).reshape(out.shape)
            loss = np.mean(np.maximum(out, 0) - out * T + np.log1p(np.exp(-np.abs(out))))
            g = (1.0 / (1.0 + np.exp(-out)) - T) / out.size
        grads = [None] * len(self.specs)
        for i in reversed(range(len(self.specs))):
            spec, (a_in, a_out, mask) = self.specs[i], cache[i]
            kind = spec["kind"]
            if kind == "conv":
                g = g * _act_grad(a_out, spec["activation"])
                g, dW, db = R.conv2d_backward(a_in, spec["W"], g, spec["stride"], spec["padding"])
                grads[i] = (dW, db)
            elif kind == "dense":
                g = g * _act_grad(a_out, spec["activation"])
                grads[i] = (a_in.T @ g, g.sum(axis=0))
                g = g @ spec["W"].T
            elif kind == "maxpool":
                g = R.maxpool2d_backward(a_in, g, spec["pool"], spec["stride"])
            elif kind == "avgpool":
                g = R.avgpool2d_backward(a_in, g, spec["pool"], spec["stride"])
            elif kind == "flatten":
                g = g.reshape(a_in.shape)
            elif kind == "dropout" and mask is not None:
                g = g * mask
        return float(loss), fastnn_layout_grads(self.specs, grads)


# -------------------------------------------------------------------------------------------- torch oracle
if torch is not None:
    class _Mask(torch.nn.Module):
        """Dropout with a given mask of multipliers (None: identity, as in eval mode)."""

        def __init__(self):
            super().__init__()
            self.mask = None

        def forward(self, x):
            return x if self.mask is None else x * self.mask


def _torch_activation(name):
    return {"linear": torch.nn.Identity, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
            "leaky_relu": lambda: torch.nn.LeakyReLU(LEAKY_SLOPE)}[name]()


class TorchTwin:
    """The network as a float64 torch.nn.Sequential with copies of its weights; gradients by autograd."""

    def __init__(self, net):
        self.loss_name = net.loss
        self.specs = layer_specs(net)
        modules, self.param_modules, self.mask_modules = [], [], []
        for spec in self.specs:
            kind = spec["kind"]
            if kind in ("conv", "dense"):
                W, b = spec["W"], spec["b"]
                if kind == "conv":
                    m = torch.nn.Conv2d(W.shape[1], W.shape[0], W.shape[2:], stride=spec["stride"],
                                        padding=spec["padding"], dtype=torch.float64)
                    weight = W
                else:
                    m = torch.nn.Linear(W.shape[0], W.shape[1], dtype=torch.float64)
                    weight = W.T  # torch Linear keeps (d_out, d_in)
                with torch.no_grad():
                    m.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
                    m.bias.copy_(torch.from_numpy(b))
                modules += [m, _torch_activation(spec["activation"])]
                self.param_modules.append(m)
            elif kind == "maxpool":
                modules.append(torch.nn.MaxPool2d(spec["pool"], spec["stride"]))
            elif kind == "avgpool":
                modules.append(torch.nn.AvgPool2d(spec["pool"], spec["stride"]))
            elif kind == "flatten":
                modules.append(torch.nn.Flatten())
            elif kind == "dropout":
                self.mask_modules.append(_Mask())
                modules.append(self.mask_modules[-1])
        self.model = torch.nn.Sequential(*modules)

    def _out(self, X, masks):
        for module, mask in itertools.zip_longest(self.mask_modules, masks or []):
            module.mask = None if mask is None else torch.from_numpy(np.array(mask, dtype=np.float64))
        with warnings.catch_warnings():  # padding="same" with an even kernel: a note about a padded copy
            warnings.filterwarnings("ignore", message=".*padding='same'.*")
            return self.model(torch.from_numpy(as_nchw(X).copy()))

    def predict(self, X):
        with torch.no_grad():
            out = self._out(X, None)
            if self.loss_name == "cross_entropy":
                out = torch.softmax(out, dim=1)
            elif self.loss_name == "binary_cross_entropy":
                out = torch.sigmoid(out)
        return out.numpy()

    def loss_and_gradients(self, X, y, masks=None):
        self.model.zero_grad()
        out = self._out(X, masks)
        if self.loss_name == "mse":
            loss = torch.nn.functional.mse_loss(out, torch.from_numpy(np.asarray(y, np.float64).reshape(out.shape)))
        elif self.loss_name == "cross_entropy":
            loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(np.asarray(y, dtype=np.int64)))
        else:
            target = torch.from_numpy(np.asarray(y, np.float64).reshape(out.shape))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, target)
        loss.backward()
        grads = []
        for m in self.param_modules:
            dW = m.weight.grad.numpy()
            grads.append((dW.T.copy() if isinstance(m, torch.nn.Linear) else dW.copy(), m.bias.grad.numpy().copy()))
        return loss.item(), grads


@pytest.fixture(params=["torch", "loops"])
def oracle(request):
    """The class of an independent twin: twin = oracle(net) copies net's current weights."""
    if request.param == "torch":
        if torch is None:
            pytest.skip("PyTorch is not installed")
        return TorchTwin
    return LoopTwin


# ------------------------------------------------------------------------------------------------- helpers
Case = namedtuple("Case", "name make_layers input_shape loss")


def _s(v):
    return "x".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


def make_targets(rng, loss, n, n_out):
    if loss == "mse":
        return rng.normal(size=(n, n_out))
    if loss == "cross_entropy":
        return rng.integers(0, n_out, size=n)
    return rng.uniform(0, 1, size=(n, n_out))


def build(case, backend, seed=0):
    net = fastnn.Network(case.make_layers(), input_shape=case.input_shape, loss=case.loss, dtype="float64",
                         seed=seed, backend=backend)
    rng = np.random.default_rng(seed + 100)
    for b in net.biases:  # non-zero biases (they start at zero) so every term is exercised
        b[...] = rng.normal(scale=0.3, size=b.shape)
    return net


def problem(net, case, n, seed=0):
    rng = np.random.default_rng(seed + 200)
    X = rng.normal(size=(n,) + tuple(case.input_shape))
    return X, make_targets(rng, case.loss, n, net.weights[-1].shape[1])


def assert_matches(net, twin, X, y):
    """predict, evaluate and every gradient of net equal the twin's (float64)."""
    expected = twin.predict(X)
    got = net.predict(X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    loss, grads = twin.loss_and_gradients(X, y)
    assert net.evaluate(X, y) == pytest.approx(loss, rel=RTOL, abs=ATOL)
    ours = net.gradients(X, y)
    assert len(ours) == len(grads) == len(net.weights)
    for i, ((dW, db), (tW, tb), W, b) in enumerate(zip(ours, grads, net.weights, net.biases)):
        assert dW.shape == tW.shape == W.shape and db.shape == tb.shape == b.shape, i
        np.testing.assert_allclose(dW, tW, rtol=RTOL, atol=ATOL, err_msg=f"dW of parameter layer {i}")
        np.testing.assert_allclose(db, tb, rtol=RTOL, atol=ATOL, err_msg=f"db of parameter layer {i}")


# ------------------------------------------------------------------------------------------------ the grid
ACTS = ["relu", "tanh", "sigmoid", "linear"]
IMAGES = [(7, 9), (11, 8)]
LOSSES = ["mse", "cross_entropy"]


def _big_padding(kernel, padding):
    """Padding not smaller than the kernel in some dimension (output pixels that see only padding)."""
    return not isinstance(padding, str) and any(p >= k for p, k in zip(R.pair(padding), R.pair(kernel)))


# PyTorch accepts these; fastnn/layers.py (in progress) refuses them with "padding ... must be smaller than the
# kernel". Kept apart, in test_big_padding_matches_oracle, for that decision to be made there.
BIG_PADDING = [(1, 1, 1), (1, 2, (1, 2)), (2, (1, 2), (1, 2)), ((1, 3), (1, 2), 1)]


def _conv_cases():
    combos = [(k, s, p) for k in (1, 2, 3, 5) for s in (1, 2, (1, 2)) for p in (0, 1, (1, 2), "same", "valid")
              if not (p == "same" and s != 1) and not _big_padding(k, p)]
    combos += [(4, 1, "same"), ((3, 2), 1, "same"), ((2, 5), (2, 1), (1, 2)), ((5, 2), 1, "valid")]
    cases = []
    for i, (k, s, p) in enumerate(combos + BIG_PADDING):
        c_in, filters = 1 + i % 3, 1 + (i // 3) % 3
        act, (H, W), loss = ACTS[i % 4], IMAGES[(i // 4) % 2], LOSSES[(i // 2) % 2]
        n_out = 3 if loss == "cross_entropy" else 2

        def make(filters=filters, k=k, s=s, p=p, act=act, n_out=n_out):
            return [fastnn.Conv2D(filters, k, stride=s, padding=p, activation=act), fastnn.Flatten(),
                    fastnn.Dense(n_out)]

        name = f"conv-k{_s(k)}-s{_s(s)}-p{_s(p)}-c{c_in}to{filters}-{act}-{H}x{W}-{loss}"
        cases.append(Case(name, make, (c_in, H, W), loss))
    return cases


def _pool_cases():
    cases = []
    for i, (kind, pool, stride) in enumerate(itertools.product(("max", "avg"), (2, 3, (2, 3)), (None, 1, 2, (1, 2)))):
        c_in, filters = 1 + i % 3, 1 + (i + 1) % 3
        act, (H, W), loss = ACTS[i % 4], IMAGES[(i // 2) % 2], LOSSES[(i // 4) % 2]
        n_out = 3 if loss == "cross_entropy" else 2

        def make(kind=kind, pool=pool, stride=stride, filters=filters, act=act, n_out=n_out):
            Pool = fastnn.MaxPool2D if kind == "max" else fastnn.AvgPool2D
            return [fastnn.Conv2D(filters, 3, padding=1, activation=act), Pool(pool, stride=stride),
                    fastnn.Flatten(), fastnn.Dense(n_out)]

        name = f"{kind}pool-{_s(pool)}-s{_s(stride)}-c{c_in}to{filters}-{act}-{H}x{W}-{loss}"
        cases.append(Case(name, make, (c_in, H, W), loss))
    return cases


STACKS = [
    Case("conv-maxpool-conv_same_even-avgpool-dense-dense",
         lambda: [fastnn.Conv2D(3, 3, activation="relu"), fastnn.MaxPool2D(2),
                  fastnn.Conv2D(4, (2, 3), padding="same", activation="tanh"), fastnn.AvgPool2D(2, stride=1),
                  fastnn.Flatten(), fastnn.Dense(7, activation="relu"), fastnn.Dense(4)],
         (2, 13, 11), "cross_entropy"),
    Case("strided_conv-dense_stack-tanh_output-mse",
         lambda: [fastnn.Conv2D(2, 3, stride=2, padding=(1, 2), activation="sigmoid"), fastnn.Flatten(),
                  fastnn.Dense(5, activation="tanh"), fastnn.Dense(3, activation="tanh")],
         (1, 9, 9), "mse"),
    Case("conv1x1_leaky-avgpool_pair-strided_conv-maxpool_s1-bce",
         lambda: [fastnn.Conv2D(2, 1, activation="leaky_relu"), fastnn.AvgPool2D((2, 3)),
                  fastnn.Conv2D(3, 2, stride=(1, 2), activation="relu"), fastnn.MaxPool2D(2, stride=1),
                  fastnn.Flatten(), fastnn.Dense(2)],
         (3, 10, 12), "binary_cross_entropy"),
    Case("pool_first-conv_same-maxpool3s2",
         lambda: [fastnn.AvgPool2D(2), fastnn.Conv2D(3, 3, padding="same", activation="tanh"),
                  fastnn.MaxPool2D(3, stride=2), fastnn.Flatten(), fastnn.Dense(3)],
         (2, 12, 10), "cross_entropy"),
    Case("two_convs-then-maxpool3s2",
         lambda: [fastnn.Conv2D(3, 2, activation="tanh"), fastnn.Conv2D(2, 3, stride=(2, 1), padding=1),
                  fastnn.MaxPool2D(3, stride=2), fastnn.Flatten(), fastnn.Dense(4, activation="sigmoid"),
                  fastnn.Dense(2)],
         (3, 11, 9), "mse"),
    Case("flatten_input-dense_stack",
         lambda: [fastnn.Flatten(), fastnn.Dense(6, activation="relu"), fastnn.Dense(3)],
         (2, 5, 4), "cross_entropy"),
]

CONV_CASES = _conv_cases()
BIG_PADDING_CASES = CONV_CASES[-len(BIG_PADDING):]
GRID = CONV_CASES[:-len(BIG_PADDING)] + _pool_cases() + STACKS


def _check_case(cases, case, backend, oracle):
    index = cases.index(case)
    net = build(case, backend, seed=index)
    X, y = problem(net, case, n=3 + index % 3, seed=index)
    assert_matches(net, oracle(net), X, y)


@pytest.mark.parametrize("case", GRID, ids=[c.name for c in GRID])
def test_grid_matches_oracle(backend, oracle, case):
    _check_case(GRID, case, backend, oracle)


@pytest.mark.parametrize("case", BIG_PADDING_CASES, ids=[c.name for c in BIG_PADDING_CASES])
def test_big_padding_matches_oracle(backend, oracle, case):
    """Padding >= kernel size, e.g. a 1x1 kernel with padding 1: PyTorch gives the border outputs bias only."""
    _check_case(BIG_PADDING_CASES, case, backend, oracle)


LENET = Case("lenet5",
             lambda: [fastnn.Conv2D(6, 5, padding=2, activation="relu"), fastnn.MaxPool2D(2),
                      fastnn.Conv2D(16, 5, activation="relu"), fastnn.MaxPool2D(2), fastnn.Flatten(),
                      fastnn.Dense(120, activation="relu"), fastnn.Dense(84, activation="relu"), fastnn.Dense(10)],
             (1, 28, 28), "cross_entropy")


def test_lenet5_matches_oracle(backend, oracle):
    net = build(LENET, backend, seed=0)
    assert [W.shape for W in net.weights] == [(6, 1, 5, 5), (16, 6, 5, 5), (400, 120), (120, 84), (84, 10)]
    assert [b.shape for b in net.biases] == [(6,), (16,), (120,), (84,), (10,)]
    X, y = problem(net, LENET, n=4, seed=1)
    assert_matches(net, oracle(net), X, y)


def test_three_dimensional_input_means_one_channel(backend):
    case = Case("one_channel", lambda: [fastnn.Conv2D(2, 3, activation="tanh"), fastnn.MaxPool2D(2),
                                        fastnn.Flatten(), fastnn.Dense(3)], (1, 7, 9), "cross_entropy")
    net = build(case, backend)
    X, y = problem(net, case, n=4)
    X3 = X[:, 0]
    np.testing.assert_array_equal(net.predict(X3), net.predict(X))
    assert net.evaluate(X3, y) == net.evaluate(X, y)
    for (a, b), (c, d) in zip(net.gradients(X3, y), net.gradients(X, y)):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert_matches(net, LoopTwin(net), X3, y)


# ------------------------------------------------------------------------------------------------- dropout
def _dropout_case(rate):
    return Case(f"dropout{rate}",
                lambda: [fastnn.Conv2D(3, 3, padding=1, activation="relu"), fastnn.Dropout(rate),
                         fastnn.MaxPool2D(2), fastnn.Flatten(), fastnn.Dense(8, activation="tanh"),
                         fastnn.Dropout(rate), fastnn.Dense(3)],
                (2, 8, 9), "cross_entropy")


@pytest.mark.parametrize("rate", [0.5, 0.25])
def test_dropout_train_step_matches_oracle(backend, oracle, rate):
    case = _dropout_case(rate)
    net = build(case, backend, seed=4)
    X, y = problem(net, case, n=4, seed=4)
    twin = oracle(net)  # the weights before the step
    loss = net.train_step(X, y, optimizer="sgd", learning_rate=0.1)

    dropouts = [layer for layer in net.layers if isinstance(layer, fastnn.Dropout)]
    masks = [np.array(layer.last_mask, dtype=np.float64) for layer in dropouts]
    assert [m.shape for m in masks] == [(4, 3, 8, 9), (4, 8)]
    scale = 1.0 / (1.0 - rate)
    for m in masks:
        assert np.all((m == 0) | np.isclose(m, scale, rtol=1e-15, atol=0)), np.unique(m)
    kept = np.concatenate([m.ravel() for m in masks]) != 0
    assert abs(kept.mean() - (1 - rate)) < 0.08, kept.mean()  # 896 draws: 0.08 is over 5 standard deviations
    assert 0 < np.count_nonzero(masks[1]) < masks[1].size

    expected_loss, grads = twin.loss_and_gradients(X, y, masks)
    assert loss == pytest.approx(expected_loss, rel=RTOL, abs=ATOL)
    assert abs(loss - twin.loss_and_gradients(X, y)[0]) > 1e-6  # the step really ran with dropout on
    for (W0, b0), (dW, db), W, b in zip(_weights(twin), grads, net.weights, net.biases):
        np.testing.assert_allclose(W, W0 - 0.1 * dW, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(b, b0 - 0.1 * db, rtol=RTOL, atol=ATOL)

    # a fresh mask for every step
    net.train_step(X, y, optimizer="sgd", learning_rate=0.1)
    assert not np.array_equal(np.asarray(dropouts[0].last_mask), masks[0])


def _weights(twin):
    return [(s["W"], s["b"]) for s in twin.specs if s["kind"] in ("conv", "dense")]


def test_dropout_is_inactive_outside_training(backend, oracle):
    case = _dropout_case(0.5)
    net = build(case, backend, seed=5)
    X, y = problem(net, case, n=5, seed=5)
    np.testing.assert_array_equal(net.predict(X), net.predict(X))
    assert net.evaluate(X, y) == net.evaluate(X, y)
    assert_matches(net, oracle(net), X, y)  # the twin without masks: no dropout anywhere


# ------------------------------------------------------------------------------------- finite differences
FD_CASES = [
    Case("fd-tanh-ce", lambda: [fastnn.Conv2D(2, 3, activation="tanh"), fastnn.MaxPool2D(2), fastnn.AvgPool2D(2),
                                fastnn.Flatten(), fastnn.Dense(3)], (2, 10, 11), "cross_entropy"),
    Case("fd-relu-mse-strided", lambda: [fastnn.Conv2D(3, (3, 2), stride=(1, 2), padding=1, activation="relu"),
                                         fastnn.MaxPool2D(2, stride=1), fastnn.AvgPool2D((2, 3)), fastnn.Flatten(),
                                         fastnn.Dense(4, activation="sigmoid"), fastnn.Dense(2)],
         (1, 9, 12), "mse"),
]


@pytest.mark.parametrize("case", FD_CASES, ids=[c.name for c in FD_CASES])
def test_gradients_match_finite_differences(backend, case):
    """Central differences of evaluate at a random sample of every parameter array (random inputs, so max
    pooling has no ties and relu no kinks within eps)."""
    net = build(case, backend, seed=6)
    X, y = problem(net, case, n=4, seed=6)
    analytic = net.gradients(X, y)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for (dW, db), W, b in zip(analytic, net.weights, net.biases):
        for param, grad in ((W, dW), (b, db)):
            flat, gflat = param.reshape(-1), grad.reshape(-1)
            assert np.shares_memory(flat, param)
            for k in rng.choice(flat.size, size=min(flat.size, 8), replace=False):
                old = flat[k]
                flat[k] = old + eps
                up = net.evaluate(X, y)
                flat[k] = old - eps
                down = net.evaluate(X, y)
                flat[k] = old
                assert gflat[k] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), (param.shape, k)


# -------------------------------------------------------------------------------------------- backends agree
def test_backends_agree():
    from conftest import BACKENDS
    if "c" not in BACKENDS or not _backend.c_available():
        pytest.skip("needs both backends")
    case = Case("both", lambda: [fastnn.Conv2D(3, 3, stride=(1, 2), padding=(1, 2), activation="relu"),
                                 fastnn.MaxPool2D(2), fastnn.Conv2D(4, 2, padding="same", activation="tanh"),
                                 fastnn.AvgPool2D(3, stride=1), fastnn.Dropout(0.3), fastnn.Flatten(),
                                 fastnn.Dense(9, activation="sigmoid"), fastnn.Dense(5)],
                (2, 13, 14), "cross_entropy")
    nets = [fastnn.Network(case.make_layers(), input_shape=case.input_shape, loss=case.loss, dtype="float64",
                           seed=11, backend=b) for b in ("c", "python")]
    for W1, W2 in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_array_equal(W1, W2)  # drawn by the same NumPy generator
    X, y = problem(nets[0], case, n=6, seed=11)
    np.testing.assert_allclose(nets[0].predict(X), nets[1].predict(X), rtol=1e-12, atol=1e-14)
    assert nets[0].evaluate(X, y) == pytest.approx(nets[1].evaluate(X, y), rel=1e-12)
    for (a, b), (c, d) in zip(nets[0].gradients(X, y), nets[1].gradients(X, y)):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(b, d, rtol=1e-12, atol=1e-13)


def test_backends_agree_on_a_dropout_train_step():
    """The dropout masks come from the network's seeded generator (fastnn/layers.py), so with one seed both backends
    drop the same units and take the same step."""
    from conftest import BACKENDS
    if "c" not in BACKENDS or not _backend.c_available():
        pytest.skip("needs both backends")
    case = _dropout_case(0.5)
    nets = [build(case, b, seed=12) for b in ("c", "python")]
    X, y = problem(nets[0], case, n=5, seed=12)
    losses = [net.train_step(X, y, optimizer="sgd", learning_rate=0.1) for net in nets]
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    masks = [[layer.last_mask for layer in net.layers if isinstance(layer, fastnn.Dropout)] for net in nets]
    for m1, m2 in zip(*masks):
        np.testing.assert_array_equal(m1, m2)
    for W1, W2 in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_allclose(W1, W2, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------------------- the loop references vs torch
@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 0), (2, 1, "same"), ((4, 3), 1, "same"), (5, 2, 1),
                                                   ((3, 2), (1, 2), (1, 2)), (1, (2, 1), "valid")])
def test_loop_conv_reference_agrees_with_torch(kernel, stride, padding):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    kh, kw = R.pair(kernel)
    x, w, b = rng.normal(size=(3, 2, 8, 9)), rng.normal(size=(4, 2, kh, kw)), rng.normal(size=4)
    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, w, b))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*padding='same'.*")
        yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    y = R.conv2d_forward(x, w, b, stride, padding)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=y.shape)
    (yt * torch.from_numpy(dy)).sum().backward()
    for ours, theirs in zip(R.conv2d_backward(x, w, dy, stride, padding), (xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool,stride", [(2, None), (3, 1), ((2, 3), (1, 2)), (3, 2)])
def test_loop_pool_references_agree_with_torch(pool, stride):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    F = torch.nn.functional
    x = np.random.default_rng(1).normal(size=(2, 3, 7, 9))
    for forward, backward, theirs in ((R.maxpool2d_forward, R.maxpool2d_backward, F.max_pool2d),
                                      (R.avgpool2d_forward, R.avgpool2d_backward, F.avg_pool2d)):
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        yt = theirs(xt, pool, stride)
        y = forward(x, pool, stride)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        dy = np.random.default_rng(2).normal(size=y.shape)
        (yt * torch.from_numpy(dy)).sum().backward()
        np.testing.assert_allclose(backward(x, dy, pool, stride), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
