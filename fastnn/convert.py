"""Networks from weights trained elsewhere, without importing the library that trained them.

- ``from_state_dict(layers_or_network, state_dict)``: an architecture written with fastnn's layers, and the
  parameters of a PyTorch module as its ``state_dict()`` gives them (torch tensors or NumPy arrays, in PyTorch's
  names and layouts; the user runs ``torch.load(path, weights_only=True)`` when they come from a file).
- ``from_sklearn(estimator)``: a fitted scikit-learn (or fastnn) MLPClassifier / MLPRegressor.

How a state dict maps onto the layers. Its keys are ``<module>.<parameter>``; the modules, in the order of the
state dict (PyTorch's registration order), are matched one by one to the layers with parameters, in order:

=====================================  ===========================================================================
PyTorch module (its keys)              fastnn layer
=====================================  ===========================================================================
Linear (weight (out, in), bias)        Dense(out): W = weight.T (fastnn's W is (in, out))
Conv2d (weight (out, in, kh, kw),      Conv2D(out, (kh, kw)): the same layout
bias)
Embedding (weight (vocab, dim))        Embedding(vocab, dim)
RNN / LSTM / GRU (weight_ih_l0,        SimpleRNN / LSTM / GRU: the same names, layouts and gate order; the layers
weight_hh_l0, bias_ih_l0, bias_hh_l0)  _l1, _l2, ... of a stacked module go to the next recurrent layers
=====================================  ===========================================================================

A module built with bias=False has no bias key: its fastnn bias is zero, which computes the same. Modules
without parameters (activations, pooling, Flatten, Dropout) have no keys, and the fastnn layers say what they
do. Refused with a ValueError that names the key: a shape that differs from the layer's, a module fastnn has no
layer for (BatchNorm's running_mean / num_batches_tracked, LayerNorm, ...), parameters left over after the last
layer, layers left without parameters, bidirectional (``_reverse``) and projected (``proj_size``) recurrent
modules. With strict=False, as PyTorch's load_state_dict(strict=False), keys fastnn has no use for are skipped
and layers without parameters keep their initial values; shapes are still checked.
"""
import collections.abc
import re

import numpy as np

from . import _validation as check
from .layers import Conv2D, Dense, Embedding, Layer, _Recurrent, layer_from_config

_RECURRENT_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")

# scikit-learn's activation names to fastnn's, and its output activations to the fastnn loss that fuses them.
SKLEARN_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SKLEARN_LOSSES = {"softmax": "cross_entropy", "logistic": "binary_cross_entropy", "identity": "mse",
                  "exp": "poisson"}


# --------------------------------------------------------------------------------------------- arrays
def _to_numpy(key, value):
    """A tensor (duck-typed: .detach().cpu().numpy(), so torch is never imported) or array-like as an array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        try:
            value = value.detach().cpu().numpy()
        except (TypeError, RuntimeError) as exc:  # e.g. bfloat16, which NumPy cannot hold
            raise TypeError(f"state_dict[{key!r}]: cannot read the tensor as a NumPy array ({exc}); convert it "
                            "first, e.g. tensor.float()") from None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"state_dict[{key!r}] is not an array ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"state_dict[{key!r}] must hold real numbers, got dtype {array.dtype}")
    return array


def _as_mapping(state_dict):
    if not isinstance(state_dict, collections.abc.Mapping) and callable(getattr(state_dict, "state_dict", None)):
        state_dict = state_dict.state_dict()  # a module given itself
    if not isinstance(state_dict, collections.abc.Mapping):
        raise TypeError("state_dict must be a mapping of names to arrays, e.g. module.state_dict() or "
                        f"torch.load(path, weights_only=True); got {type(state_dict).__name__}")
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        out[key] = _to_numpy(key, value)
    return out


def _default_dtype(arrays):
    """float64 when every floating array is float64 (module.double()), else float32."""
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    return "float64" if floats and all(d == np.float64 for d in floats) else "float32"


# ------------------------------------------------------------------------------------------ grouping
class _Module:
    """The keys of one PyTorch module: `prefix` (e.g. "features.0") and {parameter name: (key, array)}."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.params = {}

    def key(self, name):
        return f"{self.prefix}.{name}" if self.prefix else name

    def kind(self):
        """'recurrent', 'conv', 'matrix' (Linear or Embedding) or None (nothing fastnn has a layer for)."""
        names = set(self.params)
        if any(_RECURRENT_KEY.match(n) for n in names):
            return "recurrent"
        if "weight" in names and names <= {"weight", "bias"}:
            ndim = self.params["weight"][1].ndim
            return {4: "conv", 2: "matrix"}.get(ndim)
        return None

    def describe(self):
        return ", ".join(f"{key!r} {_shape(a)}" for key, a in self.params.values())


def _shape(array_or_shape):
    shape = array_or_shape if isinstance(array_or_shape, tuple) else tuple(array_or_shape.shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _group(arrays):
    modules = {}
    for key, array in arrays.items():
        prefix, _, name = key.rpartition(".")
        module = modules.setdefault(prefix, _Module(prefix))
        module.params[name] = (key, array)
    return list(modules.values())


# ---------------------------------------------------------------------------------------- assignment
def _check_shape(key, array, expected, layer, what):
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"state_dict[{key!r}] has shape {_shape(array)}, but layer {layer.index} ({layer!r}) "
                         f"needs {what} of shape {_shape(tuple(expected))}")


def _assign_matrix(module, layer):
    """Linear -> Dense, Embedding -> Embedding: [(target view, array, key)]."""
    key, weight = module.params["weight"]
    if isinstance(layer, Embedding):
        if "bias" in module.params:
            raise ValueError(f"state_dict[{module.key('bias')!r}]: layer {layer.index} ({layer!r}) has no bias "
                             "(a torch.nn.Embedding has only 'weight'); is the architecture in the same order as "
                             "the module's?")
        _check_shape(key, weight, (layer.vocab_size, layer.dim), layer, "weight (vocab_size, dim)")
        return [(layer.W, weight, key)]
    _check_shape(key, weight, (layer.units, layer.d_in), layer, "a Linear weight (out_features, in_features)")
    pairs = [(layer.W, weight.T, key)]
    if "bias" in module.params:
        bkey, bias = module.params["bias"]
        _check_shape(bkey, bias, (layer.units,), layer, "bias")
        pairs.append((layer.b, bias, bkey))
    else:
        pairs.append((layer.b, np.zeros(layer.b.shape), None))  # bias=False
    return pairs


def _assign_conv(module, layer):
    key, weight = module.params["weight"]
    _check_shape(key, weight, layer.W.shape, layer, "a Conv2d weight (out_channels, in_channels, kh, kw)")
    pairs = [(layer.W, weight, key)]
    if "bias" in module.params:
        bkey, bias = module.params["bias"]
        _check_shape(bkey, bias, layer.b.shape, layer, "bias")
        pairs.append((layer.b, bias, bkey))
    else:
        pairs.append((layer.b, np.zeros(layer.b.shape), None))
    return pairs


def _recurrent_depth(module):
    """How many stacked layers a recurrent module holds; refuses what fastnn's recurrent layers cannot do."""
    depth = -1
    for name in module.params:
        match = _RECURRENT_KEY.match(name)
        if match is None:
            raise ValueError(f"state_dict[{module.key(name)!r}]: a recurrent module's keys are weight_ih_l<k>, "
                             "weight_hh_l<k>, bias_ih_l<k> and bias_hh_l<k>; fastnn has no use for this one")
        if match.group(3):
            raise ValueError(f"state_dict[{module.key(name)!r}]: bidirectional recurrent modules are not "
                             "supported (fastnn's recurrent layers read the sequence forwards only)")
        if match.group(1) == "weight_hr":
            raise ValueError(f"state_dict[{module.key(name)!r}]: LSTMs with proj_size are not supported")
        depth = max(depth, int(match.group(2)))
    return depth + 1


def _assign_recurrent(module, layer, k):
    """Stacked layer k of a recurrent module -> a fastnn recurrent layer (same names, layouts, gate order)."""
    rows = layer.gates * layer.units
    expected = {"weight_ih": (rows, layer.features), "weight_hh": (rows, layer.units), "bias_ih": (rows,),
                "bias_hh": (rows,)}
    kind = {1: "SimpleRNN (nn.RNN)", 3: "GRU (nn.GRU)", 4: "LSTM (nn.LSTM)"}[layer.gates]
    pairs = []
    for target, name in zip(layer.parameter_arrays(), ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
        entry = module.params.get(f"{name}_l{k}")
        if entry is None:
            if name.startswith("bias"):  # bias=False
                pairs.append((target, np.zeros(target.shape), None))
                continue
            raise ValueError(f"state_dict has no {module.key(f'{name}_l{k}')!r} for layer {layer.index} "
                             f"({layer!r})")
        key, array = entry
        if tuple(array.shape) != expected[name]:
            guess = ""
            if array.ndim >= 1 and array.shape[0] % layer.units == 0 and array.shape[0] != rows:
                other = {1: "nn.RNN", 3: "nn.GRU", 4: "nn.LSTM"}.get(array.shape[0] // layer.units)
                if other:
                    guess = f" (the shape of an {other} weight)"
            raise ValueError(f"state_dict[{key!r}] has shape {_shape(array)}, but layer {layer.index} ({layer!r}, a "
                             f"{kind} of {layer.units} units) needs {name} of shape "
                             f"{_shape(expected[name])}{guess}")
        pairs.append((target, array, key))
    return pairs


def _plan(modules, param_layers, strict):
    """[(target view, array, key)] for every parameter, matching modules to layers in order."""
    pairs, li = [], 0
    skipped = []
    for module in modules:
        kind = module.kind()
        if kind is None:
            if strict:
                raise ValueError(f"unexpected keys {module.describe()}: fastnn has no layer for this module "
                                 "(BatchNorm, LayerNorm and the like are not supported); pass strict=False to "
                                 "skip keys it has no use for")
            skipped.append(module)
            continue
        if li >= len(param_layers):
            if strict:
                raise ValueError(f"unexpected keys {module.describe()}: every layer with parameters already has "
                                 f"its own ({len(param_layers)} layers); the architecture has fewer layers than "
                                 "the module")
            skipped.append(module)
            continue
        layer = param_layers[li]
        if kind == "recurrent":
            depth = _recurrent_depth(module)
            for k in range(depth):
                if li >= len(param_layers) or not isinstance(param_layers[li], _Recurrent):
                    where = "the architecture ends" if li >= len(param_layers) else \
                        f"layer {param_layers[li].index} is {param_layers[li]!r}"
                    raise ValueError(f"state_dict[{module.key(f'weight_ih_l{k}')!r}]: the module stacks {depth} "
                                     f"recurrent layers, but {where}; give the architecture one fastnn "
                                     "recurrent layer per stacked layer (return_sequences=True on all but the "
                                     "last)")
                pairs += _assign_recurrent(module, param_layers[li], k)
                li += 1
            continue
        wanted = {Dense: "matrix", Embedding: "matrix", Conv2D: "conv"}
        expected_kind = next((v for t, v in wanted.items() if isinstance(layer, t)), "recurrent")
        if kind != expected_kind:
            key, weight = module.params["weight"]
            what = {"matrix": "a Linear or Embedding", "conv": "a Conv2d"}[kind]
            raise ValueError(f"state_dict[{key!r}] of shape {_shape(weight)} looks like {what} weight, but the "
                             f"next layer with parameters is layer {layer.index} ({layer!r}); the modules of the "
                             "state dict must come in the order of the fastnn layers")
        pairs += (_assign_conv if kind == "conv" else _assign_matrix)(module, layer)
        li += 1
    if li < len(param_layers) and strict:
        layer = param_layers[li]
        shapes = " and ".join(_shape(s) for s in layer.param_shapes()[0])
        raise ValueError(f"missing keys: the state dict has no parameters for layer {layer.index} ({layer!r}, "
                         f"weights {shapes}) or the {len(param_layers) - li - 1} layers with parameters after it")
    return pairs


# ------------------------------------------------------------------------------------------ public
def _architecture(layers_or_network, input_shape, loss):
    """(unbuilt layers, input_shape, loss, ignore_index, backend) of the architecture given."""
    from .network import Network
    if isinstance(layers_or_network, Network):
        net = layers_or_network
        if input_shape is not None:
            raise ValueError("input_shape is taken from the Network given; do not pass it as well")
        layers = [layer_from_config(c) for c in net.get_config()["layers"]]
        return layers, net.input_shape, net.loss if loss is None else loss, net.ignore_index, net.backend
    if isinstance(layers_or_network, Layer):
        layers_or_network = [layers_or_network]
    try:
        layers = list(layers_or_network)
    except TypeError:
        raise TypeError("layers_or_network must be a list of fastnn layers (e.g. [fastnn.Dense(64, 'relu'), "
                        f"fastnn.Dense(10)]) or a fastnn.Network, got {type(layers_or_network).__name__}") from None
    if not layers or not all(isinstance(layer, Layer) for layer in layers):
        raise TypeError("layers_or_network must be a non-empty list of fastnn layers, or a fastnn.Network")
    return [layer.copy() for layer in layers], input_shape, "mse" if loss is None else loss, None, None


def _infer_input_shape(layers, modules):
    """The per-sample input shape when the first module says it: a Linear's in_features for a first Dense, any
    number of steps for Embedding or a recurrent layer. None otherwise (convolutions need the image size)."""
    first = layers[0]
    if not modules or not first.has_params:
        return None
    module = modules[0]
    if isinstance(first, Dense) and module.kind() == "matrix":
        return (int(module.params["weight"][1].shape[1]),)
    if isinstance(first, Embedding):
        return (None,)
    if isinstance(first, _Recurrent) and "weight_ih_l0" in module.params:
        return (None, int(module.params["weight_ih_l0"][1].shape[1]))
    return None


def from_state_dict(layers_or_network, state_dict, *, input_shape=None, loss=None, dtype=None, backend=None,
                    strict=True):
    """A Network of this architecture with the parameters of a PyTorch state dict.

    Parameters
    ----------
    layers_or_network : list of fastnn layers, or a Network
        The architecture (its activations, pooling, Flatten, ... as the PyTorch module's forward does). A
        Network's layers, input_shape, loss and backend are copied; its weights are not used.
    state_dict : mapping of str to arrays
        ``module.state_dict()`` or ``torch.load(path, weights_only=True)``: torch tensors (read through
        ``.detach().cpu().numpy()``; torch is never imported here) or NumPy arrays, in PyTorch's names and layouts
        (see the table in this module's docstring).
    input_shape : tuple, optional
        The shape of one sample, as Network takes it. Needed for a convolutional network; for a network that
        starts with a Linear it defaults to (in_features,), with an Embedding to (None,) (any length), with a
        recurrent layer to (None, input_size).
    loss : str, optional
        Default "mse" (a linear output: predict returns what the PyTorch module returns, e.g. logits). With
        "cross_entropy" the output layer is a softmax, so predict returns torch.softmax(module(x), 1).
    dtype : "float32", "float64" or None
        None: float64 when the state dict's floating arrays are all float64, else float32.
    strict : bool
        False skips keys fastnn has no use for and leaves layers without parameters at their initial values.

    Raises ValueError naming the key (and the shapes) when the state dict does not fit the architecture.
    """
    from .network import Network
    layers, shape, loss, ignore_index, net_backend = _architecture(layers_or_network, input_shape, loss)
    if input_shape is not None:
        shape = input_shape
    if not isinstance(strict, (bool, np.bool_)):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    arrays = _as_mapping(state_dict)
    modules = _group(arrays)
    if shape is None:
        shape = _infer_input_shape(layers, modules)
        if shape is None:
            raise ValueError("input_shape is needed for this architecture: the shape of one sample, e.g. "
                             "input_shape=(1, 28, 28) for 28x28 grey images")
    if dtype is None:
        dtype = _default_dtype(arrays.values())
    net = Network(layers, input_shape=shape, loss=loss, dtype=dtype, seed=0,
                  backend=backend if backend is not None else net_backend, ignore_index=ignore_index)
    pairs = _plan(modules, net._param_layers, bool(strict))
    converted = []
    for target, array, key in pairs:  # convert everything first: on any error nothing was half-written
        name = f"state_dict[{key!r}]" if key is not None else "a zero bias"
        converted.append((target, check._converted(name, np.asarray(array), target.dtype)))
    for target, array in converted:
        target[...] = array
    return net


# ------------------------------------------------------------------------------------------- sklearn
def _not_fitted(estimator):
    message = (f"from_sklearn needs a fitted estimator; this {type(estimator).__name__} is not fitted yet: call "
               "estimator.fit(X, y) first")
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:
        return ValueError(message)
    return NotFittedError(message)


def from_sklearn(estimator, *, dtype=None, backend=None):
    """A Network computing what a fitted scikit-learn MLPClassifier / MLPRegressor (or fastnn's) computes.

    coefs_[i] (in, out) is already fastnn's Dense layout; the hidden activation maps identity -> linear,
    logistic -> sigmoid, tanh, relu; the output activation gives the loss: softmax -> cross_entropy (predict is
    predict_proba: column j is the probability of estimator.classes_[j]), logistic -> binary_cross_entropy (predict is the positive class's column of predict_proba for
    a binary classifier, every label's probability for a multilabel one), identity -> mse (predict is the
    regressor's), exp (MLPRegressor(loss="poisson")) -> poisson.

    dtype: None keeps the dtype of coefs_ (float32 stays float32, anything else is float64)."""
    from . import _codes
    from .network import Network
    try:
        coefs, intercepts = list(estimator.coefs_), list(estimator.intercepts_)
    except AttributeError:
        if not hasattr(estimator, "hidden_layer_sizes"):
            raise TypeError("from_sklearn takes a fitted MLPClassifier or MLPRegressor (scikit-learn's or "
                            f"fastnn's), got {type(estimator).__name__}") from None
        raise _not_fitted(estimator) from None
    activation = getattr(estimator, "activation", None)
    out_activation = getattr(estimator, "out_activation_", None)
    if activation not in SKLEARN_ACTIVATIONS:
        raise ValueError(f"hidden activation {activation!r} has no fastnn equivalent; expected one of "
                         f"{sorted(SKLEARN_ACTIVATIONS)}")
    if out_activation not in SKLEARN_LOSSES:
        raise ValueError(f"output activation {out_activation!r} has no fastnn equivalent; expected one of "
                         f"{sorted(SKLEARN_LOSSES)}")
    loss = SKLEARN_LOSSES[out_activation]
    if loss not in _codes.LOSSES:
        raise NotImplementedError(f"out_activation_ {out_activation!r} ({type(estimator).__name__}(loss="
                                  f"'poisson')) needs fastnn's {loss!r} loss, which this version does not have")
    coefs = [np.asarray(c) for c in coefs]
    intercepts = [np.asarray(b) for b in intercepts]
    if not coefs or len(coefs) != len(intercepts):
        raise ValueError(f"coefs_ ({len(coefs)} arrays) and intercepts_ ({len(intercepts)}) must be as many, and "
                         "at least one")
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2 or b.shape != (W.shape[1],) or (i and W.shape[0] != coefs[i - 1].shape[1]):
            raise ValueError(f"coefs_[{i}] of shape {W.shape} and intercepts_[{i}] of shape {b.shape} do not chain "
                             "into a network")
    if dtype is None:
        dtype = "float32" if coefs[0].dtype == np.float32 else "float64"
    hidden = SKLEARN_ACTIVATIONS[activation]
    layers = [Dense(W.shape[1], hidden) for W in coefs[:-1]] + [Dense(coefs[-1].shape[1])]
    net = Network(layers, input_shape=(coefs[0].shape[0],), loss=loss, dtype=dtype, seed=0, backend=backend)
    converted = []
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        converted.append(check._converted(f"coefs_[{i}]", W, net.dtype))
        converted.append(check._converted(f"intercepts_[{i}]", b, net.dtype))
    for target, array in zip([a for layer in net._param_layers for a in (layer.W, layer.b)], converted):
        target[...] = array
    return net
