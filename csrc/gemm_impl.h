/* gemm_impl.h -- template body of gemm.c, instantiated per REAL by fastnn_real.h: fastnn's own matrix product.
 *
 * C (m, n) = op(A) op(B), started from zeros, the bias row or C itself, then an element-wise activation, all
 * row-major. The layout is the one BLIS made standard: B is packed into panels of NR columns for a block of KC
 * rows of k (so a panel streams from L2 with unit stride), A into a micro-panel of MR rows for the same block
 * (it stays in L1 while every panel of B passes under it), and a micro-kernel keeps an MR x NR tile of C in
 * registers for the whole block. Packing also pads the edges with zeros, so edge tiles run the same kernel
 * into a scratch tile: every element of C is computed by the same instructions in the same order wherever it
 * falls, which makes results independent of the thread count and of the instruction set (AVX-512 or AVX2). */
#include <string.h>
#include "act_rows.h"
#if FASTNN_GEMM_X86
#include <immintrin.h>
#endif

/* ---- the micro-kernels: one per instruction set, chosen at run time (fastnn_gemm_isa) ---- */
#if FASTNN_GEMM_X86
#define KNAME SFX(gemm_kernel_avx512)
#define KMR 12
#define KBYTES 64
#define KTARGET __attribute__((target("avx512f,avx2,fma")))
#include "gemm_kernel.h"
#undef KNAME
#undef KMR
#undef KBYTES
#undef KTARGET

#define KNAME SFX(gemm_kernel_avx2)
#define KMR 6
#define KBYTES 32
#define KTARGET __attribute__((target("avx2,fma")))
#include "gemm_kernel.h"
#undef KNAME
#undef KMR
#undef KBYTES
#undef KTARGET
#endif

#if FASTNN_GEMM_VECTORS
#define KNAME SFX(gemm_kernel_vector)
#define KMR 4
#define KBYTES 16
#define KTARGET
#include "gemm_kernel.h"
#undef KNAME
#undef KMR
#undef KBYTES
#undef KTARGET
#endif

/* The portable kernel in plain C (compilers without GCC vectors): MR 4, NR 8, the same sums in the same order. */
static void SFX(gemm_kernel_plain)(int64_t kc, const REAL *FASTNN_RESTRICT a, const REAL *FASTNN_RESTRICT b,
                                   REAL *FASTNN_RESTRICT c, int64_t ldc, const REAL *init, int64_t init_ld)
{
    REAL acc[4][8];
    int64_t i, j, p;
    for (i = 0; i < 4; i++)
        for (j = 0; j < 8; j++) acc[i][j] = init ? init[i * init_ld + j] : (REAL)0;
    for (p = 0; p < kc; p++, a += 4, b += 8)
        for (i = 0; i < 4; i++)
            for (j = 0; j < 8; j++) acc[i][j] += a[i] * b[j];
    for (i = 0; i < 4; i++)
        for (j = 0; j < 8; j++) c[i * ldc + j] = acc[i][j];
}

typedef void (*SFX(gemm_kernel_fn))(int64_t, const REAL *, const REAL *, REAL *, int64_t, const REAL *, int64_t);

typedef struct {
    SFX(gemm_kernel_fn) kernel;
    int64_t mr, nr;
} SFX(gemm_shape);

/* The kernel of instruction set `isa` (FASTNN_ISA_*) and its tile */
static SFX(gemm_shape) SFX(gemm_pick)(int isa)
{
    SFX(gemm_shape) s;
#if FASTNN_GEMM_X86
    if (isa == FASTNN_ISA_AVX512) {
        s.kernel = SFX(gemm_kernel_avx512), s.mr = 12, s.nr = 128 / sizeof(REAL);
        return s;
    }
    if (isa == FASTNN_ISA_AVX2) {
        s.kernel = SFX(gemm_kernel_avx2), s.mr = 6, s.nr = 64 / sizeof(REAL);
        return s;
    }
#endif
#if FASTNN_GEMM_VECTORS
    if (isa == FASTNN_ISA_VECTOR) {
        s.kernel = SFX(gemm_kernel_vector), s.mr = 4, s.nr = 32 / sizeof(REAL);
        return s;
    }
#endif
    (void)isa;
    s.kernel = SFX(gemm_kernel_plain), s.mr = 4, s.nr = 8;
    return s;
}

/* ---- packing ---- */

/* out[p * width + i] = src[i * ld + p] for i < used (zeros up to width), p < kc: the transposing copy both
 * operands need when the kernel's direction runs across their stored rows (A not transposed: MR rows of x;
 * B transposed: NR rows of W for dx = dz W^T). With AVX-512, one gather fetches 16 (8) strided elements. */
#if FASTNN_GEMM_X86
__attribute__((target("avx512f"))) static void SFX(gemm_gather_avx512)(REAL *FASTNN_RESTRICT out, int64_t width,
                                                                        const REAL *src, int64_t ld, int64_t used,
                                                                        int64_t kc)
{
    const int lanes = 64 / (int)sizeof(REAL);
    int64_t p, i0;
    for (i0 = 0; i0 < width; i0 += lanes) {
        int64_t n_lanes = used - i0 < lanes ? (used - i0 > 0 ? used - i0 : 0) : lanes;
        int64_t t;
        if (sizeof(REAL) == sizeof(float)) {
            int32_t idx[16];
            for (t = 0; t < 16; t++) idx[t] = (int32_t)(t < n_lanes ? t * ld : 0);
            __m512i vidx = _mm512_loadu_si512((const void *)idx);
            __mmask16 live = (__mmask16)((1u << n_lanes) - 1u);
            const float *base = (const float *)src + i0 * ld;
            for (p = 0; p < kc; p++) {
                __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, vidx, base + p, 4);
                if (width - i0 >= 16)
                    _mm512_storeu_ps((float *)out + p * width + i0, v);
                else
                    _mm512_mask_storeu_ps((float *)out + p * width + i0, (__mmask16)((1u << (width - i0)) - 1u), v);
            }
        } else {
            int64_t idx[8];
            for (t = 0; t < 8; t++) idx[t] = t < n_lanes ? t * ld : 0;
            __m512i vidx = _mm512_loadu_si512((const void *)idx);
            __mmask8 live = (__mmask8)((1u << n_lanes) - 1u);
            const double *base = (const double *)src + i0 * ld;
            for (p = 0; p < kc; p++) {
                __m512d v = _mm512_mask_i64gather_pd(_mm512_setzero_pd(), live, vidx, base + p, 8);
                if (width - i0 >= 8)
                    _mm512_storeu_pd((double *)out + p * width + i0, v);
                else
                    _mm512_mask_storeu_pd((double *)out + p * width + i0, (__mmask8)((1u << (width - i0)) - 1u), v);
            }
        }
    }
}
#endif

static void SFX(gemm_gather)(REAL *FASTNN_RESTRICT out, int64_t width, const REAL *src, int64_t ld, int64_t used,
                             int64_t kc)
{
    int64_t i, p;
#if FASTNN_GEMM_X86
    /* int32 offsets for float: the farthest element must be within 2^31 elements */
    if (fastnn_gemm_isa() == FASTNN_ISA_AVX512 && (sizeof(REAL) == sizeof(double) || (width - 1) * ld < INT32_MAX)) {
        SFX(gemm_gather_avx512)(out, width, src, ld, used, kc);
        return;
    }
#endif
    for (i = 0; i < used; i++) {
        const REAL *row = src + i * ld;
        for (p = 0; p < kc; p++) out[p * width + i] = row[p];
    }
    for (; i < width; i++)
        for (p = 0; p < kc; p++) out[p * width + i] = 0;
}

/* Columns [j0, j0 + nc) of rows [p0, p0 + kc) of op(B) into panels of nr columns: panel q holds
 * Bp[q * kc * nr + p * nr + j] = op(B)(p0 + p, j0 + q * nr + j), zero past column nc. */
static void SFX(gemm_pack_b)(REAL *FASTNN_RESTRICT Bp, const REAL *B, int trans_b, int64_t ldb, int64_t p0,
                             int64_t kc, int64_t j0, int64_t nc, int64_t nr)
{
    int64_t q, p, j;
    for (q = 0; q < nc; q += nr) {
        int64_t w = nc - q < nr ? nc - q : nr;
        REAL *panel = Bp + q * kc;
        if (!trans_b) {
            for (p = 0; p < kc; p++) {
                const REAL *src = B + (p0 + p) * ldb + j0 + q;
                REAL *dst = panel + p * nr;
                memcpy(dst, src, (size_t)w * sizeof(REAL));
                for (j = w; j < nr; j++) dst[j] = 0;
            }
        } else {
            /* op(B)(p, j) = B[j, p]: each stored row of B is one column of the panel */
            SFX(gemm_gather)(panel, nr, B + (j0 + q) * ldb + p0, ldb, w, kc);
        }
    }
}

/* Rows [i0, i0 + mr_used) of columns [p0, p0 + kc) of op(A) as Ap[p * mr + i], zero past row mr_used. */
static void SFX(gemm_pack_a)(REAL *FASTNN_RESTRICT Ap, const REAL *A, int trans_a, int64_t lda, int64_t i0,
                             int64_t mr_used, int64_t p0, int64_t kc, int64_t mr)
{
    int64_t i, p;
    if (trans_a) {
        /* op(A)(i, p) = A[p, i]: the mr values of one p are adjacent */
        for (p = 0; p < kc; p++) {
            const REAL *src = A + (p0 + p) * lda + i0;
            REAL *dst = Ap + p * mr;
            for (i = 0; i < mr_used; i++) dst[i] = src[i];
            for (; i < mr; i++) dst[i] = 0;
        }
    } else {
        SFX(gemm_gather)(Ap, mr, A + i0 * lda + p0, lda, mr_used, kc);
    }
}

/* ---- the blocked product over one block of C ---- */

/* The epilogue on rows [i0, i0 + rows) x columns [j0, j0 + cols) of a finished C (m, n), while they are in L1:
 * the forward activation (not softmax, which needs whole rows), or the derivative mask of the layer below. */
static void SFX(gemm_epilogue)(REAL *C, int64_t n, int64_t i0, int64_t j0, int64_t rows, int64_t cols,
                               const fastnn_gemm_epilogue *e)
{
    int64_t i;
    if (e == NULL || e->act == FASTNN_ACT_LINEAR || e->act == FASTNN_ACT_SOFTMAX) return;
    if (e->deriv_of != NULL) {
        const REAL *a = (const REAL *)e->deriv_of;
        for (i = i0; i < i0 + rows; i++) SFX(act_deriv_inplace)(C + i * n + j0, a + i * n + j0, cols, e->act, (REAL)e->alpha);
    } else {
        for (i = i0; i < i0 + rows; i++) SFX(act_apply)(C + i * n + j0, cols, e->act, (REAL)e->alpha);
    }
}

/* The block [r0, r1) x [c0, c1) of C = init + op(A) op(B) with the packing space `space` (fastnn_gemm_space_bytes
 * bytes). init: bias (a row of n) when given, else C when accumulate, else zeros. */
static void SFX(gemm_block_own)(const SFX(gemm_shape) *ks, int trans_a, int trans_b, int64_t m, int64_t n,
                                int64_t k, const REAL *A, const REAL *B, int accumulate, REAL *C, const REAL *bias,
                                const fastnn_gemm_epilogue *e, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                void *space)
{
    const int64_t mr = ks->mr, nr = ks->nr, kc_max = FASTNN_GEMM_KC;
    /* k in equal blocks no longer than a micro-panel of A that fits L1 (a short last block would pay a whole
     * load and store of C for a few multiply-adds), and n in equal blocks whose packed B fits the space (L2) */
    const int64_t a_fit = FASTNN_GEMM_A_PANEL_BYTES / (int64_t)(mr * sizeof(REAL));
    const int64_t kc_cap = a_fit < kc_max ? a_fit : kc_max;
    const int64_t k_blocks = (k + kc_cap - 1) / kc_cap;
    const int64_t kc_even = (k + k_blocks - 1) / k_blocks;
    const int64_t nc_cap = FASTNN_GEMM_B_BYTES / (int64_t)sizeof(REAL) / kc_even / nr * nr;
    const int64_t n_blocks = (c1 - c0 + nc_cap - 1) / nc_cap;
    const int64_t nc_max = ((c1 - c0 + n_blocks - 1) / n_blocks + nr - 1) / nr * nr;
    const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
    REAL *Bp = (REAL *)space;
    REAL *Ap = (REAL *)((char *)space + FASTNN_GEMM_B_BYTES);
    REAL *tile = Ap + kc_max * FASTNN_GEMM_MR_MAX;       /* an edge tile of C */
    REAL *bias_pad = tile + FASTNN_GEMM_MR_MAX * FASTNN_GEMM_NR_MAX; /* the bias of an edge tile */
    int64_t jc, pc, ir, jr, i;
    (void)m;
    for (jc = c0; jc < c1; jc += nc_max) {
        int64_t nc = c1 - jc < nc_max ? c1 - jc : nc_max;
        for (pc = 0; pc < k; pc += kc_even) {
            int64_t kc = k - pc < kc_even ? k - pc : kc_even;
            int first = pc == 0, last = pc + kc == k;
            SFX(gemm_pack_b)(Bp, B, trans_b, ldb, pc, kc, jc, nc, nr);
            for (ir = r0; ir < r1; ir += mr) {
                int64_t rows = r1 - ir < mr ? r1 - ir : mr;
                SFX(gemm_pack_a)(Ap, A, trans_a, lda, ir, rows, pc, kc, mr);
                for (jr = 0; jr < nc; jr += nr) {
                    int64_t cols = nc - jr < nr ? nc - jr : nr;
                    REAL *ct = C + ir * n + jc + jr;
                    const REAL *init = ct;
                    int64_t init_ld = n;
                    if (first && bias != NULL) {
                        init = bias + jc + jr, init_ld = 0;
                    } else if (first && !accumulate) {
                        init = NULL;
                    }
                    if (rows == mr && cols == nr) {
                        ks->kernel(kc, Ap, Bp + jr * kc, ct, n, init, init_ld);
                    } else {
                        /* an edge: the same kernel into a scratch tile, then the part that exists */
                        if (init != NULL && init_ld == 0) {
                            memcpy(bias_pad, init, (size_t)cols * sizeof(REAL));
                            for (i = cols; i < nr; i++) bias_pad[i] = 0;
                            init = bias_pad;
                        } else if (init != NULL) {
                            for (i = 0; i < mr * nr; i++) tile[i] = 0;
                            for (i = 0; i < rows; i++) memcpy(tile + i * nr, ct + i * n, (size_t)cols * sizeof(REAL));
                            init = tile, init_ld = nr;
                        }
                        ks->kernel(kc, Ap, Bp + jr * kc, tile, nr, init, init_ld);
                        for (i = 0; i < rows; i++) memcpy(ct + i * n, tile + i * nr, (size_t)cols * sizeof(REAL));
                    }
                    if (last) SFX(gemm_epilogue)(C, n, ir, jc + jr, rows, cols, e);
                }
            }
        }
    }
}

/* The readable definition (llm.c keeps its naive matmul beside the fast one for the same reason): every
 * element summed from its start value in the order p = 0, 1, ..., k - 1. */
static void SFX(gemm_block_loops)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                                  const REAL *B, int accumulate, REAL *C, const REAL *bias,
                                  const fastnn_gemm_epilogue *e, int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    int64_t i, j, p;
    for (i = r0; i < r1; i++) {
        for (j = c0; j < c1; j++) {
            REAL acc = bias ? bias[j] : accumulate ? C[i * n + j] : (REAL)0;
            for (p = 0; p < k; p++)
                acc += (trans_a ? A[p * m + i] : A[i * k + p]) * (trans_b ? B[j * k + p] : B[p * n + j]);
            C[i * n + j] = acc;
        }
        SFX(gemm_epilogue)(C, n, i, c0, 1, c1 - c0, e);
    }
}

/* Start values only (k == 0) */
static void SFX(gemm_block_init)(int64_t n, int accumulate, REAL *C, const REAL *bias, const fastnn_gemm_epilogue *e,
                                 int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    int64_t i, j;
    for (i = r0; i < r1; i++) {
        for (j = c0; j < c1; j++)
            if (bias || !accumulate) C[i * n + j] = bias ? bias[j] : (REAL)0;
        SFX(gemm_epilogue)(C, n, i, c0, 1, c1 - c0, e);
    }
}

/* One thread's block by engine: the own kernels (with packing space from the pool), the BLAS, or the loops. */
static void SFX(gemm_block)(int engine, const SFX(gemm_shape) *ks, int trans_a, int trans_b, int64_t m, int64_t n,
                            int64_t k, const REAL *A, const REAL *B, int accumulate, REAL *C, const REAL *bias,
                            const fastnn_gemm_epilogue *e, int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    int64_t i, j;
    if (r0 >= r1 || c0 >= c1) return;
    if (k == 0) {
        SFX(gemm_block_init)(n, accumulate, C, bias, e, r0, r1, c0, c1);
        return;
    }
    if (engine == FASTNN_GEMM_OWN) {
        void *space = fastnn_gemm_space_acquire();
        if (space != NULL) {
            SFX(gemm_block_own)(ks, trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e, r0, r1, c0, c1, space);
            fastnn_gemm_space_release(space);
            return;
        }
        engine = FASTNN_GEMM_LOOPS; /* no pool (fastnn_gemm_reserve failed): still a right answer */
    }
    if (engine == FASTNN_GEMM_BLAS) {
        if (bias != NULL)
            for (i = r0; i < r1; i++)
                for (j = c0; j < c1; j++) C[i * n + j] = bias[j];
        SFX(fastnn_blas_gemm_block)(trans_a, trans_b, m, n, k, A, B, (bias || accumulate) ? (REAL)1 : (REAL)0, C, r0,
                                    r1, c0, c1);
        SFX(gemm_epilogue)(C, n, r0, c0, r1 - r0, c1 - c0, e);
        return;
    }
    SFX(gemm_block_loops)(trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e, r0, r1, c0, c1);
}

/* The engine (FASTNN_GEMM_AUTO resolved) and the number of threads fastnn_gemm runs this product on, after
 * checking its arguments: FASTNN_OK, or the error fastnn_gemm returns. */
int SFX(fastnn_gemm_prepare)(int *engine, int *nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                             const REAL *A, const REAL *B, const REAL *C, const fastnn_gemm_epilogue *e, int n_threads)
{
    int by_rows, eng = *engine;
    SFX(gemm_shape) ks;
    *nt = 0;
    if (m < 0 || n < 0 || k < 0) return FASTNN_ESHAPE;
    if (m == 0 || n == 0) return FASTNN_OK;
    if (C == NULL || (k > 0 && (A == NULL || B == NULL))) return FASTNN_EINVAL;
    if (e != NULL && (e->act < FASTNN_ACT_LINEAR || e->act > FASTNN_ACT_EXP)) return FASTNN_EINVAL;
    if (e != NULL && e->deriv_of != NULL && e->act == FASTNN_ACT_SOFTMAX) return FASTNN_EINVAL;
    if (eng == FASTNN_GEMM_AUTO) eng = fastnn_gemm_choose(sizeof(REAL) == sizeof(double), trans_a, trans_b, m, n, k);
    if (eng == FASTNN_GEMM_BLAS && !fastnn_blas_fits(m, n, k)) eng = FASTNN_GEMM_OWN;
    if (eng < FASTNN_GEMM_LOOPS || eng > FASTNN_GEMM_BLAS) return FASTNN_EINVAL;
    ks = SFX(gemm_pick)(fastnn_gemm_isa());
    *engine = eng;
    *nt = fastnn_gemm_plan(eng, m, n, k, ks.mr, ks.nr, n_threads, &by_rows);
    return FASTNN_OK;
}

/* Thread t's band of a product fastnn_gemm_prepare gave `nt` threads (nothing for t >= nt): C is cut into nt
 * bands of whole tiles, across the larger of m and n. Runs inside a parallel region of at least nt threads,
 * so that several independent products (and other work) share one region. */
void SFX(fastnn_gemm_share)(int engine, int nt, int t, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                            const REAL *A, const REAL *B, int accumulate, REAL *C, const REAL *bias,
                            const fastnn_gemm_epilogue *e)
{
    SFX(gemm_shape) ks = SFX(gemm_pick)(fastnn_gemm_isa());
    int64_t r0 = 0, r1 = m, c0 = 0, c1 = n;
    if (t >= nt) return;
    if (nt > 1 && n < m)
        fastnn_gemm_band(m, ks.mr, t, nt, &r0, &r1);
    else if (nt > 1)
        fastnn_gemm_band(n, ks.nr, t, nt, &c0, &c1);
    SFX(gemm_block)(engine, &ks, trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e, r0, r1, c0, c1);
}

/* C (m, n) = init + op(A) op(B), then the epilogue, over up to n_threads threads. op(A) is (m, k), stored (k, m)
 * when trans_a; op(B) is (k, n), stored (n, k) when trans_b; all row-major and dense. init is the bias row when
 * bias is given, else C when accumulate, else zeros. engine FASTNN_GEMM_AUTO takes the choice recorded for this
 * shape (fastnn_gemm_choose). Must not be called inside an OpenMP region. */
int SFX(fastnn_gemm)(int engine, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                     const REAL *B, int accumulate, REAL *C, const REAL *bias, const fastnn_gemm_epilogue *e,
                     int n_threads)
{
    int nt, rc = SFX(fastnn_gemm_prepare)(&engine, &nt, trans_a, trans_b, m, n, k, A, B, C, e, n_threads);
    if (rc != FASTNN_OK || nt == 0) return rc;
    if (nt == 1) {
        SFX(fastnn_gemm_share)(engine, 1, 0, trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e);
        return FASTNN_OK;
    }
    FASTNN_PRAGMA(omp parallel num_threads(nt))
    {
        /* the team OpenMP really gives may be smaller (nested regions, thread limits) */
        int team = omp_get_num_threads(), t = omp_get_thread_num();
        SFX(fastnn_gemm_share)(engine, team, t, trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e);
    }
    return FASTNN_OK;
}
