"""ONNX export of a fastnn Network (needs the optional `onnx` package: pip install fastnn[onnx]).

The graph takes the network's declared input with a dynamic batch axis in front ("N"): (N, features) for dense
networks, (N, C, H, W) images (NCHW, as fastnn), (N, steps, features) sequences, (N, steps) int64 token ids for
a network that starts with Embedding; a steps axis declared None is dynamic too ("steps"). Its one output is
what `net.predict` returns, the output layer's activation (softmax / sigmoid fused with the loss in training)
written explicitly.

Layer by layer:
  Dense          Gemm(transB=1, B = W.T in PyTorch's (out, in) layout) on (N, F); MatMul + Add on a sequence
  activations    Relu, Sigmoid, Tanh, LeakyRelu(alpha=0.01), Softmax(axis=-1)
  Conv2D         Conv with pads [top, left, bottom, right] (padding="same" written as explicit pads)
  MaxPool2D      MaxPool, no padding, floor mode (fastnn's)
  AvgPool2D      AveragePool, no padding (so count_include_pad plays no part)
  Flatten        Flatten(axis=1)
  Dropout        nothing (inference)
  Embedding      Gather(W, ids, axis=0)
  SimpleRNN / LSTM / GRU   Transpose to (steps, N, features), RNN / LSTM / GRU with ONNX's gate order (LSTM i,
                 o, f, c; GRU z, r, h), B = [Wb, Rb], GRU linear_before_reset=1 (PyTorch's and fastnn's cell);
                 Y squeezed and transposed back (return_sequences) or Y_h squeezed (the last state)
  RepeatVector   Unsqueeze + Expand
A stateful recurrent layer is exported stateless (ONNX carries no state between runs), with a warning.
"""
import os
import warnings

import numpy as np

from . import _codes
from .layers import (GRU, LSTM, AvgPool2D, Conv2D, Dense, Dropout, Embedding, Flatten, MaxPool2D, RepeatVector,
                     SimpleRNN, _Recurrent)

DEFAULT_OPSET = 17
DEFAULT_IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "output"

# fastnn's gate blocks -> ONNX's: LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h
GATE_ORDER = {LSTM: (0, 3, 1, 2), GRU: (1, 0, 2), SimpleRNN: (0,)}
RECURRENT_OPS = {LSTM: "LSTM", GRU: "GRU", SimpleRNN: "RNN"}
ACTIVATION_OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "leaky_relu": "LeakyRelu",
                  "softmax": "Softmax"}


def require_onnx():
    """The onnx module, or an ImportError that says how to get it."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export and import need the optional 'onnx' package: "
                          "pip install fastnn[onnx]  (or: pip install onnx)") from exc
    return onnx


def permute_gates(array, order, units):
    """The gate blocks (axis 0, `units` rows each) of a recurrent weight or bias, taken in `order`."""
    return np.concatenate([array[g * units:(g + 1) * units] for g in order], axis=0)


def reorder_gates(array, layer_type, units):
    """A recurrent weight or bias with its gate blocks moved from fastnn's order to ONNX's."""
    return permute_gates(array, GATE_ORDER[layer_type], units)


class _GraphWriter:
    """Collects nodes and initializers; names every value after the layer that makes it."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.elem_type = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes = []
        self.initializers = []

    def constant(self, name, array, dtype=None):
        array = np.ascontiguousarray(array, dtype=self.dtype if dtype is None else dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, outputs, name, **attributes):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outputs, name=name, **attributes))
        return outputs[0] if len(outputs) == 1 else outputs


def _activation(g, layer, x, prefix):
    if layer.activation in (None, "linear"):
        return x
    op = ACTIVATION_OPS[layer.activation]
    attributes = {}
    if op == "LeakyRelu" and g.dtype == np.float64:
        # LeakyRelu's alpha is a float attribute, 0.01 rounded to float32; PRelu takes the slope as a double
        slope = g.constant(f"{prefix}.slope", [_codes.LEAKY_RELU_SLOPE])
        return g.node("PRelu", [x, slope], [f"{prefix}.prelu"], f"{prefix}.PRelu")
    if op == "LeakyRelu":
        attributes["alpha"] = _codes.LEAKY_RELU_SLOPE
    if op == "Softmax":
        attributes["axis"] = -1
    return g.node(op, [x], [f"{prefix}.{op.lower()}"], f"{prefix}.{op}", **attributes)


def _dense(g, layer, x, prefix):
    W, b = layer.W, layer.b
    if len(layer.input_shape) == 1:
        y = g.node("Gemm", [x, g.constant(f"{prefix}.weight", W.T), g.constant(f"{prefix}.bias", b)],
                   [f"{prefix}.gemm"], f"{prefix}.Gemm", transB=1)
    else:  # a sequence (N, T, F): the same weights on every step
        y = g.node("MatMul", [x, g.constant(f"{prefix}.weight", W)], [f"{prefix}.matmul"], f"{prefix}.MatMul")
        y = g.node("Add", [y, g.constant(f"{prefix}.bias", b)], [f"{prefix}.add"], f"{prefix}.Add")
    return _activation(g, layer, y, prefix)


def _conv(g, layer, x, prefix):
    (pt, pb), (pl, pr) = layer._pads()
    y = g.node("Conv", [x, g.constant(f"{prefix}.weight", layer.W), g.constant(f"{prefix}.bias", layer.b)],
               [f"{prefix}.conv"], f"{prefix}.Conv", kernel_shape=list(layer.kernel_size),
               strides=list(layer.stride), pads=[pt, pl, pb, pr], dilations=[1, 1], group=1)
    return _activation(g, layer, y, prefix)


def _pool(g, layer, x, prefix):
    attributes = dict(kernel_shape=list(layer.pool_size), strides=list(layer.stride), pads=[0, 0, 0, 0],
                      ceil_mode=0)
    if isinstance(layer, MaxPool2D):
        return g.node("MaxPool", [x], [f"{prefix}.maxpool"], f"{prefix}.MaxPool", **attributes)
    return g.node("AveragePool", [x], [f"{prefix}.avgpool"], f"{prefix}.AveragePool", count_include_pad=0,
                  **attributes)


def _recurrent(g, layer, x, prefix):
    kind = type(layer)
    U = layer.units
    W = reorder_gates(layer.weight_ih, kind, U)[None]
    R = reorder_gates(layer.weight_hh, kind, U)[None]
    B = np.concatenate([reorder_gates(layer.bias_ih, kind, U), reorder_gates(layer.bias_hh, kind, U)])[None]
    op = RECURRENT_OPS[kind]
    attributes = {"hidden_size": U, "direction": "forward"}
    if kind is GRU:
        attributes["linear_before_reset"] = 1
    if kind is SimpleRNN:
        attributes["activations"] = ["Relu" if layer.activation == "relu" else "Tanh"]
    seq_first = g.node("Transpose", [x], [f"{prefix}.seq_first"], f"{prefix}.Transpose_in", perm=[1, 0, 2])
    outputs = [f"{prefix}.Y", f"{prefix}.Y_h"]
    g.node(op, [seq_first, g.constant(f"{prefix}.W", W), g.constant(f"{prefix}.R", R),
                g.constant(f"{prefix}.B", B)], outputs, f"{prefix}.{op}", **attributes)
    if layer.return_sequences:  # Y (T, 1, N, U) -> (N, T, U)
        axes = g.constant(f"{prefix}.Y_axes", [1], np.int64)
        y = g.node("Squeeze", [outputs[0], axes], [f"{prefix}.Y_squeezed"], f"{prefix}.Squeeze")
        return g.node("Transpose", [y], [f"{prefix}.sequence"], f"{prefix}.Transpose_out", perm=[1, 0, 2])
    axes = g.constant(f"{prefix}.Y_h_axes", [0], np.int64)  # Y_h (1, N, U) -> (N, U)
    return g.node("Squeeze", [outputs[1], axes], [f"{prefix}.last"], f"{prefix}.Squeeze")


def _repeat(g, layer, x, prefix):
    axes = g.constant(f"{prefix}.axes", [1], np.int64)
    y = g.node("Unsqueeze", [x, axes], [f"{prefix}.unsqueezed"], f"{prefix}.Unsqueeze")
    shape = g.constant(f"{prefix}.shape", [1, layer.n, 1], np.int64)
    return g.node("Expand", [y, shape], [f"{prefix}.repeated"], f"{prefix}.Expand")


def _embedding(g, layer, x, prefix):
    return g.node("Gather", [g.constant(f"{prefix}.weight", layer.W), x], [f"{prefix}.vectors"],
                  f"{prefix}.Gather", axis=0)


def _layer(g, layer, x, prefix):
    if isinstance(layer, Dense):
        return _dense(g, layer, x, prefix)
    if isinstance(layer, Conv2D):
        return _conv(g, layer, x, prefix)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        return _pool(g, layer, x, prefix)
    if isinstance(layer, Flatten):
        return g.node("Flatten", [x], [f"{prefix}.flat"], f"{prefix}.Flatten", axis=1)
    if isinstance(layer, Dropout):
        return x
    if isinstance(layer, Embedding):
        return _embedding(g, layer, x, prefix)
    if isinstance(layer, _Recurrent):
        return _recurrent(g, layer, x, prefix)
    if isinstance(layer, RepeatVector):
        return _repeat(g, layer, x, prefix)
    raise ValueError(f"to_onnx: no ONNX form for layer {layer.index} ({layer!r})")


def _declared_output_shape(net):
    return net._declared_output_shapes()[-1]


def _value_info(onnx, name, elem_type, per_sample):
    dims = ["N"] + ["steps" if d is None else int(d) for d in per_sample]
    return onnx.helper.make_tensor_value_info(name, elem_type, dims)


def _check_versions(opset, ir_version):
    for name, value, lowest in (("opset", opset, 14), ("ir_version", ir_version, 7)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
            raise ValueError(f"{name} must be an int >= {lowest}, got {value!r}")
    return int(opset), int(ir_version)


def to_onnx(net, path=None, opset=DEFAULT_OPSET, ir_version=DEFAULT_IR_VERSION):
    """The network as an onnx.ModelProto (written to `path` too when given).

    opset (>= 14: Softmax over the last axis, Squeeze/Unsqueeze with axes as inputs) and ir_version are stamped
    exactly as given, 17 and 8 by default, so that older runtimes accept the file."""
    onnx = require_onnx()
    opset, ir_version = _check_versions(opset, ir_version)
    for layer in net._stateful_layers():
        warnings.warn(f"to_onnx: layer {layer.index} ({layer!r}) is stateful; ONNX carries no state between runs, "
                      "so the exported model starts every batch from a zero state", UserWarning, stacklevel=3)
    g = _GraphWriter(onnx, net.dtype)
    x = INPUT_NAME
    for i, layer in enumerate(net.layers):
        x = _layer(g, layer, x, f"layer{i}")
    g.node("Identity", [x], [OUTPUT_NAME], "output.Identity")
    if net._takes_tokens():
        input_info = _value_info(onnx, INPUT_NAME, onnx.TensorProto.INT64, net.input_shape)
    else:
        input_info = _value_info(onnx, INPUT_NAME, g.elem_type, net.input_shape)
    output_info = _value_info(onnx, OUTPUT_NAME, g.elem_type, _declared_output_shape(net))
    graph = onnx.helper.make_graph(g.nodes, "fastnn", [input_info], [output_info], initializer=g.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="fastnn", producer_version=_version())
    model.ir_version = ir_version
    model.doc_string = f"fastnn Network(loss={net.loss!r}, dtype={net.dtype.name!r}); output = net.predict(input)"
    if path is not None:
        _write(model, path)
    return model


def _version():
    from . import __version__
    return __version__


def _write(model, path):
    path = os.fspath(path)
    data = model.SerializeToString()
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!s}: the folder {directory!s} does not exist")
    with open(path, "wb") as f:
        f.write(data)
