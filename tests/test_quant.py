"""int8 inference: the integer GEMM on every path this CPU has, the activation quantization, the epilogue, and
QuantizedNetwork (predict, files, pickling, bad input).

Integer results are compared for equality against an independent int64 matmul of the unpacked matrices; float
outputs against the NumPy twin (to float rounding of the epilogue), onnxruntime's quantize_dynamic of the same
exported model (when installed) and the float network.
"""
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import _backend, quantized
from fastnn._py import quant as pq

C_PATHS = quantized.available_paths(_backend.get("c")) if _backend.c_available() else []
SHAPES = [(1, 1, 1), (1, 3, 2), (1, 784, 256), (2, 5, 17), (3, 4, 16), (4, 64, 15), (5, 33, 31), (7, 65, 33),
          (16, 128, 48), (17, 129, 47), (33, 257, 65), (1, 1000, 3), (70, 31, 1)]


def _reference(a, q):
    """The exact products, independent of packing and of every kernel."""
    k = q.shape[0]
    return a[:, :k].astype(np.int64) @ q.astype(np.int64)


def _operands(rng, m, k, n, pad=0):
    q = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
    a = rng.integers(0, 256, size=(m, pq.lda_for(k) + pad), dtype=np.uint8)
    packed, colsum = pq.q8_pack(q)
    return a, q, packed, colsum


# ------------------------------------------------------------------------------------------------ kernels
def test_pack_round_trip(rng):
    for k, n in [(1, 1), (5, 17), (64, 16), (131, 45)]:
        q = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
        packed, colsum = pq.q8_pack(q)
        assert packed.size == -(-n // 16) * -(-k // 4) * 64
        np.testing.assert_array_equal(pq.q8_unpack(packed, k, n), q)
        np.testing.assert_array_equal(colsum, q.astype(np.int64).sum(axis=0))


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_gemm_exact_on_every_path(kernels, backend, rng, m, k, n):
    a, q, packed, _ = _operands(rng, m, k, n, pad=3 if m % 2 else 0)
    want = _reference(a, q)
    paths = C_PATHS if backend == "c" else list(pq.PATHS)
    assert "portable" in paths
    for name in paths:
        c = np.full((m, n), -12345, dtype=np.int32)
        kernels.q8_gemm(c, a, packed, k, pq.PATHS[name], 2)
        np.testing.assert_array_equal(c, want, err_msg=f"path {name}")


def test_gemm_extremes_do_not_saturate(kernels, backend):
    """255 x 127 pairs overflow int16 (where vpmaddubsw saturates); the largest k keeps int32 exact."""
    k = pq.MAX_K
    q = np.full((k, 3), 127, dtype=np.int8)
    q[:, 1] = -127
    q[::2, 2] = -128  # the kernels are exact down to -128, though quantize never produces it
    a = np.full((2, pq.lda_for(k)), 255, dtype=np.uint8)
    a[1, ::3] = 0
    packed, _ = pq.q8_pack(q)
    want = _reference(a, q)
    assert np.abs(want).max() > 2**30
    for name in (C_PATHS if backend == "c" else ["portable"]):
        c = np.empty((2, 3), dtype=np.int32)
        kernels.q8_gemm(c, a, packed, k, pq.PATHS[name], 1)
        np.testing.assert_array_equal(c, want, err_msg=f"path {name}")


def test_gemm_refuses_bad_sizes(kernels):
    a, q, packed, _ = _operands(np.random.default_rng(0), 2, 9, 5)
    c = np.empty((2, 5), np.int32)
    with pytest.raises(ValueError):
        kernels.q8_gemm(c, a[:, :8], packed, 9, pq.PORTABLE, 1)  # lda < 12
    with pytest.raises(ValueError):
        kernels.q8_gemm(c, np.zeros((2, pq.MAX_K + 4), np.uint8), packed, pq.MAX_K + 1, pq.PORTABLE, 1)
    with pytest.raises(ValueError):
        kernels.q8_gemm(c, a, packed, 9, 17, 1)  # no such path


def test_gemm_threads_do_not_change_results(c_kernels, rng):
    a, q, packed, _ = _operands(rng, 300, 200, 70)
    out = []
    for nt in (1, 2, 3):
        c = np.empty((300, 70), np.int32)
        c_kernels.q8_gemm(c, a, packed, 200, c_kernels.q8_best_path(), nt)
        out.append(c)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def _quantize_rows(kernels, x, pad=0):
    m, k = x.shape
    q = np.full((m, k + pad), 77, np.uint8)
    scale, zp = np.empty(m, np.float32), np.empty(m, np.int32)
    kernels.q8_quantize_rows(q, scale, zp, x, 1)
    return q, scale, zp


def test_quantize_rows_matches_the_definition(kernels, rng):
    x = rng.standard_normal((9, 37)).astype(np.float32)
    x[1] = np.abs(x[1])  # all positive: the range still includes 0, zero point 0
    x[2] = -np.abs(x[2])  # all negative: zero point 255
    x[3] = 0  # all zero: scale 1
    x[4, 5] = 1e-30
    q, scale, zp = _quantize_rows(kernels, x, pad=3)
    lo, hi = np.minimum(x.min(1), 0), np.maximum(x.max(1), 0)
    s = (hi - lo) / np.float32(255)
    s[s == 0] = 1
    np.testing.assert_array_equal(scale, s)
    np.testing.assert_array_equal(zp, np.clip(np.rint(-lo / s), 0, 255))
    np.testing.assert_array_equal(q[:, :37], np.clip(np.rint(x / s[:, None]) + zp[:, None], 0, 255))
    np.testing.assert_array_equal(q[:, 37:], 0)
    assert zp[1] == 0 and zp[2] == 255 and scale[3] == 1
    # dequantized values are within half a step of the input
    assert np.all(np.abs((q[:, :37].astype(np.float32) - zp[:, None]) * scale[:, None] - x) <= scale[:, None] / 2 * 1.0001)


def test_quantize_rows_refuses_nan(kernels):
    x = np.ones((3, 5), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _quantize_rows(kernels, x)


def test_epilogue_backends_agree(c_kernels, py_kernels, rng):
    m, n = 6, 19
    c = rng.integers(-2**20, 2**20, size=(m, n), dtype=np.int32)
    a_scale = rng.uniform(1e-3, 1e-2, m).astype(np.float32)
    a_zp = rng.integers(0, 256, m).astype(np.int32)
    w_scale = rng.uniform(1e-3, 1e-2, n).astype(np.float32)
    colsum = rng.integers(-5000, 5000, n).astype(np.int32)
    bias = rng.standard_normal(n).astype(np.float32)
    for act in fastnn._codes.ACTIVATIONS.values():
        ys = []
        for k in (c_kernels, py_kernels):
            y = np.full((m, n), np.nan, np.float32)
            k.q8_epilogue(y, c, a_scale, a_zp, w_scale, colsum, bias, act, 0.01, 1)
            ys.append(y)
        np.testing.assert_allclose(ys[0], ys[1], rtol=2e-6, atol=1e-6, err_msg=f"activation {act}")


# ------------------------------------------------------------------------------------------ the network
def _mlp(backend="c", loss="cross_entropy", dtype="float32", sizes=(784, 256, 128, 10), seed=0):
    return fastnn.Network(list(sizes), loss=loss, dtype=dtype, seed=seed, backend=backend)


def _cnn(backend):
    layers = [fastnn.Conv2D(6, 5, padding=2, activation="relu"), fastnn.MaxPool2D(2),
              fastnn.Conv2D(5, 3, stride=2, activation="tanh"), fastnn.AvgPool2D(2), fastnn.Flatten(),
              fastnn.Dropout(0.3), fastnn.Dense(7)]
    return fastnn.Network(layers, input_shape=(1, 28, 28), loss="cross_entropy", seed=3, backend=backend)


def test_quantize_returns_an_inference_network(backend, rng):
    net = _mlp(backend)
    qnet = net.quantize(weights="int8", per_channel=True)
    assert isinstance(qnet, fastnn.QuantizedNetwork)
    X = rng.random((40, 784)).astype(np.float32)
    Y = qnet.predict(X)
    assert Y.shape == (40, 10) and Y.dtype == np.float32
    np.testing.assert_allclose(Y.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(Y, net.predict(X), atol=0.02)  # int8 error, far below the class margins here
    np.testing.assert_array_equal(qnet.predict(X[3]), Y[3])  # one sample = its row of the batch
    assert qnet.predict(X[3]).shape == (10,)
    text = repr(qnet)
    assert "QuantizedNetwork" in text and "int8" in text and qnet.summary(print_fn=None) == text
    assert qnet.n_params == net.n_params and qnet.nbytes < net.n_params * 4 / 3


def test_every_path_gives_the_same_outputs(c_kernels, rng):
    qnet = _mlp("c", loss="mse").quantize()
    X = rng.standard_normal((50, 784)).astype(np.float32)
    outputs = {}
    for name in C_PATHS:
        qnet.int8_path = name
        outputs[name] = (qnet.predict(X), qnet.predict(X[7]))
    for name in C_PATHS:
        np.testing.assert_array_equal(outputs[name][0], outputs["portable"][0], err_msg=name)
        np.testing.assert_array_equal(outputs[name][1], outputs["portable"][1], err_msg=name)


def test_backends_agree(c_kernels, rng):
    X = rng.standard_normal((300, 784)).astype(np.float32)
    for loss in ("mse", "cross_entropy", "binary_cross_entropy"):
        yc = _mlp("c", loss).quantize().predict(X)
        yp = _mlp("python", loss).quantize().predict(X)
        np.testing.assert_allclose(yc, yp, rtol=1e-5, atol=1e-6, err_msg=loss)
    Xi = rng.random((9, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(_cnn("c").quantize().predict(Xi), _cnn("python").quantize().predict(Xi),
                               rtol=1e-5, atol=1e-6)


def test_threads_do_not_change_outputs(c_kernels, rng):
    qnet = _mlp("c").quantize()
    X = rng.random((1000, 784)).astype(np.float32)
    qnet.n_threads = 1
    one = qnet.predict(X)
    qnet.n_threads = 2
    np.testing.assert_array_equal(qnet.predict(X), one)


def test_conv_network(backend, rng):
    net = _cnn(backend)
    qnet = net.quantize()
    Xi = rng.random((12, 1, 28, 28)).astype(np.float32)
    Y = qnet.predict(Xi)
    assert Y.shape == (12, 7)
    np.testing.assert_allclose(Y, net.predict(Xi), atol=0.01)
    assert [row.split()[-1] for row in repr(qnet).splitlines()[4:11]] == \
        ["uint8", "float32", "uint8", "float32", "pass-through", "pass-through", "uint8"]


def test_per_tensor_weights(backend, rng):
    net = _mlp(backend, loss="mse")
    X = rng.random((30, 784)).astype(np.float32)
    per_tensor = net.quantize(per_channel=False)
    scales = [ql.scale for ql in per_tensor._qlayers]
    assert all(np.all(s == s[0]) for s in scales)
    assert np.abs(per_tensor.predict(X) - net.predict(X)).max() < 0.1


def test_float64_network_computes_in_float32(backend, rng):
    net = _mlp(backend, dtype="float64")
    X = rng.random((10, 784))
    Y = net.quantize().predict(X)
    assert Y.dtype == np.float32
    np.testing.assert_allclose(Y, net.predict(X), atol=0.02)


def test_onnxruntime_quantize_dynamic_agrees(backend, rng, tmp_path):
    """onnxruntime quantizes activations per tensor: sample by sample that is our per-row scheme, and the
    weights (symmetric int8 per output channel) are the same, so each sample must agree to float rounding,
    far within one quantization step of the output."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    X = rng.random((20, 784)).astype(np.float32)
    for loss in ("mse", "cross_entropy"):
        net = _mlp(backend, loss)
        src, dst = tmp_path / f"{loss}.onnx", tmp_path / f"{loss}.int8.onnx"
        net.to_onnx(str(src))
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        theirs = np.stack([session.run(None, {name: X[i:i + 1]})[0][0] for i in range(len(X))])
        ours = net.quantize().predict(X)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=loss)


# ----------------------------------------------------------------------------------- files and pickling
def test_save_load_round_trip(backend, rng, tmp_path):
    for net in (_mlp(backend), _cnn(backend)):
        qnet = net.quantize(per_channel=net.layers[0].kind == "dense")
        X = rng.random((5, *net.input_shape)).astype(np.float32)
        path = tmp_path / "q.fastnn"
        qnet.save(path)
        back = fastnn.load(path, backend=backend)
        assert isinstance(back, fastnn.QuantizedNetwork) and back.per_channel == qnet.per_channel
        np.testing.assert_array_equal(back.predict(X), qnet.predict(X))
        for a, b in zip(back._qlayers, qnet._qlayers):
            np.testing.assert_array_equal(a.q, b.q)
            np.testing.assert_array_equal(a.scale, b.scale)
        with zipfile.ZipFile(path) as zf:
            assert sorted(zf.namelist()) == ["meta.npy", "params.npy", "qscales.npy", "qweights.npy"]
        clone = pickle.loads(pickle.dumps(qnet))
        np.testing.assert_array_equal(clone.predict(X), qnet.predict(X))


def test_float_files_stay_version_2(tmp_path, rng):
    net = _mlp("python")
    path = tmp_path / "f.fastnn"
    net.save(path)
    with zipfile.ZipFile(path) as zf:
        meta = __import__("json").loads(np.load(zf.open("meta.npy")).tobytes())
        assert meta["version"] == 2 and sorted(zf.namelist()) == ["meta.npy", "params.npy"]
    back = fastnn.load(path, backend="python")
    assert isinstance(back, fastnn.Network)
    X = rng.random((3, 784))
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


def test_damaged_quantized_files_raise_value_error(tmp_path):
    src = tmp_path / "q.fastnn"
    _mlp("python").quantize().save(src)

    def scales_negative(name, data):
        if name != "qscales.npy":
            return data
        arr = np.load(__import__("io").BytesIO(data))
        buf = __import__("io").BytesIO()
        np.save(buf, -arr)
        return buf.getvalue()

    cases = {"missing": lambda name, data: None if name == "qscales.npy" else data,
             "truncated": lambda name, data: data[:-10] if name == "qweights.npy" else data,
             "negative scale": scales_negative}
    for what, change in cases.items():
        dst = tmp_path / f"{what}.fastnn"
        _rewrite(src, dst, change)
        with pytest.raises(ValueError, match="not a valid fastnn model file"):
            fastnn.load(dst)


# ------------------------------------------------------------------------------------------- bad input
def test_bad_quantize_arguments():
    net = _mlp("python")
    with pytest.raises(ValueError, match="int8"):
        net.quantize(weights="int4")
    with pytest.raises(TypeError, match="per_channel"):
        net.quantize(per_channel="yes")
    rnn = fastnn.Network([fastnn.SimpleRNN(8), fastnn.Dense(3)], input_shape=(5, 4), loss="mse")
    with pytest.raises(NotImplementedError, match="recurrent"):
        rnn.quantize()
    emb = fastnn.Network([fastnn.Embedding(20, 4), fastnn.Flatten(), fastnn.Dense(3)], input_shape=(6,),
                         loss="mse")
    with pytest.raises(NotImplementedError):
        emb.quantize()
    with pytest.raises(ValueError, match="nothing to quantize"):
        fastnn.QuantizedNetwork.from_network(type("NoDense", (), {"layers": [fastnn.Flatten()]})())
    with pytest.raises(TypeError):
        fastnn.QuantizedNetwork()
    net.layers[0].W[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.quantize()


def test_quantize_refused_while_another_thread_trains():
    import threading
    net = _mlp("python")
    net._busy.acquire()  # what fit holds for the whole of its run
    try:
        errors = []
        worker = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, net.quantize)))
        worker.start()
        worker.join()
        assert errors and "in use by another thread" in str(errors[0].value)
    finally:
        net._busy.release()
    assert isinstance(net.quantize(), fastnn.QuantizedNetwork)


def test_quantized_network_cannot_train():
    qnet = _mlp("python").quantize()
    with pytest.raises(TypeError, match="inference-only"):
        qnet.fit(np.zeros((2, 784)), [0, 1])


def test_bad_predict_input_like_network(backend):
    net = _mlp(backend)
    qnet = net.quantize()
    bad = [np.zeros((3, 783)), np.zeros((2, 3, 784)), np.zeros((0, 784)), np.full((2, 784), np.nan),
           np.array([["a"] * 784]), np.full((1, 784), 1e300)]
    for X in bad:
        with pytest.raises((ValueError, TypeError)) as theirs:
            net.predict(X)
        with pytest.raises(type(theirs.value)):
            qnet.predict(X)


def test_int8_path_selection(c_kernels, monkeypatch):
    qnet = _mlp("c").quantize()
    with pytest.raises(ValueError, match="expected"):
        qnet.int8_path = "avx9000"
    monkeypatch.setenv("FASTNN_INT8_PATH", "portable")
    assert _mlp("c").quantize().int8_path == "portable"
    assert "portable" in fastnn.show_config(file=open(os.devnull, "w"))["int8"]
    monkeypatch.setenv("FASTNN_INT8_PATH", "bogus")
    with pytest.raises(ValueError, match="FASTNN_INT8_PATH"):
        _mlp("c").quantize()
    missing = [name for name in pq.PATHS if name not in C_PATHS]
    if missing:
        monkeypatch.setenv("FASTNN_INT8_PATH", missing[0])
        with pytest.raises(RuntimeError, match="does not have"):
            _mlp("c").quantize()
    monkeypatch.delenv("FASTNN_INT8_PATH")
    assert qnet.int8_path in C_PATHS


def test_header_mirrors():
    """The path codes and the k limit of csrc/fastnn.h are the ones fastnn/_py/quant.py uses."""
    import re
    header = open(os.path.join(os.path.dirname(__file__), os.pardir, "csrc", "fastnn.h")).read()
    codes = dict(re.findall(r"FASTNN_Q8_(\w+) = (\d+)", header))
    assert {name.lower(): int(code) for name, code in codes.items()} == pq.PATHS
    assert int(re.search(r"#define FASTNN_Q8_MAX_K (\d+)", header).group(1)) == pq.MAX_K == (2**31 - 1) // (255 * 128)
