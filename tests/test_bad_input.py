"""Bad input, on both backends: every refusal is a ValueError, TypeError or MemoryError (never a crash) whose
message names the argument and what was expected, raised before anything runs, so the network is left bit for bit
as it was (parameters, gradient buffer, optimizer state and step count, the shuffling generator). Inputs that are
merely unusual (bool and integer dtypes; non-contiguous, Fortran-order, negative-stride and read-only arrays) are
accepted and give exactly the results of the plain float input, and nothing the caller passes in is modified or
kept."""
import copy

import numpy as np
import pytest

import fastnn

SIZES = {"mse": [4, 5, 2], "cross_entropy": [4, 5, 3], "binary_cross_entropy": [4, 5, 2]}
N = 6


def good_data(loss, n=N, seed=1):
    """A valid (X, y) for a network of SIZES[loss]: float64 X, labels for cross_entropy, targets otherwise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, SIZES[loss][0]))
    d_out = SIZES[loss][-1]
    if loss == "cross_entropy":
        y = np.arange(n) % d_out
    elif loss == "binary_cross_entropy":
        y = rng.uniform(0, 1, size=(n, d_out))
    else:
        y = rng.normal(size=(n, d_out))
    return X, y


def make_net(backend, loss="cross_entropy", dtype="float32", warm=True):
    """A network whose state is not trivial: one momentum step taken, so the gradient buffer, the velocity and
    the step count all hold something a refused call could disturb."""
    net = fastnn.Network(SIZES[loss], activations="tanh", loss=loss, dtype=dtype, seed=0, backend=backend)
    if warm:
        X, y = good_data(loss, seed=99)
        net.train_step(X, y, learning_rate=0.1, momentum=0.9)
    return net


def _state(value, seen):
    """A comparable, bit-exact picture of `value` and everything it holds (arrays by their bytes)."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.random.Generator):
        return ("generator", repr(value.bit_generator.state))
    if isinstance(value, (int, float, str, bytes, bool, type(None), np.generic)):
        return value
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_state(v, seen) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _state(v, seen)) for k, v in value.items()))
    if type(value).__module__.startswith("fastnn.") and hasattr(value, "__dict__") and id(value) not in seen:
        seen.add(id(value))  # a fastnn object (a layer, the optimizer state): everything it holds
        return (type(value).__name__, _state(vars(value), seen))
    return ("object", type(value).__name__, id(value))  # a kernel module or handle: the same object


def snapshot(net):
    """Everything a network holds: parameters, gradient buffer, optimizer state and step count, the shuffling
    generator, workspaces, layers, whatever the implementation keeps (compared bit for bit)."""
    return {
        "params": net._params.copy(),
        "opt_t": net._opt_t,
        "all": _state(vars(net), set()),
    }


def assert_unchanged(net, before):
    after = snapshot(net)
    assert after["params"].dtype == before["params"].dtype
    assert np.array_equal(after["params"], before["params"]), "a refused call changed the parameters"
    assert after["opt_t"] == before["opt_t"], "a refused call advanced the optimizer step count"
    assert after["all"] == before["all"], "a refused call changed the network's state"


# ============================================================================================ refused calls
# Each case: (loss of the network, the call, the exception type, a regex the message must match). The call gets
# the network and a valid (X, y) for it and makes one thing wrong.

def _nan_at(a, value=np.nan):
    a = np.array(a, dtype=np.float64)
    a.flat[3] = value
    return a


def _ragged():
    return [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6], [0.7, 0.8, 0.9, 1.0]]


MSG_FEATURES = r"X has 3 features, the network expects 4"
MSG_EMPTY = r"X is empty \(0 samples\); expected at least one row of 4 features"
MSG_SAMPLES = r"y has 5 samples, expected 6 \(one per input row\)"
MSG_NDIM = r"X must be 1-D \(one sample\) or 2-D \(n_samples, n_features\), got {}-D"
MSG_LABELS = r"y: class labels must be in \[0, 2\], got values in \[{}, {}\]"
MSG_NOT_REAL = r"{} must hold real numbers \(float, integer or bool\), got dtype {}"
MSG_RAGGED = r"{} must be a rectangular array of real numbers; a nested sequence with rows of different lengths"
MSG_LR = r"learning_rate must be a finite number > 0, got {}"
MSG_MOMENTUM = r"momentum must be a finite number in \[0, 1\), got {}"
MSG_NESTEROV = r"nesterov=True needs optimizer='sgd' with momentum > 0"
MSG_OPTIMIZER = r"optimizer must be one of \['adam', 'adamw', 'irprop-', 'rmsprop', 'sgd'\], got {}"
MSG_VAL_PAIR = r"validation_data must be a tuple \(X_val, y_val\)"

CE, BCE, MSE = "cross_entropy", "binary_cross_entropy", "mse"

REFUSED = [
    # ---- wrong number of features, on every entry point
    pytest.param(CE, lambda net, X, y: net.forward(X[:, :3]), ValueError, MSG_FEATURES, id="forward-features"),
    pytest.param(CE, lambda net, X, y: net.predict(X[:, :3]), ValueError, MSG_FEATURES, id="predict-features"),
    pytest.param(CE, lambda net, X, y: net.forward(X[0, :3]), ValueError, MSG_FEATURES, id="forward-1sample-features"),
    pytest.param(CE, lambda net, X, y: net.forward(np.ones((N, 5))), ValueError,
                 r"X has 5 features, the network expects 4", id="forward-too-many-features"),
    pytest.param(CE, lambda net, X, y: net.fit(X[:, :3], y), ValueError, MSG_FEATURES, id="fit-features"),
    pytest.param(CE, lambda net, X, y: net.train_step(X[:, :3], y), ValueError, MSG_FEATURES,
                 id="train_step-features"),
    pytest.param(CE, lambda net, X, y: net.evaluate(X[:, :3], y), ValueError, MSG_FEATURES, id="evaluate-features"),
    pytest.param(CE, lambda net, X, y: net.gradients(X[:, :3], y), ValueError, MSG_FEATURES,
                 id="gradients-features"),
    # ---- 3-D and 0-D input
    pytest.param(CE, lambda net, X, y: net.forward(X.reshape(2, 3, 4)), ValueError, MSG_NDIM.format(3),
                 id="forward-3d"),
    pytest.param(CE, lambda net, X, y: net.fit(X.reshape(2, 3, 4), y), ValueError, MSG_NDIM.format(3), id="fit-3d"),
    pytest.param(CE, lambda net, X, y: net.gradients(X.reshape(2, 3, 4), y), ValueError, MSG_NDIM.format(3),
                 id="gradients-3d"),
    pytest.param(CE, lambda net, X, y: net.forward(X[0, 0]), ValueError, MSG_NDIM.format(0), id="forward-0d"),
    pytest.param(CE, lambda net, X, y: net.train_step(1.5, 0), ValueError, MSG_NDIM.format(0), id="train_step-0d"),
    # ---- empty X
    pytest.param(CE, lambda net, X, y: net.forward(X[:0]), ValueError, MSG_EMPTY, id="forward-empty"),
    pytest.param(CE, lambda net, X, y: net.fit(X[:0], y[:0]), ValueError, MSG_EMPTY, id="fit-empty"),
    pytest.param(CE, lambda net, X, y: net.train_step(X[:0], y[:0]), ValueError, MSG_EMPTY, id="train_step-empty"),
    pytest.param(CE, lambda net, X, y: net.evaluate(X[:0], y[:0]), ValueError, MSG_EMPTY, id="evaluate-empty"),
    pytest.param(CE, lambda net, X, y: net.gradients(X[:0], y[:0]), ValueError, MSG_EMPTY, id="gradients-empty"),
    pytest.param(CE, lambda net, X, y: net.forward([]), ValueError, r"X has 0 features, the network expects 4",
                 id="forward-empty-list"),
    # ---- n_samples of X and y differ
    pytest.param(CE, lambda net, X, y: net.fit(X, y[:5]), ValueError, MSG_SAMPLES, id="fit-n_samples"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y[:5]), ValueError, MSG_SAMPLES, id="train_step-n_samples"),
    pytest.param(MSE, lambda net, X, y: net.evaluate(X, y[:5]), ValueError, MSG_SAMPLES, id="evaluate-n_samples"),
    pytest.param(BCE, lambda net, X, y: net.gradients(X, y[:5]), ValueError, MSG_SAMPLES, id="gradients-n_samples"),
    pytest.param(CE, lambda net, X, y: net.evaluate(X, np.zeros((N, 3, 1))), ValueError,
                 r"y must be 1-D \(n_samples,\) or 2-D \(n_samples, 3\), got 3-D", id="evaluate-y-3d"),
    pytest.param(CE, lambda net, X, y: net.evaluate(X, 1), ValueError,
                 r"y must be 1-D \(n_samples,\) or 2-D \(n_samples, 3\), got 0-D", id="evaluate-y-0d"),
    pytest.param(CE, lambda net, X, y: net.fit(X, np.eye(2)[y % 2]), ValueError,
                 r"y has 2 columns, the network has 3 outputs", id="fit-y-columns"),
    # ---- class labels for cross_entropy: out of range, negative, non-integer, bool
    pytest.param(CE, lambda net, X, y: net.fit(X, np.where(y == 2, 3, y)), ValueError, MSG_LABELS.format(0, 3),
                 id="fit-label-out-of-range"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, np.where(y == 2, -1, y)), ValueError,
                 MSG_LABELS.format(-1, 1), id="train_step-label-negative"),
    pytest.param(CE, lambda net, X, y: net.gradients(X, y + 10), ValueError, MSG_LABELS.format(10, 12),
                 id="gradients-label-out-of-range"),
    pytest.param(CE, lambda net, X, y: net.evaluate(X, y + 0.5), ValueError,
                 r"y: class labels must be integers in \[0, 2\], got non-integer values such as 0.5",
                 id="evaluate-label-non-integer"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y.astype(np.float64) - 0.25), ValueError,
                 r"y: class labels must be integers in \[0, 2\], got non-integer values such as -0.25",
                 id="fit-label-non-integer"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y == 1), TypeError, r"y: class labels must be integers, got bools",
                 id="fit-label-bool"),
    # ---- targets outside [0, 1] for binary_cross_entropy (and probability rows for cross_entropy)
    pytest.param(BCE, lambda net, X, y: net.fit(X, y + 1.0), ValueError,
                 r"y: binary_cross_entropy targets must lie in \[0, 1\], got values in", id="fit-bce-above-1"),
    pytest.param(BCE, lambda net, X, y: net.train_step(X, y - 1.0), ValueError,
                 r"y: binary_cross_entropy targets must lie in \[0, 1\], got values in \[-",
                 id="train_step-bce-below-0"),
    pytest.param(BCE, lambda net, X, y: net.evaluate(X, np.full((N, 2), 2)), ValueError,
                 r"y: binary_cross_entropy targets must lie in \[0, 1\], got values in \[2, 2\]",
                 id="evaluate-bce-above-1"),
    pytest.param(CE, lambda net, X, y: net.gradients(X, 2 * np.eye(3)[y]), ValueError,
                 r"y: cross_entropy targets must lie in \[0, 1\]", id="gradients-ce-rows-above-1"),
    # ---- NaN and infinity, in X and in y
    pytest.param(CE, lambda net, X, y: net.forward(_nan_at(X)), ValueError, r"X contains NaN or infinity",
                 id="forward-X-nan"),
    pytest.param(CE, lambda net, X, y: net.forward(_nan_at(X[0], np.inf)), ValueError,
                 r"X contains NaN or infinity", id="forward-1sample-X-inf"),
    pytest.param(CE, lambda net, X, y: net.fit(_nan_at(X, np.inf), y), ValueError, r"X contains NaN or infinity",
                 id="fit-X-inf"),
    pytest.param(CE, lambda net, X, y: net.train_step(_nan_at(X), y), ValueError, r"X contains NaN or infinity",
                 id="train_step-X-nan"),
    pytest.param(MSE, lambda net, X, y: net.evaluate(_nan_at(X, -np.inf), y), ValueError,
                 r"X contains NaN or infinity", id="evaluate-X-neg-inf"),
    pytest.param(MSE, lambda net, X, y: net.fit(X, _nan_at(y)), ValueError, r"y contains NaN or infinity",
                 id="fit-y-nan"),
    pytest.param(MSE, lambda net, X, y: net.train_step(X, _nan_at(y, np.inf)), ValueError,
                 r"y contains NaN or infinity", id="train_step-y-inf"),
    pytest.param(CE, lambda net, X, y: net.gradients(X, _nan_at(y)), ValueError, r"y contains NaN or infinity",
                 id="gradients-labels-nan"),
    pytest.param(BCE, lambda net, X, y: net.evaluate(X, _nan_at(y)), ValueError, r"y contains NaN or infinity",
                 id="evaluate-bce-y-nan"),
    # ---- finite float64 values a float32 network cannot hold (they would silently become infinity)
    pytest.param(CE, lambda net, X, y: net.forward(np.full((N, 4), 1e300)), ValueError,
                 r"X has values outside the float32 range", id="forward-X-overflows-float32"),
    pytest.param(MSE, lambda net, X, y: net.fit(X, np.full((N, 2), -1e300)), ValueError,
                 r"y has values outside the float32 range", id="fit-y-overflows-float32"),
    pytest.param(MSE, lambda net, X, y: net.train_step(X, np.full((N, 2), 1e39)), ValueError,
                 r"y has values outside the float32 range", id="train_step-y-overflows-float32"),
    # ---- object, string and complex dtypes: TypeError
    pytest.param(CE, lambda net, X, y: net.forward(X.astype(object)), TypeError, MSG_NOT_REAL.format("X", "object"),
                 id="forward-X-object"),
    pytest.param(CE, lambda net, X, y: net.forward(X.astype(str)), TypeError, MSG_NOT_REAL.format("X", "<U"),
                 id="forward-X-str"),
    pytest.param(CE, lambda net, X, y: net.fit(X + 0j, y), TypeError, MSG_NOT_REAL.format("X", "complex128"),
                 id="fit-X-complex"),
    pytest.param(CE, lambda net, X, y: net.evaluate(X.astype(np.complex64), y), TypeError,
                 MSG_NOT_REAL.format("X", "complex64"), id="evaluate-X-complex"),
    pytest.param(CE, lambda net, X, y: net.forward(None), TypeError, MSG_NOT_REAL.format("X", "object"),
                 id="forward-X-None"),
    pytest.param(CE, lambda net, X, y: net.forward(X[0].astype(bytes)), TypeError, MSG_NOT_REAL.format("X", "\\|S"),
                 id="forward-1sample-X-bytes"),
    pytest.param(MSE, lambda net, X, y: net.fit(X, y + 1j), TypeError, MSG_NOT_REAL.format("y", "complex128"),
                 id="fit-y-complex"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y.astype(str)), TypeError, MSG_NOT_REAL.format("y", "<U"),
                 id="train_step-y-str"),
    pytest.param(CE, lambda net, X, y: net.gradients(X, y.astype(object)), TypeError,
                 MSG_NOT_REAL.format("y", "object"), id="gradients-y-object"),
    pytest.param(MSE, lambda net, X, y: net.evaluate(X, None), TypeError, MSG_NOT_REAL.format("y", "object"),
                 id="evaluate-y-None"),
    # ---- ragged nested lists
    pytest.param(CE, lambda net, X, y: net.forward(_ragged()), ValueError, MSG_RAGGED.format("X"),
                 id="forward-X-ragged"),
    pytest.param(CE, lambda net, X, y: net.fit(_ragged(), [0, 1, 2]), ValueError, MSG_RAGGED.format("X"),
                 id="fit-X-ragged"),
    pytest.param(CE, lambda net, X, y: net.gradients(_ragged(), [0, 1, 2]), ValueError, MSG_RAGGED.format("X"),
                 id="gradients-X-ragged"),
    pytest.param(MSE, lambda net, X, y: net.train_step(X[:3], [[0.1, 0.2], [0.3], [0.4, 0.5]]), ValueError,
                 MSG_RAGGED.format("y"), id="train_step-y-ragged"),
    pytest.param(MSE, lambda net, X, y: net.evaluate(X[0], [[0.1, 0.2], [0.3]]), ValueError, MSG_RAGGED.format("y"),
                 id="evaluate-1sample-y-ragged"),
    # ---- batch_size, epochs
    pytest.param(CE, lambda net, X, y: net.fit(X, y, batch_size=0), ValueError,
                 r"batch_size must be an integer >= 1, got 0", id="fit-batch_size-0"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, batch_size=-8), ValueError,
                 r"batch_size must be an integer >= 1, got -8", id="fit-batch_size-negative"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, batch_size=2.5), TypeError,
                 r"batch_size must be an integer, got float", id="fit-batch_size-float"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, batch_size="32"), TypeError,
                 r"batch_size must be an integer, got str", id="fit-batch_size-str"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, batch_size=True), TypeError,
                 r"batch_size must be an integer, got a bool", id="fit-batch_size-bool"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, epochs=-1), ValueError, r"epochs must be an integer >= 0, got -1",
                 id="fit-epochs-negative"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, epochs=1.5), TypeError, r"epochs must be an integer, got float",
                 id="fit-epochs-float"),
    # ---- learning_rate
    pytest.param(CE, lambda net, X, y: net.fit(X, y, learning_rate=np.nan), ValueError, MSG_LR.format("nan"),
                 id="fit-lr-nan"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, learning_rate=-0.1), ValueError, MSG_LR.format("-0.1"),
                 id="fit-lr-negative"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, learning_rate=0), ValueError, MSG_LR.format("0.0"),
                 id="fit-lr-zero"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, learning_rate=np.inf), ValueError, MSG_LR.format("inf"),
                 id="fit-lr-inf"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, learning_rate=np.float32("nan")), ValueError,
                 MSG_LR.format("nan"), id="train_step-lr-nan"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, learning_rate=0.0), ValueError, MSG_LR.format("0.0"),
                 id="train_step-lr-zero"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, learning_rate=-np.inf), ValueError,
                 MSG_LR.format("-inf"), id="train_step-lr-neg-inf"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, learning_rate="0.1"), TypeError,
                 r"learning_rate must be a real number, got str", id="fit-lr-str"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, learning_rate=None), TypeError,
                 r"learning_rate must be a real number, got NoneType", id="train_step-lr-None"),
    # ---- momentum outside [0, 1), nesterov without momentum, weight_decay < 0, adam's own
    pytest.param(CE, lambda net, X, y: net.fit(X, y, momentum=-0.1), ValueError, MSG_MOMENTUM.format("-0.1"),
                 id="fit-momentum-negative"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, momentum=1.0), ValueError, MSG_MOMENTUM.format("1.0"),
                 id="fit-momentum-1"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, momentum=1.5), ValueError, MSG_MOMENTUM.format("1.5"),
                 id="fit-momentum-above-1"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, momentum=1), ValueError, MSG_MOMENTUM.format("1.0"),
                 id="train_step-momentum-1"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, momentum=np.nan), ValueError,
                 MSG_MOMENTUM.format("nan"), id="train_step-momentum-nan"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, nesterov=True), ValueError, MSG_NESTEROV,
                 id="fit-nesterov-no-momentum"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, nesterov=True), ValueError, MSG_NESTEROV,
                 id="train_step-nesterov-no-momentum"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, optimizer="adam", nesterov=True), ValueError, MSG_NESTEROV,
                 id="fit-nesterov-adam"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, weight_decay=-1e-4), ValueError,
                 r"weight_decay must be a finite number >= 0, got -0.0001", id="fit-weight_decay-negative"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, weight_decay=np.inf), ValueError,
                 r"weight_decay must be a finite number >= 0, got inf", id="train_step-weight_decay-inf"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, optimizer="adam", beta1=1.0), ValueError,
                 r"beta1 must be a finite number in \[0, 1\), got 1.0", id="fit-adam-beta1-1"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, optimizer="adam", beta2=-0.5), ValueError,
                 r"beta2 must be a finite number in \[0, 1\), got -0.5", id="train_step-adam-beta2-negative"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, optimizer="adam", epsilon=0.0), ValueError,
                 r"epsilon must be a finite number > 0, got 0.0", id="fit-adam-epsilon-0"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, optimizer="adam", momentum=0.9), ValueError,
                 r"momentum applies to optimizer='sgd', not 'adam'", id="train_step-adam-momentum"),
    # ---- unknown optimizer names: the message lists the valid ones
    pytest.param(CE, lambda net, X, y: net.fit(X, y, optimizer="lbfgs"), ValueError,
                 MSG_OPTIMIZER.format("'lbfgs'"), id="fit-optimizer-unknown"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, optimizer="adam", beta_1=0.9), TypeError,
                 r"unexpected keyword argument\(s\) \['beta_1'\]; optimizer options are", id="fit-option-unknown"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, optimizer="SGD"), ValueError,
                 MSG_OPTIMIZER.format("'SGD'"), id="train_step-optimizer-case"),
    pytest.param(CE, lambda net, X, y: net.train_step(X, y, optimizer=None), ValueError,
                 MSG_OPTIMIZER.format("None"), id="train_step-optimizer-None"),
    # ---- validation_data
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=X), ValueError, MSG_VAL_PAIR,
                 id="fit-validation-not-a-pair"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=(X, y, y)), ValueError, MSG_VAL_PAIR,
                 id="fit-validation-triple"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=(X,)), ValueError, MSG_VAL_PAIR,
                 id="fit-validation-single"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data={"X": X, "y": y}), ValueError, MSG_VAL_PAIR,
                 id="fit-validation-dict"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=(X[:, :3], y)), ValueError,
                 r"validation_data\[0\] has 3 features, the network expects 4", id="fit-validation-features"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=(X, y[:3])), ValueError,
                 r"validation_data\[1\] has 3 samples, expected 6 \(one per input row\)",
                 id="fit-validation-n_samples"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=(X, y + 3)), ValueError,
                 r"validation_data\[1\]: class labels must be in \[0, 2\]", id="fit-validation-labels"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=(_nan_at(X), y)), ValueError,
                 r"validation_data\[0\] contains NaN or infinity", id="fit-validation-nan"),
    pytest.param(CE, lambda net, X, y: net.fit(X, y, validation_data=(X, None)), TypeError,
                 MSG_NOT_REAL.format(r"validation_data\[1\]", "object"), id="fit-validation-y-None"),
]


@pytest.mark.parametrize("loss, call, exc, match", REFUSED)
def test_refused_and_unchanged(backend, loss, call, exc, match):
    net = make_net(backend, loss)
    X, y = good_data(loss)
    X_before, y_before = X.copy(), np.copy(y)
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        call(net, X, y)
    assert_unchanged(net, before)
    assert np.array_equal(X, X_before) and np.array_equal(y, y_before), "a refused call modified its input"


def test_refused_then_still_works(backend):
    """A refused call does not leave anything half-done: the next good step gives what it would have anyway."""
    net, twin = make_net(backend), make_net(backend)
    X, y = good_data("cross_entropy")
    for bad in (lambda: net.train_step(X, y + 5, momentum=0.9), lambda: net.fit(X, y, momentum=1.0),
                lambda: net.fit(X[:, :3], y), lambda: net.gradients(_nan_at(X), y)):
        with pytest.raises(ValueError):
            bad()
    assert net.train_step(X, y, momentum=0.9) == twin.train_step(X, y, momentum=0.9)
    assert np.array_equal(net._params, twin._params) and net._opt_t == twin._opt_t == 2
    assert np.array_equal(net._grads, twin._grads)
    assert net.fit(X, y, epochs=2, batch_size=4)["loss"] == twin.fit(X, y, epochs=2, batch_size=4)["loss"]
    assert np.array_equal(net._params, twin._params)


# ========================================================================================= refused networks
ACTS = r"\['exp', 'leaky_relu', 'linear', 'relu', 'sigmoid', 'softmax', 'tanh'\]"

REFUSED_NETWORKS = [
    # ---- absurd sizes: MemoryError before anything is allocated, not a crash
    pytest.param(dict(sizes=[10**7, 10**7, 1]), MemoryError,
                 r"sizes \[10000000, 10000000, 1\] need 100,000,020,000,001 parameters .* more than this machine's",
                 id="sizes-1e7x1e7"),
    pytest.param(dict(sizes=[1, 10**12, 1]), MemoryError, r"sizes \[1, 1000000000000, 1\] need .* parameters",
                 id="sizes-1e12-hidden"),
    pytest.param(dict(sizes=[10**7, 10**7, 1], dtype="float64"), MemoryError, r"sizes .* GiB with gradients",
                 id="sizes-1e7x1e7-float64"),
    # ---- zeros, negatives, non-integers, too few
    pytest.param(dict(sizes=[4, 0, 2]), ValueError, r"sizes\[1\] must be an integer >= 1, got 0", id="sizes-zero"),
    pytest.param(dict(sizes=[0, 2]), ValueError, r"sizes\[0\] must be an integer >= 1, got 0", id="sizes-zero-input"),
    pytest.param(dict(sizes=[4, 5, -2]), ValueError, r"sizes\[2\] must be an integer >= 1, got -2",
                 id="sizes-negative"),
    pytest.param(dict(sizes=[4, 2.5, 2]), TypeError, r"sizes\[1\] must be an integer, got float", id="sizes-float"),
    pytest.param(dict(sizes=np.array([4.0, 2.0])), TypeError, r"sizes\[0\] must be an integer, got float64",
                 id="sizes-float-array"),
    pytest.param(dict(sizes=["4", "2"]), TypeError, r"sizes\[0\] must be an integer, got str", id="sizes-str"),
    pytest.param(dict(sizes=[4, True]), TypeError, r"sizes\[1\] must be an integer, got a bool", id="sizes-bool"),
    pytest.param(dict(sizes=[4, None]), TypeError, r"sizes\[1\] must be an integer, got NoneType", id="sizes-None"),
    pytest.param(dict(sizes=[4]), ValueError, r"sizes needs at least an input and an output width, got \[4\]",
                 id="sizes-single"),
    pytest.param(dict(sizes=[]), ValueError, r"sizes needs at least an input and an output width, got \[\]",
                 id="sizes-empty"),
    pytest.param(dict(sizes=4), TypeError, r"sizes must be a sequence of layer widths", id="sizes-int"),
    # ---- unknown names: the message lists the valid ones
    pytest.param(dict(sizes=[4, 3], activations="gelu"), ValueError, rf"activations must be one of {ACTS}, got 'gelu'",
                 id="activation-unknown"),
    pytest.param(dict(sizes=[4, 5, 3], activations=["relu", "swish"]), ValueError,
                 rf"activations\[1\] must be one of {ACTS}, got 'swish'", id="activation-unknown-in-list"),
    pytest.param(dict(sizes=[4, 5, 3], activations=["relu"]), ValueError,
                 r"activations needs one name per weight layer \(2\), got 1", id="activation-count"),
    pytest.param(dict(sizes=[4, 5, 3], activations=None), TypeError,
                 r"activations must be a string or a sequence of strings", id="activation-None"),
    pytest.param(dict(sizes=[4, 5, 3], activations=["relu", "relu"], loss="cross_entropy"), ValueError,
                 r"loss 'cross_entropy' needs a 'softmax' output layer", id="activation-ce-output"),
    pytest.param(dict(sizes=[4, 3], loss="hinge"), ValueError,
                 r"loss must be one of \['binary_cross_entropy', 'cross_entropy', 'mse', 'poisson'\], got 'hinge'",
                 id="loss-unknown"),
    pytest.param(dict(sizes=[4, 3], loss=None), ValueError, r"loss must be one of \[.*\], got None", id="loss-None"),
    pytest.param(dict(sizes=[4, 3], dtype="float16"), ValueError,
                 r"dtype must be one of \['float32', 'float64'\], got 'float16'", id="dtype-unknown"),
    pytest.param(dict(sizes=[4, 3], dtype="int32"), ValueError,
                 r"dtype must be one of \['float32', 'float64'\], got 'int32'", id="dtype-int-name"),
    pytest.param(dict(sizes=[4, 3], dtype=np.int32), ValueError,
                 r"dtype must be one of \['float32', 'float64'\], got 'int32'", id="dtype-int-type"),
    pytest.param(dict(sizes=[4, 3], dtype=object()), ValueError, r"dtype must be one of \['float32', 'float64'\]",
                 id="dtype-not-a-dtype"),
    pytest.param(dict(sizes=[4, 3], backend="cuda"), ValueError,
                 r"backend must be None, 'c' or 'python', got 'cuda'", id="backend-unknown"),
]


@pytest.mark.parametrize("kwargs, exc, match", REFUSED_NETWORKS)
def test_refused_network(backend, kwargs, exc, match):
    kwargs = {"backend": backend, **kwargs}
    sizes = copy.copy(kwargs["sizes"])
    with pytest.raises(exc, match=match):
        fastnn.Network(**kwargs)
    if isinstance(sizes, list):
        assert kwargs["sizes"] == sizes, "a refused Network modified its sizes argument"


# ========================================================================================= accepted inputs
def outcome(net, method, X, y):
    """What a call gives, in a form two calls can be compared by (bit for bit) and the network's state after it."""
    if method in ("forward", "predict"):
        return [getattr(net, method)(X)], net._params.copy()
    if method == "evaluate":
        return [net.evaluate(X, y)], net._params.copy()
    if method == "gradients":
        return [g for pair in net.gradients(X, y) for g in pair], net._params.copy()
    if method == "train_step":
        return [net.train_step(X, y, learning_rate=0.1, momentum=0.9),
                net.train_step(X, y, learning_rate=0.1, momentum=0.9)], net._params.copy()
    history = net.fit(X, y, epochs=2, batch_size=4, learning_rate=0.1, momentum=0.5,
                      validation_data=(X, y))
    return [history["loss"], history["val_loss"]], net._params.copy()


def assert_same_outcome(a, b):
    (values_a, params_a), (values_b, params_b) = a, b
    assert len(values_a) == len(values_b)
    for va, vb in zip(values_a, values_b):
        va, vb = np.asarray(va), np.asarray(vb)
        assert va.dtype == vb.dtype and va.shape == vb.shape
        assert np.array_equal(va, vb)
    assert np.array_equal(params_a, params_b)


def check_accepted(backend, loss, method, X, y, X_ref, y_ref, dtype="float32"):
    """The call on (X, y) gives bit for bit what it gives on the plain (X_ref, y_ref), on twin networks, and
    leaves X and y as they were."""
    X_copy, y_copy = np.array(X, copy=True), np.array(y, copy=True)
    got = outcome(make_net(backend, loss, dtype), method, X, y)
    expected = outcome(make_net(backend, loss, dtype), method, X_ref, y_ref)
    assert_same_outcome(got, expected)
    assert np.array_equal(np.asarray(X), X_copy) and np.array_equal(np.asarray(y), y_copy), "the input was modified"


METHODS = ["forward", "evaluate", "gradients", "train_step", "fit"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["bool", "int8", "uint8", "int32", "int64", "float16", "float64"])
def test_bool_and_integer_X_accepted(backend, kind, method):
    rng = np.random.default_rng(3)
    X = (rng.integers(0, 2, size=(N, 4)) if kind == "bool" else rng.integers(-3, 8, size=(N, 4))).astype(kind)
    if kind == "uint8":
        X = np.abs(X.astype(np.int64)).astype(np.uint8)
    _, y = good_data("cross_entropy")
    check_accepted(backend, "cross_entropy", method, X, y, X.astype(np.float32), y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_lists_and_other_float_widths_accepted(backend, dtype):
    X, y = good_data("mse")
    other = np.float32 if dtype == "float64" else np.float64
    X_other, y_other = X.astype(other), y.astype(other)
    check_accepted(backend, "mse", "fit", X_other, y_other, X_other.astype(dtype), y_other.astype(dtype), dtype)
    check_accepted(backend, "mse", "gradients", X.tolist(), y.tolist(), X, y, dtype)


@pytest.mark.parametrize("method", ["evaluate", "gradients", "train_step", "fit"])
@pytest.mark.parametrize("loss, kind", [("cross_entropy", "int8"), ("cross_entropy", "uint16"),
                                        ("cross_entropy", "int64"), ("cross_entropy", "float64"),
                                        ("cross_entropy", "onehot-int"), ("binary_cross_entropy", "bool"),
                                        ("binary_cross_entropy", "uint8"), ("mse", "bool"), ("mse", "int32")])
def test_bool_and_integer_y_accepted(backend, loss, kind, method):
    X, _ = good_data(loss)
    d_out = SIZES[loss][-1]
    labels = np.arange(N) % d_out
    if loss == "cross_entropy":
        y = np.eye(d_out, dtype=np.int32)[labels] if kind == "onehot-int" else labels.astype(kind)
        y_ref = np.eye(d_out, dtype=np.float32)[labels] if kind == "onehot-int" else labels.astype(np.int64)
    else:
        bits = np.random.default_rng(4).integers(0, 2, size=(N, d_out))
        y = bits.astype(kind) if loss == "binary_cross_entropy" else (bits * 3 - 1).astype(kind)
        if kind == "bool" and loss == "mse":
            y = bits.astype(bool)
        y_ref = y.astype(np.float32)
    check_accepted(backend, loss, method, X, y, X, y_ref)


def _read_only(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _wide(a, step=2):
    """The same values as a non-contiguous column-strided view into a wider array."""
    wide = np.zeros((a.shape[0], a.shape[1] * step), dtype=a.dtype)
    wide[:, ::step] = a
    return wide[:, ::step]


def _tall(a, step=3):
    tall = np.zeros((a.shape[0] * step,) + a.shape[1:], dtype=a.dtype)
    tall[::step] = a
    return tall[::step]


LAYOUTS = {
    "fortran": np.asfortranarray,
    "column-strided": _wide,
    "row-strided": _tall,
    "negative-stride-rows": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "negative-stride-cols": lambda a: np.ascontiguousarray(a[:, ::-1])[:, ::-1],
    "read-only": _read_only,
    "read-only-float32": lambda a: _read_only(a.astype(np.float32)),  # the no-copy path: handed to the kernels
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_unusual_layouts_of_X_accepted(backend, layout, method):
    X, y = good_data("cross_entropy")
    X = X.astype(np.float32)
    X_odd = LAYOUTS[layout](X)
    assert np.array_equal(X_odd, X)
    if layout.startswith(("fortran", "column", "row", "negative")):
        assert not X_odd.flags.c_contiguous
    check_accepted(backend, "cross_entropy", method, X_odd, y, X, y)


@pytest.mark.parametrize("method", ["evaluate", "gradients", "train_step", "fit"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_unusual_layouts_of_y_accepted(backend, layout, method):
    X, y = good_data("mse")
    y = y.astype(np.float32)
    check_accepted(backend, "mse", method, X, LAYOUTS[layout](y), X, y)


@pytest.mark.parametrize("layout", ["negative-stride", "strided", "read-only"])
def test_unusual_layouts_of_labels_and_single_samples(backend, layout):
    X, y = good_data("cross_entropy")
    make = {"negative-stride": lambda a: np.ascontiguousarray(a[::-1])[::-1],
            "strided": lambda a: _tall(a), "read-only": _read_only}[layout]
    for method in ("evaluate", "fit"):
        check_accepted(backend, "cross_entropy", method, X, make(y), X, y)
    net = make_net(backend)
    sample = make(X[1:2].T).T[0] if layout != "read-only" else make(X[1])
    assert np.array_equal(sample, X[1])
    assert np.array_equal(net.forward(sample), net.forward(X[1].copy()))
    assert np.array_equal(net.forward(sample), net.forward(X[1:2])[0])


# ========================================================================================= nothing is lent
def test_outputs_are_not_lent(backend):
    """What the network returns is the caller's: later calls do not overwrite it, and writing to it does not
    change the network."""
    net = make_net(backend)
    X, y = good_data("cross_entropy")
    out = net.forward(X)
    out_copy = out.copy()
    single = net.forward(X[0])
    single_copy = single.copy()
    grads = net.gradients(X, y)
    grads_copy = [g.copy() for pair in grads for g in pair]
    for a in [out, single] + [g for pair in grads for g in pair]:
        assert not np.shares_memory(a, net._params) and not np.shares_memory(a, net._grads)
    net.forward(X[::-1] * 2)
    net.forward(X[1] * 2)
    net.gradients(X * 2, y[::-1])
    net.train_step(X, y)
    assert np.array_equal(out, out_copy) and np.array_equal(single, single_copy)
    assert all(np.array_equal(a, b) for a, b in zip([g for pair in grads for g in pair], grads_copy))
    before = net._params.copy()
    out[...] = 7
    single[...] = 7
    for pair in grads:
        for g in pair:
            g[...] = 7
    assert np.array_equal(net._params, before)


def test_inputs_are_not_kept(backend):
    """The network keeps no reference to a caller's array: changing X after a call changes nothing."""
    net = make_net(backend, "mse")
    X, y = good_data("mse")
    X32, y32 = X.astype(np.float32), y.astype(np.float32)  # exactly the network's dtype: the no-copy path
    expected = net.forward(X32)
    net.evaluate(X32, y32)
    net.gradients(X32, y32)
    X32[...] = 1e6
    y32[...] = -1e6
    assert np.array_equal(net.forward(X), expected)
    kept = [a for ws in net._workspaces for a in ws.values()]
    assert kept and not any(np.shares_memory(X32, a) for a in kept)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 784, 1 << 16, (1 << 16) + 1])
def test_finite_check_accepts_extremes_and_finds_every_bad_value(dtype, n):
    """The finite check, whole and in slices: the largest finite values of both signs, subnormals and
    alternating signs are accepted; one NaN or infinity anywhere, or +inf next to -inf, is found."""
    from fastnn._validation import _all_finite
    big, tiny = np.finfo(dtype).max, np.finfo(dtype).smallest_subnormal
    cases = [np.full(n, big, dtype), np.full(n, -big, dtype), np.full(n, tiny, dtype),
             np.where(np.arange(n) % 2 == 0, big, -big).astype(dtype)]
    for arr in cases:
        assert _all_finite(arr) == bool(np.isfinite(arr).all()) == True  # noqa: E712
        for pos in {0, n // 2, n - 1}:
            for bad in (np.nan, np.inf, -np.inf):
                spoiled = arr.copy()
                spoiled[pos] = bad
                assert not _all_finite(spoiled)
    if n > 1:
        both = np.zeros(n, dtype)
        both[0], both[-1] = np.inf, -np.inf
        assert not _all_finite(both)


# --------------------------------------------------------------------------------------------- layer networks
def make_cnn(backend, dropout=0.25):
    """A small convolutional network with one momentum step taken (non-trivial state, as make_net)."""
    net = fastnn.Network([fastnn.Conv2D(3, 3, padding=1, activation="relu"), fastnn.MaxPool2D(2),
                          fastnn.Flatten(), fastnn.Dropout(dropout), fastnn.Dense(4)],
                         input_shape=(2, 6, 5), loss="cross_entropy", seed=0, backend=backend)
    rng = np.random.default_rng(98)
    net.train_step(rng.normal(size=(5, 2, 6, 5)), np.arange(5) % 4, learning_rate=0.1, momentum=0.9)
    return net


IMAGES = np.random.default_rng(97).normal(size=(N, 2, 6, 5))
LABELS = np.arange(N) % 4

REFUSED_IMAGES = [
    ("wrong channels", lambda n: n.fit(np.zeros((N, 3, 6, 5)), LABELS), ValueError, r"X has shape \(6, 3, 6, 5\).*"
     r"images of shape \(n, 2, 6, 5\)"),
    ("wrong height", lambda n: n.predict(np.zeros((N, 2, 7, 5))), ValueError, "X has shape"),
    ("rank 5", lambda n: n.evaluate(np.zeros((N, 1, 2, 6, 5)), LABELS), ValueError, "X has shape"),
    ("rank 1", lambda n: n.predict(np.zeros(7)), ValueError, "X has shape"),
    ("3-D, not one channel", lambda n: n.train_step(np.zeros((N, 6, 5)), LABELS), ValueError, "X has shape"),
    ("flattened, wrong width", lambda n: n.gradients(np.zeros((N, 59)), LABELS), ValueError, "X has shape"),
    ("NaN pixel", lambda n: n.fit(_nan_at(IMAGES), LABELS), ValueError, "X contains NaN"),
    ("inf pixel", lambda n: n.train_step(_nan_at(IMAGES, np.inf), LABELS), ValueError, "X contains NaN"),
    ("NaN in one image", lambda n: n.predict(_nan_at(IMAGES[0])), ValueError, "X contains NaN"),
    ("empty batch", lambda n: n.fit(np.zeros((0, 2, 6, 5)), LABELS[:0]), ValueError, "empty"),
    ("label out of range", lambda n: n.fit(IMAGES, LABELS + 4), ValueError, r"class labels must be in \[0, 3\]"),
    ("labels per pixel", lambda n: n.fit(IMAGES, np.zeros((N, 2, 6, 5))), ValueError, "y must be 1-D"),
    ("too few labels", lambda n: n.evaluate(IMAGES, LABELS[:-1]), ValueError, "y has 5 samples, expected 6"),
    ("complex images", lambda n: n.predict(IMAGES.astype(complex)), TypeError, "X must hold real numbers"),
    ("object images", lambda n: n.predict(IMAGES.astype(object)), TypeError, "X must hold real numbers"),
]


@pytest.mark.parametrize("label, call, exc, match", REFUSED_IMAGES, ids=[c[0] for c in REFUSED_IMAGES])
def test_bad_images_are_refused_and_leave_the_network_unchanged(backend, label, call, exc, match):
    net = make_cnn(backend)
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        call(net)
    assert_unchanged(net, before)
    net.fit(IMAGES, LABELS, epochs=1)  # still works


REFUSED_LAYERS = [
    ("no input_shape", dict(sizes=[fastnn.Dense(3)]), ValueError, "needs input_shape"),
    ("mixed sizes and layers", dict(sizes=[4, fastnn.Dense(3)], input_shape=(4,)), TypeError, "not a mix"),
    ("no layers", dict(sizes=[], input_shape=(4,)), ValueError, "at least an input and an output width"),
    ("kernel larger than the image", dict(sizes=[fastnn.Conv2D(2, 7), fastnn.Flatten(), fastnn.Dense(2)],
                                          input_shape=(1, 5, 5)), ValueError,
     r"layer 0 \(Conv2D.*\) cannot take its input of shape \(1, 5, 5\): the 7x7 kernel is larger"),
    ("pool larger than the image", dict(sizes=[fastnn.MaxPool2D(4), fastnn.Flatten(), fastnn.Dense(2)],
                                        input_shape=(1, 3, 8)), ValueError, r"layer 0 \(MaxPool2D.*4x4 window"),
    ("second layer does not fit", dict(sizes=[fastnn.Conv2D(2, 3), fastnn.Conv2D(2, 3), fastnn.Flatten(),
                                              fastnn.Dense(2)], input_shape=(1, 4, 4)), ValueError,
     r"layer 1 \(Conv2D.*\(2, 2, 2\)"),
    ("Dense on images", dict(sizes=[fastnn.Conv2D(2, 3), fastnn.Dense(2)], input_shape=(1, 5, 5)), ValueError,
     r"layer 1 \(Dense.*\(2, 3, 3\).*Flatten"),
    ("conv on vectors", dict(sizes=[fastnn.Conv2D(2, 3), fastnn.Flatten(), fastnn.Dense(2)], input_shape=(9,)),
     ValueError, r"layer 0 .*\(9\).*channels, height, width"),
    ("output not Dense", dict(sizes=[fastnn.Conv2D(2, 3), fastnn.Flatten()], input_shape=(1, 5, 5)), ValueError,
     "must be Dense"),
    ("input_shape of 4 dims", dict(sizes=[fastnn.Flatten(), fastnn.Dense(2)], input_shape=(1, 1, 5, 5)),
     ValueError, "1 to 3 dimensions"),
    ("input_shape with 0", dict(sizes=[fastnn.Flatten(), fastnn.Dense(2)], input_shape=(1, 0, 5)), ValueError,
     r"input_shape\[1\] must be an integer >= 1"),
    ("relu output for cross_entropy", dict(sizes=[fastnn.Flatten(), fastnn.Dense(2, "relu")],
                                           input_shape=(1, 3, 3), loss="cross_entropy"), ValueError,
     "needs a 'softmax' output layer"),
    ("sizes and input_shape disagree", dict(sizes=[4, 2], input_shape=(5,)), ValueError, "does not match"),
]


@pytest.mark.parametrize("label, kwargs, exc, match", REFUSED_LAYERS, ids=[c[0] for c in REFUSED_LAYERS])
def test_bad_layer_networks_are_refused(backend, label, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastnn.Network(backend=backend, **kwargs)


BAD_LAYER_ARGS = [
    (lambda: fastnn.Conv2D(0, 3), ValueError, "filters must be an integer >= 1"),
    (lambda: fastnn.Conv2D(2, 0), ValueError, "kernel_size must be an integer >= 1"),
    (lambda: fastnn.Conv2D(2, (3, 3, 3)), ValueError, "kernel_size must be an int or a pair"),
    (lambda: fastnn.Conv2D(2, 3.5), TypeError, "kernel_size must be an integer"),
    (lambda: fastnn.Conv2D(2, 3, stride=0), ValueError, "stride must be an integer >= 1"),
    (lambda: fastnn.Conv2D(2, 3, padding=-1), ValueError, "padding must be an integer >= 0"),
    (lambda: fastnn.Conv2D(2, 3, padding="full"), ValueError, "padding"),
    (lambda: fastnn.Conv2D(2, 3, stride=2, padding="same"), ValueError, "padding='same' needs stride 1"),
    (lambda: fastnn.Conv2D(2, 3, activation="softmax"), ValueError, "activation"),
    (lambda: fastnn.Conv2D(2, 3, activation="gelu"), ValueError, "activation"),
    (lambda: fastnn.MaxPool2D(0), ValueError, "pool_size must be an integer >= 1"),
    (lambda: fastnn.AvgPool2D(2, stride=(1, 0)), ValueError, r"stride\[1\] must be an integer >= 1"),
    (lambda: fastnn.Dropout(1.0), ValueError, "rate"),
    (lambda: fastnn.Dropout(-0.1), ValueError, "rate"),
    (lambda: fastnn.Dropout(float("nan")), ValueError, "rate"),
    (lambda: fastnn.Dense(0), ValueError, "units must be an integer >= 1"),
    (lambda: fastnn.Dense(True), TypeError, "units must be an integer, got a bool"),
]


@pytest.mark.parametrize("make, exc, match", BAD_LAYER_ARGS)
def test_bad_layer_arguments_are_refused(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_a_layer_list_is_copied_not_shared(backend):
    layers = [fastnn.Conv2D(2, 3), fastnn.Flatten(), fastnn.Dense(2)]
    a = fastnn.Network(layers, input_shape=(1, 5, 5), seed=0, backend=backend)
    b = fastnn.Network(layers, input_shape=(1, 7, 7), seed=0, backend=backend)
    assert layers[0].input_shape is None  # the caller's layers are left unbuilt
    assert a.layers[0] is not b.layers[0] and a.layers[2].input_shape == (18,) and b.layers[2].input_shape == (50,)
