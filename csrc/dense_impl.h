/* dense_impl.h -- template body of dense.c, instantiated per REAL by fastnn_real.h.
 *
 * Every output element is a sum taken in a fixed order (bias first, then p = 0, 1, ..., d_in - 1), whatever
 * the blocking or the number of threads, so results do not depend on n_threads. */
#include <string.h>
#include "act_rows.h"
#include "gemm_rows.h" /* gemv_row, gemm_block and the tile constants, shared with rnn.c */

FASTNN_SIMD_CLONES
static REAL SFX(dot)(const REAL *FASTNN_RESTRICT u, const REAL *FASTNN_RESTRICT v, int64_t len)
{
    REAL lane[DOT_LANES] = {0};
    int64_t j, l, full = len - len % DOT_LANES;
    for (j = 0; j < full; j += DOT_LANES)
        for (l = 0; l < DOT_LANES; l++) lane[l] += u[j + l] * v[j + l];
    for (; j < len; j++) lane[0] += u[j] * v[j];
    if (full == 0) return lane[0]; /* short vectors: the other lanes are still zero */
    REAL s = 0;
    for (l = 0; l < DOT_LANES; l++) s += lane[l];
    return s;
}

/* Backward for one sample (online training): dW = outer(x, dz), db = dz, dx = W dz. Serial and direct: the
 * tiling of the batch path only costs time at this size. The summation order is the batch path's; with FMA
 * contraction a sum may still round differently in its last bit. */
FASTNN_SIMD_CLONES
static void SFX(dense_backward_one)(REAL *dx, REAL *FASTNN_RESTRICT dW, REAL *db, const REAL *FASTNN_RESTRICT dz,
                                    const REAL *x, const REAL *W, int64_t d_in, int64_t d_out)
{
    int64_t p, j;
    for (p = 0; p < d_in; p++) {
        REAL xp = x[p];
        REAL *FASTNN_RESTRICT row = dW + p * d_out;
        for (j = 0; j < d_out; j++) row[j] = xp * dz[j];
    }
    for (j = 0; j < d_out; j++) db[j] = dz[j];
    if (dx == NULL) return;
    if (d_out < DOT_LANES) {
        /* short rows: the order dot() uses for them, without a call per row */
        for (p = 0; p < d_in; p++) {
            const REAL *w = W + p * d_out;
            REAL acc = 0;
            for (j = 0; j < d_out; j++) acc += dz[j] * w[j];
            dx[p] = acc;
        }
    } else {
        for (p = 0; p < d_in; p++) dx[p] = SFX(dot)(dz, W + p * d_out, d_out);
    }
}

/* Rows [lo, hi) of y = act(x @ W + b). */
static void SFX(dense_forward_rows)(REAL *y, const REAL *x, const REAL *W, const REAL *b, int64_t lo,
                                    int64_t hi, int64_t d_in, int64_t d_out, int act, REAL alpha)
{
    int64_t i0, r, j;
    for (i0 = lo; i0 < hi; i0 += DENSE_ROW_BLOCK) {
        int64_t rows = hi - i0 < DENSE_ROW_BLOCK ? hi - i0 : DENSE_ROW_BLOCK;
        REAL *yb = y + i0 * d_out;
        for (r = 0; r < rows; r++)
            for (j = 0; j < d_out; j++) yb[r * d_out + j] = b ? b[j] : (REAL)0;
        SFX(gemm_block)(yb, x + i0 * d_in, d_in, 1, W, rows, d_in, d_out);
        /* fused activation while the rows are still in cache */
        if (act == FASTNN_ACT_SOFTMAX)
            for (r = 0; r < rows; r++) SFX(softmax_row)(yb + r * d_out, d_out);
        else if (act != FASTNN_ACT_LINEAR)
            SFX(act_apply)(yb, rows * d_out, act, alpha);
    }
}

static int SFX(check_dense)(const REAL *y, const REAL *x, const REAL *W, int64_t n, int64_t d_in,
                            int64_t d_out)
{
    if (n < 0 || d_in < 1 || d_out < 1) return FASTNN_ESHAPE;
    if (n > 0 && (y == NULL || x == NULL)) return FASTNN_EINVAL;
    if (W == NULL) return FASTNN_EINVAL;
    return FASTNN_OK;
}

static int SFX(check_act_code)(int act, double alpha)
{
    if (act < FASTNN_ACT_LINEAR || act > FASTNN_ACT_EXP) return FASTNN_EINVAL;
    if (act == FASTNN_ACT_LEAKY_RELU && !(alpha > 0)) return FASTNN_EINVAL;
    return FASTNN_OK;
}

int SFX(fastnn_dense_forward)(REAL *y, const REAL *x, const REAL *W, const REAL *b, int64_t n, int64_t d_in,
                              int64_t d_out, int act, double alpha, int n_threads)
{
    int rc = SFX(check_dense)(y, x, W, n, d_in, d_out);
    if (rc == FASTNN_OK) rc = SFX(check_act_code)(act, alpha);
    if (rc != FASTNN_OK) return rc;
    if (n > 1 && n * d_in * d_out >= FASTNN_BLAS_MIN_WORK) {
        /* one product with the bias as its start and the activation on each finished tile; softmax needs
         * whole rows, so it gets its own pass */
        fastnn_gemm_epilogue e = {act == FASTNN_ACT_SOFTMAX ? FASTNN_ACT_LINEAR : act, alpha};
        rc = SFX(fastnn_gemm)(FASTNN_GEMM_AUTO, 0, 0, n, d_out, d_in, x, W, 0, y, b, &e, n_threads);
        if (rc == FASTNN_OK && act == FASTNN_ACT_SOFTMAX) rc = SFX(fastnn_act_forward)(y, n, d_out, act, alpha, n_threads);
        return rc;
    }
    REAL alpha_r = (REAL)alpha;
    FASTNN_FOR_RANGE(n, n * d_in * d_out, n_threads, lo, hi,
                     SFX(dense_forward_rows)(y, x, W, b, lo, hi, d_in, d_out, act, alpha_r));
    return FASTNN_OK;
}

int SFX(fastnn_dense_forward_single)(REAL *y, const REAL *x, const REAL *W, const REAL *b, int64_t d_in,
                                     int64_t d_out, int act, double alpha)
{
    int rc = SFX(check_dense)(y, x, W, 1, d_in, d_out);
    if (rc == FASTNN_OK) rc = SFX(check_act_code)(act, alpha);
    if (rc != FASTNN_OK) return rc;
    SFX(dense_forward_rows)(y, x, W, b, 0, 1, d_in, d_out, act, (REAL)alpha);
    return FASTNN_OK;
}

/* db[lo:hi] = column sums of dz (n, d_out) over those columns, summed in row order */
static void SFX(column_sums)(REAL *db, const REAL *dz, int64_t n, int64_t d_out, int64_t lo, int64_t hi)
{
    int64_t i, j;
    for (j = lo; j < hi; j++) db[j] = 0;
    for (i = 0; i < n; i++) {
        const REAL *dzi = dz + i * d_out;
        for (j = lo; j < hi; j++) db[j] += dzi[j];
    }
}

/* fastnn_dense_backward, and when the product for dx runs as one (large sizes) and dx_mask is given, dx times
 * the derivative of the layer below (dx_mask's act at its deriv_of) in the same pass: *masked says whether it
 * was done (else the caller applies fastnn_act_backward). */
int SFX(fastnn_dense_backward_masked)(REAL *dx, REAL *dW, REAL *db, const REAL *dz, const REAL *x, const REAL *W,
                                      int64_t n, int64_t d_in, int64_t d_out, const fastnn_gemm_epilogue *dx_mask,
                                      int *masked, int n_threads)
{
    *masked = 0;
    if (n < 1 || d_in < 1 || d_out < 1) return FASTNN_ESHAPE;
    if (dW == NULL || db == NULL || dz == NULL || x == NULL || (dx != NULL && W == NULL)) return FASTNN_EINVAL;

    if (n == 1) {
        SFX(dense_backward_one)(dx, dW, db, dz, x, W, d_in, d_out);
        return FASTNN_OK;
    }
    if (n * d_in * d_out >= FASTNN_BLAS_MIN_WORK) {
        /* dW = x^T dz and dx = dz W^T are independent, and db's column sums ride along: one parallel region for
         * the whole backward pass, so a sleeping team is woken once instead of three times */
        int eng_w = FASTNN_GEMM_AUTO, eng_x = FASTNN_GEMM_AUTO, nt_w, nt_x = 0, team;
        int rc = SFX(fastnn_gemm_prepare)(&eng_w, &nt_w, 1, 0, d_in, d_out, n, x, dz, dW, NULL, n_threads);
        if (rc == FASTNN_OK && dx != NULL)
            rc = SFX(fastnn_gemm_prepare)(&eng_x, &nt_x, 0, 1, n, d_in, d_out, dz, W, dx, dx_mask, n_threads);
        if (rc != FASTNN_OK) return rc;
        team = nt_w > nt_x ? nt_w : nt_x;
        if (team <= 1) {
            SFX(fastnn_gemm_share)(eng_w, 1, 0, 1, 0, d_in, d_out, n, x, dz, 0, dW, NULL, NULL);
            SFX(column_sums)(db, dz, n, d_out, 0, d_out);
            if (dx != NULL) SFX(fastnn_gemm_share)(eng_x, 1, 0, 0, 1, n, d_in, d_out, dz, W, 0, dx, NULL, dx_mask);
        } else {
            FASTNN_PRAGMA(omp parallel num_threads(team))
            {
                int t = omp_get_thread_num(), got = omp_get_num_threads();
                int64_t lo, hi;
                SFX(fastnn_gemm_share)(eng_w, nt_w < got ? nt_w : got, t, 1, 0, d_in, d_out, n, x, dz, 0, dW, NULL,
                                       NULL);
                fastnn_chunk(d_out, t, got, &lo, &hi);
                SFX(column_sums)(db, dz, n, d_out, lo, hi);
                if (dx != NULL)
                    SFX(fastnn_gemm_share)(eng_x, nt_x < got ? nt_x : got, t, 0, 1, n, d_in, d_out, dz, W, 0, dx,
                                           NULL, dx_mask);
            }
        }
        *masked = dx != NULL && dx_mask != NULL;
        return FASTNN_OK;
    }

    /* dW = x^T dz, split over rows of dW (inputs), so each thread owns whole rows */
    FASTNN_FOR_RANGE(d_in, n * d_in * d_out, n_threads, lo, hi, {
        int64_t p0, j;
        for (p0 = lo; p0 < hi; p0 += DENSE_ROW_BLOCK) {
            int64_t rows = hi - p0 < DENSE_ROW_BLOCK ? hi - p0 : DENSE_ROW_BLOCK;
            for (j = 0; j < rows * d_out; j++) dW[p0 * d_out + j] = 0;
            SFX(gemm_block)(dW + p0 * d_out, x + p0, 1, d_in, dz, rows, n, d_out);
        }
    });

    /* db = column sums of dz, split over columns */
    FASTNN_FOR_RANGE(d_out, n * d_out, n_threads, lo, hi, SFX(column_sums)(db, dz, n, d_out, lo, hi));

    /* dx = dz W^T, split over samples */
    if (dx != NULL) {
        FASTNN_FOR_RANGE(n, n * d_in * d_out, n_threads, lo, hi, {
            int64_t i, p;
            for (i = lo; i < hi; i++)
                for (p = 0; p < d_in; p++) dx[i * d_in + p] = SFX(dot)(dz + i * d_out, W + p * d_out, d_out);
        });
    }
    return FASTNN_OK;
}

int SFX(fastnn_dense_backward)(REAL *dx, REAL *dW, REAL *db, const REAL *dz, const REAL *x, const REAL *W,
                               int64_t n, int64_t d_in, int64_t d_out, int n_threads)
{
    int masked;
    return SFX(fastnn_dense_backward_masked)(dx, dW, db, dz, x, W, n, d_in, d_out, NULL, &masked, n_threads);
}
