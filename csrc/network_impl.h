/* network_impl.h -- template body of network.c, instantiated per REAL by fastnn_real.h.
 *
 * Every whole-network kernel walks the layer table and switches on each layer's kind. Flatten (always) and
 * dropout (outside training) pass their input through: their output is the buffer below them and the layer
 * above writes its input gradient straight into the delta of the layer below them. */

static int SFX(passes_through)(const fastnn_layer *L, int training)
{
    return L->kind == FASTNN_LAYER_FLATTEN || (L->kind == FASTNN_LAYER_DROPOUT && !training);
}

static int SFX(has_params)(const fastnn_layer *L)
{
    return L->kind == FASTNN_LAYER_DENSE || L->kind == FASTNN_LAYER_CONV2D || L->kind == FASTNN_LAYER_EMBEDDING ||
           L->kind == FASTNN_LAYER_RECURRENT;
}

/* The rows a layer's buffer of n samples makes for the per-row kernels (dense, activations, loss), and their
 * width: a dense layer on a sequence acts on each of its steps. */
static int64_t SFX(rows)(const fastnn_layer *L, int64_t n) { return n * L->steps; }
static int64_t SFX(width_in)(const fastnn_layer *L) { return L->in_size / L->steps; }
static int64_t SFX(width_out)(const fastnn_layer *L) { return L->out_size / L->steps; }

/* A recurrent layer's initial state for n sequences: the carried one (stateful), or NULL for zeros. */
static REAL *SFX(carried_state)(const fastnn_layer *L) { return (REAL *)L->state; }

/* The workspaces one forward pass of a layer uses: the layer's own (training) or slices of a caller's scratch
 * (inference). argmax is NULL outside training. */
typedef struct {
    REAL *cols;
    int32_t *argmax;
    REAL *states, *gates, *cells, *proj;
} SFX(pass_buffers);

/* The nearest layer at or below i that owns its output buffer, or -1 when only pass-through layers (or none)
 * lie between the input and i. */
static int SFX(owner_at_or_below)(const fastnn_net *net, int i, int training)
{
    for (; i >= 0; i--)
        if (!SFX(passes_through)(&net->layers[i], training)) return i;
    return -1;
}

static int SFX(params_below)(const fastnn_net *net, int i)
{
    for (i = i - 1; i >= 0; i--)
        if (SFX(has_params)(&net->layers[i])) return 1;
    return 0;
}

/* The table itself: kinds, sizes chained layer to layer, the geometry of each window, parameters present. */
static int SFX(check_net)(const fastnn_net *net)
{
    int i, rc;
    if (net == NULL || net->n_layers < 1 || net->layers == NULL || net->params == NULL || net->grads == NULL)
        return FASTNN_EINVAL;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        const fastnn_window *g = &L->win;
        const fastnn_sequence *s = &L->seq;
        if (L->in_size < 1 || L->out_size < 1 || L->steps < 1) return FASTNN_ESHAPE;
        if (i > 0 && L->in_size != net->layers[i - 1].out_size) return FASTNN_ESHAPE;
        if (L->kind != FASTNN_LAYER_DENSE && L->steps != 1) return FASTNN_ESHAPE;
        switch (L->kind) {
        case FASTNN_LAYER_DENSE:
            if (L->in_size % L->steps != 0 || L->out_size % L->steps != 0) return FASTNN_ESHAPE;
            break;
        case FASTNN_LAYER_EMBEDDING:
            /* its input is the network's: token ids */
            if (i != 0 || s->steps < 1 || s->features < 1 || s->units < 1 || L->in_size != s->steps ||
                L->out_size != s->steps * s->units)
                return FASTNN_ESHAPE;
            break;
        case FASTNN_LAYER_RECURRENT:
            if ((rc = fastnn_check_sequence(s)) != FASTNN_OK) return rc;
            if (L->in_size != s->steps * s->features ||
                L->out_size != (s->return_sequences ? s->steps * s->units : s->units))
                return FASTNN_ESHAPE;
            if (L->Wh == NULL || L->bh == NULL || L->dWh == NULL || L->dbh == NULL) return FASTNN_EINVAL;
            if (L->state != NULL && L->state_rows < 1) return FASTNN_ESHAPE;
            break;
        case FASTNN_LAYER_REPEAT:
            if (s->steps < 1 || s->features < 1 || L->in_size != s->features ||
                L->out_size != s->steps * s->features)
                return FASTNN_ESHAPE;
            break;
        case FASTNN_LAYER_CONV2D:
        case FASTNN_LAYER_MAXPOOL2D:
        case FASTNN_LAYER_AVGPOOL2D:
            rc = fastnn_check_window(g, L->kind != FASTNN_LAYER_CONV2D);
            if (rc != FASTNN_OK) return rc;
            if (L->in_size != g->in_c * g->in_h * g->in_w || L->out_size != g->out_c * g->out_h * g->out_w)
                return FASTNN_ESHAPE;
            break;
        case FASTNN_LAYER_FLATTEN:
            if (L->out_size != L->in_size) return FASTNN_ESHAPE;
            break;
        case FASTNN_LAYER_DROPOUT:
            if (L->out_size != L->in_size) return FASTNN_ESHAPE;
            if (!(L->rate >= 0 && L->rate < 1)) return FASTNN_EINVAL;
            break;
        default:
            return FASTNN_EINVAL;
        }
        if (SFX(has_params)(L) && (L->W == NULL || L->dW == NULL)) return FASTNN_EINVAL;
        if (SFX(has_params)(L) && L->kind != FASTNN_LAYER_EMBEDDING && (L->b == NULL || L->db == NULL))
            return FASTNN_EINVAL;
    }
    /* the loss reads the output layer's buffer, and the fused losses its logits */
    if (net->layers[net->n_layers - 1].kind != FASTNN_LAYER_DENSE) return FASTNN_EINVAL;
    return FASTNN_OK;
}

/* The training workspaces every layer's backprop needs. */
static int SFX(check_workspaces)(const fastnn_net *net)
{
    int i;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        if (L->kind == FASTNN_LAYER_FLATTEN) continue;
        if (L->a == NULL || L->delta == NULL) return FASTNN_EINVAL;
        if (L->kind == FASTNN_LAYER_CONV2D && L->cols == NULL) return FASTNN_EINVAL;
        if (L->kind == FASTNN_LAYER_MAXPOOL2D && L->argmax == NULL) return FASTNN_EINVAL;
        if (L->kind == FASTNN_LAYER_DROPOUT && L->mask == NULL) return FASTNN_EINVAL;
        if (L->kind == FASTNN_LAYER_RECURRENT && (L->states == NULL || L->gates == NULL || L->cells == NULL ||
                                                  L->dgates == NULL || L->carry == NULL))
            return FASTNN_EINVAL;
    }
    return FASTNN_OK;
}

/* Stateful layers carry one state per sequence of a batch: n must fit their state. */
static int SFX(check_states)(const fastnn_net *net, int64_t n)
{
    int i;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        if (L->kind == FASTNN_LAYER_RECURRENT && L->state != NULL && n > L->state_rows) return FASTNN_ESHAPE;
    }
    return FASTNN_OK;
}

/* Layer i's forward pass over n samples: out = layer(in). act is the activation to apply (dense, conv2d);
 * buf holds the workspaces to use. */
static int SFX(layer_forward)(const fastnn_layer *L, int i, REAL *out, const REAL *in, int64_t n, int act,
                              const SFX(pass_buffers) *buf, uint64_t dropout_key, int n_threads)
{
    switch (L->kind) {
    case FASTNN_LAYER_DENSE:
        return SFX(fastnn_dense_forward)(out, in, (const REAL *)L->W, (const REAL *)L->b, SFX(rows)(L, n),
                                         SFX(width_in)(L), SFX(width_out)(L), act, L->alpha, n_threads);
    case FASTNN_LAYER_CONV2D:
        return SFX(fastnn_conv2d_forward)(out, buf->cols, in, (const REAL *)L->W, (const REAL *)L->b, n,
                                          &L->win, act, L->alpha, n_threads);
    case FASTNN_LAYER_EMBEDDING:
        return SFX(fastnn_embedding_forward)(out, in, (const REAL *)L->W, n * L->seq.steps, L->seq.features,
                                             L->seq.units, n_threads);
    case FASTNN_LAYER_RECURRENT:
        return SFX(fastnn_rnn_forward)(out, buf->states, buf->gates, buf->cells, buf->proj, in, (const REAL *)L->W,
                                       (const REAL *)L->Wh, (const REAL *)L->b, (const REAL *)L->bh,
                                       SFX(carried_state)(L), SFX(carried_state)(L), n, &L->seq, n_threads);
    case FASTNN_LAYER_REPEAT:
        return SFX(fastnn_repeat_forward)(out, in, n, L->seq.features, L->seq.steps, n_threads);
    case FASTNN_LAYER_MAXPOOL2D:
        return SFX(fastnn_maxpool2d_forward)(out, buf->argmax, in, n, &L->win, n_threads);
    case FASTNN_LAYER_AVGPOOL2D:
        return SFX(fastnn_avgpool2d_forward)(out, in, n, &L->win, n_threads);
    case FASTNN_LAYER_DROPOUT:
        return SFX(fastnn_dropout_forward)(out, (REAL *)L->mask, in, n, L->in_size, L->rate,
                                           fastnn_dropout_layer_key(dropout_key, i), n_threads);
    default:
        return FASTNN_EINVAL;
    }
}

/* distill: NULL for the network's own loss, else the distillation loss's T and alpha with teacher the batch's
 * teacher logits (n, out_size). */
static int SFX(net_backprop)(const fastnn_net *net, double *loss, const REAL *x, const REAL *t, const REAL *w,
                             const fastnn_distill *distill, const REAL *teacher, int64_t n, int training,
                             uint64_t dropout_key, int n_threads)
{
    int i, rc = SFX(check_net)(net);
    if (rc != FASTNN_OK) return rc;
    if (loss == NULL || x == NULL || t == NULL) return FASTNN_EINVAL;
    if (n < 1 || n > net->max_batch) return FASTNN_ESHAPE;
    if ((rc = SFX(check_workspaces)(net)) != FASTNN_OK) return rc;
    if ((rc = SFX(check_states)(net, n)) != FASTNN_OK) return rc;
    const fastnn_layer *layers = net->layers, *last = &layers[net->n_layers - 1];
    /* per-sample weights weigh rows of the loss: with a sequence output they would need one per step */
    if (w != NULL && last->steps != 1) return FASTNN_EINVAL;
    if (distill != NULL && (teacher == NULL || net->loss_kind != FASTNN_LOSS_CROSS_ENTROPY || last->steps != 1))
        return FASTNN_EINVAL;

    const REAL *in = x;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &layers[i];
        if (SFX(passes_through)(L, training)) continue;
        /* a recurrent layer's input projection goes to its dgates workspace, free until the backward pass */
        SFX(pass_buffers) buf = {(REAL *)L->cols, L->argmax, (REAL *)L->states, (REAL *)L->gates,
                                 (REAL *)L->cells, (REAL *)L->dgates};
        rc = SFX(layer_forward)(L, i, (REAL *)L->a, in, n, L->act, &buf, dropout_key, n_threads);
        if (rc != FASTNN_OK) return rc;
        in = (const REAL *)L->a;
    }
    if (distill != NULL)
        rc = SFX(fastnn_distill_loss)(loss, (REAL *)last->delta, (const REAL *)last->a, t, teacher, w, n,
                                      last->out_size, distill->temperature, distill->alpha, n_threads);
    else
        rc = SFX(fastnn_loss)(loss, (REAL *)last->delta, (const REAL *)last->a, t, w, SFX(rows)(last, n),
                              SFX(width_out)(last), net->loss_kind, n_threads);
    if (rc != FASTNN_OK) return rc;
    /* the fused losses already gave the gradient w.r.t. the logits; mse gave it w.r.t. the activation */
    rc = SFX(fastnn_act_backward)((REAL *)last->delta, (const REAL *)last->delta, (const REAL *)last->a,
                                  SFX(rows)(last, n), SFX(width_out)(last), last->act, last->alpha, n_threads);
    if (rc != FASTNN_OK) return rc;

    for (i = net->n_layers - 1; i >= 0; i--) {
        const fastnn_layer *L = &layers[i];
        if (SFX(passes_through)(L, training)) continue;
        int b = SFX(owner_at_or_below)(net, i - 1, training);
        const fastnn_layer *below = b >= 0 ? &layers[b] : NULL;
        const REAL *x_in = below ? (const REAL *)below->a : x;
        /* an input gradient only matters if some layer below has parameters */
        REAL *dx = below && SFX(params_below)(net, i) ? (REAL *)below->delta : NULL;
        const REAL *dz = (const REAL *)L->delta;
        int masked = 0; /* dx already times the derivative of the layer below */
        switch (L->kind) {
        case FASTNN_LAYER_DENSE: {
            /* the layer below's activation derivative rides in the dx product when it is element-wise */
            fastnn_gemm_epilogue mask = {below ? below->act : FASTNN_ACT_LINEAR, below ? below->alpha : 0.0,
                                         below ? below->a : NULL};
            int fuse = dx && SFX(has_params)(below) && below->act != FASTNN_ACT_LINEAR &&
                       below->act != FASTNN_ACT_SOFTMAX;
            rc = SFX(fastnn_dense_backward_masked)(dx, (REAL *)L->dW, (REAL *)L->db, dz, x_in, (const REAL *)L->W,
                                                   SFX(rows)(L, n), SFX(width_in)(L), SFX(width_out)(L),
                                                   fuse ? &mask : NULL, &masked, n_threads);
            break;
        }
        case FASTNN_LAYER_EMBEDDING:
            rc = SFX(fastnn_embedding_backward)((REAL *)L->dW, dz, x_in, n * L->seq.steps, L->seq.features,
                                                L->seq.units, n_threads);
            break;
        case FASTNN_LAYER_RECURRENT:
            rc = SFX(fastnn_rnn_backward)(dx, (REAL *)L->dW, (REAL *)L->dWh, (REAL *)L->db, (REAL *)L->dbh,
                                          (REAL *)L->dgates, (REAL *)L->gates, (REAL *)L->cells, (REAL *)L->carry,
                                          dz, x_in, (const REAL *)L->states, (const REAL *)L->W,
                                          (const REAL *)L->Wh, n, &L->seq, n_threads);
            break;
        case FASTNN_LAYER_REPEAT:
            rc = dx ? SFX(fastnn_repeat_backward)(dx, dz, n, L->seq.features, L->seq.steps, n_threads) : FASTNN_OK;
            break;
        case FASTNN_LAYER_CONV2D:
            rc = SFX(fastnn_conv2d_backward)(dx, (REAL *)L->dW, (REAL *)L->db, (REAL *)L->cols, dz, x_in, (const REAL *)L->W, n, &L->win,
                                             n_threads);
            break;
        case FASTNN_LAYER_MAXPOOL2D:
            rc = dx ? SFX(fastnn_maxpool2d_backward)(dx, dz, L->argmax, n, &L->win, n_threads) : FASTNN_OK;
            break;
        case FASTNN_LAYER_AVGPOOL2D:
            rc = dx ? SFX(fastnn_avgpool2d_backward)(dx, dz, n, &L->win, n_threads) : FASTNN_OK;
            break;
        case FASTNN_LAYER_DROPOUT:
            rc = dx ? SFX(fastnn_dropout_backward)(dx, dz, (const REAL *)L->mask, n, L->in_size, n_threads)
                    : FASTNN_OK;
            break;
        default:
            rc = FASTNN_EINVAL;
        }
        if (rc != FASTNN_OK) return rc;
        if (dx && SFX(has_params)(below) && below->act != FASTNN_ACT_LINEAR && !masked) {
            rc = SFX(fastnn_act_backward)(dx, dx, (const REAL *)below->a, SFX(rows)(below, n), SFX(width_out)(below),
                                          below->act, below->alpha, n_threads);
            if (rc != FASTNN_OK) return rc;
        }
    }
    return FASTNN_OK;
}

int SFX(fastnn_net_backprop)(const fastnn_net *net, double *loss, const REAL *x, const REAL *t, const REAL *w,
                             int64_t n, int training, uint64_t dropout_key, int n_threads)
{
    return SFX(net_backprop)(net, loss, x, t, w, NULL, NULL, n, training, dropout_key, n_threads);
}

int SFX(fastnn_net_backprop_distill)(const fastnn_net *net, double *loss, const REAL *x, const REAL *t,
                                     const REAL *teacher, const REAL *w, int64_t n, double temperature,
                                     double alpha, int training, uint64_t dropout_key, int n_threads)
{
    fastnn_distill distill = {temperature, alpha, NULL, NULL};
    if (teacher == NULL) return FASTNN_EINVAL;
    return SFX(net_backprop)(net, loss, x, t, w, &distill, teacher, n, training, dropout_key, n_threads);
}

/* The optimizer step itself (fastnn_net_update around it applies the pruning mask). */
static int SFX(net_step)(const fastnn_net *net, fastnn_optimizer *opt, int n_threads)
{
    if (opt->clip_norm > 0) {
        int clipped = 0;
        int rc = SFX(fastnn_clip_grad_norm)(&clipped, (REAL *)net->grads, net->n_params, opt->clip_norm, n_threads);
        if (rc != FASTNN_OK) return rc;
        opt->clipped += clipped;
    }
    if (opt->kind == FASTNN_OPT_ADAM)
        return SFX(fastnn_adam_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                     (REAL *)opt->state2, net->n_params, net->n_decay, opt->lr, opt->beta1,
                                     opt->beta2, opt->eps, opt->weight_decay, opt->t, opt->eps_placement, n_threads);
    if (opt->kind == FASTNN_OPT_SGD)
        return SFX(fastnn_sgd_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                    net->n_params, net->n_decay, opt->lr, opt->momentum, opt->nesterov,
                                    opt->weight_decay, n_threads);
    if (opt->kind == FASTNN_OPT_ADAMW)
        return SFX(fastnn_adamw_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                      (REAL *)opt->state2, net->n_params, net->n_decay, opt->lr, opt->beta1,
                                      opt->beta2, opt->eps, opt->weight_decay, opt->t, opt->eps_placement, n_threads);
    if (opt->kind == FASTNN_OPT_RMSPROP)
        return SFX(fastnn_rmsprop_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                        net->n_params, net->n_decay, opt->lr, opt->rho, opt->eps,
                                        opt->weight_decay, n_threads);
    if (opt->kind == FASTNN_OPT_IRPROP_MINUS)
        return SFX(fastnn_irprop_minus_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                             (REAL *)opt->state2, net->n_params, net->n_decay, opt->eta_plus,
                                             opt->eta_minus, opt->step_min, opt->step_max, opt->weight_decay,
                                             n_threads);
    return FASTNN_EINVAL;
}

int SFX(fastnn_net_update)(const fastnn_net *net, fastnn_optimizer *opt, int n_threads)
{
    int rc;
    if (net == NULL || opt == NULL) return FASTNN_EINVAL;
    /* pruned weights: no gradient (so clipping and optimizer state see none), and zero again after the step,
     * whatever momentum or weight decay would make of them */
    if (net->keep != NULL &&
        (rc = SFX(fastnn_mask_apply)((REAL *)net->grads, net->keep, net->n_decay, n_threads)) != FASTNN_OK)
        return rc;
    opt->t += 1;
    rc = SFX(net_step)(net, opt, n_threads);
    if (rc != FASTNN_OK || net->keep == NULL) return rc;
    return SFX(fastnn_mask_apply)((REAL *)net->params, net->keep, net->n_decay, n_threads);
}

/* Data-parallel training (fastnn_dist). The count a batch's loss is a mean over, as fastnn_loss counts it: its
 * rows (times the steps of a sequence output), or with ignore_index the rows that are not padding. */
static double SFX(dist_loss_count)(const fastnn_net *net, const REAL *t, int64_t rows)
{
    const fastnn_layer *last = &net->layers[net->n_layers - 1];
    int64_t m = SFX(rows)(last, rows), d = SFX(width_out)(last), i, j, count = 0;
    if (net->loss_kind != FASTNN_LOSS_CROSS_ENTROPY_IGNORE) return (double)m;
    for (i = 0; i < m; i++) {
        for (j = 0; j < d && t[i * d + j] == 0; j++) {
        }
        count += j < d;
    }
    return (double)count;
}

/* Between backprop and update: agree on the step's flags, then sum the gradients, each rank's weighted by its
 * share of the global loss count. step_rc: this rank's backprop status (a failed rank still takes part, so no
 * rank waits for it forever). */
static int SFX(dist_sync)(const fastnn_net *net, fastnn_dist *dist, double count, double loss, int step_rc,
                          int n_threads)
{
    double flags[3] = {count, isfinite(loss) ? 0.0 : 1.0, step_rc != FASTNN_OK ? 1.0 : 0.0};
    REAL *g = (REAL *)net->grads;
    int64_t i, n_params = net->n_params;
    if (fastnn_dist_allreduce(dist, flags, 3, 1) != FASTNN_OK) return FASTNN_EDIST;
    if (step_rc != FASTNN_OK) return step_rc;
    if (flags[2] > 0) return FASTNN_EDIST;
    if (flags[1] > 0) return FASTNN_ENONFINITE;
    if (count != flags[0]) {
        REAL scale = flags[0] > 0 ? (REAL)(count / flags[0]) : (REAL)0;
        int nt = fastnn_threads_for(n_params, n_params, n_threads);
#pragma omp parallel for schedule(static) num_threads(nt)
        for (i = 0; i < n_params; i++) g[i] *= scale;
    }
    double started = fastnn_wall_seconds();
    int rc = fastnn_dist_allreduce(dist, g, n_params, sizeof(REAL) == sizeof(double));
    dist->seconds += fastnn_wall_seconds() - started;
    dist->calls += 1;
    dist->bytes += n_params * (int64_t)sizeof(REAL);
    return rc;
}

/* The steps of a data-parallel epoch after this rank's batches ran out: an empty batch each. */
static int SFX(dist_empty_steps)(const fastnn_net *net, fastnn_optimizer *opt, fastnn_dist *dist, int64_t done,
                                 int n_threads)
{
    int64_t b, i;
    int rc;
    for (b = done; b < dist->n_steps; b++) {
        for (i = 0; i < net->n_params; i++) ((REAL *)net->grads)[i] = 0;
        if ((rc = SFX(dist_sync)(net, dist, 0.0, 0.0, FASTNN_OK, n_threads)) != FASTNN_OK) return rc;
        if ((rc = SFX(fastnn_net_update)(net, opt, n_threads)) != FASTNN_OK) return rc;
    }
    return FASTNN_OK;
}

/* distill: NULL for the network's own loss. dist: NULL, or data-parallel training (fastnn_dist). */
static int SFX(train_epoch)(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X, const fastnn_csr *Xs,
                            const REAL *T, const REAL *W, const fastnn_distill *distill, int64_t n_rows,
                            const int64_t *order, int64_t n, int64_t batch,
                            uint64_t dropout_seed, fastnn_metrics *metrics, double *loss_sum, int64_t *n_done,
                            fastnn_dist *dist, int n_threads)
{
    int rc = SFX(check_net)(net);
    if (rc != FASTNN_OK) return rc;
    const fastnn_layer *last = &net->layers[net->n_layers - 1];
    if ((rc = fastnn_check_metrics(metrics, last->predict_act)) != FASTNN_OK) return rc;
    if (opt == NULL || (X == NULL) == (Xs == NULL) || T == NULL || order == NULL || loss_sum == NULL ||
        n_done == NULL)
        return FASTNN_EINVAL;
    if (n < 1 || n_rows < 1 || batch < 1 || batch > net->max_batch) return FASTNN_ESHAPE;
    const int64_t d_in = net->layers[0].in_size, d_out = net->layers[net->n_layers - 1].out_size;
    if (Xs != NULL) {
        if ((rc = fastnn_check_csr(Xs)) != FASTNN_OK) return rc;
        if (Xs->n_rows != n_rows || Xs->n_cols != d_in) return FASTNN_ESHAPE;
    }
    REAL *xb = (REAL *)net->x_batch, *tb = (REAL *)net->t_batch, *wb = W ? (REAL *)net->w_batch : NULL;
    if (xb == NULL || tb == NULL || (W != NULL && wb == NULL)) return FASTNN_EINVAL;
    const REAL *U = distill ? (const REAL *)distill->teacher : NULL;
    REAL *ub = distill ? (REAL *)distill->teacher_batch : NULL;
    if (distill != NULL && (U == NULL || ub == NULL)) return FASTNN_EINVAL;
    int64_t start, r, j, b;
    *loss_sum = 0.0;
    *n_done = 0;
    for (r = 0; r < n; r++)
        if (order[r] < 0 || order[r] >= n_rows) return FASTNN_EINVAL;

    for (start = 0, b = 0; start < n; start += batch, b++) {
        int64_t rows = n - start < batch ? n - start : batch;
        double loss;
        if (Xs != NULL && (rc = SFX(fastnn_csr_gather)(xb, Xs, order + start, rows, n_threads)) != FASTNN_OK)
            return rc;
        if (X != NULL) /* the batch's rows of X: a copy as wide as the input, shared out when that pays */
            FASTNN_FOR_RANGE(rows, 16 * rows * d_in, n_threads, lo, hi, {
                int64_t q;
                for (q = lo; q < hi; q++)
                    memcpy(xb + q * d_in, X + order[start + q] * d_in, (size_t)d_in * sizeof(REAL));
            });
        for (r = 0; r < rows; r++) {
            const REAL *ts = T + order[start + r] * d_out;
            for (j = 0; j < d_out; j++) tb[r * d_out + j] = ts[j];
            if (wb) wb[r] = W[order[start + r]];
            if (ub)
                for (j = 0; j < d_out; j++) ub[r * d_out + j] = U[order[start + r] * d_out + j];
        }
        rc = SFX(net_backprop)(net, &loss, xb, tb, wb, distill, ub, rows, 1,
                               fastnn_dropout_batch_key(dropout_seed, b), n_threads);
        if (dist != NULL &&
            (rc = SFX(dist_sync)(net, dist, SFX(dist_loss_count)(net, tb, rows), loss, rc, n_threads)) != FASTNN_OK)
            return rc;
        if (rc != FASTNN_OK) return rc;
        if (!isfinite(loss)) return FASTNN_ENONFINITE;
        /* the batch's outputs are still in the output layer's workspace: its metrics before the update */
        rc = SFX(fastnn_metrics_accumulate)(metrics, (const REAL *)last->a, tb, wb, SFX(rows)(last, rows),
                                            SFX(width_out)(last), last->predict_act, last->act != last->predict_act,
                                            net->loss_kind == FASTNN_LOSS_CROSS_ENTROPY_IGNORE);
        if (rc != FASTNN_OK) return rc;
        rc = SFX(fastnn_net_update)(net, opt, n_threads);
        if (rc != FASTNN_OK) return rc;
        *loss_sum += loss * (double)rows;
        *n_done += rows;
    }
    return dist != NULL ? SFX(dist_empty_steps)(net, opt, dist, b, n_threads) : FASTNN_OK;
}

int SFX(fastnn_net_train_epoch)(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X, const fastnn_csr *Xs,
                                const REAL *T, const REAL *W, int64_t n_rows, const int64_t *order, int64_t n,
                                int64_t batch, uint64_t dropout_seed, fastnn_metrics *metrics, double *loss_sum,
                                int64_t *n_done, int n_threads)
{
    return SFX(train_epoch)(net, opt, X, Xs, T, W, NULL, n_rows, order, n, batch, dropout_seed, metrics, loss_sum,
                            n_done, NULL, n_threads);
}

int SFX(fastnn_net_train_epoch_distill)(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X,
                                        const fastnn_csr *Xs, const REAL *T, const REAL *W,
                                        const fastnn_distill *distill, int64_t n_rows, const int64_t *order,
                                        int64_t n, int64_t batch, uint64_t dropout_seed, fastnn_metrics *metrics,
                                        double *loss_sum, int64_t *n_done, int n_threads)
{
    if (distill == NULL) return FASTNN_EINVAL;
    return SFX(train_epoch)(net, opt, X, Xs, T, W, distill, n_rows, order, n, batch, dropout_seed, metrics,
                            loss_sum, n_done, NULL, n_threads);
}

int SFX(fastnn_net_train_epoch_dist)(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X,
                                     const fastnn_csr *Xs, const REAL *T, const REAL *W,
                                     const fastnn_distill *distill, int64_t n_rows, const int64_t *order,
                                     int64_t n, int64_t batch, uint64_t dropout_seed, fastnn_metrics *metrics,
                                     double *loss_sum, int64_t *n_done, fastnn_dist *dist, int n_threads)
{
    if (dist == NULL || batch < 1 || dist->n_steps < (n + batch - 1) / batch) return FASTNN_EINVAL;
    return SFX(train_epoch)(net, opt, X, Xs, T, W, distill, n_rows, order, n, batch, dropout_seed, metrics,
                            loss_sum, n_done, dist, n_threads);
}

/* Inference through a pruned dense layer's CSR copy (fastnn_layer.sparse) for batches it pays for. */
static int SFX(use_sparse)(const fastnn_layer *L, int64_t n)
{
    return L->kind == FASTNN_LAYER_DENSE && L->steps == 1 && L->sparse.indptr != NULL && n <= L->sparse_rows;
}

/* A forward pass outside training in `scratch` (see fastnn_net_infer_scratch_size): two buffers of the widest
 * layer output taken in turn, then the largest conv2d's columns. predict: the output layer applies its
 * predict activation and writes into y; otherwise the output (logits for the fused losses) is returned in *out. */
static int SFX(net_infer)(const fastnn_net *net, REAL *y, const REAL **out, const REAL *x, int64_t n,
                          REAL *scratch, int n_threads)
{
    int i, rc;
    int64_t widest = fastnn_net_infer_widest(net);
    REAL *buf0 = scratch, *buf1 = scratch + n * widest, *cols = scratch + 2 * n * widest;
    REAL *recurrent = cols + n * fastnn_net_infer_cols(net);
    const REAL *in = x;
    if ((rc = SFX(check_states)(net, n)) != FASTNN_OK) return rc;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        if (SFX(passes_through)(L, 0)) continue;
        int is_last = i == net->n_layers - 1;
        REAL *dst = is_last && y ? y : (in == buf0 ? buf1 : buf0);
        SFX(pass_buffers) buf = {cols, NULL, NULL, NULL, NULL, NULL};
        if (L->kind == FASTNN_LAYER_RECURRENT) {
            /* laid out as fastnn_rnn_scratch_size counts: states, gates, cells, projection */
            int64_t T = L->seq.steps, U = L->seq.units;
            int64_t gate_values = fastnn_rnn_scratch_size(&L->seq, 1) / 2 - (T + 1) * U; /* T G U */
            buf.states = recurrent;
            buf.gates = buf.states + n * (T + 1) * U;
            buf.cells = buf.gates + n * gate_values;
            buf.proj = buf.cells + n * (T + 1) * U;
        }
        int act = is_last && y ? L->predict_act : L->act;
        if (SFX(use_sparse)(L, n))
            rc = SFX(fastnn_sparse_dense_forward)(dst, in, &L->sparse, (const REAL *)L->b, n, act, L->alpha,
                                                  n_threads);
        else
            rc = SFX(layer_forward)(L, i, dst, in, n, act, &buf, 0, n_threads);
        if (rc != FASTNN_OK) return rc;
        in = dst;
    }
    if (out) *out = in;
    return FASTNN_OK;
}

int SFX(fastnn_net_predict)(const fastnn_net *net, REAL *y, const REAL *x, int64_t n, REAL *scratch,
                            int n_threads)
{
    int rc = SFX(check_net)(net);
    if (rc != FASTNN_OK) return rc;
    if (n < 0) return FASTNN_ESHAPE;
    if (n == 0) return FASTNN_OK;
    if (y == NULL || x == NULL || scratch == NULL) return FASTNN_EINVAL;
    return SFX(net_infer)(net, y, NULL, x, n, scratch, n_threads);
}

int SFX(fastnn_net_evaluate)(const fastnn_net *net, double *loss, const REAL *x, const REAL *t, const REAL *w,
                             int64_t n, REAL *scratch, fastnn_metrics *metrics, int n_threads)
{
    const REAL *out = NULL;
    int rc = SFX(check_net)(net);
    if (rc != FASTNN_OK) return rc;
    if (n < 1) return FASTNN_ESHAPE;
    if (loss == NULL || x == NULL || t == NULL || scratch == NULL) return FASTNN_EINVAL;
    const fastnn_layer *last = &net->layers[net->n_layers - 1];
    if (w != NULL && last->steps != 1) return FASTNN_EINVAL;
    if ((rc = fastnn_check_metrics(metrics, last->predict_act)) != FASTNN_OK) return rc;
    rc = SFX(net_infer)(net, NULL, &out, x, n, scratch, n_threads);
    if (rc != FASTNN_OK) return rc;
    rc = SFX(fastnn_loss)(loss, NULL, out, t, w, SFX(rows)(last, n), SFX(width_out)(last), net->loss_kind,
                          n_threads);
    if (rc != FASTNN_OK) return rc;
    return SFX(fastnn_metrics_accumulate)(metrics, out, t, w, SFX(rows)(last, n), SFX(width_out)(last),
                                          last->predict_act, last->act != last->predict_act,
                                          net->loss_kind == FASTNN_LOSS_CROSS_ENTROPY_IGNORE);
}

int SFX(fastnn_net_forward_single)(const fastnn_net *net, REAL *y, const REAL *x, REAL *scratch)
{
    int i, rc;
    if (net == NULL || net->n_layers < 1 || net->layers == NULL || y == NULL || x == NULL || scratch == NULL)
        return FASTNN_EINVAL;
    int64_t widest = 0;
    for (i = 0; i < net->n_layers; i++) {
        if (net->layers[i].kind != FASTNN_LAYER_DENSE || net->layers[i].steps != 1) return FASTNN_EINVAL;
        if (i > 0 && net->layers[i].in_size != net->layers[i - 1].out_size) return FASTNN_ESHAPE;
        widest = net->layers[i].out_size > widest ? net->layers[i].out_size : widest;
    }
    const REAL *in = x;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        REAL *out = i == net->n_layers - 1 ? y : scratch + (i % 2) * widest;
        if (SFX(use_sparse)(L, 1))
            rc = SFX(fastnn_sparse_dense_forward)(out, in, &L->sparse, (const REAL *)L->b, 1, L->predict_act,
                                                  L->alpha, 1);
        else
            rc = SFX(fastnn_dense_forward_single)(out, in, (const REAL *)L->W, (const REAL *)L->b, L->in_size,
                                                  L->out_size, L->predict_act, L->alpha);
        if (rc != FASTNN_OK) return rc;
        in = out;
    }
    return FASTNN_OK;
}
