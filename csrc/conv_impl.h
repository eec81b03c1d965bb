/* conv_impl.h -- template body of conv.c, instantiated per REAL by fastnn_real.h.
 *
 * Layout: a batch of images is NCHW. The im2col columns are one row per weight (in_c, kh, kw) and one column
 * per output position: cols (K, P) for one sample, K = in_c kh kw and P = out_h out_w. Every row is a shifted
 * copy of an image row (contiguous for stride 1), and the products run along positions, the long axis:
 *   forward  y[s, o, :]  = act(b[o] + sum_q W[o, q] cols_s[q, :])
 *   backward dW[o, q]    = sum_s dz[s, o, :] . cols_s[q, :]      db[o] = sum of dz[:, o, :]
 *            dcols_s     = W^T dz[s]                             dx[s] = col2im(dcols_s)
 * Two ways to compute them:
 *   - direct (few filters or small K: LeNet's 6 and 16 filters): each thread builds the columns of one sample
 *     at a time in its own slot of the cols workspace (K P values, resident in cache) and uses them at once; the
 *     backward pass rebuilds them from the layer input. A whole-batch im2col would write and read back megabytes
 *     for products too skinny to hide it, and a BLAS call there spends more time packing than multiplying.
 *   - BLAS (many filters and large K): one sample at a time, its columns in cache and one GEMM per product
 *     (y_s = W cols_s lands in NCHW order as it is; dW accumulates over the samples in order, so the sums do
 *     not depend on the thread count; the GEMMs are shared out over the threads). Whole-batch columns would be
 *     tens of megabytes written and read back (cnn_mnist's second layer: 288 x 36,864 floats). */
#include "act_rows.h"

#ifndef FASTNN_CONV_CONSTANTS
#define FASTNN_CONV_CONSTANTS
#define CONV_BLOCK 256        /* positions whose sums stay in L1 while the K rows of cols stream past */
#define CONV_LANES 16         /* independent partial sums per dot product, so it vectorises without -ffast-math */
#define CONV_BLAS_MIN_FILTERS 32
#define CONV_BLAS_MIN_K 64
#endif

/* C (m, n) = op(A) op(B) + beta C, row-major (beta 0 or 1); trans_a: A stored (k, m), trans_b: B stored (n, k).
 * Through the BLAS when it takes the sizes, else plain loops that sum every element in the order p = 0..k-1. */
static void SFX(conv_gemm)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                           const REAL *B, REAL beta, REAL *C, int n_threads)
{
    if (m * n * k >= FASTNN_BLAS_MIN_WORK &&
        SFX(fastnn_gemm)(FASTNN_GEMM_AUTO, trans_a, trans_b, m, n, k, A, B, beta != 0, C, NULL, NULL, n_threads) ==
            FASTNN_OK)
        return;
    FASTNN_FOR_RANGE(m, 2 * m * n * k, n_threads, lo, hi, {
        int64_t i, j, p;
        for (i = lo; i < hi; i++) {
            REAL *FASTNN_RESTRICT c = C + i * n;
            if (beta == 0)
                for (j = 0; j < n; j++) c[j] = 0;
            for (p = 0; p < k; p++) {
                REAL a = trans_a ? A[p * m + i] : A[i * k + p];
                if (trans_b)
                    for (j = 0; j < n; j++) c[j] += a * B[j * k + p];
                else {
                    const REAL *FASTNN_RESTRICT b = B + p * n;
                    for (j = 0; j < n; j++) c[j] += a * b[j];
                }
            }
        }
    });
}

/* The direct loops or the BLAS for this geometry (see the top of this file). */
static int SFX(conv_uses_blas)(const fastnn_window *g)
{
    const int64_t K = g->in_c * g->kh * g->kw, P = g->out_h * g->out_w;
    return fastnn_have_blas() && g->out_c >= CONV_BLAS_MIN_FILTERS && K >= CONV_BLAS_MIN_K && P * K <= INT32_MAX;
}


/* Output columns [*lo, *hi) of a window row whose input column ox * sw - pw + j falls inside [0, w). */
static inline void SFX(inside_columns)(int64_t ow, int64_t sw, int64_t pw, int64_t j, int64_t w, int64_t *lo,
                                       int64_t *hi)
{
    int64_t first = pw - j;  /* ox * sw >= first */
    int64_t a = first <= 0 ? 0 : (first + sw - 1) / sw;
    int64_t last = w - 1 + pw - j;  /* ox * sw <= last */
    int64_t b = last < 0 ? 0 : last / sw + 1;
    *lo = a < ow ? a : ow;
    *hi = b < ow ? b : ow;
    if (*hi < *lo) *hi = *lo;
}

FASTNN_SIMD_CLONES
/* Row q of one sample's columns: dst[0:P] = the input values under window offset q at every output position
 * (zeros in the padding). x: that sample's image (in_c, in_h, in_w). */
static void SFX(im2col_row)(REAL *FASTNN_RESTRICT dst, const REAL *x, int64_t q, const fastnn_window *g)
{
    const int64_t H = g->in_h, Wd = g->in_w, kh = g->kh, kw = g->kw, OH = g->out_h, OW = g->out_w;
    const int64_t c = q / (kh * kw), i = (q / kw) % kh, j = q % kw;
    int64_t oy, ox, ox_lo, ox_hi;
    SFX(inside_columns)(OW, g->sw, g->pad_w, j, Wd, &ox_lo, &ox_hi);
    const REAL *plane = x + c * H * Wd;
    for (oy = 0; oy < OH; oy++, dst += OW) {
        int64_t yy = oy * g->sh - g->pad_h + i;
        if (yy < 0 || yy >= H) {
            for (ox = 0; ox < OW; ox++) dst[ox] = 0;
            continue;
        }
        const REAL *src = plane + yy * Wd - g->pad_w + j;
        for (ox = 0; ox < ox_lo; ox++) dst[ox] = 0;
        if (g->sw == 1)
            for (ox = ox_lo; ox < ox_hi; ox++) dst[ox] = src[ox];
        else
            for (ox = ox_lo; ox < ox_hi; ox++) dst[ox] = src[ox * g->sw];
        for (ox = ox_hi; ox < OW; ox++) dst[ox] = 0;
    }
}

/* One sample's columns (K, P) into cols, its rows shared out over the threads. */
static void SFX(im2col_sample)(REAL *cols, const REAL *x_s, const fastnn_window *g, int n_threads)
{
    const int64_t P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw;
    FASTNN_FOR_RANGE(K, K * P, n_threads, lo, hi, {
        int64_t q;
        for (q = lo; q < hi; q++) SFX(im2col_row)(cols + q * P, x_s, q, g);
    });
}

int SFX(fastnn_im2col)(REAL *cols, const REAL *x, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (cols == NULL || x == NULL) return FASTNN_EINVAL;
    const int64_t P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw, NP = n * P;
    const int64_t in_size = g->in_c * g->in_h * g->in_w;
    /* an item is one row of cols for one sample: P contiguous values */
    FASTNN_FOR_RANGE(n * K, n * K * P, n_threads, lo, hi, {
        int64_t item;
        for (item = lo; item < hi; item++) {
            int64_t s = item / K, q = item % K;
            SFX(im2col_row)(cols + q * NP + s * P, x + s * in_size, q, g);
        }
    });
    return FASTNN_OK;
}

/* dx for `count` samples (dx: the first one's image) from their columns: sample k's row q at
 * cols + q * row_stride + k * P. Each image is zeroed, then every column entry added where it was read. */
FASTNN_SIMD_CLONES
static void SFX(col2im_samples)(REAL *dx, const REAL *cols, int64_t row_stride, int64_t count,
                                const fastnn_window *g)
{
    const int64_t C = g->in_c, H = g->in_h, Wd = g->in_w, kh = g->kh, kw = g->kw;
    const int64_t OH = g->out_h, OW = g->out_w, P = OH * OW;
    int64_t k, c, i, j, oy, ox;
    for (k = 0; k < count; k++) {
        REAL *img = dx + k * C * H * Wd;
        memset(img, 0, (size_t)(C * H * Wd) * sizeof(REAL));
        for (c = 0; c < C; c++)
            for (i = 0; i < kh; i++)
                for (j = 0; j < kw; j++) {
                    int64_t q = (c * kh + i) * kw + j, ox_lo, ox_hi;
                    SFX(inside_columns)(OW, g->sw, g->pad_w, j, Wd, &ox_lo, &ox_hi);
                    const REAL *src = cols + q * row_stride + k * P;
                    for (oy = 0; oy < OH; oy++, src += OW) {
                        int64_t yy = oy * g->sh - g->pad_h + i;
                        if (yy < 0 || yy >= H) continue;
                        REAL *FASTNN_RESTRICT row = img + (c * H + yy) * Wd - g->pad_w + j;
                        if (g->sw == 1)
                            for (ox = ox_lo; ox < ox_hi; ox++) row[ox] += src[ox];
                        else
                            for (ox = ox_lo; ox < ox_hi; ox++) row[ox * g->sw] += src[ox];
                    }
                }
    }
}

int SFX(fastnn_col2im)(REAL *dx, const REAL *cols, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (cols == NULL || dx == NULL) return FASTNN_EINVAL;
    const int64_t P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw, in_size = g->in_c * g->in_h * g->in_w;
    /* a thread owns whole samples, so every pixel has one writer and is summed in one fixed order */
    FASTNN_FOR_RANGE(n, n * P * K, n_threads, lo, hi,
                     SFX(col2im_samples)(dx + lo * in_size, cols + lo * P, n * P, hi - lo, g));
    return FASTNN_OK;
}

#if defined(__GNUC__)
/* GCC/Clang vector of 64 bytes (16 floats, 8 doubles); named vectors stay in registers (see dense_impl.h). */
typedef REAL SFX(cvec) __attribute__((vector_size(64)));
#define CV_LEN ((int64_t)(64 / sizeof(REAL)))
#define CV_LOAD(v, p) memcpy(&(v), (p), 64)
#define CV_STORE(p, v) memcpy((p), &(v), 64)
#endif

#if defined(__GNUC__)
/* Rows r0 .. r0 + RO - 1 of rows_combine at positions [p, p + NV * CV_LEN) (RO <= 8, NV <= 2; constants at every
 * call, so the tile is unrolled into registers while the n_in input rows stream past). */
static inline __attribute__((always_inline)) void SFX(combine_tile)(REAL *out, int64_t out_stride, int64_t r0,
                                                                    const REAL *in, int64_t in_stride, int64_t n_in,
                                                                    const REAL *coef, int64_t coef_rs,
                                                                    int64_t coef_ts, const REAL *init, int64_t p,
                                                                    const int RO, const int NV)
{
    SFX(cvec) acc[8][2], c[2];
    int64_t t;
    int k, v;
    for (k = 0; k < RO; k++)
        for (v = 0; v < NV; v++) acc[k][v] = (SFX(cvec)){0} + (init ? init[r0 + k] : (REAL)0);
    const REAL *cf = coef + r0 * coef_rs;
    for (t = 0; t < n_in; t++) {
        const REAL *src = in + t * in_stride + p, *w = cf + t * coef_ts;
        for (v = 0; v < NV; v++) CV_LOAD(c[v], src + v * CV_LEN);
        for (k = 0; k < RO; k++) {
            const REAL wk = w[k * coef_rs];
            for (v = 0; v < NV; v++) acc[k][v] += wk * c[v];
        }
    }
    for (k = 0; k < RO; k++)
        for (v = 0; v < NV; v++) CV_STORE(out + (r0 + k) * out_stride + p + v * CV_LEN, acc[k][v]);
}

/* All rows of rows_combine at positions [p, p + NV * CV_LEN): tiles of 8, 4, 2 and 1 rows. */
static inline __attribute__((always_inline)) void SFX(combine_columns)(REAL *out, int64_t out_stride,
                                                                       int64_t n_out, const REAL *in,
                                                                       int64_t in_stride, int64_t n_in,
                                                                       const REAL *coef, int64_t coef_rs,
                                                                       int64_t coef_ts, const REAL *init,
                                                                       int64_t p, const int NV)
{
    int64_t r = 0;
    for (; r + 8 <= n_out; r += 8)
        SFX(combine_tile)(out, out_stride, r, in, in_stride, n_in, coef, coef_rs, coef_ts, init, p, 8, NV);
    if (r + 4 <= n_out) {
        SFX(combine_tile)(out, out_stride, r, in, in_stride, n_in, coef, coef_rs, coef_ts, init, p, 4, NV);
        r += 4;
    }
    if (r + 2 <= n_out) {
        SFX(combine_tile)(out, out_stride, r, in, in_stride, n_in, coef, coef_rs, coef_ts, init, p, 2, NV);
        r += 2;
    }
    if (r < n_out) SFX(combine_tile)(out, out_stride, r, in, in_stride, n_in, coef, coef_rs, coef_ts, init, p, 1, NV);
}
#endif

/* out[r][0:len] = init[r] + sum_t coef[r * coef_rs + t * coef_ts] * in[t][0:len] for r < n_out, t < n_in, where
 * out[r] = out + r * out_stride, in[t] = in + t * in_stride and init may be NULL (zeros): the direct loops of
 * both the forward pass (rows of y from rows of cols and W) and the input gradient (rows of dcols from rows of dz
 * and W^T). Every element is summed in the order init, t = 0, 1, ..., whatever the tile. */
FASTNN_SIMD_CLONES
static void SFX(rows_combine)(REAL *out, int64_t out_stride, int64_t n_out, const REAL *in, int64_t in_stride,
                              int64_t n_in, const REAL *coef, int64_t coef_rs, int64_t coef_ts, const REAL *init,
                              int64_t len)
{
    int64_t p = 0, r, t, k;
#if defined(__GNUC__)
    for (; p + 2 * CV_LEN <= len; p += 2 * CV_LEN)
        SFX(combine_columns)(out, out_stride, n_out, in, in_stride, n_in, coef, coef_rs, coef_ts, init, p, 2);
    for (; p + CV_LEN <= len; p += CV_LEN)
        SFX(combine_columns)(out, out_stride, n_out, in, in_stride, n_in, coef, coef_rs, coef_ts, init, p, 1);
#endif
    if (p < len) {  /* fewer positions than a vector: one row at a time */
        REAL acc[64 / sizeof(REAL)];
        const int64_t m = len - p;
        for (r = 0; r < n_out; r++) {
            const REAL i0 = init ? init[r] : 0;
            for (k = 0; k < m; k++) acc[k] = i0;
            for (t = 0; t < n_in; t++) {
                const REAL w = coef[r * coef_rs + t * coef_ts];
                const REAL *src = in + t * in_stride + p;
                for (k = 0; k < m; k++) acc[k] += w * src[k];
            }
            memcpy(out + r * out_stride + p, acc, (size_t)m * sizeof(REAL));
        }
    }
}

/* The direct forward pass of samples [s0, s1): each sample's columns built in `slot` (K P values), then
 * b + W cols into its rows of y and the activation. */
static void SFX(conv_forward_direct)(REAL *y, REAL *slot, const REAL *x, const REAL *W, const REAL *b, int64_t s0,
                                     int64_t s1, const fastnn_window *g, int act, REAL alpha)
{
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw;
    const int64_t in_size = g->in_c * g->in_h * g->in_w;
    int64_t s, q;
    for (s = s0; s < s1; s++) {
        REAL *ys = y + s * OC * P;
        for (q = 0; q < K; q++) SFX(im2col_row)(slot + q * P, x + s * in_size, q, g);
        SFX(rows_combine)(ys, P, OC, slot, P, K, W, K, 1, b, P);
        SFX(act_apply)(ys, OC * P, act, alpha);
    }
}

/* The BLAS forward pass of samples [s0, s1): y_s (OC, P) = W (OC, K) @ cols_s (K, P), which lands in NCHW order as
 * it is, then the bias and the activation. Called with n_threads 1 inside a parallel region (the BLAS must then be
 * single-threaded), or with the team's size outside one. */
static void SFX(conv_forward_blas)(REAL *y, REAL *slot, const REAL *x, const REAL *W, const REAL *b, int64_t s0,
                                   int64_t s1, const fastnn_window *g, int act, REAL alpha, int n_threads)
{
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw;
    const int64_t in_size = g->in_c * g->in_h * g->in_w;
    int64_t s;
    for (s = s0; s < s1; s++) {
        REAL *ys = y + s * OC * P;
        SFX(im2col_sample)(slot, x + s * in_size, g, n_threads);
        SFX(conv_gemm)(0, 0, OC, P, K, W, slot, (REAL)0, ys, n_threads);
        FASTNN_FOR_RANGE(OC, 4 * OC * P, n_threads, lo, hi, {
            int64_t o, p;
            for (o = lo; o < hi; o++) {
                REAL *row = ys + o * P;
                const REAL bias = b[o];
                for (p = 0; p < P; p++) row[p] += bias;
                SFX(act_apply)(row, P, act, alpha);
            }
        });
    }
}

/* dx of samples [s0, s1) on the BLAS path: dcols_s (K, P) = W^T (K, OC) @ dz_s (OC, P) in `slot`, then its
 * col2im. n_threads as for conv_forward_blas. */
static void SFX(conv_input_grad_blas)(REAL *dx, REAL *slot, const REAL *dz, const REAL *W, int64_t s0, int64_t s1,
                                      const fastnn_window *g, int n_threads)
{
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw;
    const int64_t in_size = g->in_c * g->in_h * g->in_w;
    int64_t s;
    for (s = s0; s < s1; s++) {
        SFX(conv_gemm)(1, 0, K, P, OC, W, dz + s * OC * P, (REAL)0, slot, n_threads);
        SFX(col2im_samples)(dx + s * in_size, slot, P, 1, g);
    }
}

int SFX(fastnn_conv2d_forward)(REAL *y, REAL *cols, const REAL *x, const REAL *W, const REAL *b,
                               int64_t n, const fastnn_window *g, int act, double alpha, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (act < FASTNN_ACT_LINEAR || act >= FASTNN_ACT_SOFTMAX) return FASTNN_EINVAL; /* no softmax over images */
    if (act == FASTNN_ACT_LEAKY_RELU && !(alpha > 0)) return FASTNN_EINVAL;
    if (n == 0) return FASTNN_OK;
    if (y == NULL || cols == NULL || x == NULL || W == NULL || b == NULL) return FASTNN_EINVAL;
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw, NP = n * P;
    const REAL alpha_r = (REAL)alpha;
    if (!SFX(conv_uses_blas)(g)) {
        /* thread t's slot of the cols workspace is cols + t K P: at most n threads, n slots */
        FASTNN_FOR_RANGE(n, 2 * NP * OC * K, n_threads, lo, hi,
                         SFX(conv_forward_direct)(y, cols + omp_get_thread_num() * K * P, x, W, b, lo, hi, g, act,
                                                  alpha_r));
        return FASTNN_OK;
    }
    if (fastnn_blas_split()) {
        /* the BLAS is single-threaded: samples shared out over the threads, one product each in its own slot */
        FASTNN_FOR_RANGE(n, 2 * NP * OC * K, n_threads, lo, hi,
                         SFX(conv_forward_blas)(y, cols + omp_get_thread_num() * K * P, x, W, b, lo, hi, g, act,
                                                alpha_r, 1));
    } else {
        /* the BLAS has its own threads: one sample after the other, never inside an OpenMP region */
        SFX(conv_forward_blas)(y, cols, x, W, b, 0, n, g, act, alpha_r, n_threads);
    }
    return FASTNN_OK;
}

#if defined(__GNUC__)
/* dW[o + k, q + m] = sum over samples of dz[s, o + k] . rows[m][s P : (s + 1) P] for k < RO, m < RQ (RO <= 4,
 * RQ <= 2; constants at every call, so the tile is unrolled into registers): vector lanes over all samples, the
 * positions a sample has beyond a whole number of vectors summed apart, one horizontal sum at the end. */
static inline __attribute__((always_inline)) void SFX(wgrad_tile)(REAL *dW, const REAL *dz, const REAL *rows,
                                                                  int64_t row_stride, int64_t n, int64_t o,
                                                                  int64_t q, const int RO, const int RQ,
                                                                  const fastnn_window *g)
{
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw, PV = P / CV_LEN * CV_LEN;
    SFX(cvec) acc[4][2], d[4], c[2];
    REAL tail[4][2];
    int64_t s, p, l;
    int k, m;
    for (k = 0; k < RO; k++)
        for (m = 0; m < RQ; m++) {
            acc[k][m] = (SFX(cvec)){0};
            tail[k][m] = 0;
        }
    for (s = 0; s < n; s++) {
        const REAL *dr = dz + (s * OC + o) * P, *cr = rows + s * P;
        for (p = 0; p < PV; p += CV_LEN) {
            for (m = 0; m < RQ; m++) CV_LOAD(c[m], cr + m * row_stride + p);
            for (k = 0; k < RO; k++) {
                CV_LOAD(d[k], dr + k * P + p);
                for (m = 0; m < RQ; m++) acc[k][m] += d[k] * c[m];
            }
        }
        for (; p < P; p++)
            for (k = 0; k < RO; k++)
                for (m = 0; m < RQ; m++) tail[k][m] += dr[k * P + p] * cr[m * row_stride + p];
    }
    for (k = 0; k < RO; k++)
        for (m = 0; m < RQ; m++) {
            REAL sum = tail[k][m];
            for (l = 0; l < CV_LEN; l++) sum += acc[k][m][l];
            dW[(o + k) * K + q + m] = sum;
        }
}
#endif

/* dW[:, q0:q1] of the direct backward pass, `rq` rows of columns at a time (1 or 2): those rows rebuilt for every
 * sample in `block` (rq rows of n P values, from the layer input x), then dotted with dz's rows. Each element is
 * summed by one thread in a fixed order, the same on every thread count. */
FASTNN_SIMD_CLONES
static void SFX(conv_weight_grad_direct)(REAL *dW, REAL *block, int rq, const REAL *dz, const REAL *x, int64_t n,
                                         int64_t q0, int64_t q1, const fastnn_window *g)
{
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, NP = n * P;
    const int64_t in_size = g->in_c * g->in_h * g->in_w;
    int64_t q, o, s, m;
#if !defined(__GNUC__)
    const int64_t K = g->in_c * g->kh * g->kw;
#endif
    for (q = q0; q < q1; q += rq) {
        const int64_t rows = q1 - q < rq ? q1 - q : rq;
        for (m = 0; m < rows; m++)
            for (s = 0; s < n; s++) SFX(im2col_row)(block + m * NP + s * P, x + s * in_size, q + m, g);
#if defined(__GNUC__)
        if (rows == 2) {
            for (o = 0; o + 4 <= OC; o += 4) SFX(wgrad_tile)(dW, dz, block, NP, n, o, q, 4, 2, g);
            for (; o < OC; o++) SFX(wgrad_tile)(dW, dz, block, NP, n, o, q, 1, 2, g);
        } else {
            for (o = 0; o + 4 <= OC; o += 4) SFX(wgrad_tile)(dW, dz, block, NP, n, o, q, 4, 1, g);
            for (; o < OC; o++) SFX(wgrad_tile)(dW, dz, block, NP, n, o, q, 1, 1, g);
        }
#else
        for (m = 0; m < rows; m++)
            for (o = 0; o < OC; o++) {
                REAL sum = 0;
                int64_t p;
                for (s = 0; s < n; s++)
                    for (p = 0; p < P; p++) sum += dz[(s * OC + o) * P + p] * block[m * NP + s * P + p];
                dW[o * K + q + m] = sum;
            }
#endif
    }
}

/* dx of samples [s0, s1) by the direct loops: each sample's dcols = W^T dz in `slot`, then its col2im. */
static void SFX(conv_input_grad_direct)(REAL *dx, REAL *slot, const REAL *dz, const REAL *W, int64_t s0,
                                        int64_t s1, const fastnn_window *g)
{
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw;
    const int64_t in_size = g->in_c * g->in_h * g->in_w;
    int64_t s;
    for (s = s0; s < s1; s++) {
        SFX(rows_combine)(slot, P, K, dz + s * OC * P, P, OC, W, 1, K, NULL, P);
        SFX(col2im_samples)(dx + s * in_size, slot, P, 1, g);
    }
}

/* db[o] for filters [o0, o1): the sum of dz[:, o, :], per sample in CONV_LANES partial sums (so it vectorises),
 * the samples' sums added in double (n P terms: float32 keeps its digits). A fixed order, whatever the threads. */
FASTNN_SIMD_CLONES
static void SFX(conv_bias_grad)(REAL *db, const REAL *dz, int64_t n, int64_t o0, int64_t o1, const fastnn_window *g)
{
    const int64_t OC = g->out_c, P = g->out_h * g->out_w;
    int64_t o, s, p, l;
    for (o = o0; o < o1; o++) {
        double total = 0;
        for (s = 0; s < n; s++) {
            const REAL *src = dz + (s * OC + o) * P;
            REAL lanes[CONV_LANES] = {0}, sum = 0;
            for (p = 0; p + CONV_LANES <= P; p += CONV_LANES)
                for (l = 0; l < CONV_LANES; l++) lanes[l] += src[p + l];
            for (; p < P; p++) sum += src[p];
            for (l = 0; l < CONV_LANES; l++) sum += lanes[l];
            total += sum;
        }
        db[o] = (REAL)total;
    }
}

int SFX(fastnn_conv2d_backward)(REAL *dx, REAL *dW, REAL *db, REAL *cols, const REAL *dz,
                                const REAL *x, const REAL *W, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 1) return FASTNN_ESHAPE;
    if (dW == NULL || db == NULL || cols == NULL || dz == NULL || x == NULL || W == NULL)
        return FASTNN_EINVAL;
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw, NP = n * P;
    FASTNN_FOR_RANGE(OC, NP * OC, n_threads, lo, hi, SFX(conv_bias_grad)(db, dz, n, lo, hi, g));
    if (!SFX(conv_uses_blas)(g)) {
        /* the weight gradient: thread t of nt owns rows of columns [lo, hi) and the block of K / nt rows of the
         * batch's columns at cols + t (K / nt) n P, two rows at a time where the block holds two */
        FASTNN_FOR_RANGE(K, 2 * NP * OC * K, n_threads, lo, hi, {
            const int64_t share = K / omp_get_num_threads();
            SFX(conv_weight_grad_direct)(dW, cols + omp_get_thread_num() * share * NP, share >= 2 ? 2 : 1, dz, x,
                                         n, lo, hi, g);
        });
        /* the input gradient: thread t's slot of K P values at cols + t K P, as in the forward pass */
        if (dx != NULL)
            FASTNN_FOR_RANGE(n, 2 * NP * OC * K, n_threads, lo, hi,
                             SFX(conv_input_grad_direct)(dx, cols + omp_get_thread_num() * K * P, dz, W, lo, hi,
                                                         g));
        return FASTNN_OK;
    }
    int64_t s;
    const int64_t in_size = g->in_c * g->in_h * g->in_w;
    /* dW (OC, K) = sum over the samples, in order, of dz_s (OC, P) @ cols_s^T: the same sums on every thread count
     * (a product may be shared out over the threads, never the sum over samples) */
    if (fastnn_blas_split()) {
        /* the BLAS is single-threaded: thread t owns the columns [lo, hi) of dW, builds only those rows of each
         * sample's columns in its slot and makes one product per sample: one parallel region for the batch */
        FASTNN_FOR_RANGE(K, 2 * NP * OC * K, n_threads, lo, hi, {
            REAL *slot = cols + omp_get_thread_num() * K * P;
            int64_t t, q;
            for (t = 0; t < n; t++) {
                for (q = lo; q < hi; q++) SFX(im2col_row)(slot + q * P, x + t * in_size, q, g);
                SFX(fastnn_blas_gemm_block)(0, 1, OC, K, P, dz + t * OC * P, slot, t == 0 ? (REAL)0 : (REAL)1, dW,
                                            0, OC, lo, hi);
            }
        });
    } else {
        for (s = 0; s < n; s++) {
            SFX(im2col_sample)(cols, x + s * in_size, g, n_threads);
            SFX(conv_gemm)(0, 1, OC, K, P, dz + s * OC * P, cols, s == 0 ? (REAL)0 : (REAL)1, dW, n_threads);
        }
    }
    if (dx == NULL) return FASTNN_OK;
    if (fastnn_blas_split())
        FASTNN_FOR_RANGE(n, 2 * NP * OC * K, n_threads, lo, hi,
                         SFX(conv_input_grad_blas)(dx, cols + omp_get_thread_num() * K * P, dz, W, lo, hi, g, 1));
    else
        SFX(conv_input_grad_blas)(dx, cols, dz, W, 0, n, g, n_threads);
    return FASTNN_OK;
}
