"""Where the sparse int8 kernel beats the dense int8 GEMM: a script, not a test.

For the layers of the 784-256-128-10 MLP (C backend), at weight sparsities from 50% to 99% and batches of 1, 4,
16, 32 and 256, it prunes a one-layer network of each layer's shape, quantizes it and times QuantizedNetwork.predict
with the sparse kernel forced off (fastnn_q8_mlp_forward on the packed weights, the best int8 path of this CPU)
and forced on (fastnn_q8_sparse_gemm's rows on a CSR copy of the nonzeros). Then the whole network (every layer
pruned to the same sparsity). Medians over many calls, one thread; the same Python overhead is in both, so it
shifts no crossover. A ratio dense/sparse above 1 means the sparse kernel is faster.
fastnn.quantized.Q8_SPARSE_RULES is chosen from this.

    PYTHONPATH=. python asv_bench/q8_sparse_crossover.py
"""
import statistics
import sys
import timeit

import numpy as np

import fastnn

SIZES = [784, 256, 128, 10]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]
BATCHES = [1, 4, 16, 32, 256]


def median_us(fn, calls):
    timer = timeit.default_timer
    times = []
    for _ in range(calls):
        start = timer()
        fn()
        times.append(timer() - start)
    return statistics.median(times) * 1e6


def calls_for(batch):
    return max(30, 2000 // batch)


def compare(qnet, X):
    cells = []
    for b in BATCHES:
        x = X[0] if b == 1 else X[:b]
        times = {}
        for mode in ("never", "always"):
            qnet.sparse_kernel = mode
            qnet.predict(x)
            times[mode] = median_us(lambda: qnet.predict(x), calls_for(b))
        qnet.sparse_kernel = "auto"
        cells.append(f"{times['never']:8.1f} {times['always']:8.1f} ({times['never'] / times['always']:4.2f})")
    return cells


def header(first):
    return f"{first:>9} {'sparsity':>8} " + " ".join(f"{'batch ' + str(b) + ': dense sparse (ratio)':>31}"
                                                    for b in BATCHES)


def main():
    rng = np.random.default_rng(0)
    print(f"int8 path: {fastnn.Network([4, 2], loss='mse', backend='c').quantize().int8_path}; one thread; "
          "median us per predict call")
    print(header("layer"))
    for d_in, d_out in zip(SIZES[:-1], SIZES[1:]):
        X = rng.normal(size=(max(BATCHES), d_in)).astype(np.float32)
        for s in SPARSITIES:
            net = fastnn.Network([d_in, d_out], activations="relu", loss="mse", seed=0, backend="c")
            net.prune(s)
            qnet = net.quantize()
            qnet.n_threads = 1
            print(f"{d_in:>4}x{d_out:<4} {s:8.2f} " + " ".join(f"{c:>31}" for c in compare(qnet, X)))
            sys.stdout.flush()
    print(header("network"))
    X = rng.normal(size=(max(BATCHES), SIZES[0])).astype(np.float32)
    for s in SPARSITIES:
        net = fastnn.Network(SIZES, loss="cross_entropy", seed=0, backend="c")
        net.prune(s, scope="layer")
        qnet = net.quantize()
        qnet.n_threads = 1
        print(f"{'784-..-10':>9} {s:8.2f} " + " ".join(f"{c:>31}" for c in compare(qnet, X)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
