"""fastnn's own matrix product (csrc/gemm.c) and the engine per shape.

- The own packed kernels against the plain loops (the C definition) and against an independent float64 NumPy
  product, on a grid of shapes that covers one row, one column, odd sizes, every register-block remainder of
  every instruction set the machine has (MR 12/6/4 rows, NR 2 vectors), k across the cut into blocks, in
  float32 and float64, with every transpose, bias, accumulation and both epilogues.
- Results do not depend on the thread count or, for the FMA instruction sets (AVX-512, AVX2), on which one runs:
  bitwise, since every element is the same chain of fused multiply-adds wherever its tile falls.
- The NumPy twin gives the same numbers; bad arguments raise; the engine table records, forces and forgets.
"""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn import _backend, _gemm

c_only = pytest.mark.skipif(not _backend.c_available(), reason="the C extension is not built")
core = _backend._core

ENGINE = {"loops": 1, "own": 2, "blas": 3}
# sizes around each tile edge: MR = 12, 6, 4 rows; NR = 32, 16, 8 (float) / 16, 8, 4 (double) columns
M_SIZES = [1, 2, 5, 6, 7, 11, 12, 13, 25, 37]
N_SIZES = [1, 3, 8, 9, 16, 17, 31, 32, 33, 65]
K_SIZES = [1, 7, 200, 201, 401, 513]


def isas():
    """Every instruction set this machine and build can run."""
    return list(range(core.gemm_isa(best=True) + 1))


@pytest.fixture
def restore_isa():
    yield
    core.set_gemm_isa(core.gemm_isa(best=True))


def reference(A, B, trans_a, trans_b, bias=None, C0=None):
    """The product in float64 through einsum (NumPy's own loops, no BLAS)."""
    a = (A.T if trans_a else A).astype(np.float64)
    b = (B.T if trans_b else B).astype(np.float64)
    out = np.einsum("ik,kj->ij", a, b)
    if bias is not None:
        out += bias
    elif C0 is not None:
        out += C0
    return out


def operands(rng, m, n, k, trans_a, trans_b, dtype):
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return A, B


def tol(dtype, k):
    eps = np.finfo(dtype).eps
    return 8 * eps * np.sqrt(max(k, 1))


@c_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_own_kernels_against_loops_and_numpy(dtype, trans, restore_isa):
    trans_a, trans_b = trans
    rng = np.random.default_rng(1)
    shapes = [(m, n, k) for m in M_SIZES for n in N_SIZES for k in (1, 7, 201)]
    shapes += [(13, 33, k) for k in K_SIZES] + [(64, 100, 785), (130, 70, 1030)]
    for m, n, k in shapes:
        A, B = operands(rng, m, n, k, trans_a, trans_b, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        want = reference(A, B, trans_a, trans_b, bias)
        loops = np.full((m, n), np.nan, dtype)
        core.gemm(ENGINE["loops"], trans_a, trans_b, A, B, loops, bias=bias)
        scale = np.abs(want).max() + 1
        assert np.abs(loops - want).max() <= tol(dtype, k) * scale * 4
        for isa in isas():
            core.set_gemm_isa(isa)
            got = np.full((m, n), np.nan, dtype)
            core.gemm(ENGINE["own"], trans_a, trans_b, A, B, got, bias=bias)
            err = np.abs(got - want).max()
            assert err <= tol(dtype, k) * scale * 4, (m, n, k, isa, err)


@c_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_across_threads_and_fma_instruction_sets(dtype, restore_isa):
    rng = np.random.default_rng(2)
    fma_isas = [i for i in isas() if i >= 2]
    if not fma_isas:
        pytest.skip("this CPU has neither AVX2+FMA nor AVX-512")
    for m, n, k, trans_a, trans_b in [(128, 256, 784, 0, 0), (784, 256, 128, 1, 0), (128, 784, 256, 0, 1),
                                      (37, 1000, 401, 0, 0), (300, 45, 1100, 1, 1), (1, 500, 300, 0, 0)]:
        A, B = operands(rng, m, n, k, trans_a, trans_b, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        results = []
        for isa in fma_isas:
            core.set_gemm_isa(isa)
            for threads in (1, 2, 3, 7):
                C = np.full((m, n), np.nan, dtype)
                core.gemm(ENGINE["own"], trans_a, trans_b, A, B, C, bias=bias, n_threads=threads)
                results.append(C)
        for C in results[1:]:
            assert np.array_equal(C, results[0]), (m, n, k)


@c_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_start_values_and_epilogues(dtype):
    """accumulate (C is the start), zeros, k = 0, the forward activations, and the derivative mask, each against
    NumPy and the fastnn activation kernels."""
    rng = np.random.default_rng(3)
    m, n, k = 29, 45, 67
    A, B = operands(rng, m, n, k, 0, 0, dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    C = C0.copy()
    core.gemm(ENGINE["own"], 0, 0, A, B, C, accumulate=True)
    assert np.allclose(C, reference(A, B, 0, 0, C0=C0), rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)
    C = np.full((m, n), np.nan, dtype)
    core.gemm(ENGINE["own"], 0, 0, A[:, :0].copy(), B[:0].copy(), C)  # k = 0: zeros
    assert np.array_equal(C, np.zeros((m, n), dtype))
    below = rng.uniform(-1, 1, (m, n)).astype(dtype)
    for act, alpha in [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.1), (6, 0.0)]:
        z = np.full((m, n), np.nan, dtype)
        core.gemm(ENGINE["own"], 0, 0, A, B, z)
        expected = z.copy()
        core.act_forward(expected, act, alpha, 1)
        got = np.full((m, n), np.nan, dtype)
        core.gemm(ENGINE["own"], 0, 0, A, B, got, act=act, alpha=alpha)
        assert np.array_equal(got, expected), act
        masked = np.empty_like(z)
        core.act_backward(masked, z, below, act, alpha, 1)
        got = np.full((m, n), np.nan, dtype)
        core.gemm(ENGINE["own"], 0, 0, A, B, got, act=act, alpha=alpha, deriv_of=below)
        # the same operations; 1 - a * a may be contracted into one fused multiply-add in one place only
        eps = np.finfo(dtype).eps
        assert np.allclose(got, masked, rtol=4 * eps, atol=4 * eps * np.abs(masked).max()), act


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_twins_agree(kernels, dtype):
    rng = np.random.default_rng(4)
    for trans_a, trans_b in [(0, 0), (1, 0), (0, 1)]:
        A, B = operands(rng, 40, 70, 90, trans_a, trans_b, dtype)
        bias = rng.standard_normal(70).astype(dtype)
        below = rng.uniform(-1, 1, (40, 70)).astype(dtype)
        C = np.full((40, 70), np.nan, dtype)
        kernels.gemm(0, trans_a, trans_b, A, B, C, bias=bias, act=2)
        assert np.allclose(C, np.tanh(reference(A, B, trans_a, trans_b, bias)), rtol=1e-5, atol=1e-5)
        kernels.gemm(0, trans_a, trans_b, A, B, C, act=3, deriv_of=below)
        want = reference(A, B, trans_a, trans_b) * (below > 0)
        assert np.allclose(C, want, rtol=1e-4, atol=1e-4)


def test_bad_arguments(kernels):
    A = np.ones((3, 4))
    B = np.ones((4, 5))
    with pytest.raises(ValueError):
        kernels.gemm(0, 0, 0, A, B, np.empty((3, 6)))
    with pytest.raises(ValueError):
        kernels.gemm(0, 1, 0, A, B, np.empty((3, 5)))
    with pytest.raises(ValueError):
        kernels.gemm(9, 0, 0, A, B, np.empty((3, 5)))
    with pytest.raises(ValueError):  # the derivative mask of softmax is not element-wise
        kernels.gemm(0, 0, 0, A, B, np.empty((3, 5)), act=5, deriv_of=np.ones((3, 5)))


@c_only
def test_instruction_set_choice():
    best = core.gemm_isa(best=True)
    with pytest.raises(ValueError):
        core.set_gemm_isa(best + 1)
    with pytest.raises(ValueError):
        core.set_gemm_isa(-1)
    assert _gemm.isa() in _gemm.ISAS


@c_only
def test_engine_table():
    shape = (False, False, False, 97, 89, 83)
    try:
        assert core.gemm_recorded(*shape) == 0
        core.gemm_record(*shape, ENGINE["loops"])
        assert core.gemm_recorded(*shape) == ENGINE["loops"]
        assert core.gemm_choose(*shape) == ENGINE["loops"]
        core.gemm_record(*shape, ENGINE["own"])  # a shape seen before: its engine changes
        assert core.gemm_choose(*shape) == ENGINE["own"]
        other = (True,) + shape[1:]  # the other dtype is another shape
        assert core.gemm_recorded(*other) == 0
        core.gemm_force(ENGINE["loops"])
        assert core.gemm_choose(*other) == ENGINE["loops"]
        core.gemm_force(0)
        with pytest.raises(ValueError):
            core.gemm_record(*shape, 7)
        with pytest.raises(ValueError):
            core.gemm_force(7)
    finally:
        core.gemm_force(0)
        _gemm.forget()
    assert core.gemm_recorded(*shape) == 0


@c_only
def test_tune_records_a_choice_per_shape():
    try:
        chosen = _gemm.tune([(np.float32, 0, 0, 64, 96, 128), (np.float64, 1, 0, 96, 64, 32)], threads=1,
                            budget=0.0005)
        assert set(chosen.values()) <= {"own", "blas"}
        for (dtype, ta, tb, m, n, k), engine in chosen.items():
            assert _gemm.engine_for(dtype, ta, tb, m, n, k) == engine
            if core.blas_enabled():  # else nothing was timed: the default stands
                assert core.gemm_recorded(dtype == np.float64, ta, tb, m, n, k) == ENGINE[engine]
    finally:
        _gemm.forget()


@c_only
def test_more_shapes_than_the_table_holds():
    """A server predicting at ever new batch sizes must not fail once the C table is full: later shapes keep the
    default engine, and the table keeps what it recorded."""
    try:
        _gemm.forget()
        for i in range(_gemm.TABLE_SIZE):
            core.gemm_record(False, False, False, 1000 + i, 7, 5, ENGINE["loops"])
        with pytest.raises(MemoryError):
            core.gemm_record(False, False, False, 5000, 7, 5, ENGINE["loops"])
        chosen = _gemm.tune([(np.float32, 0, 0, 33, 40, 50)], threads=1, budget=0.0002)
        assert list(chosen.values()) == [_gemm.engine_for(np.float32, 0, 0, 33, 40, 50)]
        assert core.gemm_recorded(False, False, False, 1000, 7, 5) == ENGINE["loops"]
        net = fastnn.Network([50, 40, 3], loss="cross_entropy", seed=0)
        X = np.random.default_rng(0).standard_normal((33, 50)).astype(np.float32)
        assert np.isfinite(net.predict(X)).all()
    finally:
        _gemm.forget()


@c_only
def test_many_python_threads_share_the_packing_space():
    """More callers at once than slots were reserved for: each waits for a slot, none gets a wrong answer."""
    rng = np.random.default_rng(5)
    A, B = operands(rng, 200, 300, 400, 0, 0, np.float32)
    want = np.full((200, 300), np.nan, np.float32)
    core.gemm(ENGINE["own"], 0, 0, A, B, want)
    bad = []

    def work():
        for _ in range(5):
            C = np.full((200, 300), np.nan, np.float32)
            core.gemm(ENGINE["own"], 0, 0, A, B, C, n_threads=2)
            if not np.array_equal(C, want):
                bad.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not bad


@c_only
@pytest.mark.parametrize("engine", ["own", "loops", "blas"])
def test_forced_engine_trains_the_same_network(engine, tmp_path):
    """FASTNN_GEMM forces one engine at import: every engine trains a network to the same weights (within
    rounding) as the NumPy backend does."""
    script = ("import json, numpy as np, fastnn\n"
              "rng = np.random.default_rng(0)\n"
              "X = rng.standard_normal((300, 40)); y = rng.integers(0, 3, 300)\n"
              "out = {}\n"
              "for backend in ('c', 'python'):\n"
              "    net = fastnn.Network([40, 64, 48, 3], activations='tanh', loss='cross_entropy', dtype='float64', seed=1, backend=backend)\n"
              "    net.fit(X, y, epochs=3, batch_size=100, optimizer='sgd', learning_rate=0.05, shuffle=False)\n"
              "    out[backend] = np.concatenate([w.ravel() for w in net.weights]).tolist()\n"
              "print(json.dumps(out))\n")
    # the fastnn under test (installed, or the source tree with its built extension), not the current folder's
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ, FASTNN_GEMM=engine, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert np.allclose(out["c"], out["python"], rtol=1e-9, atol=1e-10)


@c_only
def test_network_results_do_not_depend_on_threads():
    """With the own kernels a whole training run is bitwise the same on 1 and 2 threads."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((512, 300)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    flat = []
    for threads in (1, 2):
        net = fastnn.Network([300, 256, 128, 10], loss='cross_entropy', dtype=np.float32, seed=3)
        net.n_threads = threads
        net.fit(X, y, epochs=2, batch_size=128, optimizer="adam", learning_rate=1e-3, shuffle=False)
        flat.append(np.concatenate([w.ravel() for w in net.weights + net.biases]))
    assert np.array_equal(flat[0], flat[1])
