"""fastnn.Network: a dense feed-forward network trained by backpropagation.

Network owns all memory: one flat parameter buffer (every layer's weights first, then every bias, so one loop
updates everything and weight decay covers exactly the weights), a gradient buffer of the same layout, optimizer
state of the same layout, and per-layer activation workspaces reused from batch to batch. The kernels of the
chosen backend (C or NumPy, the same names and signatures) only ever write into these.
"""
import functools
import math
import os
import threading
import warnings

import numpy as np

from . import _backend, _codes, training
from . import _validation as check
from ._threads import get_num_threads
from .layers import Dense

DTYPES = {"float32": np.float32, "float64": np.float64}


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


def _available_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


class Network:
    """A dense feed-forward network, y = f_L(... f_1(x @ W_1 + b_1) ... @ W_L + b_L).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output, e.g. [784, 256, 128, 10].
    activations : str or sequence of str
        One of "sigmoid", "tanh", "relu", "leaky_relu", "linear", "softmax" per weight layer, or one name for
        every hidden layer, the output layer then following the loss (linear for mse, softmax for
        cross_entropy, sigmoid for binary_cross_entropy).
    loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        Means, as in PyTorch and Keras. cross_entropy takes integer labels or one-hot / probability rows.
    dtype : {"float32", "float64"}
    seed : int or None
        Seeds the NumPy Generator used for the initial weights (Glorot uniform for sigmoid/tanh/linear/softmax,
        He uniform for relu/leaky_relu) and later for shuffling, so both backends see the same numbers.
    backend : None, "c" or "python"
        None picks the best available (fastnn.BACKEND).
    """

    def __init__(self, sizes, activations="relu", loss="mse", dtype="float32", seed=None, backend=None):
        self._build(sizes, activations, loss, dtype, seed, backend, params=None)

    @classmethod
    def _from_parameters(cls, params, sizes, activations, loss, dtype, backend=None, seed=None):
        """A network with these parameters (the flat buffer: all weights, then all biases), without drawing
        initial weights first (model files, unpickling)."""
        net = cls.__new__(cls)
        net._build(sizes, activations, loss, dtype, seed, backend, params=params)
        return net

    def _build(self, sizes, activations, loss, dtype, seed, backend, params):
        sizes = check.parse_sizes(sizes)
        check.check_choice("loss", loss, _codes.LOSSES)
        dtype = check.check_dtype(dtype, DTYPES)
        names = check.parse_activations(activations, len(sizes) - 1, loss)
        self._kernels = _backend.get(backend)
        self.backend = self._kernels.NAME
        self.loss = loss
        self.dtype = np.dtype(dtype)
        self.sizes = sizes
        self._loss_code = _codes.LOSSES[loss]
        fused = loss != "mse"
        self.layers = [Dense(sizes[i], sizes[i + 1], names[i], fused_output=fused and i == len(names) - 1)
                       for i in range(len(names))]
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
        self._busy = threading.Lock()
        self.n_threads = None
        self._reset_optimizer()

    # ----------------------------------------------------------------------------------------------- memory
    def _allocate(self):
        decayed, plain = [], []
        for layer in self.layers:
            w_shapes, b_shapes = layer.param_shapes()
            decayed.append(w_shapes)
            plain.append(b_shapes)
        counts = [math.prod(s) for shapes in decayed + plain for s in shapes]
        n_params = sum(counts)
        self.n_decay = sum(math.prod(s) for shapes in decayed for s in shapes)
        nbytes = 2 * n_params * self.dtype.itemsize  # parameters and gradients
        avail = _available_memory_bytes()
        if avail is not None and nbytes > avail:
            raise MemoryError(f"sizes {self.sizes} need {n_params:,} parameters ({nbytes / 2**30:.1f} GiB with "
                              f"gradients), more than this machine's {avail / 2**30:.1f} GiB of memory")
        self._params = np.zeros(n_params, dtype=self.dtype)
        self._grads = np.zeros(n_params, dtype=self.dtype)
        views = self._views(self._params, decayed, plain)
        grad_views = self._views(self._grads, decayed, plain)
        for layer, (w, b), (gw, gb) in zip(self.layers, views, grad_views):
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
            fan_in, fan_out = layer.d_in, layer.d_out
            if layer.activation in ("relu", "leaky_relu"):
                limit = math.sqrt(6.0 / fan_in)  # He uniform
            else:
                limit = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform
            layer.W[...] = self._rng.uniform(-limit, limit, size=layer.W.shape)
            layer.b[...] = 0

    def _workspace(self, rows):
        """A handle on the network's buffers whose activation/delta workspaces hold at least `rows` samples.

        Workspaces only grow, so a fit allocates them once (for its batch size) and every batch reuses them."""
        if rows > self._workspace_rows:
            self._acts = [np.empty((rows, layer.d_out), dtype=self.dtype) for layer in self.layers]
            self._deltas = [np.empty((rows, layer.d_out), dtype=self.dtype) for layer in self.layers]
            self._x_batch = np.empty((rows, self.n_inputs), dtype=self.dtype)
            self._t_batch = np.empty((rows, self.n_outputs), dtype=self.dtype)
            self._w_batch = np.empty(rows, dtype=self.dtype)
            self._workspace_rows = rows
            self._handle = self._make_handle()
        return self._handle

    def _make_handle(self):
        with_workspace = self._workspace_rows > 0
        layers = []
        for i, layer in enumerate(self.layers):
            a = self._acts[i] if with_workspace else None
            delta = self._deltas[i] if with_workspace else None
            layers.append((layer.W, layer.b, layer.dW, layer.db, a, delta, layer.train_act_code(),
                           layer.act_code, layer.alpha))
        x_batch = self._x_batch if with_workspace else None
        t_batch = self._t_batch if with_workspace else None
        w_batch = self._w_batch if with_workspace else None
        return self._kernels.NetHandle(layers, self._loss_code, self._params, self._grads, self.n_decay, x_batch,
                                       t_batch, w_batch)

    def _release_workspace(self):
        self._acts = self._deltas = self._x_batch = self._t_batch = self._w_batch = None
        self._workspace_rows = 0
        self._handle = self._make_handle()

    # ---------------------------------------------------------------------------------------------- public
    @property
    def weights(self):
        """Weight matrices, W[i] of shape (sizes[i], sizes[i+1]): writable views into the network."""
        return [layer.W for layer in self.layers]

    @property
    def biases(self):
        """Bias vectors, b[i] of shape (sizes[i+1],): writable views into the network."""
        return [layer.b for layer in self.layers]

    @property
    def activations(self):
        return [layer.activation for layer in self.layers]

    @property
    def n_threads(self):
        """Threads this network's kernels may use: None (the default) follows fastnn.get_num_threads()."""
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value):
        self._n_threads = None if value is None else check.check_int("n_threads", value, 1)

    def _n_threads_now(self):
        return get_num_threads() if self._n_threads is None else self._n_threads

    @property
    def n_params(self):
        return int(self._params.size)

    @property
    def n_inputs(self):
        return self.sizes[0]

    @property
    def n_outputs(self):
        return self.sizes[-1]

    def __repr__(self):
        return (f"Network({self.sizes}, activations={self.activations}, loss={self.loss!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r}, n_params={self.n_params:,})")

    def forward(self, X):
        """Network outputs: (n, n_outputs) for a batch X of shape (n, n_inputs), (n_outputs,) for one sample.

        For cross_entropy the outputs are class probabilities (softmax), for binary_cross_entropy sigmoids."""
        X = check.as_input("X", X, self.n_inputs, self.dtype)
        k = self._kernels
        if X.ndim == 1:
            y = np.empty(self.n_outputs, dtype=self.dtype)
            # scratch per call, so any number of threads may predict at once
            k.net_forward_single(self._handle, y, X, np.empty(2 * max(self.sizes[1:]), dtype=self.dtype))
            return y
        n_threads = self._n_threads_now()
        x = X
        for layer in self.layers:
            out = np.empty((X.shape[0], layer.d_out), dtype=self.dtype)
            layer.forward(k, x, out, False, n_threads)
            x = out
        return x

    predict = forward

    def _forward_train(self, X, acts, n_threads):
        x = X
        for layer, out in zip(self.layers, acts):
            layer.forward(self._kernels, x, out, True, n_threads)
            x = out
        return x

    @_exclusive
    def evaluate(self, X, y, sample_weight=None):
        """Mean loss over X (the value `gradients` differentiates; no weight decay term). With sample_weight,
        each sample's loss is multiplied by its weight (the mean stays over the samples)."""
        X, T = self._check_xy(X, y)
        w = training.sample_weights(self.loss, y, X.shape[0], self.n_outputs, None, sample_weight, self.dtype)
        return self._mean_loss(X, T, self._n_threads_now(), w)

    def _mean_loss(self, X, T, n_threads, w=None):
        # every loss is a mean over samples (times a constant n_outputs), so chunk means combine by rows
        total = 0.0
        for start in range(0, X.shape[0], 4096):
            Xc, Tc = X[start:start + 4096], T[start:start + 4096]
            wc = None if w is None else w[start:start + 4096]
            self._workspace(Xc.shape[0])
            out = self._forward_train(Xc, [a[:Xc.shape[0]] for a in self._acts], n_threads)
            total += self._kernels.loss(None, out, Tc, self._loss_code, n_threads, wc) * Xc.shape[0]
        return total / X.shape[0]

    @_exclusive
    def gradients(self, X, y, sample_weight=None):
        """Gradients of the mean loss over all of X, per layer (dW, db) as new arrays. Updates nothing."""
        return self._loss_and_gradients(X, y, sample_weight)[1]

    @_exclusive
    def loss_and_gradients(self, X, y, sample_weight=None):
        """(mean loss, gradients per layer as (dW, db)) over all of X in one forward and backward pass: what
        `evaluate` and `gradients` return, for optimizers that need both (e.g. scipy.optimize)."""
        return self._loss_and_gradients(X, y, sample_weight)

    def _loss_and_gradients(self, X, y, sample_weight):
        X, T = self._check_xy(X, y)
        w = training.sample_weights(self.loss, y, X.shape[0], self.n_outputs, None, sample_weight, self.dtype)
        value = self._kernels.net_backprop(self._workspace(X.shape[0]), X, T, self._n_threads_now(), w)
        grads = [(layer.dW.copy(), layer.db.copy()) for layer in self.layers]
        if X.shape[0] > 4096:
            self._release_workspace()
        return value, grads

    def _check_xy(self, X, y, name_x="X", name_y="y"):
        X = check.as_input(name_x, X, self.n_inputs, self.dtype)
        if X.ndim == 1:  # one sample: y is its label (a scalar) or its row of targets
            X = X.reshape(1, -1)
            y = check.as_array(name_y, y)
            if y.ndim == 0:
                y = y.reshape(1)
            elif y.ndim == 1:
                y = y.reshape(1, -1)
        T = check.as_targets(name_y, y, X.shape[0], self.n_outputs, self.loss, self.dtype)
        return X, T

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
                   weight_decay=0.0, *, sample_weight=None, **options):
        """One update on one batch; returns the batch's mean loss before the update.

        Optimizer state (momentum velocity, Adam moments and step count, RPROP steps) carries over between calls
        while the optimizer stays the same. `options`: beta1, beta2, epsilon, rho, eta_plus, eta_minus,
        step_init, step_min, step_max (see fastnn.training)."""
        opts = training.check_optimizer(optimizer, learning_rate, momentum, nesterov, weight_decay, options)
        X, T = self._check_xy(X, y)
        w = training.sample_weights(self.loss, y, X.shape[0], self.n_outputs, None, sample_weight, self.dtype)
        n_threads = self._n_threads_now()
        value = self._kernels.net_backprop(self._workspace(X.shape[0]), X, T, n_threads, w)
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss is {value}; the step was not applied")
        self._kernels.net_update(self._handle, self._optimizer(opts), n_threads)
        return value

    @_exclusive
    def fit(self, X, y, epochs=1, batch_size=32, optimizer="sgd", learning_rate=0.01, momentum=0.0,
            nesterov=False, weight_decay=0.0, shuffle=True, validation_data=None, verbose=False, *,
            validation_split=0.0, early_stopping=False, callbacks=None, lr_schedule=None, class_weight=None,
            sample_weight=None, reset_optimizer=True, **options):
        """Train by minibatch gradient descent; returns a History with per-epoch "loss" (the mean of the
        epoch's batch losses, weighted by batch size), "val_loss" with validation data, and "lr".

        validation_data=(X_val, y_val), or validation_split=f to hold out the last fraction f of X (before
        shuffling). early_stopping: True or a fastnn.EarlyStopping(patience, min_delta, monitor,
        restore_best_weights). callbacks: callables cb(epoch, history) called after each epoch; returning False
        stops training. lr_schedule: a callable (epoch, lr0, history) -> lr, e.g. fastnn.StepDecay,
        ExponentialDecay, CosineDecay or ReduceLROnPlateau. class_weight ({class: weight} or "balanced") and
        sample_weight multiply each sample's loss. verbose: a progress bar (tqdm if installed) or, with 2, one
        line per epoch. reset_optimizer=False continues the optimizer state of the previous fit/train_step.
        `options`: beta1, beta2, epsilon (adam, adamw, rmsprop), rho (rmsprop), eta_plus, eta_minus, step_init,
        step_min, step_max (irprop-, which trains on the full batch).

        If the loss stops being finite, training stops, the weights from the end of the last finite epoch are
        restored and a RuntimeWarning says so."""
        opts = training.check_optimizer(optimizer, learning_rate, momentum, nesterov, weight_decay, options)
        epochs = check.check_int("epochs", epochs, 0)
        batch_size = check.check_int("batch_size", batch_size, 1)
        validation_split = check.check_float("validation_split", validation_split, 0.0, 1.0)
        stopping = training.check_early_stopping(early_stopping)
        callbacks = training.check_callbacks(callbacks)
        schedule = training.check_schedule(lr_schedule)
        X, T = self._check_xy(X, y)
        W = training.sample_weights(self.loss, y, X.shape[0], self.n_outputs, class_weight, sample_weight,
                                    self.dtype)
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
            X, X_val = X[:-n_val], X[-n_val:]
            T, T_val = T[:-n_val], T[-n_val:]
            W = None if W is None else np.ascontiguousarray(W[:-n_val])
        has_validation = validation_data is not None or bool(validation_split)
        n = X.shape[0]
        batch = n if optimizer == "irprop-" else min(batch_size, n)
        history = training.History(loss=[], lr=[])
        if has_validation:
            history["val_loss"] = []
        watcher = training._EarlyStoppingRun(stopping, has_validation, self._params) if stopping else None

        if reset_optimizer:
            self._reset_optimizer()
        state = self._optimizer(opts)
        handle = self._workspace(batch)
        snapshot = np.empty_like(self._params)
        n_threads = self._n_threads_now()
        progress = training.Progress(verbose, epochs)
        try:
            for epoch in range(epochs):
                progress.epoch_started()
                lr = opts["learning_rate"] if schedule is None else schedule(epoch, opts["learning_rate"], history)
                state.lr = check.check_float("the learning rate from lr_schedule", lr, 0.0, include_minimum=False)
                snapshot[...] = self._params
                order = (self._rng.permutation(n) if shuffle else np.arange(n)).astype(np.int64, copy=False)
                loss_sum, _, finite = self._kernels.net_train_epoch(handle, state, X, T, order, batch, n_threads, W)
                epoch_loss = loss_sum / n if finite else math.nan
                if not (finite and math.isfinite(epoch_loss) and check._all_finite(self._params)):
                    self._params[...] = snapshot
                    warnings.warn(f"training diverged in epoch {epoch + 1} (the loss became NaN or infinite); "
                                  f"stopped and restored the weights of the end of epoch {epoch}. Try a smaller "
                                  "learning_rate.", RuntimeWarning, stacklevel=3)
                    break
                history["loss"].append(epoch_loss)
                history["lr"].append(state.lr)
                if has_validation:
                    history["val_loss"].append(self._mean_loss(X_val, T_val, n_threads))
                progress.epoch_done(epoch, history, n)
                stop = watcher is not None and watcher.should_stop(epoch, history, self._params)
                for callback in callbacks:
                    if callback(epoch, history) is False:
                        stop = True
                if stop:
                    history.stopped_epoch = epoch
                    break
        finally:
            progress.close()
        if watcher is not None:
            watcher.finish(self._params)
            history.best_epoch = watcher.best_epoch
        return history

    # ------------------------------------------------------------------------------------------ persistence
    def save(self, path):
        """Write the network to exactly `path` (see fastnn.io for the format)."""
        from .io import save
        save(self, path)
