/* metrics_impl.h -- template body of metrics.c, instantiated per REAL by fastnn_real.h.
 *
 * Rows are visited serially and summed in double, in row order: cheap next to the layers, and the sums do not
 * depend on the thread count. */
#include "act_rows.h"

/* The index of the first largest value of v[0:d] (np.argmax). */
static int64_t SFX(first_argmax)(const REAL *v, int64_t d)
{
    int64_t j, best = 0;
    for (j = 1; j < d; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* The prediction of output j of a row z (the output layer's values, raw = before its predict activation
 * when the loss fuses that): for softmax, lse is the row's log-sum-exp of z when raw. */
static REAL SFX(predicted)(const REAL *z, int64_t j, int act, int raw, REAL m, double s)
{
    if (!raw) return z[j];
    switch (act) {
    case FASTNN_ACT_SOFTMAX:
        return R_EXP(z[j] - m) * (REAL)(1.0 / s);
    case FASTNN_ACT_SIGMOID:
        return SFX(sigmoid)(z[j]);
    case FASTNN_ACT_EXP:
        return R_EXP(z[j]);
    default:
        return z[j];
    }
}

int SFX(fastnn_metrics_accumulate)(fastnn_metrics *metrics, const REAL *out, const REAL *target,
                                   const REAL *weights, int64_t n, int64_t d, int output_act, int raw,
                                   int skip_padding)
{
    int64_t i, j;
    int q, rc;
    if (metrics == NULL) return FASTNN_OK;
    if (n < 0 || d < 1) return FASTNN_ESHAPE;
    if ((rc = fastnn_check_metrics(metrics, output_act)) != FASTNN_OK) return rc;
    if (n > 0 && (out == NULL || target == NULL)) return FASTNN_EINVAL;
    for (i = 0; i < n; i++) {
        const REAL *z = out + i * d, *t = target + i * d;
        double w = weights ? (double)weights[i] : 1.0;
        if (skip_padding) {
            for (j = 0; j < d && t[j] == 0; j++) {
            }
            if (j == d) continue; /* a padding row (ignore_index) counts for nothing */
        }
        /* the softmax of a raw row, as softmax_row computes it: shifted by the maximum, summed in double */
        REAL m = z[0];
        double s = 1.0;
        if (raw && output_act == FASTNN_ACT_SOFTMAX) {
            for (j = 1; j < d; j++) m = z[j] > m ? z[j] : m;
            s = 0.0;
            for (j = 0; j < d; j++) s += (double)R_EXP(z[j] - m);
        }
        for (q = 0; q < metrics->n_metrics; q++) {
            double value = 0.0;
            switch (metrics->kind[q]) {
            case FASTNN_METRIC_ACCURACY:
                if (output_act == FASTNN_ACT_SOFTMAX) {
                    value = SFX(first_argmax)(z, d) == SFX(first_argmax)(t, d) ? 1.0 : 0.0;
                } else { /* sigmoid, each output on its own: logit > 0 (probability > 0.5) against t > 0.5 */
                    int64_t hits = 0;
                    for (j = 0; j < d; j++) hits += (raw ? z[j] > 0 : z[j] > (REAL)0.5) == (t[j] > (REAL)0.5);
                    value = (double)hits / (double)d;
                }
                break;
            case FASTNN_METRIC_TOP_K_ACCURACY: {
                /* the true class is among the k largest outputs: fewer than k outputs are larger than its */
                int64_t c = SFX(first_argmax)(t, d), larger = 0;
                for (j = 0; j < d; j++) larger += z[j] > z[c];
                value = larger < metrics->k[q] ? 1.0 : 0.0;
                break;
            }
            default: { /* mean absolute error of the predictions */
                double row = 0.0;
                for (j = 0; j < d; j++) {
                    REAL e = SFX(predicted)(z, j, output_act, raw, m, s) - t[j];
                    row += (double)(e < 0 ? -e : e);
                }
                value = row / (double)d;
            }
            }
            metrics->sum[q] += w * value;
        }
        metrics->weight += w;
    }
    return FASTNN_OK;
}
