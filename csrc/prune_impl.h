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
 * four rows at a time (in storage order, each stored value and index loaded once per four samples), the rows
 * left over one at a time. Each output is summed in an order fixed by r_hi - r_lo's blocking of the batch only,
 * never by the number of threads (they split whole blocks of four rows, or the outputs of one row). */
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
        /* a row on its own (one sample, or the last rows of a batch): four partial sums over the stored values
         * (k mod 4), so the additions are not one chain of dependent latencies; combined in a fixed order */
        const REAL *xr = x + r * d_in;
        for (o = o_lo; o < o_hi; o++) {
            REAL p0 = 0, p1 = 0, p2 = 0, p3 = 0;
            int64_t end = ptr[o + 1];
            for (k = ptr[o]; k + 4 <= end; k += 4) {
                p0 += data[k] * xr[idx[k]];
                p1 += data[k + 1] * xr[idx[k + 1]];
                p2 += data[k + 2] * xr[idx[k + 2]];
                p3 += data[k + 3] * xr[idx[k + 3]];
            }
            for (; k < end; k++) p0 += data[k] * xr[idx[k]];
            y[r * d_out + o] = (b ? b[o] : (REAL)0) + ((p0 + p1) + (p2 + p3));
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
        /* whole blocks of four rows per thread: the last n % 4 rows are summed singly whatever n_threads is */
        FASTNN_FOR_RANGE((n + 3) / 4, work, n_threads, lo, hi,
                         SFX(csr_rows)(y, x, Wt, b, 4 * lo, 4 * hi < n ? 4 * hi : n, 0, d_out));
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
