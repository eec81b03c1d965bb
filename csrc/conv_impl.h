/* conv_impl.h -- template body of conv.c, instantiated per REAL by fastnn_real.h.
 *
 * Layout: a batch of images is NCHW; the columns of im2col are one row per output position (sample-major,
 * then row, then column of the output) and one column per weight (in_c, kh, kw), so the forward product is
 * cols (n P, K) @ W^T (K, out_c) with P = out_h out_w and K = in_c kh kw: one GEMM for the whole batch, whose
 * result is transposed to NCHW while the bias and the activation are applied. */
#include "act_rows.h"

/* C (m, n) = op(A) op(B), row-major, overwritten; trans_a: A stored (k, m), trans_b: B stored (n, k). Through
 * the BLAS when one is set and the product is big enough to pay for the call, else the loops below, which sum
 * every element in the order p = 0..k-1 whatever the thread count. */
static void SFX(conv_gemm)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                           const REAL *B, REAL *C, int n_threads)
{
    if (m * n * k >= FASTNN_BLAS_MIN_WORK &&
        SFX(fastnn_blas_gemm)(trans_a, trans_b, m, n, k, A, B, (REAL)0, C, n_threads))
        return;
    FASTNN_FOR_RANGE(m, 2 * m * n * k, n_threads, lo, hi, {
        int64_t i, j, p;
        for (i = lo; i < hi; i++) {
            REAL *FASTNN_RESTRICT c = C + i * n;
            if (trans_b && !trans_a) {  /* rows of A against rows of B: dot products */
                const REAL *a = A + i * k;
                for (j = 0; j < n; j++) {
                    const REAL *b = B + j * k;
                    REAL s = 0;
                    for (p = 0; p < k; p++) s += a[p] * b[p];
                    c[j] = s;
                }
                continue;
            }
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

int SFX(fastnn_im2col)(REAL *cols, const REAL *x, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (cols == NULL || x == NULL) return FASTNN_EINVAL;
    const int64_t C = g->in_c, H = g->in_h, Wd = g->in_w, kh = g->kh, kw = g->kw;
    const int64_t OH = g->out_h, OW = g->out_w, P = OH * OW, K = C * kh * kw;
    if (kh == 1 && kw == 1 && g->sh == 1 && g->sw == 1 && OH == H && OW == Wd) {
        /* 1x1, stride 1, no padding: the columns are each image transposed to (positions, channels) */
        FASTNN_FOR_RANGE(n, n * P * C, n_threads, lo, hi, {
            int64_t s, c, p;
            for (s = lo; s < hi; s++)
                for (c = 0; c < C; c++) {
                    const REAL *xs = x + (s * C + c) * P;
                    REAL *dst = cols + s * P * C + c;
                    for (p = 0; p < P; p++) dst[p * C] = xs[p];
                }
        });
        return FASTNN_OK;
    }
    FASTNN_FOR_RANGE(n * P, n * P * K, n_threads, lo, hi, {
        int64_t r, c, i, j;
        for (r = lo; r < hi; r++) {
            int64_t s = r / P, pos = r % P, oy = pos / OW, ox = pos % OW;
            int64_t y0 = oy * g->sh - g->pad_h, x0 = ox * g->sw - g->pad_w;
            REAL *dst = cols + r * K;
            for (c = 0; c < C; c++) {
                const REAL *plane = x + (s * C + c) * H * Wd;
                for (i = 0; i < kh; i++, dst += kw) {
                    int64_t yy = y0 + i;
                    if (yy < 0 || yy >= H) {
                        for (j = 0; j < kw; j++) dst[j] = 0;
                        continue;
                    }
                    const REAL *row = plane + yy * Wd;
                    if (x0 >= 0 && x0 + kw <= Wd) {
                        for (j = 0; j < kw; j++) dst[j] = row[x0 + j];
                    } else {
                        for (j = 0; j < kw; j++) {
                            int64_t xx = x0 + j;
                            dst[j] = (xx >= 0 && xx < Wd) ? row[xx] : (REAL)0;
                        }
                    }
                }
            }
        }
    });
    return FASTNN_OK;
}

int SFX(fastnn_col2im)(REAL *dx, const REAL *cols, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (cols == NULL || dx == NULL) return FASTNN_EINVAL;
    const int64_t C = g->in_c, H = g->in_h, Wd = g->in_w, kh = g->kh, kw = g->kw;
    const int64_t OW = g->out_w, P = g->out_h * OW, K = C * kh * kw;
    /* a thread owns whole samples, so every pixel has one writer and is summed in one fixed order */
    FASTNN_FOR_RANGE(n, n * P * K, n_threads, lo, hi, {
        int64_t s, pos, c, i, j;
        for (s = lo; s < hi; s++) {
            REAL *img = dx + s * C * H * Wd;
            memset(img, 0, (size_t)(C * H * Wd) * sizeof(REAL));
            for (pos = 0; pos < P; pos++) {
                int64_t oy = pos / OW, ox = pos % OW;
                int64_t y0 = oy * g->sh - g->pad_h, x0 = ox * g->sw - g->pad_w;
                const REAL *src = cols + (s * P + pos) * K;
                for (c = 0; c < C; c++) {
                    REAL *plane = img + c * H * Wd;
                    for (i = 0; i < kh; i++, src += kw) {
                        int64_t yy = y0 + i;
                        if (yy < 0 || yy >= H) continue;
                        REAL *row = plane + yy * Wd;
                        for (j = 0; j < kw; j++) {
                            int64_t xx = x0 + j;
                            if (xx >= 0 && xx < Wd) row[xx] += src[j];
                        }
                    }
                }
            }
        }
    });
    return FASTNN_OK;
}

int SFX(fastnn_conv2d_forward)(REAL *y, REAL *cols, REAL *scratch, const REAL *x, const REAL *W, const REAL *b,
                               int64_t n, const fastnn_window *g, int act, double alpha, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (act < FASTNN_ACT_LINEAR || act >= FASTNN_ACT_SOFTMAX) return FASTNN_EINVAL; /* no softmax over images */
    if (act == FASTNN_ACT_LEAKY_RELU && !(alpha > 0)) return FASTNN_EINVAL;
    if (n == 0) return FASTNN_OK;
    if (y == NULL || cols == NULL || scratch == NULL || x == NULL || W == NULL || b == NULL) return FASTNN_EINVAL;
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw;
    rc = SFX(fastnn_im2col)(cols, x, n, g, n_threads);
    if (rc != FASTNN_OK) return rc;
    SFX(conv_gemm)(0, 1, n * P, OC, K, cols, W, scratch, n_threads);
    const REAL alpha_r = (REAL)alpha;
    /* epilogue per sample: transpose (P, OC) -> (OC, P), add the bias, apply the activation */
    FASTNN_FOR_RANGE(n, 4 * n * P * OC, n_threads, lo, hi, {
        int64_t s, o, p;
        for (s = lo; s < hi; s++) {
            const REAL *src = scratch + s * P * OC;
            for (o = 0; o < OC; o++) {
                REAL *dst = y + (s * OC + o) * P;
                const REAL bias = b[o];
                for (p = 0; p < P; p++) dst[p] = src[p * OC + o] + bias;
                SFX(act_apply)(dst, P, act, alpha_r);
            }
        }
    });
    return FASTNN_OK;
}

int SFX(fastnn_conv2d_backward)(REAL *dx, REAL *dW, REAL *db, REAL *cols, REAL *scratch, const REAL *dz,
                                const REAL *W, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = fastnn_check_window(g, 0);
    if (rc != FASTNN_OK) return rc;
    if (n < 1) return FASTNN_ESHAPE;
    if (dW == NULL || db == NULL || cols == NULL || scratch == NULL || dz == NULL || W == NULL)
        return FASTNN_EINVAL;
    const int64_t OC = g->out_c, P = g->out_h * g->out_w, K = g->in_c * g->kh * g->kw;
    /* dz to position-major (n P, OC), the layout of the forward product */
    FASTNN_FOR_RANGE(n, n * P * OC, n_threads, lo, hi, {
        int64_t s, o, p;
        for (s = lo; s < hi; s++)
            for (o = 0; o < OC; o++) {
                const REAL *src = dz + (s * OC + o) * P;
                REAL *dst = scratch + s * P * OC + o;
                for (p = 0; p < P; p++) dst[p * OC] = src[p];
            }
    });
    /* dW (OC, K) = dz^T (OC, n P) @ cols (n P, K): one product, so no partial sums per thread */
    SFX(conv_gemm)(1, 0, OC, K, n * P, scratch, cols, dW, n_threads);
    FASTNN_FOR_RANGE(OC, n * P * OC, n_threads, lo, hi, {
        int64_t o, s, p;
        for (o = lo; o < hi; o++) {
            double sum = 0; /* n P terms: in double, so float32 keeps its digits */
            for (s = 0; s < n; s++) {
                const REAL *src = dz + (s * OC + o) * P;
                for (p = 0; p < P; p++) sum += src[p];
            }
            db[o] = (REAL)sum;
        }
    });
    if (dx != NULL) {
        /* the columns are spent: reuse them for d(cols) = dz (n P, OC) @ W (OC, K) */
        SFX(conv_gemm)(0, 0, n * P, K, OC, scratch, W, cols, n_threads);
        rc = SFX(fastnn_col2im)(dx, cols, n, g, n_threads);
        if (rc != FASTNN_OK) return rc;
    }
    return FASTNN_OK;
}
