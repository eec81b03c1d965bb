"""Pruning's kernels (twin of csrc/prune.c): the keep mask applied to a flat buffer, and a dense layer's forward
pass from a CSR copy of W^T."""
import numpy as np

from .activations import activate_inplace
from .sparse import check_csr

_CHUNK = 256  # rows per pass of the sparse product, so its (rows, nnz) temporary stays bounded


def mask_apply(x, keep, n_threads):
    """x[k] = 0 wherever keep[k] == 0."""
    if x.ndim != 1 or keep.ndim != 1 or keep.shape[0] != x.shape[0] or keep.dtype != np.uint8:
        raise ValueError("mask_apply: keep must be a uint8 array as long as x")
    np.copyto(x, 0, where=keep == 0)


def sparse_dense_forward(y, x, Wt, b, act, alpha, n_threads):
    """y (n, d_out) = act(x (n, d_in) W + b), W^T the CSR matrix Wt (d_out, d_in): each output is b[o] plus the
    products of row o of Wt summed in storage order (np.add.reduceat over the row's segment)."""
    check_csr(Wt, x.shape[1], "sparse_dense_forward")
    d_out = Wt.shape[0]
    if y.shape != (x.shape[0], d_out):
        raise ValueError(f"sparse_dense_forward: y has shape {y.shape}, expected ({x.shape[0]}, {d_out})")
    indptr = Wt.indptr
    filled = np.flatnonzero(np.diff(indptr) > 0)
    for start in range(0, x.shape[0], _CHUNK):
        rows = slice(start, min(start + _CHUNK, x.shape[0]))
        y[rows] = 0 if b is None else b
        if filled.size:
            products = x[rows][:, Wt.indices] * Wt.data
            y[rows, filled] += np.add.reduceat(products, indptr[filled], axis=1)
    activate_inplace(y, act, alpha)
