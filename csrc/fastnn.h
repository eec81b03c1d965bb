/*
 * fastnn.h -- the C kernels of fastnn, and the only header the Cython layer sees.
 *
 * Conventions shared by every kernel:
 *   - Each kernel exists twice, `fastnn_<op>_f32` (float) and `fastnn_<op>_f64` (double), generated from
 *     one body (see fastnn_real.h). The NumPy twin in fastnn/_py/ has the same names without prefix/suffix.
 *   - Arrays are C-contiguous (row-major). A batch is (n, d): n samples of d features.
 *     Weights are (d_in, d_out), so a dense layer computes  y = f(x @ W + b)  as in the classic formulation.
 *   - Outputs come first, const inputs next, sizes and options last.
 *   - Kernels never allocate, print, exit or abort. They return a fastnn_status; callers turn it into an exception.
 *   - `n_threads` is the most threads a kernel may use. Below a work threshold a kernel runs serially without
 *     opening an OpenMP region. Results never depend on n_threads: work is split over disjoint outputs and no
 *     reduction crosses threads.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FASTNN_OK = 0,
    FASTNN_EINVAL = 1,   /* an argument is out of its domain (unknown code, negative size, NULL pointer) */
    FASTNN_ESHAPE = 2,   /* sizes are inconsistent with each other */
    FASTNN_ENOMEM = 3    /* an allocation failed (only the network plan allocates) */
} fastnn_status;

/* Activation codes. The derivative of each is computed from the activation's *output* a = f(z),
 * which is all a training step keeps: relu' = [a > 0], leaky' = 1 or alpha by sign of a (alpha > 0),
 * sigmoid' = a (1 - a), tanh' = 1 - a^2, linear' = 1, softmax: dz = a * (da - sum(da * a)) per row. */
typedef enum {
    FASTNN_ACT_LINEAR = 0,
    FASTNN_ACT_SIGMOID = 1,
    FASTNN_ACT_TANH = 2,
    FASTNN_ACT_RELU = 3,
    FASTNN_ACT_LEAKY_RELU = 4,
    FASTNN_ACT_SOFTMAX = 5
} fastnn_activation;

/* Loss codes. Every loss is a mean: mse over all n*d elements of (a - t)^2 (no 1/2 factor);
 * cross_entropy over samples of -sum_j t_j log softmax(z)_j; binary_cross_entropy over all n*d elements. */
typedef enum {
    FASTNN_LOSS_MSE = 0,
    FASTNN_LOSS_CROSS_ENTROPY = 1,
    FASTNN_LOSS_BINARY_CROSS_ENTROPY = 2
} fastnn_loss;

/* 1 when compiled with OpenMP, else 0. */
int fastnn_openmp_enabled(void);
/* omp_get_max_threads(), or 1 without OpenMP. Honours OMP_NUM_THREADS. */
int fastnn_max_threads(void);

#define FASTNN_DECLARE_KERNELS(REAL, SFX)                                                                         \
/* Dense layer forward for a batch, with bias and activation fused into one pass over the output.              \
 * y (n, d_out) = act(x (n, d_in) @ W (d_in, d_out) + b (d_out)). y must not alias x. alpha: leaky slope. */    \
int fastnn_dense_forward_##SFX(REAL *y, const REAL *x, const REAL *W, const REAL *b,                           \
                               int64_t n, int64_t d_in, int64_t d_out, int act, double alpha, int n_threads);  \
/* Dense layer forward for one sample (matrix-vector): y (d_out) = act(x (d_in) @ W + b). Never threaded. */    \
int fastnn_dense_forward_single_##SFX(REAL *y, const REAL *x, const REAL *W, const REAL *b,                    \
                                      int64_t d_in, int64_t d_out, int act, double alpha);                    \
/* Activation in place: a (n, d) <- act(a). For softmax, rows are normalised. */                                \
int fastnn_act_forward_##SFX(REAL *a, int64_t n, int64_t d, int act, double alpha, int n_threads);             \
/* Activation derivative: dz (n, d) = da * f'(z), with f' taken from the output a. dz may alias da. */          \
int fastnn_act_backward_##SFX(REAL *dz, const REAL *da, const REAL *a, int64_t n, int64_t d,                   \
                              int act, double alpha, int n_threads);                                          \
/* Loss and its gradient. `out` (n, d) is the network output: the activation a for mse, the logits z for       \
 * cross_entropy (softmax fused) and binary_cross_entropy (sigmoid fused). `target` (n, d): targets, one-hot or \
 * class probabilities for cross_entropy. *loss receives the mean loss; grad (n, d), if not NULL, receives      \
 * d(mean loss)/d(out) -- for the fused losses that is the gradient w.r.t. the logits. grad may alias out. */    \
int fastnn_loss_##SFX(double *loss, REAL *grad, const REAL *out, const REAL *target, int64_t n, int64_t d,     \
                      int loss_kind, int n_threads);                                                          \
/* Dense layer backward. dz (n, d_out) is d(loss)/d(pre-activation). Overwrites dW (d_in, d_out) = x^T dz,      \
 * db (d_out) = column sums of dz and, if dx is not NULL, dx (n, d_in) = dz W^T. */                            \
int fastnn_dense_backward_##SFX(REAL *dx, REAL *dW, REAL *db, const REAL *dz, const REAL *x, const REAL *W,    \
                                int64_t n, int64_t d_in, int64_t d_out, int n_threads);                       \
/* SGD over a flat parameter buffer. The first n_decay parameters get L2 weight decay (g += wd * p).           \
 * momentum == 0: p -= lr g.  Otherwise (PyTorch's form) v = mu v + g; p -= lr (g + mu v) if nesterov,          \
 * else p -= lr v. velocity may be NULL when momentum == 0. */                                                 \
int fastnn_sgd_step_##SFX(REAL *params, const REAL *grads, REAL *velocity, int64_t n, int64_t n_decay,         \
                          double lr, double momentum, int nesterov, double weight_decay, int n_threads);      \
/* Adam over a flat parameter buffer, step t >= 1 (bias correction), L2 weight decay on the first n_decay:      \
 * g += wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr_t m / (sqrt(v) + eps_t), where               \
 * lr_t = lr sqrt(1-b2^t) / (1-b1^t) and eps_t = eps sqrt(1-b2^t): the same as lr mhat / (sqrt(vhat) + eps). */ \
int fastnn_adam_step_##SFX(REAL *params, const REAL *grads, REAL *m, REAL *v, int64_t n, int64_t n_decay,      \
                           double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,  \
                           int n_threads);

FASTNN_DECLARE_KERNELS(float, f32)
FASTNN_DECLARE_KERNELS(double, f64)

#undef FASTNN_DECLARE_KERNELS

#ifdef __cplusplus
}
#endif
#endif /* FASTNN_H */
