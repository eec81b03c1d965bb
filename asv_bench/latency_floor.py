"""What one sample through 784-256-128-10 costs at the least on this machine: a script, not a test.

A single-sample forward pass reads every weight once (235,146 float32 values, 0.94 MB) and does two flops per
weight, so it is bound by how fast the weights stream in from the caches. This prints, per layer and for the
whole network, the median time of fastnn's matrix-vector kernel (called directly, without Network.predict's
argument checks) and of NumPy's `x @ W` (OpenBLAS sgemv), with the bandwidth each reaches, and then the full
`Network.predict(x)` call. Timings are medians over many calls cycling through different input rows, as in
compare.py's infer_latency.

    python -I asv_bench/latency_floor.py
"""
import statistics
import timeit

import numpy as np

import fastnn
from fastnn import _backend

SIZES = [784, 256, 128, 10]
CALLS = 3000


def median_us(fn, rows):
    times = []
    timer = timeit.default_timer
    for row in rows:
        start = timer()
        fn(row)
        times.append(timer() - start)
    return statistics.median(times) * 1e6


def main():
    if not _backend.c_available():
        raise SystemExit("needs the C extension")
    core = _backend.get("c")
    rng = np.random.default_rng(0)
    net = fastnn.Network(SIZES, loss="cross_entropy", seed=0, backend="c")
    print(f"{'layer':>12} {'weights':>9} {'fastnn kernel':>14} {'GB/s':>6} {'numpy x @ W':>12} {'GB/s':>6}")
    for layer in net.layers:
        W, b = layer.W, layer.b
        rows = list(rng.random((CALLS, W.shape[0]), dtype=np.float32))
        y = np.empty(W.shape[1], dtype=np.float32)
        ours = median_us(lambda x: core.dense_forward_single(y, x, W, b, 0, 0.0), rows)
        theirs = median_us(lambda x: x @ W, rows)
        print(f"{W.shape[0]:>5} x {W.shape[1]:<4} {W.nbytes / 1e3:>7.0f}kB {ours:>12.2f}us {W.nbytes / ours / 1e3:>6.1f}"
              f" {theirs:>10.2f}us {W.nbytes / theirs / 1e3:>6.1f}")
    rows = list(rng.random((CALLS, SIZES[0]), dtype=np.float32))
    y = np.empty(SIZES[-1], dtype=np.float32)
    scratch = np.empty(2 * max(SIZES[1:]), dtype=np.float32)
    whole = median_us(lambda x: core.net_forward_single(net._handle, y, x, scratch), rows)
    weights = sum(layer.W.nbytes for layer in net.layers)
    print(f"whole network, one kernel call: {whole:.2f} us ({weights / whole / 1e3:.1f} GB/s of weights)")
    print(f"Network.predict(x), checks and output included: {median_us(net.predict, rows):.2f} us")


if __name__ == "__main__":
    main()
