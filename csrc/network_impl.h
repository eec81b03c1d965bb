/* network_impl.h -- template body of network.c, instantiated per REAL by fastnn_real.h. */

static int SFX(check_net)(const fastnn_net *net)
{
    int i;
    if (net == NULL || net->n_layers < 1 || net->layers == NULL || net->params == NULL || net->grads == NULL)
        return FASTNN_EINVAL;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        if (L->W == NULL || L->b == NULL) return FASTNN_EINVAL;
        if (i > 0 && L->d_in != net->layers[i - 1].d_out) return FASTNN_ESHAPE;
    }
    return FASTNN_OK;
}

int SFX(fastnn_net_backprop)(const fastnn_net *net, double *loss, const REAL *x, const REAL *t, const REAL *w,
                             int64_t n, int n_threads)
{
    int i, rc = SFX(check_net)(net);
    if (rc != FASTNN_OK) return rc;
    if (n < 1 || n > net->max_batch) return FASTNN_ESHAPE;
    const fastnn_layer *layers = net->layers, *last = &layers[net->n_layers - 1];

    const REAL *in = x;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &layers[i];
        rc = SFX(fastnn_dense_forward)((REAL *)L->a, in, (const REAL *)L->W, (const REAL *)L->b, n, L->d_in,
                                       L->d_out, L->act, L->alpha, n_threads);
        if (rc != FASTNN_OK) return rc;
        in = (const REAL *)L->a;
    }
    rc = SFX(fastnn_loss)(loss, (REAL *)last->delta, (const REAL *)last->a, t, w, n, last->d_out,
                          net->loss_kind, n_threads);
    if (rc != FASTNN_OK) return rc;
    /* the fused losses already gave the gradient w.r.t. the logits; mse gave it w.r.t. the activation */
    rc = SFX(fastnn_act_backward)((REAL *)last->delta, (const REAL *)last->delta, (const REAL *)last->a, n,
                                  last->d_out, last->act, last->alpha, n_threads);
    if (rc != FASTNN_OK) return rc;
    for (i = net->n_layers - 1; i >= 0; i--) {
        const fastnn_layer *L = &layers[i], *below = i > 0 ? &layers[i - 1] : NULL;
        const REAL *x_in = below ? (const REAL *)below->a : x;
        REAL *dx = below ? (REAL *)below->delta : NULL;
        rc = SFX(fastnn_dense_backward)(dx, (REAL *)L->dW, (REAL *)L->db, (const REAL *)L->delta, x_in,
                                        (const REAL *)L->W, n, L->d_in, L->d_out, n_threads);
        if (rc != FASTNN_OK) return rc;
        if (below) {
            rc = SFX(fastnn_act_backward)(dx, dx, (const REAL *)below->a, n, below->d_out, below->act,
                                          below->alpha, n_threads);
            if (rc != FASTNN_OK) return rc;
        }
    }
    return FASTNN_OK;
}

int SFX(fastnn_net_update)(const fastnn_net *net, fastnn_optimizer *opt, int n_threads)
{
    if (net == NULL || opt == NULL) return FASTNN_EINVAL;
    opt->t += 1;
    if (opt->kind == FASTNN_OPT_ADAM)
        return SFX(fastnn_adam_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                     (REAL *)opt->state2, net->n_params, net->n_decay, opt->lr, opt->beta1,
                                     opt->beta2, opt->eps, opt->weight_decay, opt->t, n_threads);
    if (opt->kind == FASTNN_OPT_SGD)
        return SFX(fastnn_sgd_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                    net->n_params, net->n_decay, opt->lr, opt->momentum, opt->nesterov,
                                    opt->weight_decay, n_threads);
    if (opt->kind == FASTNN_OPT_ADAMW)
        return SFX(fastnn_adamw_step)((REAL *)net->params, (const REAL *)net->grads, (REAL *)opt->state1,
                                      (REAL *)opt->state2, net->n_params, net->n_decay, opt->lr, opt->beta1,
                                      opt->beta2, opt->eps, opt->weight_decay, opt->t, n_threads);
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

int SFX(fastnn_net_train_epoch)(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X, const REAL *T,
                                const REAL *W, const int64_t *order, int64_t n, int64_t batch, double *loss_sum,
                                int64_t *n_done, int n_threads)
{
    int rc = SFX(check_net)(net);
    if (rc != FASTNN_OK) return rc;
    if (opt == NULL || X == NULL || T == NULL || order == NULL || loss_sum == NULL || n_done == NULL)
        return FASTNN_EINVAL;
    if (n < 1 || batch < 1 || batch > net->max_batch) return FASTNN_ESHAPE;
    const int64_t d_in = net->layers[0].d_in, d_out = net->layers[net->n_layers - 1].d_out;
    REAL *xb = (REAL *)net->x_batch, *tb = (REAL *)net->t_batch, *wb = W ? (REAL *)net->w_batch : NULL;
    if (W != NULL && wb == NULL) return FASTNN_EINVAL;
    int64_t start, r, j;
    *loss_sum = 0.0;
    *n_done = 0;
    for (r = 0; r < n; r++)
        if (order[r] < 0 || order[r] >= n) return FASTNN_EINVAL;

    for (start = 0; start < n; start += batch) {
        int64_t rows = n - start < batch ? n - start : batch;
        double loss;
        for (r = 0; r < rows; r++) {
            const REAL *xs = X + order[start + r] * d_in, *ts = T + order[start + r] * d_out;
            for (j = 0; j < d_in; j++) xb[r * d_in + j] = xs[j];
            for (j = 0; j < d_out; j++) tb[r * d_out + j] = ts[j];
            if (wb) wb[r] = W[order[start + r]];
        }
        rc = SFX(fastnn_net_backprop)(net, &loss, xb, tb, wb, rows, n_threads);
        if (rc != FASTNN_OK) return rc;
        if (!isfinite(loss)) return FASTNN_ENONFINITE;
        rc = SFX(fastnn_net_update)(net, opt, n_threads);
        if (rc != FASTNN_OK) return rc;
        *loss_sum += loss * (double)rows;
        *n_done += rows;
    }
    return FASTNN_OK;
}

int SFX(fastnn_net_forward_single)(const fastnn_net *net, REAL *y, const REAL *x, REAL *scratch)
{
    int i, rc;
    if (net == NULL || net->n_layers < 1 || net->layers == NULL || y == NULL || x == NULL || scratch == NULL)
        return FASTNN_EINVAL;
    int64_t widest = 0;
    for (i = 0; i < net->n_layers; i++) widest = net->layers[i].d_out > widest ? net->layers[i].d_out : widest;
    const REAL *in = x;
    for (i = 0; i < net->n_layers; i++) {
        const fastnn_layer *L = &net->layers[i];
        REAL *out = i == net->n_layers - 1 ? y : scratch + (i % 2) * widest;
        rc = SFX(fastnn_dense_forward_single)(out, in, (const REAL *)L->W, (const REAL *)L->b, L->d_in, L->d_out,
                                              L->predict_act, L->alpha);
        if (rc != FASTNN_OK) return rc;
        in = out;
    }
    return FASTNN_OK;
}
