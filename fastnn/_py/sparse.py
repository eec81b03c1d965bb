"""Rows of a CSR matrix gathered into a dense batch (twin of csrc/sparse.c), through scipy.sparse."""
import numpy as np


def check_csr(X, n_cols, where):
    """ValueError unless X is a well-formed CSR matrix of n_cols columns with int64 indices and indptr (what
    fastnn_check_csr accepts)."""
    data, indices, indptr = X.data, X.indices, X.indptr
    n_rows, nnz = X.shape[0], data.shape[0]
    if X.shape[1] != n_cols:
        raise ValueError(f"{where}: the sparse matrix has {X.shape[1]} columns, expected {n_cols}")
    if indices.dtype != np.int64 or indptr.dtype != np.int64 or indices.ndim != 1 or indptr.ndim != 1:
        raise ValueError(f"{where}: the sparse matrix needs int64 indices and indptr")
    if indices.shape[0] != nnz or indptr.shape[0] != n_rows + 1:
        raise ValueError(f"{where}: the sparse matrix has {nnz} values, {indices.shape[0]} indices and "
                         f"{indptr.shape[0]} row pointers for {n_rows} rows")
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0) or \
            (nnz and (indices.min() < 0 or indices.max() >= n_cols)):
        raise ValueError(f"{where}: malformed sparse matrix (row pointers must start at 0, never decrease and end "
                         f"at {nnz}; column indices must lie in [0, {n_cols}))")


def csr_gather(x, X, rows, n_threads):
    """x (n, n_cols) = the dense rows `rows` of the CSR matrix X; duplicate entries add up."""
    check_csr(X, x.shape[1], "csr_gather")
    if rows.shape[0] == 0:
        return
    if x.shape[0] != rows.shape[0]:
        raise ValueError(f"csr_gather: x has {x.shape[0]} rows, rows has {rows.shape[0]}")
    if rows.min() < 0 or rows.max() >= X.shape[0]:
        raise ValueError(f"csr_gather: a row index is outside [0, {X.shape[0]})")
    if not hasattr(X, "toarray"):  # fastnn's CSRRows: the same arrays as a scipy matrix
        X = X.scipy()
    x[...] = X[rows].toarray()
