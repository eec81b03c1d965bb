"""MKL as the BLAS engine (fastnn/_blas.py): loaded with ctypes when the `mkl` wheel is installed, checked here
against the plain loops engine that defines the product, and a whole network trained on MKL against one trained
on SciPy's OpenBLAS. Skipped without the wheel."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import _backend, _blas

LOOPS, BLAS = 1, 3  # fastnn/_gemm.py ENGINES

pytestmark = pytest.mark.skipif(not _backend.c_available() or os.environ.get("FASTNN_BACKEND", "").lower() == "python",
                                reason="needs the C backend")
needs_mkl = pytest.mark.skipif(_blas.mkl_path() is None,
                               reason="the mkl wheel is not installed (pip install fastnn[mkl])")

# (m, n, k): single rows and columns, odd sizes around the kernels' register blocks, the compare.py layer shapes
# (batch 128 through 784-256-128-10) and products large enough that fastnn cuts them into one band per thread
SHAPES = [(1, 1, 1), (1, 10, 128), (7, 1, 5), (3, 5, 7), (17, 33, 65), (40, 31, 33), (128, 256, 784),
          (128, 10, 128), (784, 256, 128), (130, 67, 1), (256, 300, 129), (96, 512, 200)]
# the fastnn under test (installed, or the source tree with its built extension); children run in another folder
# so that a source tree without the extension in the current folder does not shadow it
ROOT = Path(fastnn.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mkl_core():
    """The C backend with MKL as its BLAS for this module's tests, then whatever import chose."""
    core = _backend.get("c")
    before = _blas.SOURCE
    try:
        _blas.use("mkl")
    except RuntimeError as exc:
        pytest.fail(f"MKL is installed but cannot be used: {exc}")
    try:
        yield core
    finally:
        _blas.use(before)


def _operands(rng, m, n, k, trans_a, trans_b, dtype):
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return A, B


def _error_bound(A, B, trans_a, trans_b, dtype, k):
    """Twice the classic bound on a length-k dot product's rounding error, k eps (|op(A)| |op(B)|), plus the
    rounding of the result: neither engine may be further than that from the exact product."""
    a = np.abs(A.T if trans_a else A).astype(np.float64)
    b = np.abs(B.T if trans_b else B).astype(np.float64)
    return 2 * (k + 1) * np.finfo(dtype).eps * (a @ b)


@needs_mkl
def test_import_chooses_mkl():
    """With the wheel installed and FASTNN_BLAS unset, the import installs MKL (it passed the self-test)."""
    if os.environ.get("FASTNN_BLAS", "").strip().lower() not in ("", "1", "auto", "mkl"):
        pytest.skip("FASTNN_BLAS asks for another BLAS")
    assert _blas.SOURCE == "mkl"
    assert _backend.get("c").blas_enabled()
    assert _blas.describe().startswith("mkl (")
    if os.environ.get("FASTNN_BLAS_SPLIT", "1") != "0":
        assert _blas.SPLIT and _blas.num_threads() == 1  # sequential MKL, products split by fastnn


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)],
                         ids=["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("m,n,k", SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
def test_mkl_matches_the_loops(mkl_core, m, n, k, trans_a, trans_b, dtype):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    bound = _error_bound(A, B, trans_a, trans_b, dtype, k)
    expected = np.full((m, n), np.nan, dtype=dtype)
    mkl_core.gemm(LOOPS, trans_a, trans_b, A, B, expected)
    for threads in (1, 2):
        got = np.full((m, n), np.nan, dtype=dtype)  # every element must be written
        mkl_core.gemm(BLAS, trans_a, trans_b, A, B, got, n_threads=threads)
        assert np.all(np.abs(got.astype(np.float64) - expected) <= bound), f"{threads} threads"


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_mkl_accumulate_bias_activation(mkl_core, dtype):
    """C = C + op(A) op(B), and bias + product: the BLAS call's beta = 1. (No activation here: _core.gemm leaves
    the epilogue's deriv_of unset, so act != 0 reads a stray pointer; see the report of the mkl branch.)"""
    rng = np.random.default_rng(3)
    m, n, k = 70, 90, 45
    for trans_a, trans_b in ((False, False), (True, False), (False, True)):
        A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
        bound = _error_bound(A, B, trans_a, trans_b, dtype, k) + 4 * np.finfo(dtype).eps
        C0 = rng.standard_normal((m, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        for kwargs in ({"accumulate": True}, {"bias": bias}):
            expected, got = C0.copy(), C0.copy()
            mkl_core.gemm(LOOPS, trans_a, trans_b, A, B, expected, **kwargs)
            mkl_core.gemm(BLAS, trans_a, trans_b, A, B, got, n_threads=2, **kwargs)
            assert np.all(np.abs(got.astype(np.float64) - expected) <= bound + np.abs(expected) * 1e-6), kwargs


@needs_mkl
def test_use_switches_and_restores(mkl_core):
    """_blas.use swaps the BLAS at run time and back; an unknown source is refused."""
    assert _blas.SOURCE == "mkl"
    if "scipy" in _blas.available():
        assert _blas.use("scipy") == "scipy" and mkl_core.blas_enabled()
    assert _blas.use(None) is None and not mkl_core.blas_enabled()
    assert _blas.use("mkl") == "mkl" and mkl_core.blas_enabled()
    with pytest.raises(ValueError):
        _blas.use("openblas")


TRAIN = """
import json, numpy as np, fastnn
from fastnn import _blas
rng = np.random.default_rng(0)
X = rng.standard_normal((512, 784)).astype(np.float32)
y = rng.integers(0, 10, size=512)
net = fastnn.Network([784, 256, 128, 10], activations="relu", loss="cross_entropy", seed=0)
net.n_threads = 2
history = net.fit(X, y, epochs=3, batch_size=128, optimizer="adam", learning_rate=1e-3)
print(json.dumps({"source": _blas.SOURCE, "loss": [float(v) for v in history["loss"]],
                  "out": net.predict(X[:64]).tolist(), "w": [w.ravel().tolist() for w in net.get_weights()]}))
"""


def _train(blas):
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_BACKEND", "FASTNN_BLAS_SPLIT")}
    # every product on the BLAS engine, so the two runs differ exactly in their BLAS
    env.update(FASTNN_BLAS=blas, FASTNN_GEMM="blas", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", TRAIN], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_mkl
def test_network_trained_on_mkl_matches_scipy():
    """A network trained with FASTNN_BLAS=mkl agrees with one trained with FASTNN_BLAS=scipy to float32
    tolerance (the choice is made at import, so each runs in its own interpreter)."""
    pytest.importorskip("scipy")
    mkl, scipy = _train("mkl"), _train("scipy")
    assert mkl["source"] == "mkl" and scipy["source"] == "scipy"
    np.testing.assert_allclose(mkl["loss"], scipy["loss"], rtol=1e-4)
    np.testing.assert_allclose(mkl["out"], scipy["out"], rtol=1e-3, atol=1e-5)
    for a, b in zip(mkl["w"], scipy["w"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-4)  # Adam moves a weight by about lr per step


def test_without_mkl_scipy_stays(monkeypatch):
    """Where the mkl wheel is missing, FASTNN_BLAS=mkl warns and keeps SciPy's BLAS, and use("mkl") refuses
    without changing the BLAS in use (the library lookup is made to find nothing)."""
    pytest.importorskip("scipy")
    core = _backend.get("c")
    before = _blas.SOURCE
    monkeypatch.setattr(_blas, "_mkl_candidates", lambda: [])
    monkeypatch.setattr(_blas, "_mkl", None)
    monkeypatch.setattr(_blas, "_mkl_error", None)
    monkeypatch.setenv("FASTNN_BLAS", "mkl")
    try:
        with pytest.warns(RuntimeWarning, match="FASTNN_BLAS=mkl"):
            assert _blas.install(core) == "scipy"
        assert "mkl" not in _blas.available()
        with pytest.raises(RuntimeError, match="not installed"):
            _blas.use("mkl")
        assert _blas.SOURCE == "scipy" and core.blas_enabled()
    finally:
        monkeypatch.undo()
        _blas.use(before)


FIRST_USER = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
print(lib.{call}({value}))  # another library sets MKL up first
lib.MKL_Get_Max_Threads()
import fastnn
from fastnn import _blas
print(_blas.SOURCE, _blas.SPLIT)
"""


@needs_mkl
@pytest.mark.parametrize("call,value,expected", [
    ("MKL_Set_Threading_Layer", 3, ["3", "mkl", "False"]),  # GNU threads: fastnn calls MKL from serial code
    ("MKL_Set_Interface_Layer", 1, ["1", "scipy", None]),  # ILP64: MKL refused, SciPy's gemm instead
], ids=["threaded-layer", "ilp64"])
def test_mkl_set_up_by_another_library_first(call, value, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_BACKEND", "FASTNN_BLAS", "FASTNN_BLAS_SPLIT")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if expected[1] == "scipy":
        pytest.importorskip("scipy")
    done = subprocess.run([sys.executable, "-c", FIRST_USER.format(call=call, value=value), _blas.mkl_path()],
                          env=env, capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=120)
    assert done.returncode == 0, done.stderr
    got = done.stdout.split()
    assert len(got) == 3 and all(e is None or g == e for g, e in zip(got, expected)), got
