"""2-D convolution over NCHW batches (twin of csrc/conv.c), built on sliding_window_view.

`win` is the window geometry of csrc/fastnn.h's fastnn_window as a tuple: (in_c, in_h, in_w, out_c, out_h,
out_w, kh, kw, sh, sw, pad_h, pad_w). Images travel flattened, (n, C*H*W); cols is (K, n*P) with K = in_c*kh*kw
rows in the order of the weights (in_c, kh, kw) and P = out_h*out_w positions per sample (sample-major), so the
products run along positions: y = W @ cols + b, dW = dz @ cols^T, dcols = W^T @ dz.
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
    """cols (K, n*P) = the window under each output position of x (n, C*H*W), zeros where it meets padding."""
    c, h, w, _, oh, ow, kh, kw = win[:8]
    n = x.shape[0]
    windows = _window_view(x.reshape(n, c, h, w), win)
    cols.reshape(c, kh, kw, n, oh, ow)[...] = windows.transpose(1, 4, 5, 0, 2, 3)


def col2im(dx, cols, win, n_threads):
    """dx (n, C*H*W) = every column entry summed into the pixel it was read from (the adjoint of im2col)."""
    c, h, w, _, oh, ow, kh, kw, sh, sw, ph, pw = win
    n = dx.shape[0]
    pb, pr = _padded_extent(win)
    padded = np.zeros((n, c, ph + h + pb, pw + w + pr), dtype=dx.dtype)
    blocks = cols.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += \
                blocks[:, i, j].transpose(1, 0, 2, 3)
    dx.reshape(n, c, h, w)[...] = padded[:, :, ph:ph + h, pw:pw + w]


def conv2d_forward(y, cols, x, W, b, win, act, alpha, n_threads):
    """y (n, out_c*P) = act(conv(x, W) + b): cols (K, n*P) = im2col(x), then W (out_c, K) @ cols, the bias and
    the activation, stored per sample in NCHW order."""
    oc, oh, ow = win[3:6]
    n, positions = x.shape[0], oh * ow
    im2col(cols, x, win, n_threads)
    out = y.reshape(n, oc, positions)
    out[...] = (W @ cols).reshape(oc, n, positions).transpose(1, 0, 2)
    out += b[None, :, None]
    activate_inplace(y, act, alpha)


def conv2d_backward(dx, dW, db, cols, dz, x, W, win, n_threads):
    """From dz (n, out_c*P) = d(loss)/d(pre-activation) and the layer input x: dW = dz cols^T with cols = im2col(x)
    (rebuilt here, as the C kernels' direct path does), db = sums of dz and, unless dx is None,
    dx = col2im(W^T dz). cols is overwritten."""
    oc, oh, ow = win[3:6]
    n, positions = dz.shape[0], oh * ow
    im2col(cols, x, win, n_threads)
    dz_t = dz.reshape(n, oc, positions).transpose(1, 0, 2).reshape(oc, n * positions)
    np.matmul(dz_t, cols.T, out=dW)
    db[...] = dz.reshape(n, oc, positions).sum(axis=(0, 2), dtype=np.float64)
    if dx is not None:
        np.matmul(W.T, dz_t, out=cols)
        col2im(dx, cols, win, n_threads)
