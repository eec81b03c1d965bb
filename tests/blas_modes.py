"""The BLAS modes the C kernels are tested in, shared by the kernel tests: no BLAS (the kernels' own OpenMP
loops), SciPy's gemm called once per product from serial code ("blas"), or cut into one band of rows or columns per
thread of fastnn's ("blas-split", what fastnn/_blas.py installs when it could set SciPy's BLAS to one thread).

The gemm is installed here directly, not through fastnn/_blas.py, whose import-time self-test would silently fall
back to the own loops if the BLAS path were broken."""
import pytest


def scipy_gemm():
    """SciPy's sgemm/dgemm capsules (what fastnn/_blas.py installs), or None."""
    try:
        from scipy.linalg import cython_blas
        capi = cython_blas.__pyx_capi__
        return capi["sgemm"], capi["dgemm"]
    except (ImportError, AttributeError, KeyError):
        return None


def library_split():
    """Whether fastnn/_blas.py installed the BLAS in split mode (SciPy's BLAS set to one thread, products cut
    into one band per thread of fastnn's own)."""
    from fastnn import _blas
    return bool(getattr(_blas, "SPLIT", False))


def scipy_blas_single_threaded():
    """Whether SciPy's BLAS runs on one thread (what the split mode needs), asked of threadpoolctl directly: the
    library's own flag stays False when its import-time self-test rejected the BLAS. When the import chose MKL,
    SciPy's BLAS was left alone: it is set to one thread here, as fastnn/_blas.py would have done."""
    try:
        from fastnn import _blas, _threads
        if getattr(_blas, "SOURCE", None) == "mkl" and _blas._want_split() and _threads.blas_num_threads() != 1:
            _blas._single_thread_scipy_blas()
        return _threads.blas_num_threads() == 1
    except (ImportError, AttributeError):
        return library_split()


def install_gemm(c_kernels, gemm, split):
    if split:
        c_kernels.set_blas(*gemm, True)
    else:
        c_kernels.set_blas(*gemm)


def installed(c_kernels, param):
    """A fixture body: install the BLAS mode `param` ("own-loops", "blas" or "blas-split") in the C backend,
    yield its name ("own" for the own loops), then restore what was installed before."""
    if not hasattr(c_kernels, "set_blas"):
        if param != "own-loops":
            pytest.skip("this build of the C backend has no BLAS path")
        yield "own"
        return
    had_blas, lib_split = c_kernels.blas_enabled(), library_split()
    gemm = scipy_gemm()
    if param == "own-loops":
        c_kernels.set_blas(None, None)
        assert not c_kernels.blas_enabled()
        mode = "own"
    else:
        if gemm is None:
            pytest.skip("SciPy's cython_blas is not available")
        split = param == "blas-split"
        if split and not scipy_blas_single_threaded():
            # calling a multi-threaded BLAS from several OpenMP threads is not a configuration fastnn uses
            pytest.skip("SciPy's BLAS was not set to one thread (threadpoolctl): no split mode here")
        try:
            install_gemm(c_kernels, gemm, split)
        except TypeError as exc:  # e.g. an ILP64 SciPy, which set_blas refuses
            pytest.skip(f"SciPy's gemm cannot be used here: {exc}")
        assert c_kernels.blas_enabled()
        mode = param
    try:
        yield mode
    finally:
        restore(c_kernels, had_blas, gemm, lib_split)
        assert c_kernels.blas_enabled() == had_blas


def restore(c_kernels, had_blas, gemm, lib_split):
    """Put back the BLAS fastnn/_blas.py installed at import (MKL or SciPy's), or none."""
    from fastnn import _blas
    if had_blas and hasattr(_blas, "reinstall"):
        _blas.reinstall(c_kernels)
    elif had_blas and gemm is not None:
        install_gemm(c_kernels, gemm, lib_split)
    else:
        c_kernels.set_blas(None, None)
