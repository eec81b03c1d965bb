/* gemm.c -- fastnn's own matrix product (the template in gemm_impl.h, kernels in gemm_kernel.h) and what it
 * shares across element types: the instruction set in use, the pool of packing space, how a product is cut over
 * threads, and the table of engines chosen per product shape. Twin: fastnn/_py/gemm.py. */
#include <stdlib.h>
#include "fastnn_internal.h"

/* ---- instruction set ---- */

static int g_isa = -1; /* -1 until first asked */

int fastnn_gemm_best_isa(void)
{
#if FASTNN_GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return FASTNN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FASTNN_ISA_AVX2;
#endif
    return FASTNN_GEMM_VECTORS ? FASTNN_ISA_VECTOR : FASTNN_ISA_PLAIN;
}

int fastnn_gemm_isa(void)
{
    if (g_isa < 0) g_isa = fastnn_gemm_best_isa(); /* a benign race: every thread computes the same value */
    return g_isa;
}

int fastnn_gemm_set_isa(int isa)
{
    if (isa < FASTNN_ISA_PLAIN || isa > fastnn_gemm_best_isa()) return FASTNN_EINVAL;
    if (isa == FASTNN_ISA_VECTOR && !FASTNN_GEMM_VECTORS) return FASTNN_EINVAL;
    g_isa = isa;
    return FASTNN_OK;
}

/* ---- packing space: one slot per thread running an own-kernel block, taken and given back per product ---- */

#define GEMM_MAX_SLOTS 1024
#define GEMM_SLOT_BYTES                                                                                         \
    ((size_t)FASTNN_GEMM_B_BYTES +                                                           \
     sizeof(double) * ((size_t)FASTNN_GEMM_KC * FASTNN_GEMM_MR_MAX + FASTNN_GEMM_MR_MAX * FASTNN_GEMM_NR_MAX +   \
                       FASTNN_GEMM_NR_MAX))

static void *g_slots[GEMM_MAX_SLOTS];
static int g_slot_busy[GEMM_MAX_SLOTS];
static int g_n_slots = 0;

int fastnn_gemm_reserve(int n_slots)
{
    if (n_slots > GEMM_MAX_SLOTS) n_slots = GEMM_MAX_SLOTS;
    while (g_n_slots < n_slots) {
        /* 64-byte aligned by hand (aligned_alloc is C11): the pointer before the block keeps malloc's */
        char *raw = (char *)malloc(GEMM_SLOT_BYTES + 64 + sizeof(void *));
        if (raw == NULL) return FASTNN_ENOMEM;
        uintptr_t start = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
        ((void **)start)[-1] = raw;
        g_slots[g_n_slots] = (void *)start;
#if defined(__GNUC__)
        __atomic_store_n(&g_n_slots, g_n_slots + 1, __ATOMIC_RELEASE); /* the slot is complete before it is seen */
#else
        g_n_slots++;
#endif
    }
    return FASTNN_OK;
}

/* Claim a free slot: NULL only when none was ever reserved. When every slot is taken (more threads than were
 * reserved for, from several Python threads at once), wait for one: holders give theirs back within a product. */
void *fastnn_gemm_space_acquire(void)
{
    int i, n;
    for (;;) {
#if defined(__GNUC__)
        n = __atomic_load_n(&g_n_slots, __ATOMIC_ACQUIRE);
        if (n == 0) return NULL;
        for (i = 0; i < n; i++)
            if (__atomic_exchange_n(&g_slot_busy[i], 1, __ATOMIC_ACQUIRE) == 0) return g_slots[i];
#else
        void *found = NULL;
        n = g_n_slots;
        if (n == 0) return NULL;
        FASTNN_PRAGMA(omp critical(fastnn_gemm_pool))
        for (i = 0; i < n && found == NULL; i++)
            if (!g_slot_busy[i]) g_slot_busy[i] = 1, found = g_slots[i];
        if (found != NULL) return found;
#endif
    }
}

void fastnn_gemm_space_release(void *space)
{
    int i;
    for (i = 0; i < g_n_slots; i++)
        if (g_slots[i] == space) {
#if defined(__GNUC__)
            __atomic_store_n(&g_slot_busy[i], 0, __ATOMIC_RELEASE);
#else
            FASTNN_PRAGMA(omp critical(fastnn_gemm_pool))
            g_slot_busy[i] = 0;
#endif
            return;
        }
}

/* ---- cutting a product over threads ---- */

/* How many threads share C (m, n) (inner size k) on `engine`, each owning a band of rows (*by_rows) or of
 * columns. A band costs its thread a packing of the whole other operand, so C is cut across the larger of m and
 * n: the operand packed again by every thread is then the smaller one. A thread needs about a millisecond of
 * work (fastnn_threads_for) and at least one whole tile. */
int fastnn_gemm_plan(int engine, int64_t m, int64_t n, int64_t k, int64_t mr, int64_t nr, int n_threads,
                     int *by_rows)
{
    *by_rows = n < m;
    if (engine == FASTNN_GEMM_BLAS) return fastnn_blas_plan(m, n, k, n_threads, by_rows);
    return fastnn_threads_for(m * n * (k > 0 ? k : 1), *by_rows ? (m + mr - 1) / mr : (n + nr - 1) / nr, n_threads);
}

/* Thread t's band [*first, *last) of [0, extent) in a team of n_teams: whole units (tiles), as even as they go. */
void fastnn_gemm_band(int64_t extent, int64_t unit, int t, int n_teams, int64_t *first, int64_t *last)
{
    int64_t units = (extent + unit - 1) / unit, lo, hi;
    fastnn_chunk(units, t, n_teams, &lo, &hi);
    *first = lo * unit < extent ? lo * unit : extent;
    *last = hi * unit < extent ? hi * unit : extent;
}

/* ---- the engine per shape ---- */

typedef struct {
    int64_t m, n, k;
    int flags; /* is_f64 | trans_a << 1 | trans_b << 2 */
    int engine;
    int used;
} gemm_choice;

static gemm_choice g_table[FASTNN_GEMM_TABLE];
static int g_forced = FASTNN_GEMM_AUTO;

static int gemm_flags(int is_f64, int trans_a, int trans_b)
{
    return (is_f64 != 0) | (trans_a != 0) << 1 | (trans_b != 0) << 2;
}

static gemm_choice *gemm_slot(int64_t m, int64_t n, int64_t k, int flags, int for_insert)
{
    uint64_t h = (uint64_t)m * 0x9E3779B97F4A7C15ull ^ (uint64_t)n * 0xC2B2AE3D27D4EB4Full ^
                 (uint64_t)k * 0x165667B19E3779F9ull ^ (uint64_t)flags * 0x27D4EB2F165667C5ull;
    int probe;
    for (probe = 0; probe < FASTNN_GEMM_TABLE; probe++) {
        gemm_choice *c = &g_table[(h + (uint64_t)probe) % FASTNN_GEMM_TABLE];
#if defined(__GNUC__)
        int used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
#else
        int used = c->used;
#endif
        if (!used) return for_insert ? c : NULL;
        if (c->m == m && c->n == n && c->k == k && c->flags == flags) return c;
    }
    return NULL;
}

int fastnn_gemm_record(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, int engine)
{
    int flags = gemm_flags(is_f64, trans_a, trans_b);
    gemm_choice *c;
    if (engine < FASTNN_GEMM_LOOPS || engine > FASTNN_GEMM_BLAS || m < 0 || n < 0 || k < 0)
        return FASTNN_EINVAL;
    c = gemm_slot(m, n, k, flags, 1);
    if (c == NULL) return FASTNN_ENOMEM;
    if (c->used) { /* a shape seen before: only its engine changes */
        c->engine = engine;
        return FASTNN_OK;
    }
    c->m = m, c->n = n, c->k = k, c->flags = flags, c->engine = engine;
#if defined(__GNUC__)
    __atomic_store_n(&c->used, 1, __ATOMIC_RELEASE); /* readers without the GIL see a complete entry or none */
#else
    c->used = 1;
#endif
    return FASTNN_OK;
}

int fastnn_gemm_recorded(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k)
{
    gemm_choice *c = gemm_slot(m, n, k, gemm_flags(is_f64, trans_a, trans_b), 0);
    return c == NULL ? FASTNN_GEMM_AUTO : c->engine;
}

void fastnn_gemm_forget(void)
{
    int i;
    for (i = 0; i < FASTNN_GEMM_TABLE; i++) g_table[i].used = 0;
}

int fastnn_gemm_force(int engine)
{
    if (engine < FASTNN_GEMM_AUTO || engine > FASTNN_GEMM_BLAS) return FASTNN_EINVAL;
    g_forced = engine;
    return FASTNN_OK;
}

int fastnn_gemm_choose(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k)
{
    int engine = g_forced;
    if (engine == FASTNN_GEMM_AUTO) engine = fastnn_gemm_recorded(is_f64, trans_a, trans_b, m, n, k);
    if (engine == FASTNN_GEMM_AUTO)
        engine = fastnn_gemm_isa() < FASTNN_ISA_AVX2 && fastnn_blas_fits(m, n, k) ? FASTNN_GEMM_BLAS : FASTNN_GEMM_OWN;
    if (engine == FASTNN_GEMM_BLAS && !fastnn_blas_fits(m, n, k)) engine = FASTNN_GEMM_OWN;
    return engine;
}

#define FASTNN_TEMPLATE "gemm_impl.h"
#include "fastnn_real.h"
