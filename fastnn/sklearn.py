"""scikit-learn drop-in estimators on fastnn.Network: fastnn.MLPClassifier and fastnn.MLPRegressor.

Same constructor parameters, defaults, fitted attributes and methods as sklearn.neural_network.MLPClassifier /
MLPRegressor (scikit-learn >= 1.7's, with MLPRegressor's loss="squared_error" | "poisson"; sparse X as CSR, CSC or
COO), plus fastnn's own `dtype` (None: follow X as scikit-learn does; "float64" or "float32"), `n_threads` (the network's threads while fitting
and predicting; None follows fastnn.get_num_threads()), `backend` (None, "c" or "python") and, for the
classifier, `class_weight` (None, "balanced" or {label: weight}, multiplied into sample_weight). The training
runs in fastnn: one Network.fit epoch (in C) per iteration for "sgd"/"adam", Network.loss_and_gradients under
scipy.optimize.minimize(method="L-BFGS-B") for "lbfgs".

How the two line up (so that the same random_state gives nearly the same model as scikit-learn):

- Initial weights and biases are drawn exactly as scikit-learn draws them (Glorot uniform with factor 6, or 2 for
  "logistic", biases too, from check_random_state(random_state) in the same order); the per-epoch shuffle, the
  early-stopping split and the minibatches are scikit-learn's own (sklearn.utils.shuffle, train_test_split,
  batches of batch_size with a smaller last batch), so both see the same samples in the same order.
- Loss scale. scikit-learn's gradient is c times the gradient of fastnn's loss: c = 1 for softmax +
  cross_entropy (multiclass) and for one sigmoid output (binary), c = n_outputs for multilabel (scikit-learn sums
  the binary log loss over the labels, fastnn's binary_cross_entropy is a mean over them), c = n_outputs / 2 for
  regression (scikit-learn's delta is (p - y) / n, fastnn's mse is mean((p - y)^2) with no 1/2, whose gradient is
  2 (p - y) / (n n_outputs)). Hence sgd runs with learning_rate = c * lr and weight_decay = alpha / (c * n_batch),
  which makes its step exactly scikit-learn's lr * (c grad + alpha W / n_batch); adam is invariant to the scale
  but for epsilon, so it runs with lr unchanged, the same weight_decay and epsilon / c; lbfgs minimises
  c * Network.evaluate + alpha/(2 n) |W|^2 with the gradient c * Network.gradients + alpha W / n. fastnn's weight
  decay covers the weights only, as scikit-learn's alpha does.
- Batches: the full minibatches of an epoch are one Network.fit epoch (in C), the smaller last one a
  Network.train_step with its own weight_decay (alpha over its own size, as in scikit-learn). The epoch's shuffle
  is an order of row indices that the C epoch gathers from (X itself is never copied), as dense rows or straight
  from a sparse X's CSR arrays.
- Learning-rate schedules (sgd): fastnn's momentum is PyTorch's form (v = mu v + g, p -= lr v), scikit-learn's
  is v = mu v - lr g, p += v; the two agree while lr is constant, so fastnn's learning rate stays at c * lr0 and
  "invscaling" / "adaptive" scale the gradient by lr / lr0 instead (through the sample weights and the weight
  decay): exact for every schedule.
- Adam's epsilon: scikit-learn adds epsilon to sqrt(v) of the uncorrected second moment (it folds the bias
  corrections into the learning rate); fastnn's Adam does the same with epsilon_placement="uncorrected", with
  epsilon / c for the loss scale: exact, step for step.
- loss_ / loss_curve_ follow scikit-learn's definition: the (weighted) mean of the batch losses, c times fastnn's
  (but 0.5 * mean over samples and outputs for the regressor, as scikit-learn reports it), plus the L2 term
  alpha/(2 n_batch) |W|^2 of each batch. fastnn cannot report |W|^2 before every batch of a C epoch, so it is
  interpolated between the epoch's start and end (exact with one batch per epoch; the weights are exact anyway).
- sample_weight: scikit-learn normalises each minibatch by its weight sum (loss = sum w l / sum w, L2 term over
  sum w). fastnn's weighted loss is sum w l / n_batch, so each sample's weight is scaled by n_batch / (its
  batch's weight sum); the full batches share one weight_decay (alpha over their mean weight sum): exact for
  alpha = 0, uniform weights or one batch per epoch. lbfgs: Network.loss_and_gradients with the weights.
- Stopping rule, "adaptive" and max_iter follow scikit-learn's code: training stops (or "adaptive" divides the
  learning rate by 5) once n_iter_no_change + 1 consecutive epochs fail to improve the training loss (or the
  validation score, with early_stopping) by tol; ConvergenceWarning at max_iter.

Differences: lbfgs for several regression outputs minimises the loss its gradient belongs to (0.5 * sum over
outputs of the mean squared error), where scikit-learn hands L-BFGS-B the mean over outputs with that gradient;
the reported loss_ is scikit-learn's either way. Probabilities are computed from logits (no clipping at machine
epsilon in the reported loss). Not supported: momentum=1.0 (fastnn's momentum is in [0, 1)), partial_fit with solver="lbfgs" (scikit-learn's
regressor allows it and runs a full lbfgs fit).

scikit-learn (>= 1.6) is imported only when fastnn.MLPClassifier / fastnn.MLPRegressor are first used.
"""
import math
import warnings
from numbers import Integral, Real

import numpy as np

from ._sparse import CSRRows, as_csr, is_sparse
from .network import Network
from .search import cluster_worker_threads

try:
    import scipy.optimize
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils._param_validation import Interval, Options, StrOptions
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as _exc:  # scikit-learn missing (or < 1.6): the names exist, using them raises
    _SKLEARN_ERROR = _exc

    class BaseEstimator:
        pass

    class ClassifierMixin:
        pass

    class RegressorMixin:
        pass

    def available_if(check):
        return lambda method: method
else:
    _SKLEARN_ERROR = None

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_STOCHASTIC_SOLVERS = ("sgd", "adam")
_DTYPES = ("float32", "float64")


def _parameter_constraints():
    if _SKLEARN_ERROR is not None:
        return {}
    return {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dtype": [StrOptions(set(_DTYPES)), type, np.dtype, None],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "backend": [StrOptions({"c", "python"}), None],
    }


def _dtype_name(dtype, X=None):
    """The training dtype: the one given, else (None) X's as scikit-learn trains (float32 X in float32,
    everything else in float64)."""
    if dtype is None:
        return "float32" if X is not None and X.dtype == np.float32 else "float64"
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name




def _shuffled(indices, random_state):
    """sklearn.utils.shuffle(indices, random_state=random_state), the same draws without its per-call
    parameter validation (which costs more than a small epoch)."""
    order = np.arange(indices.shape[0])
    random_state.shuffle(order)
    return indices[order]


class _Diverged(ValueError):
    """scikit-learn's error for a fit whose loss stopped being finite."""

    def __init__(self):
        super().__init__("Solver produced non-finite parameter weights. The input data may contain large values "
                         "and need to be preprocessed.")


def _sum_squares(arrays):
    return float(sum(np.vdot(a, a) for a in arrays))


class _BaseMLP(BaseEstimator):
    """The solver loop shared by MLPClassifier and MLPRegressor (scikit-learn's BaseMultilayerPerceptron)."""

    _parameter_constraints = _parameter_constraints()

    def __new__(cls, *args, **kwargs):
        if _SKLEARN_ERROR is not None:
            raise ImportError(f"fastnn.{cls.__name__} needs scikit-learn >= 1.6 (pip install scikit-learn): "
                              f"{_SKLEARN_ERROR}") from _SKLEARN_ERROR
        return super().__new__(cls)

    # ------------------------------------------------------------------------------------ network access
    # coefs_ and intercepts_ are the Network's own lists of weight views: item assignment (est.coefs_[0] = W)
    # writes into the model. Lists assigned before the first fit are kept and become the initial weights of a
    # warm_start fit or the first partial_fit.
    @property
    def coefs_(self):
        """Weight matrices, coefs_[i] of shape (n_units[i], n_units[i + 1]): views of the Network's weights."""
        return self._parameters("weights", "coefs_")

    @coefs_.setter
    def coefs_(self, values):
        self._set_parameters("weights", "coefs_", values)

    @property
    def intercepts_(self):
        """Bias vectors, intercepts_[i] of shape (n_units[i + 1],): views of the Network's biases."""
        return self._parameters("biases", "intercepts_")

    @intercepts_.setter
    def intercepts_(self, values):
        self._set_parameters("biases", "intercepts_", values)

    def _parameters(self, kind, name):
        if "_network" in self.__dict__:
            return getattr(self._network, kind)
        preset = self.__dict__.get("_preset", {}).get(name)
        if preset is None:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet")
        return preset

    def _set_parameters(self, kind, name, values):
        if "_network" in self.__dict__:
            self._assign(getattr(self._network, kind), values, name)
        else:
            values = [np.array(v, dtype=np.float64 if np.asarray(v).dtype != np.float32 else np.float32)
                      for v in values]
            self.__dict__.setdefault("_preset", {})[name] = values

    def _apply_preset(self):
        """Copy weights assigned before the first fit into the new network (warm start from given weights)."""
        preset = self.__dict__.pop("_preset", {})
        for kind, name in (("weights", "coefs_"), ("biases", "intercepts_")):
            if name in preset:
                self._assign(getattr(self._network, kind), preset[name], name)

    @property
    def network_(self):
        """The fitted fastnn.Network (shares its weights with coefs_ and intercepts_)."""
        return self._fitted_network()

    def _fitted_network(self):
        network = self.__dict__.get("_network")
        if network is None:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet")
        return network

    @staticmethod
    def _assign(targets, values, name):
        values = list(values)
        if len(values) != len(targets):
            raise ValueError(f"{name} needs {len(targets)} arrays, got {len(values)}")
        checked = []
        for i, (target, value) in enumerate(zip(targets, values)):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"{name}[{i}] must have shape {target.shape}, got {value.shape}")
            if not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
                raise TypeError(f"{name}[{i}] must hold real numbers, got dtype {value.dtype}")
            checked.append(value)
        for target, value in zip(targets, checked):  # all checked first: an error leaves the model as it was
            target[...] = value

    def __sklearn_is_fitted__(self):
        return "_network" in self.__dict__

    # ----------------------------------------------------------------------------------- what differs
    def _network_loss(self):
        return {"softmax": "cross_entropy", "logistic": "binary_cross_entropy", "identity": "mse",
                "exp": "poisson"}[self.out_activation_]

    def _loss_scales(self):
        """(c, r): scikit-learn's gradient is c times the gradient of fastnn's loss; the loss it reports is r
        times fastnn's (plus the L2 term)."""
        d = self.n_outputs_
        if self.out_activation_ in ("softmax", "exp"):  # exp: the same half Poisson deviance, summed over outputs
            return 1.0, 1.0
        if self.out_activation_ == "logistic":
            return float(d), float(d)
        return d / 2.0, 0.5

    def _hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if not all(isinstance(s, Integral) or (isinstance(s, Real) and float(s).is_integer()) for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be integers, got {sizes}.")
        return [int(s) for s in sizes]

    def _as_network_input(self, X):
        """Dense X as a C-contiguous array of the network's dtype; sparse X stays a scipy CSR matrix (Network
        gathers its rows batch by batch, see _sparse_rows)."""
        if is_sparse(X):
            return X
        return np.ascontiguousarray(X, dtype=self._network.dtype)

    def _sparse_rows(self, X):
        """A sparse X converted once to the CSR arrays the C epoch gathers from (dense X unchanged)."""
        return as_csr("X", X, X.shape[1], self._network.dtype) if is_sparse(X) else X

    def _threads(self):
        """n_threads, or for None one thread in a Dask or Ray worker (fastnn.search.cluster_worker_threads), so
        the searches joblib spreads over such workers do not oversubscribe the cores."""
        return self.n_threads if self.n_threads is not None else cluster_worker_threads()

    def _forward(self, X):
        """Network outputs for validated X: probabilities for the classifier, values for the regressor, in X's
        floating type as scikit-learn's (a float32 Network computes in float32 either way)."""
        self._network.n_threads = self._threads()
        outputs = self._network.predict(self._as_network_input(X))
        return outputs.astype(X.dtype, copy=False)

    # ------------------------------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (sample_weight: optional per-sample weights)."""
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._hidden_layer_sizes()
        first_pass = "_network" not in self.__dict__ or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if self.dtype is None and not first_pass:  # continue in the network's dtype, whatever X's
            dtype = self._network.dtype.name
        else:
            dtype = _dtype_name(self.dtype, X)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        sample_weight = self._class_sample_weight(y, sample_weight, incremental)
        T = self._targets(y, dtype)
        layer_units = [X.shape[1]] + hidden + [T.shape[1]]
        random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(T, layer_units, dtype, random_state, preset=self.warm_start or incremental)
        elif list(self._network.sizes) != layer_units or self._network.dtype.name != dtype:
            raise ValueError(f"warm_start / partial_fit continue a network of sizes {self._network.sizes} "
                             f"({self._network.dtype.name}); the parameters and data now give {layer_units} "
                             f"({dtype}). Set warm_start=False to start afresh.")
        X = self._as_network_input(X)
        self._network.n_threads = self._threads()
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, T, y, sample_weight, incremental, random_state)
        else:
            self._fit_lbfgs(X, T, sample_weight)
        if not all(np.isfinite(p).all() for p in self._network.weights + self._network.biases):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")
        return self

    def _initialize(self, T, layer_units, dtype, random_state, preset=False):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = T.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        network = Network(layer_units, activations=_ACTIVATIONS[self.activation], loss=self._network_loss(),
                          dtype=dtype, seed=0, backend=self.backend)
        # scikit-learn's initialisation, drawn in its order from the same random_state
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(network.weights, network.biases):
            bound = np.sqrt(factor / (W.shape[0] + W.shape[1]))
            W[...] = random_state.uniform(-bound, bound, W.shape)
            b[...] = random_state.uniform(-bound, bound, b.shape[0])
        self._network = network
        if preset:
            self._apply_preset()
        self._optimizer_lr = None  # no optimizer yet (scikit-learn's _optimizer)
        self._best_coefs = [W.copy() for W in network.weights]
        self._best_intercepts = [b.copy() for b in network.biases]
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    # ------------------------------------------------------------------------------- sgd / adam (fit)
    def _fit_stochastic(self, X, T, y, sample_weight, incremental, random_state):
        c, r = self._loss_scales()
        new_optimizer = not incremental or self._optimizer_lr is None
        if new_optimizer:  # scikit-learn's optimizer: its learning rate and step count
            self._optimizer_lr0 = self._optimizer_lr = float(self.learning_rate_init)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not hasattr(self, "loss_curve_"):  # warm start from an lbfgs fit, which keeps no curve
            self.loss_curve_, self._no_improvement_count = [], 0
            self.best_loss_ = None if self.early_stopping else np.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
        early_stopping = self.early_stopping
        if early_stopping:
            # scikit-learn stratifies only single-output classification (binary), not multiclass or multilabel.
            # It stratifies on the binarized labels, the same partition as the user's labels (LabelBinarizer keeps
            # the sorted class order), whose names then appear in train_test_split's errors ("True", not "1.0")
            stratify = y if (self._is_classifier() and self.n_outputs_ == 1) else None
            train_idx, val_idx = train_test_split(np.arange(X.shape[0]), random_state=random_state,
                                                  test_size=self.validation_fraction, stratify=stratify)
            if val_idx.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                                 "of your dataset.")
            X_val, y_val = X[val_idx], y[val_idx]
            sw_val = None if sample_weight is None else sample_weight[val_idx]
            X_train, T_train = X[train_idx], T[train_idx]
            sw_train = None if sample_weight is None else sample_weight[train_idx]
        else:
            X_train, T_train, sw_train = X, T, sample_weight
            X_val = y_val = sw_val = None
        X_train = self._sparse_rows(X_train)

        n = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              "clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        n_full = n - n % batch_size
        starts = np.arange(0, n, batch_size)
        batches = (batch_size, n_full, n_full // batch_size, starts,
                   np.diff(np.append(starts, n)).astype(np.float64))

        try:
            with warnings.catch_warnings():  # a diverged epoch raises scikit-learn's ValueError instead
                warnings.filterwarnings("ignore", message="training diverged", category=RuntimeWarning)
                self._epochs(X_train, T_train, sw_train, batches, c, r, new_optimizer, incremental, X_val, y_val,
                             sw_val, random_state)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _epochs(self, X_train, T_train, sw_train, batches, c, r, reset, incremental, X_val, y_val, sw_val,
                random_state):
        """scikit-learn's epoch loop: train one epoch, record the loss, apply the stopping rule and the learning
        rate schedule, warn at max_iter."""
        n = X_train.shape[0]
        alpha = float(self.alpha)
        sample_idx = np.arange(n, dtype=np.int64)
        self.n_iter_ = 0
        # With early stopping, a diverged fit goes on to max_iter as scikit-learn's does (whose weights stay NaN
        # from then on: NaN losses and validation scores) and ends with the best weights seen
        diverged = False
        for _ in range(self.max_iter):
            if self.shuffle:  # only the order is shuffled: the C epoch gathers the rows, X is never copied
                sample_idx = _shuffled(sample_idx, random_state)
            if diverged:
                data_loss = l2 = math.nan
            else:
                try:
                    data_loss, l2 = self._epoch(X_train, T_train, sw_train, sample_idx, batches, c, alpha, reset)
                except _Diverged:
                    if not self.early_stopping:
                        raise
                    diverged, data_loss, l2 = True, math.nan, math.nan
            reset = False
            self.n_iter_ += 1
            self.loss_ = r * data_loss + 0.5 * alpha * l2
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

            self._update_no_improvement_count(self.early_stopping, X_val, y_val, sw_val, diverged)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._optimizer_lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t

            if self._no_improvement_count > self.n_iter_no_change:
                if self.early_stopping:
                    msg = ("Validation score did not improve more than tol=%f for %d consecutive epochs."
                           % (self.tol, self.n_iter_no_change))
                else:
                    msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                           % (self.tol, self.n_iter_no_change))
                if self._trigger_stopping(msg):
                    break
                self._no_improvement_count = 0

            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization hasn't "
                              "converged yet." % self.max_iter, ConvergenceWarning)

    def _epoch(self, X, T, sample_weight, order, batches, c, alpha, reset):
        """One epoch in scikit-learn's batches over the rows of X in `order`: the full batches as one Network.fit
        epoch (in C, gathering the rows itself), the smaller last batch as one Network.train_step. Returns (the
        mean data loss per sample as scikit-learn weighs it, fastnn's scale; sum over batches of
        n_batch / weight_sum_batch * |W|^2 / n, for the L2 term)."""
        network = self._network
        n = order.shape[0]
        batch_size, n_full, k, starts, rows = batches
        # sgd: fastnn's learning rate stays at c * lr0 and the gradient is scaled by lr / lr0 through the sample
        # weights and the weight decay, so that momentum carries past steps at their own learning rate as in
        # scikit-learn (v = mu v - lr g) when "invscaling" / "adaptive" change it
        scale = self._optimizer_lr / self._optimizer_lr0 if self.solver == "sgd" else 1.0
        if sample_weight is None:
            sums, w = rows, None
        else:  # each batch normalised by its own weight sum, as scikit-learn's weighted mean
            w = sample_weight[order]  # in the epoch's order
            sums = np.add.reduceat(w, starts)
            factor = np.divide(rows, sums, out=np.zeros_like(rows), where=sums > 0)
            w = w * np.repeat(factor, rows.astype(np.intp))
        if scale != 1.0:
            w = np.full(n, scale) if w is None else w * scale
        divisors = np.where(sums > 0, sums, rows)  # the L2 term's divisor per batch (sum of its weights)
        w_rows = None  # the same weights by row of X, as Network.fit takes them
        if w is not None:
            w_rows = np.zeros(X.shape[0])
            w_rows[order] = w

        if self.solver == "sgd":
            options = dict(optimizer="sgd", learning_rate=c * self._optimizer_lr0, momentum=float(self.momentum),
                           nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        else:  # scikit-learn's Adam adds epsilon to sqrt(v) (not v-hat); its gradient is c times fastnn's
            options = dict(optimizer="adam", learning_rate=self._optimizer_lr, beta1=float(self.beta_1),
                           beta2=float(self.beta_2), epsilon=float(self.epsilon) / c,
                           epsilon_placement="uncorrected")

        w2_start = _sum_squares(network.weights) if alpha else 0.0
        # (a diverged epoch is an empty history: _fit_stochastic silences fastnn's warning and raises instead)
        history = network.fit(X, T, epochs=1, batch_size=batch_size, _order=order[:n_full],
                              weight_decay=scale * alpha / (c * divisors[:k].mean()), shuffle=False,
                              reset_optimizer=reset, sample_weight=w_rows, **options)
        if not history["loss"]:
            raise _Diverged()
        data_loss = history["loss"][0] * n_full
        l2 = 0.0
        if alpha:  # |W|^2 before each batch, interpolated between the epoch's start and the end of the C epoch
            w2_end = _sum_squares(network.weights)
            l2 = float(np.sum(rows[:k] / divisors[:k] * (w2_start + (w2_end - w2_start) * np.arange(k) / k)))
            if n_full < n:
                l2 += rows[-1] / divisors[-1] * w2_end
        if n_full < n:
            last = order[n_full:]
            X_last = X.scipy()[last] if isinstance(X, CSRRows) else X[last]
            data_loss += (n - n_full) * self._guarded(
                network.train_step, X_last, T[last], weight_decay=scale * alpha / (c * divisors[-1]),
                sample_weight=None if w is None else w[n_full:], **options)
        return data_loss / (scale * n), l2 / n

    @staticmethod
    def _guarded(method, *args, **kwargs):
        """A Network.train_step whose non-finite loss becomes scikit-learn's ValueError."""
        try:
            return method(*args, **kwargs)
        except FloatingPointError:
            raise _Diverged() from None

    def _trigger_stopping(self, msg):
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if self._optimizer_lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._optimizer_lr /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._optimizer_lr)
        return False

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sw_val, diverged=False):
        if early_stopping:
            score = math.nan if diverged else self._score_validated(X_val, y_val, sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [W.copy() for W in self._network.weights]
                self._best_intercepts = [b.copy() for b in self._network.biases]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _score_validated(self, X, y, sample_weight):
        outputs = self._network.predict(X)
        if not np.isfinite(outputs).all():
            return np.nan
        return self._score_function(y, self._outputs_to_predictions(outputs), sample_weight=sample_weight)

    # --------------------------------------------------------------------------------------------- lbfgs
    def _fit_lbfgs(self, X, T, sample_weight):
        """scipy's L-BFGS-B on c * (fastnn's mean loss) + alpha/(2 n) |W|^2, fastnn computing loss and gradient
        on the full batch in one pass (Network.loss_and_gradients)."""
        network = self._network
        X = self._sparse_rows(X)
        c, r = self._loss_scales()
        alpha = float(self.alpha)
        params = network.weights + network.biases
        bounds = np.cumsum([0] + [p.size for p in params])
        n_w = int(bounds[len(network.weights)])
        n = X.shape[0]
        total_weight = float(n if sample_weight is None else sample_weight.sum())
        weights = None if sample_weight is None else sample_weight * (n / total_weight)

        def unpack(x):
            for p, start, stop in zip(params, bounds[:-1], bounds[1:]):
                p[...] = x[start:stop].reshape(p.shape)

        def pack(arrays):
            return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])

        last = [math.nan]

        def loss_and_gradient(x):
            unpack(x)
            data, pairs = network.loss_and_gradients(X, T, sample_weight=weights)
            grad = pack([dW for dW, _ in pairs] + [db for _, db in pairs])
            W = x[:n_w]
            value = c * data + 0.5 * alpha * float(W @ W) / total_weight
            grad *= c
            grad[:n_w] += alpha * W / total_weight
            last[0] = value
            return value, grad

        def callback(*_):
            callback.iteration += 1
            print("Iteration %d, loss = %.8f" % (callback.iteration, last[0]))

        callback.iteration = 0
        result = scipy.optimize.minimize(loss_and_gradient, pack(params), method="L-BFGS-B", jac=True,
                                         callback=callback if self.verbose else None,
                                         options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if not result.success:
            message = result.message.decode("latin1") if isinstance(result.message, bytes) else result.message
            warnings.warn(f"lbfgs failed to converge after {result.nit} iteration(s) (status={result.status}):\n"
                          f"{message}.\n\nIncrease the number of iterations to improve the convergence "
                          f"(max_iter={self.max_iter}).\nYou might also want to scale the data as shown in:\n"
                          "    https://scikit-learn.org/stable/modules/preprocessing.html", ConvergenceWarning,
                          stacklevel=3)
        self.n_iter_ = min(result.nit, self.max_iter)
        unpack(result.x)
        W = result.x[:n_w]
        l2 = 0.5 * alpha * float(W @ W) / total_weight
        self.loss_ = float(r * (result.fun - l2) / c + l2)  # scikit-learn's reported loss (differs for regression)

    # --------------------------------------------------------------------------------------------- tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier on fastnn (scikit-learn's MLPClassifier, trained by fastnn's C core).

    Parameters are scikit-learn's (hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=0.0001,
    batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
    shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
    nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
    epsilon=1e-8, n_iter_no_change=10, max_fun=15000), plus:

    dtype : {None, "float64", "float32"}, default=None
        The Network's floating type (weights, arithmetic). None follows the training data as scikit-learn does:
        float32 X trains in float32, any other X in float64 (later warm_start / partial_fit calls keep it).
    n_threads : int or None, default=None
        fastnn kernel threads while fitting and predicting (None: fastnn.get_num_threads(), or one thread in a
        Dask or Ray worker, see fastnn.search).
    backend : {None, "c", "python"}, default=None
        fastnn's backend (None: the best available).
    class_weight : None, "balanced" or dict {label: weight}, default=None
        Multiplies each sample's weight by its class's weight (compute_sample_weight); "balanced" is refused by
        partial_fit.

    Multiclass targets train softmax + cross_entropy; binary and multilabel (indicator y) train sigmoid outputs
    + binary_cross_entropy, as scikit-learn does. Fitted attributes: classes_, coefs_, intercepts_ (views of
    the Network's weights), network_, loss_, best_loss_, loss_curve_, validation_scores_,
    best_validation_score_, t_, n_iter_, n_layers_, n_outputs_, out_activation_, n_features_in_ and
    feature_names_in_. See the module docstring for how the numbers line up with scikit-learn's.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None, n_threads=None,
                 backend=None, class_weight=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend
        self.class_weight = class_weight

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "class_weight": [dict, list, StrOptions({"balanced"}), None]
                              if _SKLEARN_ERROR is None else None}

    @staticmethod
    def _is_classifier():
        return True

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _score_function(self, y, y_pred, sample_weight=None):
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32), reset=reset,
                             accept_sparse="csr")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, y

    def _targets(self, y, dtype):
        T = self._label_binarizer.transform(y)
        return np.ascontiguousarray(T.reshape(T.shape[0], -1), dtype=dtype)

    def _class_sample_weight(self, y, sample_weight, incremental):
        if self.class_weight is None:
            return sample_weight
        if incremental and isinstance(self.class_weight, str):
            raise ValueError("class_weight 'balanced' is not supported for partial_fit: the class frequencies of "
                             "the whole data are unknown. Pass a dict, e.g. from "
                             "sklearn.utils.class_weight.compute_class_weight('balanced', ...).")
        weights = compute_sample_weight(self.class_weight, y)
        return weights if sample_weight is None else sample_weight * weights

    def _outputs_to_predictions(self, outputs):
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return self._label_binarizer.inverse_transform(outputs)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing the optimizer state. `classes` (all the labels) is required on the
        first call."""
        self._validate_params()
        first_call = getattr(self, "classes_", None) is None
        if classes is None and first_call:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None:
            classes = unique_labels(classes)
            if first_call:
                self.classes_ = classes
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
            elif not np.array_equal(self.classes_, classes):
                raise ValueError(f"`classes={classes}` is not the same as on last call to partial_fit, was: "
                                 f"{self.classes_}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predicted class labels (label indicator rows for multilabel)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False, accept_sparse="csr")
        return self._outputs_to_predictions(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities, columns in the order of classes_ (per-label probabilities for multilabel)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False, accept_sparse="csr")
        outputs = self._forward(X)
        if self.n_outputs_ == 1:
            p = outputs.ravel()
            return np.vstack([1 - p, p]).T
        return outputs

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor on fastnn (scikit-learn's MLPRegressor, trained by fastnn's C core).

    loss="squared_error": a linear output layer and fastnn's mse, rescaled to scikit-learn's half squared error
    (see the module docstring). loss="poisson" (scikit-learn >= 1.7's): a log link, the output layer computing
    log(mean) and predict returning exp of it, trained on the half Poisson deviance (fastnn's "poisson" loss, the
    same numbers as scikit-learn's); targets must be >= 0. Parameters and attributes as MLPClassifier's, without
    class_weight and classes_; y may have several columns (multi-output regression)."""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None, n_threads=None,
                 backend=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend

    @staticmethod
    def _is_classifier():
        return False

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})] if _SKLEARN_ERROR is None else None}

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _score_function(self, y, y_pred, sample_weight=None):
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=(np.float64, np.float32),
                             reset=reset, accept_sparse="csr")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @staticmethod
    def _targets(y, dtype):
        return np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=dtype)

    @staticmethod
    def _class_sample_weight(y, sample_weight, incremental):
        return sample_weight

    def _outputs_to_predictions(self, outputs):
        return outputs.ravel() if outputs.shape[1] == 1 else outputs

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the optimizer state."""
        self._validate_params()
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predicted values, (n_samples,) for one output, (n_samples, n_outputs) otherwise."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False, accept_sparse="csr")
        return self._outputs_to_predictions(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
