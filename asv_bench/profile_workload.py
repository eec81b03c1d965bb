"""One workload of compare.py in a loop, for a profiler to watch: a script, not a benchmark.

    perf record -g -o wide.data python -I asv_bench/profile_workload.py wide_mlp
    perf report -i wide.data --no-children --sort dso,sym
    py-spy record -o mnist.svg -- python -I asv_bench/profile_workload.py mnist_mlp --seconds 20

Runs fastnn's default backend with the shapes, optimizers and data of compare.py's workload of that name, after
one warm-up pass, for about --seconds seconds, and prints the throughput it saw.
"""
import argparse
import time

import numpy as np

import fastnn

TRAINING = {  # sizes, samples, batch, fit options (as in compare.py)
    "mnist_mlp": ([784, 256, 128, 10], 10000, 128, {"optimizer": "adam", "learning_rate": 1e-3}),
    "wide_mlp": ([1024, 2048, 2048, 10], 2048, 256, {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}),
}
INFERENCE = [784, 256, 128, 10]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=list(TRAINING) + ["infer_batch", "infer_latency"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    fastnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    if args.workload in TRAINING:
        sizes, n, batch, options = TRAINING[args.workload]
        net = fastnn.Network(sizes, loss="cross_entropy", seed=0)
        X = rng.random((n, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], n)

        def work():
            net.fit(X, y, epochs=1, batch_size=batch, **options)
            return n
    else:
        net = fastnn.Network(INFERENCE, loss="cross_entropy", seed=0)
        X = rng.random((10000, INFERENCE[0]), dtype=np.float32)
        if args.workload == "infer_batch":
            def work():
                net.predict(X)
                return X.shape[0]
        else:
            rows = list(X)

            def work():
                for row in rows:
                    net.predict(row)
                return len(rows)

    work()  # warm-up: workspaces, optimizer state, page faults
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        done += work()
    elapsed = time.perf_counter() - start
    print(f"{args.workload}: {done / elapsed:,.0f} samples/s over {elapsed:.1f} s ({fastnn.BACKEND} backend, "
          f"{args.threads} threads)")


if __name__ == "__main__":
    main()
