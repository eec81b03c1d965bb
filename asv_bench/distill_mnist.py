"""Distillation experiment: a 784-100-10 student on 2,000 MNIST labels, hard labels against distillation.

The teacher is LeNet-5 trained on all 60,000 training labels (its knowledge comes from more data than the
student's 2,000 labels: that is the point of distilling it). It is trained once for --teacher-epochs and its
logits for the training images are cached (~/.cache/fastnn/distill_teacher_*.npz). The student (784-100-10, ReLU,
float32, Adam) trains for --epochs on the first --labels training images, once on their hard labels and once with
fit(teacher=logits, temperature=T, alpha=a) on the same images and labels; --transfer N adds the next N training
images as an unlabeled transfer set (their targets are the teacher's probabilities, their labels are never used).
Every student is scored on the 10,000 test images; the table gives the test accuracy per seed, the means and the
difference.

    PYTHONPATH=. python asv_bench/distill_mnist.py --seeds 0 1 2 --epochs 50 --threads 2
"""
import argparse
import os
import platform
import statistics
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=50, help="student epochs")
    parser.add_argument("--labels", type=int, default=2000, help="labeled training images the student sees")
    parser.add_argument("--transfer", type=int, default=0, help="extra unlabeled images with teacher targets")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=None, help="folder holding the MNIST IDX files (default: see load_mnist)")
    parser.add_argument("--no-cache", action="store_true", help="retrain the teacher even if its logits are cached")
    return parser.parse_args(argv)


def lenet5(fastnn, seed):
    return fastnn.Network(
        [fastnn.Conv2D(6, 5, padding=2, activation="relu"), fastnn.MaxPool2D(2),
         fastnn.Conv2D(16, 5, activation="relu"), fastnn.MaxPool2D(2), fastnn.Flatten(),
         fastnn.Dense(120, activation="relu"), fastnn.Dense(84, activation="relu"), fastnn.Dense(10)],
        input_shape=(1, 28, 28), loss="cross_entropy", seed=seed)


def teacher_logits(fastnn, np, args, X_train, y_train, X_test, y_test):
    """(logits of the training images, teacher test accuracy, seconds to train), cached by the settings."""
    cache_dir = os.path.join(os.path.expanduser("~"), ".cache", "fastnn")
    path = os.path.join(cache_dir, f"distill_teacher_lenet5_e{args.teacher_epochs}_s0.npz")
    if not args.no_cache and os.path.exists(path):
        with np.load(path) as f:
            return f["logits"], float(f["accuracy"]), float(f["seconds"]), True
    teacher = lenet5(fastnn, 0)
    start = time.perf_counter()
    teacher.fit(X_train, y_train, epochs=args.teacher_epochs, batch_size=64, optimizer="adam",
                learning_rate=1e-3)
    seconds = time.perf_counter() - start
    accuracy = float((teacher.predict(X_test).argmax(axis=1) == y_test).mean())
    logits = teacher._logits(X_train)
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(path, logits=logits, accuracy=accuracy, seconds=seconds)
    return logits, accuracy, seconds, False


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
    X_train = (X_train / np.float32(255)).astype(np.float32)
    X_test = (X_test / np.float32(255)).astype(np.float32)
    print(f"Distillation on MNIST: student 784-100-10 (relu, float32), {args.labels} labeled training images"
          f"{f' + {args.transfer} unlabeled (transfer set)' if args.transfer else ''}, {args.epochs} epochs, "
          f"batch {args.batch_size}, adam lr {args.learning_rate:g}; T = {args.temperature:g}, "
          f"alpha = {args.alpha:g}")
    print(f"fastnn threads {fastnn.get_num_threads()}, cpus {os.cpu_count()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, fastnn {fastnn.__version__}")

    logits, teacher_acc, teacher_s, cached = teacher_logits(fastnn, np, args, X_train, y_train, X_test, y_test)
    print(f"teacher: LeNet-5 on all {len(X_train)} training labels, {args.teacher_epochs} epochs (adam 1e-3, "
          f"batch 64, seed 0), test accuracy {teacher_acc:.4f}, trained in {teacher_s:.0f} s"
          f"{' (logits from the cache)' if cached else ''}")

    n, m = args.labels, args.transfer
    X_s = X_train[:n + m].reshape(n + m, -1)
    U = logits[:n + m]
    if m:
        # the transfer images' targets: the teacher's probabilities (their labels are never read)
        Y = np.zeros((n + m, 10), dtype=np.float32)
        Y[np.arange(n), y_train[:n]] = 1
        z = U[n:] - U[n:].max(axis=1, keepdims=True)
        Y[n:] = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    X_test_flat = X_test.reshape(len(X_test), -1)

    def student(seed):
        return fastnn.Network([784, 100, 10], activations="relu", loss="cross_entropy", seed=seed)

    def score(net):
        return float((net.predict(X_test_flat).argmax(axis=1) == y_test).mean())

    rows = []
    for seed in args.seeds:
        fit = dict(epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                   learning_rate=args.learning_rate)
        hard = student(seed)
        start = time.perf_counter()
        hard.fit(X_train[:n].reshape(n, -1), y_train[:n], **fit)
        t_hard = time.perf_counter() - start
        distilled = student(seed)
        start = time.perf_counter()
        distilled.fit(X_s, Y if m else y_train[:n], teacher=U, temperature=args.temperature, alpha=args.alpha,
                      **fit)
        t_dist = time.perf_counter() - start
        rows.append((seed, score(hard), score(distilled)))
        print(f"seed {seed}: hard labels {rows[-1][1]:.4f} ({t_hard:.1f} s), distilled {rows[-1][2]:.4f} "
              f"({t_dist:.1f} s)", flush=True)

    print()
    print("| student (784-100-10) | " + " | ".join(f"seed {s}" for s, _, _ in rows) + " | mean |")
    print("|---" * (len(rows) + 2) + "|")
    mean_hard = statistics.mean(r[1] for r in rows)
    mean_dist = statistics.mean(r[2] for r in rows)
    print("| hard labels | " + " | ".join(f"{r[1]:.4f}" for r in rows) + f" | {mean_hard:.4f} |")
    print("| distilled | " + " | ".join(f"{r[2]:.4f}" for r in rows) + f" | {mean_dist:.4f} |")
    print("| difference | " + " | ".join(f"{r[2] - r[1]:+.4f}" for r in rows) +
          f" | {mean_dist - mean_hard:+.4f} |")
    print(f"teacher (LeNet-5, 60k labels): {teacher_acc:.4f}")
    gain = 100 * (mean_dist - mean_hard)
    print(f"target: distilled beats hard labels by >= 2 points (mean): {gain:+.2f} points: "
          f"{'met' if gain >= 2 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
