"""Layer types. A layer owns no memory: Network points its parameters and gradients into flat buffers and gives it
workspaces; the whole-network kernels (csrc/network.c and its twin) read the layer's descriptor.

The protocol every layer type implements:
  - construction validates its own hyper-parameters; `config()` returns them and `from_config(config)` rebuilds
    the layer from them (model files, pickling, copies);
  - `build(input_shape, index)` infers the per-sample output shape from the per-sample input shape, or raises a
    ValueError naming the layer, its position and the shapes;
  - `param_shapes()`: shapes of its decayed parameters (weights) and of its undecayed ones (biases);
    `bind(weights, biases, grad_weights, grad_biases)`: views into the network's flat buffers;
    `initialize(rng)`: initial values drawn from the network's generator;
  - `workspace_sizes()`: the training workspaces it needs, per sample, as {name: (count, dtype kind)};
  - `descriptor(workspace)`: the fields of its C fastnn_layer (see csrc/fastnn.h), workspaces included.
Layouts are PyTorch's and ONNX's: images are NCHW, conv weights (out_channels, in_channels, kh, kw); Dense keeps
W of shape (d_in, d_out).
"""
import math

import numpy as np

from . import _codes
from . import _validation as check

_IMAGE_ACTIVATIONS = tuple(name for name in _codes.ACTIVATIONS if name not in ("softmax", "exp"))


def _pair(name, value, minimum):
    """An int or a pair of ints, each >= minimum, as a tuple of two."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (check.check_int(f"{name}[0]", value[0], minimum), check.check_int(f"{name}[1]", value[1], minimum))
    value = check.check_int(name, value, minimum)
    return (value, value)


def _short_pair(pair):
    """A pair as the user would write it: one int when both are equal."""
    return pair[0] if isinstance(pair, tuple) and pair[0] == pair[1] else pair


# Every workspace a layer kind may have (fastnn_layer's workspace fields).
WORKSPACE_NAMES = ("a", "delta", "cols", "argmax", "mask", "states", "gates", "cells", "dgates", "carry")


def _shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


class Layer:
    """What every layer has; subclasses set `kind` (the config name) and `code` (the C layer kind)."""

    kind = None
    code = None
    has_params = False
    activation = None

    def __init__(self):
        self.input_shape = self.output_shape = None
        self.index = None

    # ----------------------------------------------------------------------------------- shapes
    def build(self, input_shape, index):
        self.index = index
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self._output_shape(self.input_shape))

    def _output_shape(self, input_shape):
        return input_shape

    def _misfit(self, why):
        return ValueError(f"layer {self.index} ({self!r}) cannot take its input of shape "
                          f"{_shape_text(self.input_shape)}: {why}")

    def _image_input(self, input_shape):
        if len(input_shape) != 3:
            raise self._misfit("it needs images of shape (channels, height, width)")
        return input_shape

    @property
    def in_size(self):
        return math.prod(self.input_shape)

    @property
    def out_size(self):
        return math.prod(self.output_shape)

    # ------------------------------------------------------------------------------- parameters
    def param_shapes(self):
        return [], []

    def bind(self, weights, biases, grad_weights, grad_biases):
        """Take views of the network's flat buffers: one array per shape of param_shapes(), in that order."""
        self._param_arrays = tuple(weights) + tuple(biases)
        self._grad_arrays = tuple(grad_weights) + tuple(grad_biases)

    def parameter_arrays(self):
        """This layer's parameters (writable views of the network's parameter buffer): every weight array,
        then every bias, in the order of param_shapes() (for recurrent layers PyTorch's: weight_ih, weight_hh,
        bias_ih, bias_hh)."""
        return getattr(self, "_param_arrays", ())

    def gradient_arrays(self):
        """The gradients of this layer's parameters (views of the network's gradient buffer): every weight
        array, then every bias, in the order of param_shapes()."""
        return getattr(self, "_grad_arrays", ())

    def initialize(self, rng):
        pass

    @property
    def n_params(self):
        return sum(math.prod(s) for shapes in self.param_shapes() for s in shapes)

    # ------------------------------------------------------------------------------ descriptors
    def workspace_sizes(self):
        return {"a": (self.out_size, "real"), "delta": (self.out_size, "real")}

    def _window(self):
        return None

    def _sequence(self):
        return None

    @property
    def steps(self):
        """Rows each sample makes for the per-row kernels (dense, activations, loss): T for a layer acting on
        each step of a sequence, else 1."""
        return 1

    def descriptor(self, workspace):
        """The fields of this layer's C fastnn_layer; `workspace` maps workspace names to arrays (or is empty
        for a handle that only predicts)."""
        d = {"kind": self.code, "in_size": self.in_size, "out_size": self.out_size, "win": self._window(),
             "act": _codes.LINEAR, "predict_act": _codes.LINEAR, "alpha": _codes.LEAKY_RELU_SLOPE, "rate": 0.0,
             "W": None, "b": None, "dW": None, "db": None, "steps": self.steps, "seq": self._sequence(),
             "Wh": None, "bh": None, "dWh": None, "dbh": None, "state": None, "sparse": None}
        for name in WORKSPACE_NAMES:
            d[name] = workspace.get(name)
        return d

    # ---------------------------------------------------------------------------------- config
    def config(self):
        return {"type": self.kind}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.pop("type", cls.kind) != cls.kind:
            raise ValueError(f"{cls.__name__}.from_config: the config is not a {cls.kind!r} layer")
        return cls(**config)

    def copy(self):
        """A new, unbuilt layer with the same configuration."""
        return type(self).from_config(self.config())

    def _summary_name(self):
        return type(self).__name__


class _Activated(Layer):
    """A layer with weights, biases and an activation (Dense, Conv2D)."""

    has_params = True

    def __init__(self, activation, allowed):
        super().__init__()
        check.check_choice("activation", activation, allowed)
        self.activation = activation
        # The output layer of a fused loss keeps logits while training; the loss applies softmax/sigmoid.
        self.fused_output = False
        self.W = self.b = self.dW = self.db = None

    @property
    def act_code(self):
        return _codes.ACTIVATIONS[self.activation]

    @property
    def alpha(self):
        return _codes.LEAKY_RELU_SLOPE

    def train_act_code(self):
        """The activation applied in a training forward pass (linear for a fused output layer)."""
        return _codes.LINEAR if self.fused_output else self.act_code

    def bind(self, weights, biases, grad_weights, grad_biases):
        super().bind(weights, biases, grad_weights, grad_biases)
        (self.W,), (self.b,), (self.dW,), (self.db,) = weights, biases, grad_weights, grad_biases

    def _fans(self):
        raise NotImplementedError

    def initialize(self, rng):
        fan_in, fan_out = self._fans()
        if self.activation in ("relu", "leaky_relu"):
            limit = math.sqrt(6.0 / fan_in)  # He uniform
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform
        self.W[...] = rng.uniform(-limit, limit, size=self.W.shape)
        self.b[...] = 0

    def descriptor(self, workspace):
        d = super().descriptor(workspace)
        d.update(act=self.train_act_code(), predict_act=self.act_code, W=self._matrix(self.W),
                 b=self.b, dW=self._matrix(self.dW), db=self.db)
        return d

    def _matrix(self, array):
        return array


class Dense(_Activated):
    """Fully connected layer: out = activation(x @ W + b), W of shape (d_in, d_out)."""

    kind = "dense"
    code = _codes.LAYER_DENSE

    def __init__(self, units, activation="linear"):
        super().__init__(activation, _codes.ACTIVATIONS)
        self.units = check.check_int("units", units, 1)

    @property
    def d_in(self):
        return self.input_shape[-1]

    @property
    def d_out(self):
        return self.units

    @property
    def steps(self):
        return self.input_shape[0] if len(self.input_shape) == 2 else 1

    def _output_shape(self, input_shape):
        if len(input_shape) == 2:  # a sequence (T, features): the same layer on every step
            return (input_shape[0], self.units)
        if len(input_shape) != 1:
            raise self._misfit("Dense takes vectors, or sequences (steps, features); put a Flatten() before it")
        return (self.units,)

    def param_shapes(self):
        return [(self.d_in, self.units)], [(self.units,)]

    def _fans(self):
        return self.d_in, self.units

    def config(self):
        return {"type": self.kind, "units": self.units, "activation": self.activation}

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation!r})"


class Conv2D(_Activated):
    """2-D convolution (cross-correlation, as in PyTorch) over NCHW images: weights (filters, in_channels, kh, kw),
    biases (filters,). padding: an int or a pair (zeros on both sides), "valid" (none) or "same" (stride 1 only:
    the output keeps the input's size; an even kernel puts the extra row/column after the image, as PyTorch)."""

    kind = "conv2d"
    code = _codes.LAYER_CONV2D

    def __init__(self, filters, kernel_size, stride=1, padding=0, activation="linear"):
        super().__init__(activation, _IMAGE_ACTIVATIONS)
        self.filters = check.check_int("filters", filters, 1)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        if isinstance(padding, str):
            check.check_choice("padding", padding, ("same", "valid"))
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride {self.stride}")
            self.padding = padding
        else:
            self.padding = _pair("padding", padding, 0)

    def _pads(self):
        """((top, bottom), (left, right)) zero padding."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in self.kernel_size)
        return tuple((p, p) for p in self.padding)

    def _output_shape(self, input_shape):
        c, h, w = self._image_input(input_shape)
        (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = self.kernel_size, self.stride, self._pads()
        if kh > h + pt + pb or kw > w + pl + pr:
            raise self._misfit(f"the {kh}x{kw} kernel is larger than the padded {h + pt + pb}x{w + pl + pr} "
                               "image")
        return (self.filters, (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)

    @property
    def in_channels(self):
        return self.input_shape[0]

    def param_shapes(self):
        return [(self.filters, self.in_channels, *self.kernel_size)], [(self.filters,)]

    def _fans(self):
        area = self.kernel_size[0] * self.kernel_size[1]
        return self.in_channels * area, self.filters * area

    def _window(self):
        (c, h, w), (oc, oh, ow) = self.input_shape, self.output_shape
        ((pt, _), (pl, _)) = self._pads()
        return (c, h, w, oc, oh, ow, *self.kernel_size, *self.stride, pt, pl)

    def workspace_sizes(self):
        positions = self.output_shape[1] * self.output_shape[2]
        sizes = super().workspace_sizes()
        sizes["cols"] = (positions * self.in_channels * self.kernel_size[0] * self.kernel_size[1], "real")
        return sizes

    def initialize(self, rng):
        """PyTorch's Conv2d initialisation: weights and biases uniform in +-1/sqrt(fan_in) (kaiming_uniform with
        a = sqrt(5)), so a network ported from PyTorch starts from the same distribution. (On LeNet-5 / MNIST it
        also trained slightly better than He uniform: asv_bench/accuracy_runs/README.md.)"""
        bound = 1.0 / math.sqrt(self._fans()[0])
        self.W[...] = rng.uniform(-bound, bound, size=self.W.shape)
        self.b[...] = rng.uniform(-bound, bound, size=self.b.shape)

    def _matrix(self, array):
        return array.reshape(self.filters, -1)  # (out_c, in_c kh kw), the kernels' view

    def config(self):
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"type": self.kind, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": padding, "activation": self.activation}

    def __repr__(self):
        text = f"Conv2D({self.filters}, {_short_pair(self.kernel_size)}"
        if self.stride != (1, 1):
            text += f", stride={_short_pair(self.stride)}"
        if self.padding not in ((0, 0), "valid"):
            text += f", padding={_short_pair(self.padding)!r}"
        if self.activation != "linear":
            text += f", activation={self.activation!r}"
        return text + ")"


class _Pool2D(Layer):
    def __init__(self, pool_size, stride=None):
        super().__init__()
        self.pool_size = _pair("pool_size", pool_size, 1)
        self.stride = self.pool_size if stride is None else _pair("stride", stride, 1)

    def _output_shape(self, input_shape):
        c, h, w = self._image_input(input_shape)
        (kh, kw), (sh, sw) = self.pool_size, self.stride
        if kh > h or kw > w:
            raise self._misfit(f"the {kh}x{kw} window is larger than the {h}x{w} image")
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)

    def _window(self):
        (c, h, w), (_, oh, ow) = self.input_shape, self.output_shape
        return (c, h, w, c, oh, ow, *self.pool_size, *self.stride, 0, 0)

    def config(self):
        return {"type": self.kind, "pool_size": list(self.pool_size), "stride": list(self.stride)}

    def __repr__(self):
        stride = "" if self.stride == self.pool_size else f", stride={_short_pair(self.stride)}"
        return f"{type(self).__name__}({_short_pair(self.pool_size)}{stride})"


class MaxPool2D(_Pool2D):
    """Max pooling over windows of pool_size, every `stride` (default: pool_size), no padding; outputs that a
    window would need beyond the image are dropped (PyTorch's floor mode)."""

    kind = "maxpool2d"
    code = _codes.LAYER_MAXPOOL2D

    def workspace_sizes(self):
        sizes = super().workspace_sizes()
        sizes["argmax"] = (self.out_size, "int32")
        return sizes


class AvgPool2D(_Pool2D):
    """Average pooling over windows of pool_size, every `stride` (default: pool_size), no padding."""

    kind = "avgpool2d"
    code = _codes.LAYER_AVGPOOL2D


class Flatten(Layer):
    """Images (C, H, W) to vectors of C*H*W in NCHW order (torch.flatten(x, 1)); costs nothing: a view."""

    kind = "flatten"
    code = _codes.LAYER_FLATTEN

    def _output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def workspace_sizes(self):
        return {}

    def __repr__(self):
        return "Flatten()"


class Dropout(Layer):
    """Inverted dropout: while training (fit, train_step) each unit is zeroed with probability `rate` and the
    others are scaled by 1 / (1 - rate); evaluate, gradients and predict pass the input through unchanged.
    The masks come from the network's seeded generator, so both backends drop the same units."""

    kind = "dropout"
    code = _codes.LAYER_DROPOUT

    def __init__(self, rate):
        super().__init__()
        self.rate = check.check_float("rate", rate, 0.0, 1.0)
        self._mask = None
        self._mask_rows = 0

    def workspace_sizes(self):
        sizes = super().workspace_sizes()
        sizes["mask"] = (self.out_size, "real")
        return sizes

    def descriptor(self, workspace):
        d = super().descriptor(workspace)
        d["rate"] = self.rate
        self._mask = workspace.get("mask")
        return d

    @property
    def last_mask(self):
        """The multipliers (0 or 1 / (1 - rate)) of the last training batch, shaped (n, *input_shape); None
        before any training step."""
        if self._mask is None or not self._mask_rows:
            return None
        return self._mask[:self._mask_rows].reshape(self._mask_rows, *self.input_shape).copy()

    def config(self):
        return {"type": self.kind, "rate": self.rate}

    def __repr__(self):
        return f"Dropout({self.rate})"


def _sequence_input(layer, input_shape):
    if len(input_shape) != 2:
        raise layer._misfit("it needs sequences of shape (steps, features)")
    return input_shape


class Embedding(Layer):
    """Token ids (T,) to vectors (T, dim): row `id` of a (vocab_size, dim) weight matrix, PyTorch's nn.Embedding
    (initialised as it: standard normal). Only as the first layer: the network's input is then integer token ids
    in [0, vocab_size), a batch of shape (n, T)."""

    kind = "embedding"
    code = _codes.LAYER_EMBEDDING
    has_params = True

    def __init__(self, vocab_size, dim):
        super().__init__()
        self.vocab_size = check.check_int("vocab_size", vocab_size, 1)
        self.dim = check.check_int("dim", dim, 1)
        self.W = self.dW = None
        self.b = None

    def _output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise self._misfit("Embedding takes sequences of token ids, shape (steps,)")
        if self.index != 0:
            raise self._misfit("Embedding must be the first layer (its input is token ids)")
        return (input_shape[0], self.dim)

    def param_shapes(self):
        return [(self.vocab_size, self.dim)], []

    def bind(self, weights, biases, grad_weights, grad_biases):
        super().bind(weights, biases, grad_weights, grad_biases)
        (self.W,), (self.dW,) = weights, grad_weights

    def initialize(self, rng):
        self.W[...] = rng.standard_normal(size=self.W.shape)

    def _sequence(self):
        return (0, _codes.LINEAR, 0, self.input_shape[0], self.vocab_size, self.dim)

    def descriptor(self, workspace):
        d = super().descriptor(workspace)
        d.update(W=self.W, dW=self.dW)
        return d

    def config(self):
        return {"type": self.kind, "vocab_size": self.vocab_size, "dim": self.dim}

    def __repr__(self):
        return f"Embedding({self.vocab_size}, {self.dim})"


class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: PyTorch's weights weight_ih (gates units, features), weight_hh (gates
    units, units), bias_ih and bias_hh (gates units), initialised as PyTorch does (uniform in +-1/sqrt(units))."""

    code = _codes.LAYER_RECURRENT
    has_params = True
    cell = None

    def __init__(self, units, return_sequences=False, stateful=False):
        super().__init__()
        self.units = check.check_int("units", units, 1)
        if not isinstance(return_sequences, (bool, int)) or not isinstance(stateful, (bool, int)):
            raise TypeError("return_sequences and stateful must be True or False")
        self.return_sequences = bool(return_sequences)
        self.stateful = bool(stateful)
        self.weight_ih = self.weight_hh = self.bias_ih = self.bias_hh = None
        self._state = None  # a stateful layer's carried state: (rows, state_size)

    @property
    def gates(self):
        return _codes.CELL_GATES[self.cell]

    @property
    def features(self):
        return self.input_shape[1]

    @property
    def state_size(self):
        """Values of carried state per sequence: h, and c for the LSTM."""
        return 2 * self.units if self.cell == _codes.CELL_LSTM else self.units

    # the Network's generic views: W, b are the input side, as PyTorch lists weight_ih first
    @property
    def W(self):
        return self.weight_ih

    @property
    def b(self):
        return self.bias_ih

    def _output_shape(self, input_shape):
        steps, _ = _sequence_input(self, input_shape)
        return (steps, self.units) if self.return_sequences else (self.units,)

    def param_shapes(self):
        rows = self.gates * self.units
        return [(rows, self.input_shape[1]), (rows, self.units)], [(rows,), (rows,)]

    def bind(self, weights, biases, grad_weights, grad_biases):
        super().bind(weights, biases, grad_weights, grad_biases)
        self.weight_ih, self.weight_hh = weights
        self.bias_ih, self.bias_hh = biases

    def initialize(self, rng):
        bound = 1.0 / math.sqrt(self.units)
        for array in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            array[...] = rng.uniform(-bound, bound, size=array.shape)

    def _act_code(self):
        return _codes.TANH

    def _sequence(self):
        return (self.cell, self._act_code(), int(self.return_sequences), self.input_shape[0], self.features,
                self.units)

    def workspace_sizes(self):
        T, U, GU = self.input_shape[0], self.units, self.gates * self.units
        sizes = super().workspace_sizes()
        sizes.update(states=((T + 1) * U, "real"), gates=(T * GU, "real"), cells=((T + 1) * U, "real"),
                     dgates=(T * GU, "real"), carry=(3 * U, "real"))
        return sizes

    def descriptor(self, workspace):
        d = super().descriptor(workspace)
        dW_ih, dW_hh, db_ih, db_hh = self.gradient_arrays()
        d.update(W=self.weight_ih, Wh=self.weight_hh, b=self.bias_ih, bh=self.bias_hh, dW=dW_ih, dWh=dW_hh,
                 db=db_ih, dbh=db_hh, state=self._state if self.stateful else None)
        return d

    # ------------------------------------------------------------------------------------ state
    def _state_for(self, rows, dtype):
        """The carried state, grown to at least `rows` sequences (new rows start from zeros); True when the
        array was replaced (the network's C handle then needs rebuilding)."""
        if self._state is not None and self._state.shape[0] >= rows and self._state.dtype == dtype:
            return False
        grown = np.zeros((max(rows, 1), self.state_size), dtype=dtype)
        if self._state is not None:
            keep = min(self._state.shape[0], rows)
            grown[:keep] = self._state[:keep]
        self._state = grown
        return True

    def reset_state(self):
        if self._state is not None:
            self._state[...] = 0

    @property
    def states(self):
        """A stateful layer's carried state as (h,) or, for the LSTM, (h, c), each (rows, units); None before
        the first call or for a layer that is not stateful."""
        if self._state is None:
            return None
        U = self.units
        parts = (self._state[:, :U],) if self.cell != _codes.CELL_LSTM else (self._state[:, :U], self._state[:, U:])
        return tuple(p.copy() for p in parts)

    def config(self):
        return {"type": self.kind, "units": self.units, "return_sequences": self.return_sequences,
                "stateful": self.stateful}

    def _extra_repr(self):
        text = ""
        if self.return_sequences:
            text += ", return_sequences=True"
        if self.stateful:
            text += ", stateful=True"
        return text

    def __repr__(self):
        return f"{type(self).__name__}({self.units}{self._extra_repr()})"


class SimpleRNN(_Recurrent):
    """Elman recurrent layer: h_t = activation(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), activation "tanh" or
    "relu" (PyTorch's nn.RNN). Input (T, features); output (T, units) with return_sequences, else the last h."""

    kind = "simple_rnn"
    cell = _codes.CELL_SIMPLE

    def __init__(self, units, activation="tanh", return_sequences=False, stateful=False):
        super().__init__(units, return_sequences, stateful)
        check.check_choice("activation", activation, ("tanh", "relu"))
        self.activation = activation

    def _act_code(self):
        return _codes.ACTIVATIONS[self.activation]

    def config(self):
        config = super().config()
        config["activation"] = self.activation
        return config

    def __repr__(self):
        act = "" if self.activation == "tanh" else f", activation={self.activation!r}"
        return f"SimpleRNN({self.units}{act}{self._extra_repr()})"


class LSTM(_Recurrent):
    """Long short-term memory (PyTorch's nn.LSTM): gates i, f, g, o in that order in weight_ih / weight_hh;
    c_t = f c_{t-1} + i g, h_t = o tanh(c_t). Input (T, features); output (T, units) or the last h."""

    kind = "lstm"
    cell = _codes.CELL_LSTM


class GRU(_Recurrent):
    """Gated recurrent unit (PyTorch's nn.GRU): gates r, z, n in that order; n = tanh(W_in x + b_in + r (W_hn h
    + b_hn)), h_t = (1 - z) n + z h_{t-1}. Input (T, features); output (T, units) or the last h."""

    kind = "gru"
    cell = _codes.CELL_GRU


class RepeatVector(Layer):
    """A vector (features,) repeated into a sequence (n, features) (Keras' RepeatVector): how an encoder's last
    state feeds every step of a decoder."""

    kind = "repeat_vector"
    code = _codes.LAYER_REPEAT

    def __init__(self, n):
        super().__init__()
        self.n = check.check_int("n", n, 1)

    def _output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise self._misfit("RepeatVector takes vectors")
        return (self.n, input_shape[0])

    def _sequence(self):
        return (0, _codes.LINEAR, 0, self.n, self.input_shape[0], self.input_shape[0])

    def config(self):
        return {"type": self.kind, "n": self.n}

    def __repr__(self):
        return f"RepeatVector({self.n})"


LAYER_TYPES = {cls.kind: cls for cls in (Dense, Conv2D, MaxPool2D, AvgPool2D, Flatten, Dropout, Embedding,
                                               SimpleRNN, LSTM, GRU, RepeatVector)}
SEQUENCE_LAYERS = (Embedding, SimpleRNN, LSTM, GRU)


def layer_from_config(config):
    """A layer from its config dict; ValueError/TypeError when the config is not one."""
    if not isinstance(config, dict):
        raise ValueError(f"a layer config must be a dict, got {type(config).__name__}")
    kind = config.get("type")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; expected one of {sorted(LAYER_TYPES)}")
    return LAYER_TYPES[kind].from_config(config)
