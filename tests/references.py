"""Independent float64 references for the activations (shared by test_kernels.py and test_hypothesis.py), the
textbook formulas written out here, never the kernels' (fused or rearranged) forms; and central differences."""
import numpy as np

from fastnn._codes import LEAKY_RELU, LINEAR, RELU, SIGMOID, SOFTMAX, TANH


def ref_act(z, act, alpha):
    """act(z) in float64 (overflow in exp, at extreme inputs, gives the limits 0 or 1 without a warning)."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        if act == LINEAR:
            return z.copy()
        if act == SIGMOID:
            return 1.0 / (1.0 + np.exp(-z))
        if act == TANH:
            return np.tanh(z)
        if act == RELU:
            return np.maximum(z, 0.0)
        if act == LEAKY_RELU:
            return np.where(z > 0, z, alpha * z)
        if act == SOFTMAX:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(act)


def ref_act_backward(da, a, act, alpha):
    """da * act'(z) in float64, the derivative written from the activation's output a."""
    da, a = np.asarray(da, np.float64), np.asarray(a, np.float64)
    if act == SOFTMAX:
        return a * (da - np.sum(da * a, axis=1, keepdims=True))
    deriv = {LINEAR: np.ones_like(a), SIGMOID: a * (1 - a), TANH: 1 - a * a, RELU: (a > 0).astype(np.float64),
             LEAKY_RELU: np.where(a > 0, 1.0, alpha)}[act]
    return da * deriv


def central_differences(f, z, h=1e-6):
    """The gradient of the scalar f at z by central differences, element by element: the numerical reference for
    the loss kernels' gradients."""
    grad = np.empty(z.shape)
    for index in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (2 * h)
    return grad
