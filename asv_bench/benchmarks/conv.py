"""Convolutional networks: the Conv2D and pooling kernels of each backend called directly (forward and backward on a
batch of 64), and LeNet-5 trained for one epoch through Network.fit (its time and its peak memory).

The kernel shapes are the layers of LeNet-5 (Conv2D(6, 5x5, pad 2) on 1x28x28, Conv2D(16, 5x5) on 6x14x14) and the
second layer of the small MNIST CNN that compare.py trains (Conv2D(64, 3x3) on 32x26x26): few filters take the C
backend's direct kernels, many filters its BLAS path. The pooling shapes are the inputs of the pooling layers of the
same two networks.
"""
import numpy as np

import fastnn
from fastnn import _codes

from .common import BACKENDS, THREADS, kernels, require_backend, rng, setup, use_threads  # noqa: F401 (setup)

CONV_DTYPES = ["float32"]
CONV_BATCH = 64
ACT_RELU = _codes.ACTIVATIONS["relu"]  # the kernels take activation codes
ALPHA = 0.01  # leaky-ReLU / ELU slope the kernels take with every code (unused by ReLU)

# name: (input (channels, height, width), filters, kernel, padding, whether the layer computes dx). The first layer
# of a network never needs the gradient of its input, so its backward pass skips it, as Network's does.
CONV_SHAPES = {
    "lenet_conv1": ((1, 28, 28), 6, 5, 2, False),
    "lenet_conv2": ((6, 14, 14), 16, 5, 0, True),
    "cnn_conv2": ((32, 26, 26), 64, 3, 0, True),
}
# name: input (channels, height, width) of a 2x2, stride-2 pooling layer
POOL_SHAPES = {
    "lenet_pool1": (6, 28, 28),
    "lenet_pool2": (16, 10, 10),
    "cnn_pool": (64, 24, 24),
}

EPOCH_SAMPLES = 2048
EPOCH_BATCH = 64


def window(in_shape, out_c, kernel, stride, pad):
    """The kernels' `win` tuple (in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, sh, sw, pad_h, pad_w) of a square
    window, and the output shape (out_c, out_h, out_w)."""
    c, h, w = in_shape
    out_h = (h + 2 * pad - kernel) // stride + 1
    out_w = (w + 2 * pad - kernel) // stride + 1
    return (c, h, w, out_c, out_h, out_w, kernel, kernel, stride, stride, pad, pad), (out_c, out_h, out_w)


def make_images(n, shape, dtype, seed=0):
    """n images of `shape` (C, H, W), pixels random bytes / 256 (MNIST's range), C-contiguous NCHW."""
    pixels = rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    return (pixels / 256.0).astype(dtype)


def lenet5():
    """LeNet-5 for 1x28x28 images, ReLU activations, max pooling (as in compare.py and peak_memory.py)."""
    return [fastnn.Conv2D(6, 5, padding=2, activation="relu"), fastnn.MaxPool2D(2),
            fastnn.Conv2D(16, 5, activation="relu"), fastnn.MaxPool2D(2), fastnn.Flatten(),
            fastnn.Dense(120, activation="relu"), fastnn.Dense(84, activation="relu"), fastnn.Dense(10)]


def make_lenet5(backend, dtype):
    return fastnn.Network(lenet5(), input_shape=(1, 28, 28), loss="cross_entropy", dtype=dtype, seed=0,
                          backend=backend)


class Conv2DKernels:
    """conv2d_forward (im2col + product + bias + ReLU) and conv2d_backward (dW, db and, but for a first layer, dx)
    on a batch of 64. Setup runs the forward pass once, so the backward pass finds the forward's columns where the
    BLAS path expects them."""

    params = [BACKENDS, CONV_DTYPES, list(CONV_SHAPES), THREADS]
    param_names = ["backend", "dtype", "shape", "n_threads"]

    def setup(self, backend, dtype, shape, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.k = kernels(backend)
        self.n_threads = n_threads
        in_shape, filters, kernel, pad, needs_dx = CONV_SHAPES[shape]
        self.win, out_shape = window(in_shape, filters, kernel, 1, pad)
        n, gen = CONV_BATCH, rng()
        k_size = in_shape[0] * kernel * kernel
        positions = out_shape[1] * out_shape[2]
        self.x = make_images(n, in_shape, dtype).reshape(n, -1)
        self.W = (gen.standard_normal((filters, k_size)) / np.sqrt(k_size)).astype(dtype)
        self.b = (0.1 * gen.standard_normal(filters)).astype(dtype)
        self.y = np.empty((n, filters * positions), dtype=dtype)
        self.cols = np.empty((k_size, n * positions), dtype=dtype)
        self.dz = gen.standard_normal((n, filters * positions)).astype(dtype)
        self.dW = np.empty_like(self.W)
        self.db = np.empty_like(self.b)
        self.dx = np.empty_like(self.x) if needs_dx else None
        self.time_forward(backend, dtype, shape, n_threads)

    def time_forward(self, backend, dtype, shape, n_threads):
        self.k.conv2d_forward(self.y, self.cols, self.x, self.W, self.b, self.win, ACT_RELU, ALPHA,
                              self.n_threads)

    def time_backward(self, backend, dtype, shape, n_threads):
        self.k.conv2d_backward(self.dx, self.dW, self.db, self.cols, self.dz, self.x, self.W,
                               self.win, self.n_threads)


class Pool2DKernels:
    """2x2, stride-2 max and average pooling, forward and backward, on a batch of 64."""

    params = [BACKENDS, CONV_DTYPES, ["max", "avg"], list(POOL_SHAPES), THREADS]
    param_names = ["backend", "dtype", "pool", "shape", "n_threads"]

    def setup(self, backend, dtype, pool, shape, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.k = kernels(backend)
        self.n_threads = n_threads
        in_shape = POOL_SHAPES[shape]
        self.win, out_shape = window(in_shape, in_shape[0], 2, 2, 0)
        n = CONV_BATCH
        out_size = out_shape[0] * out_shape[1] * out_shape[2]
        self.x = rng().standard_normal((n, int(np.prod(in_shape)))).astype(dtype)
        self.y = np.empty((n, out_size), dtype=dtype)
        self.dy = rng(1).standard_normal((n, out_size)).astype(dtype)
        self.dx = np.empty_like(self.x)
        self.argmax = np.empty((n, out_size), dtype=np.int32)
        self.time_forward(backend, dtype, pool, shape, n_threads)  # argmax for the backward pass

    def time_forward(self, backend, dtype, pool, shape, n_threads):
        if pool == "max":
            self.k.maxpool2d_forward(self.y, self.argmax, self.x, self.win, self.n_threads)
        else:
            self.k.avgpool2d_forward(self.y, self.x, self.win, self.n_threads)

    def time_backward(self, backend, dtype, pool, shape, n_threads):
        if pool == "max":
            self.k.maxpool2d_backward(self.dx, self.dy, self.argmax, self.win, self.n_threads)
        else:
            self.k.avgpool2d_backward(self.dx, self.dy, self.win, self.n_threads)


class LeNet5Train:
    """LeNet-5: Network.train_step on one batch of 64 (forward, backward, Adam), and Network.fit(epochs=1) over
    2048 images in batches of 64, shuffled, Adam."""

    params = [BACKENDS, CONV_DTYPES, THREADS]
    param_names = ["backend", "dtype", "n_threads"]

    def setup(self, backend, dtype, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.net = make_lenet5(backend, dtype)
        self.X = make_images(EPOCH_SAMPLES, (1, 28, 28), dtype)
        self.y = rng().integers(0, 10, size=EPOCH_SAMPLES)
        self.net.train_step(self.X[:EPOCH_BATCH], self.y[:EPOCH_BATCH], optimizer="adam", learning_rate=1e-3)

    def time_train_step(self, backend, dtype, n_threads):
        self.net.train_step(self.X[:EPOCH_BATCH], self.y[:EPOCH_BATCH], optimizer="adam", learning_rate=1e-3)

    def time_fit_epoch(self, backend, dtype, n_threads):
        self.net.fit(self.X, self.y, epochs=1, batch_size=EPOCH_BATCH, optimizer="adam", learning_rate=1e-3)


class LeNet5Predict:
    """LeNet-5 Network.predict: one image (the latency a server sees, single-threaded) and a batch of 64."""

    params = [BACKENDS, CONV_DTYPES, [1, CONV_BATCH]]
    param_names = ["backend", "dtype", "batch"]

    def setup(self, backend, dtype, batch):
        require_backend(backend)
        use_threads(backend, 1)
        self.net = make_lenet5(backend, dtype)
        self.X = make_images(batch, (1, 28, 28), dtype)
        self.net.predict(self.X)

    def time_predict(self, backend, dtype, batch):
        self.net.predict(self.X)


class PeakMemLeNet5Fit:
    """Peak resident memory of a process that builds LeNet-5 and 2048 images and trains one epoch (asv's peakmem
    includes setup; asv_bench/peak_memory.py --workloads lenet5 breaks the training's own share down)."""

    params = [BACKENDS, CONV_DTYPES]
    param_names = ["backend", "dtype"]

    def setup(self, backend, dtype):
        require_backend(backend)
        use_threads(backend, 1)
        self.net = make_lenet5(backend, dtype)
        self.X = make_images(EPOCH_SAMPLES, (1, 28, 28), dtype)
        self.y = rng().integers(0, 10, size=EPOCH_SAMPLES)

    def peakmem_fit_epoch(self, backend, dtype):
        self.net.fit(self.X, self.y, epochs=1, batch_size=EPOCH_BATCH, optimizer="adam", learning_rate=1e-3)
