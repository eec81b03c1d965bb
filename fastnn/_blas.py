"""Give the C kernels a BLAS engine for large products without linking a BLAS: at import, take sgemm/dgemm from
Intel MKL when the `mkl` wheel is installed (`pip install fastnn[mkl]`), else from SciPy's
scipy.linalg.cython_blas (the capsules Cython modules share through __pyx_capi__), and run a self-test before
using them. The BLAS is one engine of fastnn/_gemm.py among others: a product runs on it only where the tuner
timed it faster than fastnn's own kernels.

FASTNN_BLAS chooses the source: unset (or 1) = MKL when it loads and passes the self-test, else SciPy; "mkl" =
MKL, else SciPy with a warning; "scipy" = SciPy only; 0 = no BLAS (fastnn's own kernels only).

Why MKL by default once installed: installing the extra is the request for it, and on Intel CPUs its sgemm is the
fastest BLAS we can take (PyTorch's CPU speed comes from it). Its results differ from OpenBLAS's in the last bits,
as any two BLAS do; FASTNN_BLAS=scipy keeps OpenBLAS's numbers. MKL is loaded with ctypes from the wheel's
libmkl_rt (never linked, never needed: `import fastnn` works without it), set to its LP64 interface (int
dimensions, what the C side passes) and refused when another user of the same library already fixed ILP64.

Threads: fastnn splits each BLAS product over its own OpenMP threads (fastnn.set_num_threads), one band of the
output per thread, so the BLAS must run single-threaded inside those calls:
- MKL is switched to its sequential threading layer, which also keeps Intel's OpenMP runtime out of the
  process. The layer is a setting of the whole library, for every user of that libmkl_rt in the process, and
  MKL fixes it at its first call: when another user got there first with a threaded layer, fastnn calls MKL
  from serial code instead (no split) and leaves MKL's threads as they are.
- SciPy's OpenBLAS is set to one thread through threadpoolctl when that is installed. OpenBLAS's pool stalls
  badly when another process keeps a core busy (mnist_mlp, 2 threads on a loaded 2-core machine: 2.5k samples/s
  with OpenBLAS's pool, 30.6k split by fastnn), and this way one setting governs all of fastnn's threads.
  NumPy's own OpenBLAS is a different library and is left alone.
FASTNN_BLAS_SPLIT=0 leaves the BLAS its own thread pool (MKL's default threading layer, MKL_NUM_THREADS; or
OpenBLAS's) and calls it once per product from serial code; so does a SciPy without threadpoolctl."""
import os
import re
import sys
import warnings

import numpy as np

SOURCE = None  # "mkl" or "scipy" once installed
SPLIT = False  # True when the BLAS runs single-threaded and fastnn splits products over its threads
SOURCES = ("mkl", "scipy")

_core = None
_mkl = None  # _Mkl once libmkl_rt is loaded (kept for the life of the process: the addresses point into it)
_mkl_error = None  # why MKL could not be loaded, once tried

# MKL's service-function constants (mkl_service.h)
_MKL_INTERFACE_LP64 = 0
_MKL_THREADING_SEQUENTIAL = 1
_ENGINE_BLAS = 3  # fastnn/_gemm.py ENGINES["blas"]


def _ref_matmul(a, b):
    """a @ b in float64 through einsum's own loops: NumPy's matmul would start NumPy's OpenBLAS thread pool at
    import, whose threads then spin for a while on the cores fastnn is about to use."""
    return np.einsum("ij,jk->ik", a.astype(np.float64), b.astype(np.float64))


def _self_test(core):
    """The installed BLAS engine against a float64 reference: both dtypes, the four transpose cases, a product
    that starts from zeros, from C (accumulate) and from a bias row."""
    rng = np.random.default_rng(0)
    m, n, k = 40, 31, 33
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-12)):
        for trans_a in (False, True):
            for trans_b in (False, True):
                a = rng.normal(size=(m, k)).astype(dtype)
                b = rng.normal(size=(k, n)).astype(dtype)
                A = np.ascontiguousarray(a.T) if trans_a else a
                B = np.ascontiguousarray(b.T) if trans_b else b
                expected = _ref_matmul(a, b)
                bias = rng.normal(size=n).astype(dtype)
                C0 = rng.normal(size=(m, n)).astype(dtype)
                for start, kwargs in ((0.0, {}), (C0, {"accumulate": True}), (bias, {"bias": bias})):
                    C = C0.copy()
                    core.gemm(_ENGINE_BLAS, trans_a, trans_b, A, B, C, **kwargs)
                    if not np.allclose(C, expected + start, rtol=tol, atol=tol * 10):
                        return False
    return True


class _Mkl:
    """libmkl_rt loaded with ctypes: its Fortran gemm addresses and how it was set up."""

    def __init__(self, path, lib, sgemm, dgemm, sequential, version):
        self.path, self.lib, self.sgemm, self.dgemm = path, lib, sgemm, dgemm
        self.sequential = sequential  # True when MKL runs its sequential layer (fastnn may split products)
        self.version = version

    def max_threads(self):
        return int(self.lib.MKL_Get_Max_Threads())


def _mkl_candidates():
    """Paths where libmkl_rt may be: the files of the installed `mkl` distribution (pip, also --user), then the
    usual places under sys.prefix (a conda environment's mkl has no pip metadata)."""
    paths = []
    try:
        from importlib import metadata
        files = metadata.distribution("mkl").files or []
        for f in files:
            name = f.name
            if name.startswith("libmkl_rt.so") or (name.startswith("mkl_rt") and name.endswith(".dll")):
                paths.append(os.path.normpath(str(f.locate())))
    except Exception:  # no `mkl` distribution, or metadata that cannot be read
        pass
    if sys.platform == "win32":
        folder = os.path.join(sys.prefix, "Library", "bin")
        names = ("mkl_rt.3.dll", "mkl_rt.2.dll")
    else:
        folder = os.path.join(sys.prefix, "lib")
        names = ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so")
    paths += [os.path.join(folder, name) for name in names]
    # newest soname first, each path once
    return sorted(dict.fromkeys(p for p in paths if os.path.isfile(p)), key=lambda p: p.rsplit("rt", 1)[-1],
                  reverse=True)


def mkl_path():
    """The libmkl_rt fastnn would load, or None when the `mkl` wheel is not installed."""
    paths = _mkl_candidates()
    return paths[0] if paths else None


def _load_mkl(want_split):
    """Load libmkl_rt once and set it up (LP64; sequential when fastnn is to split products). Returns the _Mkl,
    or None with the reason in _mkl_error."""
    global _mkl, _mkl_error
    if _mkl is not None or _mkl_error is not None:
        return _mkl
    path = mkl_path()
    if path is None:
        _mkl_error = "the mkl wheel is not installed (pip install fastnn[mkl])"
        return None
    import ctypes
    try:
        lib = ctypes.CDLL(path)
        # LP64 (int dimensions) before any other MKL call; the answer is the layer in force
        lib.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
        if lib.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64) != _MKL_INTERFACE_LP64:
            _mkl_error = f"{path} already runs its ILP64 interface in this process"
            return None
        sequential = False
        if want_split:
            lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
            sequential = lib.MKL_Set_Threading_Layer(_MKL_THREADING_SEQUENTIAL) == _MKL_THREADING_SEQUENTIAL
        sgemm = ctypes.cast(lib.sgemm_, ctypes.c_void_p).value
        dgemm = ctypes.cast(lib.dgemm_, ctypes.c_void_p).value
        version = None
        try:
            buf = ctypes.create_string_buffer(256)
            lib.MKL_Get_Version_String(buf, len(buf))
            found = re.search(r"Version ([0-9][0-9.]*)", buf.value.decode(errors="replace"))
            version = f"oneMKL {found.group(1)}" if found else None
        except (AttributeError, OSError):
            pass
    except (OSError, AttributeError) as exc:  # not loadable here, or not an MKL single dynamic library
        _mkl_error = f"{path}: {exc}"
        return None
    if not sgemm or not dgemm:
        _mkl_error = f"{path} has no sgemm_/dgemm_"
        return None
    _mkl = _Mkl(path, lib, sgemm, dgemm, sequential, version)
    return _mkl


def _want_split():
    return os.environ.get("FASTNN_BLAS_SPLIT", "1") != "0"


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


def _install_mkl(core):
    """Install MKL's gemm; returns whether it is installed and passed the self-test."""
    mkl = _load_mkl(_want_split())
    if mkl is None:
        return False
    split = mkl.sequential
    core.set_blas_addresses(mkl.sgemm, mkl.dgemm, split)
    if not _self_test(core):
        core.set_blas(None, None)
        return False
    _set_state("mkl", split)
    return True


def _install_scipy(core):
    """Install SciPy's gemm; returns whether it is installed and passed the self-test."""
    try:
        from scipy.linalg import cython_blas
        capsules = cython_blas.__pyx_capi__
        # FASTNN_BLAS_SPLIT=0 leaves SciPy's BLAS its own thread pool (products then run in one call each)
        split = _want_split() and _single_thread_scipy_blas()
        core.set_blas(capsules["sgemm"], capsules["dgemm"], split)
    except (ImportError, KeyError, TypeError, AttributeError):
        return False
    if not _self_test(core):
        core.set_blas(None, None)
        return False
    _set_state("scipy", split)
    return True


def _set_state(source, split):
    global SOURCE, SPLIT
    SOURCE, SPLIT = source, split


def _requested():
    """FASTNN_BLAS as one of "auto", "mkl", "scipy", None (no BLAS)."""
    value = os.environ.get("FASTNN_BLAS", "").strip().lower()
    if value in ("", "1", "auto"):
        return "auto"
    if value == "0":
        return None
    if value not in SOURCES:
        raise ImportError(f"FASTNN_BLAS must be one of 0, 1, auto, mkl, scipy; got {value!r}")
    return value


def install(core):
    """Install the BLAS FASTNN_BLAS asks for into the C backend (at import); returns its name or None."""
    global _core
    _core = core
    if core is None:
        return None
    requested = _requested()
    if requested is None:
        return None
    if requested in ("auto", "mkl"):
        if hasattr(core, "set_blas_addresses") and _install_mkl(core):
            return SOURCE
        if requested == "mkl":
            reason = _mkl_error or "its self-test failed"
            warnings.warn(f"fastnn: FASTNN_BLAS=mkl but MKL cannot be used ({reason}); using SciPy's BLAS",
                          RuntimeWarning, stacklevel=2)
    if _install_scipy(core):
        return SOURCE
    return None


def reinstall(core=None):
    """Put back the BLAS this module installed, after a test or a benchmark swapped the C backend's gemm."""
    core = core or _core
    if SOURCE == "mkl":
        core.set_blas_addresses(_mkl.sgemm, _mkl.dgemm, SPLIT)
    elif SOURCE == "scipy":
        from scipy.linalg import cython_blas
        capsules = cython_blas.__pyx_capi__
        core.set_blas(capsules["sgemm"], capsules["dgemm"], SPLIT)
    else:
        core.set_blas(None, None)


def available():
    """The BLAS sources this process can use: "mkl" when its library is installed, "scipy" with SciPy."""
    found = []
    if mkl_path() is not None and _mkl_error is None:
        found.append("mkl")
    try:
        from scipy.linalg import cython_blas  # noqa: F401
        found.append("scipy")
    except ImportError:
        pass
    return found


def use(source):
    """Switch the BLAS engine at run time to "mkl", "scipy" or None (none), for comparisons of the two;
    networks tune again afterwards (the recorded engine choices are forgotten). Raises RuntimeError when the
    source cannot be used (the one installed before stays)."""
    if _core is None:
        raise RuntimeError("the C backend is not available")
    if source not in SOURCES + (None,):
        raise ValueError(f"source must be one of {SOURCES} or None, got {source!r}")
    before = (SOURCE, SPLIT)
    if source is None:
        _core.set_blas(None, None)
        _set_state(None, False)
    elif not (_install_mkl(_core) if source == "mkl" else _install_scipy(_core)):
        reinstall(_core)
        reason = (_mkl_error or "its self-test failed") if source == "mkl" else "no usable SciPy gemm"
        raise RuntimeError(f"BLAS source {source!r} cannot be used: {reason}")
    if (SOURCE, SPLIT) != before:
        from . import _gemm
        _gemm.forget()
    return SOURCE


def describe():
    """One line on the BLAS in use, for show_config: source, library and threads."""
    if SOURCE is None:
        return None
    if SOURCE == "mkl":
        how = "sequential, split over fastnn's threads" if SPLIT else "MKL's own threads"
        return f"mkl ({_mkl.version or os.path.basename(_mkl.path)}; {how})"
    how = "single-threaded, split over fastnn's threads" if SPLIT else "OpenBLAS's own thread pool"
    return f"scipy (cython_blas sgemm/dgemm; {how})"


def num_threads():
    """Threads of the installed BLAS: MKL's own count, SciPy's through threadpoolctl; None when unknown."""
    if SOURCE == "mkl":
        return _mkl.max_threads()
    from ._threads import blas_num_threads
    return blas_num_threads()
