/* prune.c -- magnitude pruning's two kernels (twin: fastnn/_py/prune.py):
 *  - the keep mask applied to a flat buffer (the optimizer update zeroes pruned weights' gradients before the
 *    step and the weights after it, so fine-tuning keeps them at exactly zero);
 *  - a dense layer's forward pass from a CSR copy of W^T (inference on a pruned network, where it pays). */
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "prune_impl.h"
#include "fastnn_real.h"
