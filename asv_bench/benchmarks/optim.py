"""Optimizer updates on flat buffers, as Network holds its parameters: the kernels sgd_step and adam_step of
each backend called directly, so the timing is the update alone (memory-bound streaming over n_params)."""
import numpy as np

from .common import (BACKENDS, DTYPES, THREADS, kernels, make_flat, require_backend, setup,  # noqa: F401
                     use_threads)

N_PARAMS = 2 ** 21  # ~2.1M parameters: 8 MiB per float32 buffer, well outside L2
LR = 1e-6  # tiny, so that repeated steps keep the parameters where they started


class OptimizerStep:
    """One update of N_PARAMS parameters: plain SGD, SGD with momentum 0.9, Adam (weight decay on the first half,
    as Network passes the weights first)."""

    params = [BACKENDS, DTYPES, ["sgd", "momentum", "adam"], THREADS]
    param_names = ["backend", "dtype", "optimizer", "n_threads"]

    def setup(self, backend, dtype, optimizer, n_threads):
        require_backend(backend)
        self.n_threads = n_threads
        use_threads(backend, n_threads)
        self.k = kernels(backend)
        self.params, self.grads = make_flat(N_PARAMS, dtype)
        self.state1 = np.zeros_like(self.params) if optimizer != "sgd" else None
        self.state2 = np.zeros_like(self.params) if optimizer == "adam" else None
        self.n_decay = N_PARAMS // 2
        self.t = 0
        self.step = {"sgd": self._sgd, "momentum": self._sgd, "adam": self._adam}[optimizer]
        self.momentum = 0.9 if optimizer == "momentum" else 0.0
        self.step()  # warm-up: first touch of every buffer

    def _sgd(self):
        self.k.sgd_step(self.params, self.grads, self.state1, self.n_decay, LR, self.momentum, False, 1e-4,
                        self.n_threads)

    def _adam(self):
        self.t += 1
        self.k.adam_step(self.params, self.grads, self.state1, self.state2, self.n_decay, LR, 0.9, 0.999, 1e-8,
                         1e-4, self.t, self.n_threads)

    def time_step(self, backend, dtype, optimizer, n_threads):
        self.step()
