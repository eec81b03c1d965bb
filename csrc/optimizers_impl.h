/* optimizers_impl.h -- template body of optimizers.c, instantiated per REAL by fastnn_real.h.
 *
 * All parameters of a network live in one buffer, weights first, so the first n_decay entries are exactly the
 * weights that get L2 weight decay (biases do not) and each update is a single loop. */

/* SGD on params[lo:hi], with weight decay wd (0 for the biases). */
FASTNN_SIMD_CLONES
static void SFX(sgd_range)(REAL *FASTNN_RESTRICT params, const REAL *FASTNN_RESTRICT grads,
                           REAL *FASTNN_RESTRICT velocity, int64_t lo, int64_t hi, REAL lr, REAL mu, int nesterov,
                           REAL wd)
{
    int64_t k;
    if (velocity == NULL) {
        for (k = lo; k < hi; k++) params[k] -= lr * (grads[k] + wd * params[k]);
        return;
    }
    for (k = lo; k < hi; k++) {
        REAL g = grads[k] + wd * params[k];
        REAL v = mu * velocity[k] + g;
        velocity[k] = v;
        params[k] -= lr * (nesterov ? g + mu * v : v);
    }
}

int SFX(fastnn_sgd_step)(REAL *params, const REAL *grads, REAL *velocity, int64_t n, int64_t n_decay, double lr,
                         double momentum, int nesterov, double weight_decay, int n_threads)
{
    if (n < 0 || n_decay < 0 || n_decay > n) return FASTNN_ESHAPE;
    if (params == NULL || grads == NULL || (momentum != 0 && velocity == NULL)) return FASTNN_EINVAL;
    REAL lr_r = (REAL)lr, mu = (REAL)momentum, wd = (REAL)weight_decay;
    REAL *vel = momentum != 0 ? velocity : NULL;
    FASTNN_FOR_RANGE(n, 16 * n, n_threads, lo, hi, {
        /* the weights [0, n_decay) get weight decay, the biases after them do not */
        int64_t split = hi < n_decay ? hi : (lo > n_decay ? lo : n_decay);
        SFX(sgd_range)(params, grads, vel, lo, split, lr_r, mu, nesterov, wd);
        SFX(sgd_range)(params, grads, vel, split, hi, lr_r, mu, nesterov, (REAL)0);
    });
    return FASTNN_OK;
}

/* Adam on params[lo:hi]: L2 weight decay wd is added to the gradient (0 for the biases); shrink multiplies
 * the parameter first (AdamW's decoupled decay, 1 - lr * wd; 1 for Adam and for the biases). */
FASTNN_SIMD_CLONES
static void SFX(adam_range)(REAL *FASTNN_RESTRICT params, const REAL *FASTNN_RESTRICT grads,
                            REAL *FASTNN_RESTRICT m, REAL *FASTNN_RESTRICT v, int64_t lo, int64_t hi, REAL lr_t,
                            REAL b1, REAL b2, REAL one_b1, REAL one_b2, REAL eps_t, REAL wd, REAL shrink)
{
    int64_t k;
    if (shrink != 1) /* AdamW: decay first, as its own pass so the loop below stays branch-free */
        for (k = lo; k < hi; k++) params[k] *= shrink;
    for (k = lo; k < hi; k++) {
        REAL g = grads[k] + wd * params[k];
        REAL mk = b1 * m[k] + one_b1 * g;
        REAL vk = b2 * v[k] + one_b2 * (g * g);
        m[k] = mk;
        v[k] = vk;
        params[k] -= lr_t * mk / (R_SQRT(vk) + eps_t);
    }
}

/* Adam and AdamW share one body: decoupled != 0 applies the weight decay as p *= 1 - lr * wd. */
static int SFX(adam_like)(REAL *params, const REAL *grads, REAL *m, REAL *v, int64_t n, int64_t n_decay, double lr,
                          double beta1, double beta2, double eps, double weight_decay, int64_t t, int decoupled,
                          int eps_placement, int n_threads)
{
    if (n < 0 || n_decay < 0 || n_decay > n) return FASTNN_ESHAPE;
    if (params == NULL || grads == NULL || m == NULL || v == NULL || t < 1) return FASTNN_EINVAL;
    if (eps_placement != FASTNN_EPS_CORRECTED && eps_placement != FASTNN_EPS_UNCORRECTED) return FASTNN_EINVAL;
    double c2 = sqrt(1.0 - pow(beta2, (double)t));
    REAL lr_t = (REAL)(lr * c2 / (1.0 - pow(beta1, (double)t)));
    /* eps added to sqrt(vhat) = sqrt(v) / c2 is eps c2 added to sqrt(v); scikit-learn adds eps to sqrt(v) */
    REAL eps_t = (REAL)(eps_placement == FASTNN_EPS_CORRECTED ? eps * c2 : eps);
    REAL b1 = (REAL)beta1, b2 = (REAL)beta2;
    REAL wd = decoupled ? (REAL)0 : (REAL)weight_decay;
    REAL shrink = decoupled ? (REAL)(1.0 - lr * weight_decay) : (REAL)1;
    REAL one_b1 = (REAL)(1.0 - beta1), one_b2 = (REAL)(1.0 - beta2);
    FASTNN_FOR_RANGE(n, 32 * n, n_threads, lo, hi, {
        int64_t split = hi < n_decay ? hi : (lo > n_decay ? lo : n_decay);
        SFX(adam_range)(params, grads, m, v, lo, split, lr_t, b1, b2, one_b1, one_b2, eps_t, wd, shrink);
        SFX(adam_range)(params, grads, m, v, split, hi, lr_t, b1, b2, one_b1, one_b2, eps_t, (REAL)0, (REAL)1);
    });
    return FASTNN_OK;
}

int SFX(fastnn_adam_step)(REAL *params, const REAL *grads, REAL *m, REAL *v, int64_t n, int64_t n_decay,
                          double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                          int eps_placement, int n_threads)
{
    return SFX(adam_like)(params, grads, m, v, n, n_decay, lr, beta1, beta2, eps, weight_decay, t, 0, eps_placement,
                          n_threads);
}

int SFX(fastnn_adamw_step)(REAL *params, const REAL *grads, REAL *m, REAL *v, int64_t n, int64_t n_decay,
                           double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                           int eps_placement, int n_threads)
{
    return SFX(adam_like)(params, grads, m, v, n, n_decay, lr, beta1, beta2, eps, weight_decay, t, 1, eps_placement,
                          n_threads);
}

/* RMSprop on params[lo:hi], L2 weight decay wd (0 for the biases). */
FASTNN_SIMD_CLONES
static void SFX(rmsprop_range)(REAL *FASTNN_RESTRICT params, const REAL *FASTNN_RESTRICT grads,
                               REAL *FASTNN_RESTRICT sq, int64_t lo, int64_t hi, REAL lr, REAL rho, REAL one_rho,
                               REAL eps, REAL wd)
{
    int64_t k;
    for (k = lo; k < hi; k++) {
        REAL g = grads[k] + wd * params[k];
        REAL s = rho * sq[k] + one_rho * (g * g);
        sq[k] = s;
        params[k] -= lr * g / (R_SQRT(s) + eps);
    }
}

int SFX(fastnn_rmsprop_step)(REAL *params, const REAL *grads, REAL *sq, int64_t n, int64_t n_decay, double lr,
                             double rho, double eps, double weight_decay, int n_threads)
{
    if (n < 0 || n_decay < 0 || n_decay > n) return FASTNN_ESHAPE;
    if (params == NULL || grads == NULL || sq == NULL) return FASTNN_EINVAL;
    REAL lr_r = (REAL)lr, rho_r = (REAL)rho, one_rho = (REAL)(1.0 - rho), eps_r = (REAL)eps;
    REAL wd = (REAL)weight_decay;
    FASTNN_FOR_RANGE(n, 32 * n, n_threads, lo, hi, {
        int64_t split = hi < n_decay ? hi : (lo > n_decay ? lo : n_decay);
        SFX(rmsprop_range)(params, grads, sq, lo, split, lr_r, rho_r, one_rho, eps_r, wd);
        SFX(rmsprop_range)(params, grads, sq, split, hi, lr_r, rho_r, one_rho, eps_r, (REAL)0);
    });
    return FASTNN_OK;
}

/* iRPROP- on params[lo:hi] (Igel & Huesken 2000), L2 weight decay wd (0 for the biases). */
static void SFX(irprop_range)(REAL *FASTNN_RESTRICT params, const REAL *FASTNN_RESTRICT grads,
                              REAL *FASTNN_RESTRICT prev, REAL *FASTNN_RESTRICT steps, int64_t lo, int64_t hi,
                              REAL eta_plus, REAL eta_minus, REAL step_min, REAL step_max, REAL wd)
{
    int64_t k;
    for (k = lo; k < hi; k++) {
        REAL g = grads[k] + wd * params[k];
        REAL agree = g * prev[k];
        REAL step = steps[k];
        if (agree > 0) {
            step = step * eta_plus;
            step = step > step_max ? step_max : step;
        } else if (agree < 0) {
            step = step * eta_minus;
            step = step < step_min ? step_min : step;
            g = 0; /* the "-" of iRPROP-: after a sign change, skip this weight once */
        }
        steps[k] = step;
        prev[k] = g;
        if (g > 0) params[k] -= step;
        else if (g < 0) params[k] += step;
    }
}

int SFX(fastnn_irprop_minus_step)(REAL *params, const REAL *grads, REAL *prev, REAL *steps, int64_t n,
                                  int64_t n_decay, double eta_plus, double eta_minus, double step_min,
                                  double step_max, double weight_decay, int n_threads)
{
    if (n < 0 || n_decay < 0 || n_decay > n) return FASTNN_ESHAPE;
    if (params == NULL || grads == NULL || prev == NULL || steps == NULL) return FASTNN_EINVAL;
    REAL ep = (REAL)eta_plus, em = (REAL)eta_minus, smin = (REAL)step_min, smax = (REAL)step_max;
    REAL wd = (REAL)weight_decay;
    FASTNN_FOR_RANGE(n, 32 * n, n_threads, lo, hi, {
        int64_t split = hi < n_decay ? hi : (lo > n_decay ? lo : n_decay);
        SFX(irprop_range)(params, grads, prev, steps, lo, split, ep, em, smin, smax, wd);
        SFX(irprop_range)(params, grads, prev, steps, split, hi, ep, em, smin, smax, (REAL)0);
    });
    return FASTNN_OK;
}

int SFX(fastnn_clip_grad_norm)(int *clipped, REAL *grads, int64_t n, double max_norm, int n_threads)
{
    int64_t i;
    double sum = 0.0;
    if (clipped == NULL || (grads == NULL && n > 0) || n < 0 || !(max_norm > 0)) return FASTNN_EINVAL;
    *clipped = 0;
    /* serial: one sum in index order whatever n_threads, and cheap next to the backward pass */
    for (i = 0; i < n; i++) sum += (double)grads[i] * (double)grads[i];
    double norm = sqrt(sum), coef = max_norm / (norm + 1e-6);
    if (!isfinite(norm) || coef >= 1.0) return FASTNN_OK;
    REAL scale = (REAL)coef;
    FASTNN_FOR_RANGE(n, n, n_threads, lo, hi, for (int64_t j = lo; j < hi; j++) grads[j] *= scale);
    *clipped = 1;
    return FASTNN_OK;
}
