#!/usr/bin/env python
"""GFLOP/s of every matrix-product engine on the products of compare.py's dense workloads, and the engine
fastnn's tuner picks for each: one table, float32.

    python asv_bench/gemm_engines.py                       # 1 and 2 threads, medians of 5 interleaved rounds
    python asv_bench/gemm_engines.py --threads 2 --repeats 3 --workloads wide_mlp

Engines: own (fastnn's packed kernels, csrc/gemm.c), blas-scipy and blas-mkl (the BLAS engine with SciPy's
OpenBLAS or with MKL, when installed), numpy (np.matmul with NumPy's own OpenBLAS, its pool set to the same
threads through threadpoolctl). Each round times every engine on every product, the engine order rotated from
round to round; a timing is the median of the calls made in about --budget seconds. "tuner" is what
fastnn._gemm.tune chooses with the BLAS the import installed (see `fastnn._blas.SOURCE`), between own and blas."""
import argparse
import datetime
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from benchmarks import gemm as bench  # noqa: E402


def measure(engines, products, threads, repeats, budget, log):
    """{(product, threads, engine): [GFLOP/s per round]}."""
    data = {name: bench.operands(shape) for name, shape in products.items()}
    rates = {}
    for r in range(repeats):
        shift = r % len(engines)
        for engine in engines[shift:] + engines[:shift]:
            for n_threads in threads:
                before = bench.select(engine, n_threads)
                try:
                    for name, shape in products.items():
                        call = bench.engine_call(engine, shape, *data[name], n_threads)
                        rate = bench.gflops(shape, bench.median_seconds(call, budget=budget, min_runs=3))
                        rates.setdefault((name, n_threads, engine), []).append(rate)
                finally:
                    bench.restore(before)
            print(f"[round {r + 1}/{repeats}] {engine} done", file=log, flush=True)
    return rates


def tuner_choices(products, threads):
    """{(product, threads): engine label} as fastnn._gemm.tune picks them when timed on that many threads."""
    from fastnn import _blas, _gemm
    picks = {}
    for n_threads in threads:
        _gemm.forget()  # a shape keeps its first choice for the process: time again at this thread count
        for name, (trans_a, trans_b, m, n, k) in products.items():
            shape = ("float32", trans_a, trans_b, m, n, k)
            engine = _gemm.tune([shape], n_threads).get(shape) or _gemm.engine_for(*shape)
            picks[name, n_threads] = f"blas ({_blas.SOURCE})" if engine == "blas" else engine
    return picks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; medians reported (default 5)")
    parser.add_argument("--budget", type=float, default=0.05,
                        help="seconds of calls per timing (default 0.05; at least 3 calls)")
    parser.add_argument("--workloads", default=",".join(bench.WORKLOADS),
                        help=f"comma-separated subset of {','.join(bench.WORKLOADS)}")
    parser.add_argument("--engines", default=None, help="comma-separated subset of the available engines")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in workloads if w not in bench.WORKLOADS]
    if bad or not threads or min(threads) < 1 or args.repeats < 1:
        parser.error(f"bad --workloads {bad}, --threads or --repeats")
    available = bench.available_engines()
    engines = [e for e in bench.ENGINES if e in available]
    if args.engines:
        engines = [e for e in args.engines.split(",") if e in available]
    products = {name: shape for name, shape in bench.PRODUCTS.items() if name.split()[0] in workloads}

    import fastnn
    from fastnn import _blas, _gemm
    started = datetime.datetime.now(datetime.timezone.utc)
    rates = measure(engines, products, threads, args.repeats, args.budget, sys.stderr)
    picks = tuner_choices(products, threads) if "own" in engines else {}

    print(f"Matrix-product engines, float32 GFLOP/s, median of {args.repeats} interleaved round(s) "
          f"({started:%Y-%m-%d %H:%M} UTC)")
    print(f"- fastnn {fastnn.__version__}, own kernels: {_gemm.isa()}; BLAS installed at import: "
          f"{_blas.describe()}; numpy {np.__version__}; {os.cpu_count()} CPUs, load average "
          f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("- products: op(A) (m, k) x op(B) (k, n); N = as stored, T = transposed")
    print()
    print("| product | m × n × k | ops | threads | " + " | ".join(engines) + " | fastest | tuner |")
    print("|---|---|---|---:|" + "---:|" * len(engines) + "---|---|")
    for name, (trans_a, trans_b, m, n, k) in products.items():
        for n_threads in threads:
            meds = {e: statistics.median(rates[name, n_threads, e]) for e in engines
                    if (name, n_threads, e) in rates}
            best = max(meds, key=meds.get) if meds else "—"
            cells = " | ".join(f"{meds[e]:,.1f}" if e in meds else "—" for e in engines)
            ops = ("T" if trans_a else "N") + ("T" if trans_b else "N")
            print(f"| {name} | {m} × {n} × {k} | {ops} | {n_threads} | {cells} | {best} | "
                  f"{picks.get((name, n_threads), '—')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
