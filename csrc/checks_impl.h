/* checks_impl.h -- template body of checks.c, instantiated per REAL by fastnn_real.h. */

/* 1 when x[lo:hi] holds no NaN and no infinity: x - x is 0 exactly for finite x and NaN otherwise, and the
 * flags are OR-ed (an integer reduction, so the loop vectorises without reassociating float arithmetic). */
FASTNN_SIMD_CLONES
static int SFX(range_finite)(const REAL *FASTNN_RESTRICT x, int64_t lo, int64_t hi)
{
    int64_t i;
    int bad = 0;
    for (i = lo; i < hi; i++) bad |= !(x[i] - x[i] == (REAL)0);
    return !bad;
}

int SFX(fastnn_all_finite)(int *finite, const REAL *x, int64_t n, int n_threads)
{
    if (finite == NULL || n < 0 || (n > 0 && x == NULL)) return FASTNN_EINVAL;
    int all = 1;
    FASTNN_FOR_RANGE(n, n, n_threads, lo, hi, {
        if (!SFX(range_finite)(x, lo, hi)) {
            FASTNN_PRAGMA(omp atomic write)
            all = 0;
        }
    });
    *finite = all;
    return FASTNN_OK;
}
