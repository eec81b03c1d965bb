"""Losses and their gradients, softmax / sigmoid fused where they belong (twin of csrc/losses.c).

Every loss is a mean: mse over all n*d elements of (out - t)^2 (no 1/2 factor); cross_entropy over samples of
-sum_j t_j log softmax(z)_j (cross_entropy_ignore: over the rows whose targets are not all zero);
binary_cross_entropy over all n*d elements, computed from the logits z; poisson (log link, scikit-learn's half
Poisson deviance) summed over the d outputs and averaged over the n samples, computed from z = log(mu):
y (log y - z) - y + exp(z), 0 log 0 = 0.
"""
import numpy as np

from .._codes import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, CROSS_ENTROPY_IGNORE, MSE, POISSON


def loss(grad, out, target, loss_kind, n_threads, weights=None):
    """Mean loss of out against target; if grad is not None it receives d(mean loss)/d(out). weights (n), if
    given, multiplies each sample's loss and gradient (the mean stays over n)."""
    n, d = out.shape
    if n == 0:
        raise ValueError("loss: empty batch")
    real = out.dtype.type
    w = None if weights is None else weights.reshape(-1, 1)
    if loss_kind == MSE:
        diff = out - target
        terms = diff * diff
        scale = real(2.0 / (n * d))
        grad_value = scale * diff if w is None else (w * scale) * diff
        count = n * d
    elif loss_kind in (CROSS_ENTROPY, CROSS_ENTROPY_IGNORE):
        m = out.max(axis=1, keepdims=True)
        s = np.exp(out - m).sum(axis=1, keepdims=True, dtype=np.float64)
        lse = m + np.log(s).astype(out.dtype)
        terms = target * (lse - out)
        count = n
        if loss_kind == CROSS_ENTROPY_IGNORE:  # all-zero target rows are padding: the mean is over the others
            count = int(np.count_nonzero(target.any(axis=1)))
        scale = real(1.0 / max(count, 1))
        raw = np.exp(out - lse) * target.sum(axis=1, keepdims=True) - target
        grad_value = raw * scale if w is None else raw * (w * scale)
        count = max(count, 1)
    elif loss_kind == BINARY_CROSS_ENTROPY:
        e = np.exp(-np.abs(out))
        terms = np.maximum(out, real(0)) - out * target + np.log1p(e)
        scale = real(1.0 / (n * d))
        sig = np.where(out >= 0, 1 / (1 + e), e / (1 + e))
        grad_value = (sig - target) * scale if w is None else (sig - target) * (w * scale)
        count = n * d
    elif loss_kind == POISSON:
        if not np.all(target >= 0):
            raise ValueError("loss: poisson targets must be >= 0")
        mu = np.exp(out)
        positive = target > 0
        logs = np.log(np.where(positive, target, real(1)))
        terms = np.where(positive, target * (logs - out), real(0)) - target + mu
        scale = real(1.0 / n)
        grad_value = (mu - target) * scale if w is None else (mu - target) * (w * scale)
        count = n
    else:
        raise ValueError(f"loss: unknown loss code {loss_kind}")
    rows = terms.sum(axis=1, dtype=np.float64)
    value = (rows.sum() if w is None else np.dot(rows, weights.astype(np.float64))) / count
    if grad is not None:
        grad[...] = grad_value
    return float(value)
