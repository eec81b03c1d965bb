/* conv.c -- 2-D convolution over NCHW batches: im2col, col2im and the layer's forward and backward passes, each
 * product one GEMM for the whole batch (twin: fastnn/_py/conv.py). */
#include <string.h>
#include "fastnn_internal.h"

/* A window geometry the kernels can trust: positive sizes, and every count small enough for int32 indices. The
 * convolution kernels check each pixel against the image (any padding is fine: a window entirely in the padding
 * reads zeros, as in PyTorch); the pooling ones read without checks, so for them every window must lie inside. */
int fastnn_check_window(const fastnn_window *g, int pooling)
{
    if (g == NULL) return FASTNN_EINVAL;
    if (g->in_c < 1 || g->in_h < 1 || g->in_w < 1 || g->out_c < 1 || g->out_h < 1 || g->out_w < 1 || g->kh < 1 ||
        g->kw < 1 || g->sh < 1 || g->sw < 1 || g->pad_h < 0 || g->pad_w < 0)
        return FASTNN_ESHAPE;
    if (g->in_c > INT32_MAX || g->in_h > INT32_MAX || g->in_w > INT32_MAX || g->in_h * g->in_w > INT32_MAX ||
        g->kh > INT32_MAX || g->kw > INT32_MAX || g->kh * g->kw > INT32_MAX || g->sh > INT32_MAX ||
        g->sw > INT32_MAX || g->pad_h > INT32_MAX || g->pad_w > INT32_MAX || g->out_h > INT32_MAX ||
        g->out_w > INT32_MAX || g->out_h * g->out_w > INT32_MAX)
        return FASTNN_ESHAPE;
    if (pooling && (g->out_c != g->in_c || g->pad_h != 0 || g->pad_w != 0 ||
                    (g->out_h - 1) * g->sh + g->kh > g->in_h || (g->out_w - 1) * g->sw + g->kw > g->in_w))
        return FASTNN_ESHAPE;
    return FASTNN_OK;
}

#define FASTNN_TEMPLATE "conv_impl.h"
#include "fastnn_real.h"
