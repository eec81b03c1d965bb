"""Peak memory of training, against the bound the speed issue sets: weights + optimizer state + one batch's
activations. A script, not a test: it prints the bound's parts and what fit() allocated at its peak.

What is measured: the largest amount of memory allocated through NumPy and Python while a new network trains two
epochs with `Network.fit` (tracemalloc, which sees every NumPy array), over what was allocated before the call.
The network (weights and gradient buffer) and the training data exist before; everything fit() allocates is
counted: the optimizer state, the workspaces of one batch, a snapshot of the weights taken each epoch (to
restore them if training diverges), the per-epoch shuffle order and the targets as a matrix. The process's
peak RSS growth is printed too (it also sees memory C allocates, which fastnn's kernels never do).

    python -I asv_bench/peak_memory.py                   # mnist_mlp and wide_mlp shapes, default backend
    python -I asv_bench/peak_memory.py --backend python
"""
import argparse
import resource
import tracemalloc

import numpy as np

import fastnn

WORKLOADS = {  # sizes, samples, batch, optimizer options (as in compare.py)
    "mnist_mlp": ([784, 256, 128, 10], 60000, 128, {"optimizer": "adam", "learning_rate": 1e-3}),
    "wide_mlp": ([1024, 2048, 2048, 10], 4096, 256, {"optimizer": "sgd", "momentum": 0.9}),
}


def mib(n_bytes):
    return n_bytes / 2**20


def measure(name, backend):
    sizes, n, batch, options = WORKLOADS[name]
    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], n)
    net = fastnn.Network(sizes, loss="cross_entropy", seed=0, backend=backend)
    print(f"## {name} ({net.backend} backend): sizes {sizes}, {n:,} samples of {X.nbytes / 2**20:.1f} MiB, "
          f"batch {batch}, {options['optimizer']}")
    itemsize = net.dtype.itemsize
    weights = net.n_params * itemsize
    grads = net.n_params * itemsize
    states = 2 if options["optimizer"] == "adam" else (1 if options.get("momentum") else 0)
    optimizer = states * net.n_params * itemsize
    # per layer: activations and deltas of one batch, plus the gathered batch of inputs and targets
    activations = (2 * batch * sum(sizes[1:]) + batch * (sizes[0] + sizes[-1])) * itemsize
    bound = weights + grads + optimizer + activations
    snapshot = weights
    per_dataset = n * 8 + n * sizes[-1] * itemsize  # the shuffle order (int64) and the one-hot target matrix

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    net.fit(X, y, epochs=2, batch_size=batch, **options)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    peak -= base
    in_fit = optimizer + activations + snapshot + per_dataset

    print(f"- bound: weights {mib(weights):.2f} + gradients {mib(grads):.2f} + optimizer state {mib(optimizer):.2f}"
          f" + one batch's activations {mib(activations):.2f} = {mib(bound):.2f} MiB")
    print(f"- allocated by fit() at its peak: {mib(peak):.2f} MiB, where optimizer state + activations + a "
          f"snapshot of the weights ({mib(snapshot):.2f}) + shuffle order and one-hot targets "
          f"({mib(per_dataset):.2f}) come to {mib(in_fit):.2f} MiB")
    print(f"- peak of the training in all (weights and gradients held before fit + fit's peak): "
          f"{mib(weights + grads + peak):.2f} MiB = bound + {mib(weights + grads + peak - bound):.2f} MiB; "
          f"peak RSS growth during fit(): {mib(rss_growth):.2f} MiB")
    return peak, bound


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default=None, choices=["c", "python"])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    for name in args.workloads.split(","):
        measure(name, args.backend)


if __name__ == "__main__":
    main()
