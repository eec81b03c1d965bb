"""Peak memory of training, against the bound the speed issue sets: weights + optimizer state + one batch's
activations. A script, not a test: it prints the bound's parts and what fit() allocated at its peak.

What is measured: the largest amount of memory allocated through NumPy and Python while a new network trains two
epochs with `Network.fit` (tracemalloc, which sees every NumPy array), over what was allocated before the call.
The network (weights and gradient buffer) and the training data exist before; everything fit() allocates is
counted: the optimizer state, the workspaces of one batch, a snapshot of the weights taken each epoch (to
restore them if training diverges), the per-epoch shuffle order and the targets as a matrix. The process's
peak RSS growth is printed too (it also sees memory C allocates, which fastnn's kernels never do).

For the convolutional case (lenet5: LeNet-5 on 1x28x28 images, batch 64, Adam) the batch's share of the bound is
read from the network itself after training: every workspace array of every layer (activations, deltas, im2col
columns of the convolutions, argmax indices of max pooling) and the gathered batch of inputs,
targets and sample weights, each printed.

    python -I asv_bench/peak_memory.py                   # mnist_mlp, wide_mlp and lenet5, default backend
    python -I asv_bench/peak_memory.py --backend python
    python -I asv_bench/peak_memory.py --workloads lenet5
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
# convolutional: layers, image shape, samples, batch, optimizer options (as compare.py's lenet5_mnist)
CONV_WORKLOADS = {
    "lenet5": (lambda: [fastnn.Conv2D(6, 5, padding=2, activation="relu"), fastnn.MaxPool2D(2),
                        fastnn.Conv2D(16, 5, activation="relu"), fastnn.MaxPool2D(2), fastnn.Flatten(),
                        fastnn.Dense(120, activation="relu"), fastnn.Dense(84, activation="relu"), fastnn.Dense(10)],
               (1, 28, 28), 10000, 64, {"optimizer": "adam", "learning_rate": 1e-3}),
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


def _proc_status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def rss_peak_start():
    """Start measuring the growth of peak RSS: Linux resets the high-water mark (VmHWM) on writing 5 to
    /proc/self/clear_refs, so the growth counts from the RSS now, not from the largest it ever was (building the data
    set's temporaries). Elsewhere: ru_maxrss, the process's high-water mark, as measure() uses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM", _proc_status_bytes("VmRSS")
    except OSError:
        return "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_peak_growth(start):
    how, before = start
    if how == "VmHWM":
        return _proc_status_bytes("VmHWM") - before
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before


def measure_conv(name, backend):
    make_layers, image_shape, n, batch, options = CONV_WORKLOADS[name]
    rng = np.random.default_rng(0)
    X = (rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8) / np.float32(256)).astype(np.float32)
    net = fastnn.Network(make_layers(), input_shape=image_shape, loss="cross_entropy", seed=0, backend=backend)
    y = rng.integers(0, net.n_outputs, n)
    print(f"## {name} ({net.backend} backend): {len(net.layers)} layers, {net.n_params:,} parameters, {n:,} images "
          f"{image_shape} of {mib(X.nbytes):.1f} MiB, batch {batch}, {options['optimizer']}")
    weights, grads = net._params.nbytes, net._grads.nbytes
    states = 2 if options["optimizer"] == "adam" else (1 if options.get("momentum") else 0)
    optimizer = states * weights
    snapshot = weights
    per_dataset = n * 8 + n * net.n_outputs * net.dtype.itemsize  # the shuffle order (int64), the one-hot targets

    rss = rss_peak_start()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    net.fit(X, y, epochs=2, batch_size=batch, **options)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = rss_peak_growth(rss)
    peak -= base

    # one batch's activations and workspaces: what the network holds after fit, layer by layer
    print(f"- workspaces of one batch ({net._workspace_rows} rows):")
    workspaces = 0
    for i, (layer, arrays) in enumerate(zip(net.layers, net._workspaces)):
        if not arrays:
            continue
        layer_bytes = sum(a.nbytes for a in arrays.values())
        workspaces += layer_bytes
        parts = ", ".join(f"{key} {mib(a.nbytes):.3f}" for key, a in arrays.items())
        print(f"  - layer {i} {type(layer).__name__} {tuple(layer.output_shape)}: {parts} = "
              f"{mib(layer_bytes):.3f} MiB")
    batch_buffers = {"x": net._x_batch, "targets": net._t_batch, "sample weights": net._w_batch}
    gathered = sum(a.nbytes for a in batch_buffers.values())
    workspaces += gathered
    print("  - gathered batch: " + ", ".join(f"{key} {mib(a.nbytes):.3f}" for key, a in batch_buffers.items())
          + f" = {mib(gathered):.3f} MiB")
    bound = weights + grads + optimizer + workspaces
    in_fit = optimizer + workspaces + snapshot + per_dataset
    total = weights + grads + peak

    print(f"- bound: weights {mib(weights):.3f} + gradients {mib(grads):.3f} + optimizer state "
          f"{mib(optimizer):.3f} + one batch's activations and workspaces {mib(workspaces):.3f} = "
          f"{mib(bound):.3f} MiB")
    print(f"- allocated by fit() at its peak: {mib(peak):.3f} MiB, where optimizer state + workspaces + a snapshot "
          f"of the weights ({mib(snapshot):.3f}) + shuffle order and one-hot targets ({mib(per_dataset):.3f}) come "
          f"to {mib(in_fit):.3f} MiB (unaccounted: {mib(peak - in_fit):+.3f} MiB)")
    print(f"- peak of the training in all (weights and gradients held before fit + fit's peak): {mib(total):.3f} "
          f"MiB = {total / bound:.3f} x the bound (bound + {mib(total - bound):.3f} MiB); peak RSS growth during "
          f"fit() ({rss[0]}, includes tracemalloc's own bookkeeping): {mib(rss_growth):.2f} MiB")
    return peak, bound


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default=None, choices=["c", "python"])
    parser.add_argument("--workloads", default=",".join([*WORKLOADS, *CONV_WORKLOADS]))
    args = parser.parse_args()
    for name in args.workloads.split(","):
        if name in CONV_WORKLOADS:
            measure_conv(name, args.backend)
        else:
            measure(name, args.backend)


if __name__ == "__main__":
    main()
