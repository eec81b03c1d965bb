"""fastnn.Network: a feed-forward network of layers (dense, convolutional, pooling, ...) trained by backpropagation.

Network owns all memory: one flat parameter buffer (every layer's weights first, then every bias, so one loop
updates everything and weight decay covers exactly the weights), a gradient buffer of the same layout, optimizer
state of the same layout, and per-layer workspaces reused from batch to batch. The kernels of the chosen backend
(C or NumPy, the same names and signatures) only ever write into these.
"""
import functools
import math
import os
import threading
import warnings

import numpy as np

from . import _backend, _codes, training
from . import _validation as check
from ._sparse import CSRRows, as_csr, is_sparse
from ._threads import ThreadSetting
from .layers import SEQUENCE_LAYERS, Dense, Embedding, Layer, _Recurrent, layer_from_config

DTYPES = {"float32": np.float32, "float64": np.float64}

# Inference (predict, evaluate) runs in chunks of at most this many samples, and of a scratch of at most about
# INFER_SCRATCH_BYTES, so predicting a large X never allocates per-layer outputs for all of it at once.
INFER_ROWS = 4096
_GEMM_MIN_WORK = 1 << 15  # FASTNN_BLAS_MIN_WORK: smaller dense products run the row kernels of dense.c
INFER_SCRATCH_BYTES = 64 << 20


def _exclusive(method):
    """Run `method` holding the network's lock, or refuse at once if another thread holds it: these methods
    share the workspaces, gradient buffer and optimizer state, so two at a time would corrupt each other."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"this Network is in use by another thread ({method.__name__} refused); "
                               "use one Network per thread, or serialise the calls")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy.release()

    return guarded


def _build_chain(layers, shape):
    """Build each layer on the output shape of the one before, starting from the per-sample input `shape`."""
    for i, layer in enumerate(layers):
        layer.build(shape, i)
        shape = layer.output_shape


def _shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _available_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


class _ParameterList(list):
    """A Network's `weights` or `biases`: a list of writable views into its parameters whose item assignment
    writes through (``net.weights[0] = W`` copies W into the network) and whose length is fixed.

    Without this, item assignment would replace an element of a fresh list and silently change nothing."""

    __slots__ = ("_network", "_what")

    def __init__(self, network, what, views):
        super().__init__(views)
        self._network = network
        self._what = what

    def _converted(self, index, value):
        """`value` checked against the view at `index` and converted to the network's dtype."""
        view = list.__getitem__(self, index)
        name = f"net.{self._what}[{index}]"
        if view is None:
            layer = self._network._param_layers[index]
            raise ValueError(f"{name}: layer {layer.index} ({layer!r}) has no biases")
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
        array = check.as_array(name, value)
        if array.shape != view.shape:
            raise ValueError(f"{name} has shape {view.shape}; cannot assign an array of shape {array.shape} "
                             "(the shape must match exactly)")
        return check._converted(name, array, view.dtype)

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            positions = range(len(self))[index]
            try:
                values = list(value)
            except TypeError:
                raise TypeError(f"assigning to a slice of net.{self._what} takes a sequence of arrays") from None
            if len(values) != len(positions):
                raise ValueError(f"net.{self._what}[{index.start}:{index.stop}:{index.step}] holds "
                                 f"{len(positions)} arrays, got {len(values)}: the list's length is fixed")
            converted = [self._converted(i, v) for i, v in zip(positions, values)]
            for i, array in zip(positions, converted):
                list.__getitem__(self, i)[...] = array
            self._network._weights_assigned()
            return
        try:
            i = range(len(self))[index]
        except IndexError:
            raise IndexError(f"net.{self._what} index {index} out of range: the network has {len(self)} "
                             "layers with parameters") from None
        except TypeError:
            raise TypeError(f"net.{self._what} indices must be integers or slices, not "
                            f"{type(index).__name__}") from None
        list.__getitem__(self, i)[...] = self._converted(i, value)
        self._network._weights_assigned()

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"net.{self._what} has one array per layer with parameters and cannot change length or "
                        f"order; to change the {self._what}, assign an item (net.{self._what}[i] = array of the "
                        "same shape), write into one (net.weights[i][...] = ...), or call "
                        "net.set_weights(arrays) with every array in get_weights() order")

    append = extend = insert = pop = remove = clear = sort = reverse = __delitem__ = _refuse
    __iadd__ = __imul__ = _refuse

    def copy(self):
        """A plain list of the same views (as list.copy)."""
        return list(self)

    def __reduce_ex__(self, protocol):  # pickles/deep-copies as a plain list of arrays
        return (list, (list(self),))


class Network(ThreadSetting):
    """A feed-forward network of layers.

    Two ways to build one:

    - ``Network(sizes, activations=..., ...)``: a stack of Dense layers, e.g. ``Network([784, 256, 10])``.
    - ``Network([Conv2D(6, 5, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)], input_shape=(1, 28, 28))``:
      any layers of fastnn.layers; shapes are inferred layer by layer from `input_shape` (per sample, without
      the batch axis; images are (channels, height, width) and (height, width) means one channel).

    Parameters
    ----------
    sizes : sequence of int, or sequence of layers
        Layer widths from input to output, e.g. [784, 256, 128, 10], or layer objects (copied: the network's
        own are in `net.layers`). The output layer must be Dense.
    activations : str or sequence of str
        For the sizes form only: one of "sigmoid", "tanh", "relu", "leaky_relu", "linear", "softmax" per weight
        layer, or one name for every hidden layer. The output layer then follows the loss (linear for mse,
        softmax for cross_entropy, sigmoid for binary_cross_entropy); in the layers form an output Dense left
        "linear" follows the loss the same way.
    loss : {"mse", "cross_entropy", "binary_cross_entropy", "poisson"}
        Means, as in PyTorch and Keras. cross_entropy takes integer labels or one-hot / probability rows.
        poisson (targets >= 0): a log link, as scikit-learn's MLPRegressor(loss="poisson"): the output layer
        computes log(mean) while training and predict returns exp of it; the loss is scikit-learn's half Poisson
        deviance, summed over outputs and averaged over samples (see csrc/fastnn.h).
    dtype : {"float32", "float64"}
    seed : int or None
        Seeds the NumPy Generator used for the initial weights (Glorot uniform for sigmoid/tanh/linear/softmax,
        He uniform for relu/leaky_relu) and later for shuffling and dropout masks, so both backends see the same
        numbers.
    backend : None, "c" or "python"
        None picks the best available (fastnn.BACKEND).
    input_shape : tuple of int
        For the layers form: the shape of one sample. Sequences are (steps,) of token ids for a network that
        starts with Embedding, (steps, features) for one that starts with a recurrent layer; steps may be None.
        A network whose parameters do not depend on the number of steps (no Flatten of a sequence) takes
        sequences of any length, whatever steps it was built with.
    ignore_index : int or None
        cross_entropy only: targets equal to it (e.g. padding tokens) count for nothing, and the mean is over
        the others (PyTorch's CrossEntropyLoss(ignore_index=...)).
    """

    def __init__(self, sizes, activations="relu", loss="mse", dtype="float32", seed=None, backend=None,
                 input_shape=None, ignore_index=None):
        layers, input_shape = self._parse_layers(sizes, activations, loss, input_shape)
        self._build(layers, input_shape, loss, dtype, seed, backend, params=None, ignore_index=ignore_index)

    @staticmethod
    def _parse_layers(sizes, activations, loss, input_shape):
        """(layers, input_shape) from either constructor form."""
        check.check_choice("loss", loss, _codes.LOSSES)
        try:
            items = list(sizes)
        except TypeError:
            raise TypeError("sizes must be a sequence of layer widths, e.g. [784, 256, 10], or of layers, e.g. "
                            "[fastnn.Flatten(), fastnn.Dense(10)]") from None
        if items and all(isinstance(item, Layer) for item in items):
            if input_shape is None:
                raise ValueError("a network of layers needs input_shape, the shape of one sample, e.g. "
                                 "input_shape=(1, 28, 28)")
            return [item.copy() for item in items], input_shape
        if any(isinstance(item, Layer) for item in items):
            raise TypeError("give either layer widths or layers, not a mix")
        sizes = check.parse_sizes(items)
        if input_shape is not None and check.parse_shape("input_shape", input_shape) != (sizes[0],):
            raise ValueError(f"input_shape {input_shape} does not match sizes[0] = {sizes[0]}")
        names = check.parse_activations(activations, len(sizes) - 1, loss)
        return [Dense(width, activation) for width, activation in zip(sizes[1:], names)], (sizes[0],)

    @classmethod
    def _from_parameters(cls, params, layers, input_shape, loss, dtype, backend=None, seed=None,
                         ignore_index=None):
        """A network of these (unbuilt) layers with these parameters (the flat buffer: all weights, then all
        biases), without drawing initial weights first (model files, unpickling)."""
        net = cls.__new__(cls)
        net._build(layers, input_shape, loss, dtype, seed, backend, params=params, ignore_index=ignore_index)
        return net

    @staticmethod
    def _declared_shape(input_shape, layers):
        """(input_shape as declared, with None for steps of any length; the shape to build with)."""
        if isinstance(input_shape, (tuple, list)) and len(input_shape) >= 1 and input_shape[0] is None:
            if not layers or not isinstance(layers[0], SEQUENCE_LAYERS):
                raise ValueError("input_shape may start with None (sequences of any length) only for a network "
                                 "that starts with Embedding or a recurrent layer")
            rest = check.parse_shape("input_shape", (1, *input_shape[1:]))[1:]
            return (None, *rest), (1, *rest)
        shape = check.parse_shape("input_shape", input_shape)
        if len(shape) == 2 and not (layers and isinstance(layers[0], (Dense, *SEQUENCE_LAYERS))):
            shape = (1, *shape)  # (height, width): one channel; a Dense takes (steps, features) as it is
        return shape, shape

    @staticmethod
    def _build_layers(layers, shape, loss):
        """Infer every layer's shapes from the per-sample input shape; fix the output layer's activation for
        the loss."""
        if not layers:
            raise ValueError("a network needs at least one layer")
        _build_chain(layers, shape)
        last = layers[-1]
        if not isinstance(last, Dense):
            raise ValueError(f"the output layer (layer {len(layers) - 1}, {last!r}) must be Dense: the loss is "
                             "taken over its vector of outputs")
        fused = _codes.FUSED_OUTPUT
        if loss in fused:
            if last.activation == "linear":
                last.activation = fused[loss]
            if last.activation != fused[loss]:
                raise ValueError(f"loss {loss!r} needs a {fused[loss]!r} output layer (it is fused into the "
                                 f"loss), got {last.activation!r}")
            last.fused_output = True
        return layers

    def _build(self, layers, input_shape, loss, dtype, seed, backend, params, ignore_index=None):
        check.check_choice("loss", loss, _codes.LOSSES)
        self._prune_keep = None  # pruning (fastnn.pruning): uint8 flags over the weights, 0 = pruned
        self._sparse = []  # per layer: None or (CSR of W^T, largest batch) for inference; [] = none built
        self._sparse_stale = False  # the weights changed since the CSR copies were (or would have been) built
        self._training = False
        dtype = check.check_dtype(dtype, DTYPES)
        self._kernels = _backend.get(backend)
        self.backend = self._kernels.NAME
        self.loss = loss
        self.dtype = np.dtype(dtype)
        if ignore_index is not None:
            if loss != "cross_entropy":
                raise ValueError(f"ignore_index is for the cross_entropy loss, not {loss!r}")
            ignore_index = check.check_int("ignore_index", ignore_index, -2**63)
        self.ignore_index = ignore_index
        self._loss_code = _codes.CROSS_ENTROPY_IGNORE if ignore_index is not None else _codes.LOSSES[loss]
        declared, shape = self._declared_shape(input_shape, layers)
        self.layers = self._build_layers(layers, shape, loss)
        self.input_shape = declared
        self._steps = shape[0] if self._takes_sequences() else None
        # one sample through dense layers only takes the matrix-vector path, with two vectors of scratch
        single = self._dense_only() and all(layer.steps == 1 for layer in self.layers)
        self._single_scratch = 2 * max(layer.out_size for layer in self.layers) if single else 0
        self._allocate()
        self._rng = np.random.default_rng(seed)
        if params is None:
            self._initialize()
        else:
            params = np.asarray(params)
            if params.shape != self._params.shape:
                raise ValueError(f"params has shape {params.shape}, the network needs {self._params.shape}")
            self._params[...] = params
        self._workspace_rows = 0
        self._release_workspace()
        self._tuned_batches = set()  # (rows, training) whose products have an engine chosen
        self._busy = threading.RLock()  # re-entrant: a fit's callback may predict
        self.n_threads = None
        self._reset_optimizer()

    # ----------------------------------------------------------------------------------------------- memory
    @property
    def _param_layers(self):
        return [layer for layer in self.layers if layer.has_params]

    def _allocate(self):
        decayed, plain = [], []
        for layer in self._param_layers:
            w_shapes, b_shapes = layer.param_shapes()
            decayed.append(w_shapes)
            plain.append(b_shapes)
        counts = [math.prod(s) for shapes in decayed + plain for s in shapes]
        n_params = sum(counts)
        self.n_decay = sum(math.prod(s) for shapes in decayed for s in shapes)
        nbytes = 2 * n_params * self.dtype.itemsize  # parameters and gradients
        avail = _available_memory_bytes()
        if avail is not None and nbytes > avail:
            what = f"sizes {self.sizes} need" if self._dense_only() else "this network needs"
            raise MemoryError(f"{what} {n_params:,} parameters ({nbytes / 2**30:.1f} GiB with "
                              f"gradients), more than this machine's {avail / 2**30:.1f} GiB of memory")
        self._params = np.zeros(n_params, dtype=self.dtype)
        self._grads = np.zeros(n_params, dtype=self.dtype)
        views = self._views(self._params, decayed, plain)
        grad_views = self._views(self._grads, decayed, plain)
        for layer, (w, b), (gw, gb) in zip(self._param_layers, views, grad_views):
            layer.bind(w, b, gw, gb)

    @staticmethod
    def _views(flat, decayed, plain):
        """Per-layer (weights, biases) views into a flat buffer laid out as [all weights, all biases]."""
        out, offset = [], 0
        for group in (decayed, plain):
            per_layer = []
            for shapes in group:
                arrays = []
                for shape in shapes:
                    size = math.prod(shape)
                    arrays.append(flat[offset:offset + size].reshape(shape))
                    offset += size
                per_layer.append(arrays)
            out.append(per_layer)
        return list(zip(out[0], out[1]))

    def _initialize(self):
        for layer in self.layers:
            layer.initialize(self._rng)

    def _workspace(self, rows):
        """A handle on the network's buffers whose training workspaces hold at least `rows` samples.

        Workspaces only grow, so a fit allocates them once (for its batch size) and every batch reuses them."""
        if rows > self._workspace_rows:
            dtypes = {"real": self.dtype, "int32": np.int32}
            self._workspaces = [{name: np.empty((rows, count), dtype=dtypes[kind])
                                 for name, (count, kind) in layer.workspace_sizes().items()}
                                for layer in self.layers]
            self._x_batch = np.empty((rows, self.n_inputs), dtype=self.dtype)
            self._t_batch = np.empty((rows, self.n_outputs), dtype=self.dtype)
            self._w_batch = np.empty(rows, dtype=self.dtype)
            self._workspace_rows = rows
            self._handle = self._make_handle()
        return self._handle

    def _make_handle(self):
        for layer in self._stateful_layers():
            layer._state_for(max(self._workspace_rows, 1), self.dtype)
        layers = [layer.descriptor(ws) for layer, ws in zip(self.layers, self._workspaces)]
        for fields, sparse in zip(layers, self._sparse):
            fields["sparse"] = sparse
        return self._kernels.NetHandle(layers, self._loss_code, self._params, self._grads, self.n_decay,
                                       self._x_batch, self._t_batch, self._w_batch, self._workspace_rows,
                                       keep=self._prune_keep)

    def _release_workspace(self):
        self._workspaces = [{} for _ in self.layers]
        self._x_batch = self._t_batch = self._w_batch = None
        self._workspace_rows = 0
        self._handle = self._make_handle()

    # ---------------------------------------------------------------------------------------------- public
    @property
    def weights(self):
        """Weight arrays of the layers with parameters, in layer order: writable views into the network. Dense
        W is (d_in, d_out); Conv2D W is (filters, in_channels, kh, kw); Embedding W is (vocab_size, dim);
        SimpleRNN/LSTM/GRU W is weight_ih (the layer's other arrays are in get_weights()).

        ``net.weights[i] = W`` copies W into layer i's weights (same shape exactly; real numbers, converted to
        the network's dtype; NaN, infinity and values the dtype cannot hold are refused, as set_weights does);
        on any error the network is unchanged. The list itself cannot grow or shrink (append, del, ...)."""
        return _ParameterList(self, "weights", [layer.W for layer in self._param_layers])

    @property
    def biases(self):
        """Bias vectors of the layers with parameters, in layer order: writable views into the network (None
        for a layer without biases, Embedding). ``net.biases[i] = b`` copies b in, checked as for weights."""
        return _ParameterList(self, "biases", [layer.b for layer in self._param_layers])

    def get_weights(self):
        """Copies of every parameter array, layer by layer, each layer's in the order of its parameter_arrays()
        (Keras' get_weights)."""
        return [a.copy() for layer in self._param_layers for a in layer.parameter_arrays()]

    def set_weights(self, arrays):
        """Set every parameter from arrays in the order get_weights() gives (e.g. another network's of the same
        architecture, stateful or not). Shapes are checked first; on any error the network is unchanged."""
        views = [a for layer in self._param_layers for a in layer.parameter_arrays()]
        arrays = list(arrays)
        if len(arrays) != len(views):
            raise ValueError(f"set_weights takes {len(views)} arrays, got {len(arrays)}")
        converted = []
        for i, (view, array) in enumerate(zip(views, arrays)):
            array = check.as_array(f"arrays[{i}]", array)
            if array.shape != view.shape:
                raise ValueError(f"arrays[{i}] has shape {array.shape}, the network's is {view.shape}")
            if not check._all_finite(array):
                raise ValueError(f"arrays[{i}] contains NaN or infinity")
            converted.append(array)
        for view, array in zip(views, converted):
            view[...] = array
        self._weights_assigned()

    # ---------------------------------------------------------------------------------------------- pruning
    def _refuse_while_training(self, what):
        if self._training:
            raise RuntimeError(f"cannot {what} while fit is running (e.g. from a callback): the epoch in progress "
                               "updates the weights with the mask it started with; do it after fit returns")

    @_exclusive
    def prune(self, amount=0.9, scope="global"):
        """Magnitude pruning: set the `amount` fraction of the still-unpruned weights with the smallest |w| to
        zero and keep them there (fit and train_step re-apply the mask after every update). scope="global" ranks
        all weights together (one threshold), "layer" each layer's separately. Repeated calls prune `amount` of
        what remains (torch.nn.utils.prune's iterative semantics: 0.5 twice leaves 25%). Weights are those of
        Dense, Conv2D, Embedding and recurrent layers; biases are never pruned. See fastnn.pruning."""
        from .pruning import prune
        self._refuse_while_training("prune")
        prune(self, amount, scope)
        return self

    def sparsity(self, per_layer=False):
        """The fraction of weights (biases excluded) that are exactly zero; per_layer=True: {index in
        net.layers: fraction} for each layer with weights."""
        from .pruning import sparsity
        return sparsity(self, per_layer)

    @property
    def pruned(self):
        """True while the network has a pruning mask (after prune(), until remove_pruning())."""
        return self._prune_keep is not None

    @_exclusive
    def remove_pruning(self):
        """Drop the pruning mask: the weights keep their values (zeros included), but training may now change
        the pruned ones (torch.nn.utils.prune.remove). Sparse inference stops with it."""
        self._refuse_while_training("remove the pruning")
        self._prune_keep = None
        self._sparse = []
        self._sparse_stale = True
        self._handle = self._make_handle()

    def _set_prune_keep(self, keep):
        """Install the keep flags (uint8, n_decay) and zero the pruned weights."""
        if keep.dtype != np.uint8 or keep.shape != (self.n_decay,):
            raise ValueError(f"the pruning mask must be uint8 of shape ({self.n_decay},), got {keep.dtype} "
                             f"{keep.shape}")
        self._prune_keep = np.ascontiguousarray(keep)
        self._kernels.mask_apply(self._params[:self.n_decay], self._prune_keep, 1)
        self._sparse = []
        self._sparse_stale = True
        self._handle = self._make_handle()  # the update kernels read the flags through the handle

    def _weights_assigned(self):
        """After set_weights / item assignment: pruned positions back to zero, sparse copies out of date."""
        if self._prune_keep is not None:
            self._kernels.mask_apply(self._params[:self.n_decay], self._prune_keep, 1)
            self._drop_sparse()

    def _drop_sparse(self):
        """The weights are about to change (training) or did: forget the CSR copies."""
        self._sparse_stale = True
        if self._sparse:
            self._sparse = []
            self._handle = self._make_handle()

    def _sparse_ready(self):
        """Before inference: build the CSR copies of a pruned network whose weights changed since."""
        if self._prune_keep is None or not self._sparse_stale or self._training:
            return
        from .pruning import build_sparse
        self._sparse = build_sparse(self)
        self._sparse_stale = False
        self._handle = self._make_handle()

    @property
    def activations(self):
        return [layer.activation for layer in self._param_layers]

    @property
    def sizes(self):
        """Per-sample sizes from input to output: the input's, then every layer's output's (flattened). For a
        stack of Dense layers, the layer widths the network was built from."""
        return [self.layers[0].in_size] + [layer.out_size for layer in self.layers]

    @property
    def output_shape(self):
        return self.layers[-1].output_shape


    @property
    def n_params(self):
        return int(self._params.size)

    @property
    def n_inputs(self):
        return self.layers[0].in_size

    @property
    def n_outputs(self):
        return self.layers[-1].out_size

    def _dense_only(self):
        return all(isinstance(layer, Dense) for layer in self.layers)

    # --------------------------------------------------------------------------------------------- sequences
    def _takes_sequences(self):
        return isinstance(self.layers[0], SEQUENCE_LAYERS)

    def _takes_tokens(self):
        return isinstance(self.layers[0], Embedding)

    def _set_steps(self, steps):
        """Rebuild the layers' shapes for sequences of `steps` steps (parameters unchanged)."""
        if steps == self._steps:
            return
        fixed = self.input_shape[0]
        shapes = [layer.param_shapes() for layer in self._param_layers]
        try:
            self._rebuild_steps(steps)
            if [layer.param_shapes() for layer in self._param_layers] != shapes:
                raise ValueError("its parameters depend on the number of steps")
        except ValueError as exc:
            self._rebuild_steps(self._steps)
            fixed = self._steps if fixed is None else fixed
            raise ValueError(f"this network takes sequences of {fixed} steps, got {steps} ({exc})") from None
        self._steps = steps
        self._release_workspace()

    def _rebuild_steps(self, steps):
        _build_chain(self.layers, (steps, *self.layers[0].input_shape[1:]))

    def _stateful_layers(self):
        return [layer for layer in self.layers if isinstance(layer, _Recurrent) and layer.stateful]

    def reset_states(self):
        """Zero the carried state of every stateful recurrent layer (start new sequences)."""
        for layer in self._stateful_layers():
            layer.reset_state()

    def _prepare_states(self, rows):
        """Stateful layers keep one state per sequence of a batch: grow them to `rows` (new rows start at
        zero) and rebuild the handle when they moved."""
        if any(layer._state_for(rows, self.dtype) for layer in self._stateful_layers()):
            self._handle = self._make_handle()

    def __repr__(self):
        if self._dense_only():
            return (f"Network({self.sizes}, activations={self.activations}, loss={self.loss!r}, "
                    f"dtype={self.dtype.name!r}, backend={self.backend!r}, n_params={self.n_params:,})")
        return self.summary(print_fn=None)

    def summary(self, print_fn=print):
        """A table of the layers with their output shapes and parameter counts (as Keras' summary); printed
        with print_fn (None: only returned)."""
        rows = [("input", _shape_text(self.input_shape), "")]
        for i, (layer, shape) in enumerate(zip(self.layers, self._declared_output_shapes())):
            rows.append((f"{i}: {layer!r}", _shape_text(shape), f"{layer.n_params:,}"))
        widths = [max(len(r[k]) for r in rows + [("layer", "output shape", "params")]) for k in range(3)]
        line = "-" * (sum(widths) + 4)
        head = f"{'layer':<{widths[0]}}  {'output shape':<{widths[1]}}  {'params':>{widths[2]}}"
        body = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        text = "\n".join([f"Network(loss={self.loss!r}, dtype={self.dtype.name!r}, backend={self.backend!r})",
                          head, line, *body, line, f"total parameters: {self.n_params:,}", *self._engine_lines()])
        if print_fn is not None:
            print_fn(text)
        return text

    def _engine_lines(self):
        """summary()'s account of the matrix-product engines, for each batch size fit or predict has run."""
        if self.backend != "c":
            return []
        from . import _gemm
        lines = []
        for rows, training in sorted(self._tuned_batches):
            used = [_gemm.engine_for(*shape) for _, _, shape in self._product_shapes(rows, training)]
            if used:
                counts = ", ".join(f"{name} x{used.count(name)}" for name in sorted(set(used)))
                lines.append(f"matrix products ({'training' if training else 'inference'}, {rows} rows): {counts}"
                             f" (own kernels: {_gemm.isa()})")
        return lines

    def products(self, batch_size, training=True):
        """The matrix products of one step on `batch_size` samples that run as whole products in the C kernels
        (those of dense layers; training adds dW = x^T dz and dx = dz W^T), and the engine each runs on:
        [(layer index, 'forward' | 'dW' | 'dx', (m, n, k), engine)]. Engines are 'own' (fastnn's packed kernels,
        with their instruction set in fastnn.show_config()), 'blas' or 'loops'; 'numpy' on the NumPy backend.
        Shapes not seen before are timed first (fastnn._gemm.tune): fit and predict do this for their batch
        sizes, so this reports what they run."""
        batch_size = check.check_int("batch_size", batch_size, 1)
        from . import _gemm
        shapes = self._product_shapes(batch_size, training)
        if self.backend == "c":
            _gemm.tune([shape for _, _, shape in shapes], self._n_threads_now())
        engine = (lambda shape: "numpy") if self.backend != "c" else (lambda shape: _gemm.engine_for(*shape))
        return [(i, what, shape[3:], engine(shape)) for i, what, shape in shapes]

    def _product_shapes(self, rows, training):
        """(layer index, product, (dtype, trans_a, trans_b, m, n, k)) of the products fastnn_gemm runs for a
        batch of `rows` samples: dense layers' products of at least FASTNN_BLAS_MIN_WORK multiply-adds."""
        shapes, params_below = [], False
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                r, d_in, d_out = rows * layer.steps, layer.d_in, layer.units
                if r > 1 and r * d_in * d_out >= _GEMM_MIN_WORK:
                    shapes.append((i, "forward", (self.dtype, 0, 0, r, d_out, d_in)))
                    if training:
                        shapes.append((i, "dW", (self.dtype, 1, 0, d_in, d_out, r)))
                        if params_below:
                            shapes.append((i, "dx", (self.dtype, 0, 1, r, d_in, d_out)))
            params_below = params_below or layer.n_params > 0
        return shapes

    def _tune_products(self, rows, training):
        """Choose the engine of each product of a batch of `rows` the first time that batch size is seen."""
        if self.backend != "c" or (rows, training) in self._tuned_batches:
            return
        self._tuned_batches.add((rows, training))
        from . import _gemm
        _gemm.tune([shape for _, _, shape in self._product_shapes(rows, training)], self._n_threads_now())

    def _declared_output_shapes(self):
        """Every layer's output shape, with None where it follows a steps axis declared None."""
        shapes = [layer.output_shape for layer in self.layers]
        if self.input_shape[0] is not None:
            return shapes
        probes = [layer.copy() for layer in self.layers]
        _build_chain(probes, (self._steps + 1, *self.layers[0].input_shape[1:]))
        return [tuple(None if a != b else a for a, b in zip(shape, probe.output_shape))
                for shape, probe in zip(shapes, probes)]

    def get_config(self):
        """What rebuilds this network's architecture (Network.from_config); weights not included."""
        config = {"input_shape": list(self.input_shape), "loss": self.loss, "dtype": self.dtype.name,
                  "layers": [layer.config() for layer in self.layers]}
        if self.ignore_index is not None:
            config["ignore_index"] = self.ignore_index
        return config

    @classmethod
    def from_config(cls, config, seed=None, backend=None):
        """A new network (freshly initialised) of the architecture get_config() described."""
        layers = [layer_from_config(c) for c in config["layers"]]
        return cls(layers, input_shape=tuple(config["input_shape"]), loss=config["loss"], dtype=config["dtype"],
                   seed=seed, backend=backend, ignore_index=config.get("ignore_index"))

    def __getstate__(self):
        # the lock, the kernels module and the C handle are rebuilt; the rest is plain arrays
        return {"config": self.get_config(), "params": self._params.copy(), "backend": self.backend,
                "rng": self._rng.bit_generator.state, "n_threads": self._n_threads, "optimizer": self._opt,
                "prune_keep": None if self._prune_keep is None else self._prune_keep.copy()}

    def __setstate__(self, state):
        config = state["config"]
        layers = [layer_from_config(c) for c in config["layers"]]
        self._build(layers, tuple(config["input_shape"]), config["loss"], config["dtype"], None, state["backend"],
                    params=state["params"], ignore_index=config.get("ignore_index"))
        self._rng.bit_generator.state = state["rng"]
        self._n_threads = state["n_threads"]
        self._opt = state["optimizer"]
        if state.get("prune_keep") is not None:  # pickles from before pruning have none
            self._set_prune_keep(state["prune_keep"])

    def _as_samples(self, name, X):
        """X as a C-contiguous (n, n_inputs) batch, or (n_inputs,) for one sample, from the shapes users pass:
        (n, *input_shape) or one sample of input_shape; for images also (n, H, W) / (H, W) with one channel and
        (n, C*H*W) rows already flattened."""
        if self._takes_sequences():
            return self._as_sequences(name, X)
        shape = self.input_shape
        if len(shape) == 1:
            X = check.as_array(name, X)
            if X.ndim > 2:
                n, per_sample = self.n_inputs, math.prod(X.shape[1:])
                fits = "as the network expects" if per_sample == n else f"but the network expects {n}"
                raise ValueError(
                    f"{name} must be 1-D (one sample) or 2-D (n_samples, n_features), got {X.ndim}-D (shape "
                    f"{X.shape}): this network's first layer is Dense on vectors of {n} features, so it takes "
                    f"(n, {n}), or one sample ({n},). Flatten each sample first with "
                    f"{name}.reshape(len({name}), -1) ({per_sample} features per sample, {fits}), or build the "
                    f"network with fastnn.Flatten() as its first layer and input_shape={tuple(X.shape[1:])}")
            return check.as_input(name, X, self.n_inputs, self.dtype)
        X = check.as_array(name, X)
        one_channel = shape[0] == 1 and X.shape[-2:] == shape[1:]
        if X.ndim == len(shape) + 1 and X.shape[1:] == shape or (one_channel and X.ndim == 3):
            batch = X.reshape(X.shape[0], self.n_inputs)
        elif X.ndim == 2 and X.shape[1] == self.n_inputs and not (one_channel and X.shape == shape[1:]):
            batch = X
        elif X.shape == shape or (one_channel and X.ndim == 2):
            return check.as_input(name, X.reshape(-1), self.n_inputs, self.dtype)
        else:
            hint = " or (n, H, W) with one channel" if shape[0] == 1 else ""
            raise ValueError(f"{name} has shape {X.shape}; the network takes images of shape (n, "
                             f"{', '.join(map(str, shape))}){hint}, or one image {shape}")
        return check.as_input(name, batch, self.n_inputs, self.dtype)

    def _as_sequences(self, name, X):
        """Sequences as a C-contiguous (n, steps * features) batch, or one sequence (steps * features,); the
        network is set to their number of steps. Token ids must be integers in [0, vocab_size)."""
        X = check.as_array(name, X)
        per_step = self.layers[0].input_shape[1:]  # () for token ids, (features,) otherwise
        what = "token ids" if self._takes_tokens() else "steps of features"
        if X.ndim == len(per_step) + 2:
            one = False
        elif X.ndim == len(per_step) + 1:
            one, X = True, X[None]
        else:
            shape = "(n, steps)" if self._takes_tokens() else f"(n, steps, {per_step[0]})"
            raise ValueError(f"{name} has shape {X.shape}; the network takes sequences of {what}, shaped {shape} "
                             "(or one sequence without the n axis)")
        if X.shape[2:] != per_step:
            raise ValueError(f"{name} has {X.shape[2:]} features per step, the network takes {per_step}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 sequences)")
        if X.shape[1] == 0:
            raise ValueError(f"{name} has sequences of 0 steps; a sequence needs at least one")
        if self._takes_tokens():
            vocab = self.layers[0].vocab_size
            if X.dtype.kind == "b":
                raise TypeError(f"{name}: token ids must be integers, got bools")
            if X.dtype.kind == "f" and not (np.isfinite(X).all() and np.all(X == np.round(X))):
                raise ValueError(f"{name}: token ids must be integers in [0, {vocab - 1}]")
            if X.min() < 0 or X.max() >= vocab:
                raise ValueError(f"{name}: token ids must be in [0, {vocab - 1}] (the Embedding's vocab_size is "
                                 f"{vocab}), got values in [{X.min()}, {X.max()}]")
            if vocab > 2**24 and self.dtype == np.float32:
                raise ValueError("token ids above 2^24 do not survive float32: build the network with "
                                 "dtype='float64'")
        self._set_steps(X.shape[1])
        batch = check.as_input(name, X.reshape(X.shape[0], -1), self.n_inputs, self.dtype)
        return batch[0] if one else batch

    def _infer_rows(self, n):
        """Samples per inference chunk: all of them up to INFER_ROWS, fewer when the scratch would be large."""
        per_row = self._kernels.net_infer_scratch_size(self._handle, 1) * self.dtype.itemsize
        return max(1, min(n, INFER_ROWS, INFER_SCRATCH_BYTES // max(per_row, 1)))

    def forward(self, X):
        """Network outputs: (n, n_outputs) for a batch X, (n_outputs,) for one sample. X: (n, n_inputs) for a
        network of Dense layers; (n, C, H, W) images for a convolutional one; (n, steps) token ids or (n, steps,
        features) for a recurrent one (see _as_samples). A sequence output (a Dense on every step) is (n, steps,
        units).

        For cross_entropy the outputs are class probabilities (softmax), for binary_cross_entropy sigmoids,
        for poisson the predicted means exp(log-mean).
        A stateful network starts from, and updates, its carried state (one per row of X). X may be a
        scipy.sparse matrix of flat feature rows, densified one bounded chunk of rows at a time."""
        if not self._takes_sequences():
            return self._forward(X)
        # the layers' step count and the carried states are shared: one sequence call at a time
        with self._busy:
            return self._forward(X)

    def _forward(self, X):
        self._sparse_ready()
        if is_sparse(X):
            return self._forward_sparse(self._as_sparse_rows("X", X))
        X = self._as_samples("X", X)
        k = self._kernels
        if X.ndim == 1:
            y = np.empty(self.n_outputs, dtype=self.dtype)
            if self._single_scratch:
                # scratch per call, so any number of threads may predict at once
                k.net_forward_single(self._handle, y, X, np.empty(self._single_scratch, dtype=self.dtype))
            else:
                self._prepare_states(1)
                scratch = np.empty(k.net_infer_scratch_size(self._handle, 1), dtype=self.dtype)
                k.net_predict(self._handle, y.reshape(1, -1), X.reshape(1, -1), scratch, 1)
            return y.reshape(self.output_shape) if len(self.output_shape) > 1 else y
        n_threads = self._n_threads_now()
        n = X.shape[0]
        Y = np.empty((n, self.n_outputs), dtype=self.dtype)
        # a stateful network's row i continues sequence i of its state: no chunks
        rows = n if self._stateful_layers() else self._infer_rows(n)
        self._prepare_states(n)
        self._tune_products(rows, training=False)
        scratch = np.empty(k.net_infer_scratch_size(self._handle, rows), dtype=self.dtype)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            k.net_predict(self._handle, Y[start:stop], X[start:stop], scratch, n_threads)
        return Y.reshape(n, *self.output_shape) if len(self.output_shape) > 1 else Y

    def _forward_sparse(self, X):
        """Predictions for sparse rows, densified one bounded chunk at a time."""
        k, n = self._kernels, X.shape[0]
        n_threads = self._n_threads_now()
        Y = np.empty((n, self.n_outputs), dtype=self.dtype)
        rows = self._sparse_chunk_rows(n)
        scratch = np.empty(k.net_infer_scratch_size(self._handle, rows), dtype=self.dtype)
        buf = np.empty((rows, self.n_inputs), dtype=self.dtype)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            k.net_predict(self._handle, Y[start:stop], self._dense_rows(X, start, stop, buf), scratch, n_threads)
        return Y.reshape(n, *self.output_shape) if len(self.output_shape) > 1 else Y

    predict = forward

    @_exclusive
    def evaluate(self, X, y, sample_weight=None, metrics=None):
        """Mean loss over X (the value `gradients` differentiates; no weight decay term, no dropout). With
        sample_weight, each sample's loss is multiplied by its weight (the mean stays over the samples).
        With metrics (names as for fit), returns {"loss": ..., name: value, ...} from the same pass."""
        specs = training.parse_metrics(metrics, self.layers[-1].activation)
        X, T = self._check_xy(X, y)
        w = self._sample_weights(y, X.shape[0], None, sample_weight)
        acc = training.MetricAccumulator(specs) if specs else None
        value = self._mean_loss(X, T, self._n_threads_now(), w, metrics=acc)
        return value if acc is None else {"loss": value, **acc.values()}

    def _mean_loss(self, X, T, n_threads, w=None, metrics=None):
        # every loss is a mean over samples (times a constant n_outputs), so chunk means combine by rows; with
        # ignore_index, by the rows that count
        self._sparse_ready()
        k, n = self._kernels, X.shape[0]
        sparse = isinstance(X, CSRRows)
        rows = n if self._stateful_layers() else self._sparse_chunk_rows(n) if sparse else self._infer_rows(n)
        self._prepare_states(rows)
        scratch = np.empty(k.net_infer_scratch_size(self._handle, rows), dtype=self.dtype)
        buf = np.empty((rows, self.n_inputs), dtype=self.dtype) if sparse else None
        classes = self.n_outputs // self.layers[-1].steps
        total = counted = 0.0
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            wc = None if w is None else w[start:stop]
            if self.ignore_index is None:
                count = stop - start
            else:
                count = np.count_nonzero(T[start:stop].reshape(-1, classes).any(axis=1))
            xc = self._dense_rows(X, start, stop, buf)
            total += k.net_evaluate(self._handle, xc, T[start:stop], scratch, n_threads, wc, metrics) * count
            counted += count
        return total / counted if counted else 0.0

    @_exclusive
    def gradients(self, X, y, sample_weight=None):
        """Gradients of the mean loss over all of X as new arrays (dropout off, as in evaluate), per layer with
        parameters a tuple in the order of its parameter_arrays(): (dW, db) for Dense and Conv2D, (dW,) for
        Embedding, (d weight_ih, d weight_hh, d bias_ih, d bias_hh) for SimpleRNN, LSTM and GRU. Updates
        nothing."""
        return self._loss_and_gradients(X, y, sample_weight)[1]

    @_exclusive
    def loss_and_gradients(self, X, y, sample_weight=None):
        """(mean loss, gradients per layer as (dW, db)) over all of X in one forward and backward pass: what
        `evaluate` and `gradients` return, for optimizers that need both (e.g. scipy.optimize)."""
        return self._loss_and_gradients(X, y, sample_weight)

    def _loss_and_gradients(self, X, y, sample_weight):
        X, T = self._check_xy(X, y)
        w = self._sample_weights(y, X.shape[0], None, sample_weight)
        if isinstance(X, CSRRows):
            return self._sparse_loss_and_gradients(X, T, w)
        handle = self._workspace(X.shape[0])  # stateful layers' states grow with it
        value = self._kernels.net_backprop(handle, X, T, self._n_threads_now(), w)
        grads = [tuple(g.copy() for g in layer.gradient_arrays()) for layer in self._param_layers]
        if X.shape[0] > INFER_ROWS:
            self._release_workspace()
        return value, grads

    def _sparse_loss_and_gradients(self, X, T, w):
        """loss_and_gradients over sparse rows, one densified chunk at a time: every loss is a mean over its
        rows (with ignore_index, over the rows that count), so chunk means combine weighted by those rows."""
        n, k = X.shape[0], self._kernels
        rows = self._sparse_chunk_rows(n)
        handle = self._workspace(rows)
        buf = np.empty((rows, self.n_inputs), dtype=self.dtype)
        counts = [T[a:a + rows].any(axis=1).sum() if self.ignore_index is not None else min(rows, n - a)
                  for a in range(0, n, rows)]
        total = max(sum(counts), 1)
        value, sums = 0.0, [[np.zeros(g.shape) for g in layer.gradient_arrays()] for layer in self._param_layers]
        for start, count in zip(range(0, n, rows), counts):
            stop = min(start + rows, n)
            wc = None if w is None else w[start:stop]
            chunk = k.net_backprop(handle, self._dense_rows(X, start, stop, buf), T[start:stop],
                                   self._n_threads_now(), wc)
            value += chunk * count / total
            for acc, layer in zip(sums, self._param_layers):
                for a, g in zip(acc, layer.gradient_arrays()):
                    a += g * (count / total)
        if rows > INFER_ROWS:
            self._release_workspace()
        return value, [tuple(a.astype(self.dtype) for a in acc) for acc in sums]

    def _check_xy(self, X, y, name_x="X", name_y="y"):
        if is_sparse(X) or isinstance(X, CSRRows):
            return self._check_sparse_xy(X, y, name_x, name_y)
        X = self._as_samples(name_x, X)
        y = self._target_array(name_y, y)
        if X.ndim == 1:  # one sample: y is its label (a scalar) or its row of targets
            X = X.reshape(1, -1)
            y = y.reshape(1, *y.shape)
        y = self._label_column(y)
        steps = self.layers[-1].steps
        if steps > 1:
            return X, self._sequence_targets(name_y, y, X.shape[0], steps)
        if self.ignore_index is not None and y.ndim == 1:
            return X, self._labels_with_padding(name_y, y, self.n_outputs)
        T = check.as_targets(name_y, y, X.shape[0], self.n_outputs, self.loss, self.dtype)
        return X, T

    @staticmethod
    def _target_array(name, y):
        """y as an array of real numbers; strings (class names) are refused with a hint on how to encode them."""
        if not isinstance(y, np.ndarray):
            try:
                y = np.asarray(y)
            except ValueError:  # ragged: as_array says so
                return check.as_array(name, y)
        if y.dtype.kind in "USO":
            text = next((v for v in y.flat if isinstance(v, (str, bytes))), None) if y.dtype.kind == "O" else \
                (y.flat[0].item() if y.size else "")
            if text is not None:
                raise TypeError(
                    f"{name} must hold real numbers (float, integer or bool), got dtype {y.dtype}: it holds "
                    f"strings (such as {text!r}). For class labels, "
                    f"encode them as integers 0..k-1 first: classes, {name}_int = np.unique({name}, "
                    f"return_inverse=True) (classes[i] is the name of label i), or "
                    "sklearn.preprocessing.LabelEncoder; then train a network of k outputs with "
                    "loss='cross_entropy'. Or use fastnn.MLPClassifier, which takes labels of any type.")
        return check.as_array(name, y)

    def _label_column(self, y):
        """Integer labels given as a column (n, 1) to a classifier of several outputs: the labels (n,), as
        scikit-learn's and Keras' sparse categorical losses take them (a (n, 1) array cannot be rows of
        probabilities over several classes)."""
        if (self.loss == "cross_entropy" and self.n_outputs > 1 and self.layers[-1].steps == 1
                and getattr(y, "ndim", 0) == 2 and y.shape[1] == 1):
            return y[:, 0]
        return y

    # ------------------------------------------------------------------------------------------ sparse input
    def _as_sparse_rows(self, name, X):
        """A scipy.sparse X as CSRRows of the network's dtype (converted once, never densified)."""
        if isinstance(X, CSRRows):
            return X
        if self._takes_sequences():
            what = "token ids" if self._takes_tokens() else "sequences of steps of features"
            raise ValueError(f"{name} is a scipy.sparse matrix, but this network takes {what}; sparse input is "
                             "for networks whose input is a flat row of features: pass a dense array")
        return as_csr(name, X, self.n_inputs, self.dtype)

    def _check_sparse_xy(self, X, y, name_x, name_y):
        X = self._as_sparse_rows(name_x, X)
        y = self._label_column(self._target_array(name_y, y))
        if self.ignore_index is not None and y.ndim == 1:
            return X, self._labels_with_padding(name_y, y, self.n_outputs)
        return X, check.as_targets(name_y, y, X.shape[0], self.n_outputs, self.loss, self.dtype)

    def _sparse_chunk_rows(self, n):
        """Rows per chunk when densifying sparse input for inference: the inference chunk, fewer when the dense
        rows would pass INFER_SCRATCH_BYTES."""
        per_row = self.n_inputs * self.dtype.itemsize
        return max(1, min(self._infer_rows(n), INFER_SCRATCH_BYTES // per_row))

    def _dense_rows(self, X, start, stop, buf):
        """Rows [start, stop) of X as a dense C-contiguous array: a slice of a dense X, or a sparse X's rows
        gathered into buf (at least stop - start rows)."""
        if not isinstance(X, CSRRows):
            return X[start:stop]
        m = stop - start
        out = buf[:m]
        self._kernels.csr_gather(out, X.rows(start, stop), np.arange(m, dtype=np.int64), self._n_threads_now())
        return out

    def _sample_weights(self, y, n, class_weight, sample_weight):
        if class_weight is not None:
            y = self._label_column(self._target_array("y", y))
        if self.layers[-1].steps > 1:
            if class_weight is not None or sample_weight is not None:
                raise ValueError("sample_weight and class_weight are not supported for a sequence output (one "
                                 "loss term per step); use ignore_index to leave steps out")
            return None
        if self.ignore_index is not None and class_weight is not None:
            raise ValueError("class_weight with ignore_index is not supported")
        return training.sample_weights(self.loss, y, n, self.n_outputs, class_weight, sample_weight, self.dtype)

    def _labels_with_padding(self, name, labels, classes):
        """One-hot rows of integer labels, all-zero rows where a label is ignore_index."""
        keep = labels != self.ignore_index
        T = np.zeros((labels.shape[0], classes), dtype=self.dtype)
        kept = check.as_targets(name, labels[keep], int(keep.sum()), classes, "cross_entropy", self.dtype)
        T[keep] = kept
        return T

    def _sequence_targets(self, name, y, n, steps):
        """Targets of a network whose output is a sequence (steps, classes) as (n, steps * classes): integer
        labels (n, steps) for cross_entropy (one per step; ignore_index ones count for nothing), else values
        (n, steps, classes), or (n, steps) for one output per step."""
        classes = self.n_outputs // steps
        if y.shape[:1] != (n,) or y.ndim not in (2, 3) or y.shape[1] != steps or \
                (y.ndim == 3 and y.shape[2] != classes):
            labels = "integer labels (n, steps) or " if self.loss == "cross_entropy" else ""
            raise ValueError(f"{name} has shape {y.shape}; the network's output is a sequence of {steps} steps "
                             f"of {classes}, so it takes {labels}targets of shape ({n}, {steps}, {classes})")
        if y.ndim == 2 and self.loss == "cross_entropy":
            flat = y.reshape(-1)
            if self.ignore_index is not None:
                T = self._labels_with_padding(name, flat, classes)
            else:
                T = check.as_targets(name, flat, flat.shape[0], classes, self.loss, self.dtype)
        else:
            T = check.as_targets(name, y.reshape(n * steps, -1), n * steps, classes, self.loss, self.dtype)
        return np.ascontiguousarray(T.reshape(n, steps * classes))

    def _dropout_layers(self):
        return [layer for layer in self.layers if layer.code == _codes.LAYER_DROPOUT]

    def _dropout_seed(self):
        """A fresh 63-bit key for the dropout masks of one training call, from the network's generator (drawn
        only when there are dropout layers, so a network without them keeps its shuffling stream)."""
        return int(self._rng.integers(0, 2**63)) if self._dropout_layers() else 0

    def _note_mask_rows(self, rows):
        for layer in self._dropout_layers():
            layer._mask_rows = rows

    # ------------------------------------------------------------------------------------------ distillation
    def _logits(self, X):
        """The output layer's values before its activation (for a softmax output, the logits) for a batch X, as
        a new (n, n_outputs) array of the network's dtype."""
        if self._stateful_layers():
            raise ValueError("a stateful network cannot give teacher logits")
        sparse = is_sparse(X) or isinstance(X, CSRRows)
        if sparse:  # densified one bounded chunk of rows at a time, as predict does
            X = self._as_sparse_rows("X", X)
        else:
            X = self._as_samples("X", X)
            if X.ndim == 1:
                X = X.reshape(1, -1)
        masks = [getattr(layer, "_mask", None) for layer in self.layers]  # descriptor() resets dropout's
        descriptors = [layer.descriptor({}) for layer in self.layers]
        for layer, mask in zip(self.layers, masks):
            if hasattr(layer, "_mask"):
                layer._mask = mask
        descriptors[-1] = dict(descriptors[-1], predict_act=descriptors[-1]["act"])
        k = self._kernels
        handle = k.NetHandle(descriptors, self._loss_code, self._params, self._grads, self.n_decay, None, None,
                             None, 0)
        n = X.shape[0]
        Y = np.empty((n, self.n_outputs), dtype=self.dtype)
        rows = self._sparse_chunk_rows(n) if sparse else self._infer_rows(n)
        scratch = np.empty(k.net_infer_scratch_size(handle, rows), dtype=self.dtype)
        buf = np.empty((rows, self.n_inputs), dtype=self.dtype) if sparse else None
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            k.net_predict(handle, Y[start:stop], self._dense_rows(X, start, stop, buf), scratch,
                          self._n_threads_now())
        return Y

    def _distillation(self, teacher, X, n, temperature, alpha):
        """None without a teacher, else (teacher logits (n, n_outputs) of this network's dtype, temperature,
        alpha), every argument checked: X is the input as the caller gave it (the teacher network's input)."""
        if teacher is None:
            if temperature is not None or alpha is not None:
                raise ValueError("temperature and alpha apply to distillation: give a teacher too")
            return None
        temperature = 4.0 if temperature is None else temperature
        alpha = 0.9 if alpha is None else alpha
        temperature = check.check_float("temperature", temperature, 0.0, include_minimum=False)
        alpha = check.check_float("alpha", alpha, 0.0, 1.0, include_maximum=True)
        if not math.isfinite(temperature):
            raise ValueError(f"temperature must be finite, got {temperature}")
        if (self.loss != "cross_entropy" or self.ignore_index is not None or self.layers[-1].steps != 1
                or self.layers[-1].activation != "softmax"):
            raise ValueError("distillation trains a softmax classifier (loss='cross_entropy', no ignore_index, "
                             f"one output row per sample); this network has loss={self.loss!r} and output "
                             f"activation {self.layers[-1].activation!r}")
        if isinstance(teacher, Network):
            if teacher is self:
                raise ValueError("teacher must be another network")
            if teacher.layers[-1].activation != "softmax" or teacher.layers[-1].steps != 1:
                raise ValueError("teacher must be a network with a softmax output (its logits are the soft "
                                 f"targets); its output activation is {teacher.layers[-1].activation!r}")
            if teacher.n_outputs != self.n_outputs:
                raise ValueError(f"teacher has {teacher.n_outputs} outputs, this network {self.n_outputs}")
            logits = teacher._logits(X)
            if logits.shape[0] != n:
                raise ValueError(f"teacher took {logits.shape[0]} samples from X, this network {n}")
            what = "the teacher network's logits"
        else:
            logits = check.as_array("teacher", teacher)
            if logits.ndim != 2 or logits.shape != (n, self.n_outputs):
                raise ValueError(f"teacher logits must be a network or an array (n_samples, n_classes) = ({n}, "
                                 f"{self.n_outputs}), got shape {logits.shape}")
            what = "teacher logits"
        logits = np.ascontiguousarray(logits, dtype=self.dtype)
        if not np.all(np.isfinite(logits)):
            raise ValueError(f"{what} hold NaN or infinite values")
        return logits, temperature, alpha

    # --------------------------------------------------------------------------------------------- training
    def _reset_optimizer(self):
        self._opt = None

    @property
    def _opt_t(self):
        """Optimizer updates made since the optimizer state was (re)started."""
        return 0 if self._opt is None else self._opt.t

    def _optimizer(self, opts):
        """The optimizer state for these options: kept while the optimizer (and its buffers) stay the same."""
        state = self._opt
        if state is None or not state.compatible(opts):
            state = self._opt = training.OptimizerState(opts, self._params)
        else:
            state.set_hyperparameters(opts)
        return state

    @_exclusive
    def train_step(self, X, y, optimizer="sgd", learning_rate=0.01, momentum=0.0, nesterov=False,
                   weight_decay=0.0, *, sample_weight=None, clip_norm=None, teacher=None, temperature=None,
                   alpha=None, **options):
        """One update on one batch; returns the batch's mean loss before the update.

        Optimizer state (momentum velocity, Adam moments and step count, RPROP steps) carries over between calls
        while the optimizer stays the same. clip_norm: clip the gradients to this global norm first (see fit).
        `options`: beta1, beta2, epsilon, epsilon_placement, rho, eta_plus, eta_minus, step_init, step_min,
        step_max (see fastnn.training). X may be a scipy.sparse matrix (the batch is densified).
        teacher, temperature, alpha: distillation, as in fit (the returned loss is the combined one)."""
        opts = training.check_optimizer(optimizer, learning_rate, momentum, nesterov, weight_decay, options)
        clip_norm = training.check_clip_norm(clip_norm)
        X_given = X
        X, T = self._check_xy(X, y)
        w = self._sample_weights(y, X.shape[0], None, sample_weight)
        distill = self._distillation(teacher, X_given, X.shape[0], temperature, alpha)
        self._drop_sparse()
        if isinstance(X, CSRRows):  # one batch: densified, as every batch is
            X = self._dense_rows(X, 0, X.shape[0], np.empty(X.shape, dtype=self.dtype))
        n_threads = self._n_threads_now()
        value = self._kernels.net_backprop(self._workspace(X.shape[0]), X, T, n_threads, w, True,
                                           self._dropout_seed(), distill)
        self._note_mask_rows(X.shape[0])
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss is {value}; the step was not applied")
        state = self._optimizer(opts)
        state.clip_norm = clip_norm
        self._kernels.net_update(self._handle, state, n_threads)
        return value

    @_exclusive
    def fit(self, X, y, epochs=1, batch_size=32, optimizer="sgd", learning_rate=0.01, momentum=0.0,
            nesterov=False, weight_decay=0.0, shuffle=True, validation_data=None, verbose=False, *,
            validation_split=0.0, early_stopping=False, callbacks=None, lr_schedule=None, class_weight=None,
            sample_weight=None, reset_optimizer=True, clip_norm=None, metrics=None, teacher=None,
            temperature=None, alpha=None, distributed=None, _order=None, **options):
        """Train by minibatch gradient descent; returns a History with per-epoch "loss" (the mean of the
        epoch's batch losses, weighted by batch size), "val_loss" with validation data, and "lr".

        clip_norm: before each update, scale the gradients down to this global 2-norm (over every parameter)
        when it is larger, as torch.nn.utils.clip_grad_norm_; history["clipped"] then counts, per epoch, the
        updates it scaled. A stateful network carries each row's state to the same row of the next batch, so it
        trains with shuffle=False.

        validation_data=(X_val, y_val), or validation_split=f to hold out the last fraction f of X (before
        shuffling). early_stopping: True or a fastnn.EarlyStopping(patience, min_delta, monitor,
        restore_best_weights). callbacks: callables cb(epoch, history) called after each epoch; returning False
        stops training. lr_schedule: a callable (epoch, lr0, history) -> lr, e.g. fastnn.StepDecay,
        ExponentialDecay, CosineDecay or ReduceLROnPlateau. class_weight ({class: weight} or "balanced") and
        sample_weight multiply each sample's loss. verbose: a progress bar (tqdm if installed) or, with 2, one
        line per epoch. reset_optimizer=False continues the optimizer state of the previous fit/train_step.
        `options`: beta1, beta2, epsilon (adam, adamw, rmsprop), epsilon_placement (adam, adamw: "corrected",
        the default, adds epsilon to sqrt(vhat) as PyTorch and Keras; "uncorrected" adds it to sqrt(v) with the
        bias corrections in the step size, as scikit-learn's MLP), rho (rmsprop), eta_plus, eta_minus,
        step_init, step_min, step_max (irprop-, which trains on the full batch).

        X (and validation_data's X) may be a scipy.sparse matrix (CSR, CSC, COO, ...) for a network whose input
        is a flat row of features: it is converted to CSR once and each minibatch is gathered from it into a
        dense batch in the C epoch, so the whole matrix is never densified (predict and evaluate densify one
        bounded chunk of rows at a time).

        metrics: names of per-epoch metrics, Keras' spellings: "accuracy" (softmax: argmax against the label;
        sigmoid: each output thresholded at 0.5, Keras' binary accuracy), "top_k_categorical_accuracy" /
        "sparse_top_k_categorical_accuracy" (k = 5) or "topK_accuracy" for any K (e.g. "top3_accuracy"), "mae" /
        "mean_absolute_error" (of the predictions, e.g. probabilities). The history gets one list per name as
        spelled, and "val_" + name with validation data. The training value is computed in the epoch from each
        batch's outputs before that batch's update (dropout on, as Keras does), weighted by the sample weights;
        the validation value from the validation pass. Padding tokens (ignore_index) are not counted.

        If the loss stops being finite, training stops, the weights from the end of the last finite epoch are
        restored and a RuntimeWarning says so.

        teacher: knowledge distillation (Hinton, Vinyals & Dean 2015) of a softmax classifier (cross_entropy).
        Either a fastnn Network with a softmax output, whose logits (its output layer's values before the
        softmax) are computed for X once, before training, with its own dtype and backend (X must then be an
        input the teacher takes too), or an array of teacher logits (n_samples, n_classes). Each sample's loss
        becomes
            alpha T^2 KL(softmax(z_teacher / T) || softmax(z / T)) + (1 - alpha) cross_entropy(z, y),
        averaged over the samples (times their sample weights, as without a teacher); temperature T > 0
        (default 4.0), alpha in [0, 1] (default 0.9). history["loss"] is this combined loss; "val_loss" stays the
        plain cross-entropy of the validation data (the teacher gives no logits for it). y still holds the hard
        labels (with alpha = 1 they are not used by the loss, only by the metrics).

        distributed: train on several processes (MPI ranks), each calling fit with its own shard of X, y:
        fastnn.distributed.DataParallel() (one allreduce of the gradients per step, batch_size per rank) or
        fastnn.distributed.FedAvg(local_epochs) (each epoch a round of local training and averaging). See
        fastnn.distributed for what the ranks agree on."""
        opts = training.check_optimizer(optimizer, learning_rate, momentum, nesterov, weight_decay, options)
        if distributed is not None and not hasattr(distributed, "_start"):
            raise TypeError("distributed must be None, fastnn.distributed.DataParallel() or "
                            f"fastnn.distributed.FedAvg(), got {distributed!r}")
        epochs = check.check_int("epochs", epochs, 0)
        batch_size = check.check_int("batch_size", batch_size, 1)
        validation_split = check.check_float("validation_split", validation_split, 0.0, 1.0)
        stopping = training.check_early_stopping(early_stopping)
        clip_norm = training.check_clip_norm(clip_norm)
        if self._stateful_layers() and shuffle:
            raise ValueError("a stateful network continues each sequence in the same row of the next batch: "
                             "fit it with shuffle=False")
        callbacks = training.check_callbacks(callbacks)
        schedule = training.check_schedule(lr_schedule)
        metric_specs = training.parse_metrics(metrics, self.layers[-1].activation)
        X_given = X
        X, T = self._check_xy(X, y)
        W = self._sample_weights(y, X.shape[0], class_weight, sample_weight)
        distill = self._distillation(teacher, X_given, X.shape[0], temperature, alpha)
        if validation_data is not None and validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            X_val, T_val = self._check_xy(*validation_data, name_x="validation_data[0]",
                                          name_y="validation_data[1]")
        elif validation_split:
            n_val = int(round(X.shape[0] * validation_split))
            if not 0 < n_val < X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no training or no validation "
                                 f"samples out of {X.shape[0]}")
            if isinstance(X, CSRRows):
                X, X_val = X.rows(0, X.shape[0] - n_val), X.rows(X.shape[0] - n_val, X.shape[0])
            else:
                X, X_val = X[:-n_val], X[-n_val:]
            T, T_val = T[:-n_val], T[-n_val:]
            W = None if W is None else np.ascontiguousarray(W[:-n_val])
            if distill is not None:
                distill = (distill[0][:-n_val],) + distill[1:]
        has_validation = validation_data is not None or bool(validation_split)
        n = X.shape[0]
        if _order is not None:  # fastnn.sklearn's own shuffle: each epoch trains on these rows of X, in this order
            _order = np.ascontiguousarray(_order, dtype=np.int64)
            if _order.ndim != 1 or _order.size == 0 or _order.min() < 0 or _order.max() >= n:
                raise ValueError(f"_order must list rows of X (0 <= i < {n})")
            n = _order.shape[0]
        if optimizer == "irprop-" and isinstance(X, CSRRows):
            raise ValueError("optimizer='irprop-' trains on the whole of X as one batch, which would densify a "
                             "sparse X; use another optimizer, or pass X.toarray()")
        batch = n if optimizer == "irprop-" else min(batch_size, n)
        history = training.History(loss=[], lr=[])
        if clip_norm:
            history["clipped"] = []
        if has_validation:
            history["val_loss"] = []
        history.metric_names = tuple(name for name, _, _ in metric_specs)
        for name in history.metric_names:
            history[name] = []
            if has_validation:
                history["val_" + name] = []
        watcher = training._EarlyStoppingRun(stopping, has_validation, self._params) if stopping else None

        if reset_optimizer:
            self._reset_optimizer()
        state = self._optimizer(opts)
        state.clip_norm = clip_norm
        self._drop_sparse()
        run = None
        if distributed is not None:  # agrees with the other ranks on the network, the shards and the start
            run = distributed._start(self, n, batch_size, optimizer == "irprop-")
            batch = run.batch
            if run.rank != 0:
                verbose = False
        self._training = True  # no sparse copies while the weights move (validation passes stay dense)
        handle = self._workspace(batch)
        self._tune_products(batch, training=True)
        snapshot = np.empty_like(self._params)
        n_threads = self._n_threads_now()
        progress = training.Progress(verbose, epochs)

        def make_order():
            if _order is not None:
                return _order
            return (self._rng.permutation(n) if shuffle else np.arange(n)).astype(np.int64, copy=False)

        try:
            for epoch in range(epochs):
                progress.epoch_started()
                lr = opts["learning_rate"] if schedule is None else schedule(epoch, opts["learning_rate"], history)
                state.lr = check.check_float("the learning rate from lr_schedule", lr, 0.0, include_minimum=False)
                snapshot[...] = self._params
                clipped_before = state.clipped
                seen = training.MetricAccumulator(metric_specs) if metric_specs else None
                if run is None:
                    loss_sum, n_done, finite = self._kernels.net_train_epoch(handle, state, X, T, make_order(),
                                                                             batch, n_threads, W,
                                                                             self._dropout_seed(), seen, distill)
                    count = n
                else:
                    loss_sum, count, finite = run.train_epoch(self._kernels, handle, state, X, T, make_order, batch,
                                                              n_threads, W, self._dropout_seed(), seen, distill)
                    n_done = n if finite else 0
                self._note_mask_rows(min(batch, n - n_done) if not finite else (n - 1) % batch + 1)
                epoch_loss = loss_sum / count if finite else math.nan
                if not (finite and math.isfinite(epoch_loss) and check._all_finite(self._params)):
                    self._params[...] = snapshot
                    warnings.warn(f"training diverged in epoch {epoch + 1} (the loss became NaN or infinite); "
                                  f"stopped and restored the weights of the end of epoch {epoch}. Try a smaller "
                                  "learning_rate.", RuntimeWarning, stacklevel=3)
                    break
                history["loss"].append(epoch_loss)
                history["lr"].append(state.lr)
                if clip_norm:
                    history["clipped"].append(state.clipped - clipped_before)
                if seen is not None:
                    for name, value in seen.values().items():
                        history[name].append(value)
                if has_validation:
                    held_out = training.MetricAccumulator(metric_specs) if metric_specs else None
                    val_loss = self._mean_loss(X_val, T_val, n_threads, metrics=held_out)
                    if run is not None:
                        val_loss = run.validation_loss(val_loss, X_val.shape[0], held_out)
                    history["val_loss"].append(val_loss)
                    if held_out is not None:
                        for name, value in held_out.values().items():
                            history["val_" + name].append(value)
                progress.epoch_done(epoch, history, n)
                stop = watcher is not None and watcher.should_stop(epoch, history, self._params)
                for callback in callbacks:
                    if callback(epoch, history) is False:
                        stop = True
                if run is not None:  # a callback may stop one rank: then every rank stops
                    stop = run.any(stop)
                if stop:
                    history.stopped_epoch = epoch
                    break
        finally:
            progress.close()
            self._training = False
            if run is not None:
                run.close()
        if watcher is not None:
            watcher.finish(self._params)
            history.best_epoch = watcher.best_epoch
        return history

    # ------------------------------------------------------------------------------------------ persistence
    @_exclusive
    def quantize(self, weights="int8", per_channel=True):
        """An inference-only copy with int8 weights (symmetric, per output channel or per tensor) and uint8
        activations quantized per row as they arrive: a fastnn.QuantizedNetwork (see fastnn/quantized.py).
        Refused (RuntimeError) while another thread trains the network; from a fit callback it quantizes the
        weights as they are at that point."""
        from .quantized import QuantizedNetwork
        return QuantizedNetwork.from_network(self, weights=weights, per_channel=per_channel)

    def save(self, path):
        """Write the network to exactly `path` (see fastnn.io for the format)."""
        from .io import save
        save(self, path)

    # ------------------------------------------------------------------------------------------ interchange
    def to_onnx(self, path=None, opset=17, ir_version=8):
        """Export to ONNX (needs the optional `onnx` package: pip install fastnn[onnx]); see fastnn.onnx_export.
        Writes `path` when given and returns the onnx.ModelProto."""
        from .onnx_export import to_onnx
        return to_onnx(self, path, opset=opset, ir_version=ir_version)

    @classmethod
    def from_state_dict(cls, layers_or_network, state_dict, **kwargs):
        """A Network with the given architecture (a list of layers, or a Network whose architecture is copied)
        and the parameters of `state_dict`, a mapping of arrays in PyTorch's names and layouts; see
        fastnn.convert.from_state_dict."""
        from .convert import from_state_dict
        return from_state_dict(layers_or_network, state_dict, **kwargs)
