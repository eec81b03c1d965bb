/* act_rows.h -- element-level activation helpers, a template (no include guard: instantiated per REAL by
 * fastnn_real.h). Shared by activations.c and by dense.c, which fuses bias + activation into the GEMM. */

/* Numerically safe logistic function: never evaluates exp of a large positive number. */
static inline REAL SFX(sigmoid)(REAL z)
{
    if (z >= 0) return (REAL)1 / ((REAL)1 + R_EXP(-z));
    REAL e = R_EXP(z);
    return e / ((REAL)1 + e);
}

/* a[0:len] <- act(a[0:len]) for the element-wise activations (everything but softmax). */
static inline void SFX(act_apply)(REAL *FASTNN_RESTRICT a, int64_t len, int act, REAL alpha)
{
    int64_t j;
    switch (act) {
    case FASTNN_ACT_SIGMOID:
        for (j = 0; j < len; j++) a[j] = SFX(sigmoid)(a[j]);
        break;
    case FASTNN_ACT_TANH:
        for (j = 0; j < len; j++) a[j] = R_TANH(a[j]);
        break;
    case FASTNN_ACT_RELU:
        /* written so NaN propagates, as np.maximum(z, 0) does */
        for (j = 0; j < len; j++) a[j] = a[j] < 0 ? (REAL)0 : a[j];
        break;
    case FASTNN_ACT_LEAKY_RELU:
        for (j = 0; j < len; j++) a[j] = a[j] < 0 ? alpha * a[j] : a[j];
        break;
    case FASTNN_ACT_EXP:
        for (j = 0; j < len; j++) a[j] = R_EXP(a[j]);
        break;
    default: /* linear */
        break;
    }
}

/* d[0:len] *= act'(z), written through the activation's own output a = act(z) (not softmax). */
static inline void SFX(act_deriv_inplace)(REAL *FASTNN_RESTRICT d, const REAL *FASTNN_RESTRICT a, int64_t len,
                                          int act, REAL alpha)
{
    int64_t j;
    switch (act) {
    case FASTNN_ACT_SIGMOID:
        for (j = 0; j < len; j++) d[j] = d[j] * (a[j] * ((REAL)1 - a[j]));
        break;
    case FASTNN_ACT_TANH:
        for (j = 0; j < len; j++) d[j] = d[j] * ((REAL)1 - a[j] * a[j]);
        break;
    case FASTNN_ACT_RELU:
        for (j = 0; j < len; j++) d[j] = a[j] > 0 ? d[j] : (REAL)0;
        break;
    case FASTNN_ACT_LEAKY_RELU:
        for (j = 0; j < len; j++) d[j] = a[j] > 0 ? d[j] : alpha * d[j];
        break;
    case FASTNN_ACT_EXP:
        for (j = 0; j < len; j++) d[j] = d[j] * a[j];
        break;
    default: /* linear */
        break;
    }
}

/* One row of softmax in place, shifted by the row maximum; the sum is accumulated in double. */
static inline void SFX(softmax_row)(REAL *FASTNN_RESTRICT a, int64_t d)
{
    int64_t j;
    REAL m = a[0];
    double s = 0.0;
    for (j = 1; j < d; j++) m = a[j] > m ? a[j] : m;
    for (j = 0; j < d; j++) {
        a[j] = R_EXP(a[j] - m);
        s += a[j];
    }
    REAL inv = (REAL)(1.0 / s);
    for (j = 0; j < d; j++) a[j] *= inv;
}
