#!/usr/bin/env python
"""What one epoch costs through fastnn.MLPClassifier against Network.fit, on scikit-learn's bench_mnist
configuration: 784-100-100-10, ReLU, batch 200, Adam (lr 1e-3), alpha 1e-4, float32, real MNIST (60,000 images).

    python -I asv_bench/estimator_epoch.py [--epochs 5] [--repeats 3] [--threads 2] [--data DIR] [--sparse]
    python -I asv_bench/estimator_epoch.py --sklearn --threads 2     # scikit-learn's MLPClassifier beside them

Each repeat fits the estimator for --epochs iterations (tol=0 so it never stops early) and a Network of the same
sizes for the same epochs with the same batch size and optimizer, interleaved, and prints the median seconds per
epoch of each and their ratio. --sparse also times the estimator on the images as a scipy CSR matrix (MNIST is
81% zeros). --sklearn also times sklearn.neural_network.MLPClassifier with the same parameters on the same float32
data, interleaved, its NumPy BLAS limited to --threads through threadpoolctl (issue 13's target: fastnn's epoch
at least 2.5 x faster than scikit-learn's). Needs scikit-learn and MNIST (fastnn.datasets.load_mnist: --data, $FASTNN_DATA or ~/.cache/fastnn).
"""
import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import fastnn  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per fit (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="fits of each, interleaved (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="fastnn threads (default: fastnn's default)")
    parser.add_argument("--data", default=None, help="the MNIST folder (default: $FASTNN_DATA or ~/.cache/fastnn)")
    parser.add_argument("--sparse", action="store_true", help="also time the estimator on CSR input")
    parser.add_argument("--sklearn", action="store_true", help="also time scikit-learn's MLPClassifier")
    args = parser.parse_args()
    if args.threads:
        fastnn.set_num_threads(args.threads)
    X, y, _, _ = fastnn.datasets.load_mnist(args.data)
    X = (X.reshape(len(X), -1) / 255.0).astype(np.float32)
    runs = {"MLPClassifier": [], "Network.fit": []}
    if args.sparse:
        from scipy import sparse
        X_csr = sparse.csr_matrix(X)
        runs["MLPClassifier (CSR)"] = []
    params = dict(hidden_layer_sizes=(100, 100), batch_size=200, learning_rate_init=1e-3, alpha=1e-4, tol=0.0,
                  max_iter=args.epochs, random_state=0)
    if args.sklearn:
        import contextlib
        from sklearn.neural_network import MLPClassifier as SkMLP
        runs["sklearn MLPClassifier"] = []
        try:
            from threadpoolctl import threadpool_limits
            limit = threadpool_limits(limits=fastnn.get_num_threads(), user_api="blas")
        except ImportError:
            limit = contextlib.nullcontext()
    for _ in range(args.repeats):
        if args.sklearn:
            sk = SkMLP(**params)
            with warnings.catch_warnings(), limit:
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                sk.fit(X, y)
                runs["sklearn MLPClassifier"].append((time.perf_counter() - start) / sk.n_iter_)
        est = fastnn.MLPClassifier(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            est.fit(X, y)
            runs["MLPClassifier"].append((time.perf_counter() - start) / est.n_iter_)
            if args.sparse:
                est = fastnn.MLPClassifier(**params)
                start = time.perf_counter()
                est.fit(X_csr, y)
                runs["MLPClassifier (CSR)"].append((time.perf_counter() - start) / est.n_iter_)
        net = fastnn.Network([784, 100, 100, 10], activations="relu", loss="cross_entropy", dtype="float32", seed=0)
        start = time.perf_counter()
        net.fit(X, y, epochs=args.epochs, batch_size=200, optimizer="adam", learning_rate=1e-3,
                weight_decay=1e-4 / 200)
        runs["Network.fit"].append((time.perf_counter() - start) / args.epochs)
    print(f"fastnn {fastnn.__version__}, backend {fastnn.BACKEND}, {fastnn.get_num_threads()} threads, "
          f"{args.repeats} repeats x {args.epochs} epochs, MNIST 60,000 x 784 float32")
    base = statistics.median(runs["Network.fit"])
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"{name:>22}: {median:.3f} s per epoch (median; runs {', '.join(f'{t:.3f}' for t in times)}), "
              f"{median / base:.2f} x Network.fit")
    if args.sklearn:
        sk = statistics.median(runs["sklearn MLPClassifier"])
        for name in ("MLPClassifier", "Network.fit"):
            print(f"scikit-learn's epoch / fastnn {name}'s: {sk / statistics.median(runs[name]):.2f} x")


if __name__ == "__main__":
    main()
