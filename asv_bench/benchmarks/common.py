"""Shared pieces of the fastnn asv suite: seeded data factories, the parameter grid, backend and thread set-up.

Every benchmark class takes its parameters from here, so the grid stays small enough for
`asv run --python=same --quick` to finish in a few minutes. `setup` of every benchmark calls `require_backend`,
which raises NotImplementedError (asv's "skip this parameter set") when the C extension is missing, so a build
without the extension shows n/a for backend "c" instead of timing the NumPy fallback twice.
"""
import os

import numpy as np

import fastnn

try:  # fastnn >= 0.1
    from fastnn import _backend
except ImportError:  # pragma: no cover - older layouts
    _backend = None

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # optional: without it NumPy's BLAS keeps its own (environment) thread count
    ThreadpoolController = None

SEED = 20240601

BACKENDS = ["c", "python"]
DTYPES = ["float32", "float64"]
BATCHES = [64, 1024]
THREADS = [1, 2]

# an MNIST-shaped classifier: big enough for the products to matter, small enough for the NumPy backend
MLP_SIZES = [784, 256, 128, 10]


def setup(*args):
    """Module-level setup (asv uses it for benchmarks without their own): seed NumPy's legacy global RNG."""
    np.random.seed(SEED)


def available_backends():
    """The backends that work in this environment: "python" always, "c" when the extension imports."""
    c_ok = _backend.c_available() if _backend is not None else fastnn.BACKEND == "c"
    return [name for name in BACKENDS if name == "python" or c_ok]


def require_backend(backend):
    """Skip (NotImplementedError) a parameter set whose backend is not available here."""
    if backend not in available_backends():
        raise NotImplementedError(f"fastnn backend {backend!r} is not available (the C extension did not import)")


def use_threads(backend, n_threads):
    """Run a backend with n_threads threads, whatever OMP_NUM_THREADS says.

    "c": fastnn.set_num_threads, which governs all of the C backend's threads (with threadpoolctl installed
    fastnn keeps SciPy's BLAS single-threaded and splits large products over its own threads itself).
    "python": the NumPy backend computes in NumPy's BLAS, so that library's pool gets n_threads (through
    threadpoolctl, touching only the BLAS shipped in NumPy's folder)."""
    fastnn.set_num_threads(n_threads)
    if backend == "python" and ThreadpoolController is not None:
        for lib in ThreadpoolController().lib_controllers:  # wheels: site-packages/numpy.libs/
            if lib.user_api == "blas" and "numpy" in os.path.basename(os.path.dirname(lib.filepath)):
                lib.set_num_threads(n_threads)


def rng(seed=SEED):
    return np.random.default_rng(seed)


def make_x(n, d_in, dtype, seed=SEED):
    """n standard-normal samples of width d_in (C-contiguous, of the given dtype)."""
    return rng(seed).standard_normal((n, d_in)).astype(dtype)


def make_xy(n, d_in, d_out, dtype, task="classification", seed=SEED):
    """(X, y): X standard normal; y integer labels in [0, d_out) for "classification", standard-normal
    targets of shape (n, d_out) for "regression"."""
    gen = rng(seed)
    X = gen.standard_normal((n, d_in)).astype(dtype)
    if task == "classification":
        y = gen.integers(0, d_out, size=n)
    elif task == "regression":
        y = gen.standard_normal((n, d_out)).astype(dtype)
    else:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    return X, y


def make_network(backend, dtype, sizes=MLP_SIZES, activations="relu", loss="cross_entropy", seed=SEED):
    """A seeded fastnn.Network on the given backend."""
    return fastnn.Network(sizes, activations=activations, loss=loss, dtype=dtype, seed=seed, backend=backend)


def make_flat(n, dtype, seed=SEED):
    """Flat parameter / gradient buffers of n values, as Network lays them out (small values)."""
    gen = rng(seed)
    params = (0.1 * gen.standard_normal(n)).astype(dtype)
    grads = (0.01 * gen.standard_normal(n)).astype(dtype)
    return params, grads


def kernels(backend):
    """The kernel module of a backend (fastnn._core or fastnn._py)."""
    return _backend.get(backend)
