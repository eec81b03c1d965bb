"""Backend selection: the C extension when it imports, else the NumPy twin with one clear warning.

FASTNN_BACKEND=python forces the NumPy backend; FASTNN_BACKEND=c makes a missing extension an ImportError.
"""
import os
import warnings

from . import _py

# Threads that finish a parallel region spin for about 30 microseconds (GOMP_SPINCOUNT 3000; libgomp counts some
# 100 spins per microsecond) and then sleep, unless the user chose a policy. Unbounded spinning (libgomp's default
# spins for 3 ms) holds a core that another process, or fastnn's own next serial step, needs: with one other busy
# process on a 2-core machine, mnist_mlp on 2 threads ran at 3.4k samples/s spinning and 51.7k sleeping. Sleeping
# at once costs a wake-up of tens of microseconds at the next region, which on a virtual machine ate the whole
# gain of a second thread on mnist_mlp; a short spin covers the gaps between the regions of one training step.
# asv_bench/thread_scaling.py --spin measures both. libgomp reads these when it loads, which for most programs is
# the import of fastnn._core just below; the setting is the process's, so it also applies to other libraries
# that use libgomp after this point.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")

try:
    from . import _core
    _CORE_ERROR = None
except ImportError as exc:  # not built, failed to build, or an unusual platform
    _core = None
    _CORE_ERROR = exc

BACKENDS = ("c", "python")


def _default_name():
    forced = os.environ.get("FASTNN_BACKEND", "").strip().lower()
    if forced not in ("", "c", "python"):
        raise ImportError(f"FASTNN_BACKEND must be 'c' or 'python', got {forced!r}")
    if forced == "python":
        return "python"
    if _core is None:
        if forced == "c":
            raise ImportError(f"FASTNN_BACKEND=c but the C extension fastnn._core does not import: {_CORE_ERROR}")
        hint = ""
        source_tree = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if os.path.exists(os.path.join(source_tree, "setup.py")):
            hint = (f" fastnn was imported from its source folder {source_tree}; if you installed it, run Python "
                    "from another directory or with -I so the installed package is used.")
        warnings.warn("fastnn: the C extension fastnn._core is not available; using the NumPy backend, which "
                      f"gives the same results more slowly.{hint}", RuntimeWarning, stacklevel=3)
        return "python"
    return "c"


DEFAULT = _default_name()

if _core is not None:
    from . import _blas, _gemm
    _blas.install(_core)
    _gemm.install(_core)


def get(name=None):
    """The kernel module for a backend name (None: the default one)."""
    if name is None:
        name = DEFAULT
    if name == "c":
        if _core is None:
            raise ImportError(f"backend 'c' is not available: the C extension does not import ({_CORE_ERROR})")
        return _core
    if name == "python":
        return _py
    raise ValueError(f"backend must be None, 'c' or 'python', got {name!r}")


def c_available():
    return _core is not None
