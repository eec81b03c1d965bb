/* dense.c -- dense (fully connected) layer forward and backward (twin: fastnn/_py/dense.py). */
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "dense_impl.h"
#include "fastnn_real.h"
