/* losses_impl.h -- template body of losses.c, instantiated per REAL by fastnn_real.h.
 *
 * The loss value is summed serially in double: it is O(n * d), cheap next to the layers, and a serial sum
 * keeps it independent of the thread count. The per-element terms are computed in REAL.
 * With sample weights w, each sample's loss and gradient are multiplied by w_i and the mean stays over n. */

int SFX(fastnn_loss)(double *loss, REAL *grad, const REAL *out, const REAL *target, const REAL *weights,
                     int64_t n, int64_t d, int loss_kind, int n_threads)
{
    int64_t i, j;
    double total = 0.0;
    (void)n_threads;
    if (n < 1 || d < 1) return FASTNN_ESHAPE;
    if (loss == NULL || out == NULL || target == NULL) return FASTNN_EINVAL;

    switch (loss_kind) {
    case FASTNN_LOSS_MSE: {
        REAL scale = (REAL)(2.0 / ((double)n * (double)d));
        for (i = 0; i < n; i++) {
            REAL w = weights ? weights[i] : (REAL)1, w_scale = w * scale;
            double row = 0.0;
            for (j = i * d; j < (i + 1) * d; j++) {
                REAL diff = out[j] - target[j];
                row += (double)(diff * diff);
                if (grad) grad[j] = w_scale * diff;
            }
            total += weights ? row * (double)w : row;
        }
        *loss = total / ((double)n * (double)d);
        return FASTNN_OK;
    }
    case FASTNN_LOSS_CROSS_ENTROPY:
    case FASTNN_LOSS_CROSS_ENTROPY_IGNORE: {
        /* loss_i = sum_j t_j (lse_i - z_j), lse = log sum exp z; d loss_i / d z_j = p_j sum(t) - t_j */
        int64_t count = n;
        if (loss_kind == FASTNN_LOSS_CROSS_ENTROPY_IGNORE) {
            /* padding rows (all-zero targets) add nothing, so the mean is over the others */
            count = 0;
            for (i = 0; i < n; i++) {
                for (j = 0; j < d && target[i * d + j] == 0; j++) {
                }
                count += j < d;
            }
            if (count == 0) count = 1;
        }
        REAL inv_n = (REAL)(1.0 / (double)count);
        for (i = 0; i < n; i++) {
            const REAL *z = out + i * d, *t = target + i * d;
            REAL *g = grad ? grad + i * d : NULL;
            REAL m = z[0], t_sum = 0, w = weights ? weights[i] : (REAL)1, w_scale = w * inv_n;
            double s = 0.0, row = 0.0;
            for (j = 1; j < d; j++) m = z[j] > m ? z[j] : m;
            for (j = 0; j < d; j++) s += (double)R_EXP(z[j] - m);
            REAL lse = m + (REAL)log(s);
            for (j = 0; j < d; j++) {
                row += (double)(t[j] * (lse - z[j]));
                t_sum += t[j];
            }
            total += weights ? row * (double)w : row;
            if (g)
                for (j = 0; j < d; j++) g[j] = (R_EXP(z[j] - lse) * t_sum - t[j]) * w_scale;
        }
        *loss = total / (double)count;
        return FASTNN_OK;
    }
    case FASTNN_LOSS_BINARY_CROSS_ENTROPY: {
        /* with logits: max(z, 0) - z t + log1p(exp(-|z|)); gradient sigmoid(z) - t */
        REAL scale = (REAL)(1.0 / ((double)n * (double)d));
        for (i = 0; i < n; i++) {
            REAL w = weights ? weights[i] : (REAL)1, w_scale = w * scale;
            double row = 0.0;
            for (j = i * d; j < (i + 1) * d; j++) {
                REAL z = out[j], t = target[j];
                REAL abs_z = z < 0 ? -z : z;
                REAL e = R_EXP(-abs_z);
                row += (double)((z > 0 ? z : (REAL)0) - z * t + R_LOG1P(e));
                if (grad) {
                    REAL sig = z >= 0 ? (REAL)1 / ((REAL)1 + e) : e / ((REAL)1 + e);
                    grad[j] = (sig - t) * w_scale;
                }
            }
            total += weights ? row * (double)w : row;
        }
        *loss = total / ((double)n * (double)d);
        return FASTNN_OK;
    }
    case FASTNN_LOSS_POISSON: {
        /* out = z = log(mu): y (log y - z) - y + exp(z), 0 log 0 = 0; gradient exp(z) - y; sum over outputs,
         * mean over samples. A negative target is outside the loss's domain. */
        REAL scale = (REAL)(1.0 / (double)n);
        for (j = 0; j < n * d; j++)
            if (!(target[j] >= 0)) return FASTNN_EINVAL;
        for (i = 0; i < n; i++) {
            REAL w = weights ? weights[i] : (REAL)1, w_scale = w * scale;
            double row = 0.0;
            for (j = i * d; j < (i + 1) * d; j++) {
                REAL z = out[j], y = target[j], mu = R_EXP(z);
                REAL ylogy = y > 0 ? y * (R_LOG(y) - z) : (REAL)0;
                row += (double)(ylogy - y + mu);
                if (grad) grad[j] = (mu - y) * w_scale;
            }
            total += weights ? row * (double)w : row;
        }
        *loss = total / (double)n;
        return FASTNN_OK;
    }
    default:
        return FASTNN_EINVAL;
    }
}

/* Knowledge distillation (Hinton, Vinyals & Dean 2015) for a softmax output, from the student's logits z (n, d),
 * the targets t (n, d; one-hot or class probabilities, as cross_entropy) and the teacher's logits u (n, d):
 *     loss_i = (1 - alpha) sum_j t_j (lse(z) - z_j) + alpha T^2 sum_j q_j (log q_j - log p_j),
 * q = softmax(u / T), p = softmax(z / T); q_j log q_j is 0 where q_j is 0 (PyTorch's kl_div). The mean is over n,
 * each row weighted by its sample weight. The gradient w.r.t. z:
 *     (1 - alpha) (softmax(z)_j sum(t) - t_j) + alpha T (p_j - q_j), times w_i / n.
 * The hard term is computed exactly as cross_entropy's, so alpha = 0 gives its values bit for bit. */
int SFX(fastnn_distill_loss)(double *loss, REAL *grad, const REAL *out, const REAL *target, const REAL *teacher,
                             const REAL *weights, int64_t n, int64_t d, double temperature, double alpha,
                             int n_threads)
{
    int64_t i, j;
    double total = 0.0;
    (void)n_threads;
    if (n < 1 || d < 1) return FASTNN_ESHAPE;
    if (loss == NULL || out == NULL || target == NULL || teacher == NULL) return FASTNN_EINVAL;
    if (!(temperature > 0) || !isfinite(temperature) || !(alpha >= 0 && alpha <= 1)) return FASTNN_EINVAL;
    const REAL inv_n = (REAL)(1.0 / (double)n), inv_T = (REAL)(1.0 / temperature);
    const REAL hard_w = (REAL)(1.0 - alpha), soft_w = (REAL)(alpha * temperature);
    const double soft_loss_w = alpha * temperature * temperature;
    for (i = 0; i < n; i++) {
        const REAL *z = out + i * d, *t = target + i * d, *u = teacher + i * d;
        REAL *g = grad ? grad + i * d : NULL;
        REAL m = z[0], t_sum = 0, w = weights ? weights[i] : (REAL)1, w_scale = w * inv_n;
        REAL ms, mu;
        double s = 0.0, ss = 0.0, su = 0.0, hard = 0.0, kl = 0.0;
        /* hard term: cross_entropy's lse(z) */
        for (j = 1; j < d; j++) m = z[j] > m ? z[j] : m;
        for (j = 0; j < d; j++) s += (double)R_EXP(z[j] - m);
        REAL lse = m + (REAL)log(s);
        for (j = 0; j < d; j++) {
            hard += (double)(t[j] * (lse - z[j]));
            t_sum += t[j];
        }
        /* soft term: log-sum-exp of z / T and u / T, each shifted by its maximum */
        ms = z[0] * inv_T;
        mu = u[0] * inv_T;
        for (j = 1; j < d; j++) {
            REAL a = z[j] * inv_T, b = u[j] * inv_T;
            ms = a > ms ? a : ms;
            mu = b > mu ? b : mu;
        }
        for (j = 0; j < d; j++) {
            ss += (double)R_EXP(z[j] * inv_T - ms);
            su += (double)R_EXP(u[j] * inv_T - mu);
        }
        REAL lse_s = ms + (REAL)log(ss), lse_u = mu + (REAL)log(su);
        for (j = 0; j < d; j++) {
            REAL log_q = u[j] * inv_T - lse_u, q = R_EXP(log_q);
            if (q > 0) kl += (double)(q * (log_q - (z[j] * inv_T - lse_s)));
        }
        double row = (1.0 - alpha) * hard + soft_loss_w * kl;
        total += weights ? row * (double)w : row;
        if (g)
            for (j = 0; j < d; j++) {
                REAL hard_g = R_EXP(z[j] - lse) * t_sum - t[j];
                REAL soft_g = R_EXP(z[j] * inv_T - lse_s) - R_EXP(u[j] * inv_T - lse_u);
                g[j] = (hard_w * hard_g + soft_w * soft_g) * w_scale;
            }
    }
    *loss = total / (double)n;
    return FASTNN_OK;
}
