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
    FASTNN_ENOMEM = 3,   /* an allocation failed */
    FASTNN_ENONFINITE = 4, /* training stopped: a batch loss was NaN or infinite (nothing was updated by it) */
    FASTNN_EDIST = 5      /* data-parallel training stopped: the allreduce failed, or a step failed on another rank */
} fastnn_status;

/* Activation codes. The derivative of each is computed from the activation's *output* a = f(z),
 * which is all a training step keeps: relu' = [a > 0], leaky' = 1 or alpha by sign of a (alpha > 0),
 * sigmoid' = a (1 - a), tanh' = 1 - a^2, linear' = 1, exp' = a, softmax: dz = a * (da - sum(da * a)) per row.
 * exp is the inverse of the poisson loss's log link (the predict activation of its output layer). */
typedef enum {
    FASTNN_ACT_LINEAR = 0,
    FASTNN_ACT_SIGMOID = 1,
    FASTNN_ACT_TANH = 2,
    FASTNN_ACT_RELU = 3,
    FASTNN_ACT_LEAKY_RELU = 4,
    FASTNN_ACT_SOFTMAX = 5,
    FASTNN_ACT_EXP = 6
} fastnn_activation;

/* Loss codes. Every loss is a mean: mse over all n*d elements of (a - t)^2 (no 1/2 factor);
 * cross_entropy over samples of -sum_j t_j log softmax(z)_j; binary_cross_entropy over all n*d elements. */
typedef enum {
    FASTNN_LOSS_MSE = 0,
    FASTNN_LOSS_CROSS_ENTROPY = 1,
    FASTNN_LOSS_BINARY_CROSS_ENTROPY = 2,
    /* cross_entropy whose all-zero target rows are padding (a label equal to ignore_index): they add nothing to
     * the loss or the gradient, and the mean is over the other rows (0 when there are none) */
    FASTNN_LOSS_CROSS_ENTROPY_IGNORE = 3,
    /* poisson with log link: `out` holds z = log(mu) (the output layer is linear; exp is its predict
     * activation), targets y >= 0. scikit-learn's half Poisson deviance (MLPRegressor(loss="poisson"),
     * sklearn.neural_network._base.poisson_loss), constant terms included: summed over the d outputs and
     * averaged over the n samples,
     *     loss = 1/n sum_i w_i sum_j [ y_ij log(y_ij / mu_ij) - y_ij + mu_ij ],   0 log 0 = 0,
     * computed as y (log y - z) - y + exp(z); d loss / d z_ij = w_i (exp(z_ij) - y_ij) / n. scikit-learn divides
     * a weighted sum by sum(w) instead of n: weights scaled to sum to n give its value. */
    FASTNN_LOSS_POISSON = 4
} fastnn_loss;

/* Optimizer codes for a training plan. */
typedef enum {
    FASTNN_OPT_SGD = 0,
    FASTNN_OPT_ADAM = 1,
    FASTNN_OPT_ADAMW = 2,
    FASTNN_OPT_RMSPROP = 3,
    FASTNN_OPT_IRPROP_MINUS = 4
} fastnn_optimizer_kind;

/* Where Adam and AdamW add epsilon (fastnn_optimizer.eps_placement). */
typedef enum {
    /* to sqrt(vhat), the bias-corrected second moment: p -= lr mhat / (sqrt(vhat) + eps) (Kingma & Ba's
     * Algorithm 1, PyTorch, Keras) */
    FASTNN_EPS_CORRECTED = 0,
    /* to sqrt(v), the uncorrected one, the bias corrections folded into the step size:
     * p -= lr_t m / (sqrt(v) + eps), lr_t = lr sqrt(1-b2^t) / (1-b1^t) (scikit-learn's AdamOptimizer, the
     * "efficient version" of Kingma & Ba section 2) */
    FASTNN_EPS_UNCORRECTED = 1
} fastnn_eps_placement;

/* Layer kinds of a network (the `kind` of fastnn_layer; fastnn/_codes.py mirrors them, checked by a test). */
typedef enum {
    FASTNN_LAYER_DENSE = 0,
    FASTNN_LAYER_CONV2D = 1,
    FASTNN_LAYER_MAXPOOL2D = 2,
    FASTNN_LAYER_AVGPOOL2D = 3,
    FASTNN_LAYER_FLATTEN = 4,
    FASTNN_LAYER_DROPOUT = 5,
    FASTNN_LAYER_EMBEDDING = 6,
    FASTNN_LAYER_RECURRENT = 7,
    FASTNN_LAYER_REPEAT = 8
} fastnn_layer_kind;

/* Recurrent cells; gate order and weight layout as PyTorch's nn.RNN / nn.LSTM / nn.GRU. */
typedef enum {
    FASTNN_CELL_SIMPLE = 0, /* h = act(W_ih x + b_ih + W_hh h + b_hh); 1 gate block */
    FASTNN_CELL_LSTM = 1,   /* gates i, f, g, o; c = f c + i g; h = o tanh(c) */
    FASTNN_CELL_GRU = 2     /* gates r, z, n; n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h = (1 - z) n + z h */
} fastnn_cell;

/* The geometry of a sequence layer, per sample: `steps` T steps of `features` F values in, of `units` U out.
 *   recurrent: cell, act (SimpleRNN: tanh or relu), return_sequences (y holds every step's h, else the last)
 *   embedding: T token ids in, T vectors of U out; features = the vocabulary size (an embedding is a dense
 *              layer on one-hot tokens)
 *   repeat:    one vector of F = U values in, T copies of it out */
typedef struct {
    int cell, act, return_sequences;
    int64_t steps, features, units;
} fastnn_sequence;

/* ---- A whole network, for the kernels that run a forward pass, a backward pass or an epoch in one call. ----
 * Every buffer is owned by the caller (Network, in Python) and typed REAL of the kernel's dtype; the structs hold
 * void pointers so one declaration serves both dtypes. Nothing here is allocated by C.
 *
 * A layer maps a sample of in_size values to one of out_size values. Images are (c, h, w) per sample, NCHW in a
 * batch. Which fields a kind reads:
 *   dense:     in_size = d_in, out_size = d_out, act/predict_act/alpha, W (d_in, d_out), b, dW, db
 *   conv2d:    win: in (in_c, in_h, in_w) -> out (out_c, out_h, out_w), kernel kh x kw, stride sh, sw, zero
 *              padding pad_h, pad_w before the image (after it: what out_h, out_w need); act...; W (out_c, in_c, kh,
 *              kw), b (out_c); cols: the im2col columns' workspace (max_batch * out_h * out_w * in_c * kh * kw
 *              values; the kernels use per-thread slices of it)
 *   maxpool2d: win: in (in_c, in_h, in_w) -> out (in_c, out_h, out_w), window kh x kw, stride sh, sw; argmax (int32,
 *              max_batch * out_size): the input index within its plane of each output's maximum
 *   avgpool2d: as maxpool2d, without argmax
 *   flatten:   out_size = in_size; no buffers of its own: its output is its input (a view)
 *   dropout:   rate; mask (max_batch, out_size): the multipliers (0 or 1 / (1 - rate)) of the last training
 *              pass. Outside training it passes its input through, like flatten.
 *   embedding: seq; W (vocabulary, U); no bias (b, db NULL). Only as the first layer: its input is token ids.
 *   recurrent: seq; W, Wh, b, bh: W_ih (G U, F), W_hh (G U, U), b_ih, b_hh (G U), G = 1, 4, 3 gate blocks for
 *              simple, lstm, gru, and their gradients dW, dWh, db, dbh; workspaces (per sample, time-major
 *              within a batch: see rnn_forward) states ((T + 1) U), gates (T G U), cells ((T + 1) U), dgates
 *              (T G U), carry (3 U). state (state_rows, S), if not NULL: the carried state of a stateful layer
 *              (h, then c for the lstm: S = U or 2 U), read as the initial state and overwritten with the final
 *              one by every forward pass (n <= state_rows); NULL: every sequence starts from zeros.
 *   repeat:    seq (steps = the repeats); no parameters.
 * `steps` is the rows each sample makes for the per-row kernels: a dense layer on a sequence acts on each of
 * its T steps (in_size = T d_in, out_size = T d_out), and the activations and the loss see n T rows of
 * out_size / T (softmax per step, cross_entropy's mean per token). 1 for everything else.
 * Every kind but flatten has a and delta workspaces of (max_batch, out_size): its outputs, and d(loss)/d(its
 * pre-activation outputs) during backprop. */
/* The geometry of a window sliding over images (convolution, pooling): per sample (in_c, in_h, in_w) in,
 * (out_c, out_h, out_w) out (out_c = in_c for pooling), windows of kh x kw taken every sh rows and sw columns of
 * the input padded with pad_h rows above and pad_w columns to the left (zeros; pooling has no padding).
 * Output (oy, ox) sees input rows oy * sh - pad_h + [0, kh) and columns ox * sw - pad_w + [0, kw). */
typedef struct {
    int64_t in_c, in_h, in_w, out_c, out_h, out_w;
    int64_t kh, kw, sh, sw, pad_h, pad_w;
} fastnn_window;

/* A CSR matrix (scipy.sparse's layout) of n_rows x n_cols: row i's stored values are data[indptr[i] ..
 * indptr[i + 1]) (REAL of the kernel's dtype), at columns indices[...] in [0, n_cols). Entries of a row need not
 * be sorted; duplicates add up (as scipy's toarray()). */
typedef struct {
    const void *data;
    const int64_t *indices, *indptr;
    int64_t n_rows, n_cols, nnz;
} fastnn_csr;

typedef struct {
    int kind;           /* fastnn_layer_kind */
    int64_t in_size, out_size;
    fastnn_window win;  /* conv2d, maxpool2d, avgpool2d */
    int act;            /* activation code in a forward pass for training (linear for a fused output layer) */
    int predict_act;    /* activation code when predicting (softmax/sigmoid for a fused output layer) */
    double alpha;       /* leaky_relu slope */
    double rate;        /* dropout: the fraction of units dropped */
    void *W, *b;        /* parameters */
    void *dW, *db;      /* their gradients, same shapes */
    void *a, *delta;    /* workspaces of (max_batch, out_size) */
    void *cols;         /* conv2d workspace */
    int32_t *argmax;    /* maxpool2d workspace */
    void *mask;         /* dropout workspace */
    int64_t steps;      /* rows per sample for the per-row kernels (dense, activations, loss); 1 or T */
    fastnn_sequence seq;/* embedding, recurrent, repeat */
    void *Wh, *bh;      /* recurrent: W_hh, b_hh */
    void *dWh, *dbh;    /* their gradients */
    void *states, *gates, *cells, *dgates, *carry; /* recurrent workspaces */
    void *state;        /* recurrent: the carried state of a stateful layer, or NULL */
    int64_t state_rows; /* rows of state */
    /* dense, pruned: W^T (out x in) as CSR, used instead of W by the inference passes (predict, evaluate, one
     * sample) for batches of at most sparse_rows samples (0: never; the training passes always use W). Built by
     * the caller from W, so the two must agree. */
    fastnn_csr sparse;
    int64_t sparse_rows;
} fastnn_layer;

typedef struct {
    int n_layers;
    fastnn_layer *layers;
    int loss_kind;      /* fastnn_loss; for the fused losses the last layer's act is linear (logits) */
    int64_t max_batch;  /* rows of every workspace */
    void *params, *grads; /* the flat buffers the layers' W, b, dW, db point into: all weights, then all biases */
    int64_t n_params, n_decay; /* n_decay: the leading n_params entries that are weights (get weight decay) */
    void *x_batch, *t_batch; /* (max_batch, in_size) and (max_batch, out_size): a gathered minibatch */
    void *w_batch;      /* (max_batch): its sample weights, gathered when training with weights */
    const uint8_t *keep; /* pruning: NULL, or n_decay flags (0 = pruned): each update zeroes the pruned
                            weights' gradients before the step and the weights after it */
} fastnn_net;

typedef struct {
    int kind;           /* fastnn_optimizer_kind */
    double lr, momentum, beta1, beta2, eps, weight_decay;
    int nesterov;
    double rho;         /* rmsprop's decay of the squared-gradient average */
    double eta_plus, eta_minus, step_min, step_max; /* irprop- step adaptation */
    int64_t t;          /* updates made so far; each update increments it first (Adam's bias correction) */
    double clip_norm;   /* > 0: each update first clips the gradients to this global norm (clip_grad_norm) */
    int64_t clipped;    /* updates whose gradients were clipped; incremented by the update */
    int eps_placement;  /* adam, adamw: fastnn_eps_placement */
    void *state1, *state2; /* each n_params long. sgd: velocity (NULL without momentum); adam, adamw: m and v;
                              rmsprop: mean square (state2 unused); irprop-: previous gradient and step sizes */
} fastnn_optimizer;

/* Metrics of a fit (Keras' names in fastnn/training.py), accumulated over the rows of an epoch's batches or of
 * an evaluation pass as sum[q] += w_i metric_q(row i) and weight += w_i (w_i = the row's sample weight, 1
 * without), so metric q is sum[q] / weight. A row's output is the output layer's prediction:
 *   accuracy:       softmax output: argmax of the outputs == argmax of the target row (one-hot labels);
 *                   sigmoid output: the fraction of its outputs with (probability > 0.5) == (target > 0.5)
 *                   (Keras' binary accuracy; with logits, logit > 0)
 *   top_k_accuracy: softmax output: fewer than k outputs exceed the one of the target's class
 *   mae:            the mean over the row's outputs of |prediction - target|
 * Padding rows of cross_entropy with ignore_index (all-zero targets) are skipped. */
typedef enum {
    FASTNN_METRIC_ACCURACY = 0,
    FASTNN_METRIC_TOP_K_ACCURACY = 1,
    FASTNN_METRIC_MAE = 2
} fastnn_metric;

#define FASTNN_MAX_METRICS 8

typedef struct {
    int n_metrics;                 /* 0 .. FASTNN_MAX_METRICS */
    int kind[FASTNN_MAX_METRICS];  /* fastnn_metric */
    int64_t k[FASTNN_MAX_METRICS]; /* top_k_accuracy's k */
    double sum[FASTNN_MAX_METRICS];/* accumulated weighted metric values */
    double weight;                 /* accumulated weights (rows counted) */
} fastnn_metrics;


/* Knowledge distillation in an epoch (fastnn_net_train_epoch_distill): the loss's temperature T and weight
 * alpha of the soft term, the teacher's logits for every row of the epoch's X, and a caller-owned workspace each
 * batch's teacher rows are gathered into (REAL of the kernel's dtype). */
typedef struct {
    double temperature, alpha;
    const void *teacher;  /* (n_rows, out_size) */
    void *teacher_batch;  /* (batch, out_size) */
} fastnn_distill;

/* Data-parallel training (fastnn/distributed.py, fastnn_net_train_epoch_dist): every rank of a communicator runs
 * the same epoch on its own shard, and between each step's backprop and its update the ranks sum, in place,
 * (1) three doubles: the loss's normaliser (the rows the batch loss is a mean over), a non-finite-loss flag and a
 *     failed-step flag, and then, unless a flag is set,
 * (2) the flat gradient buffer, each rank's first scaled by its normaliser over the global one, so the sum is the
 *     gradient of the mean loss over the union of the ranks' batches, as one process would compute it.
 * The sum is MPI_Allreduce of the MPI library already loaded in the process, called directly with raw handles
 * (mpi_allreduce != NULL; Open MPI's handles are pointers, MPICH's are ints: mpi_int_handles), so a step makes no
 * Python call; or else the caller's callback. Every rank makes n_steps steps: a rank whose shard is out of
 * batches takes part with an empty batch (zero gradient, normaliser 0). */
typedef int (*fastnn_allreduce_fn)(void *ctx, void *buf, int64_t count, int is_double); /* 0 = success */
typedef struct {
    void *mpi_allreduce;       /* the address of MPI_Allreduce, or NULL to call `allreduce` */
    int mpi_int_handles;       /* 1: MPI handles are C ints (MPICH); 0: pointers (Open MPI) */
    intptr_t comm, op_sum, type_float, type_double, in_place; /* raw handles and MPI_IN_PLACE's value */
    fastnn_allreduce_fn allreduce;
    void *ctx;
    int64_t n_steps;           /* steps of this epoch, the same on every rank; >= this rank's batches */
    volatile int64_t *progress;/* NULL, or incremented after every allreduce (a watchdog thread reads it) */
    double seconds;            /* accumulated wall time of the gradient allreduces */
    int64_t calls, bytes;      /* gradient allreduces made and the bytes each rank passed to them */
    int error;                 /* the MPI (or callback) error code of a failed allreduce, else 0 */
} fastnn_dist;

/* Sums count values (double if is_double, else float) over the ranks of d in place; FASTNN_EDIST on failure. */
int fastnn_dist_allreduce(fastnn_dist *d, void *buf, int64_t count, int is_double);

/* Fortran BLAS gemm, as SciPy's scipy.linalg.cython_blas exports it (LP64: int dimensions). */
typedef void (*fastnn_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, float *alpha, float *a,
                                int *lda, float *b, int *ldb, float *beta, float *c, int *ldc);
typedef void (*fastnn_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, double *alpha, double *a,
                                int *lda, double *b, int *ldb, double *beta, double *c, int *ldc);
/* Install (or, with NULLs, remove) the gemm the dense kernels use for large products. split != 0 says the BLAS
 * runs single-threaded and may be called from several OpenMP threads at once, so fastnn splits each product
 * over its own threads. Call with the GIL held and no kernel running. */
void fastnn_set_blas(fastnn_sgemm_fn sgemm, fastnn_dgemm_fn dgemm, int split);
int fastnn_have_blas(void);

/* Matrix-product engines (fastnn_gemm_*): FASTNN_GEMM_AUTO takes the engine recorded for the shape
 * (fastnn_gemm_record), else the default for it; LOOPS is the plain definition (the reference), OWN the packed
 * register-blocked kernels of gemm.c, BLAS the gemm installed by fastnn_set_blas. */
typedef enum {
    FASTNN_GEMM_AUTO = 0,
    FASTNN_GEMM_LOOPS = 1,
    FASTNN_GEMM_OWN = 2,
    FASTNN_GEMM_BLAS = 3
} fastnn_gemm_engine;

/* The instruction sets of the own kernels, best last; fastnn_gemm_isa() is the one in use. */
typedef enum {
    FASTNN_ISA_PLAIN = 0,   /* plain C, any compiler */
    FASTNN_ISA_VECTOR = 1,  /* 16-byte GCC/Clang vectors (SSE2, NEON) */
    FASTNN_ISA_AVX2 = 2,    /* AVX2 + FMA, 6 x 2 vectors */
    FASTNN_ISA_AVX512 = 3   /* AVX-512F, 12 x 2 vectors */
} fastnn_isa;

/* What fastnn_gemm does to each finished element: with deriv_of NULL, the forward activation act (not softmax);
 * else it multiplies C by the derivative of act at deriv_of, the activations (m, n) of the layer below (its
 * input gradient dz = dx * act'(a), not softmax), as fastnn_act_backward would. */
typedef struct {
    int act;
    double alpha;
    const void *deriv_of;
} fastnn_gemm_epilogue;

/* The best instruction set this CPU and build can run, the one in use, and a choice of another (FASTNN_EINVAL
 * when this CPU or build cannot run it). */
int fastnn_gemm_best_isa(void);
int fastnn_gemm_isa(void);
int fastnn_gemm_set_isa(int isa);
/* Packing space for n_slots threads running own-kernel products at once (at least; never shrinks);
 * FASTNN_ENOMEM when it cannot be allocated. Call with the GIL held before products run. */
int fastnn_gemm_reserve(int n_slots);
/* Record `engine` for products of this shape (op(A) (m, k), op(B) (k, n)), and look it up:
 * fastnn_gemm_recorded is FASTNN_GEMM_AUTO for a shape never recorded. The thread count is not part of a shape,
 * so a product gives the same result on any number of threads when its engine is the own kernels. The table
 * holds FASTNN_GEMM_TABLE shapes; FASTNN_ENOMEM when it is full. fastnn_gemm_forget empties it. */
int fastnn_gemm_record(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, int engine);
int fastnn_gemm_recorded(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k);
void fastnn_gemm_forget(void);
/* The engine a FASTNN_GEMM_AUTO product of this shape runs on: the forced one, the recorded one, else the
 * default (the own kernels where they have AVX2 or AVX-512, else the BLAS when one is set). */
int fastnn_gemm_choose(int is_f64, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k);
/* Force every FASTNN_GEMM_AUTO product onto one engine (FASTNN_GEMM_AUTO: back to the table and defaults). */
int fastnn_gemm_force(int engine);

/* 1 when compiled with OpenMP, else 0. */
int fastnn_openmp_enabled(void);
/* omp_get_max_threads(), or 1 without OpenMP. Honours OMP_NUM_THREADS. */
int fastnn_max_threads(void);

#define FASTNN_DECLARE_KERNELS(REAL, SFX)                                                                         \
/* *finite = 1 when none of x[0:n] is NaN or infinite, else 0. */                                              \
int fastnn_all_finite_##SFX(int *finite, const REAL *x, int64_t n, int n_threads);                             \
/* C (m, n) = init + op(A) op(B), then e's activation on each element (e may be NULL). op(A) is (m, k), stored  \
 * (k, m) when trans_a; op(B) is (k, n), stored (n, k) when trans_b; all row-major and dense. init: the bias    \
 * row when bias is not NULL, else C when accumulate, else zeros. engine: a fastnn_gemm_engine. */              \
int fastnn_gemm_##SFX(int engine, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const REAL *A,     \
                      const REAL *B, int accumulate, REAL *C, const REAL *bias, const fastnn_gemm_epilogue *e,  \
                      int n_threads);                                                                            \
/* Dense layer forward for a batch, with bias and activation fused into one pass over the output.              \
 * y (n, d_out) = act(x (n, d_in) @ W (d_in, d_out) + b (d_out)). y must not alias x. alpha: leaky slope. */    \
int fastnn_dense_forward_##SFX(REAL *y, const REAL *x, const REAL *W, const REAL *b,                           \
                               int64_t n, int64_t d_in, int64_t d_out, int act, double alpha, int n_threads);  \
/* Dense layer forward for one sample (matrix-vector): y (d_out) = act(x (d_in) @ W + b). Never threaded. */    \
int fastnn_dense_forward_single_##SFX(REAL *y, const REAL *x, const REAL *W, const REAL *b,                    \
                                      int64_t d_in, int64_t d_out, int act, double alpha);                    \
/* Activation in place: a (n, d) <- act(a). For softmax, rows are normalised. */                                \
int fastnn_act_forward_##SFX(REAL *a, int64_t n, int64_t d, int act, double alpha, int n_threads);             \
/* Activation derivative: dz (n, d) = da * f'(z), with f' taken from the output a. dz may alias da, not a. */   \
int fastnn_act_backward_##SFX(REAL *dz, const REAL *da, const REAL *a, int64_t n, int64_t d,                   \
                              int act, double alpha, int n_threads);                                          \
/* Loss and its gradient. `out` (n, d) is the network output: the activation a for mse, the logits z for       \
 * cross_entropy (softmax fused) and binary_cross_entropy (sigmoid fused). `target` (n, d): targets, one-hot or \
 * class probabilities for cross_entropy. `weights` (n), if not NULL, multiplies each sample's loss (the mean   \
 * stays over n). *loss receives the mean loss; grad (n, d), if not NULL, receives d(mean loss)/d(out) -- for   \
 * the fused losses that is the gradient w.r.t. the logits. grad may alias out. */                              \
int fastnn_loss_##SFX(double *loss, REAL *grad, const REAL *out, const REAL *target, const REAL *weights,      \
                      int64_t n, int64_t d, int loss_kind, int n_threads);                                    \
/* Distillation loss (Hinton et al.) of a softmax output: out (n, d) the student's logits, target (n, d) as for   \
 * cross_entropy, teacher (n, d) the teacher's logits. *loss = mean over n of w_i [(1 - alpha) CE(out_i, t_i) +  \
 * alpha T^2 KL(softmax(teacher_i / T) || softmax(out_i / T))]; grad (n, d), if not NULL, receives its gradient \
 * w.r.t. out: w_i [(1 - alpha) (softmax(out_i) sum(t_i) - t_i) + alpha T (softmax(out_i / T) - softmax(teacher_i \
 * / T))] / n. FASTNN_EINVAL unless temperature T > 0 (finite) and 0 <= alpha <= 1. grad may alias out. */      \
int fastnn_distill_loss_##SFX(double *loss, REAL *grad, const REAL *out, const REAL *target, const REAL *teacher,\
                              const REAL *weights, int64_t n, int64_t d, double temperature, double alpha,    \
                              int n_threads);                                                                 \
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
 * lr_t = lr sqrt(1-b2^t) / (1-b1^t) and eps_t = eps sqrt(1-b2^t): the same as lr mhat / (sqrt(vhat) + eps)    \
 * (eps_placement FASTNN_EPS_CORRECTED); with FASTNN_EPS_UNCORRECTED eps_t = eps (scikit-learn's update). */     \
int fastnn_adam_step_##SFX(REAL *params, const REAL *grads, REAL *m, REAL *v, int64_t n, int64_t n_decay,      \
                           double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,  \
                           int eps_placement, int n_threads);                                                 \
/* AdamW (Loshchilov & Hutter): Adam whose weight decay is decoupled from the gradient: the first n_decay      \
 * parameters are first multiplied by (1 - lr * weight_decay), then take the Adam step without an L2 term. */   \
int fastnn_adamw_step_##SFX(REAL *params, const REAL *grads, REAL *m, REAL *v, int64_t n, int64_t n_decay,     \
                            double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t, \
                            int eps_placement, int n_threads);                                                \
/* RMSprop: g += wd p (first n_decay); s = rho s + (1 - rho) g^2; p -= lr g / (sqrt(s) + eps). */             \
int fastnn_rmsprop_step_##SFX(REAL *params, const REAL *grads, REAL *sq, int64_t n, int64_t n_decay, double lr, \
                              double rho, double eps, double weight_decay, int n_threads);                    \
/* iRPROP- (Igel & Huesken 2000), FANN's default batch training: per parameter, g += wd p (first n_decay); if  \
 * g * prev > 0 the step grows (step * eta_plus, at most step_max); if g * prev < 0 it shrinks (step *        \
 * eta_minus, at least step_min) and g is taken as 0; then p -= sign(g) * step and prev = g. Meant for full-  \
 * batch gradients. steps start at the initial step size, prev at 0. */                                       \
int fastnn_irprop_minus_step_##SFX(REAL *params, const REAL *grads, REAL *prev, REAL *steps, int64_t n,         \
                                   int64_t n_decay, double eta_plus, double eta_minus, double step_min,       \
                                   double step_max, double weight_decay, int n_threads);                      \
/* Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_): norm = ||grads[0:n]||_2, summed in double \
 * in index order; when max_norm / (norm + 1e-6) < 1, grads *= that factor and *clipped = 1, else *clipped = 0  \
 * (a non-finite norm clips nothing). */                                                                      \
int fastnn_clip_grad_norm_##SFX(int *clipped, REAL *grads, int64_t n, double max_norm, int n_threads);          \
/* im2col over a batch: x (n, in_c, in_h, in_w) -> cols (in_c * kh * kw, n * out_h * out_w): one row per     \
 * weight (in_c, kh, kw), one column per output position (sample-major); zeros where a window meets padding. */ \
int fastnn_im2col_##SFX(REAL *cols, const REAL *x, int64_t n, const fastnn_window *g, int n_threads);          \
/* The adjoint of im2col: dx (n, in_c, in_h, in_w) = the sum of every column entry into the pixel it was read    \
 * from (overwritten). Threads own whole samples, so no two write one pixel. */                                 \
int fastnn_col2im_##SFX(REAL *dx, const REAL *cols, int64_t n, const fastnn_window *g, int n_threads);         \
/* Convolution forward: y (n, out_c, out_h, out_w) = act(conv(x, W (out_c, in_c, kh, kw)) + b (out_c)). Few    \
 * filters or a small kernel (see conv_impl.h): per sample, its im2col columns in a per-thread slot of cols, then \
 * b + W cols; otherwise one BLAS product per sample, W cols_s, which lands in NCHW order.                      \
 * cols (n out_h out_w in_c kh kw values) is the workspace of fastnn_layer. */                                  \
int fastnn_conv2d_forward_##SFX(REAL *y, REAL *cols, const REAL *x, const REAL *W, const REAL *b,              \
                                int64_t n, const fastnn_window *g, int act, double alpha, int n_threads);      \
/* Convolution backward from dz (n, out_c, out_h, out_w) = d(loss)/d(pre-activation), the layer input x and     \
 * the workspace the forward pass used: dW = sum over samples of dz cols^T and db = sums of dz (each element     \
 * summed by one thread in a fixed order, whatever n_threads); if dx is not NULL, dx = col2im(W^T dz). cols     \
 * is overwritten. */                                                                                          \
int fastnn_conv2d_backward_##SFX(REAL *dx, REAL *dW, REAL *db, REAL *cols, const REAL *dz,                     \
                                 const REAL *x, const REAL *W, int64_t n, const fastnn_window *g,             \
                                 int n_threads);                                                              \
/* Max pooling: y (n, c, out_h, out_w) = window maxima of x (n, c, in_h, in_w); the first maximum in row-major   \
 * window order wins, and a NaN wins over any number. argmax (n * c * out_h * out_w), if not NULL, receives the  \
 * index within its plane (row * in_w + col) of each maximum. */                                                \
int fastnn_maxpool2d_forward_##SFX(REAL *y, int32_t *argmax, const REAL *x, int64_t n, const fastnn_window *g,  \
                                   int n_threads);                                                            \
/* dx (n, c, in_h, in_w) = dy scattered to the maxima argmax points at (overwritten; sums where windows meet). */\
int fastnn_maxpool2d_backward_##SFX(REAL *dx, const REAL *dy, const int32_t *argmax, int64_t n,                \
                                    const fastnn_window *g, int n_threads);                                   \
/* Average pooling: y = window means (kh * kw values each; no padding). */                                      \
int fastnn_avgpool2d_forward_##SFX(REAL *y, const REAL *x, int64_t n, const fastnn_window *g, int n_threads);  \
/* dx = dy / (kh * kw) spread over each window (overwritten; sums where windows overlap). */                    \
int fastnn_avgpool2d_backward_##SFX(REAL *dx, const REAL *dy, int64_t n, const fastnn_window *g,               \
                                    int n_threads);                                                           \
/* Inverted dropout over x (n, d): mask = 1 / (1 - rate) where fastnn_dropout_uniform(key, i) >= rate, else 0   \
 * (i = row * d + column); y = x * mask. y may alias x. */                                                     \
int fastnn_dropout_forward_##SFX(REAL *y, REAL *mask, const REAL *x, int64_t n, int64_t d, double rate,        \
                                 uint64_t key, int n_threads);                                                \
/* dx = dy * mask (dx may alias dy). */                                                                        \
int fastnn_dropout_backward_##SFX(REAL *dx, const REAL *dy, const REAL *mask, int64_t n, int64_t d,            \
                                  int n_threads);                                                             \
/* Embedding lookup: y (m, D) = W[ids] for m token ids (REAL values); W is (vocab, D). FASTNN_EINVAL, before    \
 * anything is written, when an id is not an integer in [0, vocab). */                                          \
int fastnn_embedding_forward_##SFX(REAL *y, const REAL *ids, const REAL *W, int64_t m, int64_t vocab,           \
                                   int64_t D, int n_threads);                                                 \
/* dW (vocab, D) = the sum of dy's rows (m, D) into their tokens' rows (overwritten). Threads own column slices  \
 * of dW and walk the ids in order, so no two write one element and sums do not depend on n_threads. */         \
int fastnn_embedding_backward_##SFX(REAL *dW, const REAL *dy, const REAL *ids, int64_t m, int64_t vocab,        \
                                    int64_t D, int n_threads);                                                \
/* y (n, repeats F) = each row of x (n, F) repeated; the backward pass sums the repeats: dx (n, F). */          \
int fastnn_repeat_forward_##SFX(REAL *y, const REAL *x, int64_t n, int64_t F, int64_t repeats, int n_threads);  \
int fastnn_repeat_backward_##SFX(REAL *dx, const REAL *dy, int64_t n, int64_t F, int64_t repeats,               \
                                 int n_threads);                                                              \
/* A recurrent layer over n whole sequences x (n, T F) (fastnn_sequence s; W_ih (G U, F), W_hh (G U, U), b_ih,  \
 * b_hh (G U)). Workspaces, time-major so that one step's n rows are contiguous: states (T + 1, n, U): the      \
 * initial state, then h after each step; gates (T, n, G U): the gates after their non-linearities (simple: h); \
 * cells (T + 1, n, U): lstm: c_0, c_1 ... c_T; gru: at [t] W_hn h_{t-1} + b_hn; simple: unused (may be NULL).   \
 * proj (n T G U): scratch for the input projection of all steps, one product before the time loop.            \
 * state0 (n, S) or NULL (zeros): the initial h (then c for the lstm); state_out (n, S) or NULL receives the      \
 * final state and may alias state0. y: (n, T U) every step's h with s->return_sequences, else (n, U). */         \
int fastnn_rnn_forward_##SFX(REAL *y, REAL *states, REAL *gates, REAL *cells, REAL *proj, const REAL *x,        \
                             const REAL *W_ih, const REAL *W_hh, const REAL *b_ih, const REAL *b_hh,          \
                             const REAL *state0, REAL *state_out, int64_t n, const fastnn_sequence *s,        \
                             int n_threads);                                                                  \
/* Backpropagation through time over what fastnn_rnn_forward stored, from dy = d(loss)/d(y) (shaped as y).      \
 * Overwrites dW_ih, dW_hh, db_ih, db_hh and, unless dx is NULL, dx (n, T F); the initial state is a constant.   \
 * dgates (T n G U): the gradients w.r.t. the pre-activation gates; gates and cells are overwritten; carry       \
 * (3 n U) holds the gradients passed from step to step. The weight gradients are products over all steps at    \
 * once, after the time loop. */                                                                               \
int fastnn_rnn_backward_##SFX(REAL *dx, REAL *dW_ih, REAL *dW_hh, REAL *db_ih, REAL *db_hh, REAL *dgates,        \
                              REAL *gates, REAL *cells, REAL *carry, const REAL *dy, const REAL *x,            \
                              const REAL *states, const REAL *W_ih, const REAL *W_hh, int64_t n,              \
                              const fastnn_sequence *s, int n_threads);                                       \
/* Forward and backward pass of a whole network over one batch x (n <= max_batch, in_size), targets t (n,      \
 * out_size), sample weights w (n, or NULL): fills every layer's workspaces and the gradient buffer and sets    \
 * *loss to the batch's mean loss. training != 0 turns dropout on, its masks drawn from dropout_key. */         \
int fastnn_net_backprop_##SFX(const fastnn_net *net, double *loss, const REAL *x, const REAL *t, const REAL *w, \
                              int64_t n, int training, uint64_t dropout_key, int n_threads);                  \
/* fastnn_net_backprop with the distillation loss (fastnn_distill_loss) in place of the network's own, which     \
 * must be cross_entropy: teacher (n, out_size) holds the teacher's logits for the rows of x. */                 \
int fastnn_net_backprop_distill_##SFX(const fastnn_net *net, double *loss, const REAL *x, const REAL *t,        \
                                      const REAL *teacher, const REAL *w, int64_t n, double temperature,        \
                                      double alpha, int training, uint64_t dropout_key, int n_threads);         \
/* One update of net->params from net->grads; increments opt->t. */                                           \
int fastnn_net_update_##SFX(const fastnn_net *net, fastnn_optimizer *opt, int n_threads);                      \
/* One epoch of minibatch training: batches of `batch` rows (<= max_batch) of X (n_rows, in_size), T (n_rows,   \
 * out_size) and sample weights W (n_rows, or NULL) taken in the order of `order` (n indices in [0, n_rows): a   \
 * shuffle, or any subset in any order, so the caller never copies X to reorder it), each gathered into        \
 * x_batch / t_batch / w_batch, then backprop (training; batch b draws its dropout masks from                  \
 * fastnn_dropout_batch_key(dropout_seed, b)) and update. Exactly one of X and Xs is given: Xs, a CSR matrix of \
 * n_rows rows and in_size columns (checked first with fastnn_check_csr), has each batch's rows gathered into       \
 * x_batch with fastnn_csr_gather, so a sparse X is never densified beyond one batch.                          \
 * *loss_sum receives the sum over batches of batch loss * batch rows, *n_done the rows trained. Stops with      \
 * FASTNN_ENONFINITE at the first non-finite batch loss, before that batch's update. */                         \
int fastnn_net_train_epoch_##SFX(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X,                 \
                                 const fastnn_csr *Xs, const REAL *T, const REAL *W, int64_t n_rows,           \
                                 const int64_t *order, int64_t n, int64_t batch, uint64_t dropout_seed, fastnn_metrics *metrics,    \
                                 double *loss_sum, int64_t *n_done, int n_threads);                           \
/* fastnn_net_train_epoch with the distillation loss: each batch's rows of distill->teacher (n_rows, out_size,  \
 * the teacher's logits) are gathered by `order` into distill->teacher_batch (batch, out_size) as T's are, and   \
 * the batch trains by fastnn_net_backprop_distill. The network's loss must be cross_entropy. */                \
int fastnn_net_train_epoch_distill_##SFX(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X,          \
                                         const fastnn_csr *Xs, const REAL *T, const REAL *W,                   \
                                         const fastnn_distill *distill, int64_t n_rows, const int64_t *order,  \
                                         int64_t n, int64_t batch, uint64_t dropout_seed,                     \
                                         fastnn_metrics *metrics, double *loss_sum, int64_t *n_done,          \
                                         int n_threads);                                                      \
/* fastnn_net_train_epoch (with the distillation loss when distill != NULL) as one rank of data-parallel      \
 * training: each step's gradients are summed over the ranks by `dist` before the update (see fastnn_dist), and \
 * the epoch makes dist->n_steps steps. *loss_sum, *n_done and the metrics stay this rank's. A non-finite loss on \
 * any rank gives FASTNN_ENONFINITE on every rank at the same step; a failed allreduce, or a step that failed    \
 * on another rank, gives FASTNN_EDIST (the failing rank returns its own status). */                           \
int fastnn_net_train_epoch_dist_##SFX(const fastnn_net *net, fastnn_optimizer *opt, const REAL *X,             \
                                      const fastnn_csr *Xs, const REAL *T, const REAL *W,                      \
                                      const fastnn_distill *distill, int64_t n_rows, const int64_t *order,     \
                                      int64_t n, int64_t batch, uint64_t dropout_seed,                        \
                                      fastnn_metrics *metrics, double *loss_sum, int64_t *n_done,             \
                                      fastnn_dist *dist, int n_threads);                                      \
/* Prediction for a batch: x (n, in_size) -> y (n, out_size), the output layer's predict activation applied.   \
 * Uses only `scratch` (fastnn_net_infer_scratch_size(net, n) REALs), never the network's workspaces, so any    \
 * number of threads may predict with one network at once. */                                                 \
int fastnn_net_predict_##SFX(const fastnn_net *net, REAL *y, const REAL *x, int64_t n, REAL *scratch,          \
                             int n_threads);                                                                  \
/* The mean loss over x (n, in_size) against t (n, out_size), sample weights w (n, or NULL), without dropout;   \
 * scratch as for fastnn_net_predict. metrics, if not NULL, accumulates (adds to) the metrics of these rows. */  \
int fastnn_net_evaluate_##SFX(const fastnn_net *net, double *loss, const REAL *x, const REAL *t, const REAL *w, \
                              int64_t n, REAL *scratch, fastnn_metrics *metrics, int n_threads);              \
/* Adds the metrics of n rows of d outputs (see fastnn_metrics) to *metrics (NULL: nothing): out (n, d) the      \
 * output layer's values, before its predict activation output_act when raw != 0 (the fused losses' logits,    \
 * poisson's log-means), else after it; target (n, d); weights (n) or NULL; skip_padding != 0 skips all-zero    \
 * target rows. FASTNN_EINVAL for a metric the output does not support (fastnn_check_metrics). */              \
int fastnn_metrics_accumulate_##SFX(fastnn_metrics *metrics, const REAL *out, const REAL *target,               \
                                    const REAL *weights, int64_t n, int64_t d, int output_act, int raw,        \
                                    int skip_padding);                                                        \
/* x (n, A->n_cols) = the dense rows rows[0 .. n) of the CSR matrix A: each row zeroed, then its stored values \
 * added at their columns in storage order. A must have passed fastnn_check_csr; rows outside [0, n_rows) are  \
 * refused (FASTNN_EINVAL) before anything is written. */                                                       \
int fastnn_csr_gather_##SFX(REAL *x, const fastnn_csr *A, const int64_t *rows, int64_t n, int n_threads);      \
/* One sample through a network of dense layers only: x (in_size) -> y (out_size). scratch holds two vectors of \
 * the widest layer (2 * max out_size REALs). Never threaded, never allocates. */                               \
int fastnn_net_forward_single_##SFX(const fastnn_net *net, REAL *y, const REAL *x, REAL *scratch);

/* FASTNN_OK when every metric of m (NULL: none) applies to an output whose predict activation is output_act:
 * accuracy needs softmax or sigmoid, top_k_accuracy softmax and k >= 1; else FASTNN_EINVAL. */
int fastnn_check_metrics(const fastnn_metrics *m, int output_act);
/* FASTNN_OK when A is a well-formed CSR matrix: indptr[0] = 0, non-decreasing, indptr[n_rows] = nnz, every
 * column index in [0, n_cols); else FASTNN_EINVAL (FASTNN_ESHAPE for negative sizes or n_cols < 1). */
int fastnn_check_csr(const fastnn_csr *A);

/* The key of batch b (0, 1, ...) of an epoch whose dropout seed is `seed`, and the uniform number in [0, 1)
 * (53 bits) of element i under a key: splitmix64 finalisers, so the NumPy twin computes the same masks. */
uint64_t fastnn_dropout_batch_key(uint64_t seed, int64_t b);
double fastnn_dropout_uniform(uint64_t key, int64_t i);
/* The key of layer `layer` (its index in the network) under a pass's dropout key. */
uint64_t fastnn_dropout_layer_key(uint64_t key, int64_t layer);
/* FASTNN_OK when s is a recurrent geometry the kernels can run (a known cell, T, F, U >= 1, tanh or relu for
 * simple), else FASTNN_EINVAL or FASTNN_ESHAPE. */
int fastnn_check_sequence(const fastnn_sequence *s);
/* REALs of scratch one inference pass of n sequences through a recurrent layer needs: states, gates, cells and
 * the projection, in that order (2 (T + 1) U + 2 T G U per sequence). */
int64_t fastnn_rnn_scratch_size(const fastnn_sequence *s, int64_t n);
/* REALs of scratch fastnn_net_predict / fastnn_net_evaluate need for n samples (-1 if the net is invalid). */
int64_t fastnn_net_infer_scratch_size(const fastnn_net *net, int64_t n);

FASTNN_DECLARE_KERNELS(float, f32)
FASTNN_DECLARE_KERNELS(double, f64)

#undef FASTNN_DECLARE_KERNELS

/* Pruning (prune.c). */
#define FASTNN_DECLARE_PRUNE(REAL, SFX)                                                                           \
/* x[k] = 0 wherever keep[k] == 0, k < n. */                                                                     \
int fastnn_mask_apply_##SFX(REAL *x, const uint8_t *keep, int64_t n, int n_threads);                            \
/* y (n, Wt->n_rows) = act(x (n, Wt->n_cols) W + b), W^T given as CSR Wt (entries need not be sorted; each      \
 * output is b[o] then the products of its row in storage order). act: any activation code (softmax per row). */ \
int fastnn_sparse_dense_forward_##SFX(REAL *y, const REAL *x, const fastnn_csr *Wt, const REAL *b, int64_t n,  \
                                      int act, double alpha, int n_threads);
FASTNN_DECLARE_PRUNE(float, f32)
FASTNN_DECLARE_PRUNE(double, f64)
#undef FASTNN_DECLARE_PRUNE

/* ---- int8 inference (quant.c) ----------------------------------------------------------------------------------
 * Integer GEMM c (m, n) int32 = a (m, lda) uint8 [first k columns] x w (k, n) int8, w given packed (see quant.c:
 * blocks of 16 columns, 4 consecutive k per 32-bit lane, ceil(n/16) * ceil(k/4) * 64 bytes), lda >= 4 ceil(k/4).
 * Exact on every path for k <= FASTNN_Q8_MAX_K (the int32 sum cannot overflow). A path the CPU lacks: EINVAL. */
typedef enum {
    FASTNN_Q8_PORTABLE = 0,
    FASTNN_Q8_AVX2 = 1,
    FASTNN_Q8_AVX_VNNI = 2,
    FASTNN_Q8_AVX512_VNNI = 3
} fastnn_q8_path;
#define FASTNN_Q8_MAX_K 65793 /* floor((2^31 - 1) / (255 * 128)) */
int fastnn_q8_path_supported(int path);
int fastnn_q8_best_path(void);
int fastnn_q8_gemm(int32_t *c, const uint8_t *a, const int8_t *bp, int64_t m, int64_t n, int64_t k, int64_t lda,
                   int path, int n_threads);
/* Per row i of x (m, k): scale_i, zero_point_i and q (m, ldq) uint8 (columns k..ldq-1 set to 0); ENONFINITE when a
 * row holds NaN or infinity. */
int fastnn_q8_quantize_rows(uint8_t *q, float *scale, int32_t *zero_point, const float *x, int64_t m, int64_t k,
                            int64_t ldq, int n_threads);
/* y (m, n) = act((c - zp_i colsum_j) * (a_scale_i w_scale_j) + bias_j), colsum_j = sum_k w[k, j] */
int fastnn_q8_epilogue(float *y, const int32_t *c, const float *a_scale, const int32_t *a_zp,
                       const float *w_scale, const int32_t *w_colsum, const float *bias, int64_t m, int64_t n,
                       int act, double alpha, int n_threads);
/* The three above fused per block of rows: y (m, n) from float rows x (m, k); qa (m, lda), acc (m, n), a_scale (m),
 * a_zp (m) are the caller's scratch. */
int fastnn_q8_dense_forward(float *y, const float *x, const int8_t *bp, const float *w_scale,
                            const int32_t *w_colsum, const float *bias, int64_t m, int64_t k, int64_t n, int act,
                            double alpha, uint8_t *qa, int64_t lda, int32_t *acc, float *a_scale, int32_t *a_zp,
                            int path, int n_threads);
/* The same int32 c (m, n) = a (m, lda) uint8 [first k columns] x w (k, n) int8 from the nonzeros of w^T in CSR
 * form: output o's weights data[indptr[o] .. indptr[o+1]] int8 at rows indices[..] (int32, in [0, k)) of w,
 * indptr (n + 1) from 0. Equal to fastnn_q8_gemm's integers; lda >= k.
 * at: NULL, or fastnn_q8_sparse_scratch_bytes(m, k) bytes of scratch for transposed blocks of 16 rows (then
 * batches vectorize over rows). */
int fastnn_q8_sparse_gemm(int32_t *c, const uint8_t *a, const int8_t *data, const int32_t *indices,
                          const int64_t *indptr, int64_t m, int64_t n, int64_t k, int64_t lda, uint8_t *at,
                          int n_threads);
int64_t fastnn_q8_sparse_scratch_bytes(int64_t m, int64_t k);
/* fastnn_q8_dense_forward with the sparse product: the same outputs, bit for bit (at as above). */
int fastnn_q8_sparse_dense_forward(float *y, const float *x, const int8_t *data, const int32_t *indices,
                                   const int64_t *indptr, const float *w_scale, const int32_t *w_colsum,
                                   const float *bias, int64_t m, int64_t k, int64_t n, int act, double alpha,
                                   uint8_t *qa, int64_t lda, uint8_t *at, int32_t *acc, float *a_scale,
                                   int32_t *a_zp, int n_threads);
/* A stack of quantized dense layers in one call (one sample's latency is mostly call overhead otherwise). */
typedef struct {
    const int8_t *packed;
    const float *w_scale, *bias;
    const int32_t *colsum;
    int64_t k, n;
    int act;
    double alpha;
    /* optional sparse copy of the weights (NULL sp_indptr: none), see fastnn_q8_sparse_gemm; used for chunks of
     * sparse_min_rows .. sparse_rows rows */
    const int8_t *sp_data;
    const int32_t *sp_indices;
    const int64_t *sp_indptr;
    int64_t sparse_rows, sparse_min_rows;
} fastnn_q8_layer;
/* Scratch bytes fastnn_q8_mlp_forward needs for m rows (it runs the rows through the layers in chunks of 256,
 * so this stops growing at 256 rows). */
int64_t fastnn_q8_mlp_scratch_bytes(const fastnn_q8_layer *layers, int n_layers, int64_t m);
/* y (m, layers[n_layers-1].n) from x (m, layers[0].k); layer i's n is layer i+1's k. */
int fastnn_q8_mlp_forward(float *y, const float *x, int64_t m, const fastnn_q8_layer *layers, int n_layers,
                          void *scratch, int64_t scratch_bytes, int path, int n_threads);

#ifdef __cplusplus
}
#endif
#endif /* FASTNN_H */
