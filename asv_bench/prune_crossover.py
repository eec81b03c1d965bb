"""Where sparse inference through a pruned Dense layer's CSR copy beats the dense kernel: a script, not a test.

For the layers of the 784-256-128-10 MLP (float32, C backend), at weight sparsities from 50% to 99% and batches
of 1 to 256, it times Network.predict of a one-layer network of each layer's shape, then of the whole network (global
pruning), with the CSR copies forced off (the dense kernels: matrix-vector for one sample, the blocked GEMM for a
batch) and forced on (csrc/prune.c's sparse_dense_forward). Times are medians over many calls, one thread (one
sample never threads; batches use n_threads=1 so the comparison is kernel against kernel); the same Python
overhead is in both, so it shifts no crossover.
A ratio dense/sparse above 1 means the sparse kernel is faster. fastnn.pruning.SPARSE_RULES is chosen from this.

One sample through the dense kernels takes one of two times depending on the allocation of the network (stable
within a process), so `--processes N` repeats the single-sample comparison of the whole network (every layer at
the same sparsity) in N fresh processes, one line each.

    PYTHONPATH=. python asv_bench/prune_crossover.py
    PYTHONPATH=. python asv_bench/prune_crossover.py --processes 5
"""
import argparse
import subprocess
import statistics
import sys
import timeit

import numpy as np

import fastnn
from fastnn import _backend, pruning

SIZES = [784, 256, 128, 10]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]
BATCHES = [1, 8, 32, 256, 1024]


def median_us(fn, calls):
    timer = timeit.default_timer
    times = []
    for _ in range(calls):
        start = timer()
        fn()
        times.append(timer() - start)
    return statistics.median(times) * 1e6


def calls_for(batch):
    return max(30, 3000 // batch)


def layer_table(rng):
    print("per layer: a one-layer Network.predict, dense vs CSR copy, median us (ratio dense/sparse; > 1: sparse "
          "faster)")
    print(f"{'layer':>9} {'sparsity':>8} " + " ".join(f"{'batch ' + str(b):>24}" for b in BATCHES))
    for d_in, d_out in zip(SIZES[:-1], SIZES[1:]):
        X = rng.normal(size=(max(BATCHES), d_in)).astype(np.float32)
        for s in SPARSITIES:
            net = fastnn.Network([d_in, d_out], activations="relu", loss="mse", seed=0, backend="c")
            net.n_threads = 1
            net.prune(s)
            print(f"{d_in:>4}x{d_out:<4} {s:8.2f} " + " ".join(f"{c:>24}" for c in compare(net, X)))
            sys.stdout.flush()


def compare(net, X):
    """Per batch: 'dense sparse (ratio)' for net.predict with the CSR copies off, then forced on."""
    saved, cells = pruning.SPARSE_RULES, []
    try:
        for batch in BATCHES:
            xb = X[0] if batch == 1 else X[:batch]
            times = []
            for rules in (((2.0, 0),), ((0.0, 10**9),)):  # never sparse, then always sparse
                pruning.SPARSE_RULES = rules
                net._drop_sparse()
                net.predict(xb)
                times.append(median_us(lambda: net.predict(xb), calls_for(batch)))
            cells.append(f"{times[0]:8.2f} {times[1]:8.2f} ({times[0] / times[1]:4.2f})")
    finally:
        pruning.SPARSE_RULES = saved
    return cells


def network_table(rng):
    print("\nwhole network, Network.predict, median us: dense / sparse (ratio), global magnitude pruning")
    print(f"{'sparsity':>8} " + " ".join(f"{'batch ' + str(b):>24}" for b in BATCHES))
    X = rng.normal(size=(max(BATCHES), SIZES[0])).astype(np.float32)
    for s in SPARSITIES:
        net = fastnn.Network(SIZES, activations="relu", loss="cross_entropy", seed=0, backend="c")
        net.n_threads = 1
        net.prune(s)
        layers = " ".join(f"{v:.3f}" for v in net.sparsity(per_layer=True).values())
        print(f"{s:8.2f} " + " ".join(f"{c:>24}" for c in compare(net, X)) + f"   layers {layers}")
        sys.stdout.flush()


def single_sample_line():
    """Whole network, one sample, every layer pruned to the same sparsity: 'sparsity: dense/sparse=ratio'."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, SIZES[0])).astype(np.float32)
    cells = []
    for s in (0.88, 0.90, 0.92, 0.93, 0.95):
        net = fastnn.Network(SIZES, activations="relu", loss="cross_entropy", seed=0, backend="c")
        net.n_threads = 1
        net.prune(s, scope="layer")
        times = []
        saved = pruning.SPARSE_RULES
        try:
            for rules in (((2.0, 0),), ((0.0, 10**9),)):
                pruning.SPARSE_RULES = rules
                net._drop_sparse()
                net.predict(X[0])
                k = iter(range(10**9))
                times.append(median_us(lambda: net.predict(X[next(k) % len(X)]), 2000))
        finally:
            pruning.SPARSE_RULES = saved
        cells.append(f"{s:.2f}: {times[0]:.1f}/{times[1]:.1f}={times[0] / times[1]:.2f}")
    print("  ".join(cells))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=0)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not _backend.c_available():
        raise SystemExit("needs the C extension")
    if args.one:
        single_sample_line()
        return
    if args.processes:
        print("one sample, whole network, every layer at the sparsity given: dense us / CSR us = ratio, per "
              "fresh process")
        for _ in range(args.processes):
            subprocess.run([sys.executable, __file__, "--one"], check=True)
        return
    rng = np.random.default_rng(0)
    print(f"fastnn {fastnn.__file__}; rule in use: SPARSE_RULES = {pruning.SPARSE_RULES}")
    layer_table(rng)
    network_table(rng)


if __name__ == "__main__":
    main()
