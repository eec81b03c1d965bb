/* blas.c -- sgemm/dgemm taken at run time from SciPy's cython_blas (no BLAS at link time), and the one place
 * that maps fastnn's row-major products onto column-major Fortran BLAS. Twin: NumPy's matmul in fastnn/_py/. */
#include <limits.h>
#include "fastnn_internal.h"

static fastnn_sgemm_fn g_sgemm = NULL;
static fastnn_dgemm_fn g_dgemm = NULL;
static int g_blas_split = 0;

void fastnn_set_blas(fastnn_sgemm_fn sgemm, fastnn_dgemm_fn dgemm, int split)
{
    g_sgemm = sgemm;
    g_dgemm = dgemm;
    g_blas_split = split;
}

int fastnn_have_blas(void) { return g_sgemm != NULL && g_dgemm != NULL; }

/* 1 when the BLAS runs single-threaded and fastnn shares products out over its own threads */
int fastnn_blas_split(void) { return g_blas_split; }

/* When fastnn splits a product over its threads, a thread is only given a band of at least BLAS_MIN_BAND rows or
 * columns of C (fastnn_gemm_share cuts the bands). */
#define BLAS_MIN_BAND 32

static int fits_int(int64_t a, int64_t b, int64_t c) { return a <= INT_MAX && b <= INT_MAX && c <= INT_MAX; }

/* 1 when a BLAS is set and takes a product of these sizes */
int fastnn_blas_fits(int64_t m, int64_t n, int64_t k)
{
    return fastnn_have_blas() && fits_int(m, n, k) && m >= 1 && n >= 1 && k >= 1;
}

/* How to share C (m, n) = op(A) op(B) (inner size k) out over fastnn's threads: 0 when no BLAS is set or a
 * size does not fit in int, else the number of threads, each of which makes one BLAS call on its own band of C
 * (fastnn_gemm_share in gemm.c cuts the bands). 1 when the BLAS runs its own threads (fastnn_set_blas's
 * `split` is 0) or the product is too small to share.
 *
 * Every call packs the operand it does not cut again, so C is cut across the smaller one: into bands of rows
 * (*by_rows = 1; each call packs all of op(B), k x n) when n < m, into bands of columns (each packs all of op(A),
 * m x k) otherwise. For 2048 x 2048 weights and a batch of 256 that is 0.5 M elements packed per call instead of
 * 4 M, and it is one call per thread, not many small ones, for the same reason. A band changes which elements a
 * call computes, not the order of any sum, but OpenBLAS picks its kernels by the shape of each call: float64
 * results may differ in the last bits between thread counts (tests/test_kernels.py allows RTOL there; the own
 * loops stay bit-identical). */
int fastnn_blas_plan(int64_t m, int64_t n, int64_t k, int n_threads, int *by_rows)
{
    *by_rows = n < m;
    if (!fastnn_have_blas() || !fits_int(m, n, k) || m < 1 || n < 1 || k < 1) return 0;
    if (!g_blas_split) return 1;
    return fastnn_threads_for(m * n * k, (*by_rows ? m : n) / BLAS_MIN_BAND, n_threads);
}

#define FASTNN_TEMPLATE "blas_impl.h"
#include "fastnn_real.h"
