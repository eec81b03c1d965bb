/* fastnn_internal.h -- helpers shared by the kernel files; not seen by Cython. */
#ifndef FASTNN_INTERNAL_H
#define FASTNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "fastnn.h"
#include "fastnn_omp.h"

#if defined(_MSC_VER)
#define FASTNN_RESTRICT __restrict
#define FASTNN_PRAGMA(x) __pragma(x)
#else
#define FASTNN_RESTRICT restrict
#define FASTNN_PRAGMA(x) _Pragma(#x)
#endif

/* The few loops that carry the arithmetic are compiled three times, for AVX-512, AVX2+FMA and baseline x86-64,
 * and the loader picks the best the CPU has (GCC function multi-versioning through ifunc). Wheels stay portable
 * and a machine still gets its vector width. Elsewhere (other compilers, other CPUs) this is a no-op. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 12 && \
    !defined(FASTNN_NO_CLONES)
#define FASTNN_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_SIMD_CLONES
#endif

/* A fork/join costs microseconds on idle cores, but when another process keeps a core busy the team waits for
 * a time slice: measured here, 2 threads made the digits demo (layers of 32 x 64 x 128) 20 x slower than 1.
 * So a thread is only worth it for about a millisecond of work: this many multiply-adds or element operations. */
#define FASTNN_MIN_WORK_PER_THREAD ((int64_t)1 << 21)

/* How many threads to use for `work` operations split over `n_items` independent items. */
static inline int fastnn_threads_for(int64_t work, int64_t n_items, int n_threads)
{
    int64_t by_work = work / FASTNN_MIN_WORK_PER_THREAD;
    int64_t nt = n_threads;
    if (nt > by_work) nt = by_work;
    if (nt > n_items) nt = n_items;
    return nt < 1 ? 1 : (int)nt;
}

/* The static chunk [*lo, *hi) of [0, n) that thread `t` of `nt` owns. */
static inline void fastnn_chunk(int64_t n, int t, int nt, int64_t *lo, int64_t *hi)
{
    int64_t base = n / nt, extra = n % nt;
    *lo = t * base + (t < extra ? t : extra);
    *hi = *lo + base + (t < extra ? 1 : 0);
}

/* Runs the body (the variadic tail, so it may hold commas) with int64_t LO, HI bound to a range of [0, N):
 * the whole range serially when the work is small, otherwise one static chunk per thread. Chunks are disjoint, so the body must only write what its range owns. */
#define FASTNN_FOR_RANGE(N, WORK, N_THREADS, LO, HI, ...)                                   \
    do {                                                                                     \
        int fastnn_nt_ = fastnn_threads_for((WORK), (N), (N_THREADS));                       \
        if (fastnn_nt_ <= 1) {                                                               \
            int64_t LO = 0, HI = (N);                                                        \
            __VA_ARGS__;                                                                     \
        } else {                                                                             \
            FASTNN_PRAGMA(omp parallel num_threads(fastnn_nt_))                              \
            {                                                                                \
                int64_t LO, HI;                                                              \
                fastnn_chunk((N), omp_get_thread_num(), omp_get_num_threads(), &LO, &HI);    \
                __VA_ARGS__;                                                                 \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* Products at least this big (multiply-adds) go to BLAS when one is set; below it a call costs more than our
 * own loops (single samples and tiny layers stay in C). */
#define FASTNN_BLAS_MIN_WORK ((int64_t)1 << 15)

/* blas.c: products through the BLAS installed by fastnn_set_blas, shared out over fastnn's threads */
int fastnn_blas_split(void);
int fastnn_blas_plan(int64_t m, int64_t n, int64_t k, int n_threads, int *by_rows);
void fastnn_blas_gemm_block_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *A,
                                const float *B, float beta, float *C, int64_t r0, int64_t r1, int64_t c0, int64_t c1);
void fastnn_blas_gemm_block_f64(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const double *A,
                                const double *B, double beta, double *C, int64_t r0, int64_t r1, int64_t c0,
                                int64_t c1);

/* gemm.c: fastnn's own packed matrix product. A thread's packing space holds a block of B (FASTNN_GEMM_B_BYTES:
 * it stays in L2 while a micro-panel of A, at most FASTNN_GEMM_KC x MR, sits in L1), one micro-panel of A, and
 * an edge tile. */
#define FASTNN_GEMM_KC 512
#define FASTNN_GEMM_B_BYTES ((int64_t)3 << 18)
#define FASTNN_GEMM_A_PANEL_BYTES 19200 /* a micro-panel of A: 12 rows x 400 floats, so 784 = 2 x 392 */
#define FASTNN_GEMM_MR_MAX 12
#define FASTNN_GEMM_NR_MAX 32
#define FASTNN_GEMM_TABLE 512
#if defined(__GNUC__)
#define FASTNN_GEMM_VECTORS 1
#else
#define FASTNN_GEMM_VECTORS 0
#endif
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FASTNN_NO_CLONES)
#define FASTNN_GEMM_X86 1
#else
#define FASTNN_GEMM_X86 0
#endif
void *fastnn_gemm_space_acquire(void);
void fastnn_gemm_space_release(void *space);
int fastnn_gemm_plan(int engine, int64_t m, int64_t n, int64_t k, int64_t mr, int64_t nr, int n_threads,
                     int *by_rows);
void fastnn_gemm_band(int64_t extent, int64_t unit, int t, int n_teams, int64_t *first, int64_t *last);
int fastnn_blas_fits(int64_t m, int64_t n, int64_t k);
/* gemm.c: one product's engine and threads, and one thread's band of it inside a shared parallel region */
int fastnn_gemm_prepare_f32(int *engine, int *nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                            const float *A, const float *B, const float *C, const fastnn_gemm_epilogue *e,
                            int n_threads);
int fastnn_gemm_prepare_f64(int *engine, int *nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                            const double *A, const double *B, const double *C, const fastnn_gemm_epilogue *e,
                            int n_threads);
void fastnn_gemm_share_f32(int engine, int nt, int t, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                           const float *A, const float *B, int accumulate, float *C, const float *bias,
                           const fastnn_gemm_epilogue *e);
void fastnn_gemm_share_f64(int engine, int nt, int t, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                           const double *A, const double *B, int accumulate, double *C, const double *bias,
                           const fastnn_gemm_epilogue *e);
/* dense.c: the backward pass with the layer below's activation derivative fused into the dx product */
int fastnn_dense_backward_masked_f32(float *dx, float *dW, float *db, const float *dz, const float *x, const float *W,
                                     int64_t n, int64_t d_in, int64_t d_out, const fastnn_gemm_epilogue *dx_mask,
                                     int *masked, int n_threads);
int fastnn_dense_backward_masked_f64(double *dx, double *dW, double *db, const double *dz, const double *x,
                                     const double *W, int64_t n, int64_t d_in, int64_t d_out,
                                     const fastnn_gemm_epilogue *dx_mask, int *masked, int n_threads);

/* conv.c: FASTNN_OK when a window geometry is one the conv and pool kernels can run (pooling: no padding,
 * out_c == in_c) */
int fastnn_check_window(const fastnn_window *g, int pooling);

#endif /* FASTNN_INTERNAL_H */
