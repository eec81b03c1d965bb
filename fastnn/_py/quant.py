"""int8 inference (twin of csrc/quant.c): the integer products as an exact int64 matmul.

Also home of what both backends share: weight quantization and packing (done once, at quantize time).
Packed layout (csrc/quant.c): ceil(n/16) blocks of 16 columns, each ceil(k/4) groups of 64 bytes holding, per
column, 4 consecutive k values: packed[jb, g, c, t] = w[4g + t, 16jb + c], zero past k or n.
"""
import numpy as np

from .activations import activate_inplace

PORTABLE, AVX2, AVX_VNNI, AVX512_VNNI = range(4)
PATHS = {"portable": PORTABLE, "avx2": AVX2, "avx_vnni": AVX_VNNI, "avx512_vnni": AVX512_VNNI}
MAX_K = 65793  # floor((2^31 - 1) / (255 * 128)): the int32 accumulators cannot overflow
BLOCK, GROUP = 16, 4


# ------------------------------------------------------------------------------------------ shared helpers
def quantize_weights(W, per_channel=True):
    """Symmetric int8 weights of a (k, n) float matrix: (q int8 (k, n), scale float32 (n,)) with
    W ~ q * scale, q in [-127, 127]; one scale per output column, or one for all (repeated n times)."""
    W = np.asarray(W, dtype=np.float32)
    amax = np.abs(W).max(axis=0) if per_channel else np.full(W.shape[1], np.abs(W).max(), dtype=np.float32)
    scale = (amax / np.float32(127)).astype(np.float32)
    scale[scale == 0] = 1  # an all-zero column: any scale gives q = 0
    q = np.clip(np.rint(W / scale), -127, 127).astype(np.int8)
    return q, scale


def lda_for(k):
    """Row stride of quantized activations: k rounded up to whole 4-byte lanes."""
    return -(-k // GROUP) * GROUP


def q8_pack(q):
    """(packed int8 (ceil(n/16) * ceil(k/4) * 64,), colsum int32 (n,)) of a (k, n) int8 matrix."""
    q = np.asarray(q, dtype=np.int8)
    k, n = q.shape
    kq, nb = -(-k // GROUP), -(-n // BLOCK)
    padded = np.zeros((kq * GROUP, nb * BLOCK), dtype=np.int8)
    padded[:k, :n] = q
    packed = padded.reshape(kq, GROUP, nb, BLOCK).transpose(2, 0, 3, 1)  # (jb, g, c, t)
    return np.ascontiguousarray(packed).reshape(-1), q.sum(axis=0, dtype=np.int64).astype(np.int32)


def q8_unpack(packed, k, n):
    """The (k, n) int8 matrix back from its packed form."""
    kq, nb = -(-k // GROUP), -(-n // BLOCK)
    return packed.reshape(nb, kq, BLOCK, GROUP).transpose(1, 3, 0, 2).reshape(kq * GROUP, nb * BLOCK)[:k, :n]


def q8_csr(q):
    """W^T's nonzeros of a (k, n) int8 matrix as CSR, one row per output: (data int8, indices int32 (rows of q,
    ascending), indptr int64 (n + 1,)), the sparse kernels' operand (fastnn_q8_sparse_gemm)."""
    qt = np.asarray(q, dtype=np.int8).T
    nonzero = qt != 0
    indptr = np.zeros(qt.shape[0] + 1, dtype=np.int64)
    np.cumsum(nonzero.sum(axis=1), out=indptr[1:])
    return (np.ascontiguousarray(qt[nonzero]), np.nonzero(nonzero)[1].astype(np.int32), indptr)


# ----------------------------------------------------------------------------------------------- kernels
def q8_path_supported(path):
    """The NumPy twin computes the same integers on every path."""
    return path in PATHS.values()


def q8_best_path():
    return PORTABLE


def _check(m, n, k, lda, path):
    if n < 1 or k < 1 or k > MAX_K:
        raise ValueError(f"q8: invalid sizes n={n}, k={k} (k at most {MAX_K})")
    if lda < lda_for(k):
        raise ValueError(f"q8: lda {lda} is less than {lda_for(k)}")
    if not q8_path_supported(path):
        raise ValueError(f"q8: unknown path {path}")


def q8_gemm(c, a, bp, k, path, n_threads):
    """c (m, n) int32 = a[:, :k] (uint8) x w (k, n) int8 (packed bp), exactly (int64 matmul)."""
    m, n = c.shape
    _check(m, n, k, a.shape[1], path)
    w = q8_unpack(bp, k, n).astype(np.int64)
    c[...] = (a[:, :k].astype(np.int64) @ w).astype(np.int32)


def _check_csr(n, k, lda, data, indices, indptr):
    if n < 1 or k < 1 or k > MAX_K or lda < k:
        raise ValueError(f"q8_sparse: invalid sizes n={n}, k={k}, lda={lda}")
    if indptr.shape != (n + 1,) or indices.shape != data.shape or indptr[0] != 0 or indptr[-1] != data.size \
            or (np.diff(indptr) < 0).any() or (data.size and (indices.min() < 0 or indices.max() >= k)):
        raise ValueError("q8_sparse: the CSR does not fit the sizes")


def q8_sparse_scratch_bytes(m, k):
    """Bytes of transposed blocks of 16 rows the C kernels may use (the twin needs none)."""
    return -(-m // 16) * 16 * k


def q8_sparse_gemm(c, a, data, indices, indptr, k, n_threads, at=None):
    """c (m, n) int32 = a[:, :k] x w (k, n), w^T's nonzeros given as CSR (q8_csr), exactly: the integers of
    q8_gemm (row o of c's columns is a sum over output o's stored weights only)."""
    m, n = c.shape
    _check_csr(n, k, a.shape[1], data, indices, indptr)
    if m == 0:
        return
    rows = np.repeat(np.arange(n), np.diff(indptr))
    products = a[:, indices].astype(np.int64) * data.astype(np.int64)  # (m, nnz)
    out = np.zeros((m, n), np.int64)
    np.add.at(out.T, rows, products.T)
    c[...] = out.astype(np.int32)


def q8_sparse_dense_forward(y, x, data, indices, indptr, w_scale, w_colsum, bias, act, alpha, qa, acc, a_scale,
                            a_zp, n_threads, at=None):
    """q8_dense_forward through the sparse product: the same y."""
    m, k = x.shape
    _check_csr(y.shape[1], k, qa.shape[1], data, indices, indptr)
    if m == 0:
        return
    q8_quantize_rows(qa[:m], a_scale[:m], a_zp[:m], x, n_threads)
    q8_sparse_gemm(acc[:m], qa[:m], data, indices, indptr, k, n_threads)
    q8_epilogue(y, acc[:m], a_scale[:m], a_zp[:m], w_scale, w_colsum, bias, act, alpha, n_threads)


def q8_quantize_rows(q, scale, zero_point, x, n_threads):
    """Per row of x (m, k): uint8 q (m, ldq) (columns past k zero), scale, zero point (csrc/quant.c)."""
    m, k = x.shape
    if m == 0:
        return
    if not np.isfinite(x).all():
        raise ValueError("q8_quantize_rows: the rows hold NaN or infinity")
    x = x.astype(np.float32, copy=False)
    lo = np.minimum(x.min(axis=1), 0).astype(np.float32)
    hi = np.maximum(x.max(axis=1), 0).astype(np.float32)
    s = ((hi - lo) / np.float32(255)).astype(np.float32)
    s[~(s > 0) | ~np.isfinite(s)] = 1
    zp = np.clip(np.rint(-lo / s), 0, 255).astype(np.float32)
    q[:, :k] = np.clip(np.rint(x / s[:, None]) + zp[:, None], 0, 255).astype(np.uint8)
    q[:, k:] = 0
    scale[...] = s
    zero_point[...] = zp.astype(np.int32)


def q8_epilogue(y, c, a_scale, a_zp, w_scale, w_colsum, bias, act, alpha, n_threads):
    """y = act((c - zp_i colsum_j) * (a_scale_i w_scale_j) + bias_j) in float32."""
    v = (c.astype(np.int64) - a_zp.astype(np.int64)[:, None] * w_colsum.astype(np.int64)).astype(np.float32)
    y[...] = v * (a_scale[:, None] * w_scale[None, :]) + bias
    activate_inplace(y, act, np.float32(alpha))


def q8_dense_forward(y, x, bp, w_scale, w_colsum, bias, k, act, alpha, qa, acc, a_scale, a_zp, path, n_threads):
    """The three kernels above in a row: y (m, n) from float32 rows x (m, k)."""
    m = x.shape[0]
    if m == 0:
        return
    q8_quantize_rows(qa[:m], a_scale[:m], a_zp[:m], x, n_threads)
    q8_gemm(acc[:m], qa[:m], bp, k, path, n_threads)
    q8_epilogue(y, acc[:m], a_scale[:m], a_zp[:m], w_scale, w_colsum, bias, act, alpha, n_threads)


class Q8Plan:
    """A stack of quantized dense layers (twin of _core.Q8Plan / fastnn_q8_mlp_forward)."""

    def __init__(self, layers):
        if not layers:
            raise ValueError("Q8Plan: no layers")
        self.layers = [tuple(layer)[:8] + ((tuple(layer) + (None,))[8],) for layer in layers]
        for packed, w_scale, colsum, bias, k, n, act, alpha, sparse in self.layers:
            if sparse is not None:
                _check_csr(n, k, k, *sparse[:3])
        self.n_inputs, self.n_outputs = self.layers[0][4], self.layers[-1][5]

    def forward(self, y, x, path, n_threads):
        m = x.shape[0]
        if x.shape[1] != self.n_inputs or y.shape != (m, self.n_outputs):
            raise ValueError("Q8Plan.forward: shapes do not fit the layers")
        chunk = 256  # as fastnn_q8_mlp_forward: a layer's sparse copy is used for chunks of its range of rows
        for start in range(0, m, chunk):
            xc = x[start:start + chunk]
            mc = xc.shape[0]
            for i, (packed, w_scale, colsum, bias, k, n, act, alpha, sparse) in enumerate(self.layers):
                out = y[start:start + mc] if i == len(self.layers) - 1 else np.empty((mc, n), np.float32)
                scratch = (np.empty((mc, lda_for(k)), np.uint8), np.empty((mc, n), np.int32),
                           np.empty(mc, np.float32), np.empty(mc, np.int32))
                if sparse is not None and sparse[3] <= mc <= sparse[4]:
                    q8_sparse_dense_forward(out, xc, *sparse[:3], w_scale, colsum, bias, act, alpha, *scratch,
                                            n_threads)
                else:
                    q8_dense_forward(out, xc, packed, w_scale, colsum, bias, k, act, alpha, *scratch, path,
                                     n_threads)
                xc = out
