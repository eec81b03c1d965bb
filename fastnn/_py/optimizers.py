"""Parameter updates over one flat buffer, weights first (twin of csrc/optimizers.c).

The first n_decay entries are the weights, which get L2 weight decay (g += wd * p); biases do not.
"""
import math
import threading

import numpy as np

from .._codes import EPS_CORRECTED, EPS_UNCORRECTED

_local = threading.local()


def _scratch(like, which=0):
    """Reusable temporaries of like's shape and dtype, per Python thread (networks may train in several threads
    at once): an update runs over the whole network every step, and a fresh temporary that size costs page
    faults each time. Only the most recent size is kept."""
    key = (like.shape, like.dtype.str)
    if getattr(_local, "key", None) != key:
        _local.key, _local.bufs = key, {}
    buf = _local.bufs.get(which)
    if buf is None:
        buf = _local.bufs[which] = np.empty_like(like)
    return buf


def _decayed(params, grads, n_decay, weight_decay):
    """The gradient with L2 decay on the weights: grads itself (not to be written) when there is none."""
    if weight_decay == 0 or n_decay == 0:
        return grads
    g = grads.copy()
    g[:n_decay] += params.dtype.type(weight_decay) * params[:n_decay]
    return g


def sgd_step(params, grads, velocity, n_decay, lr, momentum, nesterov, weight_decay, n_threads):
    """p -= lr g, or with momentum (PyTorch's form) v = mu v + g and p -= lr (g + mu v) if nesterov else lr v."""
    real = params.dtype.type
    g = _decayed(params, grads, n_decay, weight_decay)
    if momentum != 0:
        if velocity is None:
            raise ValueError("sgd_step: momentum needs a velocity buffer")
        velocity *= real(momentum)
        velocity += g
        if nesterov:
            params -= real(lr) * (g + real(momentum) * velocity)
            return
        g = velocity
    # params -= lr g, in place (NumPy's `-= lr * g` would allocate a temporary the size of the network)
    params -= np.multiply(g, real(lr), out=_scratch(g))


def adam_step(params, grads, m, v, n_decay, lr, beta1, beta2, eps, weight_decay, t, n_threads, eps_placement=0):
    """Adam, step t >= 1: p -= lr_t m / (sqrt(v) + eps_t), the bias corrections folded into lr_t and eps_t.
    eps_placement 0 (EPS_CORRECTED): eps_t = eps sqrt(1 - b2^t), i.e. eps added to sqrt(vhat); 1
    (EPS_UNCORRECTED): eps_t = eps, added to sqrt(v) as scikit-learn does."""
    _adam_like(params, grads, m, v, n_decay, lr, beta1, beta2, eps, weight_decay, t, False, eps_placement)


def adamw_step(params, grads, m, v, n_decay, lr, beta1, beta2, eps, weight_decay, t, n_threads, eps_placement=0):
    """AdamW: the weights are first multiplied by (1 - lr * weight_decay), then take an Adam step without L2."""
    _adam_like(params, grads, m, v, n_decay, lr, beta1, beta2, eps, weight_decay, t, True, eps_placement)


def _adam_like(params, grads, m, v, n_decay, lr, beta1, beta2, eps, weight_decay, t, decoupled, eps_placement):
    if t < 1:
        raise ValueError("adam_step: t must be >= 1")
    if eps_placement not in (EPS_CORRECTED, EPS_UNCORRECTED):
        raise ValueError(f"adam_step: unknown eps_placement {eps_placement}")
    real = params.dtype.type
    c2 = math.sqrt(1.0 - beta2 ** t)
    lr_t = real(lr * c2 / (1.0 - beta1 ** t))
    eps_t = real(eps * c2 if eps_placement == EPS_CORRECTED else eps)
    if decoupled:
        g = grads
        params[:n_decay] *= real(1.0 - lr * weight_decay)
    else:
        g = _decayed(params, grads, n_decay, weight_decay)
    tmp = _scratch(g)
    m *= real(beta1)
    m += np.multiply(g, real(1.0 - beta1), out=tmp)
    v *= real(beta2)
    np.multiply(g, g, out=tmp)
    tmp *= real(1.0 - beta2)
    v += tmp
    # p -= (lr_t m) / (sqrt(v) + eps_t), in the C kernel's order, through two temporaries
    np.sqrt(v, out=tmp)
    tmp += eps_t
    step = np.multiply(m, lr_t, out=_scratch(g, 1))
    step /= tmp
    params -= step


def rmsprop_step(params, grads, sq, n_decay, lr, rho, eps, weight_decay, n_threads):
    """RMSprop: s = rho s + (1 - rho) g^2; p -= lr g / (sqrt(s) + eps)."""
    real = params.dtype.type
    g = _decayed(params, grads, n_decay, weight_decay)
    sq *= real(rho)
    sq += real(1.0 - rho) * (g * g)
    params -= real(lr) * g / (np.sqrt(sq) + real(eps))


def irprop_minus_step(params, grads, prev, steps, n_decay, eta_plus, eta_minus, step_min, step_max, weight_decay,
                      n_threads):
    """iRPROP-: per parameter, grow the step while the gradient keeps its sign, shrink it (and skip the weight
    once) when the sign flips, then move by the step against the gradient's sign."""
    real = params.dtype.type
    g = _decayed(params, grads, n_decay, weight_decay)
    agree = g * prev
    grow, shrink = agree > 0, agree < 0
    steps[grow] = np.minimum(steps[grow] * real(eta_plus), real(step_max))
    steps[shrink] = np.maximum(steps[shrink] * real(eta_minus), real(step_min))
    g[shrink] = 0
    prev[...] = g
    params -= np.sign(g) * steps


def clip_grad_norm(grads, max_norm, n_threads):
    """Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_: when ||g|| (the 2-norm of the whole
    flat buffer, summed in double) exceeds max_norm, g *= max_norm / (||g|| + 1e-6). Returns
    whether it scaled. A non-finite norm leaves g as it is (the loss check stops training)."""
    norm = math.sqrt(float(np.dot(grads.astype(np.float64), grads.astype(np.float64))))
    coef = max_norm / (norm + 1e-6)
    if not math.isfinite(norm) or coef >= 1.0:
        return False
    grads *= grads.dtype.type(coef)
    return True
