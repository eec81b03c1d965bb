"""Dense (fully connected) layer forward and backward (twin of csrc/dense.c)."""
import numpy as np

from .activations import activate_inplace


def dense_forward(y, x, W, b, act, alpha, n_threads):
    """y = act(x @ W + b) for a batch x of shape (n, d_in); W is (d_in, d_out), y is (n, d_out)."""
    np.matmul(x, W, out=y)
    y += b
    activate_inplace(y, act, alpha)


def dense_forward_single(y, x, W, b, act, alpha):
    """y = act(x @ W + b) for one sample x of shape (d_in,)."""
    np.matmul(x, W, out=y)
    y += b
    activate_inplace(y[None, :], act, alpha)


def dense_backward(dx, dW, db, dz, x, W, n_threads):
    """dW = x^T dz, db = sum of dz over samples and, unless dx is None, dx = dz W^T (all overwritten)."""
    np.matmul(x.T, dz, out=dW)
    db[...] = dz.sum(axis=0)
    if dx is not None:
        np.matmul(dz, W.T, out=dx)
