"""Issue 12's pruning target on real MNIST: a script, not a test.

Trains the 784-256-128-10 ReLU MLP (float32, Adam, batch 128) for a few epochs, prunes 90% of its weights by
global magnitude, fine-tunes for one epoch (the mask re-applied after every update), and prints the test accuracy
of the float network, of the pruned one before and after fine-tuning, the sparsity per layer, and the
single-sample and batch-256 prediction times (one thread) of the pruned network through the CSR copies (when
fastnn.pruning's rule picks them) and through the dense kernels. Target: at most 0.8 points lost after
fine-tuning. Also checks that the pruned weights are still exactly zero and that sparse and dense predictions
agree.

    PYTHONPATH=. python asv_bench/prune_accuracy.py [--epochs 5] [--seed 0] [--amount 0.9]
"""
import argparse
import statistics
import time
import timeit

import numpy as np

import fastnn
from fastnn import pruning


def accuracy(net, X, y):
    return 100.0 * float(np.mean(net.predict(X).argmax(axis=1) == y))


def median_us(fn, calls):
    timer = timeit.default_timer
    times = []
    for _ in range(calls):
        start = timer()
        fn()
        times.append(timer() - start)
    return statistics.median(times) * 1e6


def timings(net, X):
    """{(kind, batch): median us} for predict through the rule's choice ('auto') and the dense kernels."""
    out = {}
    saved = pruning.SPARSE_RULES
    try:
        for kind, rules in (("auto", saved), ("dense", ((2.0, 0),))):
            pruning.SPARSE_RULES = rules
            net._drop_sparse()
            for batch, calls in ((1, 3000), (256, 200)):
                rows = [X[i] for i in range(calls)] if batch == 1 else [X[:256]]
                net.predict(rows[0])
                k = iter(range(10**9))
                out[kind, batch] = median_us(lambda: net.predict(rows[next(k) % len(rows)]), calls)
    finally:
        pruning.SPARSE_RULES = saved
        net._drop_sparse()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amount", type=float, default=0.9)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    args = parser.parse_args()

    X_train, y_train, X_test, y_test = fastnn.datasets.load_mnist()
    X_train = (X_train.reshape(len(X_train), -1) / 255.0).astype(np.float32)
    X_test = (X_test.reshape(len(X_test), -1) / 255.0).astype(np.float32)
    net = fastnn.Network([784, 256, 128, 10], activations="relu", loss="cross_entropy", dtype="float32",
                         seed=args.seed)
    print(f"fastnn backend {net.backend}, {fastnn.get_num_threads()} threads; rule SPARSE_RULES = "
          f"{pruning.SPARSE_RULES}")
    start = time.perf_counter()
    net.fit(X_train, y_train, epochs=args.epochs, batch_size=128, optimizer="adam", learning_rate=args.lr)
    print(f"trained {args.epochs} epochs (adam, lr {args.lr}, batch 128) in {time.perf_counter() - start:.1f} s")
    dense_acc = accuracy(net, X_test, y_test)

    net.prune(args.amount, scope="global")
    keep = net._prune_keep.copy()
    pruned_acc = accuracy(net, X_test, y_test)
    net.fit(X_train, y_train, epochs=1, batch_size=128, optimizer="adam", learning_rate=args.finetune_lr)
    tuned_acc = accuracy(net, X_test, y_test)
    still_zero = bool(np.all(net._params[:net.n_decay][keep == 0] == 0))

    print(f"\n{'network':<42} {'test accuracy %':>15} {'change (points)':>16}")
    print(f"{'float32':<42} {dense_acc:15.2f} {'':>16}")
    print(f"{f'pruned {args.amount:.0%} (global), before fine-tuning':<42} {pruned_acc:15.2f} "
          f"{pruned_acc - dense_acc:+16.2f}")
    print(f"{'pruned, after 1 fine-tuning epoch':<42} {tuned_acc:15.2f} {tuned_acc - dense_acc:+16.2f}")
    lost = dense_acc - tuned_acc
    print(f"target: lose <= 0.8 points after fine-tuning: {'met' if lost <= 0.8 else 'MISSED'} "
          f"(lost {lost:.2f})")
    layers = ", ".join(f"layer {i}: {s:.1%}" for i, s in net.sparsity(per_layer=True).items())
    print(f"sparsity {net.sparsity():.2%} ({layers}); pruned weights still exactly zero: {still_zero}")

    net.n_threads = 1  # as asv_bench/prune_crossover.py measured the rule: kernel against kernel
    times = timings(net, X_test)
    net._sparse_ready()
    used = ["sparse" if entry is not None else "dense" for entry in net._sparse] or ["dense"] * 3
    print(f"\nprediction of the pruned network (median us; layers through CSR copies where the rule picks them, "
          f"per layer at batch <= rows: {used})")
    for batch in (1, 256):
        auto, dense = times["auto", batch], times["dense", batch]
        print(f"  batch {batch:>3}: rule {auto:9.2f}   dense only {dense:9.2f}   speed-up {dense / auto:5.2f}x")
    saved = pruning.SPARSE_RULES
    try:
        pruning.SPARSE_RULES = ((0.0, 10**9),)
        net._drop_sparse()
        sparse_out = net.predict(X_test[:1000])
        single = net.predict(X_test[0])
        pruning.SPARSE_RULES = ((2.0, 0),)
        net._drop_sparse()
        dense_out = net.predict(X_test[:1000])
    finally:
        pruning.SPARSE_RULES = saved
        net._drop_sparse()
    print(f"sparse vs dense predictions, max abs difference: {np.abs(sparse_out - dense_out).max():.2e} (batch), "
          f"{np.abs(single - dense_out[0]).max():.2e} (one sample)")


if __name__ == "__main__":
    main()
