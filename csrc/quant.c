/*
 * quant.c -- int8 inference: dynamic per-row uint8 quantization of activations, the u8 x s8 -> s32 integer GEMM
 * on packed int8 weights (a portable C99 reference and three x86 SIMD paths chosen at run time), and the fused
 * epilogue (zero-point correction, scales, bias, activation).
 *
 * Packed weights (fastnn/_py/quant.py: q8_pack writes them, for both backends): a (k, n) int8 matrix is stored as
 * ceil(n/16) column blocks of 16 output columns; each block holds kq = ceil(k/4) groups of 64 bytes, and group g
 * holds, for column c = 0..15 of the block, the 4 weights of rows 4g..4g+3 (zero past k or n):
 *     packed[((jb * kq + g) * 16 + c) * 4 + t] = w[4 g + t, 16 jb + c].
 * So one 32-bit lane holds 4 consecutive k values of one column: the operand layout of vpdpbusd.
 *
 * Activations a (m, lda) are uint8 with lda >= 4 kq; the bytes between k and 4 kq are read but meet zero weights.
 *
 * Exactness: every path sums the same integer products; each product is at most 255 * 128 in magnitude and the
 * sum is kept in int32, so results are exact (and identical across paths) while k * 255 * 128 < 2^31, i.e.
 * k <= FASTNN_Q8_MAX_K. Larger k is refused (EINVAL). AVX2 widens u8 and s8 to s16 and uses vpmaddwd, whose pair
 * sums (<= 2 * 255 * 128) cannot saturate; vpmaddubsw is not used because its s16 pair sums can.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fastnn_internal.h"
#include "fastnn_omp.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define Q8_X86 1
/* target("avx512vnni") and its cpu_supports name need gcc >= 9 / clang >= 6; target("avxvnni") gcc >= 11 / clang >= 12, and clang knows
 * __builtin_cpu_supports("avxvnni") from 16 */
#if defined(__clang__)
#define Q8_HAVE_AVX512VNNI (__clang_major__ >= 6)
#define Q8_HAVE_AVXVNNI (__clang_major__ >= 16) /* __builtin_cpu_supports("avxvnni") */
#else
#define Q8_HAVE_AVX512VNNI (__GNUC__ >= 9)
#define Q8_HAVE_AVXVNNI (__GNUC__ >= 11)
#endif
#else
#define Q8_X86 0
#define Q8_HAVE_AVX512VNNI 0
#define Q8_HAVE_AVXVNNI 0
#endif

#define Q8_BLOCK 16  /* output columns per packed block */
#define Q8_GROUP 4   /* k values per 32-bit lane */

static int64_t q8_groups(int64_t k) { return (k + Q8_GROUP - 1) / Q8_GROUP; }

/* ------------------------------------------------------------------------------------------ path selection */
int fastnn_q8_path_supported(int path)
{
    switch (path) {
    case FASTNN_Q8_PORTABLE:
        return 1;
#if Q8_X86
    case FASTNN_Q8_AVX2:
        return __builtin_cpu_supports("avx2");
#if Q8_HAVE_AVXVNNI
    case FASTNN_Q8_AVX_VNNI:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni");
#endif
#if Q8_HAVE_AVX512VNNI
    case FASTNN_Q8_AVX512_VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
#endif
#endif
    default:
        return 0;
    }
}

int fastnn_q8_best_path(void)
{
    if (fastnn_q8_path_supported(FASTNN_Q8_AVX512_VNNI)) return FASTNN_Q8_AVX512_VNNI;
    if (fastnn_q8_path_supported(FASTNN_Q8_AVX_VNNI)) return FASTNN_Q8_AVX_VNNI;
    if (fastnn_q8_path_supported(FASTNN_Q8_AVX2)) return FASTNN_Q8_AVX2;
    return FASTNN_Q8_PORTABLE;
}

/* ----------------------------------------------------------------------------------------- portable reference */
/* c[i, j] for rows [i0, i1): the readable definition every other path must equal. */
static void q8_rows_portable(int32_t *c, const uint8_t *a, const int8_t *bp, int64_t i0, int64_t i1, int64_t n,
                             int64_t k, int64_t lda)
{
    int64_t kq = q8_groups(k);
    for (int64_t i = i0; i < i1; i++) {
        const uint8_t *ai = a + i * lda;
        for (int64_t j = 0; j < n; j++) {
            const int8_t *col = bp + ((j / Q8_BLOCK) * kq * Q8_BLOCK + (j % Q8_BLOCK)) * Q8_GROUP;
            int32_t sum = 0;
            for (int64_t kk = 0; kk < k; kk++)
                sum += (int32_t)ai[kk] * (int32_t)col[(kk / Q8_GROUP) * Q8_BLOCK * Q8_GROUP + kk % Q8_GROUP];
            c[i * n + j] = sum;
        }
    }
}

#if Q8_X86
static inline int32_t q8_lane(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
#endif

/* ---------------------------------------------------------------------------------------- AVX-512 VNNI path */
#if Q8_X86 && Q8_HAVE_AVX512VNNI
#define T512 __attribute__((target("avx512f,avx512bw,avx512vnni")))
/* MR rows (1..4) x NR column blocks (1..4) of 16 columns: MR * NR independent accumulators. */
static inline __attribute__((always_inline)) T512 void q8_tile_512(
    int32_t *c, const uint8_t *a, const int8_t *bp, int64_t i, int64_t jb, int64_t n, int64_t kq, int64_t lda,
    const int MR, const int NR)
{
    __m512i acc[4][4];
    for (int r = 0; r < MR; r++)
        for (int s = 0; s < NR; s++) acc[r][s] = _mm512_setzero_si512();
    const int8_t *b0 = bp + jb * kq * 64;
    for (int64_t g = 0; g < kq; g++) {
        __m512i b[4];
        for (int s = 0; s < NR; s++) b[s] = _mm512_loadu_si512((const void *)(b0 + (s * kq + g) * 64));
        for (int r = 0; r < MR; r++) {
            __m512i av = _mm512_set1_epi32(q8_lane(a + (i + r) * lda + 4 * g));
            for (int s = 0; s < NR; s++) acc[r][s] = _mm512_dpbusd_epi32(acc[r][s], av, b[s]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int s = 0; s < NR; s++) {
            int64_t j = (jb + s) * Q8_BLOCK, left = n - j;
            int32_t *dst = c + (i + r) * n + j;
            if (left >= Q8_BLOCK) _mm512_storeu_si512((void *)dst, acc[r][s]);
            else _mm512_mask_storeu_epi32((void *)dst, (__mmask16)((1u << left) - 1u), acc[r][s]);
        }
}

#define Q8_TILES(fn, MRMAX, NRMAX)                                                                          \
    static void fn##_rows(int32_t *c, const uint8_t *a, const int8_t *bp, int64_t i0, int64_t i1,           \
                          int64_t n, int64_t k, int64_t lda)                                                 \
    {                                                                                                        \
        int64_t kq = q8_groups(k), nb = (n + Q8_BLOCK - 1) / Q8_BLOCK;                                       \
        for (int64_t i = i0; i < i1; i += MRMAX) {                                                           \
            int mr = (int)(i1 - i < MRMAX ? i1 - i : MRMAX);                                                 \
            for (int64_t jb = 0; jb < nb; jb += NRMAX) {                                                     \
                int nr = (int)(nb - jb < NRMAX ? nb - jb : NRMAX);                                           \
                switch (mr * 8 + nr) {                                                                       \
                Q8_CASES(fn)                                                                                 \
                default: break;                                                                              \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

#define Q8_CASE(fn, MR, NR) case MR * 8 + NR: fn(c, a, bp, i, jb, n, kq, lda, MR, NR); break;
#define Q8_CASES_4x4(fn)                                                                                     \
    Q8_CASE(fn, 1, 1) Q8_CASE(fn, 1, 2) Q8_CASE(fn, 1, 3) Q8_CASE(fn, 1, 4)                                  \
    Q8_CASE(fn, 2, 1) Q8_CASE(fn, 2, 2) Q8_CASE(fn, 2, 3) Q8_CASE(fn, 2, 4)                                  \
    Q8_CASE(fn, 3, 1) Q8_CASE(fn, 3, 2) Q8_CASE(fn, 3, 3) Q8_CASE(fn, 3, 4)                                  \
    Q8_CASE(fn, 4, 1) Q8_CASE(fn, 4, 2) Q8_CASE(fn, 4, 3) Q8_CASE(fn, 4, 4)
#define Q8_CASES(fn) Q8_CASES_4x4(fn)
T512 Q8_TILES(q8_tile_512, 4, 4)
#undef Q8_CASES
#endif

/* ------------------------------------------------------------------------------------------- AVX-VNNI path */
#if Q8_X86 && Q8_HAVE_AVXVNNI
#define TVNNI __attribute__((target("avx2,avxvnni")))
/* one 16-column block is two 256-bit halves (columns 0-7 and 8-15 of the block) */
static inline __attribute__((always_inline)) TVNNI void q8_tile_vnni256(
    int32_t *c, const uint8_t *a, const int8_t *bp, int64_t i, int64_t jb, int64_t n, int64_t kq, int64_t lda,
    const int MR, const int NR)
{
    __m256i acc[4][4];
    for (int r = 0; r < MR; r++)
        for (int s = 0; s < 2 * NR; s++) acc[r][s] = _mm256_setzero_si256();
    const int8_t *b0 = bp + jb * kq * 64;
    for (int64_t g = 0; g < kq; g++) {
        __m256i b[4];
        for (int s = 0; s < NR; s++) {
            const int8_t *blk = b0 + (s * kq + g) * 64;
            b[2 * s] = _mm256_loadu_si256((const __m256i *)blk);
            b[2 * s + 1] = _mm256_loadu_si256((const __m256i *)(blk + 32));
        }
        for (int r = 0; r < MR; r++) {
            __m256i av = _mm256_set1_epi32(q8_lane(a + (i + r) * lda + 4 * g));
            for (int s = 0; s < 2 * NR; s++) acc[r][s] = _mm256_dpbusd_avx_epi32(acc[r][s], av, b[s]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int s = 0; s < 2 * NR; s++) {
            int64_t j = jb * Q8_BLOCK + s * 8, left = n - j;
            int32_t *dst = c + (i + r) * n + j;
            if (left >= 8) {
                _mm256_storeu_si256((__m256i *)dst, acc[r][s]);
            } else if (left > 0) {
                int32_t tmp[8];
                _mm256_storeu_si256((__m256i *)tmp, acc[r][s]);
                memcpy(dst, tmp, (size_t)left * sizeof *tmp);
            }
        }
}
#define Q8_CASES(fn) Q8_CASE(fn, 1, 1) Q8_CASE(fn, 1, 2) Q8_CASE(fn, 2, 1) Q8_CASE(fn, 2, 2)
TVNNI Q8_TILES(q8_tile_vnni256, 2, 2)
#undef Q8_CASES
#endif

/* ----------------------------------------------------------------------------------------------- AVX2 path */
#if Q8_X86
#define TAVX2 __attribute__((target("avx2")))
/* A 64-byte group of a block is 4 chunks of 16 bytes (4 columns x 4 k). Each chunk widened to s16 and multiplied
 * by the row's 4 activations (widened, repeated 4 times) with vpmaddwd gives, per column, two int32 partial
 * sums (k 0-1 and k 2-3), kept apart until the end. */
static inline __attribute__((always_inline)) TAVX2 void q8_tile_avx2(
    int32_t *c, const uint8_t *a, const int8_t *bp, int64_t i, int64_t jb, int64_t n, int64_t kq, int64_t lda,
    const int MR, const int NR)
{
    __m256i acc[2][4];
    (void)NR;
    for (int r = 0; r < MR; r++)
        for (int s = 0; s < 4; s++) acc[r][s] = _mm256_setzero_si256();
    const int8_t *b0 = bp + jb * kq * 64;
    for (int64_t g = 0; g < kq; g++) {
        __m256i b[4];
        for (int s = 0; s < 4; s++)
            b[s] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b0 + g * 64 + s * 16)));
        for (int r = 0; r < MR; r++) {
            __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi32(q8_lane(a + (i + r) * lda + 4 * g)));
            for (int s = 0; s < 4; s++) acc[r][s] = _mm256_add_epi32(acc[r][s], _mm256_madd_epi16(av, b[s]));
        }
    }
    for (int r = 0; r < MR; r++) {
        int32_t pairs[32];
        for (int s = 0; s < 4; s++) _mm256_storeu_si256((__m256i *)(pairs + 8 * s), acc[r][s]);
        int64_t j0 = jb * Q8_BLOCK;
        for (int q = 0; q < Q8_BLOCK && j0 + q < n; q++)
            c[(i + r) * n + j0 + q] = (int32_t)((uint32_t)pairs[2 * q] + (uint32_t)pairs[2 * q + 1]);
    }
}
#define Q8_CASES(fn) Q8_CASE(fn, 1, 1) Q8_CASE(fn, 2, 1)
TAVX2 Q8_TILES(q8_tile_avx2, 2, 1)
#undef Q8_CASES
#endif

/* c rows [i0, i1) on a path (already checked as supported) */
static void q8_rows(int path, int32_t *c, const uint8_t *a, const int8_t *bp, int64_t i0, int64_t i1, int64_t n,
                    int64_t k, int64_t lda)
{
    switch (path) {
#if Q8_X86 && Q8_HAVE_AVX512VNNI
    case FASTNN_Q8_AVX512_VNNI: q8_tile_512_rows(c, a, bp, i0, i1, n, k, lda); return;
#endif
#if Q8_X86 && Q8_HAVE_AVXVNNI
    case FASTNN_Q8_AVX_VNNI: q8_tile_vnni256_rows(c, a, bp, i0, i1, n, k, lda); return;
#endif
#if Q8_X86
    case FASTNN_Q8_AVX2: q8_tile_avx2_rows(c, a, bp, i0, i1, n, k, lda); return;
#endif
    default: q8_rows_portable(c, a, bp, i0, i1, n, k, lda); return;
    }
}

static int q8_check_sizes(int64_t m, int64_t n, int64_t k, int64_t lda, int path)
{
    if (m < 0 || n < 1 || k < 1 || k > FASTNN_Q8_MAX_K) return FASTNN_EINVAL;
    if (lda < Q8_GROUP * q8_groups(k)) return FASTNN_ESHAPE;
    if (!fastnn_q8_path_supported(path)) return FASTNN_EINVAL;
    return FASTNN_OK;
}

/* Rows per parallel task: enough work per task, and a multiple of every path's row tile. */
#define Q8_TASK_ROWS 16

static int q8_threads(int64_t m, int64_t n, int64_t k, int n_threads)
{
    int64_t tasks = (m + Q8_TASK_ROWS - 1) / Q8_TASK_ROWS;
    if (n_threads < 1) n_threads = 1;
    if (m * n * k < (int64_t)1 << 18 || tasks < 2) return 1;
    return (int)(tasks < n_threads ? tasks : n_threads);
}

int fastnn_q8_gemm(int32_t *c, const uint8_t *a, const int8_t *bp, int64_t m, int64_t n, int64_t k, int64_t lda,
                   int path, int n_threads)
{
    int rc = q8_check_sizes(m, n, k, lda, path);
    if (rc != FASTNN_OK) return rc;
    if (m == 0) return FASTNN_OK;
    if (!c || !a || !bp) return FASTNN_EINVAL;
    int nt = q8_threads(m, n, k, n_threads);
    int64_t tasks = (m + Q8_TASK_ROWS - 1) / Q8_TASK_ROWS;
    FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i0 = t * Q8_TASK_ROWS, i1 = i0 + Q8_TASK_ROWS < m ? i0 + Q8_TASK_ROWS : m;
        q8_rows(path, c, a, bp, i0, i1, n, k, lda);
    }
    return FASTNN_OK;
}

/* ------------------------------------------------------------------------------- activation quantization */
/* One row: scale = (hi - lo) / 255 over [lo, hi] = [min(x, 0), max(x, 0)] (so 0 is exact), zero point
 * round(-lo / scale), q = clamp(round(x / scale) + zero point, 0, 255), rounding half to even (onnxruntime's
 * DynamicQuantizeLinear). An all-zero row gets scale 1. Returns 0, or -1 when the row is not finite. */
static inline __attribute__((always_inline)) int q8_finish_row(uint8_t *q, float *scale, int32_t *zero_point,
                                                               const float *x, int64_t k, int64_t ldq, float lo,
                                                               float hi);

static inline __attribute__((always_inline)) int q8_quantize_row_body(uint8_t *q, float *scale,
                                                                     int32_t *zero_point, const float *x,
                                                                     int64_t k, int64_t ldq)
{
    /* 8 independent lanes so the compiler can keep them in one vector register (min/max/sum reductions are
     * not reassociated without -ffast-math); `v < lo ? v : lo` is exactly minps. x * 0 is NaN for NaN or
     * infinity. */
    float lo8[8] = {0}, hi8[8] = {0}, bad8[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= k; j += 8)
        for (int l = 0; l < 8; l++) {
            float v = x[j + l];
            lo8[l] = v < lo8[l] ? v : lo8[l];
            hi8[l] = v > hi8[l] ? v : hi8[l];
            bad8[l] += v * 0.0f;
        }
    for (; j < k; j++) {
        float v = x[j];
        lo8[0] = v < lo8[0] ? v : lo8[0];
        hi8[0] = v > hi8[0] ? v : hi8[0];
        bad8[0] += v * 0.0f;
    }
    float lo = 0.0f, hi = 0.0f;
    for (int l = 0; l < 8; l++) {
        if (bad8[l] != 0.0f) return -1;
        lo = lo8[l] < lo ? lo8[l] : lo;
        hi = hi8[l] > hi ? hi8[l] : hi;
    }
    return q8_finish_row(q, scale, zero_point, x, k, ldq, lo, hi);
}

/* The quantization of a row given lo = min(x, 0) and hi = max(x, 0) (finite). */
static inline __attribute__((always_inline)) int q8_finish_row(uint8_t *q, float *scale, int32_t *zero_point,
                                                               const float *x, int64_t k, int64_t ldq, float lo,
                                                               float hi)
{
    int64_t j;
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f) || !isfinite(s)) s = 1.0f;
    float zf = nearbyintf(-lo / s);
    int32_t zp = (int32_t)(zf < 0.0f ? 0.0f : zf > 255.0f ? 255.0f : zf);
    /* |x / s| <= 255.x, so adding and subtracting 1.5 * 2^23 rounds to nearest, ties to even (as nearbyintf in
     * the default rounding mode, without a libm call per element) */
    const float magic = 12582912.0f, zpf = (float)zp;
    for (j = 0; j < k; j++) {
        float v = ((x[j] / s + magic) - magic) + zpf;
        v = v < 0.0f ? 0.0f : v;
        v = v > 255.0f ? 255.0f : v;
        q[j] = (uint8_t)(int32_t)v;
    }
    for (j = k; j < ldq; j++) q[j] = 0;
    *scale = s;
    *zero_point = zp;
    return 0;
}

/* The same body compiled for wider vectors where the CPU has them: only IEEE division, addition and
 * comparisons, so every variant gives the same bytes. */
#if Q8_X86
__attribute__((target("avx2"))) static int q8_quantize_row_avx2(uint8_t *q, float *scale, int32_t *zero_point,
                                                                 const float *x, int64_t k, int64_t ldq)
{
    __m256 lo8 = _mm256_setzero_ps(), hi8 = _mm256_setzero_ps(), bad8 = _mm256_setzero_ps();
    const __m256 zero = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        lo8 = _mm256_min_ps(v, lo8);
        hi8 = _mm256_max_ps(v, hi8);
        bad8 = _mm256_add_ps(bad8, _mm256_mul_ps(v, zero));
    }
    float lo_l[8], hi_l[8], bad_l[8];
    _mm256_storeu_ps(lo_l, lo8);
    _mm256_storeu_ps(hi_l, hi8);
    _mm256_storeu_ps(bad_l, bad8);
    float lo = 0.0f, hi = 0.0f, bad = 0.0f;
    for (int l = 0; l < 8; l++) {
        lo = lo_l[l] < lo ? lo_l[l] : lo;
        hi = hi_l[l] > hi ? hi_l[l] : hi;
        bad += bad_l[l];
    }
    for (; j < k; j++) {
        float v = x[j];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        bad += v * 0.0f;
    }
    if (bad != 0.0f) return -1;
    return q8_finish_row(q, scale, zero_point, x, k, ldq, lo, hi);
}
#endif

static int q8_quantize_row(uint8_t *q, float *scale, int32_t *zero_point, const float *x, int64_t k, int64_t ldq)
{
#if Q8_X86
    if (__builtin_cpu_supports("avx2")) return q8_quantize_row_avx2(q, scale, zero_point, x, k, ldq);
#endif
    return q8_quantize_row_body(q, scale, zero_point, x, k, ldq);
}

/* Rows [i0, i1) of x quantized into q (one task of the fused forward passes); 0 if a row held NaN or infinity. */
static int q8_quantize_task(uint8_t *q, float *scale, int32_t *zero_point, const float *x, int64_t i0, int64_t i1,
                            int64_t k, int64_t ldq)
{
    int ok = 1;
    for (int64_t i = i0; i < i1; i++)
        if (q8_quantize_row(q + i * ldq, scale + i, zero_point + i, x + i * k, k, ldq) != 0) ok = 0;
    return ok;
}

int fastnn_q8_quantize_rows(uint8_t *q, float *scale, int32_t *zero_point, const float *x, int64_t m, int64_t k,
                            int64_t ldq, int n_threads)
{
    if (m < 0 || k < 1 || ldq < k) return m < 0 || k < 1 ? FASTNN_EINVAL : FASTNN_ESHAPE;
    if (m == 0) return FASTNN_OK;
    if (!q || !scale || !zero_point || !x) return FASTNN_EINVAL;
    int bad = 0;
    int nt = n_threads < 1 ? 1 : n_threads;
    if (m * k < (int64_t)1 << 16) nt = 1;
    FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (int64_t i = 0; i < m; i++) {
        if (q8_quantize_row(q + i * ldq, scale + i, zero_point + i, x + i * k, k, ldq) != 0) {
            FASTNN_PRAGMA(omp atomic write)
            bad = 1;
        }
    }
    return bad ? FASTNN_ENONFINITE : FASTNN_OK;
}

/* ---------------------------------------------------------------------------------------------- epilogue */
static float q8_sigmoid(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

/* y[i, j] = act((c[i, j] - zp_i * colsum_j) * (scale_i * w_scale_j) + bias_j) for rows [i0, i1) */
static void q8_epilogue_rows(float *y, const int32_t *c, const float *a_scale, const int32_t *a_zp,
                             const float *w_scale, const int32_t *w_colsum, const float *bias, int64_t i0,
                             int64_t i1, int64_t n, int act, float alpha)
{
    for (int64_t i = i0; i < i1; i++) {
        float *yi = y + i * n;
        const int32_t *ci = c + i * n;
        float s = a_scale[i];
        uint32_t zp = (uint32_t)a_zp[i];
        for (int64_t j = 0; j < n; j++) {
            /* c - zp colsum = sum_k (q_a - zp) w, at most 255 * 128 * k < 2^31 in magnitude (k <= MAX_K): exact
             * in 32-bit wrap-around arithmetic, which vectorizes (an int64 product would not) */
            float v = (float)(int32_t)((uint32_t)ci[j] - zp * (uint32_t)w_colsum[j]);
            yi[j] = v * (s * w_scale[j]) + bias[j];
        }
        switch (act) {
        case FASTNN_ACT_RELU:
            for (int64_t j = 0; j < n; j++) yi[j] = yi[j] > 0.0f ? yi[j] : 0.0f;
            break;
        case FASTNN_ACT_LEAKY_RELU:
            for (int64_t j = 0; j < n; j++) yi[j] = yi[j] > 0.0f ? yi[j] : alpha * yi[j];
            break;
        case FASTNN_ACT_SIGMOID:
            for (int64_t j = 0; j < n; j++) yi[j] = q8_sigmoid(yi[j]);
            break;
        case FASTNN_ACT_TANH:
            for (int64_t j = 0; j < n; j++) yi[j] = tanhf(yi[j]);
            break;
        case FASTNN_ACT_EXP:
            for (int64_t j = 0; j < n; j++) yi[j] = expf(yi[j]);
            break;
        case FASTNN_ACT_SOFTMAX: {
            float mx = yi[0], sum = 0.0f;
            for (int64_t j = 1; j < n; j++) mx = yi[j] > mx ? yi[j] : mx;
            for (int64_t j = 0; j < n; j++) {
                yi[j] = expf(yi[j] - mx);
                sum += yi[j];
            }
            for (int64_t j = 0; j < n; j++) yi[j] /= sum;
            break;
        }
        default:
            break;
        }
    }
}

static int q8_act_ok(int act)
{
    return act == FASTNN_ACT_LINEAR || act == FASTNN_ACT_RELU || act == FASTNN_ACT_LEAKY_RELU ||
           act == FASTNN_ACT_SIGMOID || act == FASTNN_ACT_TANH || act == FASTNN_ACT_EXP ||
           act == FASTNN_ACT_SOFTMAX;
}

int fastnn_q8_epilogue(float *y, const int32_t *c, const float *a_scale, const int32_t *a_zp,
                       const float *w_scale, const int32_t *w_colsum, const float *bias, int64_t m, int64_t n,
                       int act, double alpha, int n_threads)
{
    if (m < 0 || n < 1 || !q8_act_ok(act)) return FASTNN_EINVAL;
    if (m == 0) return FASTNN_OK;
    if (!y || !c || !a_scale || !a_zp || !w_scale || !w_colsum || !bias) return FASTNN_EINVAL;
    int nt = n_threads < 1 ? 1 : n_threads;
    if (m * n < (int64_t)1 << 14) nt = 1;
    FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (int64_t i = 0; i < m; i++)
        q8_epilogue_rows(y, c, a_scale, a_zp, w_scale, w_colsum, bias, i, i + 1, n, act, (float)alpha);
    return FASTNN_OK;
}

/* --------------------------------------------------------------------------------------- fused dense layer */
int fastnn_q8_dense_forward(float *y, const float *x, const int8_t *bp, const float *w_scale,
                            const int32_t *w_colsum, const float *bias, int64_t m, int64_t k, int64_t n, int act,
                            double alpha, uint8_t *qa, int64_t lda, int32_t *acc, float *a_scale, int32_t *a_zp,
                            int path, int n_threads)
{
    int rc = q8_check_sizes(m, n, k, lda, path);
    if (rc != FASTNN_OK) return rc;
    if (!q8_act_ok(act)) return FASTNN_EINVAL;
    if (m == 0) return FASTNN_OK;
    if (!y || !x || !bp || !w_scale || !w_colsum || !bias || !qa || !acc || !a_scale || !a_zp)
        return FASTNN_EINVAL;
    int nt = q8_threads(m, n, k, n_threads);
    int64_t tasks = (m + Q8_TASK_ROWS - 1) / Q8_TASK_ROWS;
    int bad = 0;
    /* each task owns its rows of every buffer: the result does not depend on the thread count */
    FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i0 = t * Q8_TASK_ROWS, i1 = i0 + Q8_TASK_ROWS < m ? i0 + Q8_TASK_ROWS : m;
        if (!q8_quantize_task(qa, a_scale, a_zp, x, i0, i1, k, lda)) {
            FASTNN_PRAGMA(omp atomic write)
            bad = 1;
            continue;
        }
        q8_rows(path, acc, qa, bp, i0, i1, n, k, lda);
        q8_epilogue_rows(y, acc, a_scale, a_zp, w_scale, w_colsum, bias, i0, i1, n, act, (float)alpha);
    }
    return bad ? FASTNN_ENONFINITE : FASTNN_OK;
}

/* --------------------------------------------------------------------------------- sparse int8 weights */
/* The same int32 accumulators from the nonzeros of W^T in CSR form (row o of W^T = output o: its stored k
 * indices ascending in indices[indptr[o] .. indptr[o+1])): c[i, o] = sum_p a[i, indices[p]] * data[p].
 * The zero weights the dense GEMM multiplies add nothing, so the integers are equal (integer sums do not depend
 * on their order). Rows [i0, i1), outputs [o0, o1). */
static void q8_sparse_rows(int32_t *c, const uint8_t *a, const int8_t *data, const int32_t *indices,
                           const int64_t *indptr, int64_t i0, int64_t i1, int64_t o0, int64_t o1, int64_t n,
                           int64_t lda)
{
    int64_t i = i0;
    /* four rows at a time: each index and weight is loaded once for four products */
    for (; i + 4 <= i1; i += 4) {
        const uint8_t *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (int64_t o = o0; o < o1; o++) {
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int64_t p = indptr[o]; p < indptr[o + 1]; p++) {
                int32_t w = data[p];
                int64_t kk = indices[p];
                s0 += (int32_t)a0[kk] * w;
                s1 += (int32_t)a1[kk] * w;
                s2 += (int32_t)a2[kk] * w;
                s3 += (int32_t)a3[kk] * w;
            }
            c[i * n + o] = s0;
            c[(i + 1) * n + o] = s1;
            c[(i + 2) * n + o] = s2;
            c[(i + 3) * n + o] = s3;
        }
    }
    for (; i < i1; i++) {
        const uint8_t *ai = a + i * lda;
        for (int64_t o = o0; o < o1; o++) {
            /* two partial sums break the add chain of a long row */
            int32_t s0 = 0, s1 = 0;
            int64_t p = indptr[o], end = indptr[o + 1];
            for (; p + 2 <= end; p += 2) {
                s0 += (int32_t)ai[indices[p]] * (int32_t)data[p];
                s1 += (int32_t)ai[indices[p + 1]] * (int32_t)data[p + 1];
            }
            if (p < end) s0 += (int32_t)ai[indices[p]] * (int32_t)data[p];
            c[i * n + o] = s0 + s1;
        }
    }
}

/* Blocks of up to Q8_SPARSE_BLOCK rows with their activations transposed (at[kk * Q8_SPARSE_BLOCK + r] = row
 * i0 + r's byte kk, rows past the block zero): one weight multiplies a vector of the block's rows, so the
 * products vectorize over rows. */
#define Q8_SPARSE_BLOCK 16
#define Q8_SPARSE_BLOCK_BODY                                                                                 \
    for (int64_t o = 0; o < n; o++) {                                                                        \
        int32_t s[Q8_SPARSE_BLOCK] = {0};                                                                    \
        for (int64_t p = indptr[o]; p < indptr[o + 1]; p++) {                                                \
            int32_t w = data[p];                                                                             \
            const uint8_t *ar = at + (int64_t)indices[p] * Q8_SPARSE_BLOCK;                                  \
            for (int r = 0; r < Q8_SPARSE_BLOCK; r++) s[r] += (int32_t)ar[r] * w;                           \
        }                                                                                                    \
        for (int64_t r = 0; r < rows; r++) c[(i0 + r) * n + o] = s[r];                                      \
    }

static void q8_sparse_block_c(int32_t *c, const uint8_t *at, const int8_t *data, const int32_t *indices,
                              const int64_t *indptr, int64_t i0, int64_t rows, int64_t n)
{
    Q8_SPARSE_BLOCK_BODY
}

#if Q8_X86
/* the same integers, compiled for wider vectors */
__attribute__((target("avx2"))) static void q8_sparse_block_avx2(int32_t *c, const uint8_t *at,
                                                                  const int8_t *data, const int32_t *indices,
                                                                  const int64_t *indptr, int64_t i0,
                                                                  int64_t rows, int64_t n)
{
    Q8_SPARSE_BLOCK_BODY
}
#if Q8_HAVE_AVX512VNNI
__attribute__((target("avx512f,avx512bw"))) static void q8_sparse_block_512(int32_t *c, const uint8_t *at,
                                                                             const int8_t *data,
                                                                             const int32_t *indices,
                                                                             const int64_t *indptr, int64_t i0,
                                                                             int64_t rows, int64_t n)
{
    Q8_SPARSE_BLOCK_BODY
}
#endif
#endif

/* Rows [i0, i0 + rows) of a (row stride lda) transposed into at, then their sums. */
static void q8_sparse_block(int32_t *c, const uint8_t *a, uint8_t *at, const int8_t *data,
                            const int32_t *indices, const int64_t *indptr, int64_t i0, int64_t rows, int64_t n,
                            int64_t k, int64_t lda)
{
    for (int64_t kk = 0; kk < k; kk++) {
        uint8_t *dst = at + kk * Q8_SPARSE_BLOCK;
        int64_t r = 0;
        for (; r < rows; r++) dst[r] = a[(i0 + r) * lda + kk];
        for (; r < Q8_SPARSE_BLOCK; r++) dst[r] = 0;
    }
#if Q8_X86
#if Q8_HAVE_AVX512VNNI
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
        q8_sparse_block_512(c, at, data, indices, indptr, i0, rows, n);
        return;
    }
#endif
    if (__builtin_cpu_supports("avx2")) {
        q8_sparse_block_avx2(c, at, data, indices, indptr, i0, rows, n);
        return;
    }
#endif
    q8_sparse_block_c(c, at, data, indices, indptr, i0, rows, n);
}

/* Rows [i0, i1) (i0 a multiple of Q8_TASK_ROWS) of one task: blocks through the transposed copy when there is
 * scratch for it (at: Q8_SPARSE_BLOCK bytes per row and input, row i0's block at i0 * k) and enough rows. */
static void q8_sparse_task(int32_t *c, const uint8_t *a, uint8_t *at, const int8_t *data, const int32_t *indices,
                           const int64_t *indptr, int64_t i0, int64_t i1, int64_t n, int64_t k, int64_t lda)
{
    if (!at || i1 - i0 < 4) {
        q8_sparse_rows(c, a, data, indices, indptr, i0, i1, 0, n, n, lda);
        return;
    }
    for (int64_t i = i0; i < i1; i += Q8_SPARSE_BLOCK) {
        int64_t rows = i1 - i < Q8_SPARSE_BLOCK ? i1 - i : Q8_SPARSE_BLOCK;
        q8_sparse_block(c, a, at + i * k, data, indices, indptr, i, rows, n, k, lda);
    }
}

/* Checks the CSR's row pointers (monotone, from 0) and that every index is in [0, k): O(nnz), cheap next to the
 * products, and it keeps a bad copy from reading outside the activations. */
static int q8_check_csr(const int8_t *data, const int32_t *indices, const int64_t *indptr, int64_t n, int64_t k)
{
    if (!indptr || indptr[0] != 0) return FASTNN_EINVAL;
    for (int64_t o = 0; o < n; o++)
        if (indptr[o + 1] < indptr[o]) return FASTNN_EINVAL;
    int64_t nnz = indptr[n];
    if (nnz > 0 && (!data || !indices)) return FASTNN_EINVAL;
    for (int64_t p = 0; p < nnz; p++)
        if (indices[p] < 0 || indices[p] >= k) return FASTNN_EINVAL;
    return FASTNN_OK;
}

/* Threads for m rows of n outputs with nnz stored weights: one when the work is small. */
static int q8_sparse_threads(int64_t m, int64_t nnz, int64_t n, int n_threads)
{
    if (n_threads < 1) n_threads = 1;
    if (m * (nnz + n) < (int64_t)1 << 16) return 1;
    return n_threads;
}

int fastnn_q8_sparse_gemm(int32_t *c, const uint8_t *a, const int8_t *data, const int32_t *indices,
                          const int64_t *indptr, int64_t m, int64_t n, int64_t k, int64_t lda, uint8_t *at,
                          int n_threads)
{
    if (m < 0 || n < 1 || k < 1 || k > FASTNN_Q8_MAX_K) return FASTNN_EINVAL;
    if (lda < k) return FASTNN_ESHAPE;
    int rc = q8_check_csr(data, indices, indptr, n, k);
    if (rc != FASTNN_OK) return rc;
    if (m == 0) return FASTNN_OK;
    if (!c || !a) return FASTNN_EINVAL;
    int nt = q8_sparse_threads(m, indptr[n], n, n_threads);
    if (m < 4 * (int64_t)nt) {
        /* few rows: split the outputs */
        FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
        for (int t = 0; t < nt; t++)
            q8_sparse_rows(c, a, data, indices, indptr, 0, m, n * t / nt, n * (t + 1) / nt, n, lda);
    } else {
        int64_t tasks = (m + Q8_TASK_ROWS - 1) / Q8_TASK_ROWS;
        FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
        for (int64_t t = 0; t < tasks; t++) {
            int64_t i0 = t * Q8_TASK_ROWS, i1 = i0 + Q8_TASK_ROWS < m ? i0 + Q8_TASK_ROWS : m;
            q8_sparse_task(c, a, at, data, indices, indptr, i0, i1, n, k, lda);
        }
    }
    return FASTNN_OK;
}

/* The fused sparse layer on arguments already checked (fastnn_q8_mlp_forward checks a plan's CSR copies once,
 * when the plan is built, not on every call). */
static int q8_sparse_forward(float *y, const float *x, const int8_t *data, const int32_t *indices,
                             const int64_t *indptr, const float *w_scale, const int32_t *w_colsum,
                             const float *bias, int64_t m, int64_t k, int64_t n, int act, double alpha,
                             uint8_t *qa, int64_t lda, uint8_t *at, int32_t *acc, float *a_scale, int32_t *a_zp,
                             int n_threads)
{
    int nt = q8_sparse_threads(m, indptr[n], n, n_threads);
    if (m < 4 * (int64_t)nt) {
        /* few rows: quantize them, split the outputs, then the epilogue (each step's result is the same
         * whoever computes it) */
        if (fastnn_q8_quantize_rows(qa, a_scale, a_zp, x, m, k, lda, 1) != FASTNN_OK) return FASTNN_ENONFINITE;
        FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
        for (int t = 0; t < nt; t++)
            q8_sparse_rows(acc, qa, data, indices, indptr, 0, m, n * t / nt, n * (t + 1) / nt, n, lda);
        q8_epilogue_rows(y, acc, a_scale, a_zp, w_scale, w_colsum, bias, 0, m, n, act, (float)alpha);
        return FASTNN_OK;
    }
    int64_t tasks = (m + Q8_TASK_ROWS - 1) / Q8_TASK_ROWS;
    int bad = 0;
    FASTNN_PRAGMA(omp parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i0 = t * Q8_TASK_ROWS, i1 = i0 + Q8_TASK_ROWS < m ? i0 + Q8_TASK_ROWS : m;
        if (!q8_quantize_task(qa, a_scale, a_zp, x, i0, i1, k, lda)) {
            FASTNN_PRAGMA(omp atomic write)
            bad = 1;
            continue;
        }
        q8_sparse_task(acc, qa, at, data, indices, indptr, i0, i1, n, k, lda);
        q8_epilogue_rows(y, acc, a_scale, a_zp, w_scale, w_colsum, bias, i0, i1, n, act, (float)alpha);
    }
    return bad ? FASTNN_ENONFINITE : FASTNN_OK;
}

int fastnn_q8_sparse_dense_forward(float *y, const float *x, const int8_t *data, const int32_t *indices,
                                   const int64_t *indptr, const float *w_scale, const int32_t *w_colsum,
                                   const float *bias, int64_t m, int64_t k, int64_t n, int act, double alpha,
                                   uint8_t *qa, int64_t lda, uint8_t *at, int32_t *acc, float *a_scale,
                                   int32_t *a_zp, int n_threads)
{
    if (m < 0 || n < 1 || k < 1 || k > FASTNN_Q8_MAX_K || !q8_act_ok(act)) return FASTNN_EINVAL;
    if (lda < k) return FASTNN_ESHAPE;
    int rc = q8_check_csr(data, indices, indptr, n, k);
    if (rc != FASTNN_OK) return rc;
    if (m == 0) return FASTNN_OK;
    if (!y || !x || !w_scale || !w_colsum || !bias || !qa || !acc || !a_scale || !a_zp) return FASTNN_EINVAL;
    return q8_sparse_forward(y, x, data, indices, indptr, w_scale, w_colsum, bias, m, k, n, act, alpha, qa, lda,
                             at, acc, a_scale, a_zp, n_threads);
}

/* ----------------------------------------------------------------------------------- a stack of dense layers */
static int64_t q8_align(int64_t bytes) { return (bytes + 63) / 64 * 64; }

/* Rows per pass through the layers: one chunk's activations stay in cache, and the scratch stays small. */
#define Q8_CHUNK_ROWS 256

/* Bytes of transposed blocks for m rows of the plan's sparse layers (0 when none is sparse). */
static int64_t q8_sparse_scratch(const fastnn_q8_layer *layers, int n_layers, int64_t m)
{
    int64_t max_k = 0;
    for (int l = 0; l < n_layers; l++)
        if (layers[l].sp_indptr && layers[l].sparse_rows > 0 && layers[l].k > max_k) max_k = layers[l].k;
    return fastnn_q8_sparse_scratch_bytes(m, max_k);
}

int64_t fastnn_q8_sparse_scratch_bytes(int64_t m, int64_t k)
{
    return (m + Q8_SPARSE_BLOCK - 1) / Q8_SPARSE_BLOCK * Q8_SPARSE_BLOCK * k;
}

int64_t fastnn_q8_mlp_scratch_bytes(const fastnn_q8_layer *layers, int n_layers, int64_t m)
{
    int64_t max_n = 1, max_lda = 4;
    m = m < Q8_CHUNK_ROWS ? m : Q8_CHUNK_ROWS;
    for (int l = 0; l < n_layers; l++) {
        max_n = layers[l].n > max_n ? layers[l].n : max_n;
        int64_t lda = Q8_GROUP * q8_groups(layers[l].k);
        max_lda = lda > max_lda ? lda : max_lda;
    }
    /* two activation buffers, the uint8 rows, the accumulators, scales and zero points, and the sparse layers'
     * transposed blocks */
    return 2 * q8_align(m * max_n * 4) + q8_align(m * max_lda) + q8_align(m * max_n * 4) + 2 * q8_align(m * 4) +
           q8_align(q8_sparse_scratch(layers, n_layers, m));
}

int fastnn_q8_mlp_forward(float *y, const float *x, int64_t m, const fastnn_q8_layer *layers, int n_layers,
                          void *scratch, int64_t scratch_bytes, int path, int n_threads)
{
    if (m < 0 || n_layers < 1 || !layers) return FASTNN_EINVAL;
    if (m == 0) return FASTNN_OK;
    for (int l = 0; l < n_layers; l++) {
        if (layers[l].k < 1 || layers[l].n < 1 || (l > 0 && layers[l].k != layers[l - 1].n)) return FASTNN_ESHAPE;
        if (layers[l].k > FASTNN_Q8_MAX_K || !q8_act_ok(layers[l].act)) return FASTNN_EINVAL;
    }
    if (!y || !x || !scratch || scratch_bytes < fastnn_q8_mlp_scratch_bytes(layers, n_layers, m))
        return FASTNN_EINVAL;
    int64_t max_n = 1, max_lda = 4, n_out = layers[n_layers - 1].n, n_in = layers[0].k;
    for (int l = 0; l < n_layers; l++) {
        max_n = layers[l].n > max_n ? layers[l].n : max_n;
        max_lda = Q8_GROUP * q8_groups(layers[l].k) > max_lda ? Q8_GROUP * q8_groups(layers[l].k) : max_lda;
    }
    int64_t rows = m < Q8_CHUNK_ROWS ? m : Q8_CHUNK_ROWS;
    char *p = (char *)scratch;
    float *buf[2];
    buf[0] = (float *)p;
    p += q8_align(rows * max_n * 4);
    buf[1] = (float *)p;
    p += q8_align(rows * max_n * 4);
    int32_t *acc = (int32_t *)p;
    p += q8_align(rows * max_n * 4);
    float *a_scale = (float *)p;
    p += q8_align(rows * 4);
    int32_t *a_zp = (int32_t *)p;
    p += q8_align(rows * 4);
    uint8_t *qa = (uint8_t *)p;
    p += q8_align(rows * max_lda);
    uint8_t *at = q8_sparse_scratch(layers, n_layers, rows) > 0 ? (uint8_t *)p : NULL;
    for (int64_t start = 0; start < m; start += rows) {
        int64_t mc = m - start < rows ? m - start : rows;
        const float *in = x + start * n_in;
        for (int l = 0; l < n_layers; l++) {
            const fastnn_q8_layer *L = layers + l;
            float *out = l == n_layers - 1 ? y + start * n_out : buf[l % 2];
            int rc;
            if (L->sp_indptr && mc >= L->sparse_min_rows && mc <= L->sparse_rows)
                rc = q8_sparse_forward(out, in, L->sp_data, L->sp_indices, L->sp_indptr, L->w_scale, L->colsum,
                                       L->bias, mc, L->k, L->n, L->act, L->alpha, qa, Q8_GROUP * q8_groups(L->k),
                                       at, acc, a_scale, a_zp, n_threads);
            else
                rc = fastnn_q8_dense_forward(out, in, L->packed, L->w_scale, L->colsum, L->bias, mc, L->k, L->n,
                                             L->act, L->alpha, qa, Q8_GROUP * q8_groups(L->k), acc, a_scale,
                                             a_zp, path, n_threads);
            if (rc != FASTNN_OK) return rc;
            in = out;
        }
    }
    return FASTNN_OK;
}
