"""python -m fastnn: train a small network on real digits and report how it went.

Demos (the first positional argument; none means mlp):
  mlp      a dense classifier on the shipped UCI optical digits (1,797 8x8 images)      [the default]
  cnn      a small convolutional network on the same digits as (1, 8, 8) images
  lenet5   LeNet-5 on MNIST (60,000 + 10,000 28x28 images; downloaded, or read from --data DIR)
  words    the language of a word: two GRUs over its characters (word lists of /usr/share/dict)
  dates    human-readable dates to ISO dates: an LSTM encoder-decoder
  text     a character-level LSTM on a text file (default: Python's own sources), then a sampled paragraph

The flags below come before or after the demo's name; their defaults are the mlp's (the cnn trains 15 epochs,
lenet5 5 epochs with batch 64): `python -m fastnn cnn --help` shows a demo's own.
The exit status is 0 when the test accuracy reaches the demo's threshold (mlp 0.95, cnn 0.95, lenet5 0.98,
words 0.85, dates 0.99 exact match; text: a finite validation loss), 1 when it does not, 2 on a usage error or
when the data cannot be found.
"""
import argparse
import sys
import time

import numpy as np

import fastnn
from fastnn._text_demos import TEXT_DEMOS, TEXT_RUNNERS

DIGITS_CREDIT = "UCI optical digits (1,797 8x8 images, Alpaydin & Kaynak 1998, CC BY 4.0)"

# Per demo: the defaults of the shared flags and the test accuracy that counts as a pass.
DEMOS = {
    "mlp": {"epochs": 30, "batch_size": 32, "threshold": 0.95,
            "help": "dense network on the shipped 8x8 digits (the default)"},
    "cnn": {"epochs": 15, "batch_size": 32, "threshold": 0.95,
            "help": "small convolutional network on the shipped 8x8 digits"},
    "lenet5": {"epochs": 5, "batch_size": 64, "threshold": 0.98,
               "help": "LeNet-5 on MNIST (28x28 digits)"},
    **TEXT_DEMOS,
}
SHARED_DEFAULTS = {"backend": None, "dtype": "float32", "threads": None, "seed": 0}


def _add_shared(parser, demo=None):
    """The flags every demo takes. On the top-level parser (demo=None) they default to None (filled in per demo
    after parsing); on a subcommand's parser they are SUPPRESSed unless given, so that a value given before the
    subcommand (`python -m fastnn --epochs 3 cnn`) is not overwritten by the subparser's default."""
    unset = argparse.SUPPRESS if demo is not None else None

    def shown(name):
        value = DEMOS[demo or "mlp"][name] if name in ("epochs", "batch_size") else SHARED_DEFAULTS[name]
        return f" (default: {value})"

    parser.add_argument("--epochs", type=int, default=unset, help="training epochs" + shown("epochs"))
    parser.add_argument("--batch-size", type=int, default=unset,
                        help="minibatch size" + shown("batch_size"))
    parser.add_argument("--backend", choices=["c", "python"], default=unset,
                        help="kernels: the C/OpenMP extension or the NumPy twin (default: fastnn.BACKEND)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=unset,
                        help="floating-point type" + shown("dtype"))
    parser.add_argument("--threads", type=int, default=unset,
                        help="threads for fastnn's kernels (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--seed", type=int, default=unset,
                        help="seed of the weights and the shuffling"
                        + (" (and of the digits' train/test split)" if demo != "lenet5" else "") + shown("seed"))


def _add_hidden(parser, suppress):
    parser.add_argument("--hidden", type=int, nargs="*", default=argparse.SUPPRESS if suppress else None,
                        help="mlp: hidden layer widths (default: 128)")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fastnn", description=__doc__,
                                     usage="%(prog)s [shared options] [--hidden N ...] "
                                           "[{" + ",".join(DEMOS) + "} [options]]",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_shared(parser)
    _add_hidden(parser, suppress=False)  # the MLP's flag, kept at the top level: `python -m fastnn --hidden 64 64`
    sub = parser.add_subparsers(dest="demo", metavar="{" + ",".join(DEMOS) + "}", title="demos")
    for name, spec in DEMOS.items():
        p = sub.add_parser(name, prog=f"python -m fastnn {name}", help=spec["help"], description=spec["help"])
        _add_shared(p, name)
        if name == "mlp":
            _add_hidden(p, suppress=True)
        if name == "lenet5":
            p.add_argument("--data", metavar="DIR", default=None,
                           help="folder holding the four MNIST IDX files, searched first (default: none; then "
                                "$FASTNN_DATA, then ~/.cache/fastnn are searched; see fastnn.datasets.load_mnist)")
            p.add_argument("--no-download", dest="download", action="store_false",
                           help="do not try to download MNIST when it is not found (default: download it into "
                                "the first writable of those folders)")
        if name == "words":
            p.add_argument("--per-language", type=int, default=40_000,
                           help="words drawn per language (default: 40000)")
        if name == "text":
            p.add_argument("file", nargs="?", default=None,
                           help="a UTF-8 text file (default: a fixed slice of the Python standard library)")
            p.add_argument("--chars", type=int, default=300_000, help="characters of text used (default: 300000)")
            p.add_argument("--steps", type=int, default=64, help="characters per training sequence (default: 64)")
            p.add_argument("--units", type=int, default=128, help="LSTM units (default: 128)")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.demo = args.demo or "mlp"
    if args.demo != "mlp" and args.hidden is not None:
        parser.error(f"--hidden is a flag of the mlp demo, not of {args.demo}")
    spec = DEMOS[args.demo]
    for name in ("epochs", "batch_size"):
        if getattr(args, name, None) is None:
            setattr(args, name, spec[name])
    for name, value in SHARED_DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.hidden is None:
        args.hidden = [128]
    for name, minimum in (("epochs", 0), ("batch_size", 1), ("threads", 1)):
        value = getattr(args, name)
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
    args.threshold = spec["threshold"]
    return args


def _accuracy(net, X, y):
    return float(np.mean(net.predict(X).argmax(axis=1) == y))


def _digits(seed):
    X, y = fastnn.datasets.load_digits()
    return fastnn.datasets.train_test_split(X / 16.0, y, 0.25, seed=seed)


def run_mlp(args):
    X_train, X_test, y_train, y_test = _digits(args.seed)
    net = fastnn.Network([X_train.shape[1], *args.hidden, 10], activations="relu", loss="cross_entropy",
                         dtype=args.dtype, seed=args.seed, backend=args.backend)
    print(f"fastnn demo: {DIGITS_CREDIT}")
    print(f"{net}\nbackend {net.backend}, OpenMP threads {fastnn.get_num_threads()}, "
          f"{len(X_train)} training / {len(X_test)} test samples")

    start = time.perf_counter()
    net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
            learning_rate=1e-3, verbose=True)
    seconds = time.perf_counter() - start
    accuracy = _accuracy(net, X_test, y_test)
    print(f"test accuracy {accuracy:.4f}  ({len(X_test)} samples)")
    print(f"training speed {args.epochs * len(X_train) / seconds:,.0f} samples/s "
          f"({seconds:.2f} s for {args.epochs} epochs)")
    return accuracy


def _train_images(net, args, X_train, y_train, X_test, y_test):
    """Train with one line per epoch (loss, samples/s of the epoch's training, test accuracy); returns the
    final test accuracy."""
    net.summary()
    print(f"backend {net.backend}, OpenMP threads {fastnn.get_num_threads()}, {len(X_train):,} training / "
          f"{len(X_test):,} test samples, batch {args.batch_size}, adam 1e-3, {args.dtype}", flush=True)
    train_seconds = [0.0]
    accuracy = [_accuracy(net, X_test, y_test) if args.epochs == 0 else None]
    clock = [time.perf_counter()]

    def report(epoch, history):
        seconds = time.perf_counter() - clock[0]  # the epoch's training (this runs right after it)
        train_seconds[0] += seconds
        accuracy[0] = _accuracy(net, X_test, y_test)
        print(f"epoch {epoch + 1:>{len(str(args.epochs))}}/{args.epochs}  loss {history['loss'][-1]:.6f}  "
              f"samples/s {len(X_train) / max(seconds, 1e-9):,.0f}  test accuracy {accuracy[0]:.4f}", flush=True)
        clock[0] = time.perf_counter()

    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                      learning_rate=1e-3, callbacks=[report])
    wall = time.perf_counter() - start
    epochs_done = len(history["loss"])
    print(f"test accuracy {accuracy[0]:.4f}  ({len(X_test):,} samples)")
    if train_seconds[0] > 0:
        print(f"training speed {epochs_done * len(X_train) / train_seconds[0]:,.0f} samples/s "
              f"({train_seconds[0]:.2f} s training for {epochs_done} epoch{'s' if epochs_done != 1 else ''}, "
              f"{wall:.2f} s with the per-epoch "
              f"test evaluations)")
    return accuracy[0]


def run_cnn(args):
    X_train, X_test, y_train, y_test = _digits(args.seed)
    X_train, X_test = X_train.reshape(-1, 1, 8, 8), X_test.reshape(-1, 1, 8, 8)
    net = fastnn.Network(
        [fastnn.Conv2D(16, 3, padding=1, activation="relu"), fastnn.MaxPool2D(2),
         fastnn.Conv2D(32, 3, padding=1, activation="relu"), fastnn.MaxPool2D(2), fastnn.Flatten(),
         fastnn.Dense(64, activation="relu"), fastnn.Dense(10)],
        input_shape=(1, 8, 8), loss="cross_entropy", dtype=args.dtype, seed=args.seed, backend=args.backend)
    print(f"fastnn demo: a convolutional network on the {DIGITS_CREDIT}")
    return _train_images(net, args, X_train, y_train, X_test, y_test)


def run_lenet5(args):
    try:
        X_train, y_train, X_test, y_test = fastnn.datasets.load_mnist(path=args.data, download=args.download)
    except (OSError, ValueError) as error:  # FileNotFoundError: absent; ValueError: a damaged file
        print(f"python -m fastnn lenet5: cannot load MNIST: {error}", file=sys.stderr)
        print("python -m fastnn lenet5: pass the folder holding the four MNIST files with --data DIR "
              "(--no-download skips the download attempt).", file=sys.stderr)
        return None
    dtype = np.dtype(args.dtype).type
    X_train = X_train.astype(dtype) / dtype(255)
    X_test = X_test.astype(dtype) / dtype(255)
    net = fastnn.Network(
        [fastnn.Conv2D(6, 5, padding=2, activation="relu"), fastnn.MaxPool2D(2),
         fastnn.Conv2D(16, 5, activation="relu"), fastnn.MaxPool2D(2), fastnn.Flatten(),
         fastnn.Dense(120, activation="relu"), fastnn.Dense(84, activation="relu"), fastnn.Dense(10)],
        input_shape=(1, 28, 28), loss="cross_entropy", dtype=args.dtype, seed=args.seed, backend=args.backend)
    print("fastnn demo: LeNet-5 on MNIST (LeCun, Cortes & Burges; 60,000 training / 10,000 test 28x28 digits)")
    return _train_images(net, args, X_train, y_train, X_test, y_test)


RUNNERS = {"mlp": run_mlp, "cnn": run_cnn, "lenet5": run_lenet5, **TEXT_RUNNERS}


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    accuracy = RUNNERS[args.demo](args)
    if accuracy is None:
        return 2
    if args.threshold is None:  # text: no accuracy, only a loss
        return 0 if np.isfinite(accuracy) else 1
    passed = accuracy >= args.threshold
    if args.demo != "mlp":
        print(f"{'PASS' if passed else 'FAIL'}: test accuracy {accuracy:.4f} "
              f"{'>=' if passed else '<'} {args.threshold}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
