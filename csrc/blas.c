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

/* When fastnn splits a product over its threads: blocks are multiples of this many rows of C (big enough for the
 * BLAS's kernels, small enough to share a batch of 128 between 2 threads), and there are at most BLAS_MAX_BLOCKS
 * of them, because every call packs the other operand again. Both depend on the shape only, never on the
 * number of threads. */
#define BLAS_ROW_BLOCK 64
#define BLAS_MAX_BLOCKS 16

static int fits_int(int64_t a, int64_t b, int64_t c) { return a <= INT_MAX && b <= INT_MAX && c <= INT_MAX; }

#define FASTNN_TEMPLATE "blas_impl.h"
#include "fastnn_real.h"
