"""The NumPy backend: the readable twin of every C kernel in csrc/, with the same names and signatures.

Each module mirrors one C file (dense.c -> dense.py, conv.c -> conv.py, ...). Kernels write into the arrays they
are given, like their C twins, so Network drives both backends with exactly the same calls.
"""
from .activations import act_backward, act_forward
from .checks import all_finite
from .conv import col2im, conv2d_backward, conv2d_forward, im2col
from .dense import dense_backward, dense_forward, dense_forward_single
from .gemm import gemm
from .dropout import dropout_backward, dropout_batch_key, dropout_forward, dropout_layer_key, dropout_uniform
from .losses import distill_loss, loss
from .metrics import metrics_accumulate
from .network import (NetHandle, net_backprop, net_evaluate, net_forward_single, net_infer_scratch_size,
                      net_predict, net_train_epoch, net_update)
from .optimizers import adam_step, adamw_step, clip_grad_norm, irprop_minus_step, rmsprop_step, sgd_step
from .quant import (Q8Plan, q8_best_path, q8_dense_forward, q8_epilogue, q8_gemm, q8_path_supported,
                    q8_quantize_rows, q8_sparse_dense_forward, q8_sparse_gemm,
                    q8_sparse_scratch_bytes)
from .pool import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from .prune import mask_apply, sparse_dense_forward
from .rnn import rnn_backward, rnn_forward, rnn_scratch_size
from .sparse import csr_gather
from .sequence import embedding_backward, embedding_forward, repeat_backward, repeat_forward

NAME = "python"


def openmp_enabled():
    """The NumPy backend runs no OpenMP code of its own."""
    return False


def max_threads():
    """The NumPy backend has no thread pool of its own (NumPy's BLAS may have one)."""
    return 1


__all__ = ["NAME", "NetHandle", "act_backward", "act_forward", "adam_step", "adamw_step", "all_finite",
           "avgpool2d_backward", "avgpool2d_forward", "clip_grad_norm", "col2im", "conv2d_backward", "conv2d_forward", "csr_gather",
           "dense_backward", "dense_forward", "gemm", "dense_forward_single", "dropout_backward", "dropout_batch_key",
           "dropout_forward", "dropout_layer_key", "dropout_uniform", "embedding_backward", "embedding_forward",
           "distill_loss", "im2col", "irprop_minus_step", "loss", "max_threads", "maxpool2d_backward", "maxpool2d_forward",
           "mask_apply", "metrics_accumulate", "q8_best_path", "q8_dense_forward", "q8_epilogue", "q8_gemm",
           "q8_path_supported", "q8_quantize_rows", "q8_sparse_dense_forward", "q8_sparse_gemm",
           "q8_sparse_scratch_bytes", "Q8Plan",
           "net_backprop", "net_evaluate", "net_forward_single", "net_infer_scratch_size", "net_predict",
           "net_train_epoch", "net_update", "openmp_enabled", "repeat_backward", "repeat_forward", "rmsprop_step",
           "rnn_backward", "rnn_forward", "rnn_scratch_size", "sgd_step", "sparse_dense_forward"]
