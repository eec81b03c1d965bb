/* activations_impl.h -- template body of activations.c, instantiated per REAL by fastnn_real.h. */
#include "act_rows.h"

static int SFX(check_act)(int64_t n, int64_t d, int act, double alpha)
{
    if (n < 0 || d < 1) return FASTNN_ESHAPE;
    if (act < FASTNN_ACT_LINEAR || act > FASTNN_ACT_EXP) return FASTNN_EINVAL;
    if (act == FASTNN_ACT_LEAKY_RELU && !(alpha > 0)) return FASTNN_EINVAL;
    return FASTNN_OK;
}

int SFX(fastnn_act_forward)(REAL *a, int64_t n, int64_t d, int act, double alpha, int n_threads)
{
    int rc = SFX(check_act)(n, d, act, alpha);
    if (rc != FASTNN_OK) return rc;
    if (n == 0 || act == FASTNN_ACT_LINEAR) return FASTNN_OK;
    if (a == NULL) return FASTNN_EINVAL;
    REAL alpha_r = (REAL)alpha;
    FASTNN_FOR_RANGE(n, 8 * n * d, n_threads, lo, hi, {
        int64_t i;
        if (act == FASTNN_ACT_SOFTMAX)
            for (i = lo; i < hi; i++) SFX(softmax_row)(a + i * d, d);
        else
            SFX(act_apply)(a + lo * d, (hi - lo) * d, act, alpha_r);
    });
    return FASTNN_OK;
}

/* d[0:len] *= act'(z), the derivative taken from the output a, in place. d and a never alias, so every loop
 * vectorises (the kernel used to write dz from da directly; called in place, dz == da, that failed the
 * compiler's overlap check and ran the scalar loop, whose relu branch mispredicts on half of the elements:
 * 5% of a wide_mlp step). */
FASTNN_SIMD_CLONES

int SFX(fastnn_act_backward)(REAL *dz, const REAL *da, const REAL *a, int64_t n, int64_t d, int act,
                             double alpha, int n_threads)
{
    int rc = SFX(check_act)(n, d, act, alpha);
    if (rc != FASTNN_OK) return rc;
    if (n == 0) return FASTNN_OK;
    if (dz == NULL || da == NULL || a == NULL || dz == a) return FASTNN_EINVAL;
    REAL alpha_r = (REAL)alpha;
    FASTNN_FOR_RANGE(n, 4 * n * d, n_threads, lo, hi, {
        int64_t i, j, beg = lo * d, end = hi * d;
        if (act == FASTNN_ACT_SOFTMAX) {
            /* Jacobian-vector product of softmax: dz = a * (da - <da, a>) per row */
            for (i = lo; i < hi; i++) {
                const REAL *ai = a + i * d, *dai = da + i * d;
                REAL *dzi = dz + i * d;
                double dot = 0.0;
                for (j = 0; j < d; j++) dot += (double)dai[j] * ai[j];
                for (j = 0; j < d; j++) dzi[j] = ai[j] * (dai[j] - (REAL)dot);
            }
        } else {
            if (dz != da)
                for (j = beg; j < end; j++) dz[j] = da[j];
            SFX(act_deriv_inplace)(dz + beg, a + beg, end - beg, act, alpha_r);
        }
    });
    return FASTNN_OK;
}
