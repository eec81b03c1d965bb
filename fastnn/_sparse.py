"""scipy.sparse input: a CSR view of X with data of the network's dtype and int64 indices, made once per call,
from which the kernels densify one minibatch (training) or one bounded chunk of rows (predict, evaluate) at a
time. scipy is only touched when the caller already passes a scipy.sparse matrix."""
import sys

import numpy as np

from ._py.sparse import check_csr


def is_sparse(X):
    """True for a scipy.sparse matrix or array (without importing scipy when the caller has not)."""
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and sp.issparse(X)


class CSRRows:
    """The CSR arrays of a matrix (data, indices, indptr, shape), as fastnn_csr reads them; row ranges are views
    of the same data."""

    ndim = 2

    def __init__(self, data, indices, indptr, shape):
        self.data, self.indices, self.indptr, self.shape = data, indices, indptr, tuple(shape)

    def __len__(self):
        return self.shape[0]

    def rows(self, start, stop):
        """Rows [start, stop) as a CSRRows sharing data and indices."""
        a, b = int(self.indptr[start]), int(self.indptr[stop])
        return CSRRows(self.data[a:b], self.indices[a:b], self.indptr[start:stop + 1] - a,
                       (stop - start, self.shape[1]))

    def scipy(self):
        """The same matrix as scipy.sparse.csr_matrix (for the NumPy backend's gathers)."""
        import scipy.sparse
        return scipy.sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def nbytes(self):
        return self.data.nbytes + self.indices.nbytes + self.indptr.nbytes


def as_csr(name, X, n_cols, dtype):
    """X (scipy.sparse CSR, CSC, COO, ... of shape (n, n_cols)) as CSRRows of `dtype` data and int64 indices:
    converted to CSR once (COO's duplicates are summed by scipy), never densified. ValueError for a wrong shape,
    non-finite values or a malformed matrix."""
    if X.ndim != 2:
        raise ValueError(f"{name} is a {X.ndim}-D sparse array; give a 2-D (n_samples, {n_cols}) matrix")
    n, d = X.shape
    if d != n_cols:
        raise ValueError(f"{name} has {d} features, the network expects {n_cols}")
    if n == 0:
        raise ValueError(f"{name} is empty (0 samples); expected at least one row of {n_cols} features")
    if X.format != "csr":
        X = X.tocsr()
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name}: sparse values must be real numbers, got {X.dtype}")
    data = np.ascontiguousarray(X.data, dtype=dtype)
    if data.size and not np.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or infinity")
    indices = np.ascontiguousarray(X.indices, dtype=np.int64)
    indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
    out = CSRRows(data, indices, indptr, (n, d))
    check_csr(out, n_cols, name)
    return out
