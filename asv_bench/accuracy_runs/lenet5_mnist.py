"""Accuracy run: LeNet-5 on real MNIST, 5 epochs per seed (batch 64, Adam, learning rate 1e-3).

Target (issue): median over 3 seeds of the final test accuracy >= 0.988 within 5 epochs, on both backends.
Prints the test accuracy after every epoch, the final accuracy per seed, the median over seeds, and the wall
time per epoch / per seed / in total.

    PYTHONPATH=. python asv_bench/accuracy_runs/lenet5_mnist.py --backend c --seeds 0 1 2 --threads 1

--threads N also sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS to N before NumPy is imported, so
that NumPy's BLAS (the python backend) stays within N threads too.
"""
import argparse
import os
import platform
import statistics
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["c", "python"], default="c")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=None, help="folder holding the MNIST IDX files (default: see load_mnist)")
    parser.add_argument("--target", type=float, default=0.988, help="median test accuracy to reach")
    return parser.parse_args(argv)


def lenet5(fastnn, seed, dtype, backend):
    return fastnn.Network(
        [fastnn.Conv2D(6, 5, padding=2, activation="relu"), fastnn.MaxPool2D(2),
         fastnn.Conv2D(16, 5, activation="relu"), fastnn.MaxPool2D(2), fastnn.Flatten(),
         fastnn.Dense(120, activation="relu"), fastnn.Dense(84, activation="relu"), fastnn.Dense(10)],
        input_shape=(1, 28, 28), loss="cross_entropy", dtype=dtype, seed=seed, backend=backend)


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import numpy as np
    import fastnn
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)

    X_train, y_train, X_test, y_test = fastnn.datasets.load_mnist(path=args.data, download=False)
    X_train = (X_train / np.float32(255)).astype(args.dtype)
    X_test = (X_test / np.float32(255)).astype(args.dtype)

    print(f"LeNet-5 on MNIST: {len(X_train)} training / {len(X_test)} test images, {args.epochs} epochs, "
          f"batch {args.batch_size}, adam lr {args.learning_rate:g}, {args.dtype}")
    print(f"backend {args.backend}, fastnn threads {fastnn.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, cpus {os.cpu_count()}, "
          f"python {platform.python_version()}, numpy {np.__version__}, fastnn {fastnn.__version__}")
    sys.stdout.flush()

    finals = {}
    total_start = time.perf_counter()
    for seed in args.seeds:
        net = lenet5(fastnn, seed, args.dtype, args.backend)
        if seed == args.seeds[0]:
            net.summary()
        accuracies = []
        times = []
        clock = [time.perf_counter()]

        def after_epoch(epoch, history):
            train_seconds = time.perf_counter() - clock[0]
            acc = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
            accuracies.append(acc)
            times.append(train_seconds)
            print(f"seed {seed}  epoch {epoch + 1}/{args.epochs}  loss {history['loss'][-1]:.5f}  "
                  f"test accuracy {acc:.4f}  train {train_seconds:.1f} s "
                  f"({len(X_train) / train_seconds:,.0f} samples/s)", flush=True)
            clock[0] = time.perf_counter()

        seed_start = time.perf_counter()
        net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                learning_rate=args.learning_rate, callbacks=[after_epoch])
        seed_seconds = time.perf_counter() - seed_start
        finals[seed] = accuracies[-1]
        print(f"seed {seed}  final test accuracy {accuracies[-1]:.4f}  "
              f"(per epoch: {' '.join(f'{a:.4f}' for a in accuracies)})  "
              f"wall {seed_seconds:.1f} s (training {sum(times):.1f} s)", flush=True)

    total = time.perf_counter() - total_start
    median = statistics.median(finals.values())
    print("final test accuracy per seed: " + ", ".join(f"seed {s}: {a:.4f}" for s, a in finals.items()))
    print(f"median over {len(finals)} seed(s): {median:.4f}  (target >= {args.target}: "
          f"{'PASS' if median >= args.target else 'FAIL'})")
    print(f"total wall time {total:.1f} s")
    return 0 if median >= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
