/* gemm_rows.h -- the register-tiled row products shared by dense.c and rnn.c, a template (no include guard:
 * instantiated per REAL by fastnn_real.h, like act_rows.h). C[r, :m] += sum_p A(r, p) B[p, :m] with B row-major;
 * every element is summed in the order p = 0, 1, ..., k - 1 on every path, so how rows are grouped (and so how
 * they are shared out over threads) never changes a result. */
#include <string.h>

#ifndef FASTNN_DENSE_CONSTANTS
#define FASTNN_DENSE_CONSTANTS
#define DENSE_ROW_BLOCK 4   /* rows of the output updated together: each loaded weight is used 4 times */
#define DENSE_TILE 32       /* columns whose partial sums stay in registers while d_in streams past */
#define DOT_LANES 8         /* independent partial sums, so the dot product vectorises without -ffast-math */
#endif

/* One row of C, columns [j0, j0 + WIDTH): c[j] += sum_p a[p * a_cs] * B[p, j], the partial sums held in a local
 * array of compile-time size that the compiler keeps in vector registers for the whole p loop. */
#define DENSE_ROW_TILE(WIDTH)                                                                        \
    do {                                                                                             \
        REAL acc[WIDTH];                                                                             \
        for (j = 0; j < WIDTH; j++) acc[j] = c[j0 + j];                                              \
        for (p = 0; p < k; p++) {                                                                    \
            const REAL *FASTNN_RESTRICT w = B + p * m + j0;                                          \
            REAL a = a_row[p * a_cs];                                                                \
            for (j = 0; j < WIDTH; j++) acc[j] += a * w[j];                                          \
        }                                                                                            \
        for (j = 0; j < WIDTH; j++) c[j0 + j] = acc[j];                                              \
    } while (0)

#if defined(__GNUC__)
/* GCC/Clang vector of 64 bytes (16 floats, 8 doubles): one AVX-512 register, two AVX2 ones. Named vector
 * variables stay in registers, where a local array of the same size is spilled to the stack once it passes
 * the compiler's scalarisation limit (perf annotate of the old one-row tile: every multiply-add loaded and
 * stored its partial sums through the stack). */
typedef REAL SFX(vec64) __attribute__((vector_size(64)));
#define VEC_LEN ((int64_t)(64 / sizeof(REAL)))

/* c[:m] += sum_p a[p * a_cs] * B[p, :m] for one row of C, B row-major (k, m): four vector accumulators (64 floats)
 * held while the k rows of B stream past, then single vectors, then scalars. Each element is summed in the order
 * p = 0, 1, ..., k - 1, as on every other path. */
FASTNN_SIMD_CLONES
static void SFX(gemv_row)(REAL *FASTNN_RESTRICT c, const REAL *a, int64_t a_cs, const REAL *FASTNN_RESTRICT B,
                          int64_t k, int64_t m)
{
    int64_t j0 = 0, j, p;
    for (; j0 + 4 * VEC_LEN <= m; j0 += 4 * VEC_LEN) {
        SFX(vec64) acc0, acc1, acc2, acc3, w0, w1, w2, w3;
        memcpy(&acc0, c + j0, 64);
        memcpy(&acc1, c + j0 + VEC_LEN, 64);
        memcpy(&acc2, c + j0 + 2 * VEC_LEN, 64);
        memcpy(&acc3, c + j0 + 3 * VEC_LEN, 64);
        for (p = 0; p < k; p++) {
            const REAL *w = B + p * m + j0;
            REAL ap = a[p * a_cs];
            memcpy(&w0, w, 64);
            memcpy(&w1, w + VEC_LEN, 64);
            memcpy(&w2, w + 2 * VEC_LEN, 64);
            memcpy(&w3, w + 3 * VEC_LEN, 64);
            acc0 += ap * w0;
            acc1 += ap * w1;
            acc2 += ap * w2;
            acc3 += ap * w3;
        }
        memcpy(c + j0, &acc0, 64);
        memcpy(c + j0 + VEC_LEN, &acc1, 64);
        memcpy(c + j0 + 2 * VEC_LEN, &acc2, 64);
        memcpy(c + j0 + 3 * VEC_LEN, &acc3, 64);
    }
    for (; j0 + VEC_LEN <= m; j0 += VEC_LEN) {
        SFX(vec64) acc, w0;
        memcpy(&acc, c + j0, 64);
        for (p = 0; p < k; p++) {
            memcpy(&w0, B + p * m + j0, 64);
            acc += a[p * a_cs] * w0;
        }
        memcpy(c + j0, &acc, 64);
    }
    if (j0 < m) {
        for (p = 0; p < k; p++) {
            const REAL *w = B + p * m;
            REAL ap = a[p * a_cs];
            for (j = j0; j < m; j++) c[j] += ap * w[j];
        }
    }
}
#undef VEC_LEN
#define FASTNN_HAVE_GEMV_ROW 1
#endif

/* C[r, :m] += sum_p A(r, p) * B[p, :m] for the `rows` (<= DENSE_ROW_BLOCK) rows of C starting at C (row
 * length m), where A(r, p) = A[r * a_rs + p * a_cs]. B is row-major (k, m).
 *
 * Full tiles keep their partial sums in registers while the k rows of B stream past: 4 rows x DENSE_TILE
 * columns, so each loaded weight feeds 4 multiply-adds, or for fewer rows one row x 2 tiles. Each element is
 * still summed in the order p = 0, 1, ..., k - 1 on every path. Leftover columns take the plain loop. */
FASTNN_SIMD_CLONES
static void SFX(gemm_block)(REAL *C, const REAL *A, int64_t a_rs, int64_t a_cs, const REAL *B,
                            int64_t rows, int64_t k, int64_t m)
{
    int64_t j0, j, p, r, tiled = m - m % DENSE_TILE;
    if (rows == DENSE_ROW_BLOCK) {
        for (j0 = 0; j0 < tiled; j0 += DENSE_TILE) {
            REAL acc0[DENSE_TILE], acc1[DENSE_TILE], acc2[DENSE_TILE], acc3[DENSE_TILE];
            for (j = 0; j < DENSE_TILE; j++) {
                acc0[j] = C[j0 + j];
                acc1[j] = C[m + j0 + j];
                acc2[j] = C[2 * m + j0 + j];
                acc3[j] = C[3 * m + j0 + j];
            }
            for (p = 0; p < k; p++) {
                const REAL *FASTNN_RESTRICT w = B + p * m + j0;
                const REAL *a = A + p * a_cs;
                REAL a0 = a[0], a1 = a[a_rs], a2 = a[2 * a_rs], a3 = a[3 * a_rs];
                for (j = 0; j < DENSE_TILE; j++) {
                    acc0[j] += a0 * w[j];
                    acc1[j] += a1 * w[j];
                    acc2[j] += a2 * w[j];
                    acc3[j] += a3 * w[j];
                }
            }
            for (j = 0; j < DENSE_TILE; j++) {
                C[j0 + j] = acc0[j];
                C[m + j0 + j] = acc1[j];
                C[2 * m + j0 + j] = acc2[j];
                C[3 * m + j0 + j] = acc3[j];
            }
        }
    } else {
#ifdef FASTNN_HAVE_GEMV_ROW
        for (r = 0; r < rows; r++) SFX(gemv_row)(C + r * m, A + r * a_rs, a_cs, B, k, m);
        return;
#else
        for (r = 0; r < rows; r++) {
            REAL *c = C + r * m;
            const REAL *a_row = A + r * a_rs;
            for (j0 = 0; j0 + 2 * DENSE_TILE <= tiled; j0 += 2 * DENSE_TILE) DENSE_ROW_TILE(2 * DENSE_TILE);
            for (; j0 < tiled; j0 += DENSE_TILE) DENSE_ROW_TILE(DENSE_TILE);
        }
#endif
    }
    /* leftover columns [tiled, m) */
    for (r = 0; r < rows && tiled < m; r++) {
        REAL *FASTNN_RESTRICT c = C + r * m + tiled;
        for (p = 0; p < k; p++) {
            const REAL *FASTNN_RESTRICT w = B + p * m + tiled;
            REAL a = A[r * a_rs + p * a_cs];
            for (j = 0; j < m - tiled; j++) c[j] += a * w[j];
        }
    }
}
