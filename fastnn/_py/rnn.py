"""Recurrent layers (SimpleRNN, LSTM, GRU) over whole sequences, forward and backpropagation through time (twin
of csrc/rnn.c).

Layouts are PyTorch's: W_ih (G U, F), W_hh (G U, U), b_ih and b_hh (G U), the G gate blocks in PyTorch's order
(LSTM: i, f, g, o; GRU: r, z, n). `seq` is the layer's fastnn_sequence as a tuple
(cell, act, return_sequences, steps T, features F, units U); act is SimpleRNN's activation (tanh or relu).

A batch is n sequences: x (n, T F) holds each sequence's steps one after the other, y is (n, T U) with
return_sequences, else (n, U) (the last step). The workspaces are time-major, so that a step's n rows are
contiguous:
  states (T + 1, n, U): states[0] = h_0 (the initial state), states[t + 1] = h after step t
  gates  (T, n, G U):   the gates after their non-linearities (SimpleRNN: h itself)
  cells  (T + 1, n, U): LSTM: the cell states, c_0 first; GRU: W_hn h_{t-1} + b_hn at [t] (the part of the new
                        gate that the reset gate scales); SimpleRNN: unused
Each is a flat buffer of at least that many elements. The initial state `state0` (n, S) is h (S = U) or, for
the LSTM, h then c (S = 2 U); None means zeros. `state_out` (n, S), when given, receives the final state (it may
be state0: a stateful layer carries its state from call to call).
"""
import numpy as np

from .._codes import CELL_GATES, CELL_GRU, CELL_LSTM, CELL_SIMPLE, RELU, TANH


def _sigmoid(z):
    # the two-sided form overflows for no z
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _views(seq, n, states, gates, cells):
    cell, _, _, T, F, U = seq
    G = CELL_GATES[cell]
    st = states.reshape(-1)[:(T + 1) * n * U].reshape(T + 1, n, U)
    gt = gates.reshape(-1)[:T * n * G * U].reshape(T, n, G * U)
    ct = None if cell == CELL_SIMPLE else cells.reshape(-1)[:(T + 1) * n * U].reshape(T + 1, n, U)
    return st, gt, ct


def rnn_forward(y, states, gates, cells, proj, x, W_ih, W_hh, b_ih, b_hh, state0, state_out, seq, n_threads):
    """Run the layer over n whole sequences: fills states, gates, cells (see above) and y; `proj` (T n G U
    elements) is scratch for the input projection x W_ih^T + b_ih of every step, one product before the loop."""
    cell, act, return_sequences, T, F, U = seq
    n = x.shape[0]
    G = CELL_GATES[cell]
    st, gt, ct = _views(seq, n, states, gates, cells)
    projection = proj.reshape(-1)[:n * T * G * U].reshape(n, T, G * U)
    np.matmul(x.reshape(n * T, F), W_ih.T, out=projection.reshape(n * T, G * U))
    projection += b_ih
    st[0] = 0 if state0 is None else state0[:, :U]
    if cell == CELL_LSTM:
        ct[0] = 0 if state0 is None else state0[:, U:2 * U]
    for t in range(T):
        h_prev = st[t]
        recurrent = h_prev @ W_hh.T + b_hh
        g = gt[t]
        if cell == CELL_SIMPLE:
            z = projection[:, t] + recurrent
            g[...] = np.tanh(z) if act == TANH else np.maximum(z, 0) if act == RELU else z
            st[t + 1] = g
        elif cell == CELL_LSTM:
            z = projection[:, t] + recurrent
            g[:, :2 * U] = _sigmoid(z[:, :2 * U])          # i, f
            g[:, 2 * U:3 * U] = np.tanh(z[:, 2 * U:3 * U])  # g
            g[:, 3 * U:] = _sigmoid(z[:, 3 * U:])          # o
            i, f, c_in, o = g[:, :U], g[:, U:2 * U], g[:, 2 * U:3 * U], g[:, 3 * U:]
            ct[t + 1] = f * ct[t] + i * c_in
            st[t + 1] = o * np.tanh(ct[t + 1])
        else:  # GRU: n = tanh(x_n + r (W_hn h + b_hn)), h = (1 - z) n + z h_prev
            xp = projection[:, t]
            g[:, :2 * U] = _sigmoid(xp[:, :2 * U] + recurrent[:, :2 * U])  # r, z
            ct[t] = recurrent[:, 2 * U:]
            r, zg = g[:, :U], g[:, U:2 * U]
            g[:, 2 * U:] = np.tanh(xp[:, 2 * U:] + r * ct[t])
            st[t + 1] = (1 - zg) * g[:, 2 * U:] + zg * h_prev
    if return_sequences:
        y.reshape(n, T, U)[...] = st[1:].transpose(1, 0, 2)
    else:
        y.reshape(n, U)[...] = st[T]
    if state_out is not None:
        state_out[:, :U] = st[T]
        if cell == CELL_LSTM:
            state_out[:, U:2 * U] = ct[T]


def rnn_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dgates, gates, cells, carry, dy, x, states, W_ih, W_hh, seq,
                 n_threads):
    """Backpropagation through time over what rnn_forward stored. dy: d(loss)/d(y). Overwrites dW_ih, dW_hh,
    db_ih, db_hh and, unless dx is None, dx (n, T F). The initial state is a constant (truncated BPTT).

    dgates (T n G U elements) receives d(loss)/d(pre-activation gates) step by step; gates and cells are
    overwritten (the C kernel reuses them for the batch-major gradients); carry (3 n U elements) holds the
    gradients carried from step to step. The weight products are taken over all steps at once after the loop."""
    cell, act, return_sequences, T, F, U = seq
    n = x.shape[0]
    G = CELL_GATES[cell]
    st, gt, ct = _views(seq, n, states, gates, cells)
    dg = dgates.reshape(-1)[:T * n * G * U].reshape(T, n, G * U)
    dg_input = np.empty_like(dg)  # the gradients the input side sees (they differ from dg in GRU's n block)
    dh = np.zeros((n, U), dtype=x.dtype)
    dc = np.zeros((n, U), dtype=x.dtype)
    dy_steps = dy.reshape(n, T, U) if return_sequences else None
    for t in range(T - 1, -1, -1):
        if return_sequences:
            dh += dy_steps[:, t]
        elif t == T - 1:
            dh += dy.reshape(n, U)
        g, d = gt[t], dg[t]
        if cell == CELL_SIMPLE:
            h = st[t + 1]
            d[...] = dh * (1 - h * h) if act == TANH else dh * (h > 0) if act == RELU else dh
            dg_input[t] = d
            dh = d @ W_hh
        elif cell == CELL_LSTM:
            i, f, c_in, o = g[:, :U], g[:, U:2 * U], g[:, 2 * U:3 * U], g[:, 3 * U:]
            tc = np.tanh(ct[t + 1])
            dc = dc + dh * o * (1 - tc * tc)
            d[:, :U] = dc * c_in * i * (1 - i)
            d[:, U:2 * U] = dc * ct[t] * f * (1 - f)
            d[:, 2 * U:3 * U] = dc * i * (1 - c_in * c_in)
            d[:, 3 * U:] = dh * tc * o * (1 - o)
            dg_input[t] = d
            dc = dc * f
            dh = d @ W_hh
        else:
            r, zg, new = g[:, :U], g[:, U:2 * U], g[:, 2 * U:]
            d_new = dh * (1 - zg) * (1 - new * new)
            d[:, :U] = d_new * ct[t] * r * (1 - r)
            d[:, U:2 * U] = dh * (st[t] - new) * zg * (1 - zg)
            d[:, 2 * U:] = d_new * r
            dg_input[t] = d
            dg_input[t][:, 2 * U:] = d_new
            dh = dh * zg + d @ W_hh
    flat_input = dg_input.transpose(1, 0, 2).reshape(n * T, G * U)  # batch-major, as x
    np.matmul(flat_input.T, x.reshape(n * T, F), out=dW_ih)
    db_ih[...] = flat_input.sum(axis=0)
    np.matmul(dg.reshape(T * n, G * U).T, st[:T].reshape(T * n, U), out=dW_hh)
    db_hh[...] = dg.reshape(T * n, G * U).sum(axis=0)
    if dx is not None:
        np.matmul(flat_input, W_ih, out=dx.reshape(n * T, F))


def rnn_scratch_size(seq, n):
    """Elements of scratch an inference pass of n sequences needs: states, gates, cells and the projection."""
    cell, _, _, T, F, U = seq
    G = CELL_GATES[cell]
    return n * (2 * (T + 1) * U + 2 * T * G * U)


__all__ = ["CELL_GRU", "CELL_LSTM", "CELL_SIMPLE", "rnn_backward", "rnn_forward", "rnn_scratch_size"]
