"""int8 inference: QuantizedNetwork, what Network.quantize returns.

Scheme (as onnxruntime's dynamic quantization):
- weights: symmetric int8 in [-127, 127], one scale per output channel (per_channel=True) or one per layer,
  computed once from the float weights and packed for the integer GEMM (fastnn/_py/quant.py: q8_pack);
- activations: each input row of a quantized layer is quantized when it arrives, asymmetric uint8 with
  scale = (max - min) / 255 over [min(row, 0), max(row, 0)] and a zero point (one sample of a Conv2D's input is
  one row);
- products: u8 x s8 summed exactly in int32 (csrc/quant.c; the NumPy backend uses an int64 matmul and gets the
  same integers), then one epilogue: zero-point correction, the two scales, the bias and the activation
  (the output layer's softmax / sigmoid / exp as predict applies it), in float32.
Dense and Conv2D layers are quantized; MaxPool2D and AvgPool2D run in float32; Flatten and Dropout pass rows
through. Networks with Embedding, recurrent or RepeatVector layers are refused (NotImplementedError).
Everything between the integer products runs in float32, also for a float64 network (its weights are rounded
to float32 before they are quantized): predict returns float32.

Sparse int8 weights: a Dense layer whose int8 weights are mostly zero (a pruned network, quantized) computes the
same int32 sums from a CSR copy of its nonzeros (W^T, one row per output; built when the network is made or
loaded, never stored) where the rule Q8_SPARSE_RULES says that is faster; the outputs are bit-identical either
way. `sparse_kernel` ('auto', 'always', 'never') overrides the rule. Conv2D layers always run dense.

FASTNN_INT8_PATH=portable|avx2|avx_vnni|avx512_vnni forces a GEMM path (default: the best this CPU has); a
path the CPU lacks is an error. Every path gives the same integers, so the same outputs.
"""
import math
import os

import numpy as np

from . import _backend
from ._py import quant as _q
from ._threads import ThreadSetting
from . import _validation as check
from .layers import SEQUENCE_LAYERS, AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, layer_from_config

PATH_NAMES = {code: name for name, code in _q.PATHS.items()}
PATH_ENV = "FASTNN_INT8_PATH"
CHUNK_ROWS = 256  # rows per pass through the layers: the activations of a chunk stay in cache
_QUANTIZED_LAYERS = (Dense, Conv2D)
_FLOAT_LAYERS = (MaxPool2D, AvgPool2D, Flatten, Dropout)
SPARSE_MODES = ("auto", "always", "never")
_ALWAYS_ROWS = 1 << 62

# (sparsity, min_rows, max_rows): a Dense layer with at least this fraction of zero int8 weights runs through its
# CSR copy for chunks of min_rows to max_rows samples (predict runs at most CHUNK_ROWS rows at once). Chosen from
# asv_bench/q8_sparse_crossover.py (the 784-256-128-10 MLP's three layer shapes, one thread): each threshold is
# the lowest sparsity at which the sparse kernel was faster for every shape at the batches of its range (the
# 128x10 layer is so small that the two kernels tie at batch 256; the README has the table). One sample needs
# more zeros than a batch: the dense GEMM of one row is the cheapest case for the dense kernel.
Q8_SPARSE_RULES = ((0.99, 1, CHUNK_ROWS), (0.98, 16, CHUNK_ROWS))


def q8_sparse_batches(sparsity):
    """(fewest, most) rows of a chunk for which a Dense layer with this fraction of zero int8 weights runs
    through its sparse copy, or None (never)."""
    ranges = [(lo, hi) for threshold, lo, hi in Q8_SPARSE_RULES if sparsity >= threshold]
    if not ranges:
        return None
    return min(lo for lo, _ in ranges), max(hi for _, hi in ranges)


def resolve_path(kernels, name=None):
    """The GEMM path code for `name` (None: FASTNN_INT8_PATH, else the best the CPU has)."""
    source = "path"
    if name is None:
        name, source = os.environ.get(PATH_ENV, "").strip().lower() or "auto", PATH_ENV
    if name == "auto":
        return kernels.q8_best_path()
    if name not in _q.PATHS:
        raise ValueError(f"{source}={name!r}: expected 'auto' or one of {sorted(_q.PATHS)}")
    code = _q.PATHS[name]
    if not kernels.q8_path_supported(code):
        raise RuntimeError(f"{source}={name!r}: this CPU (or this build of fastnn) does not have the {name} "
                           f"instructions; available: {available_paths(kernels)}")
    return code


def available_paths(kernels=None):
    """Names of the int8 GEMM paths this CPU and build can run."""
    kernels = kernels or _backend.get(None)
    return [name for name, code in _q.PATHS.items() if kernels.q8_path_supported(code)]


def _matrix(layer, W):
    """The layer's weights as the (k, n) matrix of the GEMM: Dense (d_in, d_out); Conv2D (in_c kh kw, filters)."""
    W = np.asarray(W, dtype=np.float32)
    return W.reshape(W.shape[0], -1).T if isinstance(layer, Conv2D) else W


class _QLayer:
    """One quantized layer's arrays: q (k, n) int8, scale (n,), bias (n,), packed q and its column sums."""

    def __init__(self, q, scale, bias):
        self.q = np.ascontiguousarray(q, dtype=np.int8)
        self.k, self.n = self.q.shape
        if self.k > _q.MAX_K:
            raise ValueError(f"a layer with {self.k} inputs per output is too large for int32 accumulation "
                             f"(at most {_q.MAX_K})")
        self.scale = np.ascontiguousarray(scale, dtype=np.float32)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)
        self.packed, self.colsum = _q.q8_pack(self.q)
        self.lda = _q.lda_for(self.k)
        self.sparsity = float((self.q == 0).mean())
        self._csr = None

    @property
    def csr(self):
        """(data, indices, indptr) of W^T's nonzeros (_py/quant.py q8_csr), built on first use."""
        if self._csr is None:
            self._csr = _q.q8_csr(self.q)
        return self._csr

    def sparse_batches(self, mode):
        """(fewest, most) rows of a chunk run through the sparse kernel under `mode`, or None (never)."""
        return {"auto": q8_sparse_batches(self.sparsity), "always": (1, _ALWAYS_ROWS), "never": None}[mode]


class QuantizedNetwork(ThreadSetting):
    """An inference-only network with int8 weights (see the module docstring): make one with
    ``net.quantize()``; ``predict`` takes what the float network's predict takes and returns float32."""

    def __init__(self, *args, **kwargs):
        raise TypeError("make a QuantizedNetwork with Network.quantize(...) or fastnn.load(path)")

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def from_network(cls, net, weights="int8", per_channel=True):
        if weights != "int8":
            raise ValueError(f"weights={weights!r}: only 'int8' is supported")
        if not isinstance(per_channel, (bool, np.bool_)):
            raise TypeError(f"per_channel must be True or False, got {per_channel!r}")
        cls._check_layers(net.layers)
        if not any(isinstance(layer, _QUANTIZED_LAYERS) for layer in net.layers):
            raise ValueError("nothing to quantize: the network has no Dense or Conv2D layer")
        qlayers = []
        for layer in net.layers:
            if isinstance(layer, _QUANTIZED_LAYERS):
                W = _matrix(layer, layer.W)
                if not np.isfinite(W).all() or not np.isfinite(layer.b).all():
                    raise ValueError(f"cannot quantize {layer!r}: its parameters hold NaN or infinity")
                q, scale = _q.quantize_weights(W, per_channel=bool(per_channel))
                qlayers.append(_QLayer(q, scale, layer.b))
        layers = [layer_from_config(layer.config()) for layer in net.layers]
        return cls._make(layers, net.input_shape, net.loss, net.dtype.name, bool(per_channel), qlayers,
                         net.backend, net.n_threads)

    @staticmethod
    def _check_layers(layers):
        for i, layer in enumerate(layers):
            if isinstance(layer, SEQUENCE_LAYERS) or not isinstance(layer, _QUANTIZED_LAYERS + _FLOAT_LAYERS):
                raise NotImplementedError(
                    f"int8 inference covers Dense, Conv2D, pooling, Flatten and Dropout layers; layer {i} is "
                    f"{layer!r} (embedding and recurrent networks are not quantized)")

    @classmethod
    def _make(cls, layers, input_shape, loss, source_dtype, per_channel, qlayers, backend, n_threads=None,
              path=None):
        from .network import Network
        self = cls.__new__(cls)
        cls._check_layers(layers)
        _, shape = Network._declared_shape(tuple(input_shape), layers)
        self.layers = Network._build_layers(layers, shape, loss)
        self.input_shape = tuple(shape)
        self.loss = loss
        self.source_dtype = np.dtype(source_dtype)
        self.dtype = np.dtype(np.float32)
        self.per_channel = per_channel
        self._kernels = _backend.get(backend)
        self.backend = self._kernels.NAME
        expected = [_matrix(layer, np.empty(layer.param_shapes()[0][0], np.float32)).shape
                    for layer in self.layers if isinstance(layer, _QUANTIZED_LAYERS)]
        if [(ql.k, ql.n) for ql in qlayers] != expected:
            raise ValueError(f"quantized weights of shapes {[(ql.k, ql.n) for ql in qlayers]} do not fit the "
                             f"layers ({expected})")
        self._qlayers = qlayers
        it = iter(qlayers)
        self._plan = [(layer, next(it) if isinstance(layer, _QUANTIZED_LAYERS) else None) for layer in self.layers]
        self._sparse_mode = "auto"
        self._build_mlp()
        self.n_threads = n_threads
        self._path = resolve_path(self._kernels, path)
        return self

    def _build_mlp(self):
        """A stack of Dense layers runs through the kernels in one call (fastnn_q8_mlp_forward), each layer on
        its sparse copy for the chunks the rule (or sparse_kernel) gives it."""
        self._mlp = None
        if all(isinstance(layer, Dense) for layer in self.layers):
            entries = []
            for layer, ql in self._plan:
                rows = ql.sparse_batches(self._sparse_mode)
                entries.append((ql.packed, ql.scale, ql.colsum, ql.bias, ql.k, ql.n, layer.act_code, layer.alpha,
                                (*ql.csr, *rows) if rows else None))
            self._mlp = self._kernels.Q8Plan(entries)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def sparse_kernel(self):
        """'auto' (default): each Dense layer runs through the sparse int8 kernel where Q8_SPARSE_RULES says it
        is faster; 'always' / 'never' force it on or off. The outputs are the same bits either way."""
        return self._sparse_mode

    @sparse_kernel.setter
    def sparse_kernel(self, mode):
        check.check_choice("sparse_kernel", mode, SPARSE_MODES)
        self._sparse_mode = mode
        self._build_mlp()

    def sparse_layers(self):
        """{index in layers: (fewest, most) rows of a chunk} of the Dense layers that run through the sparse
        kernel."""
        return {i: ql.sparse_batches(self._sparse_mode) for i, (layer, ql) in enumerate(self._plan)
                if isinstance(layer, Dense) and ql.sparse_batches(self._sparse_mode)}

    @property
    def int8_path(self):
        """The integer GEMM path in use ('portable', 'avx2', 'avx_vnni', 'avx512_vnni'); settable (a path the
        CPU lacks raises RuntimeError). The NumPy backend computes the same integers with an int64 matmul."""
        return PATH_NAMES[self._path]

    @int8_path.setter
    def int8_path(self, name):
        self._path = resolve_path(self._kernels, "auto" if name is None else name)

    @property
    def n_inputs(self):
        return self.layers[0].in_size

    @property
    def n_outputs(self):
        return self.layers[-1].out_size

    @property
    def output_shape(self):
        return self.layers[-1].output_shape

    @property
    def n_params(self):
        return sum(ql.q.size + ql.bias.size for ql in self._qlayers)

    @property
    def nbytes(self):
        """Bytes of parameters: int8 weights plus float32 scales and biases."""
        return sum(ql.q.nbytes + ql.scale.nbytes + ql.bias.nbytes for ql in self._qlayers)

    def get_config(self):
        """The float network's architecture (Network.get_config) and how it was quantized."""
        return {"input_shape": list(self.input_shape), "loss": self.loss, "dtype": self.source_dtype.name,
                "layers": [layer.config() for layer in self.layers],
                "quantized": {"weights": "int8", "activations": "uint8_dynamic_per_row",
                              "per_channel": self.per_channel}}

    def __repr__(self):
        return self.summary(print_fn=None)

    def summary(self, print_fn=print):
        """A table of the layers with output shapes, parameter counts and how each is stored."""
        rows = [("input", str(self.input_shape), "", "")]
        sparse = self.sparse_layers()
        for i, (layer, ql) in enumerate(self._plan):
            params = "" if ql is None else f"{ql.q.size + ql.bias.size:,}"
            lo, hi = sparse.get(i, (0, 0))
            when = "" if not hi else "any batch" if lo == 1 and hi >= CHUNK_ROWS else (
                f"batches of {lo} or more" if hi >= CHUNK_ROWS else f"batches of {lo} to {hi}")
            kind = ("int8 x uint8" + (f" (sparse for {when}: {ql.sparsity:.1%} zero)" if when else "")
                    if ql is not None else
                "float32" if isinstance(layer, (MaxPool2D, AvgPool2D)) else "pass-through")
            rows.append((f"{i}: {layer!r}", str(layer.output_shape), params, kind))
        head = ("layer", "output shape", "params", "compute")
        widths = [max(len(r[k]) for r in rows + [head]) for k in range(4)]
        fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}"
        line = "-" * (sum(widths) + 6)
        scheme = "per channel" if self.per_channel else "per tensor"
        text = "\n".join([
            f"QuantizedNetwork(weights='int8' {scheme}, activations uint8 dynamic per row, loss={self.loss!r}, "
            f"backend={self.backend!r}, int8_path={self.int8_path!r})", fmt(head), line, *map(fmt, rows), line,
            f"total parameters: {self.n_params:,} ({self.nbytes:,} bytes)"])
        if print_fn is not None:
            print_fn(text)
        return text

    # ------------------------------------------------------------------------------------------- inference
    def _takes_sequences(self):
        return False

    def _as_samples(self, name, X):
        from .network import Network
        return Network._as_samples(self, name, X)

    def predict(self, X):
        """Outputs (n, n_outputs) float32 for a batch, (n_outputs,) for one sample; X as Network.predict takes
        it (rows of features, or images for a convolutional network)."""
        X = self._as_samples("X", X)
        if X.ndim == 1:
            if self._mlp is not None:
                y = np.empty((1, self.n_outputs), np.float32)
                self._mlp.forward(y, X.reshape(1, -1), self._path, 1)
                return y[0]
            return self._forward(X.reshape(1, -1), 1)[0].reshape(self.output_shape)
        n = X.shape[0]
        Y = np.empty((n, self.n_outputs), dtype=np.float32)
        n_threads = self._n_threads_now()
        if self._mlp is not None:  # one call; C runs chunks of rows through the layers
            self._mlp.forward(Y, X, self._path, n_threads)
        else:
            for start in range(0, n, CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, n)
                Y[start:stop] = self._forward(X[start:stop], n_threads)
        return Y.reshape(n, *self.output_shape) if len(self.output_shape) > 1 else Y

    forward = predict

    def _forward(self, x, n_threads):
        k = self._kernels
        m = x.shape[0]
        if self._mlp is not None:
            y = np.empty((m, self.n_outputs), np.float32)
            self._mlp.forward(y, x, self._path, n_threads)
            return y
        for layer, ql in self._plan:
            if isinstance(layer, Dense):
                y = np.empty((m, ql.n), dtype=np.float32)
                scratch = (np.empty((m, ql.lda), np.uint8), np.empty((m, ql.n), np.int32), np.empty(m, np.float32),
                           np.empty(m, np.int32))
                rows = ql.sparse_batches(self._sparse_mode)
                if rows and rows[0] <= m <= rows[1]:
                    k.q8_sparse_dense_forward(y, x, *ql.csr, ql.scale, ql.colsum, ql.bias, layer.act_code,
                                              layer.alpha, *scratch, n_threads,
                                              np.empty(k.q8_sparse_scratch_bytes(m, ql.k), np.uint8))
                else:
                    k.q8_dense_forward(y, x, ql.packed, ql.scale, ql.colsum, ql.bias, ql.k, layer.act_code,
                                       layer.alpha, *scratch, self._path, n_threads)
            elif isinstance(layer, Conv2D):
                y = self._conv(layer, ql, x, n_threads)
            elif isinstance(layer, MaxPool2D):
                y = np.empty((m, layer.out_size), dtype=np.float32)
                k.maxpool2d_forward(y, None, x, layer._window(), n_threads)
            elif isinstance(layer, AvgPool2D):
                y = np.empty((m, layer.out_size), dtype=np.float32)
                k.avgpool2d_forward(y, x, layer._window(), n_threads)
            else:  # Flatten, Dropout (identity when predicting): rows pass through
                y = x
            x = y
        return x

    def _conv(self, layer, ql, x, n_threads):
        """One sample's image is one row of quantized activations; its windows (padding at the zero point, which
        stands for 0.0) become rows of the GEMM, one per output position."""
        k = self._kernels
        m = x.shape[0]
        (c, h, w), (f, oh, ow) = layer.input_shape, layer.output_shape
        (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = layer.kernel_size, layer.stride, layer._pads()
        q = np.empty((m, h * w * c), np.uint8)
        scale, zp = np.empty(m, np.float32), np.empty(m, np.int32)
        k.q8_quantize_rows(q, scale, zp, x, n_threads)
        padded = np.empty((m, c, h + pt + pb, w + pl + pr), np.uint8)
        padded[...] = zp.astype(np.uint8)[:, None, None, None]
        padded[:, :, pt:pt + h, pl:pl + w] = q.reshape(m, c, h, w)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))
        windows = windows[:, :, ::sh, ::sw][:, :, :oh, :ow]  # (m, c, oh, ow, kh, kw)
        positions = oh * ow
        a = np.zeros((m * positions, ql.lda), np.uint8)
        a[:, :ql.k] = windows.transpose(0, 2, 3, 1, 4, 5).reshape(m * positions, ql.k)
        acc = np.empty((m * positions, f), np.int32)
        k.q8_gemm(acc, a, ql.packed, ql.k, self._path, n_threads)
        out = np.empty((m * positions, f), np.float32)
        k.q8_epilogue(out, acc, np.repeat(scale, positions), np.repeat(zp, positions), ql.scale, ql.colsum,
                      ql.bias, layer.act_code, layer.alpha, n_threads)
        return np.ascontiguousarray(out.reshape(m, positions, f).transpose(0, 2, 1)).reshape(m, f * positions)

    # ------------------------------------------------------------------------------ not for inference nets
    def fit(self, *args, **kwargs):
        raise TypeError("a QuantizedNetwork is inference-only and cannot be trained: fit the float network, then "
                        "call its quantize() again")

    def gradients(self, *args, **kwargs):
        raise TypeError("a QuantizedNetwork is inference-only: it has no gradients")

    # ------------------------------------------------------------------------------------- files, pickling
    def save(self, path):
        """Write a model file (format version 3, read by fastnn.load, which returns a QuantizedNetwork)."""
        from . import io
        io.save(self, path)

    def _file_meta(self):
        return {"version": 3, **self.get_config(), "n_params": int(sum(ql.n for ql in self._qlayers)),
                "n_qweights": int(sum(ql.q.size for ql in self._qlayers))}

    def _file_arrays(self):
        return {"params": np.concatenate([ql.bias for ql in self._qlayers]),
                "qweights": np.concatenate([ql.q.reshape(-1) for ql in self._qlayers]),
                "qscales": np.concatenate([ql.scale for ql in self._qlayers])}

    @classmethod
    def _from_flat(cls, layers, input_shape, loss, dtype, per_channel, biases, qweights, qscales, backend=None):
        """From the flat arrays of a file or a pickle (sizes checked by the reader)."""
        from .network import Network
        cls._check_layers(layers)
        _, shape = Network._declared_shape(tuple(input_shape), layers)
        layers = Network._build_layers(layers, shape, loss)
        n_b, n_w = expected_sizes(layers)
        if (len(biases), len(qweights), len(qscales)) != (n_b, n_w, n_b):
            raise ValueError("the quantized arrays do not fit the layers")
        qlayers, ob, ow = [], 0, 0
        for layer in layers:
            if isinstance(layer, _QUANTIZED_LAYERS):
                k, n = _matrix(layer, np.empty(layer.param_shapes()[0][0], np.float32)).shape
                qlayers.append(_QLayer(qweights[ow:ow + k * n].reshape(k, n), qscales[ob:ob + n],
                                       biases[ob:ob + n]))
                ob, ow = ob + n, ow + k * n
        return cls._make(layers, input_shape, loss, dtype, per_channel, qlayers, backend)

    def __getstate__(self):
        return {"config": self.get_config(), "arrays": self._file_arrays(), "backend": self.backend,
                "n_threads": self._n_threads, "sparse_kernel": self._sparse_mode}

    def __setstate__(self, state):
        config, arrays = state["config"], state["arrays"]
        layers = [layer_from_config(c) for c in config["layers"]]
        other = self._from_flat(layers, config["input_shape"], config["loss"], config["dtype"],
                                config["quantized"]["per_channel"], arrays["params"], arrays["qweights"],
                                arrays["qscales"], state["backend"])
        self.__dict__.update(other.__dict__)
        self._n_threads = state["n_threads"]
        self.sparse_kernel = state.get("sparse_kernel", "auto")  # rebuilds the plan; the CSR copies are derived


def expected_sizes(layers):
    """(biases, int8 weights) a file of these built layers must hold."""
    n_b = n_w = 0
    for layer in layers:
        if isinstance(layer, _QUANTIZED_LAYERS):
            (w_shape,), (b_shape,) = layer.param_shapes()
            n_w += math.prod(w_shape)
            n_b += b_shape[0]
    return n_b, n_w
