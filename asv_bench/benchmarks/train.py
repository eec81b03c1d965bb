"""Training: one train_step on a batch, one epoch through Network.fit, and the peak memory of that epoch."""
from .common import (BACKENDS, BATCHES, DTYPES, MLP_SIZES, THREADS, make_network, make_xy, require_backend,
                     setup, use_threads)  # noqa: F401 (setup: asv's module-level seed)

EPOCH_SAMPLES = 2048
EPOCH_BATCH = 128


class TrainStep:
    """Network.train_step (forward, backward, SGD update) on one batch of the MNIST-shaped MLP."""

    params = [BACKENDS, DTYPES, BATCHES, THREADS]
    param_names = ["backend", "dtype", "batch", "n_threads"]

    def setup(self, backend, dtype, batch, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.net = make_network(backend, dtype)
        self.X, self.y = make_xy(batch, MLP_SIZES[0], MLP_SIZES[-1], dtype)
        self.net.train_step(self.X, self.y, learning_rate=1e-3)  # allocates the workspaces

    def time_train_step(self, backend, dtype, batch, n_threads):
        self.net.train_step(self.X, self.y, learning_rate=1e-3)


class FitEpoch:
    """Network.fit(epochs=1): 2048 samples in batches of 128, shuffled, Adam (the training loop in C for the C
    backend)."""

    params = [BACKENDS, DTYPES, THREADS]
    param_names = ["backend", "dtype", "n_threads"]

    def setup(self, backend, dtype, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.net = make_network(backend, dtype)
        self.X, self.y = make_xy(EPOCH_SAMPLES, MLP_SIZES[0], MLP_SIZES[-1], dtype)

    def time_fit_epoch(self, backend, dtype, n_threads):
        self.net.fit(self.X, self.y, epochs=1, batch_size=EPOCH_BATCH, optimizer="adam", learning_rate=1e-3)


class PeakMemFit:
    """Peak resident memory of a process that builds the network and data and trains one epoch (asv's peakmem
    includes setup, so this is dominated by the interpreter, NumPy and the data; a jump means a leak or a
    per-batch copy)."""

    params = [BACKENDS, DTYPES]
    param_names = ["backend", "dtype"]

    def setup(self, backend, dtype):
        require_backend(backend)
        use_threads(backend, 1)
        self.net = make_network(backend, dtype)
        self.X, self.y = make_xy(EPOCH_SAMPLES, MLP_SIZES[0], MLP_SIZES[-1], dtype)

    def peakmem_fit_epoch(self, backend, dtype):
        self.net.fit(self.X, self.y, epochs=1, batch_size=EPOCH_BATCH, optimizer="adam", learning_rate=1e-3)
