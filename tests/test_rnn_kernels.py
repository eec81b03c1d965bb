"""The sequence kernels of the C backend (csrc/sequence.c: embedding, repeat; csrc/rnn.c: SimpleRNN, LSTM and GRU
forward and backpropagation through time) against their NumPy twins (fastnn/_py/sequence.py, fastnn/_py/rnn.py),
which define them: every output and workspace the twin fills, for every cell, with and without return_sequences,
initial and carried state, one and several sequences, one and several steps; results independent of the thread
count; the BLAS paths; bad token ids and wrong buffer sizes.

Tolerances. The kernels and NumPy add the same terms in different orders, so a result carries a rounding error
of about eps sqrt(k) max|term|, which does not shrink with the result itself: an element near zero through
cancellation has a large relative error. Each comparison therefore takes an absolute tolerance of RTOL times the
largest magnitude of the expected array besides the relative one. RTOL (1e-12 for float64, 2e-4 for float32) is
far above the rounding error and far below what a real bug (a wrong index, gate or derivative) changes.

Every output is filled with NaN first, so an element a kernel fails to write shows up."""
import os
import re

import numpy as np
import pytest

from fastnn._codes import CELL_GATES, CELL_GRU, CELL_LSTM, CELL_SIMPLE, RELU, SIGMOID, TANH

import blas_modes

RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-12}
THREADS = (1, 2, 3)
HEADER = os.path.join(os.path.dirname(__file__), os.pardir, "csrc", "fastnn_internal.h")

# (cell, act) of SimpleRNN with tanh and relu, LSTM, GRU (act is SimpleRNN's only)
CELLS = [(CELL_SIMPLE, TANH), (CELL_SIMPLE, RELU), (CELL_LSTM, TANH), (CELL_GRU, TANH)]
CELL_IDS = ["simple-tanh", "simple-relu", "lstm", "gru"]


def assert_close(actual, desired, dtype, what=""):
    desired = np.asarray(desired, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    rtol = RTOL[np.dtype(dtype)]
    scale = float(np.abs(desired).max()) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * max(scale, 1e-30), err_msg=what)


def min_work_per_thread():
    """FASTNN_MIN_WORK_PER_THREAD of csrc/fastnn_internal.h (None outside the source tree)."""
    if not os.path.exists(HEADER):
        return None
    with open(HEADER) as f:
        m = re.search(r"#define\s+FASTNN_MIN_WORK_PER_THREAD\s+\(\(int64_t\)1\s*<<\s*(\d+)\)", f.read())
    assert m, "FASTNN_MIN_WORK_PER_THREAD not found in csrc/fastnn_internal.h: update this test"
    return 1 << int(m.group(1))


def assert_threads(work):
    """A case meant to compare thread counts must give a kernel work for 3 threads."""
    per_thread = min_work_per_thread()
    if per_thread is not None:
        assert work >= 3 * per_thread, f"{work} operations run on fewer than 3 threads: enlarge the case"


# ------------------------------------------------------------------------------------------------ BLAS modes
@pytest.fixture(params=["own-loops", "blas", "blas-split"])
def blas_mode(request, c_kernels):
    """The C backend in each BLAS mode of tests/blas_modes.py; restored after."""
    yield from blas_modes.installed(c_kernels, request.param)


# -------------------------------------------------------------------------------------------- recurrent layers
class Case:
    """Inputs of one recurrent call: n sequences of T steps of F features, U units."""

    def __init__(self, cell, act, return_sequences, n, T, F, U, dtype, seed=0, scale=0.5):
        self.cell, self.act, self.rs, self.n, self.T, self.F, self.U = cell, act, bool(return_sequences), n, T, F, U
        self.dtype = np.dtype(dtype)
        self.G = CELL_GATES[cell]
        self.S = 2 * U if cell == CELL_LSTM else U
        self.seq = (cell, act, int(self.rs), T, F, U)
        r = np.random.default_rng(seed)
        GU = self.G * U
        self.x = r.normal(size=(n, T * F)).astype(self.dtype)
        self.W_ih = (scale * r.normal(size=(GU, F)) / np.sqrt(F)).astype(self.dtype)
        self.W_hh = (scale * r.normal(size=(GU, U)) / np.sqrt(U)).astype(self.dtype)
        self.b_ih = (0.3 * r.normal(size=GU)).astype(self.dtype)
        self.b_hh = (0.3 * r.normal(size=GU)).astype(self.dtype)
        self.state0 = r.normal(size=(n, self.S)).astype(self.dtype)
        self.y_size = n * (T * U if self.rs else U)
        self.dy = r.normal(size=self.y_size).astype(self.dtype)

    def nan(self, size, extra=0):
        return np.full(size + extra, np.nan, self.dtype)

    def forward(self, k, state="zeros", n_threads=1, extra=0):
        """Run k.rnn_forward on NaN-filled buffers (flat workspaces `extra` values longer than needed); state:
        "zeros" (state0 None, state_out given), "given" (state0 given, state_out None) or "aliased" (state_out is
        state0). Returns the buffers."""
        n, T, U, GU = self.n, self.T, self.U, self.G * self.U
        b = {"y": self.nan(self.y_size), "states": self.nan((T + 1) * n * U, extra),
             "gates": self.nan(T * n * GU, extra), "proj": self.nan(n * T * GU, extra),
             "cells": None if self.cell == CELL_SIMPLE else self.nan((T + 1) * n * U, extra)}
        state0 = None if state == "zeros" else self.state0.copy()
        state_out = {"zeros": np.full((n, self.S), np.nan, self.dtype), "given": None, "aliased": state0}[state]
        k.rnn_forward(b["y"], b["states"], b["gates"], b["cells"], b["proj"], self.x, self.W_ih, self.W_hh,
                      self.b_ih, self.b_hh, state0, state_out, self.seq, n_threads)
        b["state_out"] = state_out
        return b

    def backward(self, k, b, n_threads=1, with_dx=True, extra=0):
        """Run k.rnn_backward after forward() filled b; returns the gradients (dx None without with_dx)."""
        n, T, U, GU = self.n, self.T, self.U, self.G * self.U
        g = {"dx": np.full_like(self.x, np.nan) if with_dx else None,
             "dW_ih": np.full_like(self.W_ih, np.nan), "dW_hh": np.full_like(self.W_hh, np.nan),
             "db_ih": np.full_like(self.b_ih, np.nan), "db_hh": np.full_like(self.b_hh, np.nan)}
        dgates, carry = self.nan(T * n * GU, extra), self.nan(3 * n * U, extra)
        k.rnn_backward(g["dx"], g["dW_ih"], g["dW_hh"], g["db_ih"], g["db_hh"], dgates, b["gates"], b["cells"], carry,
                       self.dy, self.x, b["states"], self.W_ih, self.W_hh, self.seq, n_threads)
        g["dgates"] = dgates
        return g


def forward_outputs(case, b):
    """What the forward pass defines: y, the final state and the used part of states, gates and cells."""
    n, T, U, GU = case.n, case.T, case.U, case.G * case.U
    out = {"y": b["y"], "states": b["states"][:(T + 1) * n * U], "gates": b["gates"][:T * n * GU]}
    if b["state_out"] is not None:
        out["state_out"] = b["state_out"]
    if case.cell == CELL_LSTM:
        out["cells"] = b["cells"][:(T + 1) * n * U]
    elif case.cell == CELL_GRU:
        out["cells"] = b["cells"][:T * n * U]  # W_hn h + b_hn of each step; [T] is not used
    return out


def backward_outputs(case, g):
    out = {k: v for k, v in g.items() if v is not None and k != "dgates"}
    out["dgates"] = g["dgates"][:case.T * case.n * case.G * case.U]
    return out


def compare(c_out, py_out, dtype):
    assert c_out.keys() == py_out.keys()
    for name in py_out:
        assert not np.isnan(c_out[name]).any(), f"{name}: an element was not written"
        assert_close(c_out[name], py_out[name], dtype, name)


@pytest.mark.parametrize("cell, act", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("n", [1, 3, 7])
@pytest.mark.parametrize("T", [1, 5])
@pytest.mark.parametrize("state", ["zeros", "given", "aliased"])
def test_rnn_matches_twin(c_kernels, py_kernels, dtype, cell, act, return_sequences, n, T, state):
    case = Case(cell, act, return_sequences, n, T, 4, 6, dtype, seed=n + 10 * T)
    bc, bp = case.forward(c_kernels, state), case.forward(py_kernels, state)
    compare(forward_outputs(case, bc), forward_outputs(case, bp), dtype)
    if state == "aliased":  # the carried state: h_T (then c_T) of every sequence
        last = bp["states"][T * n * case.U:(T + 1) * n * case.U].reshape(n, case.U)
        assert np.array_equal(bp["state_out"][:, :case.U], last)
    gc, gp = case.backward(c_kernels, bc), case.backward(py_kernels, bp)
    compare(backward_outputs(case, gc), backward_outputs(case, gp), dtype)


@pytest.mark.parametrize("cell, act", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("n", [1, 3])
def test_rnn_backward_without_dx(c_kernels, cell, act, n):
    """dx None: the same weight gradients, bit for bit, as with dx."""
    case = Case(cell, act, True, n, 5, 3, 7, np.float64, seed=3)
    with_dx = case.backward(c_kernels, case.forward(c_kernels, "given"))
    without = case.backward(c_kernels, case.forward(c_kernels, "given"), with_dx=False)
    assert without["dx"] is None
    for name in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        assert np.array_equal(with_dx[name], without[name]), name


@pytest.mark.parametrize("cell, act", CELLS, ids=CELL_IDS)
def test_rnn_writes_only_what_it_needs(c_kernels, cell, act):
    """Flat workspaces longer than needed: the values past the needed size stay untouched."""
    extra = 11
    for n in (1, 4):
        case = Case(cell, act, True, n, 3, 5, 6, np.float64, seed=4)
        b = case.forward(c_kernels, "given", extra=extra)
        g = case.backward(c_kernels, b, extra=extra)
        for buf in (b["states"], b["gates"], b["proj"], b["cells"], g["dgates"]):
            if buf is not None:
                assert np.isnan(buf[-extra:]).all()
        ref = Case(cell, act, True, n, 3, 5, 6, np.float64, seed=4)
        gr = ref.backward(c_kernels, ref.forward(c_kernels, "given"))
        for name in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh"):
            assert np.array_equal(g[name], gr[name]), name


@pytest.fixture
def own_loops(c_kernels):
    """The C backend without BLAS (its own loops) for the duration of a test."""
    had_blas, lib_split, gemm = c_kernels.blas_enabled(), blas_modes.library_split(), blas_modes.scipy_gemm()
    c_kernels.set_blas(None, None)
    try:
        yield c_kernels
    finally:
        blas_modes.restore(c_kernels, had_blas, gemm, lib_split)
        assert c_kernels.blas_enabled() == had_blas


@pytest.mark.parametrize("cell, act", CELLS, ids=CELL_IDS)
def test_rnn_sequence_results_do_not_depend_on_its_batch(own_loops, dtype, cell, act):
    """On the kernels' own loops, a sequence run alone (the matrix-vector path: tiles of as many rows of W_hh as a
    vector has lanes, their sums reduced together) and within a batch (two sequences per tile, each sum reduced
    apart) gives the same bits: both take every sum in the same order. So do its per-sequence gradients (dx and
    the gate gradients). U = 13: whole vectors and leftovers in each dot product, full and partial row tiles."""
    n, T, F, U = 5, 4, 11, 13
    batch = Case(cell, act, True, n, T, F, U, dtype, seed=8)
    bb = batch.forward(own_loops, "given")
    GU = batch.G * U
    gates = bb["gates"][:T * n * GU].reshape(T, n, GU).copy()  # the backward pass overwrites them
    gb = batch.backward(own_loops, bb)
    for i in (0, 3, 4):
        one = Case(cell, act, True, 1, T, F, U, dtype, seed=8)
        one.x, one.state0, one.dy = batch.x[i:i + 1], batch.state0[i:i + 1], batch.dy.reshape(n, -1)[i]
        one.W_ih, one.W_hh, one.b_ih, one.b_hh = batch.W_ih, batch.W_hh, batch.b_ih, batch.b_hh
        b1 = one.forward(own_loops, "given")
        assert np.array_equal(b1["y"], bb["y"].reshape(n, -1)[i])
        assert np.array_equal(b1["states"].reshape(T + 1, U), bb["states"].reshape(T + 1, n, U)[:, i])
        assert np.array_equal(b1["gates"].reshape(T, GU), gates[:, i])
        g1 = one.backward(own_loops, b1)
        assert np.array_equal(g1["dx"][0], gb["dx"][i])
        assert np.array_equal(g1["dgates"].reshape(T, GU), gb["dgates"].reshape(T, n, GU)[:, i])


def blas_case(cell, act, dtype, seed=5):
    """A case whose step products, input projection and weight products all reach FASTNN_BLAS_MIN_WORK."""
    U, T, F = 40, 4, 33
    G = CELL_GATES[cell]
    n = 32768 // (G * U * U) + 2
    assert n * G * U * U >= 32768 and n > 1
    return Case(cell, act, True, n, T, F, U, dtype, seed=seed)


@pytest.mark.parametrize("cell, act", CELLS, ids=CELL_IDS)
def test_rnn_blas_paths_match_twin(blas_mode, c_kernels, py_kernels, dtype, cell, act):
    case = blas_case(cell, act, dtype)
    bc, bp = case.forward(c_kernels, "aliased"), case.forward(py_kernels, "aliased")
    compare(forward_outputs(case, bc), forward_outputs(case, bp), dtype)
    compare(backward_outputs(case, case.backward(c_kernels, bc)), backward_outputs(case, case.backward(py_kernels, bp)),
            dtype)


def thread_case(cell, act, dtype):
    """A case whose every step has work for 3 threads (n G U U multiply-adds), as do the final products."""
    U, T, F = 64, 2, 40
    G = CELL_GATES[cell]
    per_thread = min_work_per_thread() or (1 << 21)
    n = 3 * per_thread // (G * U * U) + 5
    assert_threads(n * G * U * U)
    return Case(cell, act, False, n, T, F, U, dtype, seed=6)


@pytest.mark.parametrize("cell, act", CELLS, ids=CELL_IDS)
def test_rnn_results_do_not_depend_on_threads(blas_mode, c_kernels, dtype, cell, act):
    """Bit-identical for 1, 2 and 3 threads on the kernels' own loops and with the BLAS called whole; with the BLAS
    cut into one band per thread, OpenBLAS picks its kernels by the shape of each call, so a float64 sum may round
    differently in its last bits (as for the dense kernels)."""
    case = thread_case(cell, act, dtype)
    results = []
    for nt in THREADS:
        b = case.forward(c_kernels, "given", n_threads=nt)
        g = case.backward(c_kernels, b, n_threads=nt)
        results.append({**forward_outputs(case, b), **backward_outputs(case, g)})
    for nt, other in zip(THREADS[1:], results[1:]):
        for name, value in results[0].items():
            if blas_mode == "blas-split":
                assert_close(other[name], value, dtype, f"{name}, n_threads={nt}")
            else:
                assert np.array_equal(other[name], value), f"{name}: n_threads={nt} differs from 1"


@pytest.mark.parametrize("cell, act", CELLS, ids=CELL_IDS)
def test_rnn_scratch_size_matches_twin(c_kernels, py_kernels, cell, act):
    for T, F, U, n in [(1, 1, 1, 1), (5, 3, 7, 4), (64, 65, 100, 0)]:
        seq = (cell, act, 0, T, F, U)
        G = CELL_GATES[cell]
        assert c_kernels.rnn_scratch_size(seq, n) == py_kernels.rnn_scratch_size(seq, n)
        assert c_kernels.rnn_scratch_size(seq, n) == n * (2 * (T + 1) * U + 2 * T * G * U)


@pytest.mark.parametrize("seq", [(3, TANH, 0, 2, 2, 2), (CELL_SIMPLE, SIGMOID, 0, 2, 2, 2), (CELL_LSTM, TANH, 0, 0, 2, 2),
                                 (CELL_GRU, TANH, 0, 2, 0, 2), (CELL_GRU, TANH, 0, 2, 2, 0), (CELL_LSTM, TANH, 0, 2, 2)],
                         ids=["cell", "simple-act", "steps", "features", "units", "short"])
def test_rnn_rejects_bad_geometry(c_kernels, seq):
    with pytest.raises(ValueError):
        c_kernels.rnn_scratch_size(seq, 1)
    x, w = np.zeros((1, 4)), np.zeros((4, 2))
    buf = np.zeros(100)
    with pytest.raises(ValueError):
        c_kernels.rnn_forward(buf[:2], buf, buf, buf, buf, x, w, w, buf[:4], buf[:4], None, None, seq, 1)


def _forward_args(case):
    n, T, U, GU = case.n, case.T, case.U, case.G * case.U
    return {"y": case.nan(case.y_size), "states": case.nan((T + 1) * n * U), "gates": case.nan(T * n * GU),
            "cells": case.nan((T + 1) * n * U), "proj": case.nan(n * T * GU), "x": case.x, "W_ih": case.W_ih,
            "W_hh": case.W_hh, "b_ih": case.b_ih, "b_hh": case.b_hh, "state0": case.state0.copy(),
            "state_out": np.full((n, case.S), np.nan, case.dtype), "seq": case.seq}


FORWARD_ORDER = ["y", "states", "gates", "cells", "proj", "x", "W_ih", "W_hh", "b_ih", "b_hh", "state0", "state_out",
                 "seq"]
BACKWARD_ORDER = ["dx", "dW_ih", "dW_hh", "db_ih", "db_hh", "dgates", "gates", "cells", "carry", "dy", "x", "states",
                  "W_ih", "W_hh", "seq"]

# (argument, how to spoil it): each must make the call raise ValueError
FORWARD_SPOILERS = [("y", lambda a: a[:-1]), ("y", lambda a: np.concatenate([a, a[:1]])),
                    ("states", lambda a: a[:-1]), ("gates", lambda a: a[:-1]), ("cells", lambda a: a[:-1]),
                    ("cells", lambda a: None), ("proj", lambda a: a[:-1]), ("x", lambda a: a[:, :-1]),
                    ("W_ih", lambda a: a[:-1]), ("W_ih", lambda a: a[:, :-1]), ("W_hh", lambda a: a[:, :-1]),
                    ("b_ih", lambda a: a[:-1]), ("b_hh", lambda a: np.concatenate([a, a[:1]])),
                    ("state0", lambda a: a[:-1]), ("state0", lambda a: np.ascontiguousarray(a[:, :-1])),
                    ("state_out", lambda a: a.reshape(-1, 1)[:-1]), ("gates", lambda a: a.astype(np.float32)),
                    ("states", lambda a: a[::2])]


@pytest.mark.parametrize("name, spoil", FORWARD_SPOILERS, ids=[f"{s[0]}-{i}" for i, s in enumerate(FORWARD_SPOILERS)])
def test_rnn_forward_rejects_wrong_buffers(c_kernels, name, spoil):
    case = Case(CELL_LSTM, TANH, True, 3, 4, 5, 6, np.float64)
    args = _forward_args(case)
    args[name] = spoil(args[name])
    with pytest.raises(ValueError):
        c_kernels.rnn_forward(*[args[k] for k in FORWARD_ORDER], 1)


BACKWARD_SPOILERS = [("dx", lambda a: a[:, :-1]), ("dW_ih", lambda a: a[:-1]), ("dW_hh", lambda a: a[:, :-1]),
                     ("db_ih", lambda a: a[:-1]), ("db_hh", lambda a: a[:-1]), ("dgates", lambda a: a[:-1]),
                     ("gates", lambda a: a[:-1]), ("cells", lambda a: a[:-1]), ("cells", lambda a: None),
                     ("carry", lambda a: a[:-1]), ("dy", lambda a: a[:-1]), ("x", lambda a: a[:, :-1]),
                     ("states", lambda a: a[:-1]), ("W_ih", lambda a: a[:, :-1]), ("W_hh", lambda a: a[:-1]),
                     ("dW_ih", lambda a: a.astype(np.float32))]


@pytest.mark.parametrize("name, spoil", BACKWARD_SPOILERS, ids=[f"{s[0]}-{i}" for i, s in enumerate(BACKWARD_SPOILERS)])
def test_rnn_backward_rejects_wrong_buffers(c_kernels, name, spoil):
    case = Case(CELL_GRU, TANH, False, 3, 4, 5, 6, np.float64)
    b = case.forward(c_kernels, "given")
    n, T, U, GU = case.n, case.T, case.U, case.G * case.U
    args = {"dx": np.full_like(case.x, np.nan), "dW_ih": np.full_like(case.W_ih, np.nan),
            "dW_hh": np.full_like(case.W_hh, np.nan), "db_ih": case.nan(GU), "db_hh": case.nan(GU),
            "dgates": case.nan(T * n * GU), "gates": b["gates"], "cells": b["cells"], "carry": case.nan(3 * n * U),
            "dy": case.dy, "x": case.x, "states": b["states"], "W_ih": case.W_ih, "W_hh": case.W_hh, "seq": case.seq}
    args[name] = spoil(args[name])
    with pytest.raises(ValueError):
        c_kernels.rnn_backward(*[args[k] for k in BACKWARD_ORDER], 1)


def test_rnn_simple_cell_takes_no_cells(c_kernels, py_kernels):
    """The simple cell runs with cells None on both backends."""
    case = Case(CELL_SIMPLE, TANH, True, 2, 3, 4, 5, np.float64)
    bc, bp = case.forward(c_kernels, "zeros"), case.forward(py_kernels, "zeros")
    assert bc["cells"] is None
    compare(backward_outputs(case, case.backward(c_kernels, bc)), backward_outputs(case, case.backward(py_kernels, bp)),
            np.float64)


# ---------------------------------------------------------------------------------------------------- embedding
def embedding_case(dtype, shape, vocab, D, seed=0):
    r = np.random.default_rng(seed)
    ids = r.integers(0, vocab, size=shape).astype(dtype)
    W = r.normal(size=(vocab, D)).astype(dtype)
    dy = r.normal(size=(*shape, D)).astype(dtype)
    return ids, W, dy


@pytest.mark.parametrize("shape, vocab, D", [((1,), 1, 1), ((3, 5), 7, 4), ((4, 9), 3, 17), ((2, 30), 50, 40),
                                             ((0,), 5, 3)])
def test_embedding_matches_twin(c_kernels, py_kernels, dtype, shape, vocab, D):
    ids, W, dy = embedding_case(dtype, shape, vocab, D)
    out = {}
    for name, k in (("c", c_kernels), ("py", py_kernels)):
        y = np.full((*shape, D), np.nan, dtype)
        k.embedding_forward(y, ids, W, 1)
        dW = np.full_like(W, np.nan)
        k.embedding_backward(dW, dy, ids, 1)
        out[name] = (y, dW)
    assert np.array_equal(out["c"][0], out["py"][0])  # a copy
    assert not np.isnan(out["c"][1]).any()
    assert_close(out["c"][1], out["py"][1], dtype)


def test_embedding_backward_sums_repeated_ids(c_kernels, py_kernels, dtype):
    ids = np.array([[2, 0, 2, 2], [5, 2, 0, 3]], dtype=dtype)
    r = np.random.default_rng(1)
    dy = r.normal(size=(2, 4, 19)).astype(dtype)
    want = np.zeros((6, 19))
    for i, token in enumerate(ids.reshape(-1).astype(int)):
        want[token] += dy.reshape(-1, 19)[i]
    for k in (c_kernels, py_kernels):
        dW = np.full((6, 19), np.nan, dtype)
        k.embedding_backward(dW, dy, ids, 1)
        assert_close(dW, want, dtype)
        assert np.all(dW[[1, 4]] == 0)  # tokens that do not occur get zeros


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # the twin's cast
@pytest.mark.parametrize("bad", [-1.0, 7.0, 8.0, 2.5, -0.5, np.nan, np.inf, -np.inf, 1e30])
def test_embedding_rejects_bad_ids(c_kernels, py_kernels, dtype, bad):
    vocab, D = 7, 5
    ids = np.array([[0, 3, 6], [1, 2, 4]], dtype=dtype)
    ids[1, 1] = bad
    W = np.arange(vocab * D, dtype=dtype).reshape(vocab, D)
    for k in (c_kernels, py_kernels):
        y = np.full((2, 3, D), 7.0, dtype)
        with pytest.raises(ValueError):
            k.embedding_forward(y, ids, W, 1)
        if k is c_kernels:  # the twin writes nothing either, but only the C kernel promises it
            assert np.all(y == 7.0), "a rejected call wrote into y"
        dW = np.full((vocab, D), 7.0, dtype)
        with pytest.raises(ValueError):
            k.embedding_backward(dW, np.ones((2, 3, D), dtype), ids, 1)
        if k is c_kernels:
            assert np.all(dW == 7.0), "a rejected call wrote into dW"


def test_embedding_rejects_wrong_sizes(c_kernels):
    ids, W, dy = embedding_case(np.float64, (3, 4), 5, 6)
    with pytest.raises(ValueError):
        c_kernels.embedding_forward(np.zeros((3, 4, 5)), ids, W, 1)
    with pytest.raises(ValueError):
        c_kernels.embedding_forward(np.zeros((3, 4, 6)), ids.astype(np.float32), W, 1)
    with pytest.raises(ValueError):
        c_kernels.embedding_forward(np.zeros((3, 4, 6)), ids, W.reshape(-1), 1)
    with pytest.raises(ValueError):
        c_kernels.embedding_backward(np.zeros((5, 6)), dy[:, :3], ids, 1)
    with pytest.raises(ValueError):
        c_kernels.embedding_backward(np.zeros((5, 6))[:, ::2], dy, ids, 1)


def test_embedding_results_do_not_depend_on_threads(c_kernels, dtype):
    vocab, D, shape = 300, 1000, (60, 110)  # m D and (vocab + m) D past 3 threads' work
    assert_threads(shape[0] * shape[1] * D)
    ids, W, dy = embedding_case(dtype, shape, vocab, D, seed=2)
    first = None
    for nt in THREADS:
        y = np.full((*shape, D), np.nan, dtype)
        c_kernels.embedding_forward(y, ids, W, nt)
        dW = np.full_like(W, np.nan)
        c_kernels.embedding_backward(dW, dy, ids, nt)
        if first is None:
            first = (y, dW)
        else:
            assert np.array_equal(y, first[0]) and np.array_equal(dW, first[1]), f"n_threads={nt}"


# ------------------------------------------------------------------------------------------------------- repeat
@pytest.mark.parametrize("n, F, repeats", [(1, 1, 1), (3, 5, 4), (7, 33, 2), (2, 4, 9)])
def test_repeat_matches_twin(c_kernels, py_kernels, dtype, n, F, repeats):
    r = np.random.default_rng(n)
    x = r.normal(size=(n, F)).astype(dtype)
    dy = r.normal(size=(n, repeats * F)).astype(dtype)
    out = {}
    for name, k in (("c", c_kernels), ("py", py_kernels)):
        y = np.full((n, repeats * F), np.nan, dtype)
        k.repeat_forward(y, x, repeats, 1)
        dx = np.full_like(x, np.nan)
        k.repeat_backward(dx, dy, repeats, 1)
        out[name] = (y, dx)
    assert np.array_equal(out["c"][0], out["py"][0])
    assert not np.isnan(out["c"][1]).any()
    assert_close(out["c"][1], out["py"][1], dtype)


def test_repeat_rejects_wrong_sizes(c_kernels):
    x, dy = np.zeros((3, 4)), np.zeros((3, 8))
    with pytest.raises(ValueError):
        c_kernels.repeat_forward(np.zeros((3, 7)), x, 2, 1)
    with pytest.raises(ValueError):
        c_kernels.repeat_forward(np.zeros((3, 0)), x, 0, 1)
    with pytest.raises(ValueError):
        c_kernels.repeat_backward(np.zeros((3, 4)), dy[:, :7], 2, 1)
    with pytest.raises(ValueError):
        c_kernels.repeat_backward(np.zeros(12), dy, 2, 1)


def test_repeat_results_do_not_depend_on_threads(c_kernels):
    n, F, repeats = 500, 300, 45
    assert_threads(n * F * repeats)
    r = np.random.default_rng(3)
    x, dy = r.normal(size=(n, F)), r.normal(size=(n, repeats * F))
    results = []
    for nt in THREADS:
        y, dx = np.full((n, repeats * F), np.nan), np.full((n, F), np.nan)
        c_kernels.repeat_forward(y, x, repeats, nt)
        c_kernels.repeat_backward(dx, dy, repeats, nt)
        results.append((y, dx))
    for nt, (y, dx) in zip(THREADS[1:], results[1:]):
        assert np.array_equal(y, results[0][0]) and np.array_equal(dx, results[0][1]), f"n_threads={nt}"
