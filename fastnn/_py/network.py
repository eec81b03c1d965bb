"""A whole network per call: backprop over a batch, an update, an epoch, one-sample prediction
(twin of csrc/network.c). Built from the layer, loss and optimizer twins exactly as the C code is."""
import math

import numpy as np

from .._codes import OPT_ADAM, OPT_ADAMW, OPT_IRPROP_MINUS, OPT_RMSPROP
from .activations import act_backward
from .dense import dense_backward, dense_forward, dense_forward_single
from .losses import loss as loss_kernel
from .optimizers import adam_step, adamw_step, irprop_minus_step, rmsprop_step, sgd_step


class NetHandle:
    """The buffers of a network, as the C fastnn_net struct holds them.

    layers: a list of (W, b, dW, db, a, delta, act, predict_act, alpha); a and delta are (max_batch, d_out)
    workspaces, or None for a handle used for prediction only."""

    def __init__(self, layers, loss_kind, params, grads, n_decay, x_batch, t_batch, w_batch=None):
        self.layers = list(layers)
        self.loss_kind = loss_kind
        self.params, self.grads, self.n_decay = params, grads, n_decay
        self.x_batch, self.t_batch, self.w_batch = x_batch, t_batch, w_batch
        self.dtype = params.dtype
        self.d_in = self.layers[0][0].shape[0]
        self.d_out = self.layers[-1][0].shape[1]
        self.max_batch = 0 if self.layers[0][4] is None else self.layers[0][4].shape[0]
        self.widest = max(layer[0].shape[1] for layer in self.layers)


def net_backprop(h, x, t, n_threads, w=None):
    """Forward and backward pass over one batch: fills the workspaces and gradients, returns the mean loss."""
    n = x.shape[0]
    if x.shape != (n, h.d_in) or t.shape != (n, h.d_out) or not 0 < n <= h.max_batch:
        raise ValueError(f"net_backprop: x {x.shape} / t {t.shape} do not fit the network or its workspace")
    inp = x
    for W, b, _, _, a, _, act, _, alpha in h.layers:
        dense_forward(a[:n], inp, W, b, act, alpha, n_threads)
        inp = a[:n]
    W, b, dW, db, a, delta, act, _, alpha = h.layers[-1]
    value = loss_kernel(delta[:n], a[:n], t, h.loss_kind, n_threads, w)
    act_backward(delta[:n], delta[:n], a[:n], act, alpha, n_threads)
    for i in range(len(h.layers) - 1, -1, -1):
        W, b, dW, db, a, delta, act, _, alpha = h.layers[i]
        below = h.layers[i - 1] if i > 0 else None
        x_in = below[4][:n] if below else x
        dx = below[5][:n] if below else None
        dense_backward(dx, dW, db, delta[:n], x_in, W, n_threads)
        if below:
            act_backward(dx, dx, below[4][:n], below[6], below[8], n_threads)
    return value


def net_update(h, state, n_threads):
    """One optimizer update of the parameters from the gradient buffer; advances state.t."""
    state.t += 1
    if state.kind in (OPT_ADAM, OPT_ADAMW):
        step = adam_step if state.kind == OPT_ADAM else adamw_step
        step(h.params, h.grads, state.state1, state.state2, h.n_decay, state.lr, state.beta1, state.beta2,
             state.eps, state.weight_decay, state.t, n_threads)
    elif state.kind == OPT_RMSPROP:
        rmsprop_step(h.params, h.grads, state.state1, h.n_decay, state.lr, state.rho, state.eps,
                     state.weight_decay, n_threads)
    elif state.kind == OPT_IRPROP_MINUS:
        irprop_minus_step(h.params, h.grads, state.state1, state.state2, h.n_decay, state.eta_plus,
                          state.eta_minus, state.step_min, state.step_max, state.weight_decay, n_threads)
    else:
        sgd_step(h.params, h.grads, state.state1, h.n_decay, state.lr, state.momentum, state.nesterov,
                 state.weight_decay, n_threads)


def net_train_epoch(h, state, X, T, order, batch, n_threads, W=None):
    """One epoch of minibatch training. Returns (loss_sum, n_done, finite), as the C twin does."""
    n = X.shape[0]
    if not 0 < batch <= h.max_batch:
        raise ValueError(f"net_train_epoch: batch {batch} exceeds the workspace ({h.max_batch})")
    loss_sum, n_done = 0.0, 0
    for start in range(0, n, batch):
        idx = order[start:start + batch]
        rows = idx.shape[0]
        xb, tb = h.x_batch[:rows], h.t_batch[:rows]
        np.take(X, idx, axis=0, out=xb)
        np.take(T, idx, axis=0, out=tb)
        wb = None
        if W is not None:
            wb = h.w_batch[:rows]
            np.take(W, idx, out=wb)
        value = net_backprop(h, xb, tb, n_threads, wb)
        if not math.isfinite(value):
            return loss_sum, n_done, False
        net_update(h, state, n_threads)
        loss_sum += value * rows
        n_done += rows
    return loss_sum, n_done, True


def net_forward_single(h, y, x, scratch):
    """One sample x (d_in,) through the network for prediction into y (d_out,)."""
    inp = x
    for i, (W, b, _, _, _, _, _, predict_act, alpha) in enumerate(h.layers):
        out = y if i == len(h.layers) - 1 else scratch[(i % 2) * h.widest:(i % 2) * h.widest + W.shape[1]]
        dense_forward_single(out, inp, W, b, predict_act, alpha)
        inp = out
