"""Losses and their gradients, softmax / sigmoid fused where they belong (twin of csrc/losses.c).

Every loss is a mean: mse over all n*d elements of (out - t)^2 (no 1/2 factor); cross_entropy over samples of
-sum_j t_j log softmax(z)_j; binary_cross_entropy over all n*d elements, computed from the logits z.
"""
import numpy as np

from .._codes import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, MSE


def loss(grad, out, target, loss_kind, n_threads):
    """Mean loss of out against target; if grad is not None it receives d(mean loss)/d(out)."""
    n, d = out.shape
    if n == 0:
        raise ValueError("loss: empty batch")
    real = out.dtype.type
    if loss_kind == MSE:
        diff = out - target
        value = np.sum(diff * diff, dtype=np.float64) / (n * d)
        if grad is not None:
            grad[...] = real(2.0 / (n * d)) * diff
    elif loss_kind == CROSS_ENTROPY:
        m = out.max(axis=1, keepdims=True)
        s = np.exp(out - m).sum(axis=1, keepdims=True, dtype=np.float64)
        lse = m + np.log(s).astype(out.dtype)
        value = np.sum(target * (lse - out), dtype=np.float64) / n
        if grad is not None:
            t_sum = target.sum(axis=1, keepdims=True)
            grad[...] = (np.exp(out - lse) * t_sum - target) * real(1.0 / n)
    elif loss_kind == BINARY_CROSS_ENTROPY:
        e = np.exp(-np.abs(out))
        terms = np.maximum(out, real(0)) - out * target + np.log1p(e)
        value = np.sum(terms, dtype=np.float64) / (n * d)
        if grad is not None:
            sig = np.where(out >= 0, 1 / (1 + e), e / (1 + e))
            grad[...] = (sig - target) * real(1.0 / (n * d))
    else:
        raise ValueError(f"loss: unknown loss code {loss_kind}")
    return float(value)
