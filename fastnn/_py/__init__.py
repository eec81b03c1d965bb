"""The NumPy backend: the readable twin of every C kernel in csrc/, with the same names and signatures.

Each module mirrors one C file (dense.c -> dense.py, ...). Kernels write into the arrays they are given, like
their C twins, so Network drives both backends with exactly the same calls.
"""
from .activations import act_backward, act_forward
from .checks import all_finite
from .dense import dense_backward, dense_forward, dense_forward_single
from .losses import loss
from .network import NetHandle, net_backprop, net_forward_single, net_train_epoch, net_update
from .optimizers import adam_step, adamw_step, irprop_minus_step, rmsprop_step, sgd_step

NAME = "python"


def openmp_enabled():
    """The NumPy backend runs no OpenMP code of its own."""
    return False


def max_threads():
    """The NumPy backend has no thread pool of its own (NumPy's BLAS may have one)."""
    return 1


__all__ = ["NAME", "NetHandle", "act_backward", "act_forward", "all_finite", "adam_step", "adamw_step", "irprop_minus_step",
           "rmsprop_step", "dense_backward", "dense_forward",
           "dense_forward_single", "loss", "max_threads", "net_backprop", "net_forward_single", "net_train_epoch",
           "net_update", "openmp_enabled", "sgd_step"]
