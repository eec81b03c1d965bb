/* metrics.c -- per-epoch metrics (accuracy, top-k accuracy, mean absolute error) accumulated from the outputs a
 * training batch or an evaluation pass already has, so fit reports them without a second pass over the data
 * (twin: fastnn/_py/metrics.py). */
#include <math.h>
#include "fastnn_internal.h"

int fastnn_check_metrics(const fastnn_metrics *m, int output_act)
{
    int i;
    if (m == NULL) return FASTNN_OK;
    if (m->n_metrics < 0 || m->n_metrics > FASTNN_MAX_METRICS) return FASTNN_EINVAL;
    for (i = 0; i < m->n_metrics; i++) {
        switch (m->kind[i]) {
        case FASTNN_METRIC_ACCURACY:
            if (output_act != FASTNN_ACT_SOFTMAX && output_act != FASTNN_ACT_SIGMOID) return FASTNN_EINVAL;
            break;
        case FASTNN_METRIC_TOP_K_ACCURACY:
            if (output_act != FASTNN_ACT_SOFTMAX || m->k[i] < 1) return FASTNN_EINVAL;
            break;
        case FASTNN_METRIC_MAE:
            break;
        default:
            return FASTNN_EINVAL;
        }
    }
    return FASTNN_OK;
}

#define FASTNN_TEMPLATE "metrics_impl.h"
#include "fastnn_real.h"
