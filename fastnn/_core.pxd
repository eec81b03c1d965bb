# Declarations of csrc/fastnn.h for the Cython layer. The C functions never set Python errors, hence noexcept.
from libc.stdint cimport int64_t

cdef extern from "fastnn.h" nogil:
    enum:
        FASTNN_OK
        FASTNN_EINVAL
        FASTNN_ESHAPE
        FASTNN_ENOMEM

    int fastnn_openmp_enabled() noexcept
    int fastnn_max_threads() noexcept

    int fastnn_dense_forward_f32(float *y, const float *x, const float *W, const float *b, int64_t n,
                                 int64_t d_in, int64_t d_out, int act, double alpha, int n_threads) noexcept
    int fastnn_dense_forward_f64(double *y, const double *x, const double *W, const double *b, int64_t n,
                                 int64_t d_in, int64_t d_out, int act, double alpha, int n_threads) noexcept
    int fastnn_dense_forward_single_f32(float *y, const float *x, const float *W, const float *b,
                                        int64_t d_in, int64_t d_out, int act, double alpha) noexcept
    int fastnn_dense_forward_single_f64(double *y, const double *x, const double *W, const double *b,
                                        int64_t d_in, int64_t d_out, int act, double alpha) noexcept
    int fastnn_act_forward_f32(float *a, int64_t n, int64_t d, int act, double alpha, int n_threads) noexcept
    int fastnn_act_forward_f64(double *a, int64_t n, int64_t d, int act, double alpha, int n_threads) noexcept
    int fastnn_act_backward_f32(float *dz, const float *da, const float *a, int64_t n, int64_t d, int act,
                                double alpha, int n_threads) noexcept
    int fastnn_act_backward_f64(double *dz, const double *da, const double *a, int64_t n, int64_t d, int act,
                                double alpha, int n_threads) noexcept
    int fastnn_loss_f32(double *loss, float *grad, const float *out, const float *target, int64_t n, int64_t d,
                        int loss_kind, int n_threads) noexcept
    int fastnn_loss_f64(double *loss, double *grad, const double *out, const double *target, int64_t n,
                        int64_t d, int loss_kind, int n_threads) noexcept
    int fastnn_dense_backward_f32(float *dx, float *dW, float *db, const float *dz, const float *x,
                                  const float *W, int64_t n, int64_t d_in, int64_t d_out, int n_threads) noexcept
    int fastnn_dense_backward_f64(double *dx, double *dW, double *db, const double *dz, const double *x,
                                  const double *W, int64_t n, int64_t d_in, int64_t d_out,
                                  int n_threads) noexcept
    int fastnn_sgd_step_f32(float *params, const float *grads, float *velocity, int64_t n, int64_t n_decay,
                            double lr, double momentum, int nesterov, double weight_decay, int n_threads) noexcept
    int fastnn_sgd_step_f64(double *params, const double *grads, double *velocity, int64_t n, int64_t n_decay,
                            double lr, double momentum, int nesterov, double weight_decay, int n_threads) noexcept
    int fastnn_adam_step_f32(float *params, const float *grads, float *m, float *v, int64_t n, int64_t n_decay,
                             double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                             int n_threads) noexcept
    int fastnn_adam_step_f64(double *params, const double *grads, double *m, double *v, int64_t n,
                             int64_t n_decay, double lr, double beta1, double beta2, double eps,
                             double weight_decay, int64_t t, int n_threads) noexcept
