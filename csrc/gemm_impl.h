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
            for (j = 0; j < w; j++) {
                const REAL *src = B + (j0 + q + j) * ldb + p0;
                for (p = 0; p < kc; p++) panel[p * nr + j] = src[p];
            }
            for (j = w; j < nr; j++)
                for (p = 0; p < kc; p++) panel[p * nr + j] = 0;
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
        for (i = 0; i < mr_used; i++) {
            const REAL *src = A + (i0 + i) * lda + p0;
            for (p = 0; p < kc; p++) Ap[p * mr + i] = src[p];
        }
        for (; i < mr; i++)
            for (p = 0; p < kc; p++) Ap[p * mr + i] = 0;
    }
}

/* ---- the blocked product over one block of C ---- */

/* The epilogue on rows [0, rows) x columns [0, cols) of a finished tile (row stride ldc): the activation of
 * the forward pass (not softmax, which needs whole rows), while the tile is in L1. */
static void SFX(gemm_epilogue)(REAL *c, int64_t ldc, int64_t rows, int64_t cols, const fastnn_gemm_epilogue *e)
{
    int64_t i;
    if (e == NULL || e->act == FASTNN_ACT_LINEAR || e->act == FASTNN_ACT_SOFTMAX) return;
    for (i = 0; i < rows; i++) SFX(act_apply)(c + i * ldc, cols, e->act, (REAL)e->alpha);
}

/* The block [r0, r1) x [c0, c1) of C = init + op(A) op(B) with the packing space `space` (fastnn_gemm_space_bytes
 * bytes). init: bias (a row of n) when given, else C when accumulate, else zeros. */
static void SFX(gemm_block_own)(const SFX(gemm_shape) *ks, int trans_a, int trans_b, int64_t m, int64_t n,
                                int64_t k, const REAL *A, const REAL *B, int accumulate, REAL *C, const REAL *bias,
                                const fastnn_gemm_epilogue *e, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                void *space)
{
    const int64_t mr = ks->mr, nr = ks->nr, kc_max = FASTNN_GEMM_KC;
    const int64_t nc_max = FASTNN_GEMM_NC_BYTES / (int64_t)sizeof(REAL);
    const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
    REAL *Bp = (REAL *)space;
    REAL *Ap = Bp + kc_max * nc_max;
    REAL *tile = Ap + kc_max * FASTNN_GEMM_MR_MAX;       /* an edge tile of C */
    REAL *bias_pad = tile + FASTNN_GEMM_MR_MAX * FASTNN_GEMM_NR_MAX; /* the bias of an edge tile */
    int64_t jc, pc, ir, jr, i;
    (void)m;
    for (jc = c0; jc < c1; jc += nc_max) {
        int64_t nc = c1 - jc < nc_max ? c1 - jc : nc_max;
        for (pc = 0; pc < k; pc += kc_max) {
            int64_t kc = k - pc < kc_max ? k - pc : kc_max;
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
                    if (last) SFX(gemm_epilogue)(ct, n, rows, cols, e);
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
        SFX(gemm_epilogue)(C + i * n + c0, n, 1, c1 - c0, e);
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
        SFX(gemm_epilogue)(C + i * n + c0, n, 1, c1 - c0, e);
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
        for (i = r0; i < r1; i++) SFX(gemm_epilogue)(C + i * n + c0, n, 1, c1 - c0, e);
        return;
    }
    SFX(gemm_block_loops)(trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e, r0, r1, c0, c1);
}

/* C (m, n) = init + op(A) op(B), then the epilogue, over up to n_threads threads. op(A) is (m, k), stored (k, m)
 * when trans_a; op(B) is (k, n), stored (n, k) when trans_b; all row-major and dense. init is the bias row when
 * bias is given, else C when accumulate, else zeros. engine FASTNN_GEMM_AUTO takes the choice recorded for this
 * shape (fastnn_gemm_choose). Must not be called inside an OpenMP region. */
int SFX(fastnn_gemm)(int engine, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                     const REAL *B, int accumulate, REAL *C, const REAL *bias, const fastnn_gemm_epilogue *e,
                     int n_threads)
{
    int by_rows, nt;
    SFX(gemm_shape) ks;
    if (m < 0 || n < 0 || k < 0) return FASTNN_ESHAPE;
    if (m == 0 || n == 0) return FASTNN_OK;
    if (C == NULL || (k > 0 && (A == NULL || B == NULL))) return FASTNN_EINVAL;
    if (e != NULL && (e->act < FASTNN_ACT_LINEAR || e->act > FASTNN_ACT_EXP)) return FASTNN_EINVAL;
    if (engine == FASTNN_GEMM_AUTO)
        engine = fastnn_gemm_choose(sizeof(REAL) == sizeof(double), trans_a, trans_b, m, n, k, n_threads);
    if (engine == FASTNN_GEMM_BLAS && !fastnn_blas_fits(m, n, k)) engine = FASTNN_GEMM_OWN;
    if (engine < FASTNN_GEMM_LOOPS || engine > FASTNN_GEMM_BLAS) return FASTNN_EINVAL;
    ks = SFX(gemm_pick)(fastnn_gemm_isa());
    nt = fastnn_gemm_plan(engine, m, n, k, ks.mr, ks.nr, n_threads, &by_rows);
    if (nt <= 1) {
        SFX(gemm_block)(engine, &ks, trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e, 0, m, 0, n);
        return FASTNN_OK;
    }
    FASTNN_PRAGMA(omp parallel num_threads(nt))
    {
        int64_t r0 = 0, r1 = m, c0 = 0, c1 = n;
        if (by_rows)
            fastnn_gemm_band(m, ks.mr, omp_get_thread_num(), omp_get_num_threads(), &r0, &r1);
        else
            fastnn_gemm_band(n, ks.nr, omp_get_thread_num(), omp_get_num_threads(), &c0, &c1);
        SFX(gemm_block)(engine, &ks, trans_a, trans_b, m, n, k, A, B, accumulate, C, bias, e, r0, r1, c0, c1);
    }
    return FASTNN_OK;
}
