"""python -m fastnn: train a digit classifier on the shipped UCI optical digits and report how it went."""
import argparse
import time

import numpy as np

import fastnn


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastnn", description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, nargs="*", default=[128], help="hidden layer widths")
    parser.add_argument("--backend", choices=["c", "python"], default=None)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)

    X, y = fastnn.datasets.load_digits()
    X_train, X_test, y_train, y_test = fastnn.datasets.train_test_split(X / 16.0, y, 0.25, seed=args.seed)
    net = fastnn.Network([X.shape[1], *args.hidden, 10], activations="relu", loss="cross_entropy",
                         dtype=args.dtype, seed=args.seed, backend=args.backend)
    print("fastnn demo: UCI optical digits (1,797 8x8 images, Alpaydin & Kaynak 1998, CC BY 4.0)")
    print(f"{net}\nbackend {net.backend}, OpenMP threads {fastnn.get_num_threads()}, "
          f"{len(X_train)} training / {len(X_test)} test samples")

    start = time.perf_counter()
    net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
            learning_rate=1e-3, verbose=True)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    print(f"test accuracy {accuracy:.4f}  ({len(X_test)} samples)")
    print(f"training speed {args.epochs * len(X_train) / seconds:,.0f} samples/s "
          f"({seconds:.2f} s for {args.epochs} epochs)")
    return 0 if accuracy >= 0.95 else 1


if __name__ == "__main__":
    raise SystemExit(main())
