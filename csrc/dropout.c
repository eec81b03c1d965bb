/* dropout.c -- inverted dropout with masks from a counter-based generator (twin: fastnn/_py/dropout.py).
 * Each mask element is a pure function of (key, index), so the masks do not depend on the thread count, and the
 * NumPy twin draws exactly the same ones; the keys come from the network's seeded NumPy generator. */
#include "fastnn_internal.h"

#define GOLDEN 0x9E3779B97F4A7C15ULL

/* splitmix64's output function (Steele, Lea & Flood 2014): a bijection of 64-bit words that mixes well */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t fastnn_dropout_batch_key(uint64_t seed, int64_t b) { return mix64(seed + ((uint64_t)b + 1) * GOLDEN); }

uint64_t fastnn_dropout_layer_key(uint64_t key, int64_t layer)
{
    return mix64(key ^ (((uint64_t)layer + 1) * 0xD1B54A32D192ED03ULL));
}

double fastnn_dropout_uniform(uint64_t key, int64_t i)
{
    return (double)(mix64(key + ((uint64_t)i + 1) * GOLDEN) >> 11) * (1.0 / 9007199254740992.0);
}

#define FASTNN_TEMPLATE "dropout_impl.h"
#include "fastnn_real.h"
