"""int8 inference: QuantizedNetwork.predict on the MNIST-shaped MLP (a batch and one sample), the integer GEMM on
each path this CPU has, and quantizing a trained network."""
import numpy as np

from fastnn._py import quant as pq

from .common import (BACKENDS, MLP_SIZES, THREADS, kernels, make_network, make_x, require_backend, rng,
                     setup, use_threads)  # noqa: F401 (setup: asv's module-level seed)


class QuantizedForward:
    """QuantizedNetwork.predict on a batch (n, 784) -> (n, 10), int8 weights per channel."""

    params = [BACKENDS, [1, 64, 10000], THREADS]
    param_names = ["backend", "batch", "n_threads"]

    def setup(self, backend, batch, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.qnet = make_network(backend, "float32").quantize()
        X = make_x(batch, MLP_SIZES[0], "float32")
        self.X = np.ascontiguousarray(X[0]) if batch == 1 else X
        self.qnet.predict(self.X)

    def time_predict(self, backend, batch, n_threads):
        self.qnet.predict(self.X)


class Int8Gemm:
    """The u8 x s8 -> s32 GEMM of the MLP's first layer (256 rows x 784 -> 256) on each path."""

    params = [["portable", "avx2", "avx_vnni", "avx512_vnni"]]
    param_names = ["path"]

    def setup(self, path):
        require_backend("c")
        self.k = kernels("c")
        if not self.k.q8_path_supported(pq.PATHS[path]):
            raise NotImplementedError(f"this CPU has no {path}")
        g = rng()
        m, k, n = 256, 784, 256
        self.packed, _ = pq.q8_pack(g.integers(-127, 128, size=(k, n), dtype=np.int8))
        self.a = g.integers(0, 256, size=(m, pq.lda_for(k)), dtype=np.uint8)
        self.c = np.empty((m, n), np.int32)
        self.kk, self.path = k, pq.PATHS[path]

    def time_gemm(self, path):
        self.k.q8_gemm(self.c, self.a, self.packed, self.kk, self.path, 1)


class Quantize:
    """Network.quantize(): weight quantization and packing, once per model."""

    params = [BACKENDS]
    param_names = ["backend"]

    def setup(self, backend):
        require_backend(backend)
        self.net = make_network(backend, "float32")

    def time_quantize(self, backend):
        self.net.quantize()
