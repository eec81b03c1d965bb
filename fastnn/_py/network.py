"""A whole network per call: backprop over a batch, an update, an epoch, batch prediction and evaluation,
one-sample prediction (twin of csrc/network.c). Built from the layer, loss and optimizer twins exactly as the C
code is: the same walk over the layer table, the same switch on each layer's kind."""
import math
import time
from types import SimpleNamespace

import numpy as np

from .._codes import (CROSS_ENTROPY, CROSS_ENTROPY_IGNORE, LAYER_AVGPOOL2D, LAYER_CONV2D, LAYER_DENSE, LAYER_DROPOUT, LAYER_EMBEDDING, LAYER_FLATTEN,
                      LAYER_MAXPOOL2D, LAYER_RECURRENT, LAYER_REPEAT, OPT_ADAM, OPT_ADAMW, OPT_IRPROP_MINUS,
                      OPT_RMSPROP)
from .activations import act_backward
from .conv import conv2d_backward, conv2d_forward
from .dense import dense_backward, dense_forward, dense_forward_single
from .dropout import dropout_backward, dropout_batch_key, dropout_forward, dropout_layer_key
from .losses import distill_loss, loss as loss_kernel
from .metrics import check_metrics, metrics_accumulate
from .optimizers import adam_step, adamw_step, irprop_minus_step, rmsprop_step, sgd_step
from .optimizers import clip_grad_norm
from .prune import mask_apply, sparse_dense_forward
from .pool import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from .rnn import rnn_backward, rnn_forward, rnn_scratch_size
from .sparse import check_csr
from .sequence import embedding_backward, embedding_forward, repeat_backward, repeat_forward

LAYER_FIELDS = ("kind", "in_size", "out_size", "win", "act", "predict_act", "alpha", "rate", "W", "b", "dW", "db",
                "a", "delta", "cols", "argmax", "mask", "steps", "seq", "Wh", "bh", "dWh", "dbh", "states", "gates",
                "cells", "dgates", "carry", "state", "sparse")


class NetHandle:
    """The buffers of a network, as the C fastnn_net struct holds them.

    layers: one dict per layer with the fields of fastnn_layer (LAYER_FIELDS; `win` the fastnn_window as a
    tuple or None); workspaces are (max_batch, per-sample size) arrays, or None for a handle that only
    predicts and evaluates."""

    def __init__(self, layers, loss_kind, params, grads, n_decay, x_batch, t_batch, w_batch, max_batch, keep=None):
        self.layers = []
        for i, fields in enumerate(layers):
            missing = set(LAYER_FIELDS) - set(fields)
            if missing:
                raise ValueError(f"NetHandle: layer {i} lacks {sorted(missing)}")
            L = SimpleNamespace(**{k: fields[k] for k in LAYER_FIELDS})
            # L.sparse (pruning): None, or (CSR of W^T, the largest batch to use it for)
            if L.sparse is not None:
                if L.kind != LAYER_DENSE or L.steps != 1:
                    raise ValueError(f"NetHandle: layer {i} is not a dense layer on vectors; it cannot be sparse")
                check_csr(L.sparse[0], L.in_size, f"NetHandle: layer {i} sparse")
            self.layers.append(L)
        if keep is not None and (keep.dtype != np.uint8 or keep.shape != (n_decay,) or n_decay == 0):
            raise ValueError(f"NetHandle: keep must be a uint8 array of shape ({n_decay},)")
        self.keep = keep
        if not self.layers:
            raise ValueError("NetHandle: no layers")
        self.loss_kind = loss_kind
        self.params, self.grads, self.n_decay = params, grads, n_decay
        self.x_batch, self.t_batch, self.w_batch = x_batch, t_batch, w_batch
        self.dtype = params.dtype
        self.max_batch = max_batch
        self.d_in = self.layers[0].in_size
        self.d_out = self.layers[-1].out_size
        self.widest = max(L.out_size for L in self.layers)


def _passes_through(L, training):
    return L.kind == LAYER_FLATTEN or (L.kind == LAYER_DROPOUT and not training)


def _has_params(L):
    return L.kind in (LAYER_DENSE, LAYER_CONV2D, LAYER_EMBEDDING, LAYER_RECURRENT)


def _rows(L, a, n):
    """A layer's (n, size) buffer as the per-row kernels see it: n * steps rows."""
    return a.reshape(n * L.steps, -1)


def _state(L, n):
    return None if L.state is None else L.state[:n]


def _owner_at_or_below(h, i, training):
    for j in range(i, -1, -1):
        if not _passes_through(h.layers[j], training):
            return j
    return -1


def _params_below(h, i):
    return any(_has_params(L) for L in h.layers[:i])


def _conv_matrix(L):
    return L.W.reshape(L.win[3], -1), L.dW.reshape(L.win[3], -1)


def _cols_view(L, cols, n):
    """The conv2d workspace (flat, or one row per sample) as a (K, n P) matrix."""
    c, oh, ow, kh, kw = L.win[0], L.win[4], L.win[5], L.win[6], L.win[7]
    positions, k = n * oh * ow, c * kh * kw
    return cols.reshape(-1)[:positions * k].reshape(k, positions)


def _layer_forward(L, i, out, inp, act, ws, dropout_key, n_threads):
    """ws: the workspaces to use, a dict of cols, argmax (None outside training), states, gates, cells, proj."""
    n = inp.shape[0]
    if L.kind == LAYER_DENSE:
        dense_forward(_rows(L, out, n), _rows(L, inp, n), L.W, L.b, act, L.alpha, n_threads)
    elif L.kind == LAYER_CONV2D:
        conv2d_forward(out, _cols_view(L, ws["cols"], n), inp, L.W, L.b, L.win, act, L.alpha, n_threads)
    elif L.kind == LAYER_EMBEDDING:
        embedding_forward(out, inp, L.W, n_threads)
    elif L.kind == LAYER_RECURRENT:
        rnn_forward(out, ws["states"], ws["gates"], ws["cells"], ws["proj"], inp, L.W, L.Wh, L.b, L.bh,
                    _state(L, n), _state(L, n), L.seq, n_threads)
    elif L.kind == LAYER_REPEAT:
        repeat_forward(out, inp, L.seq[3], n_threads)
    elif L.kind == LAYER_MAXPOOL2D:
        maxpool2d_forward(out, ws["argmax"], inp, L.win, n_threads)
    elif L.kind == LAYER_AVGPOOL2D:
        avgpool2d_forward(out, inp, L.win, n_threads)
    elif L.kind == LAYER_DROPOUT:
        dropout_forward(out, L.mask, inp, L.rate, dropout_layer_key(dropout_key, i), n_threads)
    else:
        raise ValueError(f"unknown layer kind {L.kind}")


def net_backprop(h, x, t, n_threads, w=None, training=False, dropout_key=0, distill=None):
    """Forward and backward pass over one batch: fills the workspaces and gradients, returns the mean loss.
    training=True turns dropout on, its masks drawn from dropout_key. distill: None, or (teacher logits (n,
    out_size), temperature, alpha) to train a cross_entropy network by the distillation loss."""
    n = x.shape[0]
    if x.shape != (n, h.d_in) or t.shape != (n, h.d_out) or not 0 < n <= h.max_batch:
        raise ValueError(f"net_backprop: x {x.shape} / t {t.shape} do not fit the network or its workspace")
    if distill is not None:
        if distill[0].shape != (n, h.d_out):
            raise ValueError(f"net_backprop: teacher logits {distill[0].shape} do not fit t {t.shape}")
        if h.loss_kind != CROSS_ENTROPY or h.layers[-1].steps != 1:
            raise ValueError("net_backprop: distillation needs a cross_entropy network with one output row per sample")
    inp = x
    for i, L in enumerate(h.layers):
        if _passes_through(L, training):
            continue
        ws = {"cols": L.cols, "argmax": L.argmax, "states": L.states, "gates": L.gates, "cells": L.cells,
              "proj": L.dgates}
        _layer_forward(L, i, L.a[:n], inp, L.act, ws, dropout_key, n_threads)
        inp = L.a[:n]
    last = h.layers[-1]
    out, delta = _rows(last, last.a[:n], n), _rows(last, last.delta[:n], n)
    if distill is not None:
        teacher, temperature, alpha = distill
        value = distill_loss(delta, out, t, teacher, temperature, alpha, n_threads, w)
    else:
        value = loss_kernel(delta, out, _rows(last, t, n), h.loss_kind, n_threads, w)
    act_backward(delta, delta, out, last.act, last.alpha, n_threads)
    for i in range(len(h.layers) - 1, -1, -1):
        L = h.layers[i]
        if _passes_through(L, training):
            continue
        b = _owner_at_or_below(h, i - 1, training)
        below = h.layers[b] if b >= 0 else None
        x_in = below.a[:n] if below else x
        dx = below.delta[:n] if below and _params_below(h, i) else None
        dz = L.delta[:n]
        if L.kind == LAYER_DENSE:
            dense_backward(None if dx is None else _rows(L, dx, n), L.dW, L.db, _rows(L, dz, n), _rows(L, x_in, n),
                           L.W, n_threads)
        elif L.kind == LAYER_EMBEDDING:
            embedding_backward(L.dW, dz, x_in, n_threads)
        elif L.kind == LAYER_RECURRENT:
            rnn_backward(dx, L.dW, L.dWh, L.db, L.dbh, L.dgates, L.gates, L.cells, L.carry, dz, x_in, L.states,
                         L.W, L.Wh, L.seq, n_threads)
        elif L.kind == LAYER_CONV2D:
            W, dW = _conv_matrix(L)
            conv2d_backward(dx, dW, L.db, _cols_view(L, L.cols, n), dz, x_in, W, L.win, n_threads)
        elif dx is None:
            pass
        elif L.kind == LAYER_MAXPOOL2D:
            maxpool2d_backward(dx, dz, L.argmax, L.win, n_threads)
        elif L.kind == LAYER_AVGPOOL2D:
            avgpool2d_backward(dx, dz, L.win, n_threads)
        elif L.kind == LAYER_DROPOUT:
            dropout_backward(dx, dz, L.mask, n_threads)
        elif L.kind == LAYER_REPEAT:
            repeat_backward(dx, dz, L.seq[3], n_threads)
        if dx is not None and _has_params(below):
            act_backward(_rows(below, dx, n), _rows(below, dx, n), _rows(below, below.a[:n], n), below.act,
                         below.alpha, n_threads)
    return value


def net_update(h, state, n_threads):
    """One optimizer update of the parameters from the gradient buffer; advances state.t. With state.clip_norm
    > 0 the gradients are first scaled to that global norm if larger (state.clipped counts the times)."""
    if h.keep is not None:  # pruned weights: no gradient now, and zero again after the step
        mask_apply(h.grads[:h.n_decay], h.keep, n_threads)
    _step(h, state, n_threads)
    if h.keep is not None:
        mask_apply(h.params[:h.n_decay], h.keep, n_threads)


def _step(h, state, n_threads):
    state.t += 1
    if state.clip_norm > 0 and clip_grad_norm(h.grads, state.clip_norm, n_threads):
        state.clipped += 1
    if state.kind in (OPT_ADAM, OPT_ADAMW):
        step = adam_step if state.kind == OPT_ADAM else adamw_step
        step(h.params, h.grads, state.state1, state.state2, h.n_decay, state.lr, state.beta1, state.beta2,
             state.eps, state.weight_decay, state.t, n_threads, state.eps_placement)
    elif state.kind == OPT_RMSPROP:
        rmsprop_step(h.params, h.grads, state.state1, h.n_decay, state.lr, state.rho, state.eps,
                     state.weight_decay, n_threads)
    elif state.kind == OPT_IRPROP_MINUS:
        irprop_minus_step(h.params, h.grads, state.state1, state.state2, h.n_decay, state.eta_plus,
                          state.eta_minus, state.step_min, state.step_max, state.weight_decay, n_threads)
    else:
        sgd_step(h.params, h.grads, state.state1, h.n_decay, state.lr, state.momentum, state.nesterov,
                 state.weight_decay, n_threads)


def _accumulate(h, metrics, out, t, w):
    """Add the metrics of an output layer's rows (its training activation applied) to `metrics`."""
    last = h.layers[-1]
    metrics_accumulate(metrics, _rows(last, out, out.shape[0]), _rows(last, t, t.shape[0]), w, last.predict_act,
                       last.act != last.predict_act, h.loss_kind == CROSS_ENTROPY_IGNORE)


def _dist_loss_count(h, tb, rows):
    """The count a batch's loss is a mean over (csrc/network_impl.h dist_loss_count)."""
    last = h.layers[-1]
    m, d = rows * last.steps, last.out_size // last.steps
    if h.loss_kind != CROSS_ENTROPY_IGNORE:
        return float(m)
    return float(np.count_nonzero(np.any(tb[:rows].reshape(m, d) != 0, axis=1)))


def _dist_sync(h, sync, count, loss, failed, n_threads):
    """Between backprop and update in data-parallel training (csrc/network_impl.h dist_sync): agree on the
    flags, then sum the gradients scaled by this rank's share of the global loss count. Returns a status name:
    "ok", "nonfinite" or "failed" (another rank's step failed)."""
    flags = np.array([count, 0.0 if math.isfinite(loss) else 1.0, 1.0 if failed else 0.0])
    _dist_allreduce(sync, flags)
    if failed:
        return "failed"
    if flags[2] > 0:
        return "failed"
    if flags[1] > 0:
        return "nonfinite"
    if count != flags[0]:
        h.grads *= h.grads.dtype.type(count / flags[0] if flags[0] > 0 else 0.0)
    started = time.perf_counter()
    _dist_allreduce(sync, h.grads)
    sync.seconds += time.perf_counter() - started
    sync.calls += 1
    sync.bytes += h.grads.nbytes
    return "ok"


def _dist_allreduce(sync, buf):
    try:
        sync.allreduce(buf)
    except BaseException as exc:
        sync.exception = exc
        raise sync.failure("net_train_epoch") from exc
    finally:
        if sync.progress is not None:
            sync.progress[0] += 1


def net_train_epoch(h, state, X, T, order, batch, n_threads, W=None, dropout_seed=0, metrics=None, distill=None,
                    sync=None):
    """One epoch of minibatch training. Returns (loss_sum, n_done, finite), as the C twin does. X is dense or a
    scipy.sparse CSR matrix, whose batches are densified one at a time; `order` lists the rows to train on, in
    its order (a permutation of X's rows, or a subset). distill: None, or (teacher logits (n_rows, out_size),
    temperature, alpha): each batch's teacher rows are gathered as T's and it trains by the distillation loss.
    sync: None, or data-parallel training (fastnn.distributed): each step's gradients are summed over the ranks
    by sync.allreduce between backprop and update, and the epoch makes sync.n_steps steps (see the C twin)."""
    n = order.shape[0]
    if n == 0 or np.any(order < 0) or np.any(order >= X.shape[0]):
        raise ValueError("net_train_epoch: order must list rows of X")
    if not 0 < batch <= h.max_batch:
        raise ValueError(f"net_train_epoch: batch {batch} exceeds the workspace ({h.max_batch})")
    if metrics is not None:
        check_metrics(metrics, h.layers[-1].predict_act)
    sparse = hasattr(X, "indptr")
    if sparse:
        check_csr(X, h.d_in, "net_train_epoch: X")
        if not hasattr(X, "toarray"):  # fastnn's CSRRows: the same arrays as a scipy matrix
            X = X.scipy()
    if distill is not None:
        if distill[0].shape != (X.shape[0], h.d_out):
            raise ValueError(f"net_train_epoch: teacher logits {distill[0].shape} do not fit T {T.shape}")
        teacher_batch = np.empty((batch, h.d_out), dtype=h.dtype)
    loss_sum, n_done = 0.0, 0
    for b, start in enumerate(range(0, n, batch)):
        idx = order[start:start + batch]
        rows = idx.shape[0]
        xb, tb = h.x_batch[:rows], h.t_batch[:rows]
        if sparse:
            xb[...] = X[idx].toarray()
        else:
            np.take(X, idx, axis=0, out=xb)
        np.take(T, idx, axis=0, out=tb)
        wb = None
        if W is not None:
            wb = h.w_batch[:rows]
            np.take(W, idx, out=wb)
        batch_distill = None
        if distill is not None:
            np.take(distill[0], idx, axis=0, out=teacher_batch[:rows])
            batch_distill = (teacher_batch[:rows], distill[1], distill[2])
        if sync is None:
            value = net_backprop(h, xb, tb, n_threads, wb, True, dropout_batch_key(dropout_seed, b), batch_distill)
        else:
            try:
                value = net_backprop(h, xb, tb, n_threads, wb, True, dropout_batch_key(dropout_seed, b),
                                     batch_distill)
            except Exception:  # the other ranks still wait for this step: tell them, then raise
                _dist_sync(h, sync, 0.0, 0.0, True, n_threads)
                raise
            status = _dist_sync(h, sync, _dist_loss_count(h, tb, rows), value, False, n_threads)
            if status == "failed":
                raise sync.failure("net_train_epoch")
            if status == "nonfinite":
                return loss_sum, n_done, False
        if not math.isfinite(value):
            return loss_sum, n_done, False
        if metrics is not None:  # the batch's outputs, before its update
            _accumulate(h, metrics, h.layers[-1].a[:rows], tb, wb)
        net_update(h, state, n_threads)
        loss_sum += value * rows
        n_done += rows
    if sync is not None:  # the steps after this rank's batches ran out: an empty batch each
        for b in range(-(-n // batch), sync.n_steps):
            h.grads[...] = 0
            status = _dist_sync(h, sync, 0.0, 0.0, False, n_threads)
            if status == "failed":
                raise sync.failure("net_train_epoch")
            if status == "nonfinite":
                return loss_sum, n_done, False
            net_update(h, state, n_threads)
    return loss_sum, n_done, True


def _use_sparse(L, n):
    """Inference through a pruned dense layer's CSR copy for batches it pays for."""
    return L.kind == LAYER_DENSE and L.steps == 1 and L.sparse is not None and n <= L.sparse[1]


def _infer_sizes(h):
    """Per-sample scratch of the inference passes: the widest output, the largest conv2d columns and the largest
    recurrent layer's states, gates, cells and projection."""
    widest = max([1] + [L.out_size for L in h.layers])
    convs = [L for L in h.layers if L.kind == LAYER_CONV2D]
    cols = max([0] + [L.win[4] * L.win[5] * L.win[0] * L.win[6] * L.win[7] for L in convs])
    recurrent = max([0] + [rnn_scratch_size(L.seq, 1) for L in h.layers if L.kind == LAYER_RECURRENT])
    return widest, cols, recurrent


def net_infer_scratch_size(h, n):
    """Elements of scratch net_predict / net_evaluate need for n samples."""
    widest, cols, recurrent = _infer_sizes(h)
    return n * (2 * widest + cols + recurrent)


def _recurrent_scratch(L, region, n):
    """A recurrent layer's inference workspaces, carved from `region` in the order of fastnn_rnn_scratch_size."""
    _, _, _, T, _, U = L.seq
    gate_values = rnn_scratch_size(L.seq, 1) // 2 - (T + 1) * U  # T G U
    sizes = {"states": (T + 1) * U, "gates": gate_values, "cells": (T + 1) * U, "proj": gate_values}
    ws, offset = {}, 0
    for name, size in sizes.items():
        ws[name] = region[offset:offset + n * size]
        offset += n * size
    return ws


def _infer(h, y, x, scratch, n_threads):
    """A forward pass outside training in `scratch` (laid out as in C: two buffers of the widest output taken in
    turn, then the largest conv2d's columns): into y with the predict activation, else returns the output."""
    n = x.shape[0]
    widest, cols_size, _ = _infer_sizes(h)
    buffers = (scratch[:n * widest], scratch[n * widest:2 * n * widest])
    cols = scratch[2 * n * widest:2 * n * widest + n * cols_size]
    recurrent = scratch[n * (2 * widest + cols_size):]
    inp, in_buffer = x, None
    for i, L in enumerate(h.layers):
        if _passes_through(L, False):
            continue
        predicting = i == len(h.layers) - 1 and y is not None
        if predicting:
            out = y
        else:
            in_buffer = 1 if in_buffer == 0 else 0
            out = buffers[in_buffer][:n * L.out_size].reshape(n, L.out_size)
        ws = {"cols": cols, "argmax": None}
        if L.kind == LAYER_RECURRENT:
            ws.update(_recurrent_scratch(L, recurrent, n))
        act = L.predict_act if predicting else L.act
        if _use_sparse(L, n):
            sparse_dense_forward(out, inp, L.sparse[0], L.b, act, L.alpha, n_threads)
        else:
            _layer_forward(L, i, out, inp, act, ws, 0, n_threads)
        inp = out
    return inp


def net_predict(h, y, x, scratch, n_threads):
    """Prediction for a batch x (n, in_size) into y (n, out_size), using only `scratch`."""
    n = x.shape[0]
    if x.shape != (n, h.d_in) or y.shape != (n, h.d_out) or scratch.size < net_infer_scratch_size(h, n):
        raise ValueError("net_predict: x, y or scratch do not fit the network")
    if n:
        _infer(h, y, x, scratch, n_threads)


def net_evaluate(h, x, t, scratch, n_threads, w=None, metrics=None):
    """The mean loss over x against t (sample weights w or None), without dropout, using only `scratch`."""
    n = x.shape[0]
    if x.shape != (n, h.d_in) or t.shape != (n, h.d_out) or n == 0 or \
            scratch.size < net_infer_scratch_size(h, n):
        raise ValueError("net_evaluate: x, t or scratch do not fit the network")
    if metrics is not None:
        check_metrics(metrics, h.layers[-1].predict_act)
    out = _infer(h, None, x, scratch, n_threads)
    last = h.layers[-1]
    value = loss_kernel(None, _rows(last, out, n), _rows(last, t, n), h.loss_kind, n_threads, w)
    if metrics is not None:
        _accumulate(h, metrics, out, t, w)
    return value


def net_forward_single(h, y, x, scratch):
    """One sample x (in_size,) through a network of dense layers for prediction into y (out_size,)."""
    if any(L.kind != LAYER_DENSE for L in h.layers):
        raise ValueError("net_forward_single: only for networks of dense layers")
    widest = h.widest
    inp = x
    for i, L in enumerate(h.layers):
        out = y if i == len(h.layers) - 1 else scratch[(i % 2) * widest:(i % 2) * widest + L.out_size]
        if _use_sparse(L, 1):
            sparse_dense_forward(out[None, :], inp[None, :], L.sparse[0], L.b, L.predict_act, L.alpha, 1)
        else:
            dense_forward_single(out, inp, L.W, L.b, L.predict_act, L.alpha)
        inp = out
