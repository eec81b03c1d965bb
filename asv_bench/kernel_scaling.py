"""Thread scaling of the kernels one mnist_mlp step is made of, next to a large sgemm: a script, not a benchmark.

For each of the dense forward and backward kernels at mnist_mlp's shapes (batch 128), the Adam update over its
235,146 parameters and NumPy's float32 2048³ matmul, the time on 1 and on 2 threads, alternated in one process,
medians over the rounds, and the ratio. Shows which parts of a training step do not speed up with a second
thread (compare thread_scaling.py, which times whole epochs).

    python -I asv_bench/kernel_scaling.py
    python -I asv_bench/kernel_scaling.py --rounds 9
"""
import argparse
import statistics
import timeit

import numpy as np

from fastnn import _backend


def best_us(fn, number):
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not _backend.c_available():
        raise SystemExit("needs the C extension")
    core = _backend.get("c")
    rng = np.random.default_rng(0)
    cases = {}
    for m, k, n in ((128, 784, 256), (128, 256, 128)):
        x = rng.random((m, k), dtype=np.float32)
        W = rng.random((k, n), dtype=np.float32) * 0.01
        b = np.zeros(n, np.float32)
        y = np.empty((m, n), np.float32)
        dz = rng.random((m, n), dtype=np.float32)
        dW, db = np.empty_like(W), np.empty_like(b)
        dx = np.empty_like(x) if k != 784 else None  # the first layer computes no dx in training
        cases[f"dense_forward {m}x{k}x{n} (relu)"] = (
            lambda nt, y=y, x=x, W=W, b=b: core.dense_forward(y, x, W, b, 3, 0.0, nt), 200)
        cases[f"dense_backward {m}x{k}x{n}"] = (
            lambda nt, dx=dx, dW=dW, db=db, dz=dz, x=x, W=W: core.dense_backward(dx, dW, db, dz, x, W, nt), 200)
    n_params = 784 * 256 + 256 * 128 + 128 * 10 + 256 + 128 + 10
    p, g, m1, m2 = (np.zeros(n_params, np.float32) for _ in range(4))
    cases[f"adam_step {n_params:,} parameters"] = (
        lambda nt: core.adam_step(p, g, m1, m2, 0, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, nt), 200)
    try:
        from threadpoolctl import threadpool_limits
        a = rng.random((2048, 2048), dtype=np.float32)

        def numpy_sgemm(nt):
            with threadpool_limits(nt, user_api="blas"):
                a @ a
        cases["NumPy sgemm 2048^3"] = (numpy_sgemm, 1)
    except ImportError:
        pass

    results = {name: {1: [], 2: []} for name in cases}
    for _ in range(args.rounds):
        for name, (fn, number) in cases.items():
            for nt in (1, 2):
                results[name][nt].append(best_us(lambda: fn(nt), number))
    print(f"medians of {args.rounds} alternated rounds")
    print("| kernel | 1 thread | 2 threads | ratio |\n|---|---:|---:|---:|")
    for name, res in results.items():
        one, two = statistics.median(res[1]), statistics.median(res[2])
        print(f"| {name} | {one:,.1f} us | {two:,.1f} us | {one / two:.2f}x |")


if __name__ == "__main__":
    main()
