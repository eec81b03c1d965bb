"""The number of threads fastnn's kernels may use (default: omp_get_max_threads(), i.e. OMP_NUM_THREADS).

Large products run in the BLAS that fastnn takes from SciPy (fastnn/_blas.py): single-threaded, split over these
same threads, when threadpoolctl is installed; otherwise in OpenBLAS's own pool, which OPENBLAS_NUM_THREADS or
OMP_NUM_THREADS size."""
import operator
import os

from . import _backend

_num_threads = None


def _default():
    return _backend._core.max_threads() if _backend.c_available() else 1


def _scipy_blas_controllers():
    """threadpoolctl controllers of the BLAS libraries SciPy loaded (empty without threadpoolctl or SciPy)."""
    try:
        import scipy
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    scipy_root = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    libs_dir = os.path.join(scipy_root, "scipy.libs")
    return [lib for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas" and os.path.abspath(lib.filepath).startswith(libs_dir + os.sep)]


def set_num_threads(n):
    """Let fastnn's kernels use up to n threads (n >= 1). Never calls omp_set_num_threads, so other OpenMP
    libraries keep their setting."""
    global _num_threads
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _reserve_gemm_space(n)
    _num_threads = n


def _reserve_gemm_space(n):
    """Packing space for the own matrix-product kernels of n threads (and one more caller at once)."""
    from . import _backend
    if _backend.c_available():
        _backend._core.gemm_reserve(n + 1)


def get_num_threads():
    """The number of threads fastnn's kernels may use."""
    return _default() if _num_threads is None else _num_threads


def blas_num_threads():
    """Threads of SciPy's BLAS as threadpoolctl reports them, or None when unknown."""
    counts = [lib.num_threads for lib in _scipy_blas_controllers()]
    return max(counts) if counts else None


class ThreadSetting:
    """The `n_threads` attribute of a network: the threads its kernels may use, None (the default) following
    fastnn.get_num_threads() at each call."""

    _n_threads = None

    @property
    def n_threads(self):
        """Threads this network's kernels may use: None (the default) follows fastnn.get_num_threads()."""
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value):
        from ._validation import check_int
        self._n_threads = None if value is None else check_int("n_threads", value, 1)
        if value is not None:
            _reserve_gemm_space(self._n_threads)

    def _n_threads_now(self):
        return get_num_threads() if self._n_threads is None else self._n_threads
