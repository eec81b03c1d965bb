#!/usr/bin/env python
"""float32 vs int8 test accuracy of the 784-256-128-10 ReLU MLP on real MNIST (issue 12's accuracy target: the
int8 network loses at most 0.3 points).

    python asv_bench/int8_accuracy.py                      # 5 epochs of Adam, seeds 0 1 2
    python asv_bench/int8_accuracy.py --epochs 3 --seeds 0

Per seed: train the float32 network (Adam, lr 1e-3, batch 128), then quantize it (int8 weights per output
channel, and per tensor), and print the test accuracy of each, the difference in points, and the share of test
images whose predicted class changed. MNIST is read by fastnn.datasets.load_mnist (~/.cache/fastnn).
"""
import argparse
import time

import numpy as np

import fastnn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    X_train, y_train, X_test, y_test = fastnn.datasets.load_mnist()
    X_train = X_train.reshape(len(X_train), -1).astype(np.float32) / 255
    X_test = X_test.reshape(len(X_test), -1).astype(np.float32) / 255
    print(f"MNIST 784-256-128-10 ReLU, Adam lr 1e-3, batch 128, {args.epochs} epochs; fastnn {fastnn.__version__}, "
          f"int8 path {fastnn.show_config(file=open('/dev/null', 'w'))['int8']}")
    print("| seed | float32 acc | int8 per-channel acc | Δ points | int8 per-tensor acc | Δ points | "
          "changed predictions | training |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    deltas = []
    for seed in map(int, args.seeds.split(",")):
        net = fastnn.Network([784, 256, 128, 10], activations="relu", loss="cross_entropy", seed=seed)
        t0 = time.perf_counter()
        net.fit(X_train, y_train, epochs=args.epochs, batch_size=128, optimizer="adam", learning_rate=1e-3)
        train_s = time.perf_counter() - t0
        pred_f = net.predict(X_test).argmax(1)
        pred_c = net.quantize(per_channel=True).predict(X_test).argmax(1)
        pred_t = net.quantize(per_channel=False).predict(X_test).argmax(1)
        acc = [100 * np.mean(p == y_test) for p in (pred_f, pred_c, pred_t)]
        deltas.append(acc[0] - acc[1])
        print(f"| {seed} | {acc[0]:.2f}% | {acc[1]:.2f}% | {acc[0] - acc[1]:+.2f} | {acc[2]:.2f}% | "
              f"{acc[0] - acc[2]:+.2f} | {100 * np.mean(pred_c != pred_f):.2f}% | {train_s:.0f} s |")
    print(f"largest loss (float32 - int8 per channel): {max(deltas):+.2f} points; target <= 0.30")


if __name__ == "__main__":
    main()
