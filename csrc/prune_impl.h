/* prune_impl.h -- template body of prune.c, instantiated per REAL by fastnn_real.h. */
#include "act_rows.h"

int SFX(fastnn_mask_apply)(REAL *x, const uint8_t *keep, int64_t n, int n_threads)
{
    if (n < 0) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (x == NULL || keep == NULL) return FASTNN_EINVAL;
    FASTNN_FOR_RANGE(n, n, n_threads, lo, hi, {
        int64_t k;
        for (k = lo; k < hi; k++) x[k] = keep[k] ? x[k] : (REAL)0;
    });
    return FASTNN_OK;
}

/* Outputs [o_lo, o_hi) of rows [r_lo, r_hi): y[r, o] = b[o] + sum over row o of Wt of data[k] x[r, indices[k]],
 * in storage order, four rows at a time so each stored value and index is loaded once per four samples. Each
 * output is one sum in a fixed order, so the result does not depend on how rows and outputs are split. */
static void SFX(csr_rows)(REAL *y, const REAL *x, const fastnn_csr *Wt, const REAL *b, int64_t r_lo, int64_t r_hi,
                          int64_t o_lo, int64_t o_hi)
{
    const REAL *data = (const REAL *)Wt->data;
    const int64_t *idx = Wt->indices, *ptr = Wt->indptr;
    int64_t d_in = Wt->n_cols, d_out = Wt->n_rows, r, o, k;
    for (r = r_lo; r + 4 <= r_hi; r += 4) {
        const REAL *x0 = x + r * d_in, *x1 = x0 + d_in, *x2 = x1 + d_in, *x3 = x2 + d_in;
        for (o = o_lo; o < o_hi; o++) {
            REAL bias = b ? b[o] : (REAL)0;
            REAL a0 = bias, a1 = bias, a2 = bias, a3 = bias;
            for (k = ptr[o]; k < ptr[o + 1]; k++) {
                REAL v = data[k];
                int64_t c = idx[k];
                a0 += v * x0[c];
                a1 += v * x1[c];
                a2 += v * x2[c];
                a3 += v * x3[c];
            }
            y[r * d_out + o] = a0;
            y[(r + 1) * d_out + o] = a1;
            y[(r + 2) * d_out + o] = a2;
            y[(r + 3) * d_out + o] = a3;
        }
    }
    for (; r < r_hi; r++) {
        const REAL *xr = x + r * d_in;
        for (o = o_lo; o < o_hi; o++) {
            REAL a = b ? b[o] : (REAL)0;
            for (k = ptr[o]; k < ptr[o + 1]; k++) a += data[k] * xr[idx[k]];
            y[r * d_out + o] = a;
        }
    }
}

int SFX(fastnn_sparse_dense_forward)(REAL *y, const REAL *x, const fastnn_csr *Wt, const REAL *b, int64_t n,
                                     int act, double alpha, int n_threads)
{
    if (Wt == NULL || Wt->indptr == NULL) return FASTNN_EINVAL;
    if (n < 0 || Wt->n_rows < 1 || Wt->n_cols < 1 || Wt->nnz < 0) return FASTNN_ESHAPE;
    if (Wt->nnz > 0 && (Wt->data == NULL || Wt->indices == NULL)) return FASTNN_EINVAL;
    if (act < FASTNN_ACT_LINEAR || act > FASTNN_ACT_EXP) return FASTNN_EINVAL;
    if (n == 0) return FASTNN_OK;
    if (y == NULL || x == NULL) return FASTNN_EINVAL;
    int64_t d_out = Wt->n_rows, work = n * (Wt->nnz + d_out);
    if (n == 1) /* one sample: split the outputs */
        FASTNN_FOR_RANGE(d_out, work, n_threads, lo, hi, SFX(csr_rows)(y, x, Wt, b, 0, 1, lo, hi));
    else
        FASTNN_FOR_RANGE(n, work, n_threads, lo, hi, SFX(csr_rows)(y, x, Wt, b, lo, hi, 0, d_out));
    if (act == FASTNN_ACT_LINEAR) return FASTNN_OK;
    FASTNN_FOR_RANGE(n, n * d_out, n_threads, lo, hi, {
        int64_t r;
        for (r = lo; r < hi; r++) {
            if (act == FASTNN_ACT_SOFTMAX) SFX(softmax_row)(y + r * d_out, d_out);
            else SFX(act_apply)(y + r * d_out, d_out, act, (REAL)alpha);
        }
    });
    return FASTNN_OK;
}
