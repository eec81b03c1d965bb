/* activations.c -- activation functions and their derivatives (twin: fastnn/_py/activations.py). */
#include "fastnn_internal.h"

int fastnn_openmp_enabled(void) { return FASTNN_HAVE_OPENMP; }

int fastnn_max_threads(void) { return omp_get_max_threads(); }

#define FASTNN_TEMPLATE "activations_impl.h"
#include "fastnn_real.h"
