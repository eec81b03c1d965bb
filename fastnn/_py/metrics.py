"""Per-epoch metrics accumulated from outputs a pass already has (twin of csrc/metrics.c): accuracy, top-k
accuracy and mean absolute error; see fastnn_metrics in csrc/fastnn.h."""
import numpy as np

from .._codes import EXP, METRIC_ACCURACY, METRIC_MAE, METRIC_TOP_K_ACCURACY, SIGMOID, SOFTMAX
from .activations import sigmoid

MAX_METRICS = 8


def check_metrics(metrics, output_act):
    """ValueError unless every metric applies to an output with this predict activation."""
    if len(metrics.kinds) > MAX_METRICS:
        raise ValueError(f"metrics: at most {MAX_METRICS} metrics")
    for kind, k in zip(metrics.kinds, metrics.ks):
        ok = {METRIC_ACCURACY: output_act in (SOFTMAX, SIGMOID),
              METRIC_TOP_K_ACCURACY: output_act == SOFTMAX and k >= 1, METRIC_MAE: True}.get(kind, False)
        if not ok:
            raise ValueError("metrics_accumulate: a metric does not apply to this output (accuracy needs a softmax "
                             "or sigmoid output, top-k accuracy a softmax one) or an argument is invalid")


def _predictions(out, act, raw):
    if not raw:
        return out
    if act == SOFTMAX:
        m = out.max(axis=1, keepdims=True)
        e = np.exp(out - m)
        inv = (1.0 / e.sum(axis=1, keepdims=True, dtype=np.float64)).astype(out.dtype)
        return e * inv
    if act == SIGMOID:
        return sigmoid(out)
    if act == EXP:
        return np.exp(out)
    return out


def metrics_accumulate(metrics, out, target, weights, output_act, raw, skip_padding):
    """Add the metrics of the rows of out (n, d) against target (n, d) to the accumulator `metrics` (kinds, ks,
    sums, weight): sums[q] += sum_i w_i metric_q(row i), weight += sum_i w_i."""
    check_metrics(metrics, output_act)
    if out.shape != target.shape:
        raise ValueError(f"metrics_accumulate: target {target.shape} and out {out.shape} differ")
    if out.shape[0] == 0:
        return
    w = np.ones(out.shape[0]) if weights is None else weights.astype(np.float64)
    if skip_padding:
        keep = target.any(axis=1)
        out, target, w = out[keep], target[keep], w[keep]
    values = []
    for kind, k in zip(metrics.kinds, metrics.ks):
        if kind == METRIC_ACCURACY and output_act == SOFTMAX:
            value = (np.argmax(out, axis=1) == np.argmax(target, axis=1)).astype(np.float64)
        elif kind == METRIC_ACCURACY:
            predicted = out > 0 if raw else out > out.dtype.type(0.5)
            value = (predicted == (target > target.dtype.type(0.5))).mean(axis=1)
        elif kind == METRIC_TOP_K_ACCURACY:
            true = np.argmax(target, axis=1)
            larger = (out > out[np.arange(out.shape[0]), true][:, None]).sum(axis=1)
            value = (larger < k).astype(np.float64)
        else:
            err = np.abs(_predictions(out, output_act, raw) - target)
            value = err.sum(axis=1, dtype=np.float64) / out.shape[1]
        values.append(float(np.dot(w, value)))
    for q, v in enumerate(values):
        metrics.sums[q] += v
    metrics.weight += float(w.sum())
