/* blas_impl.h -- template body of blas.c, instantiated per REAL by fastnn_real.h. */

/* The block [r0, r1) x [c0, c1) of C (m, n) = op(A) op(B) + beta C in one Fortran call. op(A) is (m, k) and
 * op(B) is (k, n), all row-major; trans_a says A is stored as (k, m), trans_b that B is stored as (n, k). The
 * sizes must fit in int (fastnn_blas_plan checks). */
void SFX(fastnn_blas_gemm_block)(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,
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
    if (M < 1 || N < 1) return;
    if (sizeof(REAL) == sizeof(float))
        g_sgemm(&tb, &ta, &M, &N, &K, (float *)&one, (float *)B_cols, &ld_b, (float *)A_rows, &ld_a,
                (float *)&beta, (float *)C_block, &ld_c);
    else
        g_dgemm(&tb, &ta, &M, &N, &K, (double *)&one, (double *)B_cols, &ld_b, (double *)A_rows, &ld_a,
                (double *)&beta, (double *)C_block, &ld_c);
}
