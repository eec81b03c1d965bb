"""Inference: a batch through the MNIST-shaped MLP, and one sample (the matrix-vector path)."""
import numpy as np

from .common import (BACKENDS, BATCHES, DTYPES, MLP_SIZES, THREADS, make_network, make_x, require_backend,
                     setup, use_threads)  # noqa: F401 (setup: asv's module-level seed)


class MLPForward:
    """Network.predict on a batch (n, 784) -> (n, 10): three dense layers, ReLU, softmax."""

    params = [BACKENDS, DTYPES, BATCHES, THREADS]
    param_names = ["backend", "dtype", "batch", "n_threads"]

    def setup(self, backend, dtype, batch, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.net = make_network(backend, dtype)
        self.X = make_x(batch, MLP_SIZES[0], dtype)
        self.net.predict(self.X)  # warm-up (first touch of the weights)

    def time_predict(self, backend, dtype, batch, n_threads):
        self.net.predict(self.X)


class SingleSampleForward:
    """Network.predict on one sample (784,) -> (10,): the per-call latency a server sees (single-threaded)."""

    params = [BACKENDS, DTYPES]
    param_names = ["backend", "dtype"]

    def setup(self, backend, dtype):
        require_backend(backend)
        use_threads(backend, 1)
        self.net = make_network(backend, dtype)
        self.x = np.ascontiguousarray(make_x(1, MLP_SIZES[0], dtype)[0])
        self.net.predict(self.x)

    def time_predict_one(self, backend, dtype):
        self.net.predict(self.x)
