/* pool_impl.h -- template body of pool.c, instantiated per REAL by fastnn_real.h. */

static int SFX(check_pool)(const void *out, const void *in, int64_t n, const fastnn_window *g)
{
    int rc = fastnn_check_window(g, 1);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (n > 0 && (out == NULL || in == NULL)) return FASTNN_EINVAL;
    return FASTNN_OK;
}

#ifndef POOL_CHUNK
#define POOL_CHUNK 256 /* outputs of one plane compared together */
#endif

/* Max pooling of the planes [q0, q1). Each window is visited in row-major order and an element replaces the best so
 * far when it is strictly greater, or is a NaN replacing a number: the first maximum (or first NaN) wins. For a
 * chunk of a plane's outputs, the elements at one window offset are first gathered into a contiguous row, so the
 * comparisons run as vector selects along the outputs (as branches they mispredicted on half of all elements). */
FASTNN_SIMD_CLONES
static void SFX(maxpool_planes)(REAL *y, int32_t *argmax, const REAL *x, int64_t q0, int64_t q1,
                                const fastnn_window *g)
{
    const int64_t H = g->in_h, Wd = g->in_w, OHW = g->out_h * g->out_w, OW = g->out_w, kh = g->kh, kw = g->kw;
    REAL best[POOL_CHUNK], v[POOL_CHUNK];
    int32_t at[POOL_CHUNK], start[POOL_CHUNK];
    int64_t q, o0, t, i, j;
    for (o0 = 0; o0 < OHW; o0 += POOL_CHUNK) {
        const int64_t m = OHW - o0 < POOL_CHUNK ? OHW - o0 : POOL_CHUNK;
        for (t = 0; t < m; t++) /* where each output's window starts in its plane */
            start[t] = (int32_t)((o0 + t) / OW * g->sh * Wd + (o0 + t) % OW * g->sw);
        for (q = q0; q < q1; q++) {
            const REAL *plane = x + q * H * Wd;
            for (t = 0; t < m; t++) {
                best[t] = plane[start[t]];
                at[t] = start[t];
            }
            for (i = 0; i < kh; i++)
                for (j = 0; j < kw; j++) {
                    if (i == 0 && j == 0) continue;
                    const int32_t shift = (int32_t)(i * Wd + j);
                    const REAL *shifted = plane + shift;
                    for (t = 0; t < m; t++) v[t] = shifted[start[t]];
                    for (t = 0; t < m; t++) {
                        const int take = (v[t] > best[t]) | ((v[t] != v[t]) & (best[t] == best[t]));
                        best[t] = take ? v[t] : best[t];
                        at[t] = take ? start[t] + shift : at[t];
                    }
                }
            memcpy(y + q * OHW + o0, best, (size_t)m * sizeof(REAL));
            if (argmax) memcpy(argmax + q * OHW + o0, at, (size_t)m * sizeof(int32_t));
        }
    }
}

int SFX(fastnn_maxpool2d_forward)(REAL *y, int32_t *argmax, const REAL *x, int64_t n, const fastnn_window *g,
                                  int n_threads)
{
    int rc = SFX(check_pool)(y, x, n, g);
    if (rc != FASTNN_OK || n == 0) return rc;
    const int64_t planes = n * g->in_c;
    FASTNN_FOR_RANGE(planes, planes * g->out_h * g->out_w * g->kh * g->kw, n_threads, lo, hi,
                     SFX(maxpool_planes)(y, argmax, x, lo, hi, g));
    return FASTNN_OK;
}

int SFX(fastnn_maxpool2d_backward)(REAL *dx, const REAL *dy, const int32_t *argmax, int64_t n,
                                   const fastnn_window *g, int n_threads)
{
    int rc = SFX(check_pool)(dx, dy, n, g);
    if (rc != FASTNN_OK || n == 0) return rc;
    if (argmax == NULL) return FASTNN_EINVAL;
    const int64_t HW = g->in_h * g->in_w, OHW = g->out_h * g->out_w, planes = n * g->in_c;
    int bad = 0;
    FASTNN_FOR_RANGE(planes, planes * (HW + OHW), n_threads, lo, hi, {
        int64_t q, o;
        for (q = lo; q < hi; q++) {
            REAL *plane = dx + q * HW;
            const REAL *src = dy + q * OHW;
            const int32_t *idx = argmax + q * OHW;
            memset(plane, 0, (size_t)HW * sizeof(REAL));
            for (o = 0; o < OHW; o++) {
                if (idx[o] < 0 || idx[o] >= HW) { bad = 1; continue; } /* a corrupted workspace, never a crash */
                plane[idx[o]] += src[o];
            }
        }
    });
    return bad ? FASTNN_EINVAL : FASTNN_OK;
}

int SFX(fastnn_avgpool2d_forward)(REAL *y, const REAL *x, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = SFX(check_pool)(y, x, n, g);
    if (rc != FASTNN_OK || n == 0) return rc;
    const int64_t H = g->in_h, Wd = g->in_w, OH = g->out_h, OW = g->out_w, planes = n * g->in_c;
    const REAL inv = (REAL)(1.0 / (double)(g->kh * g->kw));
    FASTNN_FOR_RANGE(planes, planes * OH * OW * g->kh * g->kw, n_threads, lo, hi, {
        int64_t q, oy, ox, i, j;
        for (q = lo; q < hi; q++) {
            const REAL *plane = x + q * H * Wd;
            REAL *out = y + q * OH * OW;
            for (oy = 0; oy < OH; oy++)
                for (ox = 0; ox < OW; ox++) {
                    const REAL *win = plane + oy * g->sh * Wd + ox * g->sw;
                    REAL sum = 0;
                    for (i = 0; i < g->kh; i++)
                        for (j = 0; j < g->kw; j++) sum += win[i * Wd + j];
                    out[oy * OW + ox] = sum * inv;
                }
        }
    });
    return FASTNN_OK;
}

int SFX(fastnn_avgpool2d_backward)(REAL *dx, const REAL *dy, int64_t n, const fastnn_window *g, int n_threads)
{
    int rc = SFX(check_pool)(dx, dy, n, g);
    if (rc != FASTNN_OK || n == 0) return rc;
    const int64_t H = g->in_h, Wd = g->in_w, OH = g->out_h, OW = g->out_w, planes = n * g->in_c;
    const REAL inv = (REAL)(1.0 / (double)(g->kh * g->kw));
    FASTNN_FOR_RANGE(planes, planes * OH * OW * g->kh * g->kw, n_threads, lo, hi, {
        int64_t q, oy, ox, i, j;
        for (q = lo; q < hi; q++) {
            REAL *plane = dx + q * H * Wd;
            const REAL *src = dy + q * OH * OW;
            memset(plane, 0, (size_t)(H * Wd) * sizeof(REAL));
            for (oy = 0; oy < OH; oy++)
                for (ox = 0; ox < OW; ox++) {
                    REAL *win = plane + oy * g->sh * Wd + ox * g->sw;
                    const REAL v = src[oy * OW + ox] * inv;
                    for (i = 0; i < g->kh; i++)
                        for (j = 0; j < g->kw; j++) win[i * Wd + j] += v;
                }
        }
    });
    return FASTNN_OK;
}
