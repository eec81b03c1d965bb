"""The number of threads fastnn's kernels may use (default: omp_get_max_threads(), i.e. OMP_NUM_THREADS)."""
import operator

from . import _backend

_num_threads = None


def _default():
    return _backend._core.max_threads() if _backend.c_available() else 1


def set_num_threads(n):
    """Let fastnn's kernels use up to n threads (n >= 1). Affects fastnn only, never other OpenMP libraries."""
    global _num_threads
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _num_threads = n


def get_num_threads():
    """The number of threads fastnn's kernels may use."""
    return _default() if _num_threads is None else _num_threads
