/* gemm_kernel.h -- one register-blocked micro-kernel, a template included by gemm_impl.h once per instruction
 * set and element type (no include guard). Before including, define:
 *   KNAME   the function's name              KMR      rows of the tile (12, 6 or 4)
 *   KBYTES  bytes of one vector (64, 32, 16)  KTARGET  a GCC target attribute, or nothing
 * The tile is KMR rows x 2 vectors of C. Its 2 * KMR partial sums are named variables, which the compiler keeps
 * in registers (an array of vectors is spilled once it passes the scalarisation limit).
 *
 * c[i, j] = init[i, j] + sum_p a[p * KMR + i] * b[p * NR + j] over p = 0, 1, ..., kc - 1 in that order, one
 * fused multiply-add per p (-ffp-contract=fast). Every tile and every instruction set does exactly that, so a
 * result does not depend on where its tile falls, on the thread count, or on AVX-512 against AVX2. init is
 * NULL (zeros), a row broadcast to every row (init_ld 0: the bias) or a (KMR, NR) block with row stride init_ld
 * (C itself when a later block of k adds to it). */

#define KNR ((int64_t)(2 * KBYTES / sizeof(REAL)))

#if KMR == 12
#define KROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#elif KMR == 6
#define KROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#elif KMR == 4
#define KROWS(X) X(0) X(1) X(2) X(3)
#else
#error "KMR must be 12, 6 or 4"
#endif

KTARGET static void KNAME(int64_t kc, const REAL *FASTNN_RESTRICT a, const REAL *FASTNN_RESTRICT b,
                          REAL *FASTNN_RESTRICT c, int64_t ldc, const REAL *init, int64_t init_ld)
{
    typedef REAL vec __attribute__((vector_size(KBYTES)));
    const int64_t half = KBYTES / sizeof(REAL);
    int64_t p;
#define K_DECLARE(i) vec c##i##_lo, c##i##_hi;
    KROWS(K_DECLARE)
#undef K_DECLARE
    if (init == NULL) {
#define K_ZERO(i) c##i##_lo = (vec){0}, c##i##_hi = (vec){0};
        KROWS(K_ZERO)
#undef K_ZERO
    } else {
#define K_LOAD(i)                                                      \
        memcpy(&c##i##_lo, init + (i) * init_ld, KBYTES);              \
        memcpy(&c##i##_hi, init + (i) * init_ld + half, KBYTES);
        KROWS(K_LOAD)
#undef K_LOAD
    }
    for (p = 0; p < kc; p++) {
        vec b_lo, b_hi;
        memcpy(&b_lo, b, KBYTES);
        memcpy(&b_hi, b + half, KBYTES);
#define K_FMA(i)                           \
        c##i##_lo += a[i] * b_lo;          \
        c##i##_hi += a[i] * b_hi;
        KROWS(K_FMA)
#undef K_FMA
        a += KMR;
        b += KNR;
    }
#define K_STORE(i)                                         \
    memcpy(c + (i) * ldc, &c##i##_lo, KBYTES);             \
    memcpy(c + (i) * ldc + half, &c##i##_hi, KBYTES);
    KROWS(K_STORE)
#undef K_STORE
}

#undef KROWS
#undef KNR
