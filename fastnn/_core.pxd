# Declarations of csrc/fastnn.h for the Cython layer. The C functions never set Python errors, hence noexcept.
from libc.stdint cimport int8_t, int32_t, int64_t, intptr_t, uint8_t, uint64_t

cdef extern from "fastnn.h" nogil:
    enum:
        FASTNN_OK
        FASTNN_EINVAL
        FASTNN_ESHAPE
        FASTNN_ENOMEM
        FASTNN_ENONFINITE
        FASTNN_EDIST

    ctypedef struct fastnn_window:
        int64_t in_c, in_h, in_w, out_c, out_h, out_w
        int64_t kh, kw, sh, sw, pad_h, pad_w

    ctypedef struct fastnn_sequence:
        int cell, act, return_sequences
        int64_t steps, features, units

    ctypedef struct fastnn_csr:
        const void *data
        const int64_t *indices
        const int64_t *indptr
        int64_t n_rows, n_cols, nnz

    ctypedef struct fastnn_layer:
        int kind
        int64_t in_size, out_size
        fastnn_window win
        int act, predict_act
        double alpha, rate
        void *W
        void *b
        void *dW
        void *db
        void *a
        void *delta
        void *cols
        int32_t *argmax
        void *mask
        int64_t steps
        fastnn_sequence seq
        void *Wh
        void *bh
        void *dWh
        void *dbh
        void *states
        void *gates
        void *cells
        void *dgates
        void *carry
        void *state
        int64_t state_rows
        fastnn_csr sparse
        int64_t sparse_rows

    ctypedef struct fastnn_net:
        int n_layers
        fastnn_layer *layers
        int loss_kind
        int64_t max_batch
        void *params
        void *grads
        int64_t n_params, n_decay
        void *x_batch
        void *t_batch
        void *w_batch
        const uint8_t *keep

    ctypedef struct fastnn_optimizer:
        int kind
        double lr, momentum, beta1, beta2, eps, weight_decay
        int nesterov
        double rho, eta_plus, eta_minus, step_min, step_max
        int64_t t
        double clip_norm
        int64_t clipped
        int eps_placement
        void *state1
        void *state2

    ctypedef struct fastnn_distill:
        double temperature, alpha
        const void *teacher
        void *teacher_batch

    ctypedef int (*fastnn_allreduce_fn)(void *ctx, void *buf, int64_t count, int is_double) noexcept nogil
    ctypedef struct fastnn_dist:
        void *mpi_allreduce
        int mpi_int_handles
        intptr_t comm, op_sum, type_float, type_double, in_place
        fastnn_allreduce_fn allreduce
        void *ctx
        int64_t n_steps
        int64_t *progress
        double seconds
        int64_t calls, bytes
        int error

    int fastnn_dist_allreduce(fastnn_dist *d, void *buf, int64_t count, int is_double) noexcept

    enum:
        FASTNN_MAX_METRICS

    ctypedef struct fastnn_metrics:
        int n_metrics
        int kind[8]
        int64_t k[8]
        double sum[8]
        double weight

    int fastnn_check_metrics(const fastnn_metrics *m, int output_act) noexcept
    int fastnn_metrics_accumulate_f32(fastnn_metrics *metrics, const float *out, const float *target,
                                      const float *weights, int64_t n, int64_t d, int output_act, int raw,
                                      int skip_padding) noexcept
    int fastnn_metrics_accumulate_f64(fastnn_metrics *metrics, const double *out, const double *target,
                                      const double *weights, int64_t n, int64_t d, int output_act, int raw,
                                      int skip_padding) noexcept

    int fastnn_check_csr(const fastnn_csr *A) noexcept
    int fastnn_csr_gather_f32(float *x, const fastnn_csr *A, const int64_t *rows, int64_t n, int n_threads) noexcept
    int fastnn_csr_gather_f64(double *x, const fastnn_csr *A, const int64_t *rows, int64_t n, int n_threads) noexcept

    ctypedef void (*fastnn_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *, float *,
                                     int *, float *, float *, int *) noexcept nogil
    ctypedef void (*fastnn_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *, int *, double *,
                                     int *, double *, double *, int *) noexcept nogil
    void fastnn_set_blas(fastnn_sgemm_fn sgemm, fastnn_dgemm_fn dgemm, int split) noexcept
    int fastnn_have_blas() noexcept

    ctypedef struct fastnn_gemm_epilogue:
        int act
        double alpha
        const void *deriv_of
    int fastnn_gemm_best_isa() noexcept
    int fastnn_gemm_isa() noexcept
    int fastnn_gemm_set_isa(int isa) noexcept
    int fastnn_gemm_reserve(int n_slots) noexcept
    int fastnn_gemm_record(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                           int engine) noexcept
    int fastnn_gemm_recorded(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k) noexcept
    void fastnn_gemm_forget() noexcept
    int fastnn_gemm_choose(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k) noexcept
    int fastnn_gemm_force(int engine) noexcept
    int fastnn_gemm_f32(int engine, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *A,
                        const float *B, int accumulate, float *C, const float *bias, const fastnn_gemm_epilogue *e,
                        int n_threads) noexcept nogil
    int fastnn_gemm_f64(int engine, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const double *A,
                        const double *B, int accumulate, double *C, const double *bias,
                        const fastnn_gemm_epilogue *e, int n_threads) noexcept nogil

    int fastnn_openmp_enabled() noexcept
    int fastnn_max_threads() noexcept

    int fastnn_clip_grad_norm_f32(int *clipped, float *grads, int64_t n, double max_norm, int n_threads) noexcept
    int fastnn_clip_grad_norm_f64(int *clipped, double *grads, int64_t n, double max_norm, int n_threads) noexcept
    int fastnn_all_finite_f32(int *finite, const float *x, int64_t n, int n_threads) noexcept
    int fastnn_all_finite_f64(int *finite, const double *x, int64_t n, int n_threads) noexcept

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
    int fastnn_loss_f32(double *loss, float *grad, const float *out, const float *target, const float *weights,
                        int64_t n, int64_t d, int loss_kind, int n_threads) noexcept
    int fastnn_loss_f64(double *loss, double *grad, const double *out, const double *target,
                        const double *weights, int64_t n, int64_t d, int loss_kind, int n_threads) noexcept
    int fastnn_distill_loss_f32(double *loss, float *grad, const float *out, const float *target,
                                const float *teacher, const float *weights, int64_t n, int64_t d,
                                double temperature, double alpha, int n_threads) noexcept
    int fastnn_distill_loss_f64(double *loss, double *grad, const double *out, const double *target,
                                const double *teacher, const double *weights, int64_t n, int64_t d,
                                double temperature, double alpha, int n_threads) noexcept
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
                             int eps_placement, int n_threads) noexcept
    int fastnn_adam_step_f64(double *params, const double *grads, double *m, double *v, int64_t n,
                             int64_t n_decay, double lr, double beta1, double beta2, double eps,
                             double weight_decay, int64_t t, int eps_placement, int n_threads) noexcept

    int fastnn_adamw_step_f32(float *params, const float *grads, float *m, float *v, int64_t n, int64_t n_decay,
                              double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                              int eps_placement, int n_threads) noexcept
    int fastnn_adamw_step_f64(double *params, const double *grads, double *m, double *v, int64_t n,
                              int64_t n_decay, double lr, double beta1, double beta2, double eps,
                              double weight_decay, int64_t t, int eps_placement, int n_threads) noexcept
    int fastnn_rmsprop_step_f32(float *params, const float *grads, float *sq, int64_t n, int64_t n_decay, double lr,
                                double rho, double eps, double weight_decay, int n_threads) noexcept
    int fastnn_rmsprop_step_f64(double *params, const double *grads, double *sq, int64_t n, int64_t n_decay,
                                double lr, double rho, double eps, double weight_decay, int n_threads) noexcept
    int fastnn_irprop_minus_step_f32(float *params, const float *grads, float *prev, float *steps, int64_t n,
                                     int64_t n_decay, double eta_plus, double eta_minus, double step_min,
                                     double step_max, double weight_decay, int n_threads) noexcept
    int fastnn_irprop_minus_step_f64(double *params, const double *grads, double *prev, double *steps, int64_t n,
                                     int64_t n_decay, double eta_plus, double eta_minus, double step_min,
                                     double step_max, double weight_decay, int n_threads) noexcept

    int fastnn_im2col_f32(float *cols, const float *x, int64_t n, const fastnn_window *g, int n_threads) noexcept
    int fastnn_im2col_f64(double *cols, const double *x, int64_t n, const fastnn_window *g, int n_threads) noexcept
    int fastnn_col2im_f32(float *dx, const float *cols, int64_t n, const fastnn_window *g, int n_threads) noexcept
    int fastnn_col2im_f64(double *dx, const double *cols, int64_t n, const fastnn_window *g, int n_threads) noexcept
    int fastnn_conv2d_forward_f32(float *y, float *cols, const float *x, const float *W,
                                  const float *b, int64_t n, const fastnn_window *g, int act, double alpha,
                                  int n_threads) noexcept
    int fastnn_conv2d_forward_f64(double *y, double *cols, const double *x, const double *W,
                                  const double *b, int64_t n, const fastnn_window *g, int act, double alpha,
                                  int n_threads) noexcept
    int fastnn_conv2d_backward_f32(float *dx, float *dW, float *db, float *cols, const float *dz,
                                   const float *x, const float *W, int64_t n, const fastnn_window *g,
                                   int n_threads) noexcept
    int fastnn_conv2d_backward_f64(double *dx, double *dW, double *db, double *cols,
                                   const double *dz, const double *x, const double *W, int64_t n,
                                   const fastnn_window *g, int n_threads) noexcept
    int fastnn_maxpool2d_forward_f32(float *y, int32_t *argmax, const float *x, int64_t n, const fastnn_window *g,
                                     int n_threads) noexcept
    int fastnn_maxpool2d_forward_f64(double *y, int32_t *argmax, const double *x, int64_t n,
                                     const fastnn_window *g, int n_threads) noexcept
    int fastnn_maxpool2d_backward_f32(float *dx, const float *dy, const int32_t *argmax, int64_t n,
                                      const fastnn_window *g, int n_threads) noexcept
    int fastnn_maxpool2d_backward_f64(double *dx, const double *dy, const int32_t *argmax, int64_t n,
                                      const fastnn_window *g, int n_threads) noexcept
    int fastnn_avgpool2d_forward_f32(float *y, const float *x, int64_t n, const fastnn_window *g,
                                     int n_threads) noexcept
    int fastnn_avgpool2d_forward_f64(double *y, const double *x, int64_t n, const fastnn_window *g,
                                     int n_threads) noexcept
    int fastnn_avgpool2d_backward_f32(float *dx, const float *dy, int64_t n, const fastnn_window *g,
                                      int n_threads) noexcept
    int fastnn_avgpool2d_backward_f64(double *dx, const double *dy, int64_t n, const fastnn_window *g,
                                      int n_threads) noexcept
    int fastnn_dropout_forward_f32(float *y, float *mask, const float *x, int64_t n, int64_t d, double rate,
                                   uint64_t key, int n_threads) noexcept
    int fastnn_dropout_forward_f64(double *y, double *mask, const double *x, int64_t n, int64_t d, double rate,
                                   uint64_t key, int n_threads) noexcept
    int fastnn_dropout_backward_f32(float *dx, const float *dy, const float *mask, int64_t n, int64_t d,
                                    int n_threads) noexcept
    int fastnn_dropout_backward_f64(double *dx, const double *dy, const double *mask, int64_t n, int64_t d,
                                    int n_threads) noexcept
    uint64_t fastnn_dropout_batch_key(uint64_t seed, int64_t b) noexcept
    uint64_t fastnn_dropout_layer_key(uint64_t key, int64_t layer) noexcept
    double fastnn_dropout_uniform(uint64_t key, int64_t i) noexcept
    int64_t fastnn_net_infer_scratch_size(const fastnn_net *net, int64_t n) noexcept

    int fastnn_net_backprop_f32(const fastnn_net *net, double *loss, const float *x, const float *t,
                                const float *w, int64_t n, int training, uint64_t dropout_key, int n_threads) noexcept
    int fastnn_net_backprop_f64(const fastnn_net *net, double *loss, const double *x, const double *t,
                                const double *w, int64_t n, int training, uint64_t dropout_key,
                                int n_threads) noexcept
    int fastnn_net_backprop_distill_f32(const fastnn_net *net, double *loss, const float *x, const float *t,
                                        const float *teacher, const float *w, int64_t n, double temperature,
                                        double alpha, int training, uint64_t dropout_key, int n_threads) noexcept
    int fastnn_net_backprop_distill_f64(const fastnn_net *net, double *loss, const double *x, const double *t,
                                        const double *teacher, const double *w, int64_t n, double temperature,
                                        double alpha, int training, uint64_t dropout_key, int n_threads) noexcept
    int fastnn_net_train_epoch_distill_f32(const fastnn_net *net, fastnn_optimizer *opt, const float *X,
                                           const fastnn_csr *Xs, const float *T, const float *W,
                                           const fastnn_distill *distill, int64_t n_rows, const int64_t *order,
                                           int64_t n, int64_t batch, uint64_t dropout_seed,
                                           fastnn_metrics *metrics, double *loss_sum, int64_t *n_done,
                                           int n_threads) noexcept
    int fastnn_net_train_epoch_distill_f64(const fastnn_net *net, fastnn_optimizer *opt, const double *X,
                                           const fastnn_csr *Xs, const double *T, const double *W,
                                           const fastnn_distill *distill, int64_t n_rows, const int64_t *order,
                                           int64_t n, int64_t batch, uint64_t dropout_seed,
                                           fastnn_metrics *metrics, double *loss_sum, int64_t *n_done,
                                           int n_threads) noexcept
    int fastnn_net_train_epoch_dist_f32(const fastnn_net *net, fastnn_optimizer *opt, const float *X,
                                        const fastnn_csr *Xs, const float *T, const float *W,
                                        const fastnn_distill *distill, int64_t n_rows, const int64_t *order,
                                        int64_t n, int64_t batch, uint64_t dropout_seed,
                                        fastnn_metrics *metrics, double *loss_sum, int64_t *n_done,
                                        fastnn_dist *dist, int n_threads) noexcept
    int fastnn_net_train_epoch_dist_f64(const fastnn_net *net, fastnn_optimizer *opt, const double *X,
                                        const fastnn_csr *Xs, const double *T, const double *W,
                                        const fastnn_distill *distill, int64_t n_rows, const int64_t *order,
                                        int64_t n, int64_t batch, uint64_t dropout_seed,
                                        fastnn_metrics *metrics, double *loss_sum, int64_t *n_done,
                                        fastnn_dist *dist, int n_threads) noexcept
    int fastnn_net_update_f32(const fastnn_net *net, fastnn_optimizer *opt, int n_threads) noexcept
    int fastnn_net_update_f64(const fastnn_net *net, fastnn_optimizer *opt, int n_threads) noexcept
    int fastnn_net_train_epoch_f32(const fastnn_net *net, fastnn_optimizer *opt, const float *X,
                                   const fastnn_csr *Xs, const float *T, const float *W, int64_t n_rows,
                                   const int64_t *order, int64_t n, int64_t batch, uint64_t dropout_seed, fastnn_metrics *metrics,
                                   double *loss_sum, int64_t *n_done, int n_threads) noexcept
    int fastnn_net_train_epoch_f64(const fastnn_net *net, fastnn_optimizer *opt, const double *X,
                                   const fastnn_csr *Xs, const double *T, const double *W, int64_t n_rows,
                                   const int64_t *order, int64_t n, int64_t batch, uint64_t dropout_seed, fastnn_metrics *metrics,
                                   double *loss_sum, int64_t *n_done, int n_threads) noexcept
    int fastnn_net_predict_f32(const fastnn_net *net, float *y, const float *x, int64_t n, float *scratch,
                               int n_threads) noexcept
    int fastnn_net_predict_f64(const fastnn_net *net, double *y, const double *x, int64_t n, double *scratch,
                               int n_threads) noexcept
    int fastnn_net_evaluate_f32(const fastnn_net *net, double *loss, const float *x, const float *t,
                                const float *w, int64_t n, float *scratch,
                                fastnn_metrics *metrics, int n_threads) noexcept
    int fastnn_net_evaluate_f64(const fastnn_net *net, double *loss, const double *x, const double *t,
                                const double *w, int64_t n, double *scratch,
                                fastnn_metrics *metrics, int n_threads) noexcept
    int fastnn_net_forward_single_f32(const fastnn_net *net, float *y, const float *x, float *scratch) noexcept
    int fastnn_net_forward_single_f64(const fastnn_net *net, double *y, const double *x,
                                      double *scratch) noexcept

# ---------------------------------------------------------------------- sequence kernels (csrc/sequence.c, csrc/rnn.c)
cdef extern from "fastnn.h" nogil:
    enum:
        FASTNN_CELL_SIMPLE
        FASTNN_CELL_LSTM
        FASTNN_CELL_GRU

    # fastnn_sequence is declared above, with fastnn_layer
    int fastnn_check_sequence(const fastnn_sequence *s) noexcept
    int64_t fastnn_rnn_scratch_size(const fastnn_sequence *s, int64_t n) noexcept

    int fastnn_embedding_forward_f32(float *y, const float *ids, const float *W, int64_t m, int64_t vocab, int64_t D,
                                     int n_threads) noexcept
    int fastnn_embedding_forward_f64(double *y, const double *ids, const double *W, int64_t m, int64_t vocab,
                                     int64_t D, int n_threads) noexcept
    int fastnn_embedding_backward_f32(float *dW, const float *dy, const float *ids, int64_t m, int64_t vocab,
                                      int64_t D, int n_threads) noexcept
    int fastnn_embedding_backward_f64(double *dW, const double *dy, const double *ids, int64_t m, int64_t vocab,
                                      int64_t D, int n_threads) noexcept
    int fastnn_repeat_forward_f32(float *y, const float *x, int64_t n, int64_t F, int64_t repeats,
                                  int n_threads) noexcept
    int fastnn_repeat_forward_f64(double *y, const double *x, int64_t n, int64_t F, int64_t repeats,
                                  int n_threads) noexcept
    int fastnn_repeat_backward_f32(float *dx, const float *dy, int64_t n, int64_t F, int64_t repeats,
                                   int n_threads) noexcept
    int fastnn_repeat_backward_f64(double *dx, const double *dy, int64_t n, int64_t F, int64_t repeats,
                                   int n_threads) noexcept
    int fastnn_rnn_forward_f32(float *y, float *states, float *gates, float *cells, float *proj, const float *x,
                               const float *W_ih, const float *W_hh, const float *b_ih, const float *b_hh,
                               const float *state0, float *state_out, int64_t n, const fastnn_sequence *s,
                               int n_threads) noexcept
    int fastnn_rnn_forward_f64(double *y, double *states, double *gates, double *cells, double *proj,
                               const double *x, const double *W_ih, const double *W_hh, const double *b_ih,
                               const double *b_hh, const double *state0, double *state_out, int64_t n,
                               const fastnn_sequence *s, int n_threads) noexcept
    int fastnn_rnn_backward_f32(float *dx, float *dW_ih, float *dW_hh, float *db_ih, float *db_hh, float *dgates,
                                float *gates, float *cells, float *carry, const float *dy, const float *x,
                                const float *states, const float *W_ih, const float *W_hh, int64_t n,
                                const fastnn_sequence *s, int n_threads) noexcept
    int fastnn_rnn_backward_f64(double *dx, double *dW_ih, double *dW_hh, double *db_ih, double *db_hh,
                                double *dgates, double *gates, double *cells, double *carry, const double *dy,
                                const double *x, const double *states, const double *W_ih, const double *W_hh,
                                int64_t n, const fastnn_sequence *s, int n_threads) noexcept

    # pruning (prune.c)
    int fastnn_mask_apply_f32(float *x, const uint8_t *keep, int64_t n, int n_threads) noexcept
    int fastnn_mask_apply_f64(double *x, const uint8_t *keep, int64_t n, int n_threads) noexcept
    int fastnn_sparse_dense_forward_f32(float *y, const float *x, const fastnn_csr *Wt, const float *b, int64_t n,
                                        int act, double alpha, int n_threads) noexcept
    int fastnn_sparse_dense_forward_f64(double *y, const double *x, const fastnn_csr *Wt, const double *b,
                                        int64_t n, int act, double alpha, int n_threads) noexcept
    # int8 inference (csrc/quant.c)
    int FASTNN_Q8_MAX_K
    int fastnn_q8_path_supported(int path) noexcept
    int fastnn_q8_best_path() noexcept
    int fastnn_q8_gemm(int32_t *c, const uint8_t *a, const int8_t *bp, int64_t m, int64_t n, int64_t k,
                       int64_t lda, int path, int n_threads) noexcept
    int fastnn_q8_quantize_rows(uint8_t *q, float *scale, int32_t *zero_point, const float *x, int64_t m,
                                int64_t k, int64_t ldq, int n_threads) noexcept
    int fastnn_q8_epilogue(float *y, const int32_t *c, const float *a_scale, const int32_t *a_zp,
                           const float *w_scale, const int32_t *w_colsum, const float *bias, int64_t m, int64_t n,
                           int act, double alpha, int n_threads) noexcept
    int fastnn_q8_dense_forward(float *y, const float *x, const int8_t *bp, const float *w_scale,
                                const int32_t *w_colsum, const float *bias, int64_t m, int64_t k, int64_t n,
                                int act, double alpha, uint8_t *qa, int64_t lda, int32_t *acc, float *a_scale,
                                int32_t *a_zp, int path, int n_threads) noexcept
    ctypedef struct fastnn_q8_layer:
        const int8_t *packed
        const float *w_scale
        const float *bias
        const int32_t *colsum
        int64_t k, n
        int act
        double alpha
        const int8_t *sp_data
        const int32_t *sp_indices
        const int64_t *sp_indptr
        int64_t sparse_rows, sparse_min_rows
    int fastnn_q8_sparse_gemm(int32_t *c, const uint8_t *a, const int8_t *data, const int32_t *indices,
                              const int64_t *indptr, int64_t m, int64_t n, int64_t k, int64_t lda,
                              uint8_t *at, int n_threads) noexcept
    int64_t fastnn_q8_sparse_scratch_bytes(int64_t m, int64_t k) noexcept
    int fastnn_q8_sparse_dense_forward(float *y, const float *x, const int8_t *data, const int32_t *indices,
                                       const int64_t *indptr, const float *w_scale, const int32_t *w_colsum,
                                       const float *bias, int64_t m, int64_t k, int64_t n, int act, double alpha,
                                       uint8_t *qa, int64_t lda, uint8_t *at, int32_t *acc, float *a_scale,
                                       int32_t *a_zp, int n_threads) noexcept
    int64_t fastnn_q8_mlp_scratch_bytes(const fastnn_q8_layer *layers, int n_layers, int64_t m) noexcept
    int fastnn_q8_mlp_forward(float *y, const float *x, int64_t m, const fastnn_q8_layer *layers, int n_layers,
                              void *scratch, int64_t scratch_bytes, int path, int n_threads) noexcept
