"""ONNX export (Network.to_onnx) and import (fastnn.from_onnx), checked against oracles no one on this project
wrote: onnxruntime runs the exported graphs; PyTorch's torch.onnx.export and skl2onnx write the imported ones and
their own modules / estimators give the expected outputs."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import (GRU, LSTM, AvgPool2D, Conv2D, Dense, Dropout, Embedding, Flatten, MaxPool2D, Network,
                    RepeatVector, SimpleRNN)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _ort():
    return pytest.importorskip("onnxruntime")


# ---------------------------------------------------------------------------------------------- networks
def _dense(dtype, backend):
    return Network([5, 7, 6, 3], activations=["leaky_relu", "tanh", "softmax"], loss="cross_entropy",
                   dtype=dtype, backend=backend, seed=1), ("x", (5,))


def _dense_sigmoid(dtype, backend):
    return Network([Dense(4, "relu"), Dropout(0.5), Dense(2)], input_shape=(6,), loss="binary_cross_entropy",
                   dtype=dtype, backend=backend, seed=2), ("x", (6,))


def _conv(dtype, backend):
    layers = [Conv2D(3, 3, padding="same", activation="relu"), MaxPool2D(2),
              Conv2D(4, (2, 3), stride=(1, 2), padding=(1, 0), activation="tanh"), AvgPool2D((2, 1), stride=1),
              Conv2D(2, 2, padding="same", activation="sigmoid"), Flatten(), Dropout(0.2),
              Dense(6, "leaky_relu"), Dense(3)]
    return Network(layers, input_shape=(8, 9), loss="cross_entropy", dtype=dtype, backend=backend,
                   seed=3), ("x", (1, 8, 9))


def _recurrent(cell, return_sequences):
    def make(dtype, backend):
        layers = [Embedding(11, 4), cell(5, return_sequences=return_sequences), Dense(3)]
        return Network(layers, input_shape=(None,), loss="cross_entropy", dtype=dtype, backend=backend,
                       seed=4), ("ids", (6,))
    make.__name__ = f"{cell.__name__}_{'seq' if return_sequences else 'last'}"
    return make


def _encoder_decoder(dtype, backend):
    layers = [LSTM(5), RepeatVector(3), GRU(4, return_sequences=True), SimpleRNN(3, activation="relu",
              return_sequences=True), Dense(2, "tanh")]
    return Network(layers, input_shape=(7, 3), dtype=dtype, backend=backend, seed=5), ("x", (7, 3))


def _sequence_flatten(dtype, backend):
    layers = [Dense(4, "relu"), SimpleRNN(5, return_sequences=True), Flatten(), Dense(2)]
    return Network(layers, input_shape=(6, 3), loss="binary_cross_entropy", dtype=dtype, backend=backend,
                   seed=6), ("x", (6, 3))


NETWORKS = [_dense, _dense_sigmoid, _conv, _recurrent(LSTM, True), _recurrent(LSTM, False),
            _recurrent(GRU, True), _recurrent(GRU, False), _recurrent(SimpleRNN, False), _encoder_decoder,
            _sequence_flatten]


def _inputs(kind, shape, n, rng, dtype):
    if kind == "ids":
        return rng.integers(0, 11, (n, *shape)).astype(np.int64)
    return rng.standard_normal((n, *shape)).astype(dtype)


def _session(model):
    ort = _ort()
    try:
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
        if "NOT_IMPLEMENTED" in str(exc):
            pytest.skip(f"onnxruntime has no kernel for this: {str(exc)[:120]}")
        raise


def _run(session, x):
    try:
        return session.run(None, {"input": x})[0]
    except Exception as exc:  # noqa: BLE001
        if "not support double" in str(exc) or "NOT_IMPLEMENTED" in str(exc):
            pytest.skip(f"onnxruntime has no double kernel: {str(exc)[:120]}")
        raise


# ------------------------------------------------------------------------------------------------ export
@pytest.mark.parametrize("make", NETWORKS, ids=lambda f: f.__name__.strip("_"))
def test_export_matches_predict_in_onnxruntime(make, dtype, backend, rng):
    net, (kind, shape) = make(dtype.name, backend)
    model = net.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    session = _session(model)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    X = _inputs(kind, shape, 4, rng, dtype)
    expected = net.predict(X)
    got = _run(session, X)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
    one = _run(session, X[:1])  # a batch of one against predicting one sample
    single = net.predict(X[0])  # (C, H, W) with one channel is read as (n, H, W): the same numbers
    np.testing.assert_allclose(one[0], single.reshape(one[0].shape), rtol=0, atol=tol)


@pytest.mark.parametrize("make", NETWORKS, ids=lambda f: f.__name__.strip("_"))
def test_export_matches_onnx_reference_evaluator_in_float64(make, backend, rng):
    """onnxruntime has no double Conv / RNN / LSTM / GRU kernels; ONNX's own reference implementation
    (onnx.reference, NumPy) has, so the float64 graphs are checked against it to 1e-12."""
    reference = pytest.importorskip("onnx.reference")
    net, (kind, shape) = make("float64", backend)
    X = _inputs(kind, shape, 3, rng, np.float64)
    try:
        got = reference.ReferenceEvaluator(net.to_onnx()).run(None, {"input": X})[0]
    except Exception as exc:  # noqa: BLE001 - a gap of the reference implementation, not of the graph
        if "Unknown activation" in str(exc):
            pytest.skip(f"onnx.reference: {exc}")
        raise
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, net.predict(X), rtol=0, atol=1e-12)


def test_export_declares_input_output_and_dynamic_axes(rng):
    net, _ = _recurrent(GRU, True)("float32", None)
    model = net.to_onnx()
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.type.tensor_type.elem_type == TensorProto.INT64
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param  # batch and steps both dynamic
    assert out.type.tensor_type.elem_type == TensorProto.FLOAT
    session = _session(model)
    for steps in (1, 9):  # any number of steps, as the network itself
        ids = rng.integers(0, 11, (2, steps)).astype(np.int64)
        np.testing.assert_allclose(session.run(None, {"input": ids})[0], net.predict(ids), atol=1e-6, rtol=0)
    conv, _ = _conv("float64", None)
    dims = [d.dim_value or d.dim_param for d in conv.to_onnx().graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [1, 8, 9] and isinstance(dims[0], str)  # NCHW, one channel for an (H, W) input_shape
    assert conv.to_onnx().graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE


def test_export_operators_and_layouts():
    net, _ = _dense("float32", None)
    model = net.to_onnx()
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gemm") == 3 and "Softmax" in ops and "LeakyRelu" in ops
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert helper.get_attribute_value(next(a for a in gemm.attribute if a.name == "transB")) == 1
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(weights[gemm.input[1]], net.weights[0].T)  # PyTorch's (out, in)
    lstm, _ = _recurrent(LSTM, False)("float32", None)
    model = lstm.to_onnx()
    node = next(n for n in model.graph.node if n.op_type == "LSTM")
    layer, U = lstm.layers[1], 5
    W = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[node.input[1]][0]
    i, f, g, o = (layer.weight_ih[k * U:(k + 1) * U] for k in range(4))
    np.testing.assert_array_equal(W, np.concatenate([i, o, f, g]))  # ONNX's i, o, f, c


def test_export_writes_path_and_custom_versions(tmp_path):
    net, _ = _dense("float32", None)
    path = tmp_path / "net.onnx"
    model = net.to_onnx(path)
    assert path.read_bytes() == model.SerializeToString()
    newer = net.to_onnx(opset=18, ir_version=9)
    assert newer.ir_version == 9 and newer.opset_import[0].version == 18
    with pytest.raises(ValueError, match="opset"):
        net.to_onnx(opset=7)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        net.to_onnx(tmp_path / "missing" / "net.onnx")


def test_stateful_layer_exports_stateless_with_warning(rng):
    net = Network([LSTM(4, stateful=True), Dense(2)], input_shape=(5, 3), seed=0)
    with pytest.warns(UserWarning, match="stateful"):
        model = net.to_onnx()
    X = rng.standard_normal((2, 5, 3)).astype(np.float32)
    fresh = net.predict(X)  # the first call starts from zeros, as the exported model always does
    np.testing.assert_allclose(_run(_session(model), X), fresh, atol=1e-6, rtol=0)


def test_import_fastnn_does_not_import_onnx():
    code = "import sys, fastnn; sys.exit('onnx' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__))))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


# -------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("make", NETWORKS, ids=lambda f: f.__name__.strip("_"))
def test_round_trip_is_bit_identical(make, dtype, backend, rng):
    net, (kind, shape) = make(dtype.name, backend)
    model = net.to_onnx()
    back = fastnn.from_onnx(model, backend=backend)
    assert back.loss == net.loss and back.dtype == net.dtype
    assert [layer.config() for layer in back.layers if not isinstance(layer, Dropout)] == \
        [_normal(layer.config()) for layer in net.layers if not isinstance(layer, Dropout)]
    again = back.to_onnx()
    assert [t.raw_data for t in model.graph.initializer] == [t.raw_data for t in again.graph.initializer]
    X = _inputs(kind, shape, 3, rng, dtype)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


def _normal(config):
    """A config as the importer rebuilds it (padding "same" of an odd kernel is the symmetric pair)."""
    if config.get("padding") == "same" and all(k % 2 for k in config["kernel_size"]):
        config = dict(config, padding=[(k - 1) // 2 for k in config["kernel_size"]])
    if config.get("type") == "simple_rnn":
        config = dict(config, stateful=False)
    return config


def test_round_trip_through_a_file_and_bytes(tmp_path, rng):
    net, _ = _conv("float32", None)
    path = tmp_path / "conv.onnx"
    net.to_onnx(str(path))
    X = rng.standard_normal((2, 1, 8, 9)).astype(np.float32)
    for source in (path, str(path), path.read_bytes()):
        np.testing.assert_array_equal(fastnn.from_onnx(source).predict(X), net.predict(X))
    as64 = fastnn.from_onnx(path, dtype="float64")
    assert as64.dtype == np.float64
    np.testing.assert_allclose(as64.predict(X), net.predict(X), atol=1e-5)


# ------------------------------------------------------------------------------------------------ PyTorch
def _torch_models(torch):
    nn = torch.nn

    class Recurrent(nn.Module):
        def __init__(self, cell, take):
            super().__init__()
            self.emb, self.rnn, self.fc = nn.Embedding(11, 4), cell(4, 5, batch_first=True), nn.Linear(5, 3)
            self.take = take

        def forward(self, x):
            out, state = self.rnn(self.emb(x))
            if self.take == "sequence":
                return self.fc(out)
            if self.take == "last_step":
                return self.fc(out[:, -1, :])
            h = state[0] if isinstance(state, tuple) else state
            return torch.softmax(self.fc(h[-1]), dim=-1)

    class ViewCNN(nn.Module):  # x.view(x.size(0), -1): a Reshape fed by shape arithmetic
        def __init__(self):
            super().__init__()
            self.conv, self.pool, self.fc = nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.MaxPool2d(2), nn.Linear(12, 4)

        def forward(self, x):
            x = torch.relu(self.pool(self.conv(x)))  # relu after max pooling: the same as before it
            return torch.sigmoid(self.fc(x.view(x.size(0), -1)))

    class Stacked(nn.Module):  # two LSTM layers in one nn.LSTM; h_n[-1] from the stacked last states
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.LSTM(3, 5, num_layers=2, batch_first=True), nn.Linear(5, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[1][0][-1])

    mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3),
                        nn.Softmax(dim=1))
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 2),
                        nn.Sigmoid(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 1 * 1, 2))
    return {"mlp": (mlp, ("x", (5,))), "cnn": (cnn, ("x", (1, 8, 8))),
            "lstm_last_step": (Recurrent(nn.LSTM, "last_step"), ("ids", (6,))),
            "gru_state": (Recurrent(nn.GRU, "state"), ("ids", (6,))),
            "rnn_sequence": (Recurrent(nn.RNN, "sequence"), ("ids", (6,))),
            "view_cnn": (ViewCNN(), ("x", (2, 8, 8))), "stacked_lstm": (Stacked(), ("x", (6, 3)))}


def _torch_export(torch, module, example, dynamo, tmp_path):
    module.eval()
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                        opset_version=18, verbose=False)
            return program.model_proto
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}}, opset_version=17)
    return onnx.load(str(path))


_TORCH_EXPORTS = {}


def _torch_case(name, dynamo, tmp_path):
    """(model or the exporter's error, X, the module's output), exported once for both backends."""
    key = (name, dynamo)
    if key not in _TORCH_EXPORTS:
        torch = pytest.importorskip("torch")
        if dynamo:
            pytest.importorskip("onnxscript")
        torch.manual_seed(0)
        module, (kind, shape) = _torch_models(torch)[name]
        X = _inputs(kind, shape, 3, np.random.default_rng(7), np.float32)
        try:
            model = _torch_export(torch, module, torch.from_numpy(X), dynamo, tmp_path)
        except Exception as exc:  # noqa: BLE001 - the exporter's own failures are not fastnn's
            model = f"torch.onnx.export failed: {type(exc).__name__}: {str(exc)[:120]}"
        with torch.no_grad():
            expected = module(torch.from_numpy(X)).numpy()
        _TORCH_EXPORTS[key] = (model, X, expected)
    return _TORCH_EXPORTS[key]


@pytest.mark.parametrize("name", ["mlp", "cnn", "view_cnn", "lstm_last_step", "gru_state", "rnn_sequence",
                                  "stacked_lstm"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_import_torch_onnx_export(name, dynamo, backend, tmp_path):
    model, X, expected = _torch_case(name, dynamo, tmp_path)
    if isinstance(model, str):
        pytest.skip(model)
    if dynamo and name == "rnn_sequence":
        # the dynamo exporter unrolls nn.RNN into a loop of MatMuls: refused, naming what it could not read
        with pytest.raises(ValueError, match="MatMul.*dynamo=False"):
            fastnn.from_onnx(model, backend=backend)
        return
    net = fastnn.from_onnx(model, backend=backend)
    np.testing.assert_allclose(net.predict(X), expected, atol=1e-5, rtol=0)
    if name in ("mlp", "gru_state"):
        assert net.loss == "cross_entropy"


# ------------------------------------------------------------------------------------------- scikit-learn
def _fitted(kind, rng):
    neural = pytest.importorskip("sklearn.neural_network")
    X = rng.standard_normal((60, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        if kind == "regressor":
            est = neural.MLPRegressor(hidden_layer_sizes=(6, 5), activation="logistic", max_iter=30,
                                      random_state=0).fit(X, X[:, 0] - X[:, 1])
        elif kind == "binary":
            est = neural.MLPClassifier((6,), activation="tanh", max_iter=30, random_state=0).fit(X, X[:, 0] > 0)
        else:
            est = neural.MLPClassifier((7,), max_iter=30, random_state=0).fit(X, (X[:, :3] ** 2).argmax(1))
    return est, X


@pytest.mark.parametrize("kind,zipmap", [("multiclass", False), ("multiclass", True), ("binary", True),
                                         ("binary", False), ("regressor", None)])
def test_import_skl2onnx_mlp(kind, zipmap, backend, rng):
    skl2onnx = pytest.importorskip("skl2onnx")
    est, X = _fitted(kind, rng)
    options = None if zipmap is None else {type(est): {"zipmap": zipmap}}
    model = skl2onnx.to_onnx(est, X[:1], options=options)
    net = fastnn.from_onnx(model, backend=backend)
    if kind == "regressor":
        assert net.loss == "mse"
        np.testing.assert_allclose(net.predict(X)[:, 0], est.predict(X), atol=1e-5, rtol=0)
    else:
        assert net.loss == "cross_entropy"
        np.testing.assert_allclose(net.predict(X), est.predict_proba(X), atol=1e-5, rtol=0)


def test_choose_among_outputs(rng):
    skl2onnx = pytest.importorskip("skl2onnx")
    est, X = _fitted("multiclass", rng)
    model = skl2onnx.to_onnx(est, X[:1], options={type(est): {"zipmap": False}})
    names = [o.name for o in model.graph.output]
    by_name = fastnn.from_onnx(model, output=names[1])
    np.testing.assert_allclose(by_name.predict(X), est.predict_proba(X), atol=1e-5)
    with pytest.raises(ValueError, match="ArgMax"):
        fastnn.from_onnx(model, output=names[0])  # the int64 labels
    with pytest.raises(ValueError, match="not one of the graph's outputs"):
        fastnn.from_onnx(model, output="nope")


# ----------------------------------------------------------------------------------- malformed and refused
def _model(nodes, initializers, inputs=None, outputs=None, opset=17):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _gemm_model(W=None, **attributes):
    W = np.ones((2, 3), np.float32) if W is None else W
    return _model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1, **attributes)],
                  [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.zeros(2, np.float32), "b")])


def test_valid_handmade_model_imports():
    net = fastnn.from_onnx(_gemm_model())
    np.testing.assert_array_equal(net.predict(np.ones((1, 3), np.float32)), [[3, 3]])


def test_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.onnx"):
        fastnn.from_onnx(tmp_path / "nothere.onnx")


@pytest.mark.parametrize("cut", [1, 7, 0.5, -3])
def test_truncated_file(cut, tmp_path):
    data = _conv("float32", None)[0].to_onnx().SerializeToString()
    cut = int(len(data) * cut) if isinstance(cut, float) else cut
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="cut.onnx"):
        fastnn.from_onnx(path)


@pytest.mark.parametrize("data", [b"", b"not a protobuf at all \xff\xfe", bytes(range(256)) * 4,
                                  b"PK\x03\x04" + b"\x00" * 100])
def test_not_a_model(data):
    with pytest.raises(ValueError):
        fastnn.from_onnx(data)


def test_wrong_argument_type():
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        fastnn.from_onnx(12)


def test_huge_declared_dims_are_refused_before_allocating():
    model = _gemm_model()
    W = model.graph.initializer[0]
    W.dims[:] = [2, 3_000_000_000_000]  # 24 bytes of data for 6e12 elements
    with pytest.raises(ValueError, match="declares dims"):
        fastnn.from_onnx(model)
    W.ClearField("raw_data")
    W.float_data.extend([1.0] * 6)
    with pytest.raises(ValueError, match="declares dims"):
        fastnn.from_onnx(model.SerializeToString())


def test_huge_declared_input_is_refused():
    model = _gemm_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1 << 40
    with pytest.raises(ValueError, match="per sample"):
        fastnn.from_onnx(model)


def test_external_data_is_refused():
    model = _gemm_model()
    W = model.graph.initializer[0]
    W.ClearField("raw_data")
    W.data_location = TensorProto.EXTERNAL
    entry = W.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    with pytest.raises(ValueError, match="external"):
        fastnn.from_onnx(model)


def test_wrong_element_types():
    model = _gemm_model()
    model.graph.initializer[0].data_type = TensorProto.STRING
    with pytest.raises(ValueError, match="STRING"):
        fastnn.from_onnx(model)
    model = _gemm_model()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    with pytest.raises(ValueError, match="UINT8"):
        fastnn.from_onnx(model)
    model = _gemm_model(W=np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match="floating-point"):
        fastnn.from_onnx(model)
    model = _gemm_model(W=np.ones((2, 3), np.float64))  # a float64 weight in a float32 graph
    with pytest.raises(ValueError, match="element types disagree"):
        fastnn.from_onnx(model)


def test_shapes_that_do_not_chain():
    with pytest.raises(ValueError, match="do not chain"):
        fastnn.from_onnx(_gemm_model(W=np.ones((2, 4), np.float32)))
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Gemm", ["h", "W2", "b2"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(np.ones((4, 3), np.float32), "W1"),
             numpy_helper.from_array(np.ones(4, np.float32), "b1"),
             numpy_helper.from_array(np.ones((2, 5), np.float32), "W2"),
             numpy_helper.from_array(np.ones(2, np.float32), "b2")]
    with pytest.raises(ValueError, match="do not chain"):
        fastnn.from_onnx(_model(nodes, inits))


def test_cycle_and_missing_inputs():
    inits = [numpy_helper.from_array(np.ones((3, 3), np.float32), "W")]
    cycle = [helper.make_node("MatMul", ["z", "W"], ["h"], name="a"), helper.make_node("Relu", ["h"], ["z"], name="b"),
             helper.make_node("MatMul", ["z", "W"], ["y"], name="c")]
    with pytest.raises(ValueError, match="cycle"):
        fastnn.from_onnx(_model(cycle, inits))
    missing = [helper.make_node("MatMul", ["ghost", "W"], ["y"], name="m")]
    with pytest.raises(ValueError, match="ghost"):
        fastnn.from_onnx(_model(missing, inits))


def test_branching_graph_is_refused():
    inits = [numpy_helper.from_array(np.ones((3, 3), np.float32), "W")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["x", "W"], ["y0"]), helper.make_node("Add", ["r", "y0"], ["y"])]
    with pytest.raises(ValueError):
        fastnn.from_onnx(_model(nodes, inits))


@pytest.mark.parametrize("op,attributes,match", [
    ("Elu", {}, "'Elu'"),
    ("Selu", {}, "'Selu'"),
    ("LeakyRelu", {"alpha": 0.2}, "slope"),
    ("Softmax", {"axis": 0}, "axis=0"),
])
def test_unsupported_activation_named(op, attributes, match):
    model = _gemm_model()
    model.graph.node[0].output[0] = "z"
    model.graph.node.append(helper.make_node(op, ["z"], ["y"], name="act", **attributes))
    with pytest.raises(ValueError, match=match):
        fastnn.from_onnx(model)


def _conv_model(**attributes):
    W = np.ones((4, 2 // attributes.get("group", 1), 3, 3), np.float32)
    node = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1", kernel_shape=[3, 3], **attributes)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    return _model([node], [numpy_helper.from_array(W, "W")], inputs, outputs)


@pytest.mark.parametrize("attributes,match", [({"group": 2}, "group=2"), ({"dilations": [2, 2]}, "dilations"),
                                              ({"pads": [1, 0, 0, 0]}, "pads")])
def test_unsupported_conv_attributes_named(attributes, match):
    with pytest.raises(ValueError, match=f"conv1.*{match}"):
        fastnn.from_onnx(_conv_model(**attributes))


def _lstm_model(**attributes):
    G, U, F = 4, 3, 2
    directions = 2 if attributes.get("direction") == "bidirectional" else 1
    inits = [numpy_helper.from_array(np.ones((directions, G * U, F), np.float32), "W"),
             numpy_helper.from_array(np.ones((directions, G * U, U), np.float32), "R"),
             numpy_helper.from_array(np.ones((1, 3, 2), np.float32), "Wd"),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W", "R"], ["Y", "Y_h"], name="lstm1", hidden_size=U, **attributes),
             helper.make_node("Squeeze", ["Y_h", "axes0"], ["h"]),
             helper.make_node("Gemm", ["h", "Wd"], ["y"], transB=0)]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes0"))
    inits[2] = numpy_helper.from_array(np.ones((3, 2), np.float32), "Wd")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, F])]
    return _model(nodes, inits, inputs)


def test_lstm_handmade_and_refusals():
    net = fastnn.from_onnx(_lstm_model())
    assert [type(layer).__name__ for layer in net.layers] == ["LSTM", "Dense"]
    with pytest.raises(ValueError, match="lstm1.*direction='bidirectional'"):
        fastnn.from_onnx(_lstm_model(direction="bidirectional"))
    with pytest.raises(ValueError, match="lstm1.*clip"):
        fastnn.from_onnx(_lstm_model(clip=3.0))
    with pytest.raises(ValueError, match="lstm1.*activations"):
        fastnn.from_onnx(_lstm_model(activations=["Sigmoid", "Relu", "Tanh"]))
    with pytest.raises(ValueError, match="linear_before_reset=0"):
        model = _lstm_model()
        node = model.graph.node[1]
        node.op_type = "GRU"
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((1, 9, 2), np.float32), "W"))
        model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.ones((1, 9, 3), np.float32), "R"))
        fastnn.from_onnx(model)


def test_unknown_operator_named_with_node():
    model = _gemm_model()
    model.graph.node[0].output[0] = "z"
    model.graph.node.append(helper.make_node("Hardmax", ["z"], ["y"], name="weird"))
    with pytest.raises(ValueError, match="'Hardmax'.*'weird'"):
        fastnn.from_onnx(model)


def test_bit_flipped_files_raise_value_error_or_import():
    """Random corruption of real models (fastnn's own): a ValueError or a model, never another exception."""
    nets = [_conv("float32", None)[0], _encoder_decoder("float32", None)[0], _recurrent(GRU, False)("float32", None)[0]]
    blobs = [net.to_onnx().SerializeToString() for net in nets]
    rng = np.random.default_rng(2024)
    for i in range(150):
        data = bytearray(blobs[i % len(blobs)])
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        try:
            fastnn.from_onnx(bytes(data))
        except ValueError:
            pass


def test_skl2onnx_and_fastnn_export_agree_in_onnxruntime(rng):
    skl2onnx = pytest.importorskip("skl2onnx")
    ort = _ort()
    for kind in ("multiclass", "binary", "regressor"):
        est, X = _fitted(kind, rng)
        theirs = skl2onnx.to_onnx(est, X[:1], options=None if kind == "regressor" else
                                  {type(est): {"zipmap": False}})
        ours = fastnn.from_onnx(theirs).to_onnx()
        onnx.checker.check_model(ours, full_check=True)
        session = ort.InferenceSession(theirs.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = session.run(None, {session.get_inputs()[0].name: X})[-1]
        got = _run(_session(ours), X)
        np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-6, rtol=0)


def test_skl2onnx_and_export_of_from_sklearn_agree_in_onnxruntime(rng):
    """skl2onnx's model of a scikit-learn MLP, and fastnn's export of fastnn.from_sklearn of the same estimator,
    give the same outputs in onnxruntime (the binary classifier's network has one sigmoid output: p of the
    positive class, skl2onnx's second column)."""
    skl2onnx = pytest.importorskip("skl2onnx")
    ort = _ort()
    for kind in ("multiclass", "binary", "regressor"):
        est, X = _fitted(kind, rng)
        theirs = skl2onnx.to_onnx(est, X[:1], options=None if kind == "regressor" else
                                  {type(est): {"zipmap": False}})
        ours = fastnn.from_sklearn(est, dtype="float32").to_onnx()
        onnx.checker.check_model(ours, full_check=True)
        session = ort.InferenceSession(theirs.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = session.run(None, {session.get_inputs()[0].name: X})[-1]
        got = _run(_session(ours), X)
        if kind == "binary":
            expected = expected[:, 1:]
        np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-6, rtol=0)


def test_missing_onnx_package_says_how_to_install(monkeypatch):
    net, _ = _dense("float32", None)
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install fastnn\[onnx\]"):
        net.to_onnx()
    with pytest.raises(ImportError, match=r"pip install fastnn\[onnx\]"):
        fastnn.from_onnx(b"")


def test_repeat_vector_from_tile_and_dynamic_steps_recurrent_input(rng):
    """Tile (another spelling of RepeatVector) and a float sequence input whose steps axis is dynamic."""
    F, U = 3, 4
    inits = [numpy_helper.from_array(rng.standard_normal((1, 3 * U, F)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 3 * U, U)).astype(np.float32), "R"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([1, 5, 1], np.int64), "reps"),
             numpy_helper.from_array(rng.standard_normal((U, 2)).astype(np.float32), "Wd"),
             numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "bd")]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("GRU", ["xt", "W", "R"], ["", "Y_h"], hidden_size=U, linear_before_reset=1),
             helper.make_node("Squeeze", ["Y_h", "zero"], ["h"]),
             helper.make_node("Unsqueeze", ["h", "one"], ["h1"]),
             helper.make_node("Tile", ["h1", "reps"], ["seq"]),
             helper.make_node("MatMul", ["seq", "Wd"], ["z"]),
             helper.make_node("Add", ["z", "bd"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", F])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 2])]
    model = _model(nodes, inits, inputs, outputs)
    net = fastnn.from_onnx(model)
    assert [type(layer).__name__ for layer in net.layers] == ["GRU", "RepeatVector", "Dense"]
    assert net.input_shape == (None, F)
    session = _session(model)
    for steps in (2, 7):
        X = rng.standard_normal((3, steps, F)).astype(np.float32)
        np.testing.assert_allclose(net.predict(X), session.run(None, {"x": X})[0], atol=1e-6, rtol=0)


def test_constant_arithmetic_is_bounded_before_computing():
    """Small constants whose broadcast or concatenation would be huge are refused, not computed."""
    col = numpy_helper.from_array(np.ones((100000, 1), np.float32), "col")
    row = numpy_helper.from_array(np.ones((1, 100000), np.float32), "row")
    model = _gemm_model()
    model.graph.node[0].input[2] = "big"
    model.graph.node.insert(0, helper.make_node("Add", ["col", "row"], ["big"], name="outer"))
    model.graph.initializer.extend([col, row])
    with pytest.raises(ValueError, match="outer.*constant of 10000000000 elements"):
        fastnn.from_onnx(model)


def test_pool_indices_and_cell_state_outputs_are_refused():
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])]
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "idx"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Cast", ["idx"], ["y"], name="cast", to=TensorProto.FLOAT)]
    with pytest.raises(ValueError, match="'cast'.*'idx'"):
        fastnn.from_onnx(_model(nodes, [], inputs))


def test_import_torch_float64_mlp(backend, tmp_path, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    module = _torch_models(torch)["mlp"][0].double()
    X = rng.standard_normal((4, 5))
    model = _torch_export(torch, module, torch.from_numpy(X), False, tmp_path)
    net = fastnn.from_onnx(model, backend=backend)
    assert net.dtype == np.float64
    with torch.no_grad():
        np.testing.assert_allclose(net.predict(X), module(torch.from_numpy(X)).numpy(), atol=1e-12, rtol=0)
