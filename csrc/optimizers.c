/* optimizers.c -- parameter updates over one flat buffer (twin: fastnn/_py/optimizers.py). */
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "optimizers_impl.h"
#include "fastnn_real.h"
