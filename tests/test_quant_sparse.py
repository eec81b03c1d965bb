"""Sparse int8 inference: the CSR kernel's int32 sums against an independent int64 matmul and the dense GEMM on
every path, and QuantizedNetwork's choice between the kernels (outputs bit-identical either way, files and
pickles rebuild the sparse copies)."""
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import _backend, quantized
from fastnn._py import quant as pq

C_PATHS = quantized.available_paths(_backend.get("c")) if _backend.c_available() else []
SHAPES = [(1, 1, 1), (1, 3, 2), (1, 784, 256), (2, 5, 17), (3, 4, 16), (4, 64, 15), (5, 33, 31), (7, 65, 33),
          (16, 128, 48), (17, 129, 47), (33, 257, 65), (1, 1000, 3), (70, 31, 1), (0, 9, 4)]
SPARSITIES = [0.0, 0.5, 0.95, 1.0]


def _reference(a, q):
    return a[:, :q.shape[0]].astype(np.int64) @ q.astype(np.int64)


def _naive_csr(q):
    """Output by output, the nonzero weights and their input indices: the layout's definition."""
    data, indices, indptr = [], [], [0]
    for o in range(q.shape[1]):
        for kk in range(q.shape[0]):
            if q[kk, o] != 0:
                data.append(q[kk, o])
                indices.append(kk)
        indptr.append(len(data))
    return np.array(data, np.int8), np.array(indices, np.int32), np.array(indptr, np.int64)


def _sparse_q(rng, k, n, sparsity):
    q = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
    q[rng.random((k, n)) < sparsity] = 0
    if n > 2:
        q[:, 1] = 0  # an output with no weights
    if k > 2:
        q[2, :] = 0  # an input no output uses
    return q


def test_csr_layout(rng):
    for k, n, s in [(1, 1, 0.0), (5, 17, 0.5), (64, 16, 0.9), (13, 7, 1.0)]:
        q = _sparse_q(rng, k, n, s)
        for got, want in zip(pq.q8_csr(q), _naive_csr(q)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_sparse_gemm_equals_dense(kernels, backend, rng, m, k, n):
    for s in SPARSITIES:
        q = _sparse_q(rng, k, n, s)
        a = rng.integers(0, 256, size=(m, pq.lda_for(k) + m % 3), dtype=np.uint8)
        want = _reference(a, q)
        csr = pq.q8_csr(q)
        for threads in (1, 2, 3):
            for at in (None, np.full(kernels.q8_sparse_scratch_bytes(m, k), 77, np.uint8)):
                c = np.full((m, n), -12345, dtype=np.int32)
                kernels.q8_sparse_gemm(c, a, *csr, k, threads, at)
                np.testing.assert_array_equal(c, want, err_msg=f"sparsity {s}, {threads} threads, at {at is None}")
        packed, _ = pq.q8_pack(q)
        for name in C_PATHS if backend == "c" else ["portable"]:
            dense = np.full((m, n), -1, dtype=np.int32)
            kernels.q8_gemm(dense, a, packed, k, pq.PATHS[name], 2)
            np.testing.assert_array_equal(c, dense, err_msg=f"path {name}")


def test_sparse_gemm_extremes(kernels):
    """The largest k with 255 x (+-127) in every product: int32 stays exact, as in the dense GEMM."""
    k = pq.MAX_K
    q = np.empty((k, 2), np.int8)
    q[:, 0], q[:, 1] = 127, -127
    q[::7, 0] = 0
    for m in (5, 17):
        a = np.full((m, pq.lda_for(k)), 255, np.uint8)
        c = np.zeros((m, 2), np.int32)
        kernels.q8_sparse_gemm(c, a, *pq.q8_csr(q), k, 2, np.empty(kernels.q8_sparse_scratch_bytes(m, k), np.uint8))
        np.testing.assert_array_equal(c, _reference(a, q))


def test_sparse_gemm_refuses_bad_csr(kernels, rng):
    q = _sparse_q(rng, 9, 4, 0.5)
    data, indices, indptr = pq.q8_csr(q)
    a = np.zeros((2, pq.lda_for(9)), np.uint8)
    c = np.zeros((2, 4), np.int32)
    bad_index = indices.copy()
    bad_index[-1] = 9
    for args in [(data, bad_index, indptr), (data, indices, indptr[:-1]), (data[:-1], indices, indptr),
                 (data, indices, indptr[::-1].copy())]:
        with pytest.raises(ValueError):
            kernels.q8_sparse_gemm(c, a, *args, 9, 1)


def test_sparse_dense_forward_equals_dense(kernels, backend, rng):
    for m, k, n in [(1, 784, 256), (6, 33, 17), (40, 128, 10), (300, 64, 9)]:
        q = _sparse_q(rng, k, n, 0.9)
        packed, colsum = pq.q8_pack(q)
        scale = rng.random(n).astype(np.float32) / 100
        bias = rng.normal(size=n).astype(np.float32)
        x = rng.normal(size=(m, k)).astype(np.float32)
        for act in (0, 1, 5):  # linear, relu, the last code the epilogue takes
            outs = []
            for sparse in (False, True):
                y = np.full((m, n), np.nan, np.float32)
                scratch = (np.empty((m, pq.lda_for(k)), np.uint8), np.empty((m, n), np.int32),
                           np.empty(m, np.float32), np.empty(m, np.int32))
                if sparse:
                    kernels.q8_sparse_dense_forward(y, x, *pq.q8_csr(q), scale, colsum, bias, act, 0.1, *scratch, 2,
                                                    np.empty(kernels.q8_sparse_scratch_bytes(m, k), np.uint8))
                else:
                    kernels.q8_dense_forward(y, x, packed, scale, colsum, bias, k, act, 0.1, *scratch,
                                             kernels.q8_best_path(), 2)
                outs.append(y)
            np.testing.assert_array_equal(outs[1], outs[0])
        x[0, 0] = np.nan
        with pytest.raises(ValueError):
            kernels.q8_sparse_dense_forward(np.empty((m, n), np.float32), x, *pq.q8_csr(q), scale, colsum, bias,
                                            0, 0.0, np.empty((m, pq.lda_for(k)), np.uint8),
                                            np.empty((m, n), np.int32), np.empty(m, np.float32),
                                            np.empty(m, np.int32), 1)


# ---------------------------------------------------------------------------------------------- networks
def _pruned(backend, amount=0.995, sizes=(784, 256, 128, 10)):
    net = fastnn.Network(list(sizes), loss="cross_entropy", seed=0, backend=backend)
    net.prune(amount, scope="layer")
    return net


def _outputs(qnet, inputs):
    return [qnet.predict(x) for x in inputs]


def test_sparse_and_dense_predict_the_same_bits(backend, rng):
    qnet = _pruned(backend).quantize()
    inputs = [rng.random(784).astype(np.float32)] + [rng.random((m, 784)).astype(np.float32)
                                                     for m in (1, 3, 40, 300)]
    results = {}
    for mode in ("never", "always", "auto"):
        qnet.sparse_kernel = mode
        results[mode] = _outputs(qnet, inputs)
    assert qnet.sparse_layers() == {0: (1, 256), 1: (1, 256), 2: (1, 256)}  # 99.5% zero: every layer, any batch
    qnet.sparse_kernel = "never"
    assert qnet.sparse_layers() == {}
    for mode in ("always", "auto"):
        for got, want in zip(results[mode], results["never"]):
            np.testing.assert_array_equal(got, want, err_msg=mode)
    for threads in (1, 2):
        qnet.sparse_kernel, qnet.n_threads = "always", threads
        np.testing.assert_array_equal(qnet.predict(inputs[-1]), results["never"][-1])
    with pytest.raises(ValueError):
        qnet.sparse_kernel = "sometimes"


def test_rule_leaves_dense_networks_dense(backend):
    assert fastnn.Network([20, 8, 3], loss="mse", seed=0, backend=backend).quantize().sparse_layers() == {}
    assert quantized.q8_sparse_batches(0.5) is None
    assert quantized.q8_sparse_batches(1.0) == (1, quantized.CHUNK_ROWS)
    # a rule that leaves one sample dense but takes batches: predict's batches of either kind give the same bits
    low = min(t for t, _, _ in quantized.Q8_SPARSE_RULES)
    lo, hi = quantized.q8_sparse_batches(low)
    assert lo > 1 and quantized.q8_sparse_batches(low - 0.01) is None


def test_batch_only_rule_predicts_the_same_bits(backend, rng):
    low = min(t for t, _, _ in quantized.Q8_SPARSE_RULES)
    qnet = _pruned(backend, amount=low + 0.002).quantize()
    assert set(qnet.sparse_layers()) == {0, 1, 2}
    inputs = [rng.random(784).astype(np.float32)] + [rng.random((m, 784)).astype(np.float32) for m in (1, 3, 4, 40)]
    auto = _outputs(qnet, inputs)
    qnet.sparse_kernel = "never"
    for got, want in zip(auto, _outputs(qnet, inputs)):
        np.testing.assert_array_equal(got, want)


def test_conv_network_dense_tail(backend, rng):
    layers = [fastnn.Conv2D(3, 3, activation="relu"), fastnn.Flatten(), fastnn.Dense(40, activation="relu"),
              fastnn.Dense(5)]
    net = fastnn.Network(layers, input_shape=(1, 8, 8), loss="cross_entropy", seed=1, backend=backend)
    net.prune(0.995, scope="layer")
    qnet = net.quantize()
    X = rng.random((7, 1, 8, 8)).astype(np.float32)
    assert set(qnet.sparse_layers()) == {2, 3}  # Conv2D stays dense
    auto = qnet.predict(X)
    qnet.sparse_kernel = "never"
    np.testing.assert_array_equal(qnet.predict(X), auto)


def test_files_and_pickles_rebuild_the_sparse_copies(backend, rng, tmp_path):
    qnet = _pruned(backend).quantize()
    X = rng.random((5, 784)).astype(np.float32)
    want = qnet.predict(X)
    path = tmp_path / "q.fastnn"
    qnet.save(path)
    back = fastnn.load(path, backend=backend)
    assert back.sparse_layers() == qnet.sparse_layers() != {}
    np.testing.assert_array_equal(back.predict(X), want)
    qnet.sparse_kernel = "always"
    clone = pickle.loads(pickle.dumps(qnet))
    assert clone.sparse_kernel == "always" and clone.sparse_layers() == qnet.sparse_layers()
    np.testing.assert_array_equal(clone.predict(X), want)
    for a, b in zip(clone._qlayers, qnet._qlayers):
        for x, y in zip(a.csr, b.csr):
            np.testing.assert_array_equal(x, y)
