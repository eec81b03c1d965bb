"""Losses and their gradients, softmax / sigmoid fused where they belong (twin of csrc/losses.c).

Every loss is a mean: mse over all n*d elements of (out - t)^2 (no 1/2 factor); cross_entropy over samples of
-sum_j t_j log softmax(z)_j (cross_entropy_ignore: over the rows whose targets are not all zero);
binary_cross_entropy over all n*d elements, computed from the logits z; poisson (log link, scikit-learn's half
Poisson deviance) summed over the d outputs and averaged over the n samples, computed from z = log(mu):
y (log y - z) - y + exp(z), 0 log 0 = 0.
"""
import math

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


def _log_softmax(z):
    """Rows of z minus their log-sum-exp (shifted by the row maximum, the sum taken in float64)."""
    m = z.max(axis=1, keepdims=True)
    s = np.exp(z - m).sum(axis=1, keepdims=True, dtype=np.float64)
    return z - (m + np.log(s).astype(z.dtype))


def distill_loss(grad, out, target, teacher, temperature, alpha, n_threads, weights=None):
    """Distillation loss (Hinton et al.) of a softmax output, the mean over samples of
    (1 - alpha) cross_entropy(out, target) + alpha T^2 KL(softmax(teacher / T) || softmax(out / T)), out and
    teacher logits (n, d); q log q is 0 where q is 0. If grad is not None it receives the gradient w.r.t. out:
    (1 - alpha) (softmax(out) sum(t) - t) / n + alpha T (softmax(out / T) - softmax(teacher / T)) / n, each row
    times its sample weight."""
    n, d = out.shape
    if n == 0:
        raise ValueError("distill_loss: empty batch")
    if target.shape != out.shape or teacher.shape != out.shape:
        raise ValueError(f"distill_loss: target {target.shape} / teacher {teacher.shape} differ from {out.shape}")
    if not (0 < temperature < math.inf) or not 0 <= alpha <= 1:
        raise ValueError(f"distill_loss: temperature must be > 0 and alpha in [0, 1], got {temperature}, {alpha}")
    real = out.dtype.type
    inv_T = real(1.0 / temperature)
    hard_grad = np.zeros_like(out) if grad is not None else None
    hard = loss(hard_grad, out, target, CROSS_ENTROPY, n_threads, weights)  # the mean cross-entropy
    log_p = _log_softmax(out * inv_T)
    log_q = _log_softmax(teacher * inv_T)
    q = np.exp(log_q)
    terms = np.where(q > 0, q * (log_q - log_p), real(0))
    rows = terms.sum(axis=1, dtype=np.float64)
    soft = (rows.sum() if weights is None else np.dot(rows, weights.astype(np.float64))) / n
    if grad is not None:
        scale = real(1.0 / n) if weights is None else weights.reshape(-1, 1) * real(1.0 / n)
        # the hard gradient already carries w / n; the soft one gets it here
        grad[...] = real(1.0 - alpha) * hard_grad + real(alpha * temperature) * (np.exp(log_p) - q) * scale
    return float((1.0 - alpha) * hard + alpha * temperature * temperature * soft)
