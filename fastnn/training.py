"""What a training run is made of besides the kernels: optimizer options and state, the history, early stopping,
learning-rate schedules and the progress display.

Optimizers (their state lives in buffers of the flat parameter layout; weight decay covers the weights only):

- "sgd": p -= lr g; with momentum mu (PyTorch's form) v = mu v + g, p -= lr v, or with nesterov
  p -= lr (g + mu v). weight_decay adds wd p to g.
- "adam": m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr mhat / (sqrt(vhat) + eps), with the bias
  corrections mhat = m / (1 - b1^t), vhat = v / (1 - b2^t). weight_decay adds wd p to g (L2).
  epsilon_placement="uncorrected" adds eps to sqrt(v) instead, with the bias corrections in the step size:
  p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), as scikit-learn's MLP "adam" does (the two differ
  only while eps matters next to sqrt(v)).
- "adamw": Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr wd, then the Adam step on g.
- "rmsprop": s = rho s + (1 - rho) g^2, p -= lr g / (sqrt(s) + eps).
- "irprop-": iRPROP- (Igel & Huesken 2000; FANN's default batch algorithm), full batch: each parameter has its own
  step (starting at step_init); while the gradient keeps its sign the step grows by eta_plus (at most
  step_max), when the sign flips it shrinks by eta_minus (at least step_min) and that parameter skips one update;
  p -= sign(g) step. learning_rate is not used; batch_size is the whole training set.
"""
import math
import numbers
import re
import sys
import time

import numpy as np

from . import _codes
from . import _validation as check

OPTIMIZERS = tuple(_codes.OPTIMIZERS)

# Keyword options of fit/train_step beyond the named parameters, with their defaults.
OPTIMIZER_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "rho": 0.9, "eta_plus": 1.2,
                      "eta_minus": 0.5, "step_init": 0.1, "step_min": 0.0, "step_max": 50.0,
                      "epsilon_placement": "corrected"}


def check_optimizer(optimizer, learning_rate, momentum, nesterov, weight_decay, extra):
    """Validated optimizer options as a dict; `extra` holds the keyword options of OPTIMIZER_DEFAULTS."""
    check.check_choice("optimizer", optimizer, OPTIMIZERS)
    unknown = sorted(set(extra) - set(OPTIMIZER_DEFAULTS))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}; optimizer options are "
                        f"{sorted(OPTIMIZER_DEFAULTS)}")
    opts = dict(OPTIMIZER_DEFAULTS, **extra)
    opts.update(optimizer=optimizer, nesterov=bool(nesterov))
    opts["learning_rate"] = check.check_float("learning_rate", learning_rate, 0.0, include_minimum=False)
    opts["momentum"] = check.check_float("momentum", momentum, 0.0, 1.0)
    opts["weight_decay"] = check.check_float("weight_decay", weight_decay, 0.0)
    for name in ("beta1", "beta2", "rho"):
        opts[name] = check.check_float(name, opts[name], 0.0, 1.0)
    for name in ("epsilon", "step_init", "step_max"):
        opts[name] = check.check_float(name, opts[name], 0.0, include_minimum=False)
    opts["step_min"] = check.check_float("step_min", opts["step_min"], 0.0)
    check.check_choice("epsilon_placement", opts["epsilon_placement"], _codes.EPSILON_PLACEMENTS)
    opts["eta_plus"] = check.check_float("eta_plus", opts["eta_plus"], 1.0, include_minimum=False)
    opts["eta_minus"] = check.check_float("eta_minus", opts["eta_minus"], 0.0, 1.0, include_minimum=False)
    if opts["step_min"] > opts["step_max"]:
        raise ValueError("step_min must be <= step_max")
    if opts["nesterov"] and (optimizer != "sgd" or opts["momentum"] == 0):
        raise ValueError("nesterov=True needs optimizer='sgd' with momentum > 0")
    if optimizer != "sgd" and momentum != 0:
        raise ValueError(f"momentum applies to optimizer='sgd', not {optimizer!r}")
    return opts


class OptimizerState:
    """Hyperparameters and buffers of an optimizer, as the kernels' fastnn_optimizer struct holds them."""

    eps_placement = _codes.EPS_CORRECTED  # states pickled before the option existed

    def __init__(self, opts, params):
        self.name = opts["optimizer"]
        self.kind = _codes.OPTIMIZERS[self.name]
        self.t = 0
        self.clip_norm = 0.0  # > 0: the update first clips the gradients to this global norm
        self.clipped = 0      # updates whose gradients were clipped
        self.state1 = self.state2 = None
        if self.name in ("adam", "adamw"):
            self.state1, self.state2 = np.zeros_like(params), np.zeros_like(params)
        elif self.name == "rmsprop" or (self.name == "sgd" and opts["momentum"] != 0):
            self.state1 = np.zeros_like(params)
        elif self.name == "irprop-":
            self.state1 = np.zeros_like(params)  # previous gradient
            self.state2 = np.full_like(params, opts["step_init"])  # step sizes
        self.set_hyperparameters(opts)

    def compatible(self, opts):
        """Whether these options can continue with this state (same optimizer, same buffers)."""
        if opts["optimizer"] != self.name:
            return False
        return self.name != "sgd" or (self.state1 is not None) == (opts["momentum"] != 0)

    def set_hyperparameters(self, opts):
        self.lr, self.momentum, self.nesterov = opts["learning_rate"], opts["momentum"], opts["nesterov"]
        self.beta1, self.beta2, self.eps = opts["beta1"], opts["beta2"], opts["epsilon"]
        self.weight_decay, self.rho = opts["weight_decay"], opts["rho"]
        self.eta_plus, self.eta_minus = opts["eta_plus"], opts["eta_minus"]
        self.step_min, self.step_max = opts["step_min"], opts["step_max"]
        self.eps_placement = _codes.EPSILON_PLACEMENTS[opts["epsilon_placement"]]


# ------------------------------------------------------------------------------------------------- metrics
# Metric names of fit(metrics=[...]), Keras' spellings: name -> (fastnn_metric code, k). "topK_accuracy" (e.g.
# "top3_accuracy") is top-k accuracy for any k >= 1; Keras' top-k names use its default k = 5.
METRIC_NAMES = {
    "accuracy": (_codes.METRIC_ACCURACY, 0), "acc": (_codes.METRIC_ACCURACY, 0),
    "binary_accuracy": (_codes.METRIC_ACCURACY, 0), "categorical_accuracy": (_codes.METRIC_ACCURACY, 0),
    "sparse_categorical_accuracy": (_codes.METRIC_ACCURACY, 0),
    "top_k_categorical_accuracy": (_codes.METRIC_TOP_K_ACCURACY, 5),
    "sparse_top_k_categorical_accuracy": (_codes.METRIC_TOP_K_ACCURACY, 5),
    "mae": (_codes.METRIC_MAE, 0), "mean_absolute_error": (_codes.METRIC_MAE, 0),
}
_TOP_K = re.compile(r"top([1-9][0-9]*)_accuracy")
MAX_METRICS = 8


def parse_metrics(metrics, output_activation):
    """The metric names of fit(metrics=...) as a list of (name, code, k), checked against the output: accuracy
    needs a softmax or sigmoid output, top-k accuracy a softmax one. None or [] gives []."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        metrics = [metrics]
    try:
        names = list(metrics)
    except TypeError:
        raise TypeError("metrics must be a list of metric names, e.g. ['accuracy']") from None
    valid = sorted(METRIC_NAMES) + ["top<k>_accuracy (e.g. top3_accuracy)"]
    parsed = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"metrics: each metric is a name (a string), got {name!r}; valid names: {valid}")
        match = _TOP_K.fullmatch(name)
        if name in METRIC_NAMES:
            code, k = METRIC_NAMES[name]
        elif match:
            code, k = _codes.METRIC_TOP_K_ACCURACY, int(match.group(1))
        else:
            raise ValueError(f"unknown metric {name!r}; valid names: {valid}")
        if code == _codes.METRIC_ACCURACY and output_activation not in ("softmax", "sigmoid"):
            raise ValueError(f"metric {name!r} needs a softmax or sigmoid output (a classifier: loss "
                             f"'cross_entropy' or 'binary_cross_entropy'); this network's output is "
                             f"{output_activation!r}: use 'mae' for regression")
        if code == _codes.METRIC_TOP_K_ACCURACY and output_activation != "softmax":
            raise ValueError(f"metric {name!r} needs a softmax output (loss 'cross_entropy'); this network's output "
                             f"is {output_activation!r}")
        if any(name == other for other, _, _ in parsed):
            raise ValueError(f"metric {name!r} is given twice")
        parsed.append((name, code, k))
    if len(parsed) > MAX_METRICS:
        raise ValueError(f"at most {MAX_METRICS} metrics, got {len(parsed)}")
    return parsed


class MetricAccumulator:
    """Running sums of metrics as the kernels' fastnn_metrics holds them: metric q = sums[q] / weight."""

    def __init__(self, parsed):
        self.names = [name for name, _, _ in parsed]
        self.kinds = [code for _, code, _ in parsed]
        self.ks = [k for _, _, k in parsed]
        self.sums = np.zeros(len(parsed))
        self.weight = 0.0

    def values(self):
        """{name: value}; NaN when no row (or only rows of weight 0) was counted."""
        return {name: (float(total) / self.weight if self.weight > 0 else math.nan)
                for name, total in zip(self.names, self.sums)}


def check_clip_norm(clip_norm):
    """The max gradient norm of fit / train_step as a float, 0.0 for none."""
    if clip_norm is None:
        return 0.0
    return check.check_float("clip_norm", clip_norm, 0.0, include_minimum=False)


class History(dict):
    """Per-epoch metrics of a fit: history["loss"], history["val_loss"] (with validation data), history["lr"].

    Also: `best_epoch` (0-based, by the monitored metric, when early stopping ran) and `stopped_epoch` (the
    epoch after which training stopped early, or None)."""

    best_epoch = None
    stopped_epoch = None
    metric_names = ()  # the metrics of fit(metrics=...), as spelled there; their values are history[name]

    @property
    def loss(self):
        return self.get("loss", [])

    @property
    def val_loss(self):
        return self.get("val_loss", [])

    @property
    def epochs(self):
        return len(self.loss)

    def plot(self, path=None, ax=None):
        """Draw loss (and val_loss) per epoch with matplotlib (an optional extra); save to `path` if given.
        Returns the matplotlib Axes. With metrics (fit(metrics=...)) and no `ax`, they are drawn in a second
        panel beside the loss (the loss's Axes is returned; the figure is ax.figure)."""
        try:
            import matplotlib
            if ax is None and path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        metric_ax = None
        if ax is None and self.metric_names:
            _, (ax, metric_ax) = plt.subplots(1, 2, figsize=(11, 4))
        elif ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        epochs = np.arange(1, self.epochs + 1)
        if metric_ax is not None:
            for name in self.metric_names:
                for key in (name, "val_" + name):
                    if self.get(key):
                        metric_ax.plot(epochs, self[key], label=key)
            metric_ax.set_xlabel("epoch")
            metric_ax.set_ylabel("metric")
            metric_ax.legend()
        ax.plot(epochs, self.loss, label="loss")
        if self.val_loss:
            ax.plot(epochs, self.val_loss, label="val_loss")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch + 1, color="grey", linestyle=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
        if path is not None:
            ax.figure.savefig(path, bbox_inches="tight")
        return ax


class EarlyStopping:
    """Stop when `monitor` ("val_loss", or "loss" without validation data) has not improved by more than
    min_delta for `patience` epochs; with restore_best_weights, end with the weights of the best epoch."""

    def __init__(self, patience=10, min_delta=0.0, monitor="auto", restore_best_weights=True):
        self.patience = check.check_int("patience", patience, 1)
        self.min_delta = check.check_float("min_delta", min_delta, 0.0)
        self.monitor = check.check_choice("monitor", monitor, ("auto", "loss", "val_loss"))
        self.restore_best_weights = bool(restore_best_weights)

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, monitor={self.monitor!r}, "
                f"restore_best_weights={self.restore_best_weights})")


class _EarlyStoppingRun:
    """The state of one EarlyStopping during one fit."""

    def __init__(self, rule, has_validation, params):
        self.rule = rule
        self.key = rule.monitor if rule.monitor != "auto" else ("val_loss" if has_validation else "loss")
        if self.key == "val_loss" and not has_validation:
            raise ValueError("early stopping on val_loss needs validation_data or validation_split")
        self.best = math.inf
        self.best_epoch = None
        self.wait = 0
        self.best_params = np.empty_like(params) if rule.restore_best_weights else None

    def should_stop(self, epoch, history, params):
        value = history[self.key][-1]
        if value < self.best - self.rule.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.best_params is not None:
                self.best_params[...] = params
            return False
        self.wait += 1
        return self.wait >= self.rule.patience

    def finish(self, params):
        if self.best_params is not None and self.best_epoch is not None:
            params[...] = self.best_params


# -------------------------------------------------------------------------------------------- learning rates
class StepDecay:
    """lr = lr0 * gamma ** (epoch // step_size)."""

    def __init__(self, step_size, gamma=0.1):
        self.step_size = check.check_int("step_size", step_size, 1)
        self.gamma = check.check_float("gamma", gamma, 0.0, include_minimum=False)

    def __call__(self, epoch, lr0, history):
        return lr0 * self.gamma ** (epoch // self.step_size)


class ExponentialDecay:
    """lr = lr0 * gamma ** epoch."""

    def __init__(self, gamma):
        self.gamma = check.check_float("gamma", gamma, 0.0, include_minimum=False)

    def __call__(self, epoch, lr0, history):
        return lr0 * self.gamma ** epoch


class CosineDecay:
    """lr = lr_min + (lr0 - lr_min) (1 + cos(pi epoch / t_max)) / 2, then lr_min after t_max epochs."""

    def __init__(self, t_max, lr_min=0.0):
        self.t_max = check.check_int("t_max", t_max, 1)
        self.lr_min = check.check_float("lr_min", lr_min, 0.0)

    def __call__(self, epoch, lr0, history):
        if epoch >= self.t_max:
            return self.lr_min
        return self.lr_min + (lr0 - self.lr_min) * (1 + math.cos(math.pi * epoch / self.t_max)) / 2


class ReduceLROnPlateau:
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than min_delta for
    `patience` epochs (never below min_lr). Keeps state: use a new one per fit."""

    def __init__(self, factor=0.1, patience=10, min_delta=1e-4, monitor="auto", min_lr=0.0):
        self.factor = check.check_float("factor", factor, 0.0, 1.0, include_minimum=False)
        self.patience = check.check_int("patience", patience, 1)
        self.min_delta = check.check_float("min_delta", min_delta, 0.0)
        self.monitor = check.check_choice("monitor", monitor, ("auto", "loss", "val_loss"))
        self.min_lr = check.check_float("min_lr", min_lr, 0.0)
        self._lr = None
        self._best = math.inf
        self._wait = 0

    def __call__(self, epoch, lr0, history):
        if self._lr is None or epoch == 0:
            self._lr, self._best, self._wait = lr0, math.inf, 0
            return self._lr
        key = self.monitor if self.monitor != "auto" else ("val_loss" if history.get("val_loss") else "loss")
        value = history[key][-1]
        if value < self._best - self.min_delta:
            self._best, self._wait = value, 0
        else:
            self._wait += 1
            if self._wait >= self.patience:
                self._lr, self._wait = max(self._lr * self.factor, self.min_lr), 0
        return self._lr


def check_schedule(schedule):
    if schedule is not None and not callable(schedule):
        raise TypeError("lr_schedule must be None or a callable (epoch, lr0, history) -> lr, e.g. "
                        "fastnn.StepDecay(10)")
    return schedule


def check_callbacks(callbacks):
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    callbacks = list(callbacks)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables (epoch, history) -> bool or None, got {cb!r}")
    return callbacks


def check_early_stopping(early_stopping):
    if early_stopping is None or early_stopping is False:
        return None
    if early_stopping is True:
        return EarlyStopping()
    if isinstance(early_stopping, EarlyStopping):
        return early_stopping
    raise TypeError("early_stopping must be a bool or a fastnn.EarlyStopping")


def sample_weights(loss, y, n_samples, n_outputs, class_weight, sample_weight, dtype):
    """Per-sample weights from class_weight ({class: weight} or "balanced") and sample_weight, or None."""
    weights = None
    if sample_weight is not None:
        w = check.as_array("sample_weight", sample_weight)
        if w.shape != (n_samples,):
            raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("sample_weight must be finite and >= 0")
        weights = w.astype(np.float64)
    if class_weight is not None:
        if loss in ("mse", "poisson"):
            raise ValueError(f"class_weight applies to cross_entropy and binary_cross_entropy, not {loss}")
        labels = _labels(loss, y, n_outputs)
        n_classes = max(n_outputs, 2)
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
            counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
            table = np.where(counts > 0, n_samples / (n_classes * np.maximum(counts, 1)), 0.0)
        elif isinstance(class_weight, dict):
            table = np.ones(n_classes)
            for cls, value in class_weight.items():
                if not isinstance(cls, numbers.Integral) or not 0 <= cls < n_classes:
                    raise ValueError(f"class_weight key {cls!r} is not a class in [0, {n_classes - 1}]")
                table[cls] = check.check_float(f"class_weight[{cls}]", value, 0.0)
        else:
            raise TypeError("class_weight must be a dict {class: weight} or 'balanced'")
        cw = table[labels]
        weights = cw if weights is None else weights * cw
    return None if weights is None else np.ascontiguousarray(weights, dtype=dtype)


def _labels(loss, y, n_outputs):
    y = np.asarray(y)
    if loss == "cross_entropy":
        return y.astype(np.intp) if y.ndim == 1 else np.argmax(y, axis=1)
    if n_outputs != 1:
        raise ValueError("class_weight with binary_cross_entropy needs a single output")
    return (y.reshape(-1) >= 0.5).astype(np.intp)


class Progress:
    """Per-epoch progress: a tqdm bar when tqdm is installed (verbose=True), plain lines otherwise (or with
    verbose=2). Shows epoch, loss, val_loss and samples/s."""

    def __init__(self, verbose, epochs):
        self.bar = None
        self.verbose = verbose
        if verbose is True or verbose == 1:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=epochs, unit="epoch", file=sys.stderr)
            except ImportError:
                pass
        self.epochs = epochs
        self.started = time.perf_counter()

    def epoch_started(self):
        self.started = time.perf_counter()

    def epoch_done(self, epoch, history, n_samples):
        if not self.verbose:
            return
        rate = n_samples / max(time.perf_counter() - self.started, 1e-9)
        fields = {"loss": f"{history['loss'][-1]:.6f}"}
        for name in history.metric_names:
            fields[name] = f"{history[name][-1]:.4f}"
        if history.get("val_loss"):
            fields["val_loss"] = f"{history['val_loss'][-1]:.6f}"
        for name in history.metric_names:
            if history.get("val_" + name):
                fields["val_" + name] = f"{history['val_' + name][-1]:.4f}"
        fields["samples/s"] = f"{rate:,.0f}"
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(1)
        else:
            print(f"epoch {epoch + 1}/{self.epochs}  " + "  ".join(f"{k} {v}" for k, v in fields.items()),
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
