"""Every C kernel (fastnn._core) against its NumPy twin (fastnn/_py), against independent float64 references
written out here (explicit formulas, textbook optimizers, central finite differences), across thread counts,
aliasing contracts and error paths.

Tolerances. RTOL is 1e-5 for float32 (about 80 ulp) and 1e-12 for float64 (about 4500 ulp). The C kernels and
NumPy (BLAS, pairwise sums) add the same terms in different orders, so a result that is a sum of k terms carries
a rounding error of roughly eps * sqrt(k) * max|term| (random-walk growth of the per-addition errors), which does
not shrink with the result: an element that comes out near zero through cancellation has a large *relative*
error. Each comparison therefore also gets an absolute tolerance  RTOL * sqrt(k) * max|term|  (see sum_atol),
with the terms named where it is used. Since RTOL is ~80x (float32) / ~4500x (float64) the unit roundoff, this
leaves a wide safety margin over the expected error, yet it is orders of magnitude below what a real bug (a
wrong index, a missing bias, a wrong derivative, a factor 2) changes: such bugs move results by O(1) of their
scale.

No expected value below is copied from the kernels' output: references are computed in the test.
"""
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from fastnn._codes import (BINARY_CROSS_ENTROPY, CROSS_ENTROPY, LEAKY_RELU, LEAKY_RELU_SLOPE, LINEAR, MSE, RELU,
                           SIGMOID, SOFTMAX, TANH)
import blas_modes
from references import central_differences, ref_act, ref_act_backward

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
# 1 is the serial path; 2 and 3 (uneven chunks) open OpenMP regions where the work is large enough. More would
# only oversubscribe small CI machines.
THREADS = (1, 2, 3)
ALPHA = LEAKY_RELU_SLOPE  # 0.01

# (activation code, alpha); a second leaky slope catches a hard-coded alpha
ACT_CASES = [(LINEAR, ALPHA), (SIGMOID, ALPHA), (TANH, ALPHA), (RELU, ALPHA), (LEAKY_RELU, ALPHA),
             (LEAKY_RELU, 0.3), (SOFTMAX, ALPHA)]
ACT_NAMES = {LINEAR: "linear", SIGMOID: "sigmoid", TANH: "tanh", RELU: "relu", LEAKY_RELU: "leaky_relu",
             SOFTMAX: "softmax"}
ACT_IDS = [f"{ACT_NAMES[a]}-{al}" if a == LEAKY_RELU else ACT_NAMES[a] for a, al in ACT_CASES]


def _random_shapes(count, dims, hi, seed):
    r = np.random.default_rng(seed)
    return [tuple(int(v) for v in r.integers(2, hi, size=dims)) for _ in range(count)]


# A kernel opens an OpenMP region only for at least 2 * FASTNN_MIN_WORK_PER_THREAD (csrc/fastnn_internal.h, now
# 1 << 21) operations; each "large" case below is sized past that for its kernel (the work each kernel counts is
# in LARGE_WORK) and test_large_cases_open_an_openmp_region checks this against the header, so the thread-count
# comparisons really compare a serial run with threaded ones.
LARGE_DENSE = (300, 257, 129)       # n d_in d_out ~ 10M multiply-adds: rows (own loops) or bands of rows (split
                                    # BLAS: more samples than outputs) over several threads
LARGE_DENSE_WIDE = (96, 300, 401)   # ~ 11.5M: split BLAS cuts C into bands of columns (outputs >= samples),
                                    # the last one partial
LARGE_DENSE_BLAS = (4100, 7, 129)   # BLAS path: the activation pass after the gemm (8 n d_out) is threaded
LARGE_BACKWARD = (16411, 3, 257)    # db's column sums (n d_out) and dW's rows (n d_in d_out) are threaded
LARGE_ACT_FWD = (4099, 129)         # act_forward (8 n d)
LARGE_ACT = (8209, 129)             # act_backward (4 n d)
LARGE_SGD = 1_100_003               # 4 n
LARGE_ADAM = 600_011                # 8 n
LARGE_FINITE = 4_200_013            # all_finite (n)
BLAS_MIN_WORK = 1 << 15  # FASTNN_BLAS_MIN_WORK: smaller products (and single samples) never go to BLAS
LARGE_WORK = {  # kernel: (work it counts, items it splits)
    "dense_forward (own loops)": (LARGE_DENSE[0] * LARGE_DENSE[1] * LARGE_DENSE[2], LARGE_DENSE[0]),
    "dense_forward (BLAS, activation)": (8 * LARGE_DENSE_BLAS[0] * LARGE_DENSE_BLAS[2], LARGE_DENSE_BLAS[0]),
    "dense_backward dW": (LARGE_BACKWARD[0] * LARGE_BACKWARD[1] * LARGE_BACKWARD[2], LARGE_BACKWARD[1]),
    "dense_backward db": (LARGE_BACKWARD[0] * LARGE_BACKWARD[2], LARGE_BACKWARD[2]),
    "dense_backward dx": (LARGE_DENSE[0] * LARGE_DENSE[1] * LARGE_DENSE[2], LARGE_DENSE[0]),
    "act_forward": (8 * LARGE_ACT_FWD[0] * LARGE_ACT_FWD[1], LARGE_ACT_FWD[0]),
    "act_backward": (4 * LARGE_ACT[0] * LARGE_ACT[1], LARGE_ACT[0]),
    "sgd_step": (4 * LARGE_SGD, LARGE_SGD),
    "adam_step": (8 * LARGE_ADAM, LARGE_ADAM),
    "all_finite": (LARGE_FINITE, LARGE_FINITE),
}

# (n, d_in, d_out): one row, one column, one input, odd sizes, outputs narrower than one 32-column register tile
# (13), exactly two tiles (64), many tiles plus leftover columns (515), a few drawn at random, and the large ones.
# Products of >= BLAS_MIN_WORK multiply-adds with n > 1 go to BLAS when one is installed: those shapes run with
# BLAS (called whole, or split into one band of rows or columns per thread, a multiple of 16 wide but for the last)
# and with the kernels' own loops (the `blas_mode` fixture), the others with the own loops only.
DENSE_SHAPES = ([(1, 1, 1), (1, 7, 13), (7, 1, 13), (13, 33, 1), (7, 13, 33), (33, 7, 13), (5, 9, 64),
                 (9, 3, 515), (65, 33, 17), (131, 37, 29), LARGE_DENSE, LARGE_DENSE_WIDE, LARGE_DENSE_BLAS]
                + _random_shapes(3, 3, 40, seed=7))
BACKWARD_SHAPES = DENSE_SHAPES + [(1030, 5, 131), LARGE_BACKWARD]
LARGE_SHAPES = {LARGE_DENSE, LARGE_DENSE_WIDE, LARGE_DENSE_BLAS, LARGE_BACKWARD, LARGE_ACT_FWD, LARGE_ACT}
# The large shapes run (for time) the activations that take distinct threaded code: none (linear), an
# element-wise one without libm (relu, leaky with a non-default slope) and the row-wise softmax. sigmoid and
# tanh share the element-wise path and run on every small shape.
LARGE_ACT_CASES = [(LINEAR, ALPHA), (RELU, ALPHA), (LEAKY_RELU, 0.3), (SOFTMAX, ALPHA)]
# (n, d) for the element-wise kernels
ACT_SHAPES = [(1, 1), (1, 13), (13, 1), (7, 33), (300, 129)] + _random_shapes(2, 2, 40, seed=8)
LOSS_SHAPES = [(1, 1), (1, 13), (7, 1), (13, 7), (33, 13), (300, 129)]
# (loss code, target kind)
LOSS_CASES = [(MSE, "real"), (CROSS_ENTROPY, "onehot"), (CROSS_ENTROPY, "soft"), (BINARY_CROSS_ENTROPY, "prob"),
              (BINARY_CROSS_ENTROPY, "binary")]
LOSS_IDS = ["mse", "ce-onehot", "ce-soft", "bce-prob", "bce-binary"]
# flat parameter buffer sizes
SGD_SIZES = [1, 7, 33, 1001, LARGE_SGD]
ADAM_SIZES = [1, 13, 33, 1001, LARGE_ADAM]


def test_blas_split_switch(c_kernels):
    """FASTNN_BLAS_SPLIT=0 leaves SciPy's BLAS its own thread pool: fastnn then neither splits products nor sets
    SciPy's BLAS to one thread (checked in a fresh interpreter, since the choice is made at import)."""
    pytest.importorskip("threadpoolctl")
    if blas_modes.scipy_gemm() is None or os.environ.get("FASTNN_BLAS", "1") == "0":
        pytest.skip("no SciPy cython_blas, or FASTNN_BLAS=0")
    import subprocess
    import sys
    code = "import fastnn, fastnn._blas as b; print(b.SOURCE, b.SPLIT)"
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_BLAS_SPLIT", "FASTNN_BACKEND")}
    env["FASTNN_BLAS"] = "scipy"  # MKL, when installed, would be chosen first (tests/test_blas_mkl.py)
    default = subprocess.run([sys.executable, "-I", "-c", code], env=env, capture_output=True, text=True, check=True)
    pool = subprocess.run([sys.executable, "-I", "-c", code], env={**env, "FASTNN_BLAS_SPLIT": "0"},
                          capture_output=True, text=True, check=True)
    assert default.stdout.split() == ["scipy", "True"]
    assert pool.stdout.split() == ["scipy", "False"]


def test_blas_survives_the_import_self_test(c_kernels):
    """With SciPy present (and FASTNN_BLAS not 0) the C backend must have kept SciPy's gemm at import: fastnn/_blas.py
    drops it silently when its self-test finds the BLAS path of the dense kernels wrong."""
    if os.environ.get("FASTNN_BLAS", "1") == "0":
        pytest.skip("FASTNN_BLAS=0")
    gemm = blas_modes.scipy_gemm()
    if gemm is None or not hasattr(c_kernels, "set_blas"):
        pytest.skip("no SciPy cython_blas, or a build without a BLAS path")
    from fastnn import _blas
    if _blas.SOURCE is None:
        # tell a refused signature (ILP64 SciPy: legitimately no BLAS) from a failed self-test
        had = c_kernels.blas_enabled()
        try:
            c_kernels.set_blas(*gemm)
        except TypeError:
            pytest.skip("SciPy's gemm has a signature fastnn does not take")
        finally:
            if not had:
                c_kernels.set_blas(None, None)
    # MKL goes first when installed (tests/test_blas_mkl.py checks it); SciPy's gemm is the fallback
    assert _blas.SOURCE in ("scipy", "mkl"), "the BLAS self-test failed at import: the BLAS path is wrong"


def test_large_cases_open_an_openmp_region():
    """The large cases must reach the threshold at which the kernels use more than one thread."""
    header = Path(__file__).resolve().parents[1] / "csrc" / "fastnn_internal.h"
    if not header.exists():
        pytest.skip("not run from the source tree (csrc/ is absent)")
    m = re.search(r"#define\s+FASTNN_MIN_WORK_PER_THREAD\s+\(\(int64_t\)1\s*<<\s*(\d+)\)", header.read_text())
    assert m, "FASTNN_MIN_WORK_PER_THREAD not found in csrc/fastnn_internal.h: update this test"
    per_thread = 1 << int(m.group(1))
    m = re.search(r"#define\s+FASTNN_BLAS_MIN_WORK\s+\(\(int64_t\)1\s*<<\s*(\d+)\)", header.read_text())
    assert m and 1 << int(m.group(1)) == BLAS_MIN_WORK, "FASTNN_BLAS_MIN_WORK changed: update BLAS_MIN_WORK"
    for kernel, (work, items) in LARGE_WORK.items():
        assert min(work // per_thread, items) >= 2, f"{kernel}: the large case runs on one thread only"


@pytest.fixture
def blas_mode(request, c_kernels):
    """Runs a dense test in one of the BLAS modes of tests/blas_modes.py (request.param), restored afterwards."""
    yield from blas_modes.installed(c_kernels, request.param)


def shape_id(shape):
    return "x".join(str(s) for s in shape)


def act_params(shapes):
    """pytest params (act, alpha, shape) for the activation kernels."""
    return [pytest.param(act, alpha, shape, id=f"{act_id}-{shape_id(shape)}")
            for (act, alpha), act_id in zip(ACT_CASES, ACT_IDS)
            for shape in shapes if shape not in LARGE_SHAPES or (act, alpha) in LARGE_ACT_CASES]


def dense_params(with_act):
    """pytest params (blas_mode, shape[, act, alpha]) for the dense tests; each large shape only in the mode
    whose threaded code it is sized for."""
    params = []
    for shape in (DENSE_SHAPES if with_act else BACKWARD_SHAPES):
        n, d_in, d_out = shape
        takes_blas = n > 1 and n * d_in * d_out >= BLAS_MIN_WORK
        for mode in ("blas", "blas-split", "own-loops") if takes_blas else ("own-loops",):
            if shape == LARGE_DENSE_BLAS and (mode == "own-loops" or not with_act):
                continue
            if shape == LARGE_BACKWARD and mode != "own-loops":
                continue
            if not with_act:
                params.append(pytest.param(mode, shape, id=f"{mode}-{shape_id(shape)}"))
                continue
            for (act, alpha), act_id in zip(ACT_CASES, ACT_IDS):
                if shape not in LARGE_SHAPES or (act, alpha) in LARGE_ACT_CASES:
                    params.append(pytest.param(mode, shape, act, alpha, id=f"{act_id}-{mode}-{shape_id(shape)}"))
    return params


def rtol_of(dtype):
    return RTOL[np.dtype(dtype)]


def sum_atol(dtype, k, max_term):
    """Absolute tolerance for a result summed from k terms of magnitude <= max_term (see the module docstring)."""
    return rtol_of(dtype) * math.sqrt(max(k, 1)) * max_term


def assert_close(actual, desired, dtype, atol):
    """|actual - desired| <= atol + RTOL * |desired| elementwise (np.testing.assert_allclose, with a fast path for
    the large arrays: the full report is only built on failure)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    rtol = rtol_of(dtype)
    if actual.shape == desired.shape and np.all(np.abs(actual - desired) <= atol + rtol * np.abs(desired)):
        return
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


def same_for_all_threads(run, exact=True):
    """run(n_threads) -> array or tuple of arrays; asserts the results are bit-identical for every thread count
    in THREADS (exact=False: equal to within RTOL of the largest magnitude, for products that the BLAS computes in
    one band per thread: OpenBLAS picks its kernels by the shape of each call, so a float64 sum may round
    differently in its last bits) and returns the one of the first."""
    results = [run(nt) for nt in THREADS]
    first = results[0] if isinstance(results[0], tuple) else (results[0],)
    for nt, res in zip(THREADS[1:], results[1:]):
        res = res if isinstance(res, tuple) else (res,)
        for a, b in zip(first, res):
            if exact or a is None:
                assert np.array_equal(a, b, equal_nan=True), f"result with n_threads={nt} differs from n_threads=1"
            else:
                scale = max(1.0, float(np.abs(a).max()))
                assert_close(b, a, a.dtype, rtol_of(a.dtype) * scale)
    return results[0]


# ---------------------------------------------------------------------------------------------------------------
# Independent float64 references, written out here (the activations' are in tests/references.py)
# ---------------------------------------------------------------------------------------------------------------

def ref_loss(out, target, kind, weights=None):
    """Mean loss in float64 from the textbook definitions (not the fused forms of the kernels); weights (n)
    multiply each sample's loss, the mean staying over n (csrc/fastnn.h)."""
    z = np.asarray(out, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    n, d = z.shape
    if kind == MSE:
        terms, count = (z - t) ** 2, n * d
    elif kind == CROSS_ENTROPY:
        terms, count = -t * np.log(ref_act(z, SOFTMAX, 0)), n
    elif kind == BINARY_CROSS_ENTROPY:
        s = 1.0 / (1.0 + np.exp(-z))
        terms, count = -(t * np.log(s) + (1 - t) * np.log1p(-s)), n * d
    else:
        raise AssertionError(kind)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(np.sum(w * terms.sum(axis=1)) / count)


def ref_loss_grad(out, target, kind, weights=None):
    """d(mean loss)/d(out) in float64, written out (for the fused losses: w.r.t. the logits)."""
    z = np.asarray(out, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    n, d = z.shape
    if kind == MSE:
        g = 2 * (z - t) / (n * d)
    elif kind == CROSS_ENTROPY:
        g = (ref_act(z, SOFTMAX, 0) * t.sum(axis=1, keepdims=True) - t) / n
    else:
        g = (1 / (1 + np.exp(-z)) - t) / (n * d)
    return g if weights is None else g * np.asarray(weights, dtype=np.float64)[:, None]


def call_loss(kernels, grad, out, target, kind, n_threads, weights=None):
    """kernels.loss, passing sample weights only when there are some."""
    if weights is None:
        return kernels.loss(grad, out, target, kind, n_threads)
    return kernels.loss(grad, out, target, kind, n_threads, weights=weights)


# ---------------------------------------------------------------------------------------------------------------
# Input generators
# ---------------------------------------------------------------------------------------------------------------

def dense_inputs(rng, dtype, n, d_in, d_out):
    x = rng.standard_normal((n, d_in)).astype(dtype)
    W = (rng.standard_normal((d_in, d_out)) / math.sqrt(d_in)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)  # O(1) so a dropped bias is visible
    return x, W, b


def make_target(rng, dtype, kind, n, d):
    if kind == "real":
        return rng.standard_normal((n, d)).astype(dtype)
    if kind == "onehot":
        t = np.zeros((n, d), dtype)
        t[np.arange(n), rng.integers(0, d, size=n)] = 1
        return t
    if kind == "soft":
        return rng.dirichlet(np.ones(d), size=n).astype(dtype)
    if kind == "prob":
        return rng.uniform(0, 1, size=(n, d)).astype(dtype)
    if kind == "binary":
        return rng.integers(0, 2, size=(n, d)).astype(dtype)
    raise AssertionError(kind)


def act_output(rng, dtype, act, alpha, n, d):
    """A valid activation output a = f(z) (what act_backward receives), computed by the float64 reference."""
    z = 2.0 * rng.standard_normal((n, d))
    return ref_act(z, act, alpha).astype(dtype)


# ---------------------------------------------------------------------------------------------------------------
# dense_forward / dense_forward_single
# ---------------------------------------------------------------------------------------------------------------

def dense_forward_atol(dtype, x, W, b):
    # y = b + sum_p x_p W_p: d_in + 1 terms, each at most max|x| max|W| (or max|b|). Every activation is
    # 1-Lipschitz, and a shift of every logit by at most e moves each softmax output by at most ~2e, hence 2x.
    max_term = max(float(np.abs(x).max()) * float(np.abs(W).max()), float(np.abs(b).max()))
    return 2 * sum_atol(dtype, W.shape[0] + 1, max_term)


@pytest.mark.parametrize("blas_mode,shape,act,alpha", dense_params(True), indirect=["blas_mode"])
def test_dense_forward(c_kernels, py_kernels, dtype, rng, shape, act, alpha, blas_mode):
    n, d_in, d_out = shape
    x, W, b = dense_inputs(rng, dtype, n, d_in, d_out)

    def c_run(nt):
        y = np.full((n, d_out), np.nan, dtype)  # NaN: every element must be overwritten
        c_kernels.dense_forward(y, x, W, b, act, alpha, nt)
        return y

    y_c = same_for_all_threads(c_run, exact=blas_mode != "blas-split")
    y_py = np.full((n, d_out), np.nan, dtype)
    py_kernels.dense_forward(y_py, x, W, b, act, alpha, 1)
    atol = dense_forward_atol(dtype, x, W, b)
    assert y_c.dtype == dtype
    assert_close(y_c, y_py, dtype, atol)

    # independent: exact float64 x @ W + b of the same (upcast) inputs, activation written out above
    z = x.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    assert_close(y_c, ref_act(z, act, alpha), dtype, atol)
    if act == SOFTMAX:
        # the rows are normalised: d values in [0, 1] each with a few ulp of relative error
        np.testing.assert_allclose(y_c.astype(np.float64).sum(axis=1), 1.0, rtol=0, atol=rtol_of(dtype))
        assert np.all(y_c >= 0)


@pytest.mark.parametrize("blas_mode,shape,act,alpha", dense_params(True), indirect=["blas_mode"])
def test_dense_forward_single(c_kernels, py_kernels, dtype, rng, shape, act, alpha, blas_mode):
    n, d_in, d_out = shape
    n = min(n, 6)  # a few samples are enough here; 6 rows use both the 4-row block and the remainder path
    x, W, b = dense_inputs(rng, dtype, n, d_in, d_out)
    y_batch = np.empty((n, d_out), dtype)
    c_kernels.dense_forward(y_batch, x, W, b, act, alpha, 1)
    atol = dense_forward_atol(dtype, x, W, b)
    for i in range(n):
        xi = np.ascontiguousarray(x[i])
        y_c = np.full(d_out, np.nan, dtype)
        c_kernels.dense_forward_single(y_c, xi, W, b, act, alpha)
        y_py = np.full(d_out, np.nan, dtype)
        py_kernels.dense_forward_single(y_py, xi, W, b, act, alpha)
        assert_close(y_c, y_py, dtype, atol)
        z = xi.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
        assert_close(y_c, ref_act(z[None, :], act, alpha)[0], dtype, atol)
        if blas_mode == "own":
            # the kernels' own loops sum every output in one fixed order (bias, then p = 0..d_in-1) whatever
            # the blocking (dense_impl.h), so the matrix-vector path reproduces the batch row bit for bit
            assert np.array_equal(y_c, y_batch[i])
        else:
            # a large enough batch goes to BLAS (another summation order): the row agrees to rounding
            assert_close(y_c, y_batch[i], dtype, atol)


# ---------------------------------------------------------------------------------------------------------------
# act_forward / act_backward
# ---------------------------------------------------------------------------------------------------------------

# Element-wise activations have no sums: C and NumPy (and the float64 reference) differ by a few ulp of
# relative error, which RTOL covers. The atol of one RTOL-ulp of the largest value only covers the softmax,
# whose small entries carry an absolute error of about eps (exp of a rounded z - max).

@pytest.mark.parametrize("act,alpha,shape", act_params(ACT_SHAPES + [LARGE_ACT_FWD]))
def test_act_forward(c_kernels, py_kernels, dtype, rng, shape, act, alpha):
    n, d = shape
    z = (3.0 * rng.standard_normal((n, d))).astype(dtype)

    def c_run(nt):
        a = z.copy()
        c_kernels.act_forward(a, act, alpha, nt)
        return a

    a_c = same_for_all_threads(c_run)
    a_py = z.copy()
    py_kernels.act_forward(a_py, act, alpha, 1)
    atol = rtol_of(dtype) * float(np.abs(z).max()) * 1e-3
    assert_close(a_c, a_py, dtype, atol)
    assert_close(a_c, ref_act(z, act, alpha), dtype, atol)
    if act == LINEAR:
        assert np.array_equal(a_c, z)
    if act == SOFTMAX:
        np.testing.assert_allclose(a_c.astype(np.float64).sum(axis=1), 1.0, rtol=0, atol=rtol_of(dtype))


def test_act_forward_sigmoid_extremes(c_kernels, dtype):
    # large |z| must neither overflow nor lose the tiny tail (the kernel never takes exp of a large positive z)
    z = np.array([[-200.0, -50.0, -20.0, 0.0, 20.0, 50.0, 200.0]], dtype)
    a = z.copy()
    c_kernels.act_forward(a, SIGMOID, ALPHA, 1)
    assert np.all(np.isfinite(a))
    ref = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    tiny = np.finfo(dtype).tiny  # exp(-200) underflows in float32: allow the subnormal range
    np.testing.assert_allclose(a.astype(np.float64), ref, rtol=rtol_of(dtype), atol=tiny)


@pytest.mark.parametrize("act,alpha,shape", act_params(ACT_SHAPES + [LARGE_ACT]))
def test_act_backward(c_kernels, py_kernels, dtype, rng, shape, act, alpha):
    n, d = shape
    a = act_output(rng, dtype, act, alpha, n, d)
    da = rng.standard_normal((n, d)).astype(dtype)

    def c_run(nt):
        dz = np.full((n, d), np.nan, dtype)
        c_kernels.act_backward(dz, da, a, act, alpha, nt)
        return dz

    dz_c = same_for_all_threads(c_run)
    dz_py = np.full((n, d), np.nan, dtype)
    py_kernels.act_backward(dz_py, da, a, act, alpha, 1)
    # softmax: a * (da - <da, a>), the dot a sum of d terms <= max|da|; element-wise ones: one product, k = 1
    k = d if act == SOFTMAX else 1
    atol = 2 * sum_atol(dtype, k, float(np.abs(da).max()))
    assert_close(dz_c, dz_py, dtype, atol)

    # independent: the derivative written from the output a, in float64
    assert_close(dz_c, ref_act_backward(da, a, act, alpha), dtype, atol)

    # aliasing: dz may be da (the header allows it, the network relies on it)
    for nt in THREADS:
        buf = da.copy()
        c_kernels.act_backward(buf, buf, a, act, alpha, nt)
        assert np.array_equal(buf, dz_c), f"dz aliasing da differs (n_threads={nt})"
    # but dz must not be a (the C kernel reads a through a restrict pointer): refused by both backends
    for kernels in (c_kernels, py_kernels):
        buf = a.copy()
        with pytest.raises(ValueError):
            kernels.act_backward(buf, da, buf, act, alpha, 1)


def _away_from_kinks(rng, n, d, act):
    z = 1.5 * rng.standard_normal((n, d))
    if act in (RELU, LEAKY_RELU):  # keep |z| >= 0.1 >> h so the central difference never straddles the kink
        z = np.sign(z) * (0.1 + np.abs(z))
        z[z == 0] = 0.5
    return z


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (5, 7)], ids=shape_id)
@pytest.mark.parametrize("act,alpha", ACT_CASES, ids=ACT_IDS)
def test_act_backward_finite_differences(c_kernels, rng, shape, act, alpha):
    """act_backward(da, f(z)) == J_f(z)^T da, the Jacobian from central differences of act_forward (float64).

    h = 1e-6: truncation error h^2/6 |f'''| <= 1e-12, rounding error eps |f| / h ~ 2e-10, so an absolute
    tolerance of 1e-8 (times max|da|) is safe, and far below the O(0.1) a wrong derivative gives."""
    n, d = shape
    z = _away_from_kinks(rng, n, d, act)
    da = rng.standard_normal((n, d))

    def f(zz):
        out = np.ascontiguousarray(zz, dtype=np.float64).copy()
        c_kernels.act_forward(out, act, alpha, 1)
        return out

    a = f(z)
    dz = np.empty((n, d))
    c_kernels.act_backward(dz, da, a, act, alpha, 1)

    h = 1e-6
    fd = np.empty((n, d))
    for k in range(d):  # perturb column k of every row at once: rows are independent
        zp, zm = z.copy(), z.copy()
        zp[:, k] += h
        zm[:, k] -= h
        fd[:, k] = np.sum(da * (f(zp) - f(zm)), axis=1) / (2 * h)
    np.testing.assert_allclose(dz, fd, rtol=1e-6, atol=1e-8 * float(np.abs(da).max()))


# ---------------------------------------------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------------------------------------------

def loss_inputs(rng, dtype, kind, target_kind, n, d):
    out = (2.0 * rng.standard_normal((n, d))).astype(dtype)
    return out, make_target(rng, dtype, target_kind, n, d)


def loss_tolerances(dtype, kind, out, target):
    """(atol of the loss value, atol of the gradient) from the magnitudes of the terms that are combined."""
    rtol = rtol_of(dtype)
    z = np.abs(out.astype(np.float64))
    t = target.astype(np.float64)
    n, d = out.shape
    if kind == MSE:
        # (o - t)^2 / (n d): each term <= (|o| + |t|)^2; grad 2 (o - t) / (n d)
        value = rtol * np.mean((z + np.abs(t)) ** 2)
        grad = 2 * rtol * float((z + np.abs(t)).max()) / (n * d)
    elif kind == CROSS_ENTROPY:
        # t_j (lse - z_j), lse <= max z + log d; grad (p_j sum(t) - t_j) / n, where p_j = exp(z_j - lse)
        # carries a relative error of eps (|z_j| + |lse|) from the subtraction
        lse = float(z.max()) + math.log(d)
        value = rtol * np.sum(t * (lse + z)) / n
        t_sum = float(t.sum(axis=1).max())
        grad = rtol * (1 + float(z.max()) + lse) * (t_sum + float(t.max())) / n
    else:
        # max(z, 0) - z t + log1p(exp(-|z|)), with a cancellation of size |z| (1 + |t|); grad (s - t) / (n d)
        value = rtol * np.mean(z * (1 + np.abs(t)) + 1)
        grad = 2 * rtol / (n * d)
    return float(value), float(grad)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=shape_id)
@pytest.mark.parametrize("kind,target_kind", LOSS_CASES, ids=LOSS_IDS)
def test_loss(c_kernels, py_kernels, dtype, rng, shape, kind, target_kind, weighted):
    n, d = shape
    out, target = loss_inputs(rng, dtype, kind, target_kind, n, d)
    weights = rng.uniform(0.25, 2.0, size=n).astype(dtype) if weighted else None
    out_before = out.copy()

    def c_run(nt):
        grad = np.full((n, d), np.nan, dtype)
        value = call_loss(c_kernels, grad, out, target, kind, nt, weights)
        return np.array([value]), grad

    value_c, grad_c = same_for_all_threads(c_run)
    value_c = float(value_c[0])
    assert np.array_equal(out, out_before)

    # without a gradient buffer: the same value, bit for bit (the sum does not depend on grad)
    for nt in THREADS:
        assert call_loss(c_kernels, None, out, target, kind, nt, weights) == value_c

    grad_py = np.full((n, d), np.nan, dtype)
    value_py = call_loss(py_kernels, grad_py, out, target, kind, 1, weights)
    atol_value, atol_grad = loss_tolerances(dtype, kind, out, target)
    if weighted:  # every term is scaled by its sample's weight (<= 2)
        atol_value, atol_grad = 2 * atol_value, 2 * atol_grad
    assert_close(value_c, value_py, dtype, atol_value)
    assert_close(grad_c, grad_py, dtype, atol_grad)
    assert value_py == call_loss(py_kernels, None, out, target, kind, 1, weights)

    # independent: the textbook definitions in float64 (softmax / sigmoid not fused)
    assert_close(value_c, ref_loss(out, target, kind, weights), dtype, atol_value)
    assert_close(grad_c, ref_loss_grad(out, target, kind, weights), dtype, atol_grad)

    # aliasing: grad may be out (allowed by the header): same value, same gradient
    buf = out.copy()
    value_alias = call_loss(c_kernels, buf, buf, target, kind, 2, weights)
    assert value_alias == value_c
    assert np.array_equal(buf, grad_c)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (3, 1), (4, 5)], ids=shape_id)
@pytest.mark.parametrize("kind,target_kind", LOSS_CASES, ids=LOSS_IDS)
def test_loss_gradient_finite_differences(c_kernels, rng, shape, kind, target_kind, weighted):
    """grad == d(mean loss)/d(out) by central differences of the kernel's own loss value (float64).

    h = 1e-6 and loss values O(1) summed in double: rounding error ~ eps |L| / h ~ 1e-9, truncation ~ h^2, so
    atol 1e-7 is safe while a wrong gradient (factor 2, missing sum(t), wrong mean, weight not applied) is off by
    >= 1 / (4 n d)."""
    n, d = shape
    out, target = loss_inputs(rng, np.float64, kind, target_kind, n, d)
    weights = rng.uniform(0.25, 2.0, size=n) if weighted else None
    grad = np.empty((n, d))
    value = call_loss(c_kernels, grad, out, target, kind, 1, weights)
    np.testing.assert_allclose(value, ref_loss(out, target, kind, weights), rtol=1e-12, atol=1e-13)

    fd = central_differences(lambda z: call_loss(c_kernels, None, z, target, kind, 1, weights), out)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pos", [0, 1, 3, 4])
def test_softmax_is_stable(c_kernels, dtype, pos):
    """Each kernel that takes a softmax shifts a row by its maximum wherever that sits: logits of +-1000 would
    overflow exp otherwise. The outputs are compared with the float64 reference (exact here)."""
    z = np.zeros((4, 5))
    z[0, pos] = 1000.0                      # one huge logit: softmax is one-hot
    z[1] = -1000.0
    z[1, pos] = -999.0                      # all hugely negative
    z[2] = np.arange(5) * 300.0 - 600.0
    z[2, pos] = 700.0                       # spread out, largest at pos
    z[3, pos] = 20.0
    z = z.astype(dtype)
    ref = ref_act(z, SOFTMAX, 0)
    tol = dict(rtol=rtol_of(dtype), atol=np.finfo(dtype).tiny)

    a = z.copy()
    c_kernels.act_forward(a, SOFTMAX, ALPHA, 1)
    np.testing.assert_allclose(a, ref, **tol)
    # dense_forward and dense_forward_single with W = I, b = 0: y = z exactly, then the fused softmax
    eye, zero_b = np.eye(5, dtype=dtype), np.zeros(5, dtype)
    y = np.empty_like(z)
    c_kernels.dense_forward(y, z, eye, zero_b, SOFTMAX, ALPHA, 1)
    np.testing.assert_allclose(y, ref, **tol)
    for i in range(4):
        yi = np.empty(5, dtype)
        c_kernels.dense_forward_single(yi, np.ascontiguousarray(z[i]), eye, zero_b, SOFTMAX, ALPHA)
        np.testing.assert_allclose(yi, ref[i], **tol)
    # cross-entropy with the target on the largest logit and on the smallest
    z64 = z.astype(np.float64)
    lse = z64.max(axis=1) + np.log(np.exp(z64 - z64.max(axis=1, keepdims=True)).sum(axis=1))
    for cls in (np.full(4, pos), z64.argmin(axis=1)):
        target = np.zeros_like(z)
        target[np.arange(4), cls] = 1
        grad = np.empty_like(z)
        value = c_kernels.loss(grad, z, target, CROSS_ENTROPY, 1)
        expected = np.mean(lse - z64[np.arange(4), cls])
        # the terms reach 2000: their rounding in REAL is RTOL-relative to that size
        np.testing.assert_allclose(value, expected, rtol=rtol_of(dtype), atol=rtol_of(dtype) * 2000)
        np.testing.assert_allclose(grad, (ref - target) / 4, rtol=rtol_of(dtype), atol=rtol_of(dtype))


def test_softmax_cross_entropy_is_stable(c_kernels, dtype):
    # logits of +-1000 overflow a naive exp; the fused loss must stay finite and exact
    out = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], dtype)
    target = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype)
    grad = np.empty_like(out)
    value = c_kernels.loss(grad, out, target, CROSS_ENTROPY, 1)
    # row 0: -log softmax = 0; row 1: log 3; mean over 2 samples
    np.testing.assert_allclose(value, math.log(3) / 2, rtol=rtol_of(dtype))
    expected = np.array([[0.0, 0.0, 0.0], [1 / 3, -2 / 3, 1 / 3]]) / 2
    np.testing.assert_allclose(grad, expected, rtol=rtol_of(dtype), atol=rtol_of(dtype))


# ---------------------------------------------------------------------------------------------------------------
# dense_backward
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("blas_mode,shape", dense_params(False), indirect=["blas_mode"])
def test_dense_backward(c_kernels, py_kernels, dtype, rng, shape, blas_mode):
    n, d_in, d_out = shape
    x, W, _ = dense_inputs(rng, dtype, n, d_in, d_out)
    dz = rng.standard_normal((n, d_out)).astype(dtype)

    def c_run(nt, with_dx=True):
        # NaN everywhere: the kernel must overwrite (not accumulate into) every output
        dx = np.full((n, d_in), np.nan, dtype) if with_dx else None
        dW = np.full((d_in, d_out), np.nan, dtype)
        db = np.full(d_out, np.nan, dtype)
        c_kernels.dense_backward(dx, dW, db, dz, x, W, nt)
        return (dx, dW, db) if with_dx else (dW, db)

    dx_c, dW_c, db_c = same_for_all_threads(c_run, exact=blas_mode != "blas-split")
    dW_n, db_n = same_for_all_threads(lambda nt: c_run(nt, with_dx=False), exact=blas_mode != "blas-split")
    assert np.array_equal(dW_n, dW_c) and np.array_equal(db_n, db_c)

    dx_py = np.empty((n, d_in), dtype)
    dW_py = np.empty((d_in, d_out), dtype)
    db_py = np.empty(d_out, dtype)
    py_kernels.dense_backward(dx_py, dW_py, db_py, dz, x, W, 1)

    # dW: n terms x * dz; db: n terms dz; dx: d_out terms dz * W
    mx, mW, mdz = (float(np.abs(a).max()) for a in (x, W, dz))
    atol_dW = sum_atol(dtype, n, mx * mdz)
    atol_db = sum_atol(dtype, n, mdz)
    atol_dx = sum_atol(dtype, d_out, mdz * mW)
    assert_close(dW_c, dW_py, dtype, atol_dW)
    assert_close(db_c, db_py, dtype, atol_db)
    assert_close(dx_c, dx_py, dtype, atol_dx)

    # independent: float64 products of the same inputs
    x64, W64, dz64 = x.astype(np.float64), W.astype(np.float64), dz.astype(np.float64)
    assert_close(dW_c, x64.T @ dz64, dtype, atol_dW)
    assert_close(db_c, dz64.sum(axis=0), dtype, atol_db)
    assert_close(dx_c, dz64 @ W64.T, dtype, atol_dx)

    # one sample at a time (n == 1 takes a direct path): dW is the outer product, one rounding per element, so it
    # equals the exact product rounded to dtype; db is dz; dx agrees with the batch row to rounding. (Not bit for
    # bit, although dense_impl.h says "same sums": with -ffp-contract=fast the short-row loop of the direct path
    # and dot() are not contracted alike, 1 ulp apart in float32 for d_out < 8.)
    for i in range(min(n, 3)):
        xi, dzi = x[i:i + 1].copy(), dz[i:i + 1].copy()
        dx1 = np.full((1, d_in), np.nan, dtype)
        dW1 = np.full((d_in, d_out), np.nan, dtype)
        db1 = np.full(d_out, np.nan, dtype)
        c_kernels.dense_backward(dx1, dW1, db1, dzi, xi, W, 2)
        assert np.array_equal(dW1, np.outer(xi.astype(np.float64), dzi.astype(np.float64)).astype(dtype))
        assert np.array_equal(db1, dzi[0])
        assert_close(dx1[0], dx_c[i], dtype, atol_dx)


# ---------------------------------------------------------------------------------------------------------------
# sgd_step / adam_step
# ---------------------------------------------------------------------------------------------------------------

# (momentum, nesterov, weight_decay, decay all?) ; n_decay = n // 2 < n when decay_all is False
SGD_CASES = [(0.0, False, 0.0, False), (0.0, False, 0.05, False), (0.9, False, 0.05, False),
             (0.9, True, 0.05, False), (0.5, True, 0.0, True), (0.5, False, 0.1, True)]
SGD_IDS = ["plain", "plain-wd", "momentum-wd", "nesterov-wd", "nesterov", "momentum-wd-all"]
SGD_STEPS = 3
SGD_LR = 0.05


def ref_sgd(p, grads_seq, n_decay, lr, mu, nesterov, wd):
    """PyTorch's SGD in float64, written out."""
    p = p.astype(np.float64).copy()
    buf = np.zeros_like(p)
    for g in grads_seq:
        g = g.astype(np.float64).copy()
        g[:n_decay] += wd * p[:n_decay]
        if mu != 0:
            buf = mu * buf + g
            g = g + mu * buf if nesterov else buf
        p = p - lr * g
    return p, buf


# the largest buffer only for the cases with a weight-decay split inside it (time)
SGD_PARAMS = [pytest.param(n, *case, id=f"{case_id}-{n}") for case, case_id in zip(SGD_CASES, SGD_IDS)
              for n in SGD_SIZES if n != LARGE_SGD or (case[2] != 0 and not case[3])]


@pytest.mark.parametrize("n,mu,nesterov,wd,decay_all", SGD_PARAMS)
def test_sgd_step(c_kernels, py_kernels, dtype, rng, n, mu, nesterov, wd, decay_all):
    n_decay = n if decay_all else n // 2
    p0 = rng.standard_normal(n).astype(dtype)
    grads_seq = [rng.standard_normal(n).astype(dtype) for _ in range(SGD_STEPS)]

    def c_run(nt):
        p = p0.copy()
        v = np.zeros(n, dtype) if mu != 0 else None
        for g in grads_seq:
            c_kernels.sgd_step(p, g, v, n_decay, SGD_LR, mu, nesterov, wd, nt)
        return (p, v) if mu != 0 else p

    res_c = same_for_all_threads(c_run)
    p_c, v_c = res_c if mu != 0 else (res_c, None)

    p_py = p0.copy()
    v_py = np.zeros(n, dtype) if mu != 0 else None
    for g in grads_seq:
        py_kernels.sgd_step(p_py, g, v_py, n_decay, SGD_LR, mu, nesterov, wd, 1)

    # element-wise updates, no sums: errors are a few ulp of the magnitudes involved (|p|, and |v| <= steps *
    # max|g_eff| for the velocity), per step
    g_max = max(float(np.abs(g).max()) for g in grads_seq) + wd * float(np.abs(p0).max() + 1)
    v_scale = SGD_STEPS * g_max
    p_scale = float(np.abs(p0).max()) + SGD_STEPS * SGD_LR * (1 + mu) * v_scale
    atol_p = SGD_STEPS * rtol_of(dtype) * p_scale
    atol_v = SGD_STEPS * rtol_of(dtype) * v_scale
    assert_close(p_c, p_py, dtype, atol_p)
    if mu != 0:
        assert_close(v_c, v_py, dtype, atol_v)

    p_ref, v_ref = ref_sgd(p0, grads_seq, n_decay, SGD_LR, mu, nesterov, wd)
    assert_close(p_c, p_ref, dtype, atol_p)
    if mu != 0:
        assert_close(v_c, v_ref, dtype, atol_v)


@pytest.mark.parametrize("n", SGD_SIZES[:-1])
def test_sgd_plain_step_is_p_minus_lr_g(c_kernels, dtype, rng, n):
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    for nt in THREADS:
        q = p.copy()
        c_kernels.sgd_step(q, g, None, n, 0.1, 0.0, False, 0.0, nt)
        # one product and one difference per element: a couple of ulp of max(|p|, |lr g|)
        expected = p.astype(np.float64) - 0.1 * g.astype(np.float64)
        assert_close(q, expected, dtype, rtol_of(dtype) * float(np.abs(p).max() + 0.1 * np.abs(g).max()))


ADAM_CASES = [(0.01, False), (0.0, True), (0.1, False)]  # (weight decay, decay all?)
ADAM_IDS = ["wd-half", "no-wd", "wd-strong-half"]
ADAM = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
ADAM_STEPS = 5


def ref_adam_step(state, g, n_decay, t, lr, beta1, beta2, eps, wd):
    """One step of textbook Adam (Kingma & Ba) with bias-corrected mhat, vhat, in float64; state = [p, m, v]."""
    p, m, v = state
    g = g.astype(np.float64).copy()
    g[:n_decay] += wd * p[:n_decay]
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    mhat = m / (1 - beta1 ** t)
    vhat = v / (1 - beta2 ** t)
    state[:] = [p - lr * mhat / (np.sqrt(vhat) + eps), m, v]


ADAM_PARAMS = [pytest.param(n, *case, id=f"{case_id}-{n}") for case, case_id in zip(ADAM_CASES, ADAM_IDS)
               for n in ADAM_SIZES if n != LARGE_ADAM or case_id == "wd-half"]


@pytest.mark.parametrize("n,wd,decay_all", ADAM_PARAMS)
def test_adam_step(c_kernels, py_kernels, dtype, rng, n, wd, decay_all):
    n_decay = n if decay_all else n // 2
    p0 = rng.standard_normal(n).astype(dtype)
    lr, b1, b2, eps = ADAM["lr"], ADAM["beta1"], ADAM["beta2"], ADAM["eps"]
    # one state (p, m, v) per thread count, all stepped in lockstep, plus the twin's and the float64 reference's
    c_states = {nt: (p0.copy(), np.zeros(n, dtype), np.zeros(n, dtype)) for nt in THREADS}
    py_state = (p0.copy(), np.zeros(n, dtype), np.zeros(n, dtype))
    ref_state = [p0.astype(np.float64), np.zeros(n), np.zeros(n)]
    # element-wise: a few ulp per step of the magnitudes involved; |update| <= ~lr (|mhat| / sqrt(vhat) <= ~1
    # for these steps), |m| <= max|g_eff|, v <= max|g_eff|^2
    rtol = rtol_of(dtype)
    g_max = 6.0 + wd * (float(np.abs(p0).max()) + 1)  # |g| of standard normals stays below 6 for these sizes
    for t in range(1, ADAM_STEPS + 1):
        g = rng.standard_normal(n).astype(dtype)
        assert float(np.abs(g).max()) < 6.0
        for nt, (p, m, v) in c_states.items():
            c_kernels.adam_step(p, g, m, v, n_decay, lr, b1, b2, eps, wd, t, nt)
        first = c_states[THREADS[0]]
        for nt in THREADS[1:]:
            for a, b in zip(first, c_states[nt]):
                assert np.array_equal(a, b), f"step {t}: n_threads={nt} differs from n_threads=1"
        py_kernels.adam_step(py_state[0], g, py_state[1], py_state[2], n_decay, lr, b1, b2, eps, wd, t, 1)
        ref_adam_step(ref_state, g, n_decay, t, lr, b1, b2, eps, wd)

        atol_p = t * rtol * (float(np.abs(p0).max()) + 3 * lr * t)
        atol_m = t * rtol * g_max
        atol_v = t * rtol * g_max ** 2
        for got, want_py, want_ref, atol in zip(first, py_state, ref_state, (atol_p, atol_m, atol_v)):
            assert_close(got, want_py, dtype, atol)
            assert_close(got, want_ref, dtype, atol)
        # and the step did move the parameters by about lr (bias correction makes |step 1| ~= lr exactly)
        if t == 1:
            step = np.abs(first[0].astype(np.float64) - p0)
            assert np.all(step > 0.5 * lr) and np.all(step < 1.5 * lr)


# ---------------------------------------------------------------------------------------------------------------
# Error paths of the C layer: exceptions, never a crash
# ---------------------------------------------------------------------------------------------------------------

BAD_ACTS = [(99, ALPHA), (-1, ALPHA), (7, ALPHA), (LEAKY_RELU, 0.0), (LEAKY_RELU, -0.1), (LEAKY_RELU, float("nan"))]
BAD_ACT_IDS = ["code99", "code-1", "code7", "leaky-alpha0", "leaky-alpha-neg", "leaky-alpha-nan"]


@pytest.mark.parametrize("act,alpha", BAD_ACTS, ids=BAD_ACT_IDS)
def test_bad_activation_raises(c_kernels, dtype, rng, act, alpha):
    x, W, b = dense_inputs(rng, dtype, 5, 4, 3)
    y = np.zeros((5, 3), dtype)
    with pytest.raises(ValueError):
        c_kernels.dense_forward(y, x, W, b, act, alpha, 1)
    with pytest.raises(ValueError):
        c_kernels.dense_forward_single(np.zeros(3, dtype), np.ascontiguousarray(x[0]), W, b, act, alpha)
    a = np.full((5, 3), 0.5, dtype)
    with pytest.raises(ValueError):
        c_kernels.act_forward(a, act, alpha, 1)
    with pytest.raises(ValueError):
        c_kernels.act_backward(np.zeros((5, 3), dtype), np.ones((5, 3), dtype), a, act, alpha, 1)


@pytest.mark.parametrize("code", [5, 99, -1])
def test_bad_loss_code_raises(c_kernels, dtype, code):
    out = np.zeros((4, 3), dtype)
    target = np.zeros((4, 3), dtype)
    with pytest.raises(ValueError):
        c_kernels.loss(None, out, target, code, 1)
    with pytest.raises(ValueError):
        c_kernels.loss(np.zeros((4, 3), dtype), out, target, code, 1)


def test_cross_entropy_ignore_skips_padding_rows(kernels, rng):
    """All-zero target rows (ignore_index) add nothing, and the mean is over the other rows: the loss and
    gradient equal cross_entropy over the kept rows alone, its gradient scaled to the kept rows' count."""
    from fastnn import _codes
    z = rng.normal(size=(6, 4))
    t = np.eye(4)[rng.integers(0, 4, size=6)]
    t[[1, 4]] = 0
    keep = t.any(axis=1)
    grad = np.full_like(z, np.nan)
    value = kernels.loss(grad, z, t, _codes.CROSS_ENTROPY_IGNORE, 1)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert value == pytest.approx(-np.log(p[t == 1]).mean(), rel=1e-12)
    expected = np.where(keep[:, None], (p - t) / keep.sum(), 0.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)
    # nothing to count: zero, not NaN
    assert kernels.loss(grad, z, np.zeros_like(t), _codes.CROSS_ENTROPY_IGNORE, 1) == 0.0


def test_shape_mismatches_raise(c_kernels, dtype, rng):
    n, d_in, d_out = 5, 4, 3
    x, W, b = dense_inputs(rng, dtype, n, d_in, d_out)
    z = np.zeros
    # dense_forward: y rows / y columns / b length / x columns
    for args in [(z((n + 1, d_out), dtype), x, W, b), (z((n, d_out + 1), dtype), x, W, b),
                 (z((n, d_out), dtype), x, W, z(d_out + 1, dtype)), (z((n, d_out), dtype), x, W, z(d_out - 1, dtype)),
                 (z((n, d_out), dtype), z((n, d_in + 1), dtype), W, b)]:
        with pytest.raises(ValueError):
            c_kernels.dense_forward(*args, LINEAR, ALPHA, 1)
    # dense_forward_single
    for args in [(z(d_out + 1, dtype), x[0].copy(), W, b), (z(d_out, dtype), z(d_in + 1, dtype), W, b),
                 (z(d_out, dtype), x[0].copy(), W, z(d_out + 1, dtype))]:
        with pytest.raises(ValueError):
            c_kernels.dense_forward_single(*args, LINEAR, ALPHA)
    # act_backward: da or dz of another shape than a
    a = z((n, d_out), dtype)
    for dz, da in [(z((n, d_out), dtype), z((n + 1, d_out), dtype)), (z((n, d_out), dtype), z((n, d_out + 1), dtype)),
                   (z((n - 1, d_out), dtype), z((n, d_out), dtype))]:
        with pytest.raises(ValueError):
            c_kernels.act_backward(dz, da, a, SIGMOID, ALPHA, 1)
    # loss: target or grad of another shape than out
    out = z((n, d_out), dtype)
    for grad, target in [(None, z((n + 1, d_out), dtype)), (None, z((n, d_out + 1), dtype)),
                         (z((n + 1, d_out), dtype), z((n, d_out), dtype))]:
        with pytest.raises(ValueError):
            c_kernels.loss(grad, out, target, MSE, 1)
    with pytest.raises(ValueError):
        c_kernels.loss(None, z((0, d_out), dtype), z((0, d_out), dtype), MSE, 1)  # empty batch
    # dense_backward: dz rows, dW shape, db length, dx shape, x columns
    dz = z((n, d_out), dtype)
    good = dict(dx=z((n, d_in), dtype), dW=z((d_in, d_out), dtype), db=z(d_out, dtype), dz=dz, x=x, W=W)
    for key, bad in [("dz", z((n + 1, d_out), dtype)), ("dW", z((d_in + 1, d_out), dtype)),
                     ("db", z(d_out + 1, dtype)), ("dx", z((n, d_in + 1), dtype)), ("dx", z((n + 1, d_in), dtype)),
                     ("x", z((n, d_in + 1), dtype))]:
        kw = dict(good, **{key: bad})
        with pytest.raises(ValueError):
            c_kernels.dense_backward(kw["dx"], kw["dW"], kw["db"], kw["dz"], kw["x"], kw["W"], 1)
    # sgd_step: grads / velocity length, n_decay out of [0, n], momentum without velocity
    p, g = z(6, dtype), z(6, dtype)
    with pytest.raises(ValueError):
        c_kernels.sgd_step(p, z(7, dtype), None, 3, 0.1, 0.0, False, 0.0, 1)
    with pytest.raises(ValueError):
        c_kernels.sgd_step(p, g, z(5, dtype), 3, 0.1, 0.9, False, 0.0, 1)
    with pytest.raises(ValueError):
        c_kernels.sgd_step(p, g, None, 7, 0.1, 0.0, False, 0.0, 1)
    with pytest.raises(ValueError):
        c_kernels.sgd_step(p, g, None, -1, 0.1, 0.0, False, 0.0, 1)
    with pytest.raises(ValueError):
        c_kernels.sgd_step(p, g, None, 3, 0.1, 0.9, False, 0.0, 1)
    # adam_step: grads / m / v length, n_decay out of range
    for args in [(p, z(5, dtype), z(6, dtype), z(6, dtype), 3), (p, g, z(7, dtype), z(6, dtype), 3),
                 (p, g, z(6, dtype), z(5, dtype), 3), (p, g, z(6, dtype), z(6, dtype), 7),
                 (p, g, z(6, dtype), z(6, dtype), -1)]:
        with pytest.raises(ValueError):
            c_kernels.adam_step(*args, 0.01, 0.9, 0.999, 1e-8, 0.0, 1, 1)


@pytest.mark.parametrize("t", [0, -1])
def test_adam_step_t_below_one_raises(c_kernels, dtype, t):
    p = np.ones(4, dtype)
    with pytest.raises(ValueError):
        c_kernels.adam_step(p, np.ones(4, dtype), np.zeros(4, dtype), np.zeros(4, dtype), 2,
                            0.01, 0.9, 0.999, 1e-8, 0.0, t, 1)
    assert np.array_equal(p, np.ones(4, dtype))  # nothing was updated


def test_dtype_mixtures_raise(c_kernels, rng):
    f32, f64 = np.float32, np.float64
    n, d_in, d_out = 4, 3, 2
    x32, W32, b32 = dense_inputs(rng, f32, n, d_in, d_out)
    x64, W64, b64 = (a.astype(f64) for a in (x32, W32, b32))
    errors = (ValueError, TypeError)
    cases = [
        lambda: c_kernels.dense_forward(np.zeros((n, d_out), f32), x64, W32, b32, LINEAR, ALPHA, 1),
        lambda: c_kernels.dense_forward(np.zeros((n, d_out), f64), x64, W64, b32, LINEAR, ALPHA, 1),
        lambda: c_kernels.dense_forward(np.zeros((n, d_out), f32), x32, W64, b32, LINEAR, ALPHA, 1),
        lambda: c_kernels.dense_forward_single(np.zeros(d_out, f32), x64[0].copy(), W32, b32, LINEAR, ALPHA),
        lambda: c_kernels.act_backward(np.zeros((n, d_out), f32), np.zeros((n, d_out), f64),
                                       np.zeros((n, d_out), f32), SIGMOID, ALPHA, 1),
        lambda: c_kernels.loss(None, np.zeros((n, d_out), f32), np.zeros((n, d_out), f64), MSE, 1),
        lambda: c_kernels.loss(np.zeros((n, d_out), f32), np.zeros((n, d_out), f64), np.zeros((n, d_out), f64),
                               MSE, 1),
        lambda: c_kernels.dense_backward(None, np.zeros((d_in, d_out), f32), np.zeros(d_out, f32),
                                         np.zeros((n, d_out), f64), x32, W32, 1),
        lambda: c_kernels.dense_backward(np.zeros((n, d_in), f64), np.zeros((d_in, d_out), f32),
                                         np.zeros(d_out, f32), np.zeros((n, d_out), f32), x32, W32, 1),
        lambda: c_kernels.sgd_step(np.zeros(5, f32), np.zeros(5, f64), None, 2, 0.1, 0.0, False, 0.0, 1),
        lambda: c_kernels.adam_step(np.zeros(5, f64), np.zeros(5, f64), np.zeros(5, f32), np.zeros(5, f64), 2,
                                    0.01, 0.9, 0.999, 1e-8, 0.0, 1, 1),
        # not float32/float64 at all, and not C-contiguous
        lambda: c_kernels.loss(None, np.zeros((n, d_out), np.int64), np.zeros((n, d_out), np.int64), MSE, 1),
        lambda: c_kernels.dense_forward(np.zeros((n, d_out), f64), np.asfortranarray(x64), W64, b64, LINEAR,
                                        ALPHA, 1),
    ]
    for i, case in enumerate(cases):
        with pytest.raises(errors):
            case()


# ---------------------------------------------------------------------------------------------------------------
# all_finite (csrc/checks.c)
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000, LARGE_FINITE])
def test_all_finite(c_kernels, py_kernels, dtype, n):
    """Against np.isfinite: finite extremes (largest magnitudes, subnormals) pass; one NaN or infinity at the
    start, the end, the middle or a thread's boundary is found by every thread count, and by the NumPy twin."""
    finfo = np.finfo(dtype)
    x = np.linspace(-1.0, 1.0, n).astype(dtype)
    if n >= 4:
        x[:4] = [finfo.max, -finfo.max, finfo.smallest_subnormal, -0.0]
    for kernels in (c_kernels, py_kernels):
        assert all(kernels.all_finite(x, nt) for nt in THREADS) == bool(np.isfinite(x).all()) == True  # noqa
    for pos in sorted({0, n // 3, n // 2, n - 1}) if n else []:
        for bad in (np.nan, np.inf, -np.inf):
            keep = x[pos]
            x[pos] = bad
            assert not any(c_kernels.all_finite(x, nt) for nt in THREADS), (pos, bad)
            assert not py_kernels.all_finite(x, 1)
            x[pos] = keep
