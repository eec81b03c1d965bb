/* blas_impl.h -- template body of blas.c, instantiated per REAL by fastnn_real.h. */

/* Rows [lo, hi) of C (m, n) = op(A) op(B) + beta C in one Fortran call (see fastnn_blas_gemm). */
static void SFX(gemm_rows)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                           const REAL *B, REAL beta, REAL *C, int64_t lo, int64_t hi)
{
    /* Row-major C is column-major C^T = op(B)^T op(A)^T: the Fortran call swaps the operands and m <-> n. */
    int M = (int)n, N = (int)(hi - lo), K = (int)k;
    int ld_b = trans_b ? (int)k : (int)n;  /* leading dimension of B as stored */
    int ld_a = trans_a ? (int)m : (int)k;  /* of A as stored: rows of op(A) are columns of A when transposed */
    int ld_c = (int)n;
    const REAL *A_rows = trans_a ? A + lo : A + lo * k;
    REAL *C_rows = C + lo * n;
    char tb = trans_b ? 'T' : 'N', ta = trans_a ? 'T' : 'N';
    REAL one = 1;
    if (sizeof(REAL) == sizeof(float))
        g_sgemm(&tb, &ta, &M, &N, &K, (float *)&one, (float *)B, &ld_b, (float *)A_rows, &ld_a, (float *)&beta,
                (float *)C_rows, &ld_c);
    else
        g_dgemm(&tb, &ta, &M, &N, &K, (double *)&one, (double *)B, &ld_b, (double *)A_rows, &ld_a,
                (double *)&beta, (double *)C_rows, &ld_c);
}

/* C (m, n) = op(A) @ op(B) + beta * C, all row-major, where op(A) is (m, k) and op(B) is (k, n); trans_a says A
 * is stored as (k, m), trans_b that B is stored as (n, k). Returns 0 (and does nothing) when no BLAS is set or a
 * size does not fit in int; the caller then uses its own loops. Must not be called inside an OpenMP region.
 *
 * When the BLAS runs single-threaded (fastnn_set_blas's `split`), C is cut into at most BLAS_MAX_BLOCKS blocks of
 * a multiple of BLAS_ROW_BLOCK rows, one BLAS call each, shared out over up to n_threads OpenMP threads. The blocks do not depend on n_threads, and
 * a BLAS's result does depend on the shape it is given, so this keeps results bit-identical for any thread
 * count. */
int SFX(fastnn_blas_gemm)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                          const REAL *B, REAL beta, REAL *C, int n_threads)
{
    if (!fastnn_have_blas() || !fits_int(m, n, k) || m < 1 || n < 1 || k < 1) return 0;
    if (g_blas_split) {
        /* at most BLAS_MAX_BLOCKS blocks of a multiple of BLAS_ROW_BLOCK rows: each call packs op(B) again */
        int64_t rows = (m + BLAS_MAX_BLOCKS - 1) / BLAS_MAX_BLOCKS;
        rows = (rows + BLAS_ROW_BLOCK - 1) / BLAS_ROW_BLOCK * BLAS_ROW_BLOCK;
        int64_t blocks = (m + rows - 1) / rows;
        FASTNN_FOR_RANGE(blocks, m * n * k, n_threads, lo, hi, {
            int64_t blk;
            for (blk = lo; blk < hi; blk++) {
                int64_t first = blk * rows, last = first + rows < m ? first + rows : m;
                SFX(gemm_rows)(trans_a, trans_b, m, n, k, A, B, beta, C, first, last);
            }
        });
    } else
        SFX(gemm_rows)(trans_a, trans_b, m, n, k, A, B, beta, C, 0, m);
    return 1;
}
