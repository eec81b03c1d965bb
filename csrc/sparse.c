/* sparse.c -- rows of a CSR matrix gathered into a dense batch, so a network trains on and predicts from
 * scipy.sparse input one minibatch at a time, never densifying the whole matrix (twin: fastnn/_py/sparse.py). */
#include "fastnn_internal.h"

int fastnn_check_csr(const fastnn_csr *A)
{
    int64_t i, k;
    if (A == NULL || A->indptr == NULL) return FASTNN_EINVAL;
    if (A->n_rows < 0 || A->n_cols < 1 || A->nnz < 0) return FASTNN_ESHAPE;
    if (A->nnz > 0 && (A->data == NULL || A->indices == NULL)) return FASTNN_EINVAL;
    if (A->indptr[0] != 0 || A->indptr[A->n_rows] != A->nnz) return FASTNN_EINVAL;
    for (i = 0; i < A->n_rows; i++)
        if (A->indptr[i + 1] < A->indptr[i]) return FASTNN_EINVAL;
    for (k = 0; k < A->nnz; k++)
        if (A->indices[k] < 0 || A->indices[k] >= A->n_cols) return FASTNN_EINVAL;
    return FASTNN_OK;
}

#define FASTNN_TEMPLATE "sparse_impl.h"
#include "fastnn_real.h"
