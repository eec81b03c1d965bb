/* sequence_impl.h -- template body of sequence.c, instantiated per REAL by fastnn_real.h.
 *
 * Token ids travel in the network's REAL buffers (float holds every integer below 2^24 exactly). Every id is
 * checked before anything is written, so a bad id leaves the outputs as they were. */
#include <string.h>

#ifndef FASTNN_SEQUENCE_CONSTANTS
#define FASTNN_SEQUENCE_CONSTANTS
/* columns of dW a thread owns at a time in the embedding backward pass: one cache line of floats, so two
 * threads never write one line */
#define EMBED_COLUMN_BLOCK 16
#endif

/* FASTNN_OK when every one of ids[0:m] is an integer in [0, vocab), else FASTNN_EINVAL. Compared in double, as
 * the twin does (a float32 id meets its int64 value as float64); NaN fails the range test. */
static int SFX(check_ids)(const REAL *ids, int64_t m, int64_t vocab)
{
    const double top = (double)vocab;
    int64_t i;
    for (i = 0; i < m; i++) {
        const double v = (double)ids[i];
        if (!(v >= 0 && v < top) || (double)(int64_t)v != v) return FASTNN_EINVAL;
    }
    return FASTNN_OK;
}

int SFX(fastnn_embedding_forward)(REAL *y, const REAL *ids, const REAL *W, int64_t m, int64_t vocab, int64_t D,
                                  int n_threads)
{
    if (m < 0 || vocab < 1 || D < 1) return FASTNN_ESHAPE;
    if (W == NULL) return FASTNN_EINVAL;
    if (m == 0) return FASTNN_OK;
    if (y == NULL || ids == NULL) return FASTNN_EINVAL;
    int rc = SFX(check_ids)(ids, m, vocab);
    if (rc != FASTNN_OK) return rc;
    FASTNN_FOR_RANGE(m, m * D, n_threads, lo, hi, {
        int64_t i;
        for (i = lo; i < hi; i++) memcpy(y + i * D, W + (int64_t)ids[i] * D, (size_t)D * sizeof(REAL));
    });
    return FASTNN_OK;
}

int SFX(fastnn_embedding_backward)(REAL *dW, const REAL *dy, const REAL *ids, int64_t m, int64_t vocab, int64_t D,
                                   int n_threads)
{
    if (m < 0 || vocab < 1 || D < 1) return FASTNN_ESHAPE;
    if (dW == NULL || (m > 0 && (dy == NULL || ids == NULL))) return FASTNN_EINVAL;
    int rc = SFX(check_ids)(ids, m, vocab);
    if (rc != FASTNN_OK) return rc;
    /* a thread owns blocks of columns [c0, c1) of dW: it zeroes them, then adds every dy row's slice into its
     * token's row, the ids taken in order, so each element is summed in one fixed order whatever n_threads */
    const int64_t blocks = (D + EMBED_COLUMN_BLOCK - 1) / EMBED_COLUMN_BLOCK;
    FASTNN_FOR_RANGE(blocks, (vocab + m) * D, n_threads, lo, hi, {
        const int64_t c0 = lo * EMBED_COLUMN_BLOCK, c1 = hi * EMBED_COLUMN_BLOCK < D ? hi * EMBED_COLUMN_BLOCK : D;
        int64_t v, i, j;
        for (v = 0; v < vocab; v++)
            for (j = c0; j < c1; j++) dW[v * D + j] = 0;
        for (i = 0; i < m; i++) {
            REAL *FASTNN_RESTRICT row = dW + (int64_t)ids[i] * D;
            const REAL *FASTNN_RESTRICT src = dy + i * D;
            for (j = c0; j < c1; j++) row[j] += src[j];
        }
    });
    return FASTNN_OK;
}

int SFX(fastnn_repeat_forward)(REAL *y, const REAL *x, int64_t n, int64_t F, int64_t repeats, int n_threads)
{
    if (n < 0 || F < 1 || repeats < 1) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (y == NULL || x == NULL) return FASTNN_EINVAL;
    FASTNN_FOR_RANGE(n, n * repeats * F, n_threads, lo, hi, {
        int64_t i, r;
        for (i = lo; i < hi; i++)
            for (r = 0; r < repeats; r++) memcpy(y + (i * repeats + r) * F, x + i * F, (size_t)F * sizeof(REAL));
    });
    return FASTNN_OK;
}

int SFX(fastnn_repeat_backward)(REAL *dx, const REAL *dy, int64_t n, int64_t F, int64_t repeats, int n_threads)
{
    if (n < 0 || F < 1 || repeats < 1) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (dx == NULL || dy == NULL) return FASTNN_EINVAL;
    /* per sample: the first repeat, then the others added in order (NumPy's sum over that axis) */
    FASTNN_FOR_RANGE(n, n * repeats * F, n_threads, lo, hi, {
        int64_t i, r, j;
        for (i = lo; i < hi; i++) {
            REAL *FASTNN_RESTRICT out = dx + i * F;
            const REAL *src = dy + i * repeats * F;
            memcpy(out, src, (size_t)F * sizeof(REAL));
            for (r = 1; r < repeats; r++)
                for (j = 0; j < F; j++) out[j] += src[r * F + j];
        }
    });
    return FASTNN_OK;
}
