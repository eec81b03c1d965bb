/* blas_impl.h -- template body of blas.c, instantiated per REAL by fastnn_real.h. */

/* The block [r0, r1) x [c0, c1) of C (m, n) = op(A) op(B) + beta C in one Fortran call (see fastnn_blas_gemm). */
static void SFX(gemm_block_call)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                                 const REAL *B, REAL beta, REAL *C, int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    /* Row-major C is column-major C^T = op(B)^T op(A)^T: the Fortran call swaps the operands and m <-> n. */
    int M = (int)(c1 - c0), N = (int)(r1 - r0), K = (int)k;
    int ld_b = trans_b ? (int)k : (int)n;  /* leading dimension of B as stored */
    int ld_a = trans_a ? (int)m : (int)k;  /* of A as stored: rows of op(A) are columns of A when transposed */
    int ld_c = (int)n;
    const REAL *A_rows = trans_a ? A + r0 : A + r0 * k;
    const REAL *B_cols = trans_b ? B + c0 * k : B + c0;
    REAL *C_block = C + r0 * n + c0;
    char tb = trans_b ? 'T' : 'N', ta = trans_a ? 'T' : 'N';
    REAL one = 1;
    (void)m;
    if (sizeof(REAL) == sizeof(float))
        g_sgemm(&tb, &ta, &M, &N, &K, (float *)&one, (float *)B_cols, &ld_b, (float *)A_rows, &ld_a,
                (float *)&beta, (float *)C_block, &ld_c);
    else
        g_dgemm(&tb, &ta, &M, &N, &K, (double *)&one, (double *)B_cols, &ld_b, (double *)A_rows, &ld_a,
                (double *)&beta, (double *)C_block, &ld_c);
}

/* C (m, n) = op(A) @ op(B) + beta * C, all row-major, where op(A) is (m, k) and op(B) is (k, n); trans_a says A
 * is stored as (k, m), trans_b that B is stored as (n, k). Returns 0 (and does nothing) when no BLAS is set or a
 * size does not fit in int; the caller then uses its own loops. Must not be called inside an OpenMP region.
 *
 * When the BLAS runs single-threaded (fastnn_set_blas's `split`), each of fastnn's threads makes one BLAS call
 * on its own band of C. Every call packs the operand it does not cut again, so C is cut across the smaller one:
 * into bands of rows (each call packs all of op(B), k x n) when n < m, into bands of columns (each packs all of
 * op(A), m x k) otherwise; for 2048 x 2048 weights and a batch of 256 that is 0.5 M elements packed per call
 * instead of 4 M. One call per thread, not many small ones, because each call packs that operand again.
 * A band changes which elements a call computes, not the order of any sum, but OpenBLAS picks its kernels by
 * the shape of each call: float64 results may differ in the last bits between thread counts (tests/test_kernels.py
 * allows RTOL there; the own loops stay bit-identical). */
int SFX(fastnn_blas_gemm)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                          const REAL *B, REAL beta, REAL *C, int n_threads)
{
    if (!fastnn_have_blas() || !fits_int(m, n, k) || m < 1 || n < 1 || k < 1) return 0;
    int by_rows = n < m;
    int64_t extent = by_rows ? m : n;
    int nt = g_blas_split ? fastnn_threads_for(m * n * k, extent / BLAS_MIN_BAND, n_threads) : 1;
    if (nt <= 1) {
        SFX(gemm_block_call)(trans_a, trans_b, m, n, k, A, B, beta, C, 0, m, 0, n);
        return 1;
    }
    /* balanced bands of a multiple of BLAS_BAND_UNIT rows or columns, the last one shorter; cut by the team
     * OpenMP really gives (fewer threads than asked, or one in a build without OpenMP) */
    int64_t units = (extent + BLAS_BAND_UNIT - 1) / BLAS_BAND_UNIT;
    FASTNN_PRAGMA(omp parallel num_threads(nt))
    {
        int64_t band = (units + omp_get_num_threads() - 1) / omp_get_num_threads() * BLAS_BAND_UNIT;
        int64_t first = omp_get_thread_num() * band, last = first + band < extent ? first + band : extent;
        if (first < last) {
            if (by_rows)
                SFX(gemm_block_call)(trans_a, trans_b, m, n, k, A, B, beta, C, first, last, 0, n);
            else
                SFX(gemm_block_call)(trans_a, trans_b, m, n, k, A, B, beta, C, 0, m, first, last);
        }
    }
    return 1;
}
