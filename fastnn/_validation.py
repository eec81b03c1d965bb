"""Argument checks and conversions, done once in Python before any kernel runs, for both backends.

Each check raises TypeError or ValueError with a message that names the argument and what was expected, and
none of them touches a network, so a refused call leaves it exactly as it was.
"""
import math
import numbers
import operator

import numpy as np

from . import _codes
from ._py import checks as _py_checks


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got a bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_float(name, value, minimum=0.0, maximum=math.inf, include_minimum=True, include_maximum=False):
    """A finite real number in [minimum, maximum) (the bounds' inclusion as given): a float.

    The upper bound is exclusive by default: the bounded rates (momentum, beta1, beta2) must stay below 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    low_ok = value >= minimum if include_minimum else value > minimum
    high_ok = value <= maximum if include_maximum else value < maximum
    if not (math.isfinite(value) and low_ok and high_ok):
        if math.isinf(maximum):
            expected = f"{'>=' if include_minimum else '>'} {minimum:g}"
        else:
            expected = (f"in {'[' if include_minimum else '('}{minimum:g}, {maximum:g}"
                        f"{']' if include_maximum else ')'}")
        raise ValueError(f"{name} must be a finite number {expected}, got {value}")
    return value


def check_dtype(dtype, choices):
    """The name of a floating dtype among `choices`, from a name ("float32") or a NumPy dtype-like (np.float32).

    Anything else, including None and objects NumPy cannot read as a dtype, is a ValueError listing the choices."""
    name = dtype
    if not isinstance(dtype, str) and dtype is not None:
        try:
            name = np.dtype(dtype).name
        except (TypeError, ValueError):
            pass
    if not isinstance(name, str) or name not in choices:
        got = name if isinstance(name, str) else dtype
        raise ValueError(f"dtype must be one of {sorted(choices)}, got {got!r}")
    return name


def as_array(name, value):
    """np.asarray with the dtype policy: bools and integers convert, anything else non-real is refused.

    A ragged nested sequence (rows of different lengths) is a ValueError that names the argument."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # NumPy >= 1.24: "setting an array element with a sequence ... inhomogeneous"
        raise ValueError(f"{name} must be a rectangular array of real numbers; a nested sequence with rows of "
                         f"different lengths (ragged) cannot be one ({exc})") from None
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (float, integer or bool), got dtype {arr.dtype}")
    return arr


def _all_finite(arr):
    """np.isfinite(arr).all() without a boolean temporary the size of arr (which would be the biggest allocation
    of a fit): the all_finite kernel of the backend (csrc/checks.c: threaded) for large float arrays, its NumPy
    twin (in slices) for anything else, and one isfinite call for small inputs (a single sample's fast path)."""
    if arr.size <= _py_checks.SLICE:
        return bool(np.isfinite(arr).all())
    if arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous:
        from . import _backend, _threads
        return _backend.get().all_finite(arr.reshape(-1), _threads.get_num_threads())
    return _py_checks.all_finite(arr.reshape(-1), 1)


def _converted(name, arr, dtype):
    """arr as a C-contiguous array of `dtype` (a copy only when needed), refusing NaN, infinity and values that
    overflow `dtype` (a float64 1e300 in a float32 network) instead of letting them become infinity."""
    if arr.dtype == dtype and arr.flags.c_contiguous:
        out = arr  # nothing to convert: skip the errstate context, a microsecond on every single-sample call
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray(arr, dtype=dtype)
    if not _all_finite(out):
        if arr.dtype.kind == "f" and not _all_finite(arr):
            raise ValueError(f"{name} contains NaN or infinity")
        big = np.finfo(dtype).max
        raise ValueError(f"{name} has values outside the {np.dtype(dtype).name} range (magnitude above "
                         f"{big:.4g}); expected finite values the network's dtype can hold")
    return out


def as_input(name, X, n_features, dtype):
    """X as a C-contiguous array of `dtype`: (n, n_features), or (n_features,) for one sample.

    Non-contiguous, Fortran-order, negative-stride and read-only inputs are copied, not refused."""
    X = as_array(name, X)
    if X.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one sample) or 2-D (n_samples, n_features), got {X.ndim}-D")
    if X.shape[-1] != n_features:
        raise ValueError(f"{name} has {X.shape[-1]} features, the network expects {n_features}")
    if X.ndim == 2 and X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples); expected at least one row of {n_features} features")
    return _converted(name, X, dtype)


def as_targets(name, y, n_samples, n_outputs, loss, dtype):
    """Targets as a C-contiguous (n_samples, n_outputs) matrix of `dtype`.

    cross_entropy takes integer class labels in [0, n_outputs) (1-D) or rows of class probabilities (2-D);
    binary_cross_entropy takes values in [0, 1]; poisson values >= 0; mse takes any finite values. A 1-D y is accepted for one output.
    """
    y = as_array(name, y)
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(f"{name} must be 1-D (n_samples,) or 2-D (n_samples, {n_outputs}), got {y.ndim}-D")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} samples, expected {n_samples} (one per input row)")
    if not _all_finite(y):
        raise ValueError(f"{name} contains NaN or infinity")
    if loss == "cross_entropy" and y.ndim == 1:
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            bad = y[y != np.round(y)][0]
            raise ValueError(f"{name}: class labels must be integers in [0, {n_outputs - 1}], got non-integer "
                             f"values such as {bad}")
        if y.dtype.kind == "b":
            raise TypeError(f"{name}: class labels must be integers, got bools")
        if y.size and (y.min() < 0 or y.max() >= n_outputs):
            raise ValueError(f"{name}: class labels must be in [0, {n_outputs - 1}], "
                             f"got values in [{y.min()}, {y.max()}]")
        T = np.zeros((n_samples, n_outputs), dtype=dtype)
        T[np.arange(n_samples), y.astype(np.intp)] = 1
        return T
    if y.ndim == 1:
        if n_outputs != 1:
            raise ValueError(f"{name} is 1-D but the network has {n_outputs} outputs; pass (n_samples, "
                             f"{n_outputs}) targets" + (" or integer labels" if loss == "cross_entropy" else ""))
        y = y.reshape(-1, 1)
    if y.shape[1] != n_outputs:
        raise ValueError(f"{name} has {y.shape[1]} columns, the network has {n_outputs} outputs")
    if loss in ("cross_entropy", "binary_cross_entropy") and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"{name}: {loss} targets must lie in [0, 1], got values in [{y.min()}, {y.max()}]")
    if loss == "poisson" and y.min() < 0:
        raise ValueError(f"{name}: poisson targets must be >= 0 (counts or rates), got a minimum of {y.min()}")
    return _converted(name, y, dtype)


def parse_activations(activations, n_layers, loss):
    """One activation name per weight layer. A single string names every hidden layer and the output follows
    the loss (linear for mse, softmax for cross_entropy, sigmoid for binary_cross_entropy)."""
    valid = _codes.ACTIVATIONS
    if isinstance(activations, str):
        check_choice("activations", activations, valid)
        names = [activations] * (n_layers - 1) + [_codes.OUTPUT_ACTIVATION[loss]]
    else:
        try:
            names = list(activations)
        except TypeError:
            raise TypeError("activations must be a string or a sequence of strings") from None
        if len(names) != n_layers:
            raise ValueError(f"activations needs one name per weight layer ({n_layers}), got {len(names)}")
        for i, name in enumerate(names):
            check_choice(f"activations[{i}]", name, valid)
    fused = _codes.FUSED_OUTPUT
    if loss in fused and names[-1] != fused[loss]:
        raise ValueError(f"loss {loss!r} needs a {fused[loss]!r} output layer (it is fused into the loss), "
                         f"got {names[-1]!r}")
    return names


def parse_sizes(sizes):
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError("sizes must be a sequence of layer widths, e.g. [784, 256, 10]") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output width, got {sizes}")
    return [check_int(f"sizes[{i}]", s, 1) for i, s in enumerate(sizes)]


def parse_shape(name, shape):
    """A per-sample shape: a tuple of 1 to 3 positive ints (an int means a vector of that many values)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, e.g. (1, 28, 28), got {shape!r}") from None
    if not 1 <= len(dims) <= 3:
        raise ValueError(f"{name} must have 1 to 3 dimensions (features, or channels, height, width), got "
                         f"{shape!r}")
    return tuple(check_int(f"{name}[{i}]", d, 1) for i, d in enumerate(dims))
