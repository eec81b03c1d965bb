/* dense_impl.h -- template body of dense.c, instantiated per REAL by fastnn_real.h.
 *
 * Every output element is a sum taken in a fixed order (bias first, then p = 0, 1, ..., d_in - 1), whatever
 * the blocking or the number of threads, so results do not depend on n_threads. */
#include <string.h>
#include "act_rows.h"

#ifndef FASTNN_DENSE_CONSTANTS
#define FASTNN_DENSE_CONSTANTS
#define DENSE_ROW_BLOCK 4   /* rows of the output updated together: each loaded weight is used 4 times */
#define DENSE_TILE 32       /* columns whose partial sums stay in registers while d_in streams past */
#define DOT_LANES 8         /* independent partial sums, so the dot product vectorises without -ffast-math */
#endif

/* One row of C, columns [j0, j0 + WIDTH): c[j] += sum_p a[p * a_cs] * B[p, j], the partial sums held in a local
 * array of compile-time size that the compiler keeps in vector registers for the whole p loop. */
#define DENSE_ROW_TILE(WIDTH)                                                                        \
    do {                                                                                             \
        REAL acc[WIDTH];                                                                             \
        for (j = 0; j < WIDTH; j++) acc[j] = c[j0 + j];                                              \
        for (p = 0; p < k; p++) {                                                                    \
            const REAL *FASTNN_RESTRICT w = B + p * m + j0;                                          \
            REAL a = a_row[p * a_cs];                                                                \
            for (j = 0; j < WIDTH; j++) acc[j] += a * w[j];                                          \
        }                                                                                            \
        for (j = 0; j < WIDTH; j++) c[j0 + j] = acc[j];                                              \
    } while (0)

#if defined(__GNUC__)
/* GCC/Clang vector of 64 bytes (16 floats, 8 doubles): one AVX-512 register, two AVX2 ones. Named vector
 * variables stay in registers, where a local array of the same size is spilled to the stack once it passes
 * the compiler's scalarisation limit (perf annotate of the old one-row tile: every multiply-add loaded and
 * stored its partial sums through the stack). */
typedef REAL SFX(vec64) __attribute__((vector_size(64)));
#define VEC_LEN ((int64_t)(64 / sizeof(REAL)))

/* c[:m] += sum_p a[p * a_cs] * B[p, :m] for one row of C, B row-major (k, m): four vector accumulators (64 floats)
 * held while the k rows of B stream past, then single vectors, then scalars. Each element is summed in the order
 * p = 0, 1, ..., k - 1, as on every other path. */
FASTNN_SIMD_CLONES
static void SFX(gemv_row)(REAL *FASTNN_RESTRICT c, const REAL *a, int64_t a_cs, const REAL *FASTNN_RESTRICT B,
                          int64_t k, int64_t m)
{
    int64_t j0 = 0, j, p;
    for (; j0 + 4 * VEC_LEN <= m; j0 += 4 * VEC_LEN) {
        SFX(vec64) acc0, acc1, acc2, acc3, w0, w1, w2, w3;
        memcpy(&acc0, c + j0, 64);
        memcpy(&acc1, c + j0 + VEC_LEN, 64);
        memcpy(&acc2, c + j0 + 2 * VEC_LEN, 64);
        memcpy(&acc3, c + j0 + 3 * VEC_LEN, 64);
        for (p = 0; p < k; p++) {
            const REAL *w = B + p * m + j0;
            REAL ap = a[p * a_cs];
            memcpy(&w0, w, 64);
            memcpy(&w1, w + VEC_LEN, 64);
            memcpy(&w2, w + 2 * VEC_LEN, 64);
            memcpy(&w3, w + 3 * VEC_LEN, 64);
            acc0 += ap * w0;
            acc1 += ap * w1;
            acc2 += ap * w2;
            acc3 += ap * w3;
        }
        memcpy(c + j0, &acc0, 64);
        memcpy(c + j0 + VEC_LEN, &acc1, 64);
        memcpy(c + j0 + 2 * VEC_LEN, &acc2, 64);
        memcpy(c + j0 + 3 * VEC_LEN, &acc3, 64);
    }
    for (; j0 + VEC_LEN <= m; j0 += VEC_LEN) {
        SFX(vec64) acc, w0;
        memcpy(&acc, c + j0, 64);
        for (p = 0; p < k; p++) {
            memcpy(&w0, B + p * m + j0, 64);
            acc += a[p * a_cs] * w0;
        }
        memcpy(c + j0, &acc, 64);
    }
    if (j0 < m) {
        for (p = 0; p < k; p++) {
            const REAL *w = B + p * m;
            REAL ap = a[p * a_cs];
            for (j = j0; j < m; j++) c[j] += ap * w[j];
        }
    }
}
#undef VEC_LEN
#define FASTNN_HAVE_GEMV_ROW 1
#endif

/* C[r, :m] += sum_p A(r, p) * B[p, :m] for the `rows` (<= DENSE_ROW_BLOCK) rows of C starting at C (row
 * length m), where A(r, p) = A[r * a_rs + p * a_cs]. B is row-major (k, m).
 *
 * Full tiles keep their partial sums in registers while the k rows of B stream past: 4 rows x DENSE_TILE
 * columns, so each loaded weight feeds 4 multiply-adds, or for fewer rows one row x 2 tiles. Each element is
 * still summed in the order p = 0, 1, ..., k - 1 on every path. Leftover columns take the plain loop. */
FASTNN_SIMD_CLONES
static void SFX(gemm_block)(REAL *C, const REAL *A, int64_t a_rs, int64_t a_cs, const REAL *B,
                            int64_t rows, int64_t k, int64_t m)
{
    int64_t j0, j, p, r, tiled = m - m % DENSE_TILE;
    if (rows == DENSE_ROW_BLOCK) {
        for (j0 = 0; j0 < tiled; j0 += DENSE_TILE) {
            REAL acc0[DENSE_TILE], acc1[DENSE_TILE], acc2[DENSE_TILE], acc3[DENSE_TILE];
            for (j = 0; j < DENSE_TILE; j++) {
                acc0[j] = C[j0 + j];
                acc1[j] = C[m + j0 + j];
                acc2[j] = C[2 * m + j0 + j];
                acc3[j] = C[3 * m + j0 + j];
            }
            for (p = 0; p < k; p++) {
                const REAL *FASTNN_RESTRICT w = B + p * m + j0;
                const REAL *a = A + p * a_cs;
                REAL a0 = a[0], a1 = a[a_rs], a2 = a[2 * a_rs], a3 = a[3 * a_rs];
                for (j = 0; j < DENSE_TILE; j++) {
                    acc0[j] += a0 * w[j];
                    acc1[j] += a1 * w[j];
                    acc2[j] += a2 * w[j];
                    acc3[j] += a3 * w[j];
                }
            }
            for (j = 0; j < DENSE_TILE; j++) {
                C[j0 + j] = acc0[j];
                C[m + j0 + j] = acc1[j];
                C[2 * m + j0 + j] = acc2[j];
                C[3 * m + j0 + j] = acc3[j];
            }
        }
    } else {
#ifdef FASTNN_HAVE_GEMV_ROW
        for (r = 0; r < rows; r++) SFX(gemv_row)(C + r * m, A + r * a_rs, a_cs, B, k, m);
        return;
#else
        for (r = 0; r < rows; r++) {
            REAL *c = C + r * m;
            const REAL *a_row = A + r * a_rs;
            for (j0 = 0; j0 + 2 * DENSE_TILE <= tiled; j0 += 2 * DENSE_TILE) DENSE_ROW_TILE(2 * DENSE_TILE);
            for (; j0 < tiled; j0 += DENSE_TILE) DENSE_ROW_TILE(DENSE_TILE);
        }
#endif
    }
    /* leftover columns [tiled, m) */
    for (r = 0; r < rows && tiled < m; r++) {
        REAL *FASTNN_RESTRICT c = C + r * m + tiled;
        for (p = 0; p < k; p++) {
            const REAL *FASTNN_RESTRICT w = B + p * m + tiled;
            REAL a = A[r * a_rs + p * a_cs];
            for (j = 0; j < m - tiled; j++) c[j] += a * w[j];
        }
    }
}

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

/* The block [r0, r1) x [c0, c1) of y = act(x @ W + b) through the BLAS: y = bias, y += x W (beta 1), then the
 * element-wise activation while the block is still in cache. Softmax is left to the caller (it needs whole rows). */
static void SFX(forward_blas_block)(REAL *y, const REAL *x, const REAL *W, const REAL *b, int64_t n, int64_t d_in,
                                    int64_t d_out, int act, REAL alpha, int64_t r0, int64_t r1, int64_t c0,
                                    int64_t c1)
{
    int64_t i, j;
    if (r0 >= r1 || c0 >= c1) return;
    for (i = r0; i < r1; i++)
        for (j = c0; j < c1; j++) y[i * d_out + j] = b ? b[j] : (REAL)0;
    SFX(fastnn_blas_gemm_block)(0, 0, n, d_out, d_in, x, W, (REAL)1, y, r0, r1, c0, c1);
    if (act == FASTNN_ACT_SOFTMAX || act == FASTNN_ACT_LINEAR) return;
    if (c0 == 0 && c1 == d_out)
        SFX(act_apply)(y + r0 * d_out, (r1 - r0) * d_out, act, alpha);
    else
        for (i = r0; i < r1; i++) SFX(act_apply)(y + i * d_out + c0, c1 - c0, act, alpha);
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
    if (act < FASTNN_ACT_LINEAR || act > FASTNN_ACT_SOFTMAX) return FASTNN_EINVAL;
    if (act == FASTNN_ACT_LEAKY_RELU && !(alpha > 0)) return FASTNN_EINVAL;
    return FASTNN_OK;
}

int SFX(fastnn_dense_forward)(REAL *y, const REAL *x, const REAL *W, const REAL *b, int64_t n, int64_t d_in,
                              int64_t d_out, int act, double alpha, int n_threads)
{
    int rc = SFX(check_dense)(y, x, W, n, d_in, d_out);
    if (rc == FASTNN_OK) rc = SFX(check_act_code)(act, alpha);
    if (rc != FASTNN_OK) return rc;
    REAL alpha_r = (REAL)alpha;
    int by_rows, nt = 0;
    if (n > 1 && n * d_in * d_out >= FASTNN_BLAS_MIN_WORK) nt = fastnn_blas_plan(n, d_out, d_in, n_threads, &by_rows);
    if (nt == 1 && !fastnn_blas_split()) {
        /* the BLAS runs its own threads: fill and activate over fastnn's around one call from serial code */
        FASTNN_FOR_RANGE(n, n * d_out, n_threads, lo, hi, {
            int64_t i, j;
            for (i = lo; i < hi; i++)
                for (j = 0; j < d_out; j++) y[i * d_out + j] = b ? b[j] : (REAL)0;
        });
        SFX(fastnn_blas_gemm_block)(0, 0, n, d_out, d_in, x, W, (REAL)1, y, 0, n, 0, d_out);
        return SFX(fastnn_act_forward)(y, n, d_out, act, alpha, n_threads);
    } else if (nt == 1) {
        SFX(forward_blas_block)(y, x, W, b, n, d_in, d_out, act, alpha_r, 0, n, 0, d_out);
    } else if (nt > 1) {
        /* one region: each thread fills, multiplies and activates its own band of y */
        FASTNN_PRAGMA(omp parallel num_threads(nt))
        {
            int64_t r0, r1, c0, c1;
            fastnn_blas_own_block(n, d_out, by_rows, &r0, &r1, &c0, &c1);
            SFX(forward_blas_block)(y, x, W, b, n, d_in, d_out, act, alpha_r, r0, r1, c0, c1);
        }
    }
    if (nt > 0)  /* softmax needs whole rows: its own pass once every band is done */
        return act == FASTNN_ACT_SOFTMAX ? SFX(fastnn_act_forward)(y, n, d_out, act, alpha, n_threads) : FASTNN_OK;
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

int SFX(fastnn_dense_backward)(REAL *dx, REAL *dW, REAL *db, const REAL *dz, const REAL *x, const REAL *W,
                               int64_t n, int64_t d_in, int64_t d_out, int n_threads)
{
    if (n < 1 || d_in < 1 || d_out < 1) return FASTNN_ESHAPE;
    if (dW == NULL || db == NULL || dz == NULL || x == NULL || (dx != NULL && W == NULL)) return FASTNN_EINVAL;

    if (n == 1) {
        SFX(dense_backward_one)(dx, dW, db, dz, x, W, d_in, d_out);
        return FASTNN_OK;
    }
    int use_blas = n * d_in * d_out >= FASTNN_BLAS_MIN_WORK && fastnn_have_blas();

    /* dW = x^T dz, split over rows of dW (inputs), so each thread owns whole rows */
    if (use_blas)
        SFX(fastnn_blas_gemm)(1, 0, d_in, d_out, n, x, dz, (REAL)0, dW, n_threads);
    else FASTNN_FOR_RANGE(d_in, n * d_in * d_out, n_threads, lo, hi, {
        int64_t p0, j;
        for (p0 = lo; p0 < hi; p0 += DENSE_ROW_BLOCK) {
            int64_t rows = hi - p0 < DENSE_ROW_BLOCK ? hi - p0 : DENSE_ROW_BLOCK;
            for (j = 0; j < rows * d_out; j++) dW[p0 * d_out + j] = 0;
            SFX(gemm_block)(dW + p0 * d_out, x + p0, 1, d_in, dz, rows, n, d_out);
        }
    });

    /* db = column sums of dz, split over columns */
    FASTNN_FOR_RANGE(d_out, n * d_out, n_threads, lo, hi, {
        int64_t i, j;
        for (j = lo; j < hi; j++) db[j] = 0;
        for (i = 0; i < n; i++) {
            const REAL *dzi = dz + i * d_out;
            for (j = lo; j < hi; j++) db[j] += dzi[j];
        }
    });

    /* dx = dz W^T, split over samples */
    if (dx != NULL && use_blas) {
        SFX(fastnn_blas_gemm)(0, 1, n, d_in, d_out, dz, W, (REAL)0, dx, n_threads);
    } else if (dx != NULL) {
        FASTNN_FOR_RANGE(n, n * d_in * d_out, n_threads, lo, hi, {
            int64_t i, p;
            for (i = lo; i < hi; i++)
                for (p = 0; p < d_in; p++) dx[i * d_in + p] = SFX(dot)(dz + i * d_out, W + p * d_out, d_out);
        });
    }
    return FASTNN_OK;
}
