/* sequence.c -- the plumbing layers of sequence models: the embedding lookup and step repetition (RepeatVector),
 * forward and backward (twin: fastnn/_py/sequence.py). */
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "sequence_impl.h"
#include "fastnn_real.h"
