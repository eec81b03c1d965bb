"""Integer codes shared by both backends (the C enums of csrc/fastnn.h) and the public names behind them."""

LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX, EXP = range(7)
MSE, CROSS_ENTROPY, BINARY_CROSS_ENTROPY = range(3)
# cross_entropy whose all-zero target rows are padding (ignore_index): they add nothing, and the mean is over the
# other rows. Internal: the network picks it when built with an ignore_index.
CROSS_ENTROPY_IGNORE = 3
# poisson with log link: the network outputs log(mean) while training, exp(.) when predicting
POISSON = 4
OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_RMSPROP, OPT_IRPROP_MINUS = range(5)
# Where adam / adamw add epsilon (fastnn_eps_placement): to sqrt(vhat) (PyTorch, Keras) or to sqrt(v) of the
# uncorrected second moment (scikit-learn).
EPS_CORRECTED, EPS_UNCORRECTED = range(2)
EPSILON_PLACEMENTS = {"corrected": EPS_CORRECTED, "uncorrected": EPS_UNCORRECTED}
# Metrics of a fit (fastnn_metric in csrc/fastnn.h); their public names are in fastnn/training.py.
METRIC_ACCURACY, METRIC_TOP_K_ACCURACY, METRIC_MAE = range(3)

ACTIVATIONS = {"linear": LINEAR, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "leaky_relu": LEAKY_RELU,
               "softmax": SOFTMAX, "exp": EXP}
LOSSES = {"mse": MSE, "cross_entropy": CROSS_ENTROPY, "binary_cross_entropy": BINARY_CROSS_ENTROPY,
          "poisson": POISSON}

# The output activation each loss implies when the caller names only the hidden one; cross_entropy,
# binary_cross_entropy and poisson fuse it into the loss (the network keeps logits / log-means while training).
OUTPUT_ACTIVATION = {"mse": "linear", "cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                     "poisson": "exp"}
FUSED_OUTPUT = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "poisson": "exp"}

OPTIMIZERS = {"sgd": OPT_SGD, "adam": OPT_ADAM, "adamw": OPT_ADAMW, "rmsprop": OPT_RMSPROP,
              "irprop-": OPT_IRPROP_MINUS}

LEAKY_RELU_SLOPE = 0.01

# Layer kinds (fastnn_layer_kind in csrc/fastnn.h).
(LAYER_DENSE, LAYER_CONV2D, LAYER_MAXPOOL2D, LAYER_AVGPOOL2D, LAYER_FLATTEN, LAYER_DROPOUT, LAYER_EMBEDDING,
 LAYER_RECURRENT, LAYER_REPEAT) = range(9)

# Recurrent cells (fastnn_cell in csrc/fastnn.h) and their gate counts; gate order as PyTorch's.
CELL_SIMPLE, CELL_LSTM, CELL_GRU = range(3)
CELL_GATES = {CELL_SIMPLE: 1, CELL_LSTM: 4, CELL_GRU: 3}
