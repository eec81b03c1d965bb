/* dropout_impl.h -- template body of dropout.c, instantiated per REAL by fastnn_real.h. */

int SFX(fastnn_dropout_forward)(REAL *y, REAL *mask, const REAL *x, int64_t n, int64_t d, double rate,
                                uint64_t key, int n_threads)
{
    if (n < 0 || d < 1) return FASTNN_ESHAPE;
    if (!(rate >= 0 && rate < 1)) return FASTNN_EINVAL;
    if (n == 0) return FASTNN_OK;
    if (y == NULL || mask == NULL || x == NULL) return FASTNN_EINVAL;
    const REAL keep = (REAL)(1.0 / (1.0 - rate));
    FASTNN_FOR_RANGE(n * d, 16 * n * d, n_threads, lo, hi, {
        int64_t i;
        for (i = lo; i < hi; i++) {
            mask[i] = fastnn_dropout_uniform(key, i) >= rate ? keep : (REAL)0;
            y[i] = x[i] * mask[i];
        }
    });
    return FASTNN_OK;
}

int SFX(fastnn_dropout_backward)(REAL *dx, const REAL *dy, const REAL *mask, int64_t n, int64_t d, int n_threads)
{
    if (n < 0 || d < 1) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (dx == NULL || dy == NULL || mask == NULL) return FASTNN_EINVAL;
    FASTNN_FOR_RANGE(n * d, n * d, n_threads, lo, hi, {
        int64_t i;
        for (i = lo; i < hi; i++) dx[i] = dy[i] * mask[i];
    });
    return FASTNN_OK;
}
