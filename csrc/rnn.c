/* rnn.c -- recurrent layers (SimpleRNN, LSTM, GRU) over whole sequences: the forward pass and backpropagation
 * through time (twin: fastnn/_py/rnn.py). */
#include "fastnn_internal.h"

/* Per-sequence sizes (the workspaces, the weights) must stay far from int64 overflow once multiplied by a batch. */
#define RNN_SIZE_LIMIT (INT64_MAX / 64)

static int64_t rnn_gate_blocks(int cell) { return cell == FASTNN_CELL_LSTM ? 4 : cell == FASTNN_CELL_GRU ? 3 : 1; }

/* a * b <= RNN_SIZE_LIMIT for positive a, b */
static int rnn_fits(int64_t a, int64_t b) { return a <= RNN_SIZE_LIMIT / b; }

/* a * b * c for non-negative sizes, saturated at INT64_MAX: work estimates that cannot overflow */
static int64_t rnn_mul3(int64_t a, int64_t b, int64_t c)
{
    if (a == 0 || b == 0 || c == 0) return 0;
    if (a > INT64_MAX / b) return INT64_MAX;
    return a * b > INT64_MAX / c ? INT64_MAX : a * b * c;
}

/* Threads for the products before and after the time loop (input projection, weight and input gradients).
 * fastnn waits passively, so a fork wakes a sleeping thread; for the few million multiply-adds of one sequence
 * at batch 1 (a character LSTM) that cost more than the second thread saved, so these products only split at
 * RNN_OUTER_WORK_PER_THREAD each. */
#define RNN_OUTER_WORK_PER_THREAD ((int64_t)1 << 24)
static int rnn_outer_threads(int64_t work, int n_threads)
{
    int64_t nt = work / RNN_OUTER_WORK_PER_THREAD;
    if (nt > n_threads) nt = n_threads;
    return nt < 1 ? 1 : (int)nt;
}

int fastnn_check_sequence(const fastnn_sequence *s)
{
    if (s == NULL) return FASTNN_EINVAL;
    if (s->cell != FASTNN_CELL_SIMPLE && s->cell != FASTNN_CELL_LSTM && s->cell != FASTNN_CELL_GRU)
        return FASTNN_EINVAL;
    if (s->cell == FASTNN_CELL_SIMPLE && s->act != FASTNN_ACT_TANH && s->act != FASTNN_ACT_RELU)
        return FASTNN_EINVAL;
    if (s->steps < 1 || s->features < 1 || s->units < 1) return FASTNN_ESHAPE;
    if (s->steps >= RNN_SIZE_LIMIT || s->features > RNN_SIZE_LIMIT || s->units > RNN_SIZE_LIMIT) return FASTNN_ESHAPE;
    const int64_t GU = rnn_gate_blocks(s->cell) * s->units;
    if (!rnn_fits(s->units, rnn_gate_blocks(s->cell)) || !rnn_fits(GU, s->steps + 1) || !rnn_fits(GU, s->features) ||
        !rnn_fits(GU, s->units) || !rnn_fits(s->steps, s->features))
        return FASTNN_ESHAPE;
    return FASTNN_OK;
}

/* n sequences of a checked geometry index their workspaces (n (T + 1) G U values) and input (n T F) safely */
static int rnn_batch_fits(const fastnn_sequence *s, int64_t n)
{
    const int64_t GU = rnn_gate_blocks(s->cell) * s->units;
    return n <= RNN_SIZE_LIMIT / ((s->steps + 1) * GU) && n <= RNN_SIZE_LIMIT / (s->steps * s->features);
}

int64_t fastnn_rnn_scratch_size(const fastnn_sequence *s, int64_t n)
{
    if (fastnn_check_sequence(s) != FASTNN_OK || n < 0) return -1;
    const int64_t T = s->steps, U = s->units, GU = rnn_gate_blocks(s->cell) * U;
    /* states and cells (T + 1) U each, gates and the projection T G U each; each term < RNN_SIZE_LIMIT */
    const int64_t per = 2 * (T + 1) * U + 2 * T * GU;
    if (n > 0 && per > INT64_MAX / n) return -1;
    return n * per;
}

#if defined(__GNUC__)
/* The dot products' vectors of partial sums (rnn_impl.h): 64 bytes, one AVX-512 register (16 floats, 8 doubles;
 * two registers under AVX2, four under SSE: the same lanes, the same sums). */
#define RNN_VEC_BYTES 64
typedef float rnn_vec_f32 __attribute__((vector_size(RNN_VEC_BYTES)));
typedef double rnn_vec_f64 __attribute__((vector_size(RNN_VEC_BYTES)));
#if !defined(__clang__)
/* The lane sums of as many vectors as they have lanes, together: pairs of vectors fold into one (the low half of
 * each group of lanes plus the high half), so after log2(lanes) folds lane r holds the sum of vector r. Each sum
 * is the tree of lane_sum in rnn_impl.h, e.g. for 8 lanes ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), the
 * same additions in the same order, so a row's result does not depend on which path summed it. (GCC's
 * __builtin_shuffle.) */
#define RNN_ROW_SUMS 1
typedef int32_t rnn_mask_f32 __attribute__((vector_size(RNN_VEC_BYTES)));
typedef int64_t rnn_mask_f64 __attribute__((vector_size(RNN_VEC_BYTES)));

/* (vectors by pointer: a static function taking vectors by value draws GCC's ABI note in builds without them) */
static inline __attribute__((always_inline)) void rnn_fold_f32(rnn_vec_f32 *out, const rnn_vec_f32 *a,
                                                               const rnn_vec_f32 *b, int group)
{
    const rnn_mask_f32 lo16 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    const rnn_mask_f32 hi16 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    const rnn_mask_f32 lo8 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
    const rnn_mask_f32 hi8 = {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31};
    const rnn_mask_f32 lo4 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29};
    const rnn_mask_f32 hi4 = {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31};
    const rnn_mask_f32 lo2 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const rnn_mask_f32 hi2 = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    if (group == 16) *out = __builtin_shuffle(*a, *b, lo16) + __builtin_shuffle(*a, *b, hi16);
    else if (group == 8) *out = __builtin_shuffle(*a, *b, lo8) + __builtin_shuffle(*a, *b, hi8);
    else if (group == 4) *out = __builtin_shuffle(*a, *b, lo4) + __builtin_shuffle(*a, *b, hi4);
    else *out = __builtin_shuffle(*a, *b, lo2) + __builtin_shuffle(*a, *b, hi2);
}

static inline __attribute__((always_inline)) void rnn_row_sums_f32(rnn_vec_f32 *out, const rnn_vec_f32 *v)
{
    rnn_vec_f32 l1[8], l2[4], l3[2];
    int i;
    for (i = 0; i < 8; i++) rnn_fold_f32(&l1[i], &v[2 * i], &v[2 * i + 1], 16);
    for (i = 0; i < 4; i++) rnn_fold_f32(&l2[i], &l1[2 * i], &l1[2 * i + 1], 8);
    for (i = 0; i < 2; i++) rnn_fold_f32(&l3[i], &l2[2 * i], &l2[2 * i + 1], 4);
    rnn_fold_f32(out, &l3[0], &l3[1], 2);
}

static inline __attribute__((always_inline)) void rnn_fold_f64(rnn_vec_f64 *out, const rnn_vec_f64 *a,
                                                               const rnn_vec_f64 *b, int group)
{
    const rnn_mask_f64 lo8 = {0, 1, 2, 3, 8, 9, 10, 11}, hi8 = {4, 5, 6, 7, 12, 13, 14, 15};
    const rnn_mask_f64 lo4 = {0, 1, 4, 5, 8, 9, 12, 13}, hi4 = {2, 3, 6, 7, 10, 11, 14, 15};
    const rnn_mask_f64 lo2 = {0, 2, 4, 6, 8, 10, 12, 14}, hi2 = {1, 3, 5, 7, 9, 11, 13, 15};
    if (group == 8) *out = __builtin_shuffle(*a, *b, lo8) + __builtin_shuffle(*a, *b, hi8);
    else if (group == 4) *out = __builtin_shuffle(*a, *b, lo4) + __builtin_shuffle(*a, *b, hi4);
    else *out = __builtin_shuffle(*a, *b, lo2) + __builtin_shuffle(*a, *b, hi2);
}

static inline __attribute__((always_inline)) void rnn_row_sums_f64(rnn_vec_f64 *out, const rnn_vec_f64 *v)
{
    rnn_vec_f64 l1[4], l2[2];
    int i;
    for (i = 0; i < 4; i++) rnn_fold_f64(&l1[i], &v[2 * i], &v[2 * i + 1], 8);
    for (i = 0; i < 2; i++) rnn_fold_f64(&l2[i], &l1[2 * i], &l1[2 * i + 1], 4);
    rnn_fold_f64(out, &l2[0], &l2[1], 2);
}
#endif
#endif

#define FASTNN_TEMPLATE "rnn_impl.h"
#include "fastnn_real.h"
