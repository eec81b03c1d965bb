/* pool_impl.h -- template body of pool.c, instantiated per REAL by fastnn_real.h. */

static int SFX(check_pool)(const void *out, const void *in, int64_t n, const fastnn_window *g)
{
    int rc = fastnn_check_window(g, 1);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (n > 0 && (out == NULL || in == NULL)) return FASTNN_EINVAL;
    return FASTNN_OK;
}

int SFX(fastnn_maxpool2d_forward)(REAL *y, int32_t *argmax, const REAL *x, int64_t n, const fastnn_window *g,
                                  int n_threads)
{
    int rc = SFX(check_pool)(y, x, n, g);
    if (rc != FASTNN_OK || n == 0) return rc;
    const int64_t H = g->in_h, Wd = g->in_w, OH = g->out_h, OW = g->out_w, planes = n * g->in_c;
    FASTNN_FOR_RANGE(planes, planes * OH * OW * g->kh * g->kw, n_threads, lo, hi, {
        int64_t q, oy, ox, i, j;
        for (q = lo; q < hi; q++) {
            const REAL *plane = x + q * H * Wd;
            REAL *out = y + q * OH * OW;
            int32_t *idx = argmax ? argmax + q * OH * OW : NULL;
            for (oy = 0; oy < OH; oy++)
                for (ox = 0; ox < OW; ox++) {
                    int64_t first = oy * g->sh * Wd + ox * g->sw, best_at = first;
                    REAL best = plane[first];
                    for (i = 0; i < g->kh; i++)
                        for (j = 0; j < g->kw; j++) {
                            int64_t at = first + i * Wd + j;
                            REAL v = plane[at];
                            /* strictly greater keeps the first maximum; a NaN replaces any number */
                            if (v > best || (v != v && best == best)) {
                                best = v;
                                best_at = at;
                            }
                        }
                    out[oy * OW + ox] = best;
                    if (idx) idx[oy * OW + ox] = (int32_t)best_at;
                }
        }
    });
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
