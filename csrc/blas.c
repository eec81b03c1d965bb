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

/* When fastnn splits a product over its threads, bands of C are a multiple of BLAS_BAND_UNIT rows or columns
 * (the BLAS kernels' register blocks) and a thread is only given a band of at least BLAS_MIN_BAND of them. */
#define BLAS_BAND_UNIT 16
#define BLAS_MIN_BAND 32

static int fits_int(int64_t a, int64_t b, int64_t c) { return a <= INT_MAX && b <= INT_MAX && c <= INT_MAX; }

#define FASTNN_TEMPLATE "blas_impl.h"
#include "fastnn_real.h"
