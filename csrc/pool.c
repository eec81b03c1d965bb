/* pool.c -- max and average pooling over NCHW batches (twin: fastnn/_py/pool.py). Threads own whole planes
 * (one channel of one sample), so the backward scatters never share an output element. */
#include <math.h>
#include <string.h>
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "pool_impl.h"
#include "fastnn_real.h"
