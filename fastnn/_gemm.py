"""Which engine runs each matrix product of the C backend: fastnn's own packed kernels (csrc/gemm.c), the BLAS
taken from SciPy (fastnn/_blas.py), or the plain loops that define the product.

By default a product runs on the own kernels, which have the CPU's vector width (AVX-512 or AVX2, chosen at
run time), fuse the bias and the activation into the product, and give results that do not depend on the thread
count. `tune(shapes, threads)` times the engines on those shapes and records the fastest per shape for the rest
of the process; networks call it for their products when they first see a batch size (Network.products). The
first choice for a shape stands, whatever thread count later calls use, so a network's results do not change
with its thread count; a near tie goes to the own kernels. FASTNN_GEMM=own|blas|loops forces one engine for
every product; FASTNN_GEMM_ISA=avx512|avx2|vector|plain caps the own kernels' instruction set."""
import os
import time

import numpy as np

ENGINES = {"auto": 0, "loops": 1, "own": 2, "blas": 3}
ENGINE_NAMES = {v: k for k, v in ENGINES.items()}
ISAS = {"plain": 0, "vector": 1, "avx2": 2, "avx512": 3}
ISA_NAMES = {v: k for k, v in ISAS.items()}

# Another engine must be this much faster on a shape to be chosen over the own kernels: timing noise on a busy
# machine should not flip the choice from run to run (results would then differ in their last bits).
MARGIN = 1.10
TABLE_SIZE = 512  # FASTNN_GEMM_TABLE: the shapes the C table records; later ones keep the default engine

_core = None
_tuned = {}  # (dtype name, trans_a, trans_b, m, n, k) -> (engine name, {engine: seconds}, threads timed on)


def install(core):
    """Reserve packing space and apply FASTNN_GEMM / FASTNN_GEMM_ISA."""
    global _core
    _core = core
    core.gemm_reserve(max(core.max_threads(), 1) + 1)
    isa = os.environ.get("FASTNN_GEMM_ISA", "").strip().lower()
    if isa:
        if isa not in ISAS:
            raise ImportError(f"FASTNN_GEMM_ISA must be one of {sorted(ISAS)}, got {isa!r}")
        try:
            core.set_gemm_isa(ISAS[isa])
        except ValueError:
            raise ImportError(f"FASTNN_GEMM_ISA={isa}: this CPU or build cannot run it (best: "
                              f"{ISA_NAMES[core.gemm_isa(best=True)]})") from None
    force = os.environ.get("FASTNN_GEMM", "").strip().lower()
    if force:
        if force not in ENGINES:
            raise ImportError(f"FASTNN_GEMM must be one of {sorted(ENGINES)}, got {force!r}")
        core.gemm_force(ENGINES[force])


def isa():
    """The instruction set of the own kernels in use ('avx512', 'avx2', 'vector' or 'plain'), None without C."""
    return None if _core is None else ISA_NAMES[_core.gemm_isa()]


def forced():
    """The engine FASTNN_GEMM forces, or None."""
    force = os.environ.get("FASTNN_GEMM", "").strip().lower()
    return force or None


def engine_for(dtype, trans_a, trans_b, m, n, k):
    """The engine an automatic product of this shape runs on ('numpy' on the NumPy backend)."""
    if _core is None:
        return "numpy"
    return ENGINE_NAMES[_core.gemm_choose(np.dtype(dtype) == np.float64, trans_a, trans_b, m, n, k)]


def _time_engine(engine, trans_a, trans_b, A, B, C, threads, budget):
    """The median of a few timed runs (after one warm-up) within about `budget` seconds."""
    _core.gemm(engine, trans_a, trans_b, A, B, C, n_threads=threads)
    times = []
    spent = 0.0
    while len(times) < 3 or (spent < budget and len(times) < 15):
        t0 = time.perf_counter()
        _core.gemm(engine, trans_a, trans_b, A, B, C, n_threads=threads)
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return float(np.median(times))


def tune(shapes, threads, budget=0.003):
    """Time the engines on each (dtype, trans_a, trans_b, m, n, k) in `shapes` not chosen before, on `threads`
    threads, and record the fastest for automatic products of that shape. Returns {shape: engine name}."""
    chosen = {}
    if _core is None:
        return chosen
    blas = _core.blas_enabled() and not forced()
    rng = np.random.default_rng(0)
    for shape in shapes:
        dtype, trans_a, trans_b, m, n, k = shape
        key = (np.dtype(dtype).name, bool(trans_a), bool(trans_b), int(m), int(n), int(k))
        if key not in _tuned and len(_tuned) >= TABLE_SIZE:
            chosen[shape] = engine_for(*key)  # as many shapes as the C table holds were timed: no more
            continue
        if key not in _tuned:
            if not blas or min(m, n, k) < 1 or max(m, n, k) >= 2**31:
                _tuned[key] = (engine_for(*key), {}, threads)
            else:
                A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
                B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
                C = np.empty((m, n), dtype=dtype)
                seconds = {}
                for name in ("own", "blas", "blas", "own"):  # interleaved, the faster of each pair kept
                    t = _time_engine(ENGINES[name], trans_a, trans_b, A, B, C, threads, budget)
                    seconds[name] = min(seconds.get(name, t), t)
                best = "blas" if seconds["blas"] * MARGIN < seconds["own"] else "own"
                try:
                    _core.gemm_record(key[0] == "float64", trans_a, trans_b, m, n, k, ENGINES[best])
                except MemoryError:  # the table is full (many batch sizes): this shape keeps the default
                    best = engine_for(*key)
                _tuned[key] = (best, seconds, threads)
        chosen[shape] = _tuned[key][0]
    return chosen


def tuned():
    """Every shape tuned so far: {(dtype, trans_a, trans_b, m, n, k): (engine, {engine: seconds}, threads)}."""
    return dict(_tuned)


def forget():
    """Forget every recorded choice (the next tune times again)."""
    _tuned.clear()
    if _core is not None:
        _core.gemm_forget()
