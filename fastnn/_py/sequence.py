"""The plumbing layers of sequence models: the embedding lookup and step repetition, forward and backward (twin
of csrc/sequence.c).

Token ids travel in the network's real-valued buffers (float32 holds every integer below 2^24 exactly); a kernel
that meets an id that is not an integer in [0, vocabulary) refuses the whole call before writing anything.
"""
import numpy as np


def _token_rows(ids, vocab):
    ids = ids.reshape(-1)
    rows = ids.astype(np.int64)
    if not np.all((rows == ids) & (rows >= 0) & (rows < vocab)):
        raise ValueError(f"embedding: token ids must be integers in [0, {vocab - 1}]")
    return rows


def embedding_forward(y, ids, W, n_threads):
    """y (m, D) = W[ids] for m token ids (any shape holding m values); W is (vocabulary, D)."""
    rows = _token_rows(ids, W.shape[0])
    np.take(W, rows, axis=0, out=y.reshape(rows.size, W.shape[1]))


def embedding_backward(dW, dy, ids, n_threads):
    """dW (vocabulary, D) = the sum of dy's rows (m, D) into the rows of their tokens (overwritten)."""
    rows = _token_rows(ids, dW.shape[0])
    dW[...] = 0
    np.add.at(dW, rows, dy.reshape(rows.size, dW.shape[1]))


def repeat_forward(y, x, repeats, n_threads):
    """y (n, repeats F) = each sample's x (n, F) repeated `repeats` times (Keras' RepeatVector)."""
    n, F = x.shape
    y.reshape(n, repeats, F)[...] = x[:, None, :]


def repeat_backward(dx, dy, repeats, n_threads):
    """dx (n, F) = the sum over the repeats of dy (n, repeats F)."""
    n, F = dx.shape
    dx[...] = dy.reshape(n, repeats, F).sum(axis=1)
