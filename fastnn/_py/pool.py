"""Max and average pooling over NCHW batches (twin of csrc/pool.c), built on sliding_window_view.

`win` as in conv.py (pooling has no padding and out_c == in_c); images travel flattened, (n, C*H*W).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, win):
    c, h, w, _, oh, ow, kh, kw, sh, sw = win[:10]
    images = x.reshape(x.shape[0], c, h, w)
    return sliding_window_view(images, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]


def maxpool2d_forward(y, argmax, x, win, n_threads):
    """y = window maxima (the first maximum in row-major window order; NaN wins); argmax, unless None, receives
    each maximum's index within its plane (row * in_w + col)."""
    c, h, w, _, oh, ow, kh, kw, sh, sw = win[:10]
    n = x.shape[0]
    flat = _windows(x, win).reshape(n, c, oh, ow, kh * kw)
    k = np.argmax(flat, axis=-1)  # the first maximum, or the first NaN
    y.reshape(n, c, oh, ow)[...] = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
    if argmax is not None:
        rows = np.arange(oh)[:, None] * sh + k // kw
        cols = np.arange(ow)[None, :] * sw + k % kw
        argmax[:n].reshape(n, c, oh, ow)[...] = rows * w + cols


def maxpool2d_backward(dx, dy, argmax, win, n_threads):
    """dx = dy scattered to the maxima argmax points at (sums where windows share a maximum)."""
    c, h, w, _, oh, ow = win[:6]
    n = dy.shape[0]
    planes = dx.reshape(n * c, h * w)
    planes[...] = 0
    index = argmax[:n].reshape(n * c, oh * ow)
    np.add.at(planes, (np.arange(n * c)[:, None], index), dy.reshape(n * c, oh * ow))


def avgpool2d_forward(y, x, win, n_threads):
    """y = window means."""
    c, _, _, _, oh, ow, kh, kw = win[:8]
    n = x.shape[0]
    inv = y.dtype.type(1.0 / (kh * kw))
    y.reshape(n, c, oh, ow)[...] = _windows(x, win).sum(axis=(-2, -1)) * inv


def avgpool2d_backward(dx, dy, win, n_threads):
    """dx = dy / (kh * kw) spread over each window (sums where windows overlap)."""
    c, h, w, _, oh, ow, kh, kw, sh, sw = win[:10]
    n = dy.shape[0]
    inv = dx.dtype.type(1.0 / (kh * kw))
    images = dx.reshape(n, c, h, w)
    images[...] = 0
    share = dy.reshape(n, c, oh, ow) * inv
    for i in range(kh):
        for j in range(kw):
            images[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += share
