#!/usr/bin/env python
"""fastnn.MLPClassifier against sklearn.neural_network.MLPClassifier: test accuracy and fit time, as a markdown table.

    python -I asv_bench/sklearn_compare.py                    # digits, breast_cancer, iris, wine; median of 3 fits
    python -I asv_bench/sklearn_compare.py --repeats 5 --threads 1 --datasets digits,iris

Identical parameters for both (hidden_layer_sizes=(64,), max_iter=300, random_state=0, everything else the
default: adam, alpha=1e-4, batch_size=min(200, n), tol=1e-4, n_iter_no_change=10), on train_test_split(test_size=0.25,
random_state=0) with StandardScaler fitted on the training part. Fit time is the median of --repeats fits, the two
libraries interleaved fit by fit (so that a busy machine slows both alike); only the classifier's fit is timed
(the data are scaled beforehand). fastnn draws the same initial weights and batches as scikit-learn, so both
usually stop after the same number of epochs (the n_iter columns). --threads sets fastnn's threads and, with
threadpoolctl installed, NumPy's BLAS threads (which scikit-learn's MLP uses); without it both keep their
defaults, printed above the table.
"""
import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import fastnn  # noqa: E402
import sklearn  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

DATASETS = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
            "iris": datasets.load_iris, "wine": datasets.load_wine}
PARAMS = dict(hidden_layer_sizes=(64,), max_iter=300, random_state=0)


def numpy_blas_limit(n):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas") if n else contextlib.nullcontext()


def numpy_blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    counts = {f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info() if i["user_api"] == "blas"}
    return ", ".join(sorted(counts)) or "none found"


def split(name):
    X, y = DATASETS[name](return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def timed_fit(cls, X, y):
    model = cls(**PARAMS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        return model, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="fastnn and NumPy BLAS threads (default: as is)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    args = parser.parse_args()
    if args.threads:
        fastnn.set_num_threads(args.threads)
    names = [d for d in args.datasets.split(",") if d]
    libs = {"fastnn": fastnn.MLPClassifier, "sklearn": SkMLPClassifier}

    with numpy_blas_limit(args.threads):
        print(f"# fastnn {fastnn.__version__} (backend {fastnn.BACKEND}, {fastnn.get_num_threads()} threads) vs "
              f"scikit-learn {sklearn.__version__} "
              f"(NumPy {np.__version__}, BLAS threads: {numpy_blas_threads()})")
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}; MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0),"
              f" StandardScaler; fit time = median of {args.repeats}")
        print()
        rows = []
        for name in names:
            X_train, X_test, y_train, y_test = split(name)
            times = {lib: [] for lib in libs}
            models = {}
            for r in range(args.repeats):
                order = list(libs) if r % 2 == 0 else list(libs)[::-1]
                for lib in order:
                    models[lib], seconds = timed_fit(libs[lib], X_train, y_train)
                    times[lib].append(seconds)
            acc = {lib: models[lib].score(X_test, y_test) for lib in libs}
            med = {lib: statistics.median(times[lib]) for lib in libs}
            rows.append((name, X_train.shape, acc, med, {lib: models[lib].n_iter_ for lib in libs}))

        print("| data set | train samples x features | accuracy fastnn | accuracy sklearn | fit s fastnn | "
              "fit s sklearn | speed-up | n_iter fastnn / sklearn |")
        print("|---|---|---|---|---|---|---|---|")
        for name, shape, acc, med, n_iter in rows:
            print(f"| {name} | {shape[0]} x {shape[1]} | {acc['fastnn']:.4f} | {acc['sklearn']:.4f} | "
                  f"{med['fastnn']:.3f} | {med['sklearn']:.3f} | {med['sklearn'] / med['fastnn']:.2f}x | "
                  f"{n_iter['fastnn']} / {n_iter['sklearn']} |")


if __name__ == "__main__":
    main()
