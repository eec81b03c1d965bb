"""2-D convolution over NCHW batches (twin of csrc/conv.c), built on sliding_window_view.

`win` is the window geometry of csrc/fastnn.h's fastnn_window as a tuple: (in_c, in_h, in_w, out_c, out_h,
out_w, kh, kw, sh, sw, pad_h, pad_w). Images travel flattened, (n, C*H*W); cols is (n*P, K) with P = out_h*out_w
positions (sample-major) and K = in_c*kh*kw, the columns in the order of the weights (in_c, kh, kw).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .activations import activate_inplace


def _padded_extent(win):
    """Rows and columns of zeros after the image that the last windows reach into."""
    c, h, w, _, oh, ow, kh, kw, sh, sw, ph, pw = win
    return max(0, (oh - 1) * sh + kh - ph - h), max(0, (ow - 1) * sw + kw - pw - w)


def _window_view(images, win):
    """(n, C, out_h, out_w, kh, kw): every window of the (zero-padded) images, a view where no padding is needed."""
    c, h, w, _, oh, ow, kh, kw, sh, sw, ph, pw = win
    pb, pr = _padded_extent(win)
    if ph or pw or pb or pr:
        images = np.pad(images, ((0, 0), (0, 0), (ph, pb), (pw, pr)))
    return sliding_window_view(images, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]


def im2col(cols, x, win, n_threads):
    """cols (n*P, K) = the window under each output position of x (n, C*H*W), zeros where it meets padding."""
    c, h, w, _, oh, ow, kh, kw = win[:8]
    n = x.shape[0]
    windows = _window_view(x.reshape(n, c, h, w), win)
    cols[:n * oh * ow].reshape(n, oh, ow, c, kh, kw)[...] = windows.transpose(0, 2, 3, 1, 4, 5)


def col2im(dx, cols, win, n_threads):
    """dx (n, C*H*W) = every column entry summed into the pixel it was read from (the adjoint of im2col)."""
    c, h, w, _, oh, ow, kh, kw, sh, sw, ph, pw = win
    n = dx.shape[0]
    pb, pr = _padded_extent(win)
    padded = np.zeros((n, c, ph + h + pb, pw + w + pr), dtype=dx.dtype)
    blocks = cols[:n * oh * ow].reshape(n, oh, ow, c, kh, kw)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += \
                blocks[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    dx.reshape(n, c, h, w)[...] = padded[:, :, ph:ph + h, pw:pw + w]


def conv2d_forward(y, cols, scratch, x, W, b, win, act, alpha, n_threads):
    """y (n, out_c*P) = act(conv(x, W) + b): cols = im2col(x), scratch (n*P, out_c) = cols @ W^T, then the bias,
    the activation and the transposition to NCHW. W is (out_c, K)."""
    oc, oh, ow = win[3:6]
    n, positions = x.shape[0], oh * ow
    rows = n * positions
    im2col(cols, x, win, n_threads)
    np.matmul(cols[:rows], W.T, out=scratch[:rows])
    out = y.reshape(n, oc, positions)
    out[...] = scratch[:rows].reshape(n, positions, oc).transpose(0, 2, 1)
    out += b[None, :, None]
    activate_inplace(y, act, alpha)


def conv2d_backward(dx, dW, db, cols, scratch, dz, W, win, n_threads):
    """From dz (n, out_c*P) = d(loss)/d(pre-activation) and the forward's cols: dW = dz^T cols, db = sums of dz
    and, unless dx is None, dx = col2im(dz W) (computed in cols, which it overwrites)."""
    oc, oh, ow = win[3:6]
    n, positions = dz.shape[0], oh * ow
    rows = n * positions
    dz_t = scratch[:rows]
    dz_t.reshape(n, positions, oc)[...] = dz.reshape(n, oc, positions).transpose(0, 2, 1)
    np.matmul(dz_t.T, cols[:rows], out=dW)
    db[...] = dz.reshape(n, oc, positions).sum(axis=(0, 2), dtype=np.float64)
    if dx is not None:
        np.matmul(dz_t, W, out=cols[:rows])
        col2im(dx, cols, win, n_threads)
