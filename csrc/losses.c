/* losses.c -- losses and their gradients, softmax / sigmoid fused where they belong
 * (twin: fastnn/_py/losses.py). */
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "losses_impl.h"
#include "fastnn_real.h"
