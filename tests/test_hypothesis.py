"""Property-based tests (Hypothesis): random shapes, dtypes, activation / loss codes, hyperparameters and values
pushed through every kernel of both backends and through whole fastnn.Network objects.

What is drawn. Shapes from 1 (one row, one column, one input) through odd sizes to 70 (past the 32-column
register tile, two tiles, the 4-row block and its remainder, and large enough that some products take the BLAS
path). float32 and float64. Every activation code (leaky slopes drawn too), every loss with each kind of target,
SGD (momentum, Nesterov, weight decay on a drawn prefix) and Adam (drawn betas, eps, step t, non-zero moments).
Values: finite floats of moderate magnitude (|x| <= 10), and in about a quarter of the draws large ones
(50 ... 1e4: past the float32 and float64 exp ranges, so sigmoid, tanh, softmax, cross-entropy and binary
cross-entropy saturate). Small arrays are drawn element by element (Hypothesis's edge cases: zeros, signed zeros,
subnormals, the bounds); larger ones from a drawn seed with a few elements overwritten by drawn values.

What is checked. The C kernel against its NumPy twin and both against a float64 reference written out here, with
the tolerances of test_kernels.py: RTOL (1e-5 float32, 1e-12 float64) plus an absolute tolerance RTOL * sqrt(k) *
max|term| for a sum of k terms (see test_kernels.py's docstring). Outputs start as NaN, so every element must be
written, and everything must stay finite. Two refinements, both written out where they are used:
  - the optimizers are compared one step at a time from the same state, with a per-element bound of the rounding
    of that step (so a drawn eps or beta cannot make a global scale meaningless);
  - a whole network is compared with a per-element running error bound: each layer's rounding (RTOL * sqrt(k) *
    the terms it sums) plus the error of its input pushed through |W|, through the activations (1-Lipschitz, the
    softmax by exp(2 delta) - 1) and back through the backward pass. Units that sit on the ReLU / leaky ReLU kink
    within that bound are rejected (assume): there the derivative jumps, so no tolerance is meaningful.
The bounds are upper bounds (RTOL is ~80 / ~4500 unit roundoffs), yet orders of magnitude below what a real bug
(a wrong index, a dropped bias, a wrong derivative, a factor 2) changes.

Deterministic in CI: derandomized, no example database. FASTNN_HYPOTHESIS_SCALE=10 runs ten times the examples,
FASTNN_HYPOTHESIS_RANDOM=1 draws new ones on each run (for a local bug hunt).
"""
import math
import os

import numpy as np
import pytest

pytest.importorskip("hypothesis")  # the "test" extra has it; a bare environment skips this file instead of erroring

from hypothesis import HealthCheck, assume, example, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import fastnn  # noqa: E402
from fastnn import _backend  # noqa: E402
from fastnn._codes import (  # noqa: E402
    BINARY_CROSS_ENTROPY, CROSS_ENTROPY, LEAKY_RELU, LEAKY_RELU_SLOPE, LINEAR, MSE, RELU, SIGMOID, SOFTMAX, TANH)
from references import ref_act, ref_act_backward  # noqa: E402

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
RTOL = {F32: 1e-5, F64: 1e-12}
TINY = {F32: float(np.finfo(np.float32).tiny), F64: float(np.finfo(np.float64).tiny)}

_SCALE = float(os.environ.get("FASTNN_HYPOTHESIS_SCALE", "1"))
_RANDOM = os.environ.get("FASTNN_HYPOTHESIS_RANDOM", "") == "1"


def hsettings(max_examples):
    # the c_kernels / py_kernels fixtures are stateless module handles, safe to share between examples
    return settings(max_examples=max(1, int(max_examples * _SCALE)), derandomize=not _RANDOM, database=None,
                    deadline=None, print_blob=_RANDOM,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


ACT_NAMES = {LINEAR: "linear", SIGMOID: "sigmoid", TANH: "tanh", RELU: "relu", LEAKY_RELU: "leaky_relu",
             SOFTMAX: "softmax"}

# ---------------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------------

DTYPES = st.sampled_from([F32, F64])


def dims(hi=70):
    """A size: 1, small (odd and even), or medium up to hi."""
    parts = [st.just(1), st.integers(2, min(9, hi))]
    if hi >= 10:
        parts.append(st.integers(10, hi))
    return st.one_of(*parts)


MODERATE = st.floats(1e-3, 10.0)
LARGE = st.sampled_from([50.0, 100.0, 1e3, 1e4])


@st.composite
def bounds(draw):
    """Largest |value| of an array: moderate, or (one draw in four) large."""
    if draw(st.integers(0, 3)) == 0:
        return draw(LARGE)
    return draw(MODERATE)


@st.composite
def activations(draw):
    """(activation code, alpha): the leaky slope is drawn too (a hard-coded 0.01 would show)."""
    act = draw(st.sampled_from(sorted(ACT_NAMES)))
    alpha = LEAKY_RELU_SLOPE
    if act == LEAKY_RELU:
        alpha = draw(st.one_of(st.just(LEAKY_RELU_SLOPE), st.floats(1e-3, 1.0)))
    return act, alpha


def _elements(dtype, bound):
    width = 32 if dtype == F32 else 64
    bound = float(np.asarray(bound, dtype=dtype))  # representable at this width
    return st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False)


SMALL_ARRAY = 24  # arrays up to this many elements are drawn element by element


@st.composite
def arrays(draw, shape, dtype, bound=None, nonnegative=False):
    """A finite array of `dtype` with |values| <= bound (drawn by `bounds()` when None)."""
    if bound is None:
        bound = draw(bounds())
    size = math.prod(shape)
    elements = _elements(dtype, bound)
    if size <= SMALL_ARRAY:
        a = draw(hnp.arrays(dtype, shape, elements=elements, fill=st.nothing()))
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        a = np.clip(rng.standard_normal(shape) * (bound / 3), -bound, bound).astype(dtype)
        flat = a.reshape(-1)
        for _ in range(draw(st.integers(0, 3))):
            flat[draw(st.integers(0, size - 1))] = draw(elements)
    if nonnegative:
        a = np.abs(a)
    return np.ascontiguousarray(a)


@st.composite
def targets(draw, kind, shape, dtype):
    n, d = shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "real":
        return draw(arrays(shape, dtype, bound=draw(MODERATE)))
    if kind == "onehot":
        t = np.zeros(shape, dtype)
        t[np.arange(n), rng.integers(0, d, size=n)] = 1
        return t
    if kind == "soft":
        return rng.dirichlet(np.ones(d), size=n).astype(dtype)
    if kind == "prob":  # values in [0, 1]; for cross_entropy the rows need not sum to 1
        return np.clip(draw(arrays(shape, dtype, bound=1.0, nonnegative=True)), 0, 1)
    if kind == "binary":
        return rng.integers(0, 2, size=shape).astype(dtype)
    raise AssertionError(kind)


LOSS_CASES = [(MSE, "real"), (CROSS_ENTROPY, "onehot"), (CROSS_ENTROPY, "soft"), (CROSS_ENTROPY, "prob"),
              (BINARY_CROSS_ENTROPY, "prob"), (BINARY_CROSS_ENTROPY, "binary")]

# ---------------------------------------------------------------------------------------------------------------
# Comparison helpers and float64 references
# ---------------------------------------------------------------------------------------------------------------


def sum_atol(dtype, k, max_term):
    """test_kernels.py's absolute tolerance for a sum of k terms of magnitude <= max_term."""
    return RTOL[dtype] * math.sqrt(max(k, 1)) * max_term


def assert_close(what, actual, desired, dtype, atol):
    """|actual - desired| <= atol + RTOL * |desired| element-wise (atol a scalar or an array), and actual finite.
    The smallest normal number is always allowed (subnormal results may round either way)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values {actual[~np.isfinite(actual)][:5]}"
    allowed = np.asarray(atol, dtype=np.float64) + RTOL[dtype] * np.abs(desired) + TINY[dtype]
    err = np.abs(actual - desired)
    bad = err > allowed
    if np.any(bad):
        excess = np.where(bad, err / allowed, 0)
        i = np.unravel_index(int(np.argmax(excess)), excess.shape)
        atol_i = np.broadcast_to(np.asarray(atol, dtype=np.float64), err.shape)[i]
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements differ; worst at {i}: "
                             f"actual {actual[i]!r}, desired {desired[i]!r}, |diff| {err[i]:.3e} > allowed "
                             f"{allowed[i]:.3e} (atol {atol_i:.3e}, rtol {RTOL[dtype]:g})")


def ref_loss(out, target, kind):
    """(mean loss, gradient w.r.t. out) in float64 from the textbook definitions (softmax / sigmoid not fused
    for the value; the gradients are the closed forms)."""
    z, t = np.asarray(out, np.float64), np.asarray(target, np.float64)
    n, d = z.shape
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        if kind == MSE:
            return np.mean((z - t) ** 2), 2 * (z - t) / (n * d)
        if kind == CROSS_ENTROPY:
            m = z.max(axis=1, keepdims=True)
            lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
            p = np.exp(z - lse)
            return np.sum(t * (lse - z)) / n, (p * t.sum(axis=1, keepdims=True) - t) / n
        if kind == BINARY_CROSS_ENTROPY:
            s = np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))
            value = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
            return value, (s - t) / (n * d)
    raise AssertionError(kind)


def loss_tolerances(dtype, kind, out, target):
    """test_kernels.py's (atol of the loss value, atol of the gradient)."""
    rtol = RTOL[dtype]
    z = np.abs(np.asarray(out, np.float64))
    t = np.asarray(target, np.float64)
    n, d = z.shape
    if kind == MSE:
        value = rtol * np.mean((z + np.abs(t)) ** 2)
        grad = 2 * rtol * float((z + np.abs(t)).max()) / (n * d)
    elif kind == CROSS_ENTROPY:
        lse = float(z.max()) + math.log(d)
        value = rtol * np.sum(t * (lse + z)) / n
        t_sum = float(t.sum(axis=1).max())
        grad = rtol * (1 + float(z.max()) + lse) * (t_sum + float(t.max())) / n
    else:
        value = rtol * np.mean(z * (1 + np.abs(t)) + 1)
        grad = 2 * rtol / (n * d)
    return float(value), float(grad)


def dense_forward_atol(dtype, x, W, b):
    """test_kernels.py's: d_in + 1 terms of at most max|x| max|W| (or max|b|); 2x for the softmax."""
    max_term = max(float(np.abs(x).max()) * float(np.abs(W).max()), float(np.abs(b).max()))
    return 2 * sum_atol(dtype, W.shape[0] + 1, max_term)


def _threads(draw):
    return draw(st.integers(1, 4), label="n_threads")


# ---------------------------------------------------------------------------------------------------------------
# Kernels: C against NumPy against float64
# ---------------------------------------------------------------------------------------------------------------


@hsettings(150)
@given(data=st.data())
def test_dense_forward(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    n, d_in, d_out = draw(dims(), label="n"), draw(dims(), label="d_in"), draw(dims(), label="d_out")
    act, alpha = draw(activations(), label="act, alpha")
    x = draw(arrays((n, d_in), dtype), label="x")
    W = draw(arrays((d_in, d_out), dtype), label="W")
    b = draw(arrays((d_out,), dtype), label="b")
    nt = _threads(draw)

    y_c = np.full((n, d_out), np.nan, dtype)
    c_kernels.dense_forward(y_c, x, W, b, act, alpha, nt)
    y_py = np.full((n, d_out), np.nan, dtype)
    py_kernels.dense_forward(y_py, x, W, b, act, alpha, 1)
    z = x.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    atol = dense_forward_atol(dtype, x, W, b)
    assert y_c.dtype == dtype
    assert_close("dense_forward C vs NumPy", y_c, y_py, dtype, atol)
    assert_close("dense_forward C vs float64", y_c, ref_act(z, act, alpha), dtype, atol)
    assert_close("dense_forward NumPy vs float64", y_py, ref_act(z, act, alpha), dtype, atol)


@hsettings(100)
@given(data=st.data())
def test_dense_forward_single(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    d_in, d_out = draw(dims(), label="d_in"), draw(dims(), label="d_out")
    act, alpha = draw(activations(), label="act, alpha")
    x = draw(arrays((d_in,), dtype), label="x")
    W = draw(arrays((d_in, d_out), dtype), label="W")
    b = draw(arrays((d_out,), dtype), label="b")

    y_c = np.full(d_out, np.nan, dtype)
    c_kernels.dense_forward_single(y_c, x, W, b, act, alpha)
    y_py = np.full(d_out, np.nan, dtype)
    py_kernels.dense_forward_single(y_py, x, W, b, act, alpha)
    y_batch = np.full((1, d_out), np.nan, dtype)
    c_kernels.dense_forward(y_batch, x[None, :].copy(), W, b, act, alpha, 1)
    z = x.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    atol = dense_forward_atol(dtype, x[None, :], W, b)
    assert_close("dense_forward_single C vs NumPy", y_c, y_py, dtype, atol)
    assert_close("dense_forward_single C vs float64", y_c, ref_act(z[None, :], act, alpha)[0], dtype, atol)
    assert_close("dense_forward_single C vs one-row dense_forward", y_c, y_batch[0], dtype, atol)


@hsettings(150)
@given(data=st.data())
def test_act_forward(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    n, d = draw(dims(), label="n"), draw(dims(), label="d")
    act, alpha = draw(activations(), label="act, alpha")
    z = draw(arrays((n, d), dtype), label="z")
    nt = _threads(draw)

    a_c = z.copy()
    c_kernels.act_forward(a_c, act, alpha, nt)
    a_py = z.copy()
    py_kernels.act_forward(a_py, act, alpha, 1)
    # test_kernels.py: no sums, a few ulp of relative error; the atol covers the softmax's small entries
    atol = RTOL[dtype] * float(np.abs(z).max()) * 1e-3
    assert_close("act_forward C vs NumPy", a_c, a_py, dtype, atol)
    assert_close("act_forward C vs float64", a_c, ref_act(z, act, alpha), dtype, atol)
    if act == LINEAR:
        assert np.array_equal(a_c, z)
    if act in (SIGMOID, SOFTMAX):
        assert np.all((a_c >= 0) & (a_c <= 1))
    if act == TANH:
        assert np.all(np.abs(a_c) <= 1)
    if act == SOFTMAX:
        np.testing.assert_allclose(a_c.astype(np.float64).sum(axis=1), 1.0, rtol=0, atol=RTOL[dtype])


@hsettings(150)
@given(data=st.data())
def test_act_backward(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    n, d = draw(dims(), label="n"), draw(dims(), label="d")
    act, alpha = draw(activations(), label="act, alpha")
    # a valid activation output a = f(z) (what act_backward receives), from the float64 reference
    z = draw(arrays((n, d), F64), label="z")
    a = ref_act(z, act, alpha).astype(dtype)
    da = draw(arrays((n, d), dtype), label="da")
    nt = _threads(draw)

    dz_c = np.full((n, d), np.nan, dtype)
    c_kernels.act_backward(dz_c, da, a, act, alpha, nt)
    dz_py = np.full((n, d), np.nan, dtype)
    py_kernels.act_backward(dz_py, da, a, act, alpha, 1)
    k = d if act == SOFTMAX else 1
    atol = 2 * sum_atol(dtype, k, float(np.abs(da).max()))
    assert_close("act_backward C vs NumPy", dz_c, dz_py, dtype, atol)
    assert_close("act_backward C vs float64", dz_c, ref_act_backward(da, a, act, alpha), dtype, atol)

    # dz may alias da: bit for bit the same result
    buf = da.copy()
    c_kernels.act_backward(buf, buf, a, act, alpha, nt)
    assert np.array_equal(buf, dz_c)
    buf = da.copy()
    py_kernels.act_backward(buf, buf, a, act, alpha, 1)
    assert np.array_equal(buf, dz_py)


@hsettings(150)
@given(data=st.data())
def test_loss(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    kind, target_kind = draw(st.sampled_from(LOSS_CASES), label="loss, target")
    n, d = draw(dims(), label="n"), draw(dims(), label="d")
    out = draw(arrays((n, d), dtype), label="out")
    target = draw(targets(target_kind, (n, d), dtype), label="target")
    nt = _threads(draw)
    out_before = out.copy()

    grad_c = np.full((n, d), np.nan, dtype)
    value_c = c_kernels.loss(grad_c, out, target, kind, nt)
    assert np.array_equal(out, out_before)
    assert c_kernels.loss(None, out, target, kind, nt) == value_c  # the value does not depend on grad
    grad_py = np.full((n, d), np.nan, dtype)
    value_py = py_kernels.loss(grad_py, out, target, kind, 1)
    ref_value, ref_grad = ref_loss(out, target, kind)
    atol_value, atol_grad = loss_tolerances(dtype, kind, out, target)
    assert math.isfinite(value_c) and math.isfinite(value_py)
    assert_close("loss value C vs NumPy", value_c, value_py, dtype, atol_value)
    assert_close("loss value C vs float64", value_c, ref_value, dtype, atol_value)
    assert_close("loss gradient C vs NumPy", grad_c, grad_py, dtype, atol_grad)
    assert_close("loss gradient C vs float64", grad_c, ref_grad, dtype, atol_grad)
    if kind != MSE:
        assert value_c >= -atol_value  # cross-entropies of targets in [0, 1] are >= 0

    # grad may alias out: the same value and gradient, bit for bit
    buf = out.copy()
    assert c_kernels.loss(buf, buf, target, kind, nt) == value_c
    assert np.array_equal(buf, grad_c)


@hsettings(120)
@given(data=st.data())
def test_dense_backward(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    n, d_in, d_out = draw(dims(), label="n"), draw(dims(), label="d_in"), draw(dims(), label="d_out")
    x = draw(arrays((n, d_in), dtype), label="x")
    W = draw(arrays((d_in, d_out), dtype), label="W")
    dz = draw(arrays((n, d_out), dtype), label="dz")
    nt = _threads(draw)

    def run(kernels, with_dx, threads):
        dx = np.full((n, d_in), np.nan, dtype) if with_dx else None
        dW = np.full((d_in, d_out), np.nan, dtype)
        db = np.full(d_out, np.nan, dtype)
        kernels.dense_backward(dx, dW, db, dz, x, W, threads)
        return dx, dW, db

    dx_c, dW_c, db_c = run(c_kernels, True, nt)
    _, dW_n, db_n = run(c_kernels, False, nt)
    assert np.array_equal(dW_n, dW_c) and np.array_equal(db_n, db_c)  # dx=None changes nothing else
    dx_py, dW_py, db_py = run(py_kernels, True, 1)

    mx, mW, mdz = (float(np.abs(a).max()) for a in (x, W, dz))
    atol_dW, atol_db, atol_dx = sum_atol(dtype, n, mx * mdz), sum_atol(dtype, n, mdz), sum_atol(dtype, d_out,
                                                                                                mdz * mW)
    x64, W64, dz64 = x.astype(np.float64), W.astype(np.float64), dz.astype(np.float64)
    for name, got, twin, ref, atol in (("dW", dW_c, dW_py, x64.T @ dz64, atol_dW),
                                       ("db", db_c, db_py, dz64.sum(axis=0), atol_db),
                                       ("dx", dx_c, dx_py, dz64 @ W64.T, atol_dx)):
        assert_close(f"dense_backward {name} C vs NumPy", got, twin, dtype, atol)
        assert_close(f"dense_backward {name} C vs float64", got, ref, dtype, atol)


# --------------------------------------------------------------------------------------------- optimizers
# One step at a time from the same state, against a float64 step with a per-element bound of its rounding: each
# rounded operation contributes RTOL * |its operands|, and an error E_g of the gradient (the network test below)
# is carried through. For Adam the error of m / (sqrt(v) + eps_t) is bounded by the corners of the intervals of m
# and of the denominator.


def sgd_ref_step(p, g, v, wd, lr, mu, nesterov, rtol, Eg=0.0):
    """(p_new, v_new, bound of p_new, bound of v_new); wd is per element (0 for the undecayed ones)."""
    ap = np.abs(p)
    g_eff = g + wd * p
    E_geff = Eg + rtol * (np.abs(g) + wd * ap)
    v_new, Ev = None, None
    if mu == 0:
        u, Eu = g_eff, E_geff
    else:
        v_new = mu * v + g_eff
        Ev = rtol * (mu * np.abs(v) + np.abs(g_eff)) + E_geff
        if nesterov:
            u = g_eff + mu * v_new
            Eu = E_geff + mu * Ev + rtol * (np.abs(g_eff) + mu * np.abs(v_new))
        else:
            u, Eu = v_new, Ev
    p_new = p - lr * u
    Ep = rtol * (ap + lr * np.abs(u)) + lr * Eu
    return p_new, v_new, Ep, Ev


def adam_ref_step(p, g, m, v, wd, lr, b1, b2, eps, t, rtol, tiny, Eg=0.0):
    """(p_new, m_new, v_new, bounds of each) for Adam step t from state (m, v)."""
    g_eff = g + wd * p
    ag = np.abs(g_eff)
    E_geff = Eg + rtol * (np.abs(g) + wd * np.abs(p))
    m_new = b1 * m + (1 - b1) * g_eff
    Em = rtol * (b1 * np.abs(m) + (1 - b1) * ag) + (1 - b1) * E_geff + tiny
    v_new = b2 * v + (1 - b2) * g_eff * g_eff
    Ev = rtol * (b2 * np.abs(v) + (1 - b2) * g_eff * g_eff) + (1 - b2) * (2 * ag * E_geff + E_geff ** 2) + tiny
    c2 = math.sqrt(1.0 - b2 ** t)
    lr_t, eps_t = lr * c2 / (1.0 - b1 ** t), eps * c2
    den = np.sqrt(v_new) + eps_t
    den_lo = np.sqrt(np.maximum(v_new - Ev, 0)) + eps_t
    den_hi = np.sqrt(v_new + Ev) + eps_t
    ratio = m_new / den
    corners = [(m_new + sm * Em) / dd for sm in (-1, 1) for dd in (den_lo, den_hi)]
    Eratio = np.max([np.abs(c - ratio) for c in corners], axis=0)
    u = lr_t * ratio
    Eu = lr_t * Eratio + 4 * rtol * np.abs(u)
    p_new = p - u
    Ep = rtol * (np.abs(p) + np.abs(u)) + Eu
    return p_new, m_new, v_new, Ep, Em, Ev


@st.composite
def flat_params(draw, dtype):
    n = draw(st.one_of(dims(40), st.integers(41, 400)), label="n")
    n_decay = draw(st.one_of(st.just(0), st.just(n), st.integers(0, n)), label="n_decay")
    p = draw(arrays((n,), dtype), label="params")
    grads = [draw(arrays((n,), dtype), label=f"grads[{k}]") for k in range(draw(st.integers(1, 3)))]
    return n, n_decay, p, grads


@hsettings(120)
@given(data=st.data())
def test_sgd_step(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    n, n_decay, p0, grads = draw(flat_params(dtype))
    lr = draw(st.floats(1e-4, 1.0), label="lr")
    mu = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)), label="momentum")
    nesterov = draw(st.booleans(), label="nesterov")
    wd = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5)), label="weight_decay")
    nt = _threads(draw)
    v0 = draw(arrays((n,), dtype), label="velocity") if mu != 0 else None
    rtol = RTOL[dtype]
    wd_el = np.where(np.arange(n) < n_decay, wd, 0.0)

    p_c, v_c = p0.copy(), None if v0 is None else v0.copy()
    for k, g in enumerate(grads):
        p_in, v_in = p_c.copy(), None if v_c is None else v_c.copy()
        c_kernels.sgd_step(p_c, g, v_c, n_decay, lr, mu, nesterov, wd, nt)
        p_py, v_py = p_in.copy(), None if v_in is None else v_in.copy()
        py_kernels.sgd_step(p_py, g, v_py, n_decay, lr, mu, nesterov, wd, 1)
        p_ref, v_ref, Ep, Ev = sgd_ref_step(p_in.astype(np.float64), g.astype(np.float64),
                                            None if v_in is None else v_in.astype(np.float64), wd_el, lr, mu,
                                            nesterov, rtol)
        assert_close(f"sgd step {k} params C vs NumPy", p_c, p_py, dtype, 2 * Ep)
        assert_close(f"sgd step {k} params C vs float64", p_c, p_ref, dtype, Ep)
        if mu != 0:
            assert_close(f"sgd step {k} velocity C vs NumPy", v_c, v_py, dtype, 2 * Ev)
            assert_close(f"sgd step {k} velocity C vs float64", v_c, v_ref, dtype, Ev)
        if mu == 0 and wd == 0:
            # one product and one difference per element
            assert_close(f"sgd step {k} is p - lr g", p_c, p_in.astype(np.float64) - lr * g.astype(np.float64),
                         dtype, rtol * (np.abs(p_in.astype(np.float64)) + lr * np.abs(g.astype(np.float64))))


@hsettings(120)
@given(data=st.data())
def test_adam_step(c_kernels, py_kernels, data):
    draw = data.draw
    dtype = draw(DTYPES, label="dtype")
    n, n_decay, p0, grads = draw(flat_params(dtype))
    lr = draw(st.floats(1e-5, 1.0), label="lr")
    b1 = draw(st.one_of(st.just(0.9), st.floats(0.0, 0.99)), label="beta1")
    b2 = draw(st.one_of(st.just(0.999), st.floats(0.0, 0.9999)), label="beta2")
    eps = draw(st.one_of(st.just(1e-8), st.floats(1e-10, 1e-2)), label="eps")
    wd = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5)), label="weight_decay")
    t0 = draw(st.one_of(st.just(1), st.integers(2, 10_000)), label="t0")
    nt = _threads(draw)
    if t0 == 1:
        m0, v0 = np.zeros(n, dtype), np.zeros(n, dtype)
    else:  # resume from a drawn state: any m, v >= 0
        m0 = draw(arrays((n,), dtype), label="m")
        v0 = draw(arrays((n,), dtype, nonnegative=True), label="v")
    rtol = RTOL[dtype]
    wd_el = np.where(np.arange(n) < n_decay, wd, 0.0)

    p_c, m_c, v_c = p0.copy(), m0.copy(), v0.copy()
    for k, g in enumerate(grads):
        t = t0 + k
        state_in = (p_c.copy(), m_c.copy(), v_c.copy())
        c_kernels.adam_step(p_c, g, m_c, v_c, n_decay, lr, b1, b2, eps, wd, t, nt)
        p_py, m_py, v_py = (s.copy() for s in state_in)
        py_kernels.adam_step(p_py, g, m_py, v_py, n_decay, lr, b1, b2, eps, wd, t, 1)
        p_ref, m_ref, v_ref, Ep, Em, Ev = adam_ref_step(*(s.astype(np.float64) for s in (state_in[0], g)),
                                                        *(s.astype(np.float64) for s in state_in[1:]), wd_el, lr,
                                                        b1, b2, eps, t, rtol, TINY[dtype])
        for name, got, twin, ref, E in (("params", p_c, p_py, p_ref, Ep), ("m", m_c, m_py, m_ref, Em),
                                        ("v", v_c, v_py, v_ref, Ev)):
            assert_close(f"adam step t={t} {name} C vs NumPy", got, twin, dtype, 2 * E)
            assert_close(f"adam step t={t} {name} C vs float64", got, ref, dtype, E)
        assert np.all(v_c >= 0)


# ---------------------------------------------------------------------------------------------------------------
# Whole networks on the "c" and "python" backends
# ---------------------------------------------------------------------------------------------------------------
# Running error bound. Each quantity q of the float64 reference carries E_q >= |q_computed - q| for a backend that
# rounds every operation to RTOL (relative) and sums k terms to RTOL * sqrt(k) * sum|terms| (test_kernels.py).


def _fwd_layer(a_in, Ea_in, W, b, act, rtol, tiny):
    """z = a_in W + b, a = act(z) with their bounds. `tiny` (the smallest normal number) bounds the absolute
    error of an operation whose result underflows, which no relative bound covers."""
    aW = np.abs(W)
    M = np.abs(a_in) @ aW + np.abs(b)
    z = a_in @ W + b
    Ez = rtol * math.sqrt(W.shape[0] + 1) * M + Ea_in @ aW + (W.shape[0] + 1) * tiny
    a = ref_act(z, act, LEAKY_RELU_SLOPE)
    if act == SOFTMAX:
        # each z_j moved by <= delta moves p_j by a factor within exp(+-2 delta); z - max rounds too
        delta = Ez.max(axis=1, keepdims=True) + 2 * rtol * np.abs(z).max(axis=1, keepdims=True)
        Ea = a * np.expm1(2 * delta) + rtol * a + tiny
    else:
        Ea = Ez + rtol * np.abs(a) + tiny  # every element-wise activation is 1-Lipschitz
    return z, Ez, a, Ea


def _act_back_bound(da, Eda, a, Ea, act, rtol, tiny):
    """dz = act_backward(da, a) and its bound, from the bounds of da and of a."""
    dz, Edz = _act_back_bound_normal(da, Eda, a, Ea, act, rtol)
    return dz, Edz + (a.shape[1] + 1) * tiny


def _act_back_bound_normal(da, Eda, a, Ea, act, rtol):
    ada = np.abs(da)
    if act == LINEAR:
        return da, Eda
    if act in (RELU, LEAKY_RELU):  # kinks are excluded by the caller: the branch taken is the reference's
        f = (a > 0) * 1.0 if act == RELU else np.where(a > 0, 1.0, LEAKY_RELU_SLOPE)
        dz = da * f
        return dz, Eda * f + rtol * np.abs(dz)
    if act in (SIGMOID, TANH):
        if act == SIGMOID:
            f, Ef = a * (1 - a), np.abs(1 - 2 * a) * Ea + Ea ** 2
        else:
            f, Ef = 1 - a * a, 2 * np.abs(a) * Ea + Ea ** 2
        dz = da * f
        return dz, Eda * (np.abs(f) + Ef) + ada * (Ef + rtol)
    # softmax: dz = a (da - s), s = <da, a> per row
    s = np.sum(da * a, axis=1, keepdims=True)
    Es = (np.sum(Eda * a + ada * Ea + Eda * Ea, axis=1, keepdims=True)
          + rtol * math.sqrt(a.shape[1]) * np.sum(np.abs(da * a), axis=1, keepdims=True) + rtol * np.abs(s))
    dz = a * (da - s)
    Edz = Ea * (ada + np.abs(s) + Eda + Es) + a * (Eda + Es) + rtol * a * (ada + np.abs(s))
    return dz, Edz


def network_reference(Ws, bs, train_acts, predict_acts, loss, X, T, dtype):
    """Float64 forward (prediction), mean loss, backprop, with per-element bounds. Returns a dict, or None when
    a ReLU / leaky ReLU unit sits within its bound of the kink (the derivative is not determined there)."""
    rtol, tiny = RTOL[dtype], TINY[dtype]
    n = X.shape[0]
    # prediction
    a, Ea = X, np.zeros_like(X)
    for W, b, act in zip(Ws, bs, predict_acts):
        _, _, a, Ea = _fwd_layer(a, Ea, W, b, act, rtol, tiny)
    pred, E_pred = a, Ea
    # training forward
    acts, E_acts = [X], [np.zeros_like(X)]
    for W, b, act in zip(Ws, bs, train_acts):
        z, Ez, a, Ea = _fwd_layer(acts[-1], E_acts[-1], W, b, act, rtol, tiny)
        if act in (RELU, LEAKY_RELU) and not np.all((np.abs(z) > Ez) | (Ez == 0)):
            return None
        acts.append(a)
        E_acts.append(Ea)
    out, E_out = acts[-1], E_acts[-1]
    d = out.shape[1]
    value, g = ref_loss(out, T, loss)
    atol_value, atol_grad = loss_tolerances(dtype, loss, out + np.sign(out) * E_out, T)
    if loss == MSE:
        Eg = 2 * E_out / (n * d) + atol_grad
        E_value = atol_value + np.sum((2 * np.abs(out - T) + E_out) * E_out) / (n * d)
    elif loss == CROSS_ENTROPY:
        p = ref_act(out, SOFTMAX, 0)
        delta = E_out.max(axis=1, keepdims=True)
        t_sum = T.sum(axis=1, keepdims=True)
        Eg = t_sum * p * np.expm1(2 * delta) / n + atol_grad
        E_value = atol_value + np.sum(T * (delta + E_out)) / n
    else:
        Eg = E_out / (4 * n * d) + atol_grad
        E_value = atol_value + np.sum((np.abs(g) * n * d + E_out) * E_out) / (n * d)
    Eg = Eg + tiny
    delta, E_delta = _act_back_bound(g, Eg, out, E_out, train_acts[-1], rtol, tiny)
    grads = [None] * len(Ws)
    for i in range(len(Ws) - 1, -1, -1):
        x_in, E_in = acts[i], E_acts[i]
        ad = np.abs(delta)
        dW = x_in.T @ delta
        E_dW = (rtol * math.sqrt(n) * (np.abs(x_in).T @ ad) + E_in.T @ (ad + E_delta) + np.abs(x_in).T @ E_delta
                + (n + 1) * tiny)
        db = delta.sum(axis=0)
        E_db = rtol * math.sqrt(n) * ad.sum(axis=0) + E_delta.sum(axis=0) + (n + 1) * tiny
        grads[i] = (dW, db, E_dW, E_db)
        if i > 0:
            W = Ws[i]
            dx = delta @ W.T
            E_dx = rtol * math.sqrt(W.shape[1]) * (ad @ np.abs(W).T) + E_delta @ np.abs(W).T + (W.shape[1] + 1) * tiny
            delta, E_delta = _act_back_bound(dx, E_dx, x_in, E_in, train_acts[i - 1], rtol, tiny)
    return dict(pred=pred, E_pred=E_pred, value=value, E_value=E_value, grads=grads)


NET_ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "linear", "softmax"]
NET_LOSSES = ["mse", "cross_entropy", "binary_cross_entropy"]
FUSED = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


def _available_backends():
    only_python = os.environ.get("FASTNN_BACKEND", "").lower() == "python"
    return ["python"] if only_python or not _backend.c_available() else ["c", "python"]


@st.composite
def network_problems(draw):
    dtype = draw(DTYPES, label="dtype")
    loss = draw(st.sampled_from(NET_LOSSES), label="loss")
    n_layers = draw(st.integers(1, 3), label="weight layers")
    sizes = [draw(dims(12)) for _ in range(n_layers + 1)]
    names = [draw(st.sampled_from(NET_ACTS)) for _ in range(n_layers - 1)]
    names.append(FUSED[loss] if loss in FUSED else draw(st.sampled_from(NET_ACTS)))
    seed = draw(st.integers(0, 2**16), label="seed")
    n = draw(dims(20), label="n")
    X = draw(arrays((n, sizes[0]), np.dtype(np.float64)), label="X")
    d_out = sizes[-1]
    if loss == "mse":
        y = draw(targets("real", (n, d_out), F64), label="y")
    elif loss == "cross_entropy":
        if draw(st.booleans(), label="labels"):
            y = np.asarray(draw(st.lists(st.integers(0, d_out - 1), min_size=n, max_size=n)), dtype=np.int64)
        else:
            y = draw(targets(draw(st.sampled_from(["soft", "prob"])), (n, d_out), F64), label="y")
    else:
        y = draw(targets(draw(st.sampled_from(["prob", "binary"])), (n, d_out), F64), label="y")
    # biases start at 0; drawn ones make a dropped bias (or a decayed one) visible
    biases = [draw(arrays((w,), F64, bound=draw(MODERATE))) if draw(st.booleans()) else None for w in sizes[1:]]
    kind = draw(st.sampled_from(["sgd", "momentum", "nesterov", "adam"]), label="optimizer")
    opts = dict(learning_rate=draw(st.floats(1e-4, 0.5)),
                weight_decay=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.1))))
    if kind == "adam":
        opts.update(optimizer="adam", beta1=draw(st.floats(0.0, 0.99)), beta2=draw(st.floats(0.0, 0.9999)),
                    epsilon=draw(st.floats(1e-10, 1e-3)))
    else:
        opts.update(optimizer="sgd", momentum=0.0 if kind == "sgd" else draw(st.floats(0.01, 0.95)),
                    nesterov=kind == "nesterov")
    return dtype, loss, sizes, names, seed, biases, X, y, opts


# Found by a random run: a subnormal input underflows to 0 in float32 in front of a ReLU, so the float32 unit is dead
# where the float64 one is not. The bound's underflow term must reject it (and did not, before it had one).
UNDERFLOW_AT_RELU = (F32, "cross_entropy", [1, 1, 10, 2], ["tanh", "relu", "softmax"], 0, [None, None, None],
                     np.array([[1.401298464324817e-45]]), np.array([[0.40007079, 0.59992921]]),
                     dict(learning_rate=0.5, weight_decay=0.0, optimizer="sgd", momentum=0.0, nesterov=False))


@hsettings(100)
@given(problem=network_problems())
@example(problem=UNDERFLOW_AT_RELU)
def test_network_backends_agree(problem):
    """forward (batch and one sample), evaluate, gradients and one train_step of the same network (same seed) on
    every available backend, each against the float64 reference with its running error bound, and C against
    NumPy with twice that bound."""
    dtype, loss, sizes, names, seed, biases, X, y, opts = problem
    backends = _available_backends()
    nets = {b: fastnn.Network(sizes, activations=names, loss=loss, dtype=dtype.name, seed=seed, backend=b)
            for b in backends}
    for net in nets.values():
        for b, drawn in zip(net.biases, biases):
            if drawn is not None:
                b[...] = drawn
    first = nets[backends[0]]
    for net in nets.values():
        for a, b in zip(net.weights + net.biases, first.weights + first.biases):
            assert np.array_equal(a, b)  # the same initial weights on every backend

    # the inputs as the network sees them: converted to its dtype (labels become one-hot rows)
    X64 = X.astype(dtype).astype(np.float64)
    if loss == "cross_entropy" and y.ndim == 1:
        T64 = np.eye(sizes[-1])[y]
    else:
        T64 = y.astype(dtype).astype(np.float64)
    Ws = [W.astype(np.float64) for W in first.weights]
    bs = [b.astype(np.float64) for b in first.biases]
    train_acts = [layer.train_act_code() for layer in first.layers]
    predict_acts = [layer.act_code for layer in first.layers]
    ref = network_reference(Ws, bs, train_acts, predict_acts, _LOSS_CODES[loss], X64, T64, dtype)
    assume(ref is not None)
    note(f"sizes={sizes} activations={names} loss={loss} dtype={dtype} n={X.shape[0]} opts={opts}")

    results = {}
    for b, net in nets.items():
        r = results[b] = {}
        r["pred"] = net.forward(X)
        r["single"] = net.forward(X[0])
        r["evaluate"] = net.evaluate(X, y)
        r["grads"] = net.gradients(X, y)
        r["step_loss"] = net.train_step(X, y, **opts)
        r["params"] = [(W.copy(), bb.copy()) for W, bb in zip(net.weights, net.biases)]
        assert r["pred"].dtype == dtype and r["pred"].shape == (X.shape[0], sizes[-1])
        assert r["single"].shape == (sizes[-1],)
        assert_close(f"{b} forward vs float64", r["pred"], ref["pred"], dtype, ref["E_pred"])
        assert_close(f"{b} forward one sample vs float64", r["single"], ref["pred"][0], dtype, ref["E_pred"][0])
        assert_close(f"{b} forward one sample vs batch row", r["single"], r["pred"][0], dtype,
                     2 * ref["E_pred"][0])
        assert_close(f"{b} evaluate vs float64", r["evaluate"], ref["value"], dtype, ref["E_value"])
        assert_close(f"{b} train_step loss vs float64", r["step_loss"], ref["value"], dtype, ref["E_value"])
        for i, ((dW, db), (rW, rb, EW, Eb)) in enumerate(zip(r["grads"], ref["grads"])):
            assert_close(f"{b} gradients dW[{i}] vs float64", dW, rW, dtype, EW)
            assert_close(f"{b} gradients db[{i}] vs float64", db, rb, dtype, Eb)

    # the step's expected parameters: the first update from fresh optimizer state
    rtol = RTOL[dtype]
    expected = []
    for W, b, (rW, rb, EW, Eb) in zip(Ws, bs, ref["grads"]):
        layer = []
        for p, g, Eg, wd in ((W, rW, EW, opts["weight_decay"]), (b, rb, Eb, 0.0)):
            if opts["optimizer"] == "adam":
                p_new, _, _, Ep, _, _ = adam_ref_step(p, g, np.zeros_like(p), np.zeros_like(p), wd,
                                                      opts["learning_rate"], opts["beta1"], opts["beta2"],
                                                      opts["epsilon"], 1, rtol, TINY[dtype], Eg=Eg)
            else:
                p_new, _, Ep, _ = sgd_ref_step(p, g, np.zeros_like(p), wd, opts["learning_rate"],
                                               opts["momentum"], opts["nesterov"], rtol, Eg=Eg)
            layer.append((p_new, Ep))
        expected.append(layer)
    for b, r in results.items():
        for i, ((W, bb), ((rW, EW), (rb, Eb))) in enumerate(zip(r["params"], expected)):
            assert_close(f"{b} train_step W[{i}] vs float64", W, rW, dtype, EW)
            assert_close(f"{b} train_step b[{i}] vs float64", bb, rb, dtype, Eb)

    if len(results) == 2:
        c, py = results["c"], results["python"]
        assert_close("forward C vs NumPy", c["pred"], py["pred"], dtype, 2 * ref["E_pred"])
        assert_close("forward one sample C vs NumPy", c["single"], py["single"], dtype, 2 * ref["E_pred"][0])
        assert_close("evaluate C vs NumPy", c["evaluate"], py["evaluate"], dtype, 2 * ref["E_value"])
        assert_close("train_step loss C vs NumPy", c["step_loss"], py["step_loss"], dtype, 2 * ref["E_value"])
        for i, ((dWc, dbc), (dWp, dbp), (_, _, EW, Eb)) in enumerate(zip(c["grads"], py["grads"], ref["grads"])):
            assert_close(f"gradients dW[{i}] C vs NumPy", dWc, dWp, dtype, 2 * EW)
            assert_close(f"gradients db[{i}] C vs NumPy", dbc, dbp, dtype, 2 * Eb)
        for i, ((Wc, bc), (Wp, bp), ((_, EW), (_, Eb))) in enumerate(zip(c["params"], py["params"], expected)):
            assert_close(f"train_step W[{i}] C vs NumPy", Wc, Wp, dtype, 2 * EW)
            assert_close(f"train_step b[{i}] C vs NumPy", bc, bp, dtype, 2 * Eb)


_LOSS_CODES = {"mse": MSE, "cross_entropy": CROSS_ENTROPY, "binary_cross_entropy": BINARY_CROSS_ENTROPY}
