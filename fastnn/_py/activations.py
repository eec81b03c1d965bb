"""Activations and their derivatives (twin of csrc/activations.c). Codes as in fastnn/_codes.py."""
import numpy as np

from .._codes import EXP, LEAKY_RELU, LINEAR, RELU, SIGMOID, SOFTMAX, TANH


def sigmoid(z):
    """Logistic function that never evaluates exp of a large positive number."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def softmax_rows(z):
    """Row-wise softmax, shifted by the row maximum; the row sums are taken in float64 as in C."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    inv = (1.0 / e.sum(axis=1, keepdims=True, dtype=np.float64)).astype(z.dtype)
    return e * inv


def apply_activation(z, act, alpha):
    """act(z) as a new array (z is left alone)."""
    if act == SIGMOID:
        return sigmoid(z)
    if act == TANH:
        return np.tanh(z)
    if act == RELU:
        return np.where(z < 0, z.dtype.type(0), z)
    if act == LEAKY_RELU:
        return np.where(z < 0, z.dtype.type(alpha) * z, z)
    if act == SOFTMAX:
        return softmax_rows(z)
    if act == EXP:
        return np.exp(z)
    if act == LINEAR:
        return z
    raise ValueError(f"act_forward: unknown activation code {act}")


def activate_inplace(z, act, alpha):
    """z (n, d) <- act(z) without temporaries the size of z where NumPy allows (relu, tanh, softmax): the same
    operations, in the same order, as apply_activation."""
    if act == RELU:
        np.maximum(z, 0, out=z)  # NaN propagates, as in the C kernel
    elif act == TANH:
        np.tanh(z, out=z)
    elif act == EXP:
        np.exp(z, out=z)
    elif act == SOFTMAX and z.shape[0] == 1:  # one sample: scalar reductions, a third of the axis=1 path's time
        row = z[0]
        row -= row.max()
        np.exp(row, out=row)
        row *= z.dtype.type(1.0 / float(row.sum(dtype=np.float64)))
    elif act == SOFTMAX:
        np.subtract(z, z.max(axis=1, keepdims=True), out=z)
        np.exp(z, out=z)
        z *= (1.0 / z.sum(axis=1, keepdims=True, dtype=np.float64)).astype(z.dtype)
    elif act != LINEAR:
        z[...] = apply_activation(z, act, alpha)


def act_forward(a, act, alpha, n_threads):
    """a <- act(a) in place (softmax normalises each row)."""
    if a.shape[0] == 0:
        return
    activate_inplace(a, act, alpha)


def act_backward(dz, da, a, act, alpha, n_threads):
    """dz = da * act'(z), the derivative taken from the activation's output a. dz may be da, not a."""
    if np.may_share_memory(dz, a):
        raise ValueError("act_backward: dz must not overlap a")
    one = a.dtype.type(1)
    if act == SIGMOID:
        dz[...] = da * (a * (one - a))
    elif act == TANH:
        dz[...] = da * (one - a * a)
    elif act == RELU:
        dz[...] = np.where(a > 0, da, a.dtype.type(0))
    elif act == LEAKY_RELU:
        dz[...] = np.where(a > 0, da, a.dtype.type(alpha) * da)
    elif act == SOFTMAX:
        dot = np.einsum("ij,ij->i", da.astype(np.float64), a.astype(np.float64))[:, None]
        dz[...] = a * (da - dot.astype(a.dtype))
    elif act == EXP:
        dz[...] = da * a
    elif act == LINEAR:
        dz[...] = da
    else:
        raise ValueError(f"act_backward: unknown activation code {act}")
