"""Independent float64 references for the convolutional layers: conv2d, max pooling and average pooling, forward
and backward, written from their definitions as plain loops over output positions and kernel offsets (no im2col,
no padded copies, no stride tricks), so that they share no structure with the kernels they check.

Layouts as PyTorch: images (N, C, H, W), conv weights (F, C, kh, kw), conv bias (F,). Padding is implicit zeros:
an input index outside the image contributes nothing. Pooling is floor mode without padding, and max pooling
sends the gradient of a window to its first maximum in row-major order (what PyTorch's CPU kernels do; with
random inputs there are no ties).
"""
import numpy as np


def pair(value):
    """An int or a pair as a pair of ints."""
    if isinstance(value, (tuple, list)):
        a, b = value
        return int(a), int(b)
    return int(value), int(value)


def conv_padding(padding, kernel_size, stride=1):
    """((top, bottom), (left, right)) for a padding given as an int, a pair, a pair of (before, after) pairs,
    "valid" or "same" (stride 1 only; an even kernel puts (k - 1) // 2 before and the rest after, as PyTorch)."""
    kh, kw = pair(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if pair(stride) != (1, 1):
                raise ValueError("padding='same' needs stride 1")
            return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
        raise ValueError(padding)
    if isinstance(padding, (tuple, list)) and isinstance(padding[0], (tuple, list)):
        (t, b), (l, r) = padding
        return (int(t), int(b)), (int(l), int(r))
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def conv_output_shape(H, W, kernel_size, stride=1, padding=0):
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride)
    (pt, pb), (pl, pr) = conv_padding(padding, kernel_size, stride)
    return (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1


def _conv_taps(x_shape, w_shape, stride, padding):
    """Every (i, j, p, q, hi, wi): output position (i, j), kernel offset (p, q) and the input pixel (hi, wi) it
    reads, for the taps that land inside the image (the others read padding zeros)."""
    _, _, H, W = x_shape
    _, _, kh, kw = w_shape
    sh, sw = pair(stride)
    (pt, _), (pl, _) = conv_padding(padding, (kh, kw), stride)
    Ho, Wo = conv_output_shape(H, W, (kh, kw), stride, padding)
    for i in range(Ho):
        for j in range(Wo):
            for p in range(kh):
                hi = i * sh + p - pt
                if not 0 <= hi < H:
                    continue
                for q in range(kw):
                    wi = j * sw + q - pl
                    if 0 <= wi < W:
                        yield i, j, p, q, hi, wi


def conv2d_forward(x, w, b, stride=1, padding=0):
    """y[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * x[n, c, i*sh + p - top, j*sw + q - left]."""
    x, w, b = (np.asarray(a, dtype=np.float64) for a in (x, w, b))
    N, C, H, W = x.shape
    F, C2, kh, kw = w.shape
    assert C == C2, (x.shape, w.shape)
    Ho, Wo = conv_output_shape(H, W, (kh, kw), stride, padding)
    assert Ho > 0 and Wo > 0, "the kernel does not fit"
    y = np.zeros((N, F, Ho, Wo))
    y += b.reshape(1, F, 1, 1)
    for i, j, p, q, hi, wi in _conv_taps(x.shape, w.shape, stride, padding):
        # (N, C) times (C, F): this tap's contribution for every sample and filter
        y[:, :, i, j] += x[:, :, hi, wi] @ w[:, :, p, q].T
    return y


def conv2d_backward(x, w, dy, stride=1, padding=0):
    """(dx, dw, db) of a scalar L given dy = dL/dy, for y = conv2d_forward(x, w, b, stride, padding)."""
    x, w, dy = (np.asarray(a, dtype=np.float64) for a in (x, w, dy))
    N, F, Ho, Wo = dy.shape
    assert (Ho, Wo) == conv_output_shape(x.shape[2], x.shape[3], w.shape[2:], stride, padding)
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for i, j, p, q, hi, wi in _conv_taps(x.shape, w.shape, stride, padding):
        g = dy[:, :, i, j]                          # (N, F)
        dw[:, :, p, q] += g.T @ x[:, :, hi, wi]     # sum over samples: (F, C)
        dx[:, :, hi, wi] += g @ w[:, :, p, q]       # (N, C)
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


def pool_output_shape(H, W, pool_size, stride=None):
    kh, kw = pair(pool_size)
    sh, sw = pair(pool_size if stride is None else stride)
    return (H - kh) // sh + 1, (W - kw) // sw + 1


def _windows(x_shape, pool_size, stride):
    """Every output position (i, j) with the list of input pixels (hi, wi) of its window, in row-major order."""
    H, W = x_shape[2:]
    kh, kw = pair(pool_size)
    sh, sw = pair(pool_size if stride is None else stride)
    Ho, Wo = pool_output_shape(H, W, pool_size, stride)
    assert Ho > 0 and Wo > 0, "the pool does not fit"
    for i in range(Ho):
        for j in range(Wo):
            yield i, j, [(i * sh + p, j * sw + q) for p in range(kh) for q in range(kw)]


def maxpool2d_forward(x, pool_size, stride=None):
    x = np.asarray(x, dtype=np.float64)
    N, C = x.shape[:2]
    y = np.empty((N, C) + pool_output_shape(x.shape[2], x.shape[3], pool_size, stride))
    for n in range(N):
        for c in range(C):
            for i, j, window in _windows(x.shape, pool_size, stride):
                y[n, c, i, j] = max(x[n, c, hi, wi] for hi, wi in window)
    return y


def maxpool2d_backward(x, dy, pool_size, stride=None):
    """dx: each window's dy added to the window's first maximum (windows may overlap when stride < pool)."""
    x, dy = np.asarray(x, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    N, C = x.shape[:2]
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i, j, window in _windows(x.shape, pool_size, stride):
                best = window[0]
                for hi, wi in window[1:]:
                    if x[n, c, hi, wi] > x[n, c, best[0], best[1]]:
                        best = (hi, wi)
                dx[n, c, best[0], best[1]] += dy[n, c, i, j]
    return dx


def avgpool2d_forward(x, pool_size, stride=None):
    x = np.asarray(x, dtype=np.float64)
    N, C = x.shape[:2]
    kh, kw = pair(pool_size)
    y = np.zeros((N, C) + pool_output_shape(x.shape[2], x.shape[3], pool_size, stride))
    for i, j, window in _windows(x.shape, pool_size, stride):
        for hi, wi in window:
            y[:, :, i, j] += x[:, :, hi, wi]
        y[:, :, i, j] /= kh * kw
    return y


def avgpool2d_backward(x, dy, pool_size, stride=None):
    """dx: each window's dy / (kh * kw) added to every pixel of the window."""
    x, dy = np.asarray(x, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    kh, kw = pair(pool_size)
    dx = np.zeros_like(x)
    for i, j, window in _windows(x.shape, pool_size, stride):
        for hi, wi in window:
            dx[:, :, hi, wi] += dy[:, :, i, j] / (kh * kw)
    return dx
