"""A fastnn Network from an ONNX model (needs the optional `onnx` package: pip install fastnn[onnx]).

What it reads: chains of the operators fastnn itself writes (see fastnn.onnx_export), and the patterns PyTorch's
torch.onnx.export (TorchScript and dynamo exporters) and skl2onnx (MLPClassifier / MLPRegressor) wrap around
them: Gemm or MatMul + Add, Relu / Sigmoid / Tanh / LeakyRelu / PRelu / Softmax, Conv, MaxPool, AveragePool,
Flatten or a flattening Reshape, Gather of an embedding table, RNN / LSTM / GRU with the Transpose / Squeeze /
Gather / Slice / Reshape around them, Unsqueeze + Expand (RepeatVector), Identity, Dropout, Cast, Constant and
the shape arithmetic (Shape, Gather, Slice, Concat, ...) exporters emit for a dynamic batch; skl2onnx's label
branch (ArgMax, ArrayFeatureExtractor, ZipMap, ...) is left out, its [1 - p, p] of a binary classifier read as a
two-unit softmax. An activation after max pooling or flattening moves onto the layer before them (they commute).
Anything else is refused with a ValueError naming the operator (and its node) or the attribute: for instance
LogSoftmax, BatchNormalization, Conv with group != 1, a bidirectional or clipped LSTM, a GRU with
linear_before_reset=0, and nn.RNN as torch's dynamo exporter writes it (unrolled into MatMuls).

How: the nodes that the chosen output depends on are evaluated in order over abstract values: constants (NumPy
arrays), shapes whose entries may be symbolic (the batch "N", a dynamic steps axis), zeros of a symbolic shape
(an initial recurrent state), and the one data tensor, whose axes are tagged (batch, steps, directions, ...).
Each operator on the data tensor becomes a layer or changes its layout; a graph whose data path branches is
refused.

The file is untrusted bytes: it is parsed from memory (never onnx.load, which would follow external-data paths),
tensors stored in external files are refused, every tensor's element count is checked against the bytes it
actually holds before any array is made, and sizes are bounded before anything is allocated.
"""
import math
import os

import numpy as np

from . import _codes
from .layers import (GRU, LSTM, AvgPool2D, Conv2D, Dense, Embedding, Flatten, MaxPool2D, RepeatVector,
                     SimpleRNN, _Recurrent)
from .onnx_export import GATE_ORDER, permute_gates, require_onnx

_MAX_FILE_BYTES = 2 << 30  # protobuf's own limit on one message
_MAX_FOLD_ELEMENTS = 1 << 22  # constants computed while reading the graph (shapes, small tensors)
_MAX_SAMPLE_ELEMENTS = 1 << 28  # values per sample of any layer's input or output
_MAX_NODES = 1 << 20

# TensorProto element types read: code -> (NumPy dtype, the repeated field that holds the values)
_TENSOR_TYPES = {1: ("<f4", "float_data"), 11: ("<f8", "double_data"), 7: ("<i8", "int64_data"),
                 6: ("<i4", "int32_data"), 9: ("?", "int32_data")}
_TYPE_NAMES = {0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
               8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
               15: "COMPLEX128", 16: "BFLOAT16"}
_FLOAT_TYPES = {1: "float32", 11: "float64"}
_INT_TYPES = (6, 7)

_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky_relu",
                "PRelu": "leaky_relu", "Softmax": "softmax"}
# activations that commute with max pooling and flattening (monotone, elementwise)
_COMMUTING = ("relu", "sigmoid", "tanh", "leaky_relu")
_RECURRENT = {"RNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
_DEFAULT_CELL_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


class _Invalid(ValueError):
    pass


# ------------------------------------------------------------------------------------------------ loading
def _load(onnx, model):
    """(ModelProto, what to call it in messages)."""
    if isinstance(model, onnx.ModelProto):
        return model, "the ONNX model"
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse(onnx, bytes(model), "the ONNX bytes"), "the ONNX bytes"
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such ONNX file: {path!s}")
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
        if len(data) > _MAX_FILE_BYTES:
            raise ValueError(f"{path!s} is larger than 2 GiB, the most one ONNX protobuf can hold")
        return _parse(onnx, data, path), str(path)
    raise TypeError(f"from_onnx takes a path, bytes or an onnx.ModelProto, got {type(model).__name__}")


def _parse(onnx, data, where):
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - DecodeError, RuntimeWarning, ... all mean "not a model"
        raise ValueError(f"{where!s} is not a valid ONNX model (the protobuf does not parse: "
                         f"{type(exc).__name__}: {str(exc)[:200]})") from None
    return model


def _tensor(t, what):
    """A TensorProto as a NumPy array, after checking its type, dims and that its data holds exactly the
    elements the dims declare (before anything is allocated)."""
    if t.data_location == 1 or len(t.external_data):
        raise _Invalid(f"{what} keeps its data in an external file; external data is refused (embed the "
                       "weights in the model)")
    if t.data_type not in _TENSOR_TYPES:
        raise _Invalid(f"{what} has element type {_TYPE_NAMES.get(t.data_type, t.data_type)}; expected FLOAT, "
                       "DOUBLE or an integer type")
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise _Invalid(f"{what} has negative dimensions {dims}")
    count = math.prod(dims)
    dtype, field = _TENSOR_TYPES[t.data_type]
    dtype = np.dtype(dtype)
    if t.raw_data:
        if len(t.raw_data) != count * dtype.itemsize:
            raise _Invalid(f"{what} declares dims {dims} ({count} elements) but holds {len(t.raw_data)} bytes of "
                           "data")
        array = np.frombuffer(t.raw_data, dtype=dtype).copy()
    else:
        values = getattr(t, field)
        if len(values) != count:
            raise _Invalid(f"{what} declares dims {dims} ({count} elements) but holds {len(values)} values")
        array = np.array(values, dtype=dtype)
    array = array.reshape(dims)
    if dtype.kind == "f":
        return array.astype(dtype.newbyteorder("="), copy=False)
    return array.astype(np.int64 if dtype.kind == "i" else bool, copy=False)


# ------------------------------------------------------------------------------------------ abstract values
class _Shape:
    """A 1-D int64 tensor (or scalar) whose entries may be symbolic ("N" the batch, "T" dynamic steps)."""

    def __init__(self, dims, scalar=False):
        self.dims = list(dims)
        self.scalar = scalar

    def concrete(self):
        return all(isinstance(d, (int, np.integer)) for d in self.dims)


class _Zeros:
    """Zeros of a symbolic shape (ConstantOfShape / Expand of a zero on the batch size): an initial state."""


class _Data:
    """The data tensor: its axes tagged "N" (batch), "T" (steps), "D" (an axis of size 1), "F" (anything
    per sample), with their sizes (None: dynamic); `version` is the layer count when it was made; `source`
    the recurrent layer whose output it is ((layer, "Y" | "Yh" | "last") or None)."""

    def __init__(self, axes, sizes, version, source=None, ids=False):
        self.axes, self.sizes, self.version, self.source, self.ids = list(axes), list(sizes), version, source, ids

    def moved(self, axes, sizes):
        return _Data(axes, sizes, self.version, self.source, self.ids)

    @property
    def standard(self):
        return bool(self.axes) and self.axes[0] == "N" and "D" not in self.axes and "L" not in self.axes


class _Stack:
    """Data tensors concatenated along a leading axis of size 1 (the per-layer states of stacked layers)."""

    def __init__(self, items):
        self.items = items


class _Complement:
    """1 - data (skl2onnx's negative-class probability of a binary classifier)."""

    def __init__(self, data):
        self.data = data


def _attributes(onnx, node):
    out = {}
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH or a.type == onnx.AttributeProto.GRAPHS:
            out[a.name] = a  # only ever refused
        elif a.type == onnx.AttributeProto.TENSOR:
            out[a.name] = a.t
        else:
            value = onnx.helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, list):
                value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
            out[a.name] = value
    return out


# ------------------------------------------------------------------------------------------------ importer
class _Importer:
    def __init__(self, onnx, model, where, output):
        self.onnx, self.model, self.where = onnx, model, where
        graph = model.graph
        if not graph.node:
            raise self.bad("the graph has no nodes")
        if len(graph.node) > _MAX_NODES:
            raise self.bad(f"the graph has {len(graph.node)} nodes")
        if len(graph.sparse_initializer):
            raise self.bad("sparse initializers are not supported")
        self.opset = 1
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                self.opset = entry.version
        self.layers = []  # [layer, params dict]
        self.values = {}
        self.initializers = {t.name: t for t in graph.initializer}
        self.producer = {}
        for node in graph.node:
            for name in node.output:
                if name:
                    if name in self.producer or name in self.initializers:
                        raise self.bad(f"the value {name!r} is produced twice")
                    self.producer[name] = node
        self.output_name = self._choose_output(output)

    def bad(self, why):
        return _Invalid(f"{self.where} cannot be imported: {why}")

    def node_text(self, node):
        name = f" {node.name!r}" if node.name else ""
        return f"{node.op_type} node{name}"

    def unsupported(self, node, why=None):
        if why is None:
            return self.bad(f"unsupported operator {node.op_type!r} (node {node.name!r}); fastnn reads Gemm, "
                            "MatMul, Add, Conv, MaxPool, AveragePool, Flatten, Reshape, Gather, RNN, LSTM, GRU, "
                            "the activations Relu/Sigmoid/Tanh/LeakyRelu/Softmax and shape operators")
        return self.bad(f"{self.node_text(node)}: {why}")

    # ---------------------------------------------------------------------------------- graph structure
    def _choose_output(self, output):
        outputs = [o.name for o in self.model.graph.output]
        if not outputs:
            raise self.bad("the graph has no outputs")
        if output is not None:
            if isinstance(output, (int, np.integer)) and not isinstance(output, bool):
                if not -len(outputs) <= output < len(outputs):
                    raise ValueError(f"output={output} but the graph has {len(outputs)} outputs: {outputs}")
                return self._through_zipmap(outputs[output])
            if output not in outputs:
                raise ValueError(f"output={output!r} is not one of the graph's outputs {outputs}")
            return self._through_zipmap(output)
        candidates = []
        for o in self.model.graph.output:
            name = self._through_zipmap(o.name)
            elem = o.type.tensor_type.elem_type if o.type.HasField("tensor_type") else None
            if name != o.name or elem in _FLOAT_TYPES or elem in (None, 0):
                if name not in candidates:
                    candidates.append(name)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise self.bad(f"none of the graph's outputs {outputs} is a floating-point tensor")
        raise ValueError(f"{self.where} has several outputs {outputs}: choose one with output=<name or index>")

    def _through_zipmap(self, name):
        node = self.producer.get(name)
        if node is not None and node.op_type == "ZipMap" and node.input:
            return node.input[0]  # the probabilities ZipMap turns into dicts
        if node is not None and node.op_type == "Identity" and node.input:
            inner = self.producer.get(node.input[0])
            if inner is not None and inner.op_type == "ZipMap":
                return inner.input[0]
        return name

    def _order(self):
        """The nodes the output depends on, inputs first; ValueError on a cycle or a value nobody makes."""
        graph_inputs = {i.name for i in self.model.graph.input}
        order, state = [], {}
        if self.output_name in self.initializers:
            raise self.bad(f"the output {self.output_name!r} is a constant")
        if self.output_name not in self.producer:
            if self.output_name in graph_inputs:
                raise self.bad(f"the output {self.output_name!r} is the input itself (no layers)")
            raise self.bad(f"no node produces the output {self.output_name!r}")
        stack = [(self.producer[self.output_name], False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            if done:
                state[key] = 2
                order.append(node)
                continue
            if state.get(key) == 2:
                continue
            if state.get(key) == 1:
                continue
            state[key] = 1
            stack.append((node, True))
            for name in node.input:
                if not name or name in self.initializers:
                    continue
                parent = self.producer.get(name)
                if parent is None:
                    if name in graph_inputs:
                        continue
                    raise self.bad(f"{self.node_text(node)} reads {name!r}, which no node, initializer or graph "
                                   "input provides")
                if state.get(id(parent)) == 1:
                    raise self.bad(f"the graph has a cycle through {self.node_text(parent)}")
                if state.get(id(parent)) != 2:
                    stack.append((parent, False))
        return order

    # -------------------------------------------------------------------------------------- values
    def value(self, name, node):
        if name in self.values:
            if self.values[name] is None:
                raise self.unsupported(node, f"it reads {name!r}, an output fastnn does not model (such as "
                                             "MaxPool's Indices or LSTM's Y_c)")
            return self.values[name]
        if name in self.initializers:
            array = _tensor(self.initializers[name], f"the initializer {name!r}")
            self.values[name] = array
            return array
        raise self.bad(f"{self.node_text(node)} reads {name!r}, which is not available")

    def const(self, node, i, what="input"):
        if i >= len(node.input) or not node.input[i]:
            return None
        v = self.value(node.input[i], node)
        if isinstance(v, _Shape) and v.concrete():
            v = np.array(v.dims, dtype=np.int64).reshape(() if v.scalar else -1)
        if not isinstance(v, np.ndarray):
            raise self.unsupported(node, f"its {what} {node.input[i]!r} must be a constant")
        return v

    def data_input(self, node, i=0):
        v = self.value(node.input[i], node) if i < len(node.input) and node.input[i] else None
        if not isinstance(v, _Data):
            raise self.unsupported(node, f"input {i} must be the data tensor")
        if v.version != len(self.layers):
            raise self.bad(f"{self.node_text(node)} reads an earlier layer's output: the graph branches, and "
                           "fastnn networks are chains of layers")
        return v

    # ----------------------------------------------------------------------------------- the input
    def graph_input(self):
        inits = set(self.initializers)
        used = set()
        for node in self.nodes:
            used.update(node.input)
        inputs = [i for i in self.model.graph.input if i.name not in inits and i.name in used]
        if len(inputs) != 1:
            raise self.bad(f"the output depends on {len(inputs)} graph inputs "
                           f"{[i.name for i in inputs]}; a fastnn network takes one")
        info = inputs[0]
        if not info.type.HasField("tensor_type"):
            raise self.bad(f"the input {info.name!r} is not a tensor")
        tt = info.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES and tt.elem_type not in _INT_TYPES:
            raise self.bad(f"the input {info.name!r} has element type {_TYPE_NAMES.get(tt.elem_type, tt.elem_type)}"
                           "; expected FLOAT or DOUBLE (or int64 token ids)")
        if not tt.HasField("shape") or len(tt.shape.dim) < 2:
            raise self.bad(f"the input {info.name!r} must declare its shape, batch axis first")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if any(d is not None and d < 0 for d in dims):
            raise self.bad(f"the input {info.name!r} has a negative dimension")
        ids = tt.elem_type in _INT_TYPES
        per = dims[1:]
        dynamic_steps = (ids and len(per) == 1) or (not ids and len(per) == 2)
        for k, d in enumerate(per):
            if d is None and not (k == 0 and dynamic_steps):
                raise self.bad(f"the input {info.name!r} has an unknown size at axis {k + 1}; only the batch "
                               "axis (and a sequence's steps) may be dynamic")
        if math.prod(d or 1 for d in per) > _MAX_SAMPLE_ELEMENTS:
            raise self.bad(f"the input {info.name!r} declares {per} values per sample")
        if len(per) == 1 and not ids:
            axes = ["N", "F"]
        elif len(per) == 1:
            axes = ["N", "T"]
        elif len(per) == 2:
            axes = ["N", "T", "F"]
        elif len(per) == 3:
            axes = ["N", "F", "F", "F"]
        else:
            raise self.bad(f"the input {info.name!r} has rank {len(dims)}; fastnn takes rank 2 to 4")
        self.input_dims = per
        self.input_elem = tt.elem_type
        self.values[info.name] = _Data(axes, ["N", *[("T" if d is None else d) for d in per]], 0, ids=ids)

    # ---------------------------------------------------------------------------------------- layers
    def add_layer(self, layer, params, data, axes, sizes, source=None):
        for s in sizes[1:]:
            if isinstance(s, int) and s > _MAX_SAMPLE_ELEMENTS:
                raise self.bad(f"a layer output of {s} values per sample")
        if math.prod(s for s in sizes[1:] if isinstance(s, int)) > _MAX_SAMPLE_ELEMENTS:
            raise self.bad(f"a layer output of shape {sizes[1:]} per sample is too large")
        self.commit(data)
        self.layers.append([layer, params])
        return _Data(axes, sizes, len(self.layers), source)

    def commit(self, data):
        """The data is consumed by a layer (or is the output): settle what a recurrent output it came from
        returns."""
        if data.source is None:
            return
        layer, which = data.source
        want = which == "Y"
        if layer.return_sequences is None:
            layer.return_sequences = want
        elif layer.return_sequences != want:
            raise self.bad(f"both the sequence and the last state of {type(layer).__name__} are used")
        data.source = None

    def last_layer(self):
        return self.layers[-1] if self.layers else None

    # ---------------------------------------------------------------------------------------- run
    def run(self):
        self.nodes = self._order()
        self.graph_input()
        for node in self.nodes:
            if node.domain not in ("", "ai.onnx"):
                raise self.unsupported(node, f"operator {node.op_type!r} of domain {node.domain!r} is not "
                                             "supported")
            if not isinstance(node.op_type, str) or not isinstance(node.domain, str):
                raise self.bad(f"a node's operator name is not valid UTF-8: {node.op_type!r}")
            handler = getattr(self, "op_" + node.op_type, None)
            if handler is None:
                raise self.unsupported(node)
            try:
                attrs = _attributes(self.onnx, node)
                for name, a in attrs.items():
                    if isinstance(a, self.onnx.AttributeProto):
                        raise self.unsupported(node, f"attribute {name!r} holds a subgraph")
                results = handler(node, attrs)
            except (_Invalid, MemoryError, RecursionError):
                raise
            except Exception as exc:  # noqa: BLE001 - a malformed node: wrong attribute types, ranks, ...
                raise self.unsupported(node, f"malformed ({type(exc).__name__}: {str(exc)[:200]})") from None
            if not isinstance(results, tuple):
                results = (results,)
            for name, value in zip(node.output, results):
                if name:
                    self.values[name] = value
            for name in node.output[len(results):]:
                if name:
                    self.values[name] = None
        out = self.values.get(self.output_name)
        if not isinstance(out, _Data):
            raise self.bad(f"the output {self.output_name!r} does not come from the input through layers")
        if out.version != len(self.layers) or not out.standard:
            raise self.bad(f"the output {self.output_name!r} is not in a (batch, ...) layout fastnn produces")
        self.commit(out)
        return out

    # ------------------------------------------------------------------------------ no-ops, casts
    def op_Identity(self, node, attrs):
        return self.value(node.input[0], node)

    def op_Dropout(self, node, attrs):
        v = self.value(node.input[0], node)
        if len(node.input) > 2 and node.input[2]:
            training = self.const(node, 2, "training_mode")
            if training is not None and bool(np.any(training)):
                raise self.unsupported(node, "training_mode is set")
        return v

    def op_Cast(self, node, attrs):
        v = self.value(node.input[0], node)
        to = attrs.get("to")
        if isinstance(v, np.ndarray):
            if to not in _TENSOR_TYPES:
                raise self.unsupported(node, f"cast to {_TYPE_NAMES.get(to, to)}")
            return v.astype(np.dtype(_TENSOR_TYPES[to][0]).newbyteorder("="))
        if isinstance(v, _Data):
            if v.ids and to in _INT_TYPES or not v.ids and to == self.input_elem:
                return v  # a cast to the type it has
            raise self.unsupported(node, f"cast of the data to {_TYPE_NAMES.get(to, to)} (a fastnn network "
                                         "computes in one floating-point type)")
        if isinstance(v, (_Shape, _Zeros)):
            return v
        raise self.unsupported(node)

    def op_Constant(self, node, attrs):
        if "value" in attrs:
            return _tensor(attrs["value"], f"the value of {self.node_text(node)}")
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                           ("value_ints", np.int64)):
            if key in attrs:
                values = attrs[key]
                if isinstance(values, list) and len(values) > _MAX_FOLD_ELEMENTS:
                    raise self.unsupported(node, "too many values")
                return np.array(values, dtype=dtype)
        raise self.unsupported(node, f"attributes {sorted(attrs)}")

    # -------------------------------------------------------------------------------------- shapes
    def op_Shape(self, node, attrs):
        v = self.value(node.input[0], node)
        if isinstance(v, np.ndarray):
            dims = list(v.shape)
        elif isinstance(v, _Data):
            dims = list(v.sizes)
        else:
            raise self.unsupported(node)
        start, end = attrs.get("start", 0), attrs.get("end", len(dims))
        return _Shape(dims[slice(start, end)])

    def _shape_or_const(self, node, i):
        v = self.value(node.input[i], node)
        if isinstance(v, _Shape):
            return v
        if isinstance(v, np.ndarray) and v.dtype.kind == "i" and v.ndim <= 1 and v.size <= 64:
            return _Shape([int(x) for x in v.reshape(-1)], scalar=v.ndim == 0)
        return None

    def _fits(self, node, elements):
        """Refuse, before computing it, a constant larger than any shape arithmetic needs."""
        if elements > _MAX_FOLD_ELEMENTS:
            raise self.unsupported(node, f"it would compute a constant of {elements} elements")

    def op_Gather(self, node, attrs):
        axis = attrs.get("axis", 0)
        table = self.value(node.input[0], node)
        index = self.value(node.input[1], node)
        if isinstance(index, _Data):
            return self._embedding(node, table, axis)
        if isinstance(table, _Shape):
            idx = self.const(node, 1, "index")
            if idx.ndim > 1:
                raise self.unsupported(node)
            n = len(table.dims)
            picked = [table.dims[int(i) % n] if -n <= int(i) < n else None for i in idx.reshape(-1)]
            if None in picked:
                raise self.unsupported(node, "index out of range")
            return _Shape(picked, scalar=idx.ndim == 0)
        if isinstance(table, np.ndarray):
            idx = self.const(node, 1, "index")
            self._fits(node, idx.size * table.size // max(1, table.shape[axis] if table.ndim else 1))
            try:
                return np.take(table, idx, axis=axis)
            except (IndexError, ValueError, np.exceptions.AxisError) as exc:
                raise self.unsupported(node, str(exc)) from None
        if isinstance(table, _Data):
            return self._select(node, self.data_input(node, 0), axis, self.const(node, 1, "index"))
        if isinstance(table, _Stack):
            idx = self.const(node, 1, "index")
            if axis != 0 or idx.ndim != 0 or not -len(table.items) <= int(idx) < len(table.items):
                raise self.unsupported(node, "only one layer's state can be taken from stacked states")
            picked = table.items[int(idx)]
            if picked.version != len(self.layers):
                raise self.unsupported(node, "only the last layer's state can be taken from stacked states")
            return picked.moved(picked.axes[1:], picked.sizes[1:])
        raise self.unsupported(node)

    def _select(self, node, data, axis, idx):
        """Gather of one index along an axis of the data: the last step of a sequence, or a size-1 axis."""
        rank = len(data.axes)
        if not -rank <= axis < rank or idx.ndim != 0:
            raise self.unsupported(node, "only one index along one axis of the data can be taken")
        axis %= rank
        tag, size, i = data.axes[axis], data.sizes[axis], int(idx)
        if size == 1 and i in (0, -1) and tag in ("D", "L"):
            return data.moved(data.axes[:axis] + data.axes[axis + 1:], data.sizes[:axis] + data.sizes[axis + 1:])
        if tag == "T" and (i == -1 or (isinstance(size, int) and i == size - 1)):
            if data.source is None or data.source[1] != "Y":
                raise self.unsupported(node, "taking the last step is supported on a recurrent layer's output")
            out = data.moved(data.axes[:axis] + data.axes[axis + 1:], data.sizes[:axis] + data.sizes[axis + 1:])
            out.source = (data.source[0], "last")
            return out
        raise self.unsupported(node, f"Gather of index {i} on axis {axis} of the data")

    def op_Slice(self, node, attrs):
        v = self.value(node.input[0], node)
        starts, ends = self.const(node, 1, "starts"), self.const(node, 2, "ends")
        axes = self.const(node, 3, "axes")
        steps = self.const(node, 4, "steps")
        if starts is None or ends is None:
            raise self.unsupported(node, "starts and ends must be given")
        starts, ends = starts.reshape(-1).tolist(), ends.reshape(-1).tolist()
        axes = list(range(len(starts))) if axes is None else axes.reshape(-1).tolist()
        steps = [1] * len(starts) if steps is None else steps.reshape(-1).tolist()
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise self.unsupported(node, "starts, ends, axes and steps differ in length")
        if isinstance(v, _Shape):
            if axes not in ([0], [-1]):
                raise self.unsupported(node)
            return _Shape(v.dims[slice(starts[0], ends[0], steps[0])])
        if isinstance(v, _Zeros):
            return v
        if isinstance(v, np.ndarray):
            index = [slice(None)] * v.ndim
            try:
                for s, e, a, st in zip(starts, ends, axes, steps):
                    index[a] = slice(s, e, st)
                return v[tuple(index)].copy()
            except (IndexError, ValueError, TypeError) as exc:
                raise self.unsupported(node, str(exc)) from None
        if isinstance(v, _Data):
            data = self.data_input(node, 0)
            out = data
            for s, e, a, st in zip(starts, ends, axes, steps):
                out = self._slice_data(node, out, s, e, a, st)
            return out
        raise self.unsupported(node)

    def _slice_data(self, node, data, start, end, axis, step):
        rank = len(data.axes)
        if not -rank <= axis < rank or step != 1:
            raise self.unsupported(node, "slicing the data")
        axis %= rank
        size, tag = data.sizes[axis], data.axes[axis]
        to_end = end >= 2**31 - 1 or (isinstance(size, int) and end >= size)  # exporters write INT64_MAX
        if start == 0 and to_end:
            return data
        last = to_end and (start == -1 or (isinstance(size, int) and start == size - 1))
        if tag == "T" and last and data.source is not None and data.source[1] == "Y":
            out = data.moved(data.axes[:axis] + ["L"] + data.axes[axis + 1:],
                             data.sizes[:axis] + [1] + data.sizes[axis + 1:])
            out.source = (data.source[0], "last")
            return out
        raise self.unsupported(node, f"slice [{start}:{end}] of axis {axis} of the data")

    def op_Concat(self, node, attrs):
        vals = [self.value(name, node) for name in node.input]
        if len(vals) > 1 and all(isinstance(v, _Data) and v.axes[:1] == ["D"] for v in vals) and \
                attrs.get("axis") == 0:
            return _Stack(vals)  # the last states of stacked recurrent layers (PyTorch's h_n), one per layer
        if any(isinstance(v, _Data) for v in vals) or any(isinstance(v, _Complement) for v in vals):
            return self._binary_probabilities(node, vals, attrs.get("axis"))
        if all(isinstance(v, np.ndarray) for v in vals):
            self._fits(node, sum(v.size for v in vals))
            try:
                return np.concatenate(vals, axis=attrs.get("axis", 0))
            except (ValueError, np.exceptions.AxisError) as exc:
                raise self.unsupported(node, str(exc)) from None
        dims = []
        for i in range(len(node.input)):
            s = self._shape_or_const(node, i)
            if s is None:
                raise self.unsupported(node)
            dims += s.dims
        return _Shape(dims)

    def op_Unsqueeze(self, node, attrs):
        v = self.value(node.input[0], node)
        axes = attrs.get("axes") if self.opset < 13 else self.const(node, 1, "axes")
        axes = [int(a) for a in np.asarray(axes).reshape(-1)]
        if isinstance(v, _Shape):
            if v.scalar and axes in ([0], [-1]):
                return _Shape(v.dims)
            raise self.unsupported(node)
        if isinstance(v, np.ndarray):
            return np.expand_dims(v, tuple(axes))
        if isinstance(v, _Data):
            data = self.data_input(node)
            axes_, sizes = list(data.axes), list(data.sizes)
            rank = len(axes_) + len(axes)
            for a in sorted(a % rank for a in axes):
                axes_.insert(a, "D")
                sizes.insert(a, 1)
            return data.moved(axes_, sizes)
        raise self.unsupported(node)

    def op_Squeeze(self, node, attrs):
        v = self.value(node.input[0], node)
        axes = attrs.get("axes") if self.opset < 13 else self.const(node, 1, "axes")
        if isinstance(v, _Shape):
            if len(v.dims) == 1:
                return _Shape(v.dims, scalar=True)
            raise self.unsupported(node)
        if isinstance(v, np.ndarray):
            return np.squeeze(v, axis=None if axes is None else tuple(int(a) for a in np.asarray(axes).ravel()))
        if isinstance(v, _Zeros):
            return v
        if isinstance(v, _Data):
            data = self.data_input(node)
            rank = len(data.axes)
            if axes is None:
                drop = [k for k, s in enumerate(data.sizes) if s == 1]
            else:
                drop = [int(a) % rank for a in np.asarray(axes).ravel()]
            for k in drop:
                if data.sizes[k] != 1:
                    raise self.unsupported(node, f"axis {k} of the data has size {data.sizes[k]}, not 1")
            keep = [k for k in range(rank) if k not in drop]
            return data.moved([data.axes[k] for k in keep], [data.sizes[k] for k in keep])
        raise self.unsupported(node)

    def op_Transpose(self, node, attrs):
        v = self.value(node.input[0], node)
        perm = attrs.get("perm")
        if isinstance(v, np.ndarray):
            return np.transpose(v, perm)
        if isinstance(v, _Data):
            data = self.data_input(node)
            perm = list(range(len(data.axes)))[::-1] if perm is None else list(perm)
            if sorted(perm) != list(range(len(data.axes))):
                raise self.unsupported(node, f"perm {perm} for data of rank {len(data.axes)}")
            return data.moved([data.axes[p] for p in perm], [data.sizes[p] for p in perm])
        raise self.unsupported(node)

    def op_Reshape(self, node, attrs):
        v = self.value(node.input[0], node)
        target = self._shape_or_const(node, 1)
        if target is None:
            raise self.unsupported(node, "the target shape must be known")
        if isinstance(v, _Shape):
            return _Shape(v.dims, scalar=target.dims == [])
        if isinstance(v, np.ndarray):
            if not target.concrete():
                raise self.unsupported(node)
            try:
                return v.reshape([int(d) for d in target.dims])
            except ValueError as exc:
                raise self.unsupported(node, str(exc)) from None
        if not isinstance(v, _Data):
            raise self.unsupported(node)
        data = self.data_input(node)
        dims = list(target.dims)
        if attrs.get("allowzero", 0) == 0:
            dims = [data.sizes[k] if d == 0 and k < len(data.sizes) else d for k, d in enumerate(dims)]
        per = data.sizes[1:] if data.axes[0] == "N" else None
        known = [s for s in data.sizes if s not in ("N", "T")]
        if dims.count(-1) > 1:
            raise self.unsupported(node, "more than one -1 in the shape")
        if -1 in dims:
            k = dims.index(-1)
            others = [d for d in dims if d != -1]
            sym_self = sorted(str(s) for s in data.sizes if isinstance(s, str))
            sym_other = sorted(str(s) for s in others if isinstance(s, str))
            if sym_self == sym_other:
                dims[k] = math.prod(known) // max(1, math.prod(d for d in others if isinstance(d, int)))
            elif sym_other == [] and sym_self == ["N"] and math.prod(others) == math.prod(known):
                dims[k] = "N"
            else:
                raise self.unsupported(node, f"cannot resolve the shape {target.dims}")
        if data.standard and per is not None and dims == ["N", math.prod(per)] and \
                all(isinstance(s, int) for s in per):
            return self._flatten(node, data)
        squeezed_from = [(a, s) for a, s in zip(data.axes, data.sizes) if s != 1]
        squeezed_to = [d for d in dims if d != 1]
        if [s for _, s in squeezed_from] == squeezed_to:  # only size-1 axes move
            axes, it = [], iter(squeezed_from)
            for d in dims:
                axes.append("D" if d == 1 else next(it)[0])
            if data.standard and dims and dims[0] == "N" and data.sizes[0] == "N":
                axes = ["N" if d == "N" else ("F" if a == "D" else a) for a, d in zip(axes, dims)]
            return data.moved(axes, dims)
        raise self.unsupported(node, f"reshape of data {data.sizes} to {target.dims}")

    def op_ConstantOfShape(self, node, attrs):
        shape = self._shape_or_const(node, 0)
        value = _tensor(attrs["value"], "ConstantOfShape's value") if "value" in attrs else np.zeros(1, np.float32)
        if shape is None or value.size != 1:
            raise self.unsupported(node)
        if shape.concrete():
            if math.prod(shape.dims) > _MAX_FOLD_ELEMENTS or any(d < 0 for d in shape.dims):
                raise self.unsupported(node, f"shape {shape.dims}")
            return np.full(shape.dims, value.reshape(()), dtype=value.dtype)
        if value.reshape(()) != 0:
            raise self.unsupported(node, "a non-zero value over a dynamic shape")
        return _Zeros()

    def op_Expand(self, node, attrs):
        v = self.value(node.input[0], node)
        if isinstance(v, _Data):
            return self._repeat(node, self.data_input(node), self._shape_or_const(node, 1))
        shape = self._shape_or_const(node, 1)
        if isinstance(v, np.ndarray) and shape is not None:
            if shape.concrete():
                if math.prod(max(int(d), 1) for d in shape.dims) * max(v.size, 1) > _MAX_FOLD_ELEMENTS:
                    raise self.unsupported(node, f"shape {shape.dims}")
                try:
                    return v * np.ones([int(d) for d in shape.dims], dtype=v.dtype)
                except ValueError as exc:
                    raise self.unsupported(node, str(exc)) from None
            if not np.any(v):
                return _Zeros()
        if isinstance(v, _Zeros):
            return v
        raise self.unsupported(node)

    def op_Tile(self, node, attrs):
        v = self.value(node.input[0], node)
        if not isinstance(v, _Data):
            raise self.unsupported(node)
        data = self.data_input(node)
        repeats = self.const(node, 1, "repeats").reshape(-1).tolist()
        target = [s if r == 1 else r for s, r in zip(data.sizes, repeats)]
        return self._repeat(node, data, _Shape(target))

    def _repeat(self, node, data, shape):
        """Unsqueeze(1) then Expand / Tile: RepeatVector."""
        if shape is None or data.axes[:2] != ["N", "D"] or len(data.axes) != 3:
            raise self.unsupported(node, "only (batch, 1, features) data can be repeated along axis 1")
        dims = list(shape.dims)
        if len(dims) != 3:
            raise self.unsupported(node, f"expanding to {dims}")
        n = dims[1]
        if not isinstance(n, (int, np.integer)) or n < 1 or dims[0] not in (1, "N", -1) or \
                dims[2] not in (1, data.sizes[2]):
            raise self.unsupported(node, f"expanding {data.sizes} to {dims}")
        features = data.sizes[2]
        base = data.moved(["N", "F"], ["N", features])
        return self.add_layer(RepeatVector(int(n)), {}, base, ["N", "T", "F"], ["N", int(n), features])

    # ------------------------------------------------------------------------------ arithmetic
    def _arith(self, node, fn):
        a, b = (self.value(name, node) for name in node.input[:2])
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            self._fits(node, math.prod(np.broadcast_shapes(a.shape, b.shape)))  # before computing it
            return fn(a, b)
        if isinstance(a, _Shape) or isinstance(b, _Shape):
            sa, sb = self._shape_or_const(node, 0), self._shape_or_const(node, 1)
            if sa is not None and sb is not None and sa.concrete() and sb.concrete():
                out = fn(np.array(sa.dims), np.array(sb.dims))
                return _Shape(out.reshape(-1).tolist(), scalar=sa.scalar and sb.scalar)
            if sa is not None and sb is not None and len(sa.dims) == len(sb.dims) == 1 and fn is np.multiply:
                x, y = sa.dims[0], sb.dims[0]
                if x == 1 or y == 1:
                    return _Shape([y if x == 1 else x], scalar=sa.scalar and sb.scalar)
        return None

    def op_Mul(self, node, attrs):
        out = self._arith(node, np.multiply)
        if out is None:
            raise self.unsupported(node, "multiplying the data")
        return out

    def op_Div(self, node, attrs):
        out = self._arith(node, lambda a, b: a // b if a.dtype.kind == "i" else a / b)
        if out is None:
            raise self.unsupported(node, "dividing the data")
        return out

    def op_Sub(self, node, attrs):
        a, b = (self.value(name, node) for name in node.input[:2])
        if isinstance(a, np.ndarray) and isinstance(b, _Data) and a.size == 1 and float(a.reshape(())) == 1.0:
            return _Complement(b)
        out = self._arith(node, np.subtract)
        if out is None:
            raise self.unsupported(node, "subtracting from the data")
        return out

    def op_Add(self, node, attrs):
        a, b = (self.value(name, node) for name in node.input[:2])
        if isinstance(a, _Data) or isinstance(b, _Data):
            data_index = 0 if isinstance(a, _Data) else 1
            data = self.data_input(node, data_index)
            bias = self.const(node, 1 - data_index, "bias")
            return self._add_bias(node, data, bias)
        out = self._arith(node, np.add)
        if out is None:
            raise self.unsupported(node)
        return out

    def _add_bias(self, node, data, bias):
        last = self.last_layer()
        if last is None or not isinstance(last[0], (Dense, Conv2D)) or last[0].activation != "linear" or \
                data.source is not None:
            raise self.unsupported(node, "adding a constant is supported as the bias of a Dense or Conv layer")
        layer, params = last
        units = layer.units if isinstance(layer, Dense) else layer.filters
        if bias.dtype.kind != "f":
            raise self.unsupported(node, "the bias is not floating point")
        b = bias
        if isinstance(layer, Conv2D):
            b = b.reshape(b.shape[:-2]) if b.ndim >= 3 and b.shape[-2:] == (1, 1) else None
        if b is None or b.ndim > 1 and any(s != 1 for s in b.shape[:-1]) or b.size not in (1, units):
            raise self.unsupported(node, f"a bias of shape {bias.shape} for {units} units")
        b = np.broadcast_to(b.reshape(-1), (units,))
        if params.get("open_bias"):
            params["b"] = np.array(b)
            params["open_bias"] = False
        else:
            params["b"] = params["b"] + b
        return data

    # ------------------------------------------------------------------------------ activations
    def _activation(self, node, attrs):
        name = _ACTIVATIONS[node.op_type]
        data = self.data_input(node)
        if not data.standard:
            raise self.unsupported(node, "the data is not in a (batch, ...) layout")
        if name == "leaky_relu":
            alpha = attrs.get("alpha", 0.01) if node.op_type == "LeakyRelu" else self.const(node, 1, "slope")
            alpha = np.asarray(alpha, dtype=np.float64).reshape(-1)
            if alpha.size < 1 or not np.all(np.abs(alpha - _codes.LEAKY_RELU_SLOPE) <= 1e-7):
                raise self.unsupported(node, f"slope {alpha[:4].tolist()}: fastnn's leaky_relu has slope "
                                             f"{_codes.LEAKY_RELU_SLOPE}")
        if name == "softmax":
            rank = len(data.axes)
            axis = attrs.get("axis", -1 if self.opset >= 13 else 1)
            if axis % rank != rank - 1:
                raise self.unsupported(node, f"axis={axis}: fastnn's softmax is over the last axis")
        # find the layer that takes it: the last one, or one before max pooling / flattening
        k = len(self.layers) - 1
        while k >= 0 and name in _COMMUTING and isinstance(self.layers[k][0], (MaxPool2D, Flatten)):
            k -= 1
        if k < 0 or not isinstance(self.layers[k][0], (Dense, Conv2D)) or self.layers[k][0].activation != "linear":
            raise self.unsupported(node, "an activation must follow a Dense or Conv layer (fastnn has no "
                                         "activation layers)")
        layer, params = self.layers[k]
        if name == "softmax" and isinstance(layer, Conv2D):
            raise self.unsupported(node, "softmax after a convolution")
        layer.activation = name
        params["open_bias"] = False
        return data

    op_Relu = op_Sigmoid = op_Tanh = op_LeakyRelu = op_PRelu = op_Softmax = _activation

    def _binary_probabilities(self, node, vals, axis):
        """skl2onnx's [1 - p, p] of a binary classifier: a two-unit softmax (softmax([0, z]) = [1 - s(z), s(z)])."""
        if len(vals) != 2 or not isinstance(vals[0], _Complement) or vals[0].data is not vals[1]:
            raise self.unsupported(node, "concatenating the data")
        data = self.data_input(node, 1)
        last = self.last_layer()
        if not data.standard or len(data.axes) != 2 or axis not in (1, -1) or last is None or \
                not isinstance(last[0], Dense) or last[0].activation != "sigmoid" or last[0].units != 1:
            raise self.unsupported(node, "only [1 - p, p] of a one-unit sigmoid output is supported")
        layer, params = last
        params["W"] = np.concatenate([np.zeros_like(params["W"]), params["W"]], axis=1)
        params["b"] = np.concatenate([np.zeros_like(params["b"]), params["b"]])
        layer.units, layer.activation = 2, "softmax"
        return data.moved(data.axes, ["N", 2])

    # ---------------------------------------------------------------------------------- dense
    def _check_weight(self, node, W, rows, what="weight"):
        if W.dtype.kind != "f" or W.ndim != 2:
            raise self.unsupported(node, f"the {what} must be a floating-point matrix, got {W.dtype} {W.shape}")
        if W.shape[0] != rows:
            raise self.bad(f"shapes do not chain: {self.node_text(node)} has a {what} of shape {W.shape} for "
                           f"{rows} input features")

    def op_Gemm(self, node, attrs):
        data = self.data_input(node)
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise self.unsupported(node, "transA, alpha and beta must be 0, 1 and 1")
        if not data.standard or len(data.axes) != 2:
            raise self.unsupported(node, f"Gemm takes (batch, features) data, got {data.sizes}")
        B = self.const(node, 1, "B")
        if B.ndim != 2:
            raise self.unsupported(node, f"B has shape {B.shape}")
        W = B.T if attrs.get("transB", 0) else B
        self._check_weight(node, W, data.sizes[1])
        out = self._dense(node, data, W)
        C = self.const(node, 2, "C")
        if C is not None:
            self._add_bias(node, out, C)
        self.layers[-1][1]["open_bias"] = False
        return out

    def op_MatMul(self, node, attrs):
        data = self.data_input(node)
        W = self.const(node, 1, "weight")
        if not data.standard or len(data.axes) not in (2, 3):
            hint = ""
            if data.axes[:1] == ["T"]:
                hint = (" (time-major data: a recurrent layer written as a loop of MatMuls, as torch.onnx.export's "
                        "dynamo exporter writes nn.RNN, is not read; export with dynamo=False)")
            raise self.unsupported(node, f"MatMul takes (batch, features) or (batch, steps, features) data, got "
                                         f"{data.sizes}{hint}")
        self._check_weight(node, W, data.sizes[-1])
        return self._dense(node, data, W)

    def _dense(self, node, data, W):
        layer = Dense(int(W.shape[1]))
        sizes = data.sizes[:-1] + [int(W.shape[1])]
        return self.add_layer(layer, {"W": W, "b": np.zeros(W.shape[1], W.dtype), "open_bias": True}, data,
                              data.axes[:-1] + ["F"], sizes)

    # --------------------------------------------------------------------------------- images
    def op_Conv(self, node, attrs):
        data = self.data_input(node)
        W = self.const(node, 1, "weight")
        if not data.standard or len(data.axes) != 4:
            raise self.unsupported(node, f"Conv takes (batch, channels, height, width) data, got {data.sizes}")
        if W.ndim != 4 or W.dtype.kind != "f":
            raise self.unsupported(node, f"a 2-D convolution's weight must be 4-D floats, got {W.shape}")
        if attrs.get("group", 1) != 1:
            raise self.unsupported(node, f"attribute group={attrs['group']} (fastnn's Conv2D has group 1)")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise self.unsupported(node, f"attribute dilations={attrs['dilations']}")
        if W.shape[1] != data.sizes[1]:
            raise self.bad(f"shapes do not chain: {self.node_text(node)} has a weight of shape {W.shape} for "
                           f"{data.sizes[1]} input channels")
        kernel = tuple(int(k) for k in W.shape[2:])
        if list(attrs.get("kernel_shape", kernel)) != list(kernel):
            raise self.unsupported(node, "kernel_shape differs from the weight's")
        stride = tuple(attrs.get("strides", [1, 1]))
        padding = self._conv_padding(node, attrs, kernel, stride)
        layer = Conv2D(int(W.shape[0]), kernel, stride=stride, padding=padding)
        bias = self.const(node, 2, "bias")
        params = {"W": W, "b": np.zeros(W.shape[0], W.dtype) if bias is None else bias, "open_bias": bias is None}
        if bias is not None and (bias.shape != (W.shape[0],) or bias.dtype.kind != "f"):
            raise self.unsupported(node, f"bias of shape {bias.shape}")
        return self._image_layer(node, layer, params, data)

    def _conv_padding(self, node, attrs, kernel, stride):
        auto = attrs.get("auto_pad", "NOTSET")
        same = [(k - 1) // 2 for k in kernel] + [k - 1 - (k - 1) // 2 for k in kernel]
        if auto == "VALID":
            return 0
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if stride != (1, 1) or (auto == "SAME_LOWER" and any(k % 2 == 0 for k in kernel)):
                raise self.unsupported(node, f"auto_pad={auto} with stride {stride} / even kernels")
            return "same"
        if auto != "NOTSET":
            raise self.unsupported(node, f"auto_pad={auto}")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4 or any(p < 0 for p in pads):
            raise self.unsupported(node, f"pads={pads}")
        if pads[0] == pads[2] and pads[1] == pads[3]:
            return (pads[0], pads[1])
        if pads == same and stride == (1, 1):
            return "same"
        raise self.unsupported(node, f"asymmetric pads={pads}")

    def _image_layer(self, node, layer, params, data):
        try:
            layer.build(tuple(data.sizes[1:]), len(self.layers))
        except ValueError as exc:
            raise self.bad(f"shapes do not chain at {self.node_text(node)}: {exc}") from None
        shape = layer.output_shape
        return self.add_layer(layer, params, data, ["N", "F", "F", "F"], ["N", *shape])

    def _pool(self, node, attrs, cls):
        data = self.data_input(node)
        if not data.standard or len(data.axes) != 4:
            raise self.unsupported(node, f"pooling takes (batch, channels, height, width) data, got {data.sizes}")
        for key, ok in (("auto_pad", ("NOTSET", "VALID")), ("ceil_mode", (0,)), ("storage_order", (0,))):
            if key in attrs and attrs[key] not in ok:
                raise self.unsupported(node, f"attribute {key}={attrs[key]!r}")
        if any(p != 0 for p in attrs.get("pads", [])):
            raise self.unsupported(node, f"attribute pads={attrs['pads']} (fastnn's pooling has no padding)")
        if any(d != 1 for d in attrs.get("dilations", [])):
            raise self.unsupported(node, f"attribute dilations={attrs['dilations']}")
        kernel = attrs.get("kernel_shape")
        if kernel is None or len(kernel) != 2:
            raise self.unsupported(node, f"kernel_shape={kernel}")
        stride = attrs.get("strides", [1, 1])
        return self._image_layer(node, cls(tuple(kernel), stride=tuple(stride)), {}, data)

    def op_MaxPool(self, node, attrs):
        return self._pool(node, attrs, MaxPool2D)

    def op_AveragePool(self, node, attrs):
        return self._pool(node, attrs, AvgPool2D)

    def op_Flatten(self, node, attrs):
        data = self.data_input(node)
        if attrs.get("axis", 1) != 1 or not data.standard:
            raise self.unsupported(node, f"attribute axis={attrs.get('axis')} (fastnn flattens from axis 1)")
        return self._flatten(node, data)

    def _flatten(self, node, data):
        per = data.sizes[1:]
        if len(per) == 1:
            return data
        if not all(isinstance(s, int) for s in per):
            raise self.unsupported(node, "flattening a sequence of dynamic length")
        return self.add_layer(Flatten(), {}, data, ["N", "F"], ["N", math.prod(per)])

    # ------------------------------------------------------------------------------- sequences
    def _embedding(self, node, table, axis):
        data = self.data_input(node, 1)
        if not isinstance(table, np.ndarray) or axis != 0 or table.ndim != 2 or table.dtype.kind != "f":
            raise self.unsupported(node, "Gather of the data is supported as an embedding lookup (a constant "
                                         "(vocab, dim) table, axis 0)")
        if not data.ids or self.layers or data.axes != ["N", "T"]:
            raise self.unsupported(node, "an embedding lookup must be the first layer, on (batch, steps) ids")
        layer = Embedding(int(table.shape[0]), int(table.shape[1]))
        return self.add_layer(layer, {"W": table}, data, ["N", "T", "F"], ["N", data.sizes[1], table.shape[1]])

    def _recurrent(self, node, attrs):
        op = node.op_type
        cls = _RECURRENT[op]
        data = self.data_input(node)
        if data.axes != ["T", "N", "F"]:
            raise self.unsupported(node, f"its input must be (steps, batch, features), got axes {data.sizes} "
                                         "(transposed from fastnn's (batch, steps, features))")
        if attrs.get("direction", "forward") != "forward":
            raise self.unsupported(node, f"attribute direction={attrs['direction']!r} (only forward)")
        if attrs.get("layout", 0) != 0:
            raise self.unsupported(node, "attribute layout=1")
        for key in ("clip", "activation_alpha", "activation_beta"):
            if key in attrs:
                raise self.unsupported(node, f"attribute {key}")
        if attrs.get("input_forget", 0):
            raise self.unsupported(node, "attribute input_forget=1")
        activation = "tanh"
        acts = attrs.get("activations")
        if op == "RNN":
            acts = acts or ["Tanh"]
            if acts not in (["Tanh"], ["Relu"]):
                raise self.unsupported(node, f"attribute activations={acts}")
            activation = acts[0].lower()
        elif acts is not None and acts != _DEFAULT_CELL_ACTIVATIONS[op]:
            raise self.unsupported(node, f"attribute activations={acts}")
        if op == "GRU" and attrs.get("linear_before_reset", 0) != 1:
            raise self.unsupported(node, "attribute linear_before_reset=0 (fastnn's GRU is PyTorch's, "
                                         "linear_before_reset=1)")
        W, R = self.const(node, 1, "W"), self.const(node, 2, "R")
        B = self.const(node, 3, "B")
        G = _codes.CELL_GATES[cls.cell]
        if W is None or R is None or W.ndim != 3 or R.ndim != 3 or W.shape[0] != 1 or R.shape[0] != 1:
            raise self.unsupported(node, "W and R must be constants of shape (1, gates * hidden, ...)")
        U = attrs.get("hidden_size", R.shape[2])
        if W.shape[1] != G * U or R.shape[1:] != (G * U, U):
            raise self.bad(f"shapes do not chain: {self.node_text(node)} has W {W.shape} and R {R.shape} for "
                           f"hidden_size {U}")
        if W.shape[2] != data.sizes[2]:
            raise self.bad(f"shapes do not chain: {self.node_text(node)} has W {W.shape} for "
                           f"{data.sizes[2]} input features")
        if B is None:
            B = np.zeros((1, 2 * G * U), W.dtype)
        if B.shape != (1, 2 * G * U):
            raise self.bad(f"{self.node_text(node)} has B of shape {B.shape}, expected (1, {2 * G * U})")
        if len(node.input) > 4 and node.input[4]:
            raise self.unsupported(node, "input sequence_lens")
        if len(node.input) > 7 and node.input[7]:
            raise self.unsupported(node, "input P (peepholes)")
        for i in (5, 6):
            if len(node.input) > i and node.input[i]:
                v = self.value(node.input[i], node)
                if not (isinstance(v, _Zeros) or isinstance(v, np.ndarray) and not np.any(v)):
                    raise self.unsupported(node, "a non-zero initial state")
        outputs = list(node.output)
        if op == "LSTM" and len(outputs) > 2 and outputs[2] and any(outputs[2] in n.input for n in self.nodes):
            raise self.unsupported(node, "the cell state output Y_c")
        order = np.argsort(GATE_ORDER[cls])  # ONNX's gate blocks back to fastnn's
        params = {"weight_ih": permute_gates(W[0], order, U), "weight_hh": permute_gates(R[0], order, U),
                  "bias_ih": permute_gates(B[0, :G * U], order, U),
                  "bias_hh": permute_gates(B[0, G * U:], order, U)}
        layer = cls(int(U), activation=activation) if cls is SimpleRNN else cls(int(U))
        layer.return_sequences = None  # settled by which output the graph uses
        T = data.sizes[0]
        y = self.add_layer(layer, params, data, ["T", "D", "N", "F"], [T, 1, "N", int(U)], (layer, "Y"))
        y_h = _Data(["D", "N", "F"], [1, "N", int(U)], y.version, (layer, "Yh"))
        return y, y_h, None

    op_RNN = op_LSTM = op_GRU = _recurrent

    # ---------------------------------------------------------------------------------- build
    def network(self, dtype, backend, out):
        from .network import Network
        layers = [layer for layer, _ in self.layers]
        for layer in layers:
            if isinstance(layer, _Recurrent) and layer.return_sequences is None:
                raise self.bad(f"{type(layer).__name__}'s output is never used")
        if not layers or not isinstance(layers[-1], Dense):
            raise self.bad("the last layer must be Dense (Gemm or MatMul), as fastnn's output layers are")
        activation = layers[-1].activation
        loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(activation, "mse")
        if dtype is None:
            if self.input_elem in _FLOAT_TYPES:
                dtype = _FLOAT_TYPES[self.input_elem]
            else:
                kinds = [p[k].dtype for _, p in self.layers for k in ("W",) if k in p]
                kinds += [p["weight_ih"].dtype for _, p in self.layers if "weight_ih" in p]
                dtype = "float64" if any(d == np.float64 for d in kinds) else "float32"
        input_shape = tuple(self.input_dims)
        if len(input_shape) == 2 and isinstance(layers[0], Dense) and input_shape[0] is None:
            raise self.bad("a Dense first layer on sequences needs a fixed number of steps")
        arrays = []
        for layer, params in self.layers:
            if isinstance(layer, (Dense, Conv2D)):
                arrays += [params["W"], params["b"]]
            elif isinstance(layer, Embedding):
                arrays.append(params["W"])
            elif isinstance(layer, _Recurrent):
                arrays += [params[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        kinds = {np.dtype(a.dtype).name for a in arrays}
        declared = _FLOAT_TYPES.get(self.input_elem)
        if len(kinds) > 1 or declared is not None and kinds and kinds != {declared}:
            raise self.bad(f"element types disagree: the input is {declared or 'integer ids'} and the weights "
                           f"are {sorted(kinds)}")
        try:
            net = Network(layers, input_shape=input_shape, loss=loss, dtype=dtype, backend=backend, seed=0)
        except ValueError as exc:
            raise self.bad(f"the layers do not form a fastnn network: {exc}") from None
        if net.output_shape != tuple(s for s in out.sizes[1:]) and "T" not in out.sizes:
            raise self.bad(f"the output's shape {out.sizes[1:]} is not the network's {net.output_shape}")
        # Dense W is (d_in, d_out): fastnn's own layout, as MatMul's; Gemm's was transposed above
        try:
            net.set_weights(arrays)
        except ValueError as exc:
            raise self.bad(f"the weights do not fit the layers: {exc}") from None
        return net


def from_onnx(model, dtype=None, backend=None, output=None):
    """A fastnn Network whose `predict` computes what the ONNX model's output does.

    model: a path, the file's bytes, or an onnx.ModelProto. dtype: the network's dtype ("float32" / "float64";
    default: the model input's, or its weights' for int64 token ids). backend: None, "c" or "python".
    output: the name or index of the graph output to reproduce when there are several (default: the one
    floating-point output; a ZipMap of probabilities is read as the probabilities it maps). The network's loss
    follows its output activation: softmax -> cross_entropy, sigmoid -> binary_cross_entropy, else mse.

    Raises FileNotFoundError for a missing path and ValueError (naming the operator, node or attribute) for a
    model that is malformed or that fastnn's layers cannot represent."""
    onnx = require_onnx()
    proto, where = _load(onnx, model)
    try:
        importer = _Importer(onnx, proto, where, output)
        out = importer.run()
        return importer.network(dtype, backend, out)
    except (ValueError, MemoryError):
        raise
    except RecursionError:
        raise ValueError(f"{where} cannot be imported: the graph is too deeply nested") from None
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError, UnicodeError) as exc:
        # protobuf hands back bytes for strings that are not UTF-8, fields of unexpected types, ...
        raise ValueError(f"{where} cannot be imported: the model is malformed ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
