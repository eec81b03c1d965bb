/* rnn_impl.h -- template body of rnn.c, instantiated per REAL by fastnn_real.h.
 *
 * Shapes (G gate blocks of U units, GU = G U): x (n, T, F) and y batch-major; W_ih (GU, F), W_hh (GU, U); the
 * workspaces time-major, so that one step's n rows are contiguous: states (T + 1, n, U), gates (T, n, GU), cells
 * (T + 1, n, U), dgates (T, n, GU).
 *
 * Forward. The input projection of every step, x W_ih^T + b_ih, is one product before the time loop (into proj,
 * batch-major (n, T, GU); for n == 1 straight into gates, whose layout is then the same). A step then only needs
 * the recurrent product h_{t-1} W_hh^T and the gate non-linearities, fused per batch row:
 *   - own loops: each row's dot products with the rows of W_hh (contiguous), in RV_LEN vector lanes summed by a
 *     fixed tree at the end, then the non-linearities while the row is in cache (vectorised: gate_math.h). At
 *     batch 1 the step is one matrix-vector product: a loaded slice of h feeds as many rows of W_hh as a vector has
 *     lanes, whose sums are reduced together (rnn_row_sums in rnn.c). A batch goes by units (forward_units): the
 *     thread that owns units [u0, u1) takes their rows of W_hh in every gate block against all rows of h, 4 by 4,
 *     then their non-linearities.
 *   - BLAS, for a large batch or a W_hh too large for the caches (units_steps): one gemm per step, then the
 *     non-linearities (below that OpenBLAS loses to the own loops: it packs W_hh again at every call).
 * Backward. Per step, from the last: the gradients w.r.t. the pre-activation gates (dgates[t]) and the carried
 * dh = dgates[t] W_hh (+ dh z for the GRU): rows of W_hh scaled and summed (gemm_rows.h; a vector-matrix product at
 * batch 1; in a batch each thread its units' columns, rows_times_cols), or a gemm for a large batch. After the loop each weight gradient is ONE product over all steps:
 * dW_hh = dgates^T states[0:T], both time-major ((T n, GU) and (T n, U) rows that pair up). The input side needs
 * batch-major gradients to meet x: they are gathered into `gates`, free by then (GRU: the input side of the n
 * block sees d_new, not dgates' d_new r; step t leaves d_new in cells[t]), and dW_ih = G^T x, dx = G W_ih.
 *
 * Threads: a batch on the own loops opens one parallel region for the whole time loop, each thread owning a fixed
 * slice of the units (blocks of RNN_UNIT_BLOCK) at every step, so its rows (forward) or columns (backward) of W_hh
 * stay in its core's cache; a barrier separates the steps. The BLAS path shares out the batch rows within a step.
 * Either only when the work (of the whole sequence, for the region) has FASTNN_MIN_WORK_PER_THREAD per thread.
 * Every element is computed by one thread in the same order whatever the grouping of rows or units, so results do
 * not depend on n_threads (products on a BLAS engine aside: see fastnn_blas_plan in blas.c). */
#include <string.h>
#include "gate_math.h"
#include "gemm_rows.h"

#if defined(__GNUC__)
#define RV_BYTES RNN_VEC_BYTES
#else
#define RV_BYTES 32
#endif
#define RV_LEN ((int64_t)(RV_BYTES / sizeof(REAL)))

/* The sum of RV_LEN partial sums as a fixed tree: halves added lane by lane until one is left, e.g.
 * ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) for 8 lanes. h is overwritten. */
static inline REAL SFX(lane_sum)(REAL *h)
{
    int64_t w, l;
    for (w = RV_LEN / 2; w >= 1; w /= 2)
        for (l = 0; l < w; l++) h[l] += h[l + w];
    return h[0];
}

/* out[r * out_rs + j + q] = base[r * base_rs + j + q] + (A_r . W_{j+q} + bias[j + q]) for r < RA rows of A (row
 * stride a_rs) and q < RW rows of W (k columns, contiguous); no base term when base is NULL (base may be out).
 * Each element: lane l sums the products p = l, l + RV_LEN, ... of the whole vectors in order, the leftover p are
 * summed apart in order, then lane_sum + leftovers + bias: the same operations whatever RA and RW. */
#if defined(__GNUC__)
typedef SFX(rnn_vec) SFX(rvec);

static inline __attribute__((always_inline)) void SFX(dot_tile)(REAL *out, int64_t out_rs, const REAL *base,
                                                                int64_t base_rs, const REAL *bias, const REAL *A,
                                                                int64_t a_rs, const REAL *W, int64_t k, int64_t j,
                                                                const int RA, const int RW)
{
    SFX(rvec) acc[4][8], a[4], w;
    REAL tail[4][8], lanes[RV_BYTES / sizeof(REAL)];
    const int64_t kv = k - k % RV_LEN;
    int64_t p;
    int r, q;
    for (r = 0; r < RA; r++)
        for (q = 0; q < RW; q++) {
            acc[r][q] = (SFX(rvec)){0};
            tail[r][q] = 0;
        }
    for (p = 0; p < kv; p += RV_LEN) {
        for (r = 0; r < RA; r++) memcpy(&a[r], A + r * a_rs + p, RV_BYTES);
        for (q = 0; q < RW; q++) {
            memcpy(&w, W + (j + q) * k + p, RV_BYTES);
            for (r = 0; r < RA; r++) acc[r][q] += a[r] * w;
        }
    }
    for (; p < k; p++)
        for (r = 0; r < RA; r++)
            for (q = 0; q < RW; q++) tail[r][q] += A[r * a_rs + p] * W[(j + q) * k + p];
#if defined(RNN_ROW_SUMS)
    /* the lane sums of up to RV_LEN accumulators at once (rnn_row_sums: lane_sum's tree), zeros as padding */
    {
        SFX(rvec) v[RV_BYTES / sizeof(REAL)], s;
        int e0, m;
        for (e0 = 0; e0 < RA * RW; e0 += (int)RV_LEN) {
            for (m = 0; m < (int)RV_LEN; m++)
                v[m] = e0 + m < RA * RW ? acc[(e0 + m) / RW][(e0 + m) % RW] : (SFX(rvec)){0};
            SFX(rnn_row_sums)(&s, v);
            memcpy(lanes, &s, RV_BYTES);
            for (r = 0; r < RA; r++)  /* (r, q) loops with constant bounds: unrolled, no index arithmetic */
                for (q = 0; q < RW; q++) {
                    m = r * RW + q - e0;
                    if (m < 0 || m >= (int)RV_LEN) continue;
                    const REAL x = (lanes[m] + tail[r][q]) + bias[j + q];
                    out[r * out_rs + j + q] = base ? base[r * base_rs + j + q] + x : x;
                }
        }
    }
#else
    for (r = 0; r < RA; r++)
        for (q = 0; q < RW; q++) {
            memcpy(lanes, &acc[r][q], RV_BYTES);
            const REAL v = (SFX(lane_sum)(lanes) + tail[r][q]) + bias[j + q];
            out[r * out_rs + j + q] = base ? base[r * base_rs + j + q] + v : v;
        }
#endif
}
#else
static void SFX(dot_tile)(REAL *out, int64_t out_rs, const REAL *base, int64_t base_rs, const REAL *bias,
                          const REAL *A, int64_t a_rs, const REAL *W, int64_t k, int64_t j, const int RA, const int RW)
{
    const int64_t kv = k - k % RV_LEN;
    int64_t p, l;
    int r, q;
    for (r = 0; r < RA; r++)
        for (q = 0; q < RW; q++) {
            const REAL *a = A + r * a_rs, *w = W + (j + q) * k;
            REAL lanes[RV_BYTES / sizeof(REAL)], tail = 0;
            for (l = 0; l < RV_LEN; l++) lanes[l] = 0;
            for (p = 0; p < kv; p += RV_LEN)
                for (l = 0; l < RV_LEN; l++) lanes[l] += a[p + l] * w[p + l];
            for (; p < k; p++) tail += a[p] * w[p];
            const REAL v = (SFX(lane_sum)(lanes) + tail) + bias[j + q];
            out[r * out_rs + j + q] = base ? base[r * base_rs + j + q] + v : v;
        }
}
#endif

#if defined(RNN_ROW_SUMS)
/* dot_tile for one row of A and RV_LEN rows of W, its RV_LEN sums reduced together (rnn_row_sums in rnn.c: the
 * same additions as lane_sum) and finished as one vector: the matrix-vector product of a batch-1 step. */
static inline __attribute__((always_inline)) void SFX(dot_tile_lanes)(REAL *out, const REAL *base, const REAL *bias,
                                                                      const REAL *a, const REAL *W, int64_t k,
                                                                      int64_t j)
{
    SFX(rvec) acc[RV_BYTES / sizeof(REAL)], av, w, tails, bv, s;
    REAL tail[RV_BYTES / sizeof(REAL)];
    const int64_t kv = k - k % RV_LEN;
    int64_t p;
    int q;
    for (q = 0; q < RV_LEN; q++) {
        acc[q] = (SFX(rvec)){0};
        tail[q] = 0;
    }
    for (p = 0; p < kv; p += RV_LEN) {
        memcpy(&av, a + p, RV_BYTES);
        for (q = 0; q < RV_LEN; q++) {
            memcpy(&w, W + (j + q) * k + p, RV_BYTES);
            acc[q] += av * w;
        }
    }
    for (; p < k; p++)
        for (q = 0; q < RV_LEN; q++) tail[q] += a[p] * W[(j + q) * k + p];
    memcpy(&tails, tail, RV_BYTES);
    memcpy(&bv, bias + j, RV_BYTES);
    SFX(rnn_row_sums)(&s, acc);
    s = (s + tails) + bv;
    if (base) {
        SFX(rvec) b0;
        memcpy(&b0, base + j, RV_BYTES);
        s = b0 + s;
    }
    memcpy(out + j, &s, RV_BYTES);
}
#endif

/* out[r * out_rs + j] = base[r * base_rs + j] + (A_r . W_j + bias[j]) for the ra (1 or 2) rows of A and the m rows
 * of W (m, k); base may be NULL (no term) or out itself. The matrix-vector product of a batch-1 step (ra 1: tiles
 * of RV_LEN rows of W with their sums reduced together, then tiles of 8, 4 and 1) and two rows of A at a time for
 * a batch. Every path takes each sum in the same order (tests/test_rnn_kernels.py checks a sequence alone and in a
 * batch give the same bits). */
FASTNN_SIMD_CLONES
static void SFX(dot_rows)(REAL *out, int64_t out_rs, const REAL *base, int64_t base_rs, const REAL *bias,
                          const REAL *A, int64_t a_rs, int64_t ra, const REAL *W, int64_t m, int64_t k)
{
    int64_t j = 0;
    if (ra == 2) {
        for (; j + 4 <= m; j += 4) SFX(dot_tile)(out, out_rs, base, base_rs, bias, A, a_rs, W, k, j, 2, 4);
        for (; j < m; j++) SFX(dot_tile)(out, out_rs, base, base_rs, bias, A, a_rs, W, k, j, 2, 1);
    } else {
#if defined(RNN_ROW_SUMS)
        for (; j + RV_LEN <= m; j += RV_LEN) SFX(dot_tile_lanes)(out, base, bias, A, W, k, j);
#endif
        for (; j + 8 <= m; j += 8) SFX(dot_tile)(out, out_rs, base, base_rs, bias, A, a_rs, W, k, j, 1, 8);
        for (; j + 4 <= m; j += 4) SFX(dot_tile)(out, out_rs, base, base_rs, bias, A, a_rs, W, k, j, 1, 4);
        for (; j < m; j++) SFX(dot_tile)(out, out_rs, base, base_rs, bias, A, a_rs, W, k, j, 1, 1);
    }
}

/* The rows [j0, j1) of W (k columns) against all n rows of A: out[r * out_rs + j] = base[r * base_rs + j] +
 * (A_r . W_j + bias[j]) (no base term when base is NULL), in tiles of 4 rows of A by 4 of W (each loaded vector
 * of A feeds 4 rows of W and each of W 4 of A). A batch step's product for one thread's units: the rows of W it
 * owns stay in its core's cache. Every element takes the operations of dot_tile, so the bits are those of
 * dot_rows whatever the tiling. */
FASTNN_SIMD_CLONES
static void SFX(dot_block)(REAL *out, int64_t out_rs, const REAL *base, int64_t base_rs, const REAL *bias,
                           const REAL *A, int64_t a_rs, int64_t n, const REAL *W, int64_t j0, int64_t j1, int64_t k)
{
    int64_t j = j0, r;
#define RNN_DOT_ROWS(RW)                                                                                          \
    do {                                                                                                          \
        for (r = 0; r + 4 <= n; r += 4)                                                                           \
            SFX(dot_tile)(out + r * out_rs, out_rs, base ? base + r * base_rs : NULL, base_rs, bias, A + r * a_rs, \
                          a_rs, W, k, j, 4, RW);                                                                  \
        for (; r + 2 <= n; r += 2)                                                                                \
            SFX(dot_tile)(out + r * out_rs, out_rs, base ? base + r * base_rs : NULL, base_rs, bias, A + r * a_rs, \
                          a_rs, W, k, j, 2, RW);                                                                  \
        for (; r < n; r++)                                                                                        \
            SFX(dot_tile)(out + r * out_rs, out_rs, base ? base + r * base_rs : NULL, base_rs, bias, A + r * a_rs, \
                          a_rs, W, k, j, 1, RW);                                                                  \
    } while (0)
    for (; j + 4 <= j1; j += 4) RNN_DOT_ROWS(4);
    for (; j < j1; j++) RNN_DOT_ROWS(1);
#undef RNN_DOT_ROWS
}

/* C[r, :m] += sum_p A[r * lda + p] B[p * ldb + :m] for r < rows (C's row stride ldc): a batch step's dh +=
 * dgates W_hh for the columns (units) one thread owns. Tiles of 4 rows by 4 vectors of columns held in registers
 * while the k rows of B stream past; each element is summed in the order p = 0, 1, ..., k - 1 from its value in
 * C, as in gemm_block (gemm_rows.h), so the bits are those of gemm_block whatever the tiling. */
FASTNN_SIMD_CLONES
static void SFX(rows_times_cols)(REAL *C, int64_t ldc, const REAL *A, int64_t lda, const REAL *B, int64_t ldb,
                                 int64_t rows, int64_t k, int64_t m)
{
    int64_t r = 0, j0, j, p, q;
#if defined(__GNUC__)
    typedef REAL vec __attribute__((vector_size(64)));
    const int64_t VL = (int64_t)(64 / sizeof(REAL));
    for (; r < rows; r += 4) {
        const int64_t rr = rows - r < 4 ? rows - r : 4;
        REAL *c = C + r * ldc;
        const REAL *a = A + r * lda;
        j0 = 0;
        if (rr == 4) {
            for (; j0 + 4 * VL <= m; j0 += 4 * VL) {
                vec acc[4][4], w[4];
                int i;
                for (i = 0; i < 4; i++)
                    for (q = 0; q < 4; q++) memcpy(&acc[i][q], c + i * ldc + j0 + q * VL, 64);
                for (p = 0; p < k; p++) {
                    for (q = 0; q < 4; q++) memcpy(&w[q], B + p * ldb + j0 + q * VL, 64);
                    for (i = 0; i < 4; i++) {
                        const REAL ap = a[i * lda + p];
                        for (q = 0; q < 4; q++) acc[i][q] += ap * w[q];
                    }
                }
                for (i = 0; i < 4; i++)
                    for (q = 0; q < 4; q++) memcpy(c + i * ldc + j0 + q * VL, &acc[i][q], 64);
            }
        }
        for (; j0 + VL <= m; j0 += VL) {
            vec acc[4], w0;
            int i;
            for (i = 0; i < rr; i++) memcpy(&acc[i], c + i * ldc + j0, 64);
            for (p = 0; p < k; p++) {
                memcpy(&w0, B + p * ldb + j0, 64);
                for (i = 0; i < rr; i++) acc[i] += a[i * lda + p] * w0;
            }
            for (i = 0; i < rr; i++) memcpy(c + i * ldc + j0, &acc[i], 64);
        }
        for (q = 0; q < rr && j0 < m; q++)
            for (p = 0; p < k; p++) {
                const REAL ap = a[q * lda + p];
                for (j = j0; j < m; j++) c[q * ldc + j] += ap * B[p * ldb + j];
            }
    }
#else
    for (; r < rows; r++)
        for (p = 0; p < k; p++) {
            const REAL ap = A[r * lda + p];
            for (j = 0; j < m; j++) C[r * ldc + j] += ap * B[p * ldb + j];
        }
    (void)j0;
    (void)q;
#endif
}

/* P (rows, GU) = x (rows, F) W_ih^T + b_ih: the input projection of every step of every sequence, one product. */
static void SFX(rnn_project)(REAL *P, const REAL *x, const REAL *W_ih, const REAL *b_ih, int64_t rows, int64_t GU,
                             int64_t F, int n_threads)
{
    const int64_t work = rnn_mul3(rows, GU, F);
    if (rows > 1 && work >= FASTNN_BLAS_MIN_WORK &&
        SFX(fastnn_gemm)(FASTNN_GEMM_AUTO, 0, 1, rows, GU, F, x, W_ih, 0, P, b_ih, NULL, n_threads) == FASTNN_OK)
        return;
    FASTNN_FOR_RANGE(rows, work, n_threads, lo, hi, {
        int64_t r;
        for (r = lo; r < hi; r += 2)
            SFX(dot_rows)(P + r * GU, GU, NULL, 0, b_ih, x + r * F, F, hi - r < 2 ? hi - r : 2, W_ih, GU, F);
    });
}

/* C (m, n) = op(A) B, overwritten: op(A) = A^T when trans_a (A stored (k, m)), else A (m, k); B row-major (k, n).
 * Through the BLAS when one is set and the product is large enough, else rows of C shared out over the threads,
 * each element summed in the order p = 0, 1, ..., k - 1 (gemm_rows.h). */
static void SFX(rnn_gemm)(int trans_a, int64_t m, int64_t n, int64_t k, const REAL *A, const REAL *B, REAL *C,
                          int n_threads)
{
    const int64_t work = rnn_mul3(m, n, k);
    if (work >= FASTNN_BLAS_MIN_WORK &&
        SFX(fastnn_gemm)(FASTNN_GEMM_AUTO, trans_a, 0, m, n, k, A, B, 0, C, NULL, NULL, n_threads) == FASTNN_OK)
        return;
    FASTNN_FOR_RANGE(m, work, n_threads, lo, hi, {
        int64_t i0;
        for (i0 = lo; i0 < hi; i0 += DENSE_ROW_BLOCK) {
            const int64_t rows = hi - i0 < DENSE_ROW_BLOCK ? hi - i0 : DENSE_ROW_BLOCK;
            memset(C + i0 * n, 0, (size_t)(rows * n) * sizeof(REAL));
            SFX(gemm_block)(C + i0 * n, trans_a ? A + i0 : A + i0 * k, trans_a ? 1 : k, trans_a ? m : 1, B, rows, k,
                            n);
        }
    });
}

/* out (cols) = the column sums of A (rows, cols), rows added in order; threads own ranges of columns. */
static void SFX(rnn_column_sums)(REAL *out, const REAL *A, int64_t rows, int64_t cols, int n_threads)
{
    FASTNN_FOR_RANGE(cols, rnn_mul3(rows, cols, 1), n_threads, lo, hi, {
        int64_t r, j;
        for (j = lo; j < hi; j++) out[j] = 0;
        for (r = 0; r < rows; r++) {
            const REAL *a = A + r * cols;
            for (j = lo; j < hi; j++) out[j] += a[j];
        }
    });
}

/* ------------------------------------------------------------------------------------------------- forward */

typedef struct {
    int cell, act;
    int64_t n, T, U, GU;
    REAL *states, *gates, *cells;
    const REAL *P;  /* the input projection, batch-major (n, T, GU) (gates itself when n == 1) */
    const REAL *W_hh, *b_hh;
} SFX(rnn_fwd);

/* The gate non-linearities of one row, each a loop the compiler vectorises (gate_math.h; restrict: the blocks of
 * a row of gates, states and cells never overlap). */
FASTNN_SIMD_CLONES
static void SFX(simple_forward_row)(REAL *FASTNN_RESTRICT g, REAL *FASTNN_RESTRICT h, int64_t U, int act)
{
    int64_t j;
    if (act == FASTNN_ACT_TANH)
        for (j = 0; j < U; j++) h[j] = g[j] = SFX(gm_tanh)(g[j]);
    else  /* relu, written so NaN propagates as np.maximum(z, 0) does */
        for (j = 0; j < U; j++) h[j] = g[j] = g[j] < 0 ? (REAL)0 : g[j];
}

FASTNN_SIMD_CLONES
static void SFX(lstm_forward_row)(REAL *FASTNN_RESTRICT gi, REAL *FASTNN_RESTRICT gf, REAL *FASTNN_RESTRICT gc,
                                  REAL *FASTNN_RESTRICT go, const REAL *FASTNN_RESTRICT c_prev,
                                  REAL *FASTNN_RESTRICT c_new, REAL *FASTNN_RESTRICT h, int64_t U)
{
    int64_t j;
    for (j = 0; j < U; j++) {
        const REAL ig = SFX(gm_sigmoid)(gi[j]), fg = SFX(gm_sigmoid)(gf[j]);
        const REAL c_in = SFX(gm_tanh)(gc[j]), og = SFX(gm_sigmoid)(go[j]);
        const REAL cell = fg * c_prev[j] + ig * c_in;
        gi[j] = ig;
        gf[j] = fg;
        gc[j] = c_in;
        go[j] = og;
        c_new[j] = cell;
        h[j] = og * SFX(gm_tanh)(cell);
    }
}

/* GRU: gr, gz hold the pre-activation r and z, gn the input side of the candidate (x W_in + b_in), cn the
 * recurrent side (W_hn h + b_hn). */
FASTNN_SIMD_CLONES
static void SFX(gru_forward_row)(REAL *FASTNN_RESTRICT gr, REAL *FASTNN_RESTRICT gz, REAL *FASTNN_RESTRICT gn,
                                 const REAL *FASTNN_RESTRICT cn, const REAL *FASTNN_RESTRICT h_prev,
                                 REAL *FASTNN_RESTRICT h, int64_t U)
{
    int64_t j;
    for (j = 0; j < U; j++) {
        const REAL r = SFX(gm_sigmoid)(gr[j]), z = SFX(gm_sigmoid)(gz[j]);
        const REAL cand = SFX(gm_tanh)(gn[j] + r * cn[j]);
        gr[j] = r;
        gz[j] = z;
        gn[j] = cand;
        h[j] = ((REAL)1 - z) * cand + z * h_prev[j];
    }
}

/* Row i of step t, once gates[t][i] holds the pre-activation gates (GRU: r and z, with W_hn h + b_hn in cells[t][i]
 * and the input side of the n block in the projection): the non-linearities in place, then h (and the LSTM's c). */
static void SFX(forward_finish_units)(const SFX(rnn_fwd) *c, int64_t t, int64_t i, int64_t u0, int64_t u1)
{
    const int64_t n = c->n, U = c->U, len = u1 - u0;
    REAL *g = c->gates + (t * n + i) * c->GU + u0;
    const REAL *h_prev = c->states + (t * n + i) * U + u0;
    REAL *h = c->states + ((t + 1) * n + i) * U + u0;
    if (c->cell == FASTNN_CELL_SIMPLE) {
        SFX(simple_forward_row)(g, h, len, c->act);
    } else if (c->cell == FASTNN_CELL_LSTM) {
        SFX(lstm_forward_row)(g, g + U, g + 2 * U, g + 3 * U, c->cells + (t * n + i) * U + u0,
                              c->cells + ((t + 1) * n + i) * U + u0, h, len);
    } else {
        REAL *gn = g + 2 * U;
        const REAL *xn = c->P + (i * c->T + t) * c->GU + 2 * U + u0;  /* gn itself when n == 1 */
        if (xn != gn) memcpy(gn, xn, (size_t)len * sizeof(REAL));
        SFX(gru_forward_row)(g, g + U, gn, c->cells + (t * n + i) * U + u0, h_prev, h, len);
    }
}

static void SFX(forward_finish)(const SFX(rnn_fwd) *c, int64_t t, int64_t i)
{
    SFX(forward_finish_units)(c, t, i, 0, c->U);
}

/* Step t for batch rows [lo, hi) by the own loops: the recurrent product of two rows at a time (one at batch 1)
 * added to their input projection, then their non-linearities. */
static void SFX(forward_rows)(const SFX(rnn_fwd) *c, int64_t t, int64_t lo, int64_t hi)
{
    const int64_t n = c->n, T = c->T, U = c->U, GU = c->GU;
    const REAL *h_prev = c->states + t * n * U;
    REAL *g_t = c->gates + t * n * GU;
    int64_t i0, i;
    for (i0 = lo; i0 < hi; i0 += 2) {
        const int64_t ra = hi - i0 < 2 ? hi - i0 : 2;
        const REAL *base = c->P + (i0 * T + t) * GU;
        if (c->cell == FASTNN_CELL_GRU) {
            SFX(dot_rows)(g_t + i0 * GU, GU, base, T * GU, c->b_hh, h_prev + i0 * U, U, ra, c->W_hh, 2 * U, U);
            SFX(dot_rows)(c->cells + (t * n + i0) * U, U, NULL, 0, c->b_hh + 2 * U, h_prev + i0 * U, U, ra,
                          c->W_hh + 2 * U * U, U, U);
        } else {
            SFX(dot_rows)(g_t + i0 * GU, GU, base, T * GU, c->b_hh, h_prev + i0 * U, U, ra, c->W_hh, GU, U);
        }
        for (i = i0; i < i0 + ra; i++) SFX(forward_finish)(c, t, i);
    }
}

/* Step t for batch rows [lo, hi) after the BLAS put h_{t-1} W_hh^T into gates[t]: add the biases and the input
 * projection (GRU's n block: W_hn h + b_hn to cells[t]), then the non-linearities. */
static void SFX(forward_rows_blas)(const SFX(rnn_fwd) *c, int64_t t, int64_t lo, int64_t hi)
{
    const int64_t n = c->n, U = c->U, GU = c->GU, pre = c->cell == FASTNN_CELL_GRU ? 2 * U : GU;
    int64_t i, j;
    for (i = lo; i < hi; i++) {
        REAL *g = c->gates + (t * n + i) * GU;
        const REAL *base = c->P + (i * c->T + t) * GU;
        for (j = 0; j < pre; j++) g[j] = base[j] + (g[j] + c->b_hh[j]);
        if (c->cell == FASTNN_CELL_GRU) {
            REAL *cn = c->cells + (t * n + i) * U;
            for (j = 0; j < U; j++) cn[j] = g[2 * U + j] + c->b_hh[2 * U + j];
        }
        SFX(forward_finish)(c, t, i);
    }
}

/* A batch step by units: the thread that owns units [u0, u1) computes their pre-activations in every gate block
 * (its rows of W_hh, against every row of h_{t-1}) and then their non-linearities, for all n rows. */
static void SFX(forward_units)(const SFX(rnn_fwd) *c, int64_t t, int64_t u0, int64_t u1)
{
    const int64_t n = c->n, T = c->T, U = c->U, GU = c->GU;
    const int64_t blocks = c->cell == FASTNN_CELL_GRU ? 2 : GU / U;
    const REAL *h_prev = c->states + t * n * U;
    int64_t b, i;
    for (b = 0; b < blocks; b++)
        SFX(dot_block)(c->gates + t * n * GU, GU, c->P + t * GU, T * GU, c->b_hh, h_prev, U, n, c->W_hh, b * U + u0,
                       b * U + u1, U);
    if (c->cell == FASTNN_CELL_GRU)
        SFX(dot_block)(c->cells + t * n * U, U, NULL, 0, c->b_hh + 2 * U, h_prev, U, n, c->W_hh + 2 * U * U, u0, u1,
                       U);
    for (i = 0; i < n; i++) SFX(forward_finish_units)(c, t, i, u0, u1);
}

/* Units are shared out in blocks of RNN_UNIT_BLOCK (whole vectors of the non-linearities' loops). */
#define RNN_UNIT_BLOCK 16

/* The units [*u0, *u1) the calling thread owns, inside a region (the whole range outside one). */
static void SFX(own_units)(int64_t U, int64_t *u0, int64_t *u1)
{
    const int64_t blocks = (U + RNN_UNIT_BLOCK - 1) / RNN_UNIT_BLOCK;
    int64_t b0, b1;
    fastnn_chunk(blocks, omp_get_thread_num(), omp_get_num_threads(), &b0, &b1);
    *u0 = b0 * RNN_UNIT_BLOCK < U ? b0 * RNN_UNIT_BLOCK : U;
    *u1 = b1 * RNN_UNIT_BLOCK < U ? b1 * RNN_UNIT_BLOCK : U;
}

/* Whether a batch (n > 1) takes its steps by units (forward_steps_units, backward_steps_units) rather than a
 * BLAS call per step: always on the own loops; with a BLAS, while W_hh stays in the cores' caches and the batch
 * is small (measured, LSTM 256 units, 2 threads: 1.4x faster forward and backward at n = 32 than OpenBLAS, which
 * packs W_hh again at every call; even at n = 128; slower with 1024 units at n = 64). */
#define RNN_UNITS_MAX_BATCH 64
#define RNN_UNITS_MAX_WEIGHT_BYTES ((int64_t)4 << 20)
static int SFX(units_steps)(int64_t n, int64_t GU, int64_t U, int blas_steps)
{
    if (n < 2) return 0;
    return !blas_steps ||
           (n <= RNN_UNITS_MAX_BATCH && GU * U <= RNN_UNITS_MAX_WEIGHT_BYTES / (int64_t)sizeof(REAL));
}

/* The threads for a batch by units: by the work of the whole sequence (one region for it), and no more than give
 * each thread FASTNN_MIN_WORK_PER_THREAD per step, as a barrier per step costs about what a fork/join does on a
 * busy core (measured: a SimpleRNN of 256 units, batch 32, forward 10% slower on 2 threads than on 1). */
static int SFX(units_threads)(int64_t n, int64_t GU, int64_t U, int64_t T, int n_threads)
{
    const int64_t blocks = (U + RNN_UNIT_BLOCK - 1) / RNN_UNIT_BLOCK;
    const int nt = fastnn_threads_for(rnn_mul3(n * GU, U, T), blocks, n_threads);
    const int by_step = fastnn_threads_for(rnn_mul3(n, GU, U), blocks, n_threads);
    return nt < by_step ? nt : by_step;
}

/* Every step of a batch by units: one parallel region for the whole time loop, each thread on the same units
 * (so the same rows of W_hh) at every step, a barrier between steps (step t + 1 reads all of h_t). */
static void SFX(forward_steps_units)(const SFX(rnn_fwd) *c, int nt)
{
    int64_t t;
    if (nt <= 1) {
        for (t = 0; t < c->T; t++) SFX(forward_units)(c, t, 0, c->U);
        return;
    }
    FASTNN_PRAGMA(omp parallel num_threads(nt) private(t))
    {
        int64_t u0, u1;
        SFX(own_units)(c->U, &u0, &u1);
        for (t = 0; t < c->T; t++) {
            if (u0 < u1) SFX(forward_units)(c, t, u0, u1);
            FASTNN_PRAGMA(omp barrier)
        }
    }
}

int SFX(fastnn_rnn_forward)(REAL *y, REAL *states, REAL *gates, REAL *cells, REAL *proj, const REAL *x,
                            const REAL *W_ih, const REAL *W_hh, const REAL *b_ih, const REAL *b_hh,
                            const REAL *state0, REAL *state_out, int64_t n, const fastnn_sequence *s, int n_threads)
{
    int rc = fastnn_check_sequence(s);
    if (rc != FASTNN_OK) return rc;
    if (n < 0 || !rnn_batch_fits(s, n)) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    const int cell = s->cell;
    if (y == NULL || states == NULL || gates == NULL || proj == NULL || x == NULL || W_ih == NULL || W_hh == NULL ||
        b_ih == NULL || b_hh == NULL || (cell != FASTNN_CELL_SIMPLE && cells == NULL))
        return FASTNN_EINVAL;
    const int64_t T = s->steps, F = s->features, U = s->units, GU = rnn_gate_blocks(cell) * U;
    const int64_t S = cell == FASTNN_CELL_LSTM ? 2 * U : U;
    const size_t row_bytes = (size_t)U * sizeof(REAL);
    int64_t i, t;

    /* for one sequence, time-major is batch-major: the projection goes straight into gates */
    REAL *P = n == 1 ? gates : proj;
    SFX(rnn_project)(P, x, W_ih, b_ih, n * T, GU, F, rnn_outer_threads(rnn_mul3(n * T, GU, F), n_threads));

    /* the initial state (read before state_out, which may be the same array, is written) */
    for (i = 0; i < n; i++) {
        if (state0) memcpy(states + i * U, state0 + i * S, row_bytes);
        else memset(states + i * U, 0, row_bytes);
        if (cell == FASTNN_CELL_LSTM) {
            if (state0) memcpy(cells + i * U, state0 + i * S + U, row_bytes);
            else memset(cells + i * U, 0, row_bytes);
        }
    }

    const SFX(rnn_fwd) c = {cell, s->act, n, T, U, GU, states, gates, cells, P, W_hh, b_hh};
    const int blas_steps = n > 1 && rnn_mul3(n, GU, U) >= FASTNN_BLAS_MIN_WORK;
    if (SFX(units_steps)(n, GU, U, blas_steps)) {
        SFX(forward_steps_units)(&c, SFX(units_threads)(n, GU, U, T, n_threads));
    } else for (t = 0; t < T; t++) {
        if (blas_steps) {
            SFX(fastnn_gemm)(FASTNN_GEMM_AUTO, 0, 1, n, GU, U, states + t * n * U, W_hh, 0, gates + t * n * GU, NULL,
                             NULL, n_threads);
            FASTNN_FOR_RANGE(n, rnn_mul3(n, GU, 16), n_threads, lo, hi, SFX(forward_rows_blas)(&c, t, lo, hi));
        } else {
            FASTNN_FOR_RANGE(n, rnn_mul3(n, GU, U), n_threads, lo, hi, SFX(forward_rows)(&c, t, lo, hi));
        }
    }

    if (s->return_sequences) {
        for (i = 0; i < n; i++)
            for (t = 0; t < T; t++) memcpy(y + (i * T + t) * U, states + ((t + 1) * n + i) * U, row_bytes);
    } else {
        memcpy(y, states + T * n * U, (size_t)n * row_bytes);
    }
    if (state_out) {
        for (i = 0; i < n; i++) {
            memcpy(state_out + i * S, states + (T * n + i) * U, row_bytes);
            if (cell == FASTNN_CELL_LSTM) memcpy(state_out + i * S + U, cells + (T * n + i) * U, row_bytes);
        }
    }
    return FASTNN_OK;
}

/* ------------------------------------------------------------------------------------------------ backward */

typedef struct {
    int cell, act, return_sequences;
    int64_t n, T, U, GU;
    REAL *dgates, *cells, *dh, *dc;
    const REAL *gates, *states, *dy, *W_hh;
} SFX(rnn_bwd);

/* The gate gradients of one row (vectorised loops, as the forward ones). dh holds d(loss)/dh_t on entry and
 * leaves with the part of d(loss)/dh_{t-1} that is not dgates W_hh: 0, or dh z for the GRU. */
FASTNN_SIMD_CLONES
static void SFX(simple_backward_row)(REAL *FASTNN_RESTRICT d, REAL *FASTNN_RESTRICT dh, const REAL *FASTNN_RESTRICT h,
                                     int64_t U, int act)
{
    int64_t j;
    if (act == FASTNN_ACT_TANH)
        for (j = 0; j < U; j++) d[j] = dh[j] * ((REAL)1 - h[j] * h[j]);
    else  /* a product, not a select, so a NaN gradient propagates as in the twin */
        for (j = 0; j < U; j++) d[j] = dh[j] * (h[j] > 0 ? (REAL)1 : (REAL)0);
    for (j = 0; j < U; j++) dh[j] = 0;
}

/* g: the row's gates i, f, g, o after their non-linearities; dc: d(loss)/dc_t in, d(loss)/dc_{t-1} out */
FASTNN_SIMD_CLONES
static void SFX(lstm_backward_row)(REAL *FASTNN_RESTRICT d, REAL *FASTNN_RESTRICT dh, REAL *FASTNN_RESTRICT dc,
                                   const REAL *FASTNN_RESTRICT g, const REAL *FASTNN_RESTRICT c_prev,
                                   const REAL *FASTNN_RESTRICT c_now, int64_t U, int64_t len)
{
    int64_t j;
    for (j = 0; j < len; j++) {
        const REAL ig = g[j], fg = g[U + j], c_in = g[2 * U + j], og = g[3 * U + j];
        const REAL tc = SFX(gm_tanh)(c_now[j]);
        const REAL dcj = dc[j] + dh[j] * og * ((REAL)1 - tc * tc);
        d[j] = dcj * c_in * ig * ((REAL)1 - ig);
        d[U + j] = dcj * c_prev[j] * fg * ((REAL)1 - fg);
        d[2 * U + j] = dcj * ig * ((REAL)1 - c_in * c_in);
        d[3 * U + j] = dh[j] * tc * og * ((REAL)1 - og);
        dc[j] = dcj * fg;
        dh[j] = 0;
    }
}

/* cn: W_hn h + b_hn of the step in, d_new (the input side's gradient of the candidate block) out */
FASTNN_SIMD_CLONES
static void SFX(gru_backward_row)(REAL *FASTNN_RESTRICT d, REAL *FASTNN_RESTRICT dh, REAL *FASTNN_RESTRICT cn,
                                  const REAL *FASTNN_RESTRICT g, const REAL *FASTNN_RESTRICT h_prev, int64_t U,
                                  int64_t len)
{
    int64_t j;
    for (j = 0; j < len; j++) {
        const REAL r = g[j], z = g[U + j], cand = g[2 * U + j];
        const REAL d_new = dh[j] * ((REAL)1 - z) * ((REAL)1 - cand * cand);
        d[j] = d_new * cn[j] * r * ((REAL)1 - r);
        d[U + j] = dh[j] * (h_prev[j] - cand) * z * ((REAL)1 - z);
        d[2 * U + j] = d_new * r;
        cn[j] = d_new;
        dh[j] = dh[j] * z;
    }
}

/* Units [u0, u1) of row i of step t: dh += this step's share of dy, then dgates[t][i] from dh (and the LSTM's
 * dc), dh reset to the part of the next dh that is not dgates W_hh and the LSTM's dc to dc f; the GRU's cells[t]
 * row (W_hn h + b_hn) is replaced by d_new. Unit by unit: any split of the units gives the same bits. */
static void SFX(backward_units)(const SFX(rnn_bwd) *c, int64_t t, int64_t i, int64_t u0, int64_t u1)
{
    const int64_t n = c->n, T = c->T, U = c->U, len = u1 - u0;
    REAL *dh = c->dh + i * U + u0;
    REAL *d = c->dgates + (t * n + i) * c->GU + u0;
    const REAL *g = c->gates + (t * n + i) * c->GU + u0;
    int64_t j;
    if (c->return_sequences) {
        const REAL *src = c->dy + (i * T + t) * U + u0;
        for (j = 0; j < len; j++) dh[j] += src[j];
    } else if (t == T - 1) {
        const REAL *src = c->dy + i * U + u0;
        for (j = 0; j < len; j++) dh[j] += src[j];
    }
    if (c->cell == FASTNN_CELL_SIMPLE)
        SFX(simple_backward_row)(d, dh, c->states + ((t + 1) * n + i) * U + u0, len, c->act);
    else if (c->cell == FASTNN_CELL_LSTM)
        SFX(lstm_backward_row)(d, dh, c->dc + i * U + u0, g, c->cells + (t * n + i) * U + u0,
                               c->cells + ((t + 1) * n + i) * U + u0, U, len);
    else
        SFX(gru_backward_row)(d, dh, c->cells + (t * n + i) * U + u0, g, c->states + (t * n + i) * U + u0, U, len);
}

static void SFX(backward_row)(const SFX(rnn_bwd) *c, int64_t t, int64_t i) { SFX(backward_units)(c, t, i, 0, c->U); }

/* Step t for batch rows [lo, hi): their gate gradients, then (product != 0) dh += dgates[t] W_hh for them, up to
 * four rows at a time (one at batch 1: rows of W_hh scaled by the gradients and summed). */
static void SFX(backward_rows)(const SFX(rnn_bwd) *c, int64_t t, int64_t lo, int64_t hi, int product)
{
    int64_t i0, i;
    for (i0 = lo; i0 < hi; i0 += DENSE_ROW_BLOCK) {
        const int64_t rows = hi - i0 < DENSE_ROW_BLOCK ? hi - i0 : DENSE_ROW_BLOCK;
        for (i = i0; i < i0 + rows; i++) SFX(backward_row)(c, t, i);
        if (product)
            SFX(gemm_block)(c->dh + i0 * c->U, c->dgates + (t * c->n + i0) * c->GU, c->GU, 1, c->W_hh, rows, c->GU,
                            c->U);
    }
}

/* The time loop of the backward pass for units [u0, u1) of every row (barrier: inside a region). */
static void SFX(backward_units_range)(const SFX(rnn_bwd) *c, int64_t u0, int64_t u1, int barrier)
{
    const int64_t n = c->n, U = c->U, GU = c->GU;
    int64_t t, i;
    for (t = c->T - 1; t >= 0; t--) {
        if (u0 < u1)
            for (i = 0; i < n; i++) SFX(backward_units)(c, t, i, u0, u1);
        if (barrier) {
            FASTNN_PRAGMA(omp barrier)
        }
        if (t > 0 && u0 < u1)
            SFX(rows_times_cols)(c->dh + u0, U, c->dgates + t * n * GU, GU, c->W_hh + u0, U, n, GU, u1 - u0);
    }
}

/* Every step of a batch by units: each thread owns units [u0, u1): their gate gradients, then (after a barrier:
 * the product reads all of dgates[t]) the same columns of dh += dgates[t] W_hh, which only it reads next. */
static void SFX(backward_steps_units)(const SFX(rnn_bwd) *c, int nt)
{
    if (nt <= 1) {
        SFX(backward_units_range)(c, 0, c->U, 0);
        return;
    }
    FASTNN_PRAGMA(omp parallel num_threads(nt))
    {
        int64_t u0, u1;
        SFX(own_units)(c->U, &u0, &u1);
        SFX(backward_units_range)(c, u0, u1, 1);
    }
}

int SFX(fastnn_rnn_backward)(REAL *dx, REAL *dW_ih, REAL *dW_hh, REAL *db_ih, REAL *db_hh, REAL *dgates,
                             REAL *gates, REAL *cells, REAL *carry, const REAL *dy, const REAL *x,
                             const REAL *states, const REAL *W_ih, const REAL *W_hh, int64_t n,
                             const fastnn_sequence *s, int n_threads)
{
    int rc = fastnn_check_sequence(s);
    if (rc != FASTNN_OK) return rc;
    if (n < 1 || !rnn_batch_fits(s, n)) return FASTNN_ESHAPE;
    const int cell = s->cell;
    if (dW_ih == NULL || dW_hh == NULL || db_ih == NULL || db_hh == NULL || dgates == NULL || gates == NULL ||
        carry == NULL || dy == NULL || x == NULL || states == NULL || W_ih == NULL || W_hh == NULL ||
        (cell != FASTNN_CELL_SIMPLE && cells == NULL))
        return FASTNN_EINVAL;
    const int64_t T = s->steps, F = s->features, U = s->units, GU = rnn_gate_blocks(cell) * U;
    int64_t t;
    REAL *dh = carry, *dc = carry + n * U;

    memset(dh, 0, (size_t)(n * U) * sizeof(REAL));
    if (cell == FASTNN_CELL_LSTM) memset(dc, 0, (size_t)(n * U) * sizeof(REAL));
    const SFX(rnn_bwd) c = {cell, s->act, s->return_sequences, n, T, U, GU, dgates, cells, dh, dc,
                            gates, states, dy, W_hh};
    const int blas_steps = n > 1 && rnn_mul3(n, GU, U) >= FASTNN_BLAS_MIN_WORK;
    if (SFX(units_steps)(n, GU, U, blas_steps)) {
        SFX(backward_steps_units)(&c, SFX(units_threads)(n, GU, U, T, n_threads));
    } else for (t = T - 1; t >= 0; t--) {
        const int product = t > 0;  /* the dh step 0 would pass on has nowhere to go: the initial state is a constant */
        if (blas_steps) {
            FASTNN_FOR_RANGE(n, rnn_mul3(n, GU, 16), n_threads, lo, hi, SFX(backward_rows)(&c, t, lo, hi, 0));
            if (product)
                SFX(fastnn_gemm)(FASTNN_GEMM_AUTO, 0, 0, n, U, GU, dgates + t * n * GU, W_hh, 1, dh, NULL, NULL,
                                 n_threads);
        } else {
            FASTNN_FOR_RANGE(n, rnn_mul3(n, GU, U), n_threads, lo, hi,
                             SFX(backward_rows)(&c, t, lo, hi, product));
        }
    }

    /* the recurrent side: dW_hh = dgates^T states[0:T], one product over every step and sequence */
    const int outer = rnn_outer_threads(rnn_mul3(n * T, GU, U > F ? U : F), n_threads);
    SFX(rnn_gemm)(1, GU, U, T * n, dgates, states, dW_hh, outer);
    SFX(rnn_column_sums)(db_hh, dgates, T * n, GU, outer);

    /* the input side, batch-major to meet x: dgates itself for one sequence (but the GRU's n block), else
     * gathered into gates */
    const REAL *G = dgates;
    if (n > 1 || cell == FASTNN_CELL_GRU) {
        FASTNN_FOR_RANGE(n * T, rnn_mul3(n, T, GU), outer, lo, hi, {
            int64_t r;
            for (r = lo; r < hi; r++) {
                const int64_t i = r / T, step = r % T;
                memcpy(gates + r * GU, dgates + (step * n + i) * GU, (size_t)GU * sizeof(REAL));
                if (cell == FASTNN_CELL_GRU)
                    memcpy(gates + r * GU + 2 * U, cells + (step * n + i) * U, (size_t)U * sizeof(REAL));
            }
        });
        G = gates;
    }
    SFX(rnn_gemm)(1, GU, F, n * T, G, x, dW_ih, outer);
    SFX(rnn_column_sums)(db_ih, G, n * T, GU, outer);
    if (dx != NULL) SFX(rnn_gemm)(0, n * T, F, GU, G, W_ih, dx, outer);
    return FASTNN_OK;
}

#undef RV_LEN
#undef RV_BYTES
#undef RNN_UNIT_BLOCK
#undef RNN_UNITS_MAX_BATCH
#undef RNN_UNITS_MAX_WEIGHT_BYTES
