"""The convolution, pooling and dropout kernels of both backends, each against its twin (float64, rtol 1e-12) and
against the independent loop references of tests/layer_references.py; results independent of the thread count;
the C enums and struct fields mirrored in Python checked against csrc/fastnn.h; pickling; and the network-level
behaviour of layer networks that the PyTorch comparison does not cover (threads, dense equivalence, dropout
streams)."""
import math
import os
import pickle
import re

import numpy as np
import pytest

import fastnn
from fastnn import _backend, _codes

import layer_references as ref

HEADER = os.path.join(os.path.dirname(__file__), os.pardir, "csrc", "fastnn.h")

# (in_c, h, w, filters, kernel, stride, (pad_top, pad_left), (pad_bottom, pad_right))
CONV_CASES = [
    (1, 7, 9, 2, (3, 3), (1, 1), (0, 0), (0, 0)),
    (2, 8, 6, 3, (3, 2), (2, 1), (1, 0), (1, 0)),
    (3, 11, 8, 4, (5, 5), (1, 1), (2, 2), (2, 2)),
    (1, 5, 5, 6, (1, 1), (1, 1), (0, 0), (0, 0)),
    (4, 6, 7, 2, (1, 1), (2, 2), (0, 0), (0, 0)),
    (8, 7, 9, 40, (3, 3), (1, 1), (1, 1), (1, 1)),   # many filters and K >= 64: the BLAS path when there is one
    (2, 4, 4, 3, (2, 2), (1, 1), (3, 3), (3, 3)),    # padding larger than the kernel: border outputs see zeros
    (1, 6, 6, 2, (4, 4), (1, 1), (1, 1), (2, 2)),    # "same" for an even kernel: the extra row/column after
]

POOL_CASES = [(2, 6, 6, (2, 2), (2, 2)), (3, 7, 5, (3, 2), (1, 1)), (1, 9, 8, (3, 3), (2, 3)),
              (2, 5, 5, (1, 1), (1, 1)), (1, 4, 7, (4, 7), (1, 1))]


def conv_window(case):
    c, h, w, f, (kh, kw), (sh, sw), (pt, pl), (pb, pr) = case
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    return (c, h, w, f, oh, ow, kh, kw, sh, sw, pt, pl), (oh, ow)


def pool_window(case):
    c, h, w, (kh, kw), (sh, sw) = case
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    return (c, h, w, c, oh, ow, kh, kw, sh, sw, 0, 0), (oh, ow)


def ref_conv(x, W, b, case):
    """The loop reference with the case's (possibly asymmetric) padding."""
    c, h, w, f, (kh, kw), stride, (pt, pl), (pb, pr) = case
    return ref.conv2d_forward(x, W, b, stride, ((pt, pb), (pl, pr)))


def run_conv(k, case, x, W, b, dz, act, dtype, n_threads=1, with_dx=True):
    win, (oh, ow) = conv_window(case)
    n, (c, f, kh, kw) = x.shape[0], (case[0], case[3], *case[4])
    P, K = oh * ow, c * kh * kw
    cols = np.full((K, n * P), np.nan, dtype)
    y = np.full((n, f * P), np.nan, dtype)
    x2, W2 = x.reshape(n, -1).astype(dtype), W.reshape(f, -1).astype(dtype)
    k.conv2d_forward(y, cols, x2, W2, b.astype(dtype), win, act, 0.01, n_threads)
    dW, db = np.full_like(W2, np.nan), np.full(f, np.nan, dtype)
    dx = np.full_like(x2, np.nan) if with_dx else None
    k.conv2d_backward(dx, dW, db, cols, dz.reshape(n, -1).astype(dtype), x2, W2, win, n_threads)
    return y.reshape(n, f, oh, ow), dW.reshape(W.shape), db, None if dx is None else dx.reshape(x.shape)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_kernels_match_loop_reference(kernels, case):
    rng = np.random.default_rng(1)
    c, h, w, f, (kh, kw) = case[:5]
    _, (oh, ow) = conv_window(case)
    x, W, b = rng.normal(size=(3, c, h, w)), rng.normal(size=(f, c, kh, kw)), rng.normal(size=f)
    dz = rng.normal(size=(3, f, oh, ow))
    y, dW, db, dx = run_conv(kernels, case, x, W, b, dz, _codes.LINEAR, np.float64)
    c_, h_, w_, f_, k_, stride, (pt, pl), (pb, pr) = case
    want_dx, want_dW, want_db = ref.conv2d_backward(x, W, dz, stride, ((pt, pb), (pl, pr)))
    np.testing.assert_allclose(y, ref_conv(x, W, b, case), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW, want_dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("act", [_codes.RELU, _codes.TANH, _codes.SIGMOID, _codes.LEAKY_RELU])
def test_conv_kernels_twins_agree(c_kernels, py_kernels, case, act):
    rng = np.random.default_rng(2)
    c, h, w, f, (kh, kw) = case[:5]
    _, (oh, ow) = conv_window(case)
    x, W, b = rng.normal(size=(4, c, h, w)), rng.normal(size=(f, c, kh, kw)), rng.normal(size=f)
    dz = rng.normal(size=(4, f, oh, ow))
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        got = run_conv(c_kernels, case, x, W, b, dz, act, dtype)
        want = run_conv(py_kernels, case, x, W, b, dz, act, dtype)
        for a, e in zip(got, want):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol)


def test_conv_backward_without_dx_leaves_nothing_unwritten(kernels):
    rng = np.random.default_rng(3)
    case = CONV_CASES[1]
    c, h, w, f, (kh, kw) = case[:5]
    _, (oh, ow) = conv_window(case)
    x, W, b, dz = rng.normal(size=(2, c, h, w)), rng.normal(size=(f, c, kh, kw)), np.zeros(f), \
        rng.normal(size=(2, f, oh, ow))
    _, dW, db, dx = run_conv(kernels, case, x, W, b, dz, _codes.LINEAR, np.float64, with_dx=False)
    assert dx is None and np.isfinite(dW).all() and np.isfinite(db).all()


@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_col2im_are_adjoint(kernels, case):
    """<im2col(x), C> == <x, col2im(C)> for random x and C: col2im is the exact transpose of im2col."""
    rng = np.random.default_rng(4)
    win, (oh, ow) = conv_window(case)
    c, h, w = case[:3]
    K, n = c * case[4][0] * case[4][1], 2
    x = rng.normal(size=(n, c * h * w))
    cols = np.full((K, n * oh * ow), np.nan)
    kernels.im2col(cols, x, win, 1)
    C = rng.normal(size=cols.shape)
    back = np.full_like(x, np.nan)
    kernels.col2im(back, C, win, 1)
    assert math.isclose(np.sum(cols * C), np.sum(x * back), rel_tol=1e-12)


@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_kernels_match_loop_reference(kernels, case):
    rng = np.random.default_rng(5)
    win, (oh, ow) = pool_window(case)
    c, h, w, pool, stride = case
    n = 3
    x = rng.normal(size=(n, c, h, w))
    x[0, 0, 0, :2] = x[0, 0, 0, 0]  # a tie: the first maximum wins in both
    dy = rng.normal(size=(n, c, oh, ow))
    y, am = np.full((n, c * oh * ow), np.nan), np.full((n, c * oh * ow), -1, np.int32)
    kernels.maxpool2d_forward(y, am, x.reshape(n, -1), win, 1)
    np.testing.assert_array_equal(y.reshape(dy.shape), ref.maxpool2d_forward(x, pool, stride))
    dx = np.full((n, c * h * w), np.nan)
    kernels.maxpool2d_backward(dx, dy.reshape(n, -1), am, win, 1)
    np.testing.assert_allclose(dx.reshape(x.shape), ref.maxpool2d_backward(x, dy, pool, stride), rtol=1e-12)
    kernels.avgpool2d_forward(y, x.reshape(n, -1), win, 1)
    np.testing.assert_allclose(y.reshape(dy.shape), ref.avgpool2d_forward(x, pool, stride), rtol=1e-12)
    kernels.avgpool2d_backward(dx, dy.reshape(n, -1), win, 1)
    np.testing.assert_allclose(dx.reshape(x.shape), ref.avgpool2d_backward(x, dy, pool, stride), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_nan_wins_and_the_first_maximum_is_kept(kernels, dtype):
    win = (1, 2, 4, 1, 1, 2, 2, 2, 2, 2, 0, 0)
    x = np.array([[1, 3, 5, np.nan, 3, 2, np.nan, 5]], dtype)  # window 0: 1 3 / 3 2 -> 3 at 1; window 1: NaN
    y, am = np.zeros((1, 2), dtype), np.zeros((1, 2), np.int32)
    kernels.maxpool2d_forward(y, am, x, win, 1)
    assert y[0, 0] == 3 and am[0, 0] == 1
    assert np.isnan(y[0, 1]) and am[0, 1] == 3  # the first NaN in row-major window order


def test_pool_without_argmax(kernels):
    win, _ = pool_window(POOL_CASES[1])
    x = np.random.default_rng(6).normal(size=(2, 3 * 7 * 5))
    y1, y2, am = np.zeros((2, 3 * 5 * 4)), np.zeros((2, 3 * 5 * 4)), np.zeros((2, 3 * 5 * 4), np.int32)
    kernels.maxpool2d_forward(y1, None, x, win, 1)
    kernels.maxpool2d_forward(y2, am, x, win, 1)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_twins_draw_the_same_masks(c_kernels, py_kernels, rate, dtype):
    x = np.random.default_rng(7).normal(size=(37, 29)).astype(dtype)
    key = 0xDEADBEEF12345
    out = []
    for k in (c_kernels, py_kernels):
        y, mask = np.full_like(x, np.nan), np.full_like(x, np.nan)
        k.dropout_forward(y, mask, x, rate, key, 1)
        dx = np.full_like(x, np.nan)
        k.dropout_backward(dx, x, mask, 1)
        out.append((y, mask, dx))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    y, mask, _ = out[0]
    keep = dtype(1.0 / (1.0 - rate))
    assert set(np.unique(mask)) <= {0, keep}
    assert abs(np.mean(mask > 0) - (1 - rate)) < 0.06
    np.testing.assert_array_equal(y, x * mask)
    assert c_kernels.dropout_batch_key(123, 4) == py_kernels.dropout_batch_key(123, 4)
    assert c_kernels.dropout_layer_key(2**63 + 5, 7) == py_kernels.dropout_layer_key(2**63 + 5, 7)
    idx = np.arange(1000)
    np.testing.assert_array_equal(c_kernels.dropout_uniform(99, idx), py_kernels.dropout_uniform(99, idx))


def test_dropout_uniform_is_uniform(kernels):
    u = kernels.dropout_uniform(2024, np.arange(200000))
    assert 0 <= u.min() and u.max() < 1
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    expected = len(u) / 20
    assert np.sum((counts - expected) ** 2 / expected) < 60  # chi-square, 19 dof: p ~ 1e-6


# --------------------------------------------------------------------------------------- thread counts
def _cnn(backend, dtype="float64", dropout=0.0, seed=0):
    layers = [fastnn.Conv2D(8, 3, padding=1, activation="relu"), fastnn.MaxPool2D(2),
              fastnn.Conv2D(40, 3, activation="tanh"), fastnn.AvgPool2D(2, stride=1), fastnn.Flatten()]
    if dropout:
        layers.append(fastnn.Dropout(dropout))
    layers += [fastnn.Dense(7, activation="relu"), fastnn.Dense(3)]
    return fastnn.Network(layers, input_shape=(2, 10, 9), loss="cross_entropy", dtype=dtype, seed=seed,
                          backend=backend)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_thread_counts_give_identical_results(c_kernels, dtype):
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(150, 2, 10, 9)), rng.integers(0, 3, 150)
    results = []
    for threads in (1, 2, 3):
        net = _cnn("c", dtype, dropout=0.2)
        net.n_threads = threads
        grads = net.gradients(X[:70], y[:70])
        net.fit(X, y, epochs=2, batch_size=50, optimizer="adam", learning_rate=1e-2)
        results.append([g for pair in grads for g in pair] + [net._params.copy(), net.predict(X)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------ equivalence
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_layers_built_either_way_agree_bit_for_bit(backend, dtype):
    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(90, 6)), rng.integers(0, 4, 90)
    a = fastnn.Network([6, 11, 5, 4], activations=["tanh", "relu", "softmax"], loss="cross_entropy",
                       dtype=dtype, seed=3, backend=backend)
    b = fastnn.Network([fastnn.Dense(11, "tanh"), fastnn.Dense(5, "relu"), fastnn.Dense(4)], input_shape=(6,),
                       loss="cross_entropy", dtype=dtype, seed=3, backend=backend)
    assert a.get_config() == b.get_config() and a.sizes == b.sizes == [6, 11, 5, 4]
    np.testing.assert_array_equal(a._params, b._params)
    ha = a.fit(X, y, epochs=3, batch_size=16, optimizer="adam")
    hb = b.fit(X, y, epochs=3, batch_size=16, optimizer="adam")
    assert ha["loss"] == hb["loss"]
    np.testing.assert_array_equal(a._params, b._params)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict(X[0]), b.predict(X[0]))


def test_single_sample_prediction_matches_the_batch(backend):
    rng = np.random.default_rng(10)
    net = _cnn(backend)
    X = rng.normal(size=(5, 2, 10, 9))
    batch = net.predict(X)
    for i in range(5):
        np.testing.assert_allclose(net.predict(X[i]), batch[i], rtol=1e-13)
    flat = net.predict(X.reshape(5, -1))  # rows already flattened
    np.testing.assert_array_equal(flat, batch)


def test_large_predictions_are_chunked_consistently(backend, monkeypatch):
    from fastnn import network
    net = _cnn(backend)
    X = np.random.default_rng(11).normal(size=(23, 2, 10, 9))
    whole = net.predict(X)
    monkeypatch.setattr(network, "INFER_ROWS", 4)
    np.testing.assert_allclose(net.predict(X), whole, rtol=1e-13)
    y = np.arange(23) % 3
    monkeypatch.setattr(network, "INFER_ROWS", 4096)
    loss = net.evaluate(X, y)
    monkeypatch.setattr(network, "INFER_ROWS", 5)
    assert math.isclose(net.evaluate(X, y), loss, rel_tol=1e-12)


def test_dropout_masks_differ_between_steps_and_follow_the_seed(backend):
    rng = np.random.default_rng(12)
    X, y = rng.normal(size=(8, 2, 10, 9)), rng.integers(0, 3, 8)
    a, b = _cnn(backend, dropout=0.5, seed=4), _cnn(backend, dropout=0.5, seed=4)
    drop = [layer for layer in a.layers if isinstance(layer, fastnn.Dropout)][0]
    assert drop.last_mask is None
    a.train_step(X, y)
    first = drop.last_mask
    a.train_step(X, y)
    assert not np.array_equal(first, drop.last_mask)
    b.train_step(X, y)
    np.testing.assert_array_equal(first, [layer for layer in b.layers if isinstance(layer, fastnn.Dropout)][0]
                                  .last_mask)


# --------------------------------------------------------------------------------------------- pickling
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pickle_round_trips_bit_exact_and_continues_training(backend, dtype):
    rng = np.random.default_rng(13)
    X, y = rng.normal(size=(40, 2, 10, 9)), rng.integers(0, 3, 40)
    net = _cnn(backend, dtype, dropout=0.3)
    net.fit(X, y, epochs=2, batch_size=8, optimizer="adam")
    net.n_threads = 1
    clone = pickle.loads(pickle.dumps(net))
    assert clone.get_config() == net.get_config() and clone.n_threads == 1 and clone.backend == net.backend
    np.testing.assert_array_equal(clone._params, net._params)
    np.testing.assert_array_equal(clone.predict(X), net.predict(X))
    # the optimizer state and the generator travel too: both continue identically
    h1 = net.fit(X, y, epochs=2, batch_size=8, optimizer="adam", reset_optimizer=False)
    h2 = clone.fit(X, y, epochs=2, batch_size=8, optimizer="adam", reset_optimizer=False)
    assert h1["loss"] == h2["loss"]
    np.testing.assert_array_equal(clone._params, net._params)


def test_pickled_dense_network_round_trips(backend):
    net = fastnn.Network([4, 8, 2], loss="mse", seed=1, backend=backend)
    clone = pickle.loads(pickle.dumps(net))
    assert repr(clone) == repr(net)
    np.testing.assert_array_equal(clone._params, net._params)


def test_model_file_round_trip_of_a_layer_network(backend, tmp_path):
    net = _cnn(backend, "float32", dropout=0.25)
    path = tmp_path / "cnn.fastnn"
    net.save(path)
    back = fastnn.load(path, backend=backend)
    assert back.get_config() == net.get_config()
    np.testing.assert_array_equal(back._params, net._params)
    X = np.random.default_rng(14).normal(size=(3, 2, 10, 9))
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


def test_summary_lists_every_layer(backend):
    net = _cnn(backend, dropout=0.1)
    text = net.summary(print_fn=None)
    assert repr(net) == text
    lines = text.splitlines()
    for layer in net.layers:
        row = [line for line in lines if repr(layer) in line]
        assert len(row) == 1 and str(tuple(layer.output_shape)) in row[0] and f"{layer.n_params:,}" in row[0]
    assert f"total parameters: {net.n_params:,}" in text
    assert net.n_params == sum(w.size + b.size for w, b in zip(net.weights, net.biases))


# ------------------------------------------------------------------------------------------ mirrors of C
def _header():
    with open(HEADER) as f:
        return f.read()


def _enum(text, prefix):
    return {name: int(value) for name, value in re.findall(rf"\b({prefix}\w+)\s*=\s*(\d+)", text)}


@pytest.mark.skipif(not os.path.exists(HEADER), reason="the C sources are not beside the tests")
def test_python_codes_mirror_the_c_enums():
    text = _header()
    layers = _enum(text, "FASTNN_LAYER_")
    assert layers and {k: getattr(_codes, k[len("FASTNN_"):]) for k in layers} == layers
    acts = _enum(text, "FASTNN_ACT_")
    assert {k: _codes.ACTIVATIONS[k[len("FASTNN_ACT_"):].lower()] for k in acts} == acts
    losses = _enum(text, "FASTNN_LOSS_")
    assert losses.pop("FASTNN_LOSS_CROSS_ENTROPY_IGNORE") == _codes.CROSS_ENTROPY_IGNORE  # internal, no name
    assert {k: _codes.LOSSES[k[len("FASTNN_LOSS_"):].lower()] for k in losses} == losses
    cells = _enum(text, "FASTNN_CELL_")
    assert cells and {k: getattr(_codes, k[len("FASTNN_"):]) for k in cells} == cells
    opts = _enum(text, "FASTNN_OPT_")
    assert {k: getattr(_codes, k[len("FASTNN_"):]) for k in opts} == opts
    eps = _enum(text, "FASTNN_EPS_")
    assert eps and {k: _codes.EPSILON_PLACEMENTS[k[len("FASTNN_EPS_"):].lower()] for k in eps} == eps
    metrics = _enum(text, "FASTNN_METRIC_")
    assert metrics and {k: getattr(_codes, k[len("FASTNN_"):]) for k in metrics} == metrics
    limit = int(re.search(r"#define FASTNN_MAX_METRICS (\d+)", text).group(1))
    from fastnn import training
    from fastnn._py import metrics as py_metrics
    assert training.MAX_METRICS == py_metrics.MAX_METRICS == limit
    assert _struct_fields(text, "fastnn_metrics") == ["n_metrics", "kind[FASTNN_MAX_METRICS]",
                                                      "k[FASTNN_MAX_METRICS]", "sum[FASTNN_MAX_METRICS]", "weight"]
    pxd = os.path.join(os.path.dirname(HEADER), os.pardir, "fastnn", "_core.pxd")
    if os.path.exists(pxd):  # Cython needs the array lengths as numbers
        with open(pxd) as f:
            body = re.search(r"ctypedef struct fastnn_metrics:\n((?:        .*\n)+)", f.read()).group(1)
        assert body.split() == ["int", "n_metrics", "int", f"kind[{limit}]", "int64_t", f"k[{limit}]", "double",
                                f"sum[{limit}]", "double", "weight"]
    kinds = {cls.code for cls in fastnn.layers.LAYER_TYPES.values()}
    assert kinds == set(layers.values())


def _struct_fields(text, name):
    body = re.search(r"typedef struct \{([^{}]*)\}\s*" + name + ";", text).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        decl = re.sub(r"^(const\s+)?\w+\s*", "", decl)  # the type
        fields += [re.sub(r"[*\s]", "", part) for part in decl.split(",")]
    return fields


@pytest.mark.skipif(not os.path.exists(HEADER), reason="the C sources are not beside the tests")
def test_layer_descriptor_fields_mirror_the_c_struct():
    from fastnn._py.network import LAYER_FIELDS
    text = _header()
    c_fields = _struct_fields(text, "fastnn_layer")
    # state_rows is the carried state's row count, which the handles read off the state array itself, and
    # sparse_rows the second item of the sparse entry
    read_off = ("state_rows", "sparse_rows")
    assert [f for f in c_fields if f in read_off] == list(read_off)
    assert tuple(f for f in c_fields if f not in read_off) == LAYER_FIELDS
    assert _struct_fields(text, "fastnn_sequence") == ["cell", "act", "return_sequences", "steps", "features",
                                                       "units"]
    assert _struct_fields(text, "fastnn_window") == ["in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "kh", "kw",
                                                     "sh", "sw", "pad_h", "pad_w"]
    if _backend.c_available():
        assert tuple(_backend.get("c").LAYER_FIELDS) == LAYER_FIELDS
    # every layer's descriptor has exactly these fields
    net = _cnn("python", dropout=0.5)
    for layer in net.layers:
        assert set(layer.descriptor({})) == set(LAYER_FIELDS)


# ------------------------------------------------------------------------------- every training option
@pytest.mark.parametrize("optimizer, options", [("sgd", dict(momentum=0.9, nesterov=True, weight_decay=1e-3)),
                                                ("adam", dict(weight_decay=1e-4)), ("adamw", dict(weight_decay=1e-2)),
                                                ("rmsprop", {}), ("irprop-", {})])
def test_every_optimizer_and_fit_option_trains_a_layer_network_the_same_on_both_backends(c_kernels, optimizer,
                                                                                           options):
    rng = np.random.default_rng(15)
    X, y = rng.normal(size=(60, 2, 10, 9)), rng.integers(0, 3, 60)
    w = rng.uniform(0.5, 1.5, 60)
    histories, params = [], []
    for backend in ("c", "python"):
        net = _cnn(backend, dropout=0.2, seed=5)
        lr = 0.01 if optimizer != "sgd" else 0.05
        h = net.fit(X, y, epochs=4, batch_size=16, optimizer=optimizer, learning_rate=lr, sample_weight=w,
                    validation_split=0.2, class_weight="balanced", early_stopping=fastnn.EarlyStopping(patience=10),
                    lr_schedule=fastnn.StepDecay(2, 0.5), **options)
        histories.append(h)
        params.append(net._params.copy())
        assert all(np.isfinite(h["loss"])) and len(h["val_loss"]) == len(h["loss"])
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-9)
    np.testing.assert_allclose(params[0], params[1], rtol=1e-8, atol=1e-10)
    if optimizer != "irprop-":  # full-batch RPROP steps need not lower a minibatch loss
        assert histories[0]["loss"][-1] < histories[0]["loss"][0]
