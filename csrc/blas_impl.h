/* blas_impl.h -- template body of blas.c, instantiated per REAL by fastnn_real.h. */

/* C (m, n) = op(A) @ op(B) + beta * C, all row-major, where op(A) is (m, k) and op(B) is (k, n); trans_a says A
 * is stored as (k, m), trans_b that B is stored as (n, k). Returns 0 (and does nothing) when no BLAS is set or a
 * size does not fit in int; the caller then uses its own loops. Must not be called inside an OpenMP region.
 *
 * Row-major C is column-major C^T = op(B)^T op(A)^T, so the Fortran call swaps the operands and m <-> n. */
int SFX(fastnn_blas_gemm)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
                          const REAL *B, REAL beta, REAL *C)
{
    if (!fastnn_have_blas() || !fits_int(m, n, k)) return 0;
    int M = (int)n, N = (int)m, K = (int)k;
    int lda = trans_b ? (int)k : (int)n;   /* leading dimension of B as stored */
    int ldb = trans_a ? (int)m : (int)k;   /* leading dimension of A as stored */
    int ldc = (int)n;
    char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';
    REAL one = 1;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    if (ldc < 1) ldc = 1;
    if (sizeof(REAL) == sizeof(float))
        g_sgemm(&ta, &tb, &M, &N, &K, (float *)&one, (float *)B, &lda, (float *)A, &ldb, (float *)&beta,
                (float *)C, &ldc);
    else
        g_dgemm(&ta, &tb, &M, &N, &K, (double *)&one, (double *)B, &lda, (double *)A, &ldb, (double *)&beta,
                (double *)C, &ldc);
    return 1;
}
