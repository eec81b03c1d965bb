"""The matrix products of compare.py's dense workloads, one engine at a time: fastnn's own packed kernels, the BLAS
engine with SciPy's OpenBLAS and with MKL (when the mkl wheel is installed), and NumPy's matmul for reference.
float32, through fastnn._core.gemm (the call the layers make), in GFLOP/s (track_gflops) and seconds (time_gemm).

The products of a dense layer d_in -> d_out on a batch of b rows, W stored (d_in, d_out):
  fwd  y = x W      (b, d_in) x (d_in, d_out)          m=b,    n=d_out, k=d_in
  dW   dW = x^T dz  (d_in, b) x (b, d_out), x stored    m=d_in, n=d_out, k=b
  dx   dx = dz W^T  (b, d_out) x (d_out, d_in), W stored m=b,   n=d_in,  k=d_out (not for the first layer)
`asv_bench/gemm_engines.py` prints the same products as one table, with the engine fastnn's tuner picks."""
import time

import numpy as np

from .common import setup, use_threads  # noqa: F401 (setup: asv's module-level seed)

try:
    from fastnn import _backend, _blas, _gemm
except ImportError:  # pragma: no cover - fastnn before the engines
    _backend = _blas = _gemm = None

# workload: (layer sizes, batch rows, training?) as compare.py runs them; infer_batch predicts 10,000 rows in
# chunks of 4,096 (fastnn.network.INFER_ROWS), so its products have 4,096 rows
WORKLOADS = {
    "mnist_mlp": ([784, 256, 128, 10], 128, True),
    "wide_mlp": ([1024, 2048, 2048, 10], 256, True),
    "infer_batch": ([784, 256, 128, 10], 4096, False),
}
ENGINES = ["own", "blas-scipy", "blas-mkl", "numpy"]
THREADS = [1, 2]
PEAK = (False, False, 2048, 2048, 2048)  # compare.py's sgemm peak: a float32 2048^3 product


def workload_products(sizes, batch, train):
    """{name: (trans_a, trans_b, m, n, k)} of one training step (or one inference chunk) of a dense network."""
    products = {}
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = f"L{i + 1} {d_in}-{d_out}"
        products[f"{layer} fwd"] = (False, False, batch, d_out, d_in)
        if train:
            products[f"{layer} dW"] = (True, False, d_in, d_out, batch)
            if i > 0:
                products[f"{layer} dx"] = (False, True, batch, d_in, d_out)
    return products


PRODUCTS = {f"{w} {name}": shape for w, spec in WORKLOADS.items() for name, shape in workload_products(*spec).items()}


def operands(shape, dtype=np.float32, seed=0):
    """A, B and C of a product (trans_a, trans_b, m, n, k) as _core.gemm takes them (A (k, m) when trans_a...)."""
    trans_a, trans_b, m, n, k = shape
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return A, B, np.empty((m, n), dtype=dtype)


def available_engines():
    """The engines this environment can run: own (C extension), blas-<source> for each BLAS found, numpy."""
    found = ["numpy"]
    if _backend is not None and _backend.c_available() and hasattr(_backend.get("c"), "gemm"):
        found.append("own")
        found += [f"blas-{source}" for source in _blas.available()]
    return found


def engine_call(engine, shape, A, B, C, n_threads):
    """A no-argument function that computes the product on `engine` (the BLAS source already installed)."""
    trans_a, trans_b = shape[:2]
    if engine == "numpy":
        opA, opB = (A.T if trans_a else A), (B.T if trans_b else B)
        return lambda: np.matmul(opA, opB, out=C)
    core = _backend.get("c")
    code = _gemm.ENGINES["own" if engine == "own" else "blas"]
    return lambda: core.gemm(code, trans_a, trans_b, A, B, C, n_threads=n_threads)


def select(engine, n_threads):
    """Make `engine` runnable with n_threads threads: the BLAS source installed for blas-*, NumPy's pool sized.
    Returns what to restore afterwards (the BLAS source before), or raises NotImplementedError to skip."""
    if engine not in available_engines():
        raise NotImplementedError(f"engine {engine!r} is not available here")
    use_threads("python" if engine == "numpy" else "c", n_threads)
    before = _blas.SOURCE if _blas is not None else None
    if engine.startswith("blas-"):
        try:
            _blas.use(engine.split("-", 1)[1])
        except RuntimeError as exc:
            raise NotImplementedError(str(exc)) from None
    return before


def restore(before):
    if _blas is not None and _blas.SOURCE != before:
        _blas.use(before)


def gflops(shape, seconds):
    _, _, m, n, k = shape
    return 2.0 * m * n * k / seconds / 1e9


def median_seconds(call, budget=0.2, min_runs=5, max_runs=200):
    """The median time of `call` over at least min_runs runs (after one warm-up), up to about `budget` s."""
    call()
    times, spent = [], 0.0
    while len(times) < min_runs or (spent < budget and len(times) < max_runs):
        t0 = time.perf_counter()
        call()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return float(np.median(times))


class Gemm:
    """One product of the workloads on one engine: seconds per call, and GFLOP/s (median of timed calls)."""

    params = [list(PRODUCTS), ENGINES, THREADS]
    param_names = ["product", "engine", "n_threads"]
    timeout = 120

    def setup(self, product, engine, n_threads):
        self.before = select(engine, n_threads)
        self.shape = PRODUCTS[product]
        self.call = engine_call(engine, self.shape, *operands(self.shape), n_threads)
        self.call()  # warm-up: packing space, first touch, the BLAS's own buffers

    def teardown(self, product, engine, n_threads):
        restore(self.before)

    def time_gemm(self, product, engine, n_threads):
        self.call()

    def track_gflops(self, product, engine, n_threads):
        return gflops(self.shape, median_seconds(self.call))

    track_gflops.unit = "GFLOP/s"


class GemmPeak:
    """compare.py's sgemm peak (float32 2048^3) on each engine: the ceiling the workloads' products are held to."""

    params = [ENGINES, THREADS]
    param_names = ["engine", "n_threads"]
    timeout = 120

    def setup(self, engine, n_threads):
        self.before = select(engine, n_threads)
        self.call = engine_call(engine, PEAK, *operands(PEAK), n_threads)
        self.call()

    def teardown(self, engine, n_threads):
        restore(self.before)

    def track_gflops(self, engine, n_threads):
        return gflops(PEAK, median_seconds(self.call, budget=1.0, min_runs=3, max_runs=10))

    track_gflops.unit = "GFLOP/s"
