/* sparse_impl.h -- template body of sparse.c, instantiated per REAL by fastnn_real.h. */

/* Rows [lo, hi) of x: zeroed, then each stored value of its source row added at its column (in storage order,
 * so duplicate entries add up as scipy's toarray() adds them). */
static void SFX(gather_rows)(REAL *x, const fastnn_csr *A, const int64_t *rows, int64_t lo, int64_t hi)
{
    const REAL *data = (const REAL *)A->data;
    int64_t r, j, k, d = A->n_cols;
    for (r = lo; r < hi; r++) {
        REAL *xr = x + r * d;
        int64_t src = rows ? rows[r] : r;
        for (j = 0; j < d; j++) xr[j] = 0;
        for (k = A->indptr[src]; k < A->indptr[src + 1]; k++) xr[A->indices[k]] += data[k];
    }
}

int SFX(fastnn_csr_gather)(REAL *x, const fastnn_csr *A, const int64_t *rows, int64_t n, int n_threads)
{
    int64_t r;
    if (A == NULL || A->indptr == NULL) return FASTNN_EINVAL;
    if (n < 0 || A->n_cols < 1 || A->n_rows < 0) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (x == NULL || rows == NULL) return FASTNN_EINVAL;
    for (r = 0; r < n; r++)
        if (rows[r] < 0 || rows[r] >= A->n_rows) return FASTNN_EINVAL;
    FASTNN_FOR_RANGE(n, n * A->n_cols, n_threads, lo, hi, SFX(gather_rows)(x, A, rows, lo, hi));
    return FASTNN_OK;
}
