"""Thread scaling of fastnn's C backend: the same workloads at several thread counts, each run in its own process,
the thread counts alternated round by round, medians reported with the ratio to the first thread count.

    python -I asv_bench/thread_scaling.py                       # threads 1 and 2, 3 rounds
    python -I asv_bench/thread_scaling.py --threads 1 2 4 8 --rounds 5
    python -I asv_bench/thread_scaling.py --wait-policy ACTIVE  # OMP_WAIT_POLICY for the workers (default: fastnn's)
    python -I asv_bench/thread_scaling.py --spin 0              # GOMP_SPINCOUNT for the workers (fastnn's: 3000)

It measures the installed fastnn (-I): `pip install .` first after changing the sources.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import timeit

WORKLOADS = ("mnist_mlp", "wide_mlp", "infer_batch")


def worker(n_threads):
    import numpy as np

    import fastnn
    fastnn.set_num_threads(n_threads)
    rng = np.random.default_rng(0)
    results = {}

    def train(sizes, n, batch, **opts):
        net = fastnn.Network(sizes, loss="cross_entropy", seed=0)
        X = rng.random((n, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], n)
        net.fit(X[:512], y[:512], epochs=1, batch_size=batch, **opts)  # warm-up
        seconds = sorted(timeit.repeat(lambda: net.fit(X, y, epochs=1, batch_size=batch, **opts), number=1,
                                       repeat=3))[1]
        return n / seconds

    results["mnist_mlp"] = train([784, 256, 128, 10], 12800, 128, optimizer="adam", learning_rate=1e-3)
    results["wide_mlp"] = train([1024, 2048, 2048, 10], 2048, 256, optimizer="sgd", momentum=0.9)
    net = fastnn.Network([784, 256, 128, 10], loss="cross_entropy", seed=0)
    X = rng.random((10000, 784), dtype=np.float32)
    results["infer_batch"] = 10000 / sorted(timeit.repeat(lambda: net.predict(X), number=1, repeat=3))[1]
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait-policy", choices=["ACTIVE", "PASSIVE"], default=None)
    parser.add_argument("--spin", type=int, default=None, help="GOMP_SPINCOUNT for the workers")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        return worker(args.worker)
    env = dict(os.environ)
    if args.wait_policy:
        env["OMP_WAIT_POLICY"] = args.wait_policy
    if args.spin is not None:
        env["GOMP_SPINCOUNT"] = str(args.spin)
    runs = {t: [] for t in args.threads}
    for round_ in range(args.rounds):
        for t in args.threads:
            out = subprocess.run([sys.executable, "-I", __file__, "--worker", str(t)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            runs[t].append(json.loads(out.strip().splitlines()[-1]))
            print(f"[round {round_ + 1}/{args.rounds}] threads {t}: " +
                  ", ".join(f"{k} {v:,.0f}/s" for k, v in runs[t][-1].items()), flush=True)
    base = args.threads[0]
    print(f"\nmedians of {args.rounds} rounds (samples/s), ratio to {base} thread(s); "
          f"OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', 'fastnn default (PASSIVE)')}, "
          f"GOMP_SPINCOUNT={env.get('GOMP_SPINCOUNT', 'fastnn default (3000 when fastnn sets the policy)')}")
    print("| workload | " + " | ".join(f"{t} thread(s)" for t in args.threads) + " |")
    print("|---|" + "---:|" * len(args.threads))
    for name in WORKLOADS:
        medians = {t: statistics.median(r[name] for r in runs[t]) for t in args.threads}
        cells = [f"{medians[t]:,.0f} ({medians[t] / medians[base]:.2f}x)" for t in args.threads]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
