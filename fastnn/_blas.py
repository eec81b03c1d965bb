"""Give the C kernels BLAS speed for large products without linking a BLAS: take sgemm/dgemm from SciPy's
scipy.linalg.cython_blas at import (the capsules Cython modules share through __pyx_capi__), check their C
signature and run a self-test before using them. FASTNN_BLAS=0 keeps fastnn on its own kernels.

Threads: with threadpoolctl installed, SciPy's OpenBLAS is set to one thread and fastnn splits each product over
its own OpenMP threads (fastnn.set_num_threads). OpenBLAS's pool stalls badly when another process keeps a core
busy (mnist_mlp, 2 threads on a loaded 2-core machine: 2.5k samples/s with OpenBLAS's pool, 30.6k split by
fastnn), and this way one setting governs all of fastnn's threads. NumPy's own OpenBLAS is a different library
and is left alone. Without threadpoolctl, or with FASTNN_BLAS_SPLIT=0, products run in OpenBLAS's pool, called
from serial code."""
import os

import numpy as np

SOURCE = None  # "scipy" once installed
SPLIT = False  # True when SciPy's BLAS runs single-threaded and fastnn splits products over its threads


def _ref_matmul(a, b):
    """a @ b in float64 through einsum's own loops: NumPy's matmul would start NumPy's OpenBLAS thread pool at
    import, whose threads then spin for a while on the cores fastnn is about to use."""
    return np.einsum("ij,jk->ik", a.astype(np.float64), b.astype(np.float64))


def _self_test(core):
    """A product big enough to take the BLAS path, in both dtypes, against NumPy."""
    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-12)):
        x = rng.normal(size=(40, 33)).astype(dtype)
        W = rng.normal(size=(33, 31)).astype(dtype)
        b = rng.normal(size=31).astype(dtype)
        y = np.empty((40, 31), dtype=dtype)
        core.dense_forward(y, x, W, b, 0, 0.0, 1)
        expected = _ref_matmul(x, W) + b
        if not np.allclose(y, expected, rtol=tol, atol=tol * 10):
            return False
        dz = rng.normal(size=(40, 31)).astype(dtype)
        dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)
        core.dense_backward(dx, dW, db, dz, x, W, 1)
        if not (np.allclose(dW, _ref_matmul(x.T, dz), rtol=tol, atol=tol * 10)
                and np.allclose(dx, _ref_matmul(dz, W.T), rtol=tol, atol=tol * 10)):
            return False
    return True


def _single_thread_scipy_blas():
    """Set SciPy's OpenBLAS to one thread through threadpoolctl; False when that is not possible."""
    from ._threads import _scipy_blas_controllers
    try:
        controllers = _scipy_blas_controllers()
        for lib in controllers:
            lib.set_num_threads(1)
    except Exception:  # threadpoolctl could not talk to the library: keep its pool
        return False
    return bool(controllers) and all(lib.num_threads == 1 for lib in controllers)


def install(core):
    """Install SciPy's gemm into the C backend if possible; returns the BLAS source name or None."""
    global SOURCE, SPLIT
    if core is None or os.environ.get("FASTNN_BLAS", "1") == "0":
        return None
    try:
        from scipy.linalg import cython_blas
        capsules = cython_blas.__pyx_capi__
        # FASTNN_BLAS_SPLIT=0 leaves SciPy's BLAS its own thread pool (products then run in one call each)
        split = os.environ.get("FASTNN_BLAS_SPLIT", "1") != "0" and _single_thread_scipy_blas()
        core.set_blas(capsules["sgemm"], capsules["dgemm"], split)
    except (ImportError, KeyError, TypeError, AttributeError):
        return None
    if not _self_test(core):
        core.set_blas(None, None)
        return None
    SOURCE, SPLIT = "scipy", split
    return SOURCE
