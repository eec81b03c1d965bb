"""The matrix product with its epilogue (twin of csrc/gemm.c): C = init + op(A) @ op(B), then the forward
activation, or the derivative of the layer below's activation. NumPy has one engine (its matmul), so `engine`
is accepted and only checked."""
import numpy as np

from .activations import act_backward, activate_inplace

SOFTMAX = 5


def gemm(engine, trans_a, trans_b, A, B, C, accumulate=False, bias=None, act=0, alpha=0.0, n_threads=1,
         deriv_of=None):
    """C (m, n) = init + op(A) @ op(B) in place: op(A) = A.T when trans_a, op(B) = B.T when trans_b; init is
    bias (one row) when given, else C when accumulate, else zeros. Then act on each element (not softmax), or,
    with deriv_of (the activations of the layer below, shaped like C), C times act's derivative there."""
    if engine not in (0, 1, 2, 3):
        raise ValueError(f"gemm: invalid argument (engine {engine})")
    opA = A.T if trans_a else A
    opB = B.T if trans_b else B
    if opA.shape[0] != C.shape[0] or opB.shape[1] != C.shape[1] or opA.shape[1] != opB.shape[0]:
        raise ValueError(f"gemm: op(A) {opA.shape} @ op(B) {opB.shape} does not make C {C.shape}")
    product = opA @ opB
    if bias is not None:
        product += bias  # the start value first, then the sum: rounding aside, as in C
    elif accumulate:
        product += C
    C[...] = product
    if deriv_of is not None:
        if act == SOFTMAX:
            raise ValueError("gemm: the derivative mask takes an element-wise activation, not softmax")
        act_backward(C, C, deriv_of, act, alpha, n_threads)
    elif act != SOFTMAX:
        activate_inplace(C, act, alpha)
