/* network.c -- a whole network per call: backprop over a batch, an update, an epoch, one-sample prediction
 * (twin: fastnn/_py/network.py). Built from the layer, loss and optimizer kernels, so the GIL is released once
 * per epoch and a training step makes no Python call and no allocation. */
#include <math.h>
#include "fastnn_internal.h"

#define FASTNN_TEMPLATE "network_impl.h"
#include "fastnn_real.h"
