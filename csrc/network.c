/* network.c -- a whole network per call: backprop over a batch, an update, an epoch, batch prediction and
 * evaluation, one-sample prediction (twin: fastnn/_py/network.py). Built from the layer, loss and optimizer
 * kernels, so the GIL is released once per epoch and a training step makes no Python call and no allocation. */
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>
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

/* MPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm) as Open MPI (pointer handles) and MPICH (int
 * handles) declare it: the library is the one mpi4py loaded, its address and handles come from Python. */
typedef int (*mpi_allreduce_ptr_fn)(const void *, void *, int, void *, void *, void *);
typedef int (*mpi_allreduce_int_fn)(const void *, void *, int, int, int, int);

int fastnn_dist_allreduce(fastnn_dist *d, void *buf, int64_t count, int is_double)
{
    int rc = 0;
    if (d == NULL || buf == NULL || count < 0) return FASTNN_EINVAL;
    /* MPI counts are ints: larger buffers go in chunks */
    while (rc == 0 && count > 0) {
        int chunk = count > INT_MAX ? INT_MAX : (int)count;
        intptr_t type = is_double ? d->type_double : d->type_float;
        if (d->mpi_allreduce == NULL)
            rc = d->allreduce ? d->allreduce(d->ctx, buf, chunk, is_double) : -1;
        else if (d->mpi_int_handles)
            rc = ((mpi_allreduce_int_fn)d->mpi_allreduce)((const void *)d->in_place, buf, chunk, (int)type,
                                                           (int)d->op_sum, (int)d->comm);
        else
            rc = ((mpi_allreduce_ptr_fn)d->mpi_allreduce)((const void *)d->in_place, buf, chunk, (void *)type,
                                                           (void *)d->op_sum, (void *)d->comm);
        buf = (char *)buf + (size_t)chunk * (is_double ? sizeof(double) : sizeof(float));
        count -= chunk;
    }
    if (d->progress != NULL) *d->progress += 1;
    if (rc != 0) {
        d->error = rc;
        return FASTNN_EDIST;
    }
    return FASTNN_OK;
}

/* Wall-clock seconds for the allreduce statistics (processor time without OpenMP). */
static double fastnn_wall_seconds(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

#define FASTNN_TEMPLATE "network_impl.h"
#include "fastnn_real.h"
