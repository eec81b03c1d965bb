/* network.c -- a whole network per call: backprop over a batch, an update, an epoch, batch prediction and
 * evaluation, one-sample prediction (twin: fastnn/_py/network.py). Built from the layer, loss and optimizer
 * kernels, so the GIL is released once per epoch and a training step makes no Python call and no allocation. */
#include <math.h>
#include <string.h>
#include "fastnn_internal.h"

/* Scratch of the inference passes, per sample: two buffers of the widest layer output, then the largest conv2d
 * columns, then the largest recurrent layer's workspaces. Pass-through layers need none. */
static int64_t fastnn_net_infer_widest(const fastnn_net *net)
{
    int64_t widest = 1;
    int i;
    for (i = 0; i < net->n_layers; i++)
        if (net->layers[i].out_size > widest) widest = net->layers[i].out_size;
    return widest;
}

static int64_t conv_positions(const fastnn_layer *L) { return L->win.out_h * L->win.out_w; }

static int64_t fastnn_net_infer_cols(const fastnn_net *net)
{
    int64_t most = 0;
    int i;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        int64_t size = conv_positions(L) * L->win.in_c * L->win.kh * L->win.kw;
        if (L->kind == FASTNN_LAYER_CONV2D && size > most) most = size;
    }
    return most;
}

/* ... then the largest recurrent layer's states, gates, cells and input projection */
static int64_t fastnn_net_infer_recurrent(const fastnn_net *net)
{
    int64_t most = 0;
    int i;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        if (L->kind != FASTNN_LAYER_RECURRENT) continue;
        int64_t size = fastnn_rnn_scratch_size(&L->seq, 1);
        if (size < 0) return -1;
        if (size > most) most = size;
    }
    return most;
}

int64_t fastnn_net_infer_scratch_size(const fastnn_net *net, int64_t n)
{
    if (net == NULL || net->n_layers < 1 || net->layers == NULL || n < 0) return -1;
    int64_t recurrent = fastnn_net_infer_recurrent(net);
    if (recurrent < 0) return -1;
    return n * (2 * fastnn_net_infer_widest(net) + fastnn_net_infer_cols(net) + recurrent);
}

#define FASTNN_TEMPLATE "network_impl.h"
#include "fastnn_real.h"
