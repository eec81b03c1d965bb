"""Memory-leak check (a script, not a test): many create/fit/predict/save/load cycles on a small network.

Each cycle builds a network, fits it for one epoch, runs train_step, gradients, evaluate and predict (batch and
one sample), saves it, loads it back and predicts with the copy; it also takes the error paths once (a refused
input, a refused model file), since leaks like to hide where an exception leaves a C extension. The process
RSS is printed after a warm-up and at the end; the exit status is 1 when it grew by more than the threshold.

    python asv_bench/leak_check.py                       # 10,000 cycles on the default backend
    python asv_bench/leak_check.py --backend python --cycles 2000
"""
import argparse
import gc
import os
import resource
import sys
import tempfile
import time

import numpy as np

import fastnn


def rss_kib():
    """The current resident set size in KiB (VmRSS), or the peak from getrusage where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def cycle(i, backend, X, y, path, bad_path):
    net = fastnn.Network([16, 32, 4], activations="relu", loss="cross_entropy", seed=i, backend=backend,
                         dtype="float64" if i % 2 else "float32")
    net.fit(X, y, epochs=1, batch_size=16, optimizer="adam" if i % 3 == 0 else "sgd", learning_rate=1e-2,
            momentum=0.0 if i % 3 == 0 else 0.9)
    net.train_step(X[:8], y[:8])
    net.gradients(X[:8], y[:8])
    net.evaluate(X, y)
    out = net.predict(X)
    net.predict(X[0])
    net.save(path)
    loaded = fastnn.load(path, backend=backend)
    assert np.array_equal(loaded.predict(X), out)
    try:
        net.fit(X[:, :3], y)  # wrong number of features
    except ValueError:
        pass
    try:
        fastnn.load(bad_path, backend=backend)
    except ValueError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10000, help="measured cycles after the warm-up (10000)")
    parser.add_argument("--warmup", type=int, default=200, help="cycles before the first measurement (200)")
    parser.add_argument("--backend", choices=["c", "python"], default=None, help="default: fastnn.BACKEND")
    parser.add_argument("--threshold-kib", type=int, default=2048, help="allowed RSS growth in KiB (2048)")
    parser.add_argument("--dir", default=None, help="where the model files go (default: a temporary folder)")
    args = parser.parse_args(argv)
    backend = args.backend or fastnn.BACKEND

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 16))
    y = rng.integers(0, 4, size=64)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "model.fastnn")
        bad_path = os.path.join(tmp, "bad.fastnn")
        with open(bad_path, "wb") as f:
            f.write(b"PK\x03\x04 not really a model")
        for i in range(args.warmup):
            cycle(i, backend, X, y, path, bad_path)
        gc.collect()
        before = rss_kib()
        started = time.perf_counter()
        for i in range(args.cycles):
            cycle(args.warmup + i, backend, X, y, path, bad_path)
        elapsed = time.perf_counter() - started
        gc.collect()
        after = rss_kib()
    growth = after - before
    ok = growth <= args.threshold_kib
    print(f"fastnn {fastnn.__version__}, backend {backend}, {args.cycles} cycles after {args.warmup} warm-up "
          f"cycles, {elapsed:.1f} s ({1e3 * elapsed / max(args.cycles, 1):.2f} ms/cycle)")
    print(f"RSS after warm-up: {before} KiB")
    print(f"RSS at the end:    {after} KiB")
    print(f"growth:            {growth} KiB ({growth * 1024 / max(args.cycles, 1):.1f} bytes/cycle); threshold "
          f"{args.threshold_kib} KiB: {'OK' if ok else 'LEAK?'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
