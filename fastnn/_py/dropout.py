"""Inverted dropout with masks from a counter-based generator (twin of csrc/dropout.c): each mask element is
the splitmix64 mix of (key, index), so both backends draw exactly the same masks whatever the thread count."""
import numpy as np

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64_int(z):
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _mix64(z):
    """splitmix64's output function over a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_batch_key(seed, b):
    """The key of batch b of an epoch whose dropout seed is `seed`."""
    return _mix64_int(seed + (b + 1) * _GOLDEN)


def dropout_layer_key(key, layer):
    """The key of layer `layer` under a pass's key."""
    return _mix64_int(key ^ (((layer + 1) * 0xD1B54A32D192ED03) & _MASK64))


def dropout_uniform(key, index):
    """Uniform numbers in [0, 1) (53 bits) of the elements `index` (an int array) under `key`."""
    i = np.asarray(index, dtype=np.uint64)
    z = np.uint64(key) + (i + np.uint64(1)) * np.uint64(_GOLDEN)
    return (_mix64(z) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def dropout_forward(y, mask, x, rate, key, n_threads):
    """mask = 1 / (1 - rate) where dropout_uniform(key, i) >= rate, else 0 (i = row * d + column); y = x * mask."""
    n, d = x.shape
    keep = x.dtype.type(1.0 / (1.0 - rate))
    u = dropout_uniform(key, np.arange(n * d, dtype=np.uint64)).reshape(n, d)
    m = mask[:n]
    m[...] = np.where(u >= rate, keep, x.dtype.type(0))
    np.multiply(x, m, out=y)


def dropout_backward(dx, dy, mask, n_threads):
    """dx = dy * mask."""
    np.multiply(dy, mask[:dy.shape[0]], out=dx)
