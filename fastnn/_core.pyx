# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The C backend: a thin layer that checks shapes, takes pointers, releases the GIL around each kernel of
csrc/ and turns its status code into an exception. The twin of every function is in fastnn/_py/.

Arrays are C-contiguous memoryviews of one dtype (float32 or float64) per call; Network does the argument
validation and conversion before it gets here.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t

from fastnn._core cimport *

import ctypes

import numpy as np

NAME = "c"


cdef int _check(int rc, str where) except -1:
    if rc == FASTNN_OK:
        return 0
    if rc == FASTNN_ENOMEM:
        raise MemoryError(f"{where}: out of memory")
    if rc == FASTNN_ESHAPE:
        raise ValueError(f"{where}: inconsistent or empty sizes")
    raise ValueError(f"{where}: invalid argument (status {rc})")


cdef int _same(str where, str what, Py_ssize_t got, Py_ssize_t want) except -1:
    if got != want:
        raise ValueError(f"{where}: {what} is {got}, expected {want}")
    return 0


cdef bint _is_float32(array) except -1:
    cdef str fmt = memoryview(array).format
    if fmt == "f":
        return True
    if fmt == "d":
        return False
    raise TypeError(f"expected a float32 or float64 array, got format {fmt!r}")


def set_blas(sgemm, dgemm, bint split=False):
    """Use these sgemm/dgemm capsules (from scipy.linalg.cython_blas.__pyx_capi__) for large products, or none
    when both are None. The capsules' C signature must take int (LP64) dimensions; fastnn/_blas.py checks that
    and runs a self-test before keeping them. split: the BLAS is single-threaded, so fastnn splits each product
    over its own OpenMP threads."""
    cdef const char *sname
    cdef const char *dname
    if sgemm is None and dgemm is None:
        fastnn_set_blas(NULL, NULL, 0)
        return
    sname = PyCapsule_GetName(sgemm)
    dname = PyCapsule_GetName(dgemm)
    if sname == NULL or dname == NULL:
        raise TypeError("set_blas: the gemm capsules have no signature")
    for text in ((<bytes>sname).decode(), (<bytes>dname).decode()):
        # LP64 only: an ILP64 SciPy would pass 64-bit integers where the kernels give int
        if not text.startswith("void (char *, char *, int *, int *, int *,"):
            raise TypeError(f"set_blas: unexpected gemm signature {text!r}")
    fastnn_set_blas(<fastnn_sgemm_fn>PyCapsule_GetPointer(sgemm, sname),
                    <fastnn_dgemm_fn>PyCapsule_GetPointer(dgemm, dname), split)


def set_blas_addresses(size_t sgemm, size_t dgemm, bint split=False):
    """Use the Fortran sgemm/dgemm at these raw addresses (a library loaded with ctypes, e.g. MKL's sgemm_) for
    large products, or none when both are 0. Nothing here can check the signature: the caller guarantees LP64 int
    dimensions and runs a self-test before keeping them (fastnn/_blas.py). split: as for set_blas."""
    if sgemm == 0 and dgemm == 0:
        fastnn_set_blas(NULL, NULL, 0)
        return
    if sgemm == 0 or dgemm == 0:
        raise ValueError("set_blas_addresses: give both gemm addresses, or neither")
    fastnn_set_blas(<fastnn_sgemm_fn><void *>sgemm, <fastnn_dgemm_fn><void *>dgemm, split)


def blas_enabled():
    """True when large products go to the BLAS installed by set_blas."""
    return bool(fastnn_have_blas())


def gemm_isa(best=False):
    """The instruction set of the own matrix-product kernels in use (or, with best=True, the best this CPU and
    build can run): a FASTNN_ISA_* code, see fastnn._codes.ISA."""
    return fastnn_gemm_best_isa() if best else fastnn_gemm_isa()


def set_gemm_isa(int isa):
    """Run the own kernels with another instruction set (one this CPU has): for tests and measurements."""
    _check(fastnn_gemm_set_isa(isa), f"set_gemm_isa: this CPU or build cannot run instruction set {isa}")


def gemm_reserve(int n_slots):
    """Packing space for n_slots threads of own-kernel products at once."""
    _check(fastnn_gemm_reserve(n_slots), "gemm_reserve")


def gemm_record(bint is_f64, bint trans_a, bint trans_b, int64_t m, int64_t n, int64_t k, int engine):
    """Record the engine for products of this shape (on any number of threads)."""
    _check(fastnn_gemm_record(is_f64, trans_a, trans_b, m, n, k, engine), "gemm_record")


def gemm_choose(bint is_f64, bint trans_a, bint trans_b, int64_t m, int64_t n, int64_t k):
    """The engine an automatic product of this shape runs on."""
    return fastnn_gemm_choose(is_f64, trans_a, trans_b, m, n, k)


def gemm_recorded(bint is_f64, bint trans_a, bint trans_b, int64_t m, int64_t n, int64_t k):
    """The engine recorded for this shape, or 0 (auto) when none was."""
    return fastnn_gemm_recorded(is_f64, trans_a, trans_b, m, n, k)


def gemm_forget():
    """Empty the table of recorded engines."""
    fastnn_gemm_forget()


def gemm_force(int engine):
    """Run every automatic product on one engine (0: back to the table)."""
    _check(fastnn_gemm_force(engine), "gemm_force")


def gemm(int engine, bint trans_a, bint trans_b, A, B, C, bint accumulate=False, bias=None, int act=0,
         double alpha=0.0, int n_threads=1, deriv_of=None):
    """C = init + op(A) @ op(B), then act, in place: op(A) = A.T when trans_a, op(B) = B.T when trans_b; init is
    bias (one row) when given, else C when accumulate, else zeros. With deriv_of (shaped like C), C is multiplied
    by act's derivative there instead (the layer below's activations)."""
    cdef bint f32 = _is_float32(C)
    if f32:
        return _gemm[float](engine, trans_a, trans_b, A, B, C, accumulate, bias, act, alpha, n_threads, deriv_of)
    return _gemm[double](engine, trans_a, trans_b, A, B, C, accumulate, bias, act, alpha, n_threads, deriv_of)


cdef int _gemm(int engine, bint trans_a, bint trans_b, const floating[:, ::1] A, const floating[:, ::1] B,
               floating[:, ::1] C, bint accumulate, bias, int act, double alpha, int n_threads,
               deriv_of) except -1:
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef const floating[::1] b
    cdef const floating *pb = NULL
    cdef const floating[:, ::1] a_below
    cdef fastnn_gemm_epilogue e
    cdef int rc
    e.deriv_of = NULL
    if deriv_of is not None:
        a_below = deriv_of
        _same("gemm", "rows of deriv_of", a_below.shape[0], m)
        _same("gemm", "columns of deriv_of", a_below.shape[1], n)
        if m > 0 and n > 0:
            e.deriv_of = &a_below[0, 0]
    _same("gemm", "rows of op(A)", A.shape[1] if trans_a else A.shape[0], m)
    _same("gemm", "rows of op(B)", B.shape[1] if trans_b else B.shape[0], k)
    _same("gemm", "columns of op(B)", B.shape[0] if trans_b else B.shape[1], n)
    if bias is not None:
        b = bias
        _same("gemm", "bias length", b.shape[0], n)
        if n > 0:
            pb = &b[0]
    e.act = act
    e.alpha = alpha
    if m == 0 or n == 0:
        return 0
    with nogil:
        if floating is float:
            rc = fastnn_gemm_f32(engine, trans_a, trans_b, m, n, k, &A[0, 0] if A.shape[0] * A.shape[1] else NULL,
                                 &B[0, 0] if B.shape[0] * B.shape[1] else NULL, accumulate, &C[0, 0], pb, &e,
                                 n_threads)
        else:
            rc = fastnn_gemm_f64(engine, trans_a, trans_b, m, n, k, &A[0, 0] if A.shape[0] * A.shape[1] else NULL,
                                 &B[0, 0] if B.shape[0] * B.shape[1] else NULL, accumulate, &C[0, 0], pb, &e,
                                 n_threads)
    return _check(rc, "gemm")


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(fastnn_openmp_enabled())


def max_threads():
    """omp_get_max_threads(): the default thread count (follows OMP_NUM_THREADS); 1 without OpenMP."""
    return fastnn_max_threads()


def all_finite(const floating[::1] x, int n_threads):
    """True when x holds no NaN and no infinity."""
    cdef int rc, finite = 1
    if x.shape[0] == 0:
        return True
    with nogil:
        if floating is float:
            rc = fastnn_all_finite_f32(&finite, &x[0], x.shape[0], n_threads)
        else:
            rc = fastnn_all_finite_f64(&finite, &x[0], x.shape[0], n_threads)
    _check(rc, "all_finite")
    return bool(finite)


def clip_grad_norm(floating[::1] grads, double max_norm, int n_threads):
    """Scale grads in place to global 2-norm max_norm when it is larger (torch.nn.utils.clip_grad_norm_);
    returns whether it did."""
    cdef int rc, clipped = 0
    with nogil:
        if floating is float:
            rc = fastnn_clip_grad_norm_f32(&clipped, &grads[0] if grads.shape[0] else NULL, grads.shape[0],
                                           max_norm, n_threads)
        else:
            rc = fastnn_clip_grad_norm_f64(&clipped, &grads[0] if grads.shape[0] else NULL, grads.shape[0],
                                           max_norm, n_threads)
    _check(rc, "clip_grad_norm")
    return bool(clipped)


def dense_forward(floating[:, ::1] y, const floating[:, ::1] x, const floating[:, ::1] W,
                  const floating[::1] b, int act, double alpha, int n_threads):
    """y = act(x @ W + b) for a batch x of shape (n, d_in); W is (d_in, d_out), y is (n, d_out)."""
    cdef int64_t n = x.shape[0], d_in = W.shape[0], d_out = W.shape[1]
    cdef int rc
    _same("dense_forward", "x.shape[1]", x.shape[1], d_in)
    _same("dense_forward", "y.shape[0]", y.shape[0], n)
    _same("dense_forward", "y.shape[1]", y.shape[1], d_out)
    _same("dense_forward", "b.shape[0]", b.shape[0], d_out)
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_dense_forward_f32(&y[0, 0], &x[0, 0], &W[0, 0], &b[0], n, d_in, d_out, act, alpha,
                                          n_threads)
        else:
            rc = fastnn_dense_forward_f64(&y[0, 0], &x[0, 0], &W[0, 0], &b[0], n, d_in, d_out, act, alpha,
                                          n_threads)
    _check(rc, "dense_forward")


def dense_forward_single(floating[::1] y, const floating[::1] x, const floating[:, ::1] W,
                         const floating[::1] b, int act, double alpha):
    """y = act(x @ W + b) for one sample x of shape (d_in,): the matrix-vector path, never threaded."""
    cdef int64_t d_in = W.shape[0], d_out = W.shape[1]
    cdef int rc
    _same("dense_forward_single", "x.shape[0]", x.shape[0], d_in)
    _same("dense_forward_single", "y.shape[0]", y.shape[0], d_out)
    _same("dense_forward_single", "b.shape[0]", b.shape[0], d_out)
    with nogil:
        if floating is float:
            rc = fastnn_dense_forward_single_f32(&y[0], &x[0], &W[0, 0], &b[0], d_in, d_out, act, alpha)
        else:
            rc = fastnn_dense_forward_single_f64(&y[0], &x[0], &W[0, 0], &b[0], d_in, d_out, act, alpha)
    _check(rc, "dense_forward_single")


def act_forward(floating[:, ::1] a, int act, double alpha, int n_threads):
    """a <- act(a) in place (softmax normalises each row)."""
    cdef int64_t n = a.shape[0], d = a.shape[1]
    cdef int rc
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_act_forward_f32(&a[0, 0], n, d, act, alpha, n_threads)
        else:
            rc = fastnn_act_forward_f64(&a[0, 0], n, d, act, alpha, n_threads)
    _check(rc, "act_forward")


def act_backward(floating[:, ::1] dz, const floating[:, ::1] da, const floating[:, ::1] a, int act,
                 double alpha, int n_threads):
    """dz = da * act'(z), the derivative taken from the activation's output a. dz may be da."""
    cdef int64_t n = a.shape[0], d = a.shape[1]
    cdef int rc
    _same("act_backward", "da.shape[0]", da.shape[0], n)
    _same("act_backward", "da.shape[1]", da.shape[1], d)
    _same("act_backward", "dz.shape[0]", dz.shape[0], n)
    _same("act_backward", "dz.shape[1]", dz.shape[1], d)
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_act_backward_f32(&dz[0, 0], &da[0, 0], &a[0, 0], n, d, act, alpha, n_threads)
        else:
            rc = fastnn_act_backward_f64(&dz[0, 0], &da[0, 0], &a[0, 0], n, d, act, alpha, n_threads)
    _check(rc, "act_backward")


def loss(grad, out, target, int loss_kind, int n_threads, weights=None):
    """Mean loss of out against target; if grad is not None it receives d(mean loss)/d(out). For the fused
    losses (cross_entropy, binary_cross_entropy) out holds logits and grad is taken w.r.t. them. weights (n),
    if given, multiplies each sample's loss."""
    # grad may be None, so the dtype is picked from `out` (Cython's fused dispatch would look at grad first)
    if _is_float32(out):
        return _loss[float](grad, out, target, weights, loss_kind, n_threads)
    return _loss[double](grad, out, target, weights, loss_kind, n_threads)


cdef double _loss(floating[:, ::1] grad, const floating[:, ::1] out, const floating[:, ::1] target,
                  const floating[::1] weights, int loss_kind, int n_threads) except? -1:
    cdef int64_t n = out.shape[0], d = out.shape[1]
    cdef double value = 0.0
    cdef int rc
    cdef floating *grad_ptr = NULL
    cdef const floating *w_ptr = NULL
    _same("loss", "target.shape[0]", target.shape[0], n)
    if weights is not None:
        _same("loss", "weights.shape[0]", weights.shape[0], n)
        if n > 0:
            w_ptr = &weights[0]
    _same("loss", "target.shape[1]", target.shape[1], d)
    if grad is not None:
        _same("loss", "grad.shape[0]", grad.shape[0], n)
        _same("loss", "grad.shape[1]", grad.shape[1], d)
        if n > 0:
            grad_ptr = &grad[0, 0]
    if n == 0:
        raise ValueError("loss: empty batch")
    with nogil:
        if floating is float:
            rc = fastnn_loss_f32(&value, grad_ptr, &out[0, 0], &target[0, 0], w_ptr, n, d, loss_kind, n_threads)
        else:
            rc = fastnn_loss_f64(&value, grad_ptr, &out[0, 0], &target[0, 0], w_ptr, n, d, loss_kind, n_threads)
    _check(rc, "loss")
    return value


def distill_loss(grad, out, target, teacher, double temperature, double alpha, int n_threads, weights=None):
    """Distillation loss of a softmax output (see fastnn_distill_loss): the mean over samples of (1 - alpha)
    cross-entropy(out, target) + alpha T^2 KL(softmax(teacher / T) || softmax(out / T)), out and teacher logits;
    if grad is not None it receives the gradient w.r.t. out. weights (n), if given, multiplies each sample's
    loss."""
    if _is_float32(out):
        return _distill_loss[float](grad, out, target, teacher, weights, temperature, alpha, n_threads)
    return _distill_loss[double](grad, out, target, teacher, weights, temperature, alpha, n_threads)


cdef double _distill_loss(floating[:, ::1] grad, const floating[:, ::1] out, const floating[:, ::1] target,
                          const floating[:, ::1] teacher, const floating[::1] weights, double temperature,
                          double alpha, int n_threads) except? -1:
    cdef int64_t n = out.shape[0], d = out.shape[1]
    cdef double value = 0.0
    cdef int rc
    cdef floating *grad_ptr = NULL
    cdef const floating *w_ptr = NULL
    _same("distill_loss", "target.shape[0]", target.shape[0], n)
    _same("distill_loss", "target.shape[1]", target.shape[1], d)
    _same("distill_loss", "teacher.shape[0]", teacher.shape[0], n)
    _same("distill_loss", "teacher.shape[1]", teacher.shape[1], d)
    if weights is not None:
        _same("distill_loss", "weights.shape[0]", weights.shape[0], n)
        if n > 0:
            w_ptr = &weights[0]
    if grad is not None:
        _same("distill_loss", "grad.shape[0]", grad.shape[0], n)
        _same("distill_loss", "grad.shape[1]", grad.shape[1], d)
        if n > 0:
            grad_ptr = &grad[0, 0]
    if n == 0:
        raise ValueError("distill_loss: empty batch")
    if not (temperature > 0 and temperature < float("inf")) or not 0 <= alpha <= 1:
        raise ValueError(f"distill_loss: temperature must be > 0 and alpha in [0, 1], got {temperature}, {alpha}")
    with nogil:
        if floating is float:
            rc = fastnn_distill_loss_f32(&value, grad_ptr, &out[0, 0], &target[0, 0], &teacher[0, 0], w_ptr, n,
                                         d, temperature, alpha, n_threads)
        else:
            rc = fastnn_distill_loss_f64(&value, grad_ptr, &out[0, 0], &target[0, 0], &teacher[0, 0], w_ptr, n,
                                         d, temperature, alpha, n_threads)
    _check(rc, "distill_loss")
    return value


def dense_backward(dx, dW, db, dz, x, W, int n_threads):
    """dW = x^T dz, db = sum of dz over samples and, unless dx is None, dx = dz W^T (all overwritten)."""
    # dx may be None, so the dtype is picked from dW
    if _is_float32(dW):
        _dense_backward[float](dx, dW, db, dz, x, W, n_threads)
    else:
        _dense_backward[double](dx, dW, db, dz, x, W, n_threads)


cdef int _dense_backward(floating[:, ::1] dx, floating[:, ::1] dW, floating[::1] db, const floating[:, ::1] dz,
                         const floating[:, ::1] x, const floating[:, ::1] W, int n_threads) except -1:
    cdef int64_t n = x.shape[0], d_in = W.shape[0], d_out = W.shape[1]
    cdef int rc
    cdef floating *dx_ptr = NULL
    _same("dense_backward", "x.shape[1]", x.shape[1], d_in)
    _same("dense_backward", "dz.shape[0]", dz.shape[0], n)
    _same("dense_backward", "dz.shape[1]", dz.shape[1], d_out)
    _same("dense_backward", "dW.shape[0]", dW.shape[0], d_in)
    _same("dense_backward", "dW.shape[1]", dW.shape[1], d_out)
    _same("dense_backward", "db.shape[0]", db.shape[0], d_out)
    if n == 0:
        raise ValueError("dense_backward: empty batch")
    if dx is not None:
        _same("dense_backward", "dx.shape[0]", dx.shape[0], n)
        _same("dense_backward", "dx.shape[1]", dx.shape[1], d_in)
        dx_ptr = &dx[0, 0]
    with nogil:
        if floating is float:
            rc = fastnn_dense_backward_f32(dx_ptr, &dW[0, 0], &db[0], &dz[0, 0], &x[0, 0], &W[0, 0], n, d_in,
                                           d_out, n_threads)
        else:
            rc = fastnn_dense_backward_f64(dx_ptr, &dW[0, 0], &db[0], &dz[0, 0], &x[0, 0], &W[0, 0], n, d_in,
                                           d_out, n_threads)
    _check(rc, "dense_backward")
    return 0


def sgd_step(floating[::1] params, const floating[::1] grads, floating[::1] velocity, Py_ssize_t n_decay,
             double lr, double momentum, bint nesterov, double weight_decay, int n_threads):
    """One SGD update of the flat parameter buffer (momentum and nesterov as in PyTorch); velocity may be None
    when momentum is 0. The first n_decay parameters (the weights) get L2 weight decay."""
    cdef int64_t n = params.shape[0]
    cdef int rc
    cdef floating *vel_ptr = NULL
    _same("sgd_step", "grads.shape[0]", grads.shape[0], n)
    if velocity is not None:
        _same("sgd_step", "velocity.shape[0]", velocity.shape[0], n)
        if n > 0:
            vel_ptr = &velocity[0]
    elif momentum != 0:
        raise ValueError("sgd_step: momentum needs a velocity buffer")
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_sgd_step_f32(&params[0], &grads[0], vel_ptr, n, n_decay, lr, momentum, nesterov,
                                     weight_decay, n_threads)
        else:
            rc = fastnn_sgd_step_f64(&params[0], &grads[0], vel_ptr, n, n_decay, lr, momentum, nesterov,
                                     weight_decay, n_threads)
    _check(rc, "sgd_step")


def adam_step(floating[::1] params, const floating[::1] grads, floating[::1] m, floating[::1] v,
              Py_ssize_t n_decay, double lr, double beta1, double beta2, double eps, double weight_decay,
              Py_ssize_t t, int n_threads, int eps_placement=0):
    """One Adam update (step t >= 1) of the flat parameter buffer, L2 weight decay on the first n_decay.
    eps_placement: 0 adds eps to sqrt(vhat) (corrected), 1 to sqrt(v) (uncorrected, scikit-learn's)."""
    cdef int64_t n = params.shape[0]
    cdef int rc
    _same("adam_step", "grads.shape[0]", grads.shape[0], n)
    _same("adam_step", "m.shape[0]", m.shape[0], n)
    _same("adam_step", "v.shape[0]", v.shape[0], n)
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_adam_step_f32(&params[0], &grads[0], &m[0], &v[0], n, n_decay, lr, beta1, beta2, eps,
                                      weight_decay, t, eps_placement, n_threads)
        else:
            rc = fastnn_adam_step_f64(&params[0], &grads[0], &m[0], &v[0], n, n_decay, lr, beta1, beta2, eps,
                                      weight_decay, t, eps_placement, n_threads)
    _check(rc, "adam_step")


def adamw_step(floating[::1] params, const floating[::1] grads, floating[::1] m, floating[::1] v,
               Py_ssize_t n_decay, double lr, double beta1, double beta2, double eps, double weight_decay,
               Py_ssize_t t, int n_threads, int eps_placement=0):
    """One AdamW update (decoupled weight decay on the first n_decay parameters)."""
    cdef int64_t n = params.shape[0]
    cdef int rc
    _same("adamw_step", "grads.shape[0]", grads.shape[0], n)
    _same("adamw_step", "m.shape[0]", m.shape[0], n)
    _same("adamw_step", "v.shape[0]", v.shape[0], n)
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_adamw_step_f32(&params[0], &grads[0], &m[0], &v[0], n, n_decay, lr, beta1, beta2, eps,
                                       weight_decay, t, eps_placement, n_threads)
        else:
            rc = fastnn_adamw_step_f64(&params[0], &grads[0], &m[0], &v[0], n, n_decay, lr, beta1, beta2, eps,
                                       weight_decay, t, eps_placement, n_threads)
    _check(rc, "adamw_step")


def rmsprop_step(floating[::1] params, const floating[::1] grads, floating[::1] sq, Py_ssize_t n_decay,
                 double lr, double rho, double eps, double weight_decay, int n_threads):
    """One RMSprop update of the flat parameter buffer."""
    cdef int64_t n = params.shape[0]
    cdef int rc
    _same("rmsprop_step", "grads.shape[0]", grads.shape[0], n)
    _same("rmsprop_step", "sq.shape[0]", sq.shape[0], n)
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_rmsprop_step_f32(&params[0], &grads[0], &sq[0], n, n_decay, lr, rho, eps, weight_decay,
                                         n_threads)
        else:
            rc = fastnn_rmsprop_step_f64(&params[0], &grads[0], &sq[0], n, n_decay, lr, rho, eps, weight_decay,
                                         n_threads)
    _check(rc, "rmsprop_step")


def irprop_minus_step(floating[::1] params, const floating[::1] grads, floating[::1] prev, floating[::1] steps,
                      Py_ssize_t n_decay, double eta_plus, double eta_minus, double step_min, double step_max,
                      double weight_decay, int n_threads):
    """One iRPROP- update of the flat parameter buffer (prev: previous gradients, steps: step sizes)."""
    cdef int64_t n = params.shape[0]
    cdef int rc
    _same("irprop_minus_step", "grads.shape[0]", grads.shape[0], n)
    _same("irprop_minus_step", "prev.shape[0]", prev.shape[0], n)
    _same("irprop_minus_step", "steps.shape[0]", steps.shape[0], n)
    if n == 0:
        return
    with nogil:
        if floating is float:
            rc = fastnn_irprop_minus_step_f32(&params[0], &grads[0], &prev[0], &steps[0], n, n_decay, eta_plus,
                                              eta_minus, step_min, step_max, weight_decay, n_threads)
        else:
            rc = fastnn_irprop_minus_step_f64(&params[0], &grads[0], &prev[0], &steps[0], n, n_decay, eta_plus,
                                              eta_minus, step_min, step_max, weight_decay, n_threads)
    _check(rc, "irprop_minus_step")


# ----------------------------------------------------------------------------------- conv, pool, dropout kernels
# These take NumPy arrays (checked by _data) rather than fused memoryviews: several arguments may be None, and
# the window geometry decides the sizes, which _data checks against it.

cdef size_t _pointer(arr) except 0:
    """The data address of a C-contiguous array, through the buffer protocol (a fifth of the cost of
    __array_interface__, which builds a dict: it counted on a single-image predict)."""
    cdef Py_buffer view
    cdef size_t address
    PyObject_GetBuffer(arr, &view, PyBUF_SIMPLE)
    address = <size_t>view.buf
    PyBuffer_Release(&view)
    return address


cdef size_t _data(arr, dtype, Py_ssize_t min_rows, Py_ssize_t cols, str what, bint writable=True) except 0:
    """The address of a 2-D C-contiguous array of this dtype with `cols` columns and at least min_rows rows."""
    if arr is None:
        raise ValueError(f"{what} is required")
    if arr.dtype != dtype or arr.ndim != 2 or not arr.flags.c_contiguous or (writable and not arr.flags.writeable):
        raise ValueError(f"{what} must be a {'writable ' if writable else ''}C-contiguous 2-D {dtype} array, got "
                         f"{arr.dtype} of shape {arr.shape}")
    if arr.shape[1] != cols or arr.shape[0] < min_rows:
        raise ValueError(f"{what} has shape {arr.shape}, expected ({min_rows} or more, {cols})")
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    return _pointer(arr)


cdef int _window(fastnn_window *g, win) except -1:
    if len(win) != 12:
        raise ValueError(f"a window is 12 ints (in_c, in_h, in_w, out_c, out_h, out_w, kh, kw, sh, sw, pad_h, "
                         f"pad_w), got {win!r}")
    (g.in_c, g.in_h, g.in_w, g.out_c, g.out_h, g.out_w, g.kh, g.kw, g.sh, g.sw, g.pad_h, g.pad_w) = win
    return 0


cdef class _Batch:
    """The dtype and sizes of one conv/pool call, from the input x (n, in_size)."""
    cdef object dtype
    cdef bint f32
    cdef fastnn_window g
    cdef Py_ssize_t n, in_size, out_size, positions, k

    def __init__(self, x, win):
        _window(&self.g, win)
        self.dtype = x.dtype
        if self.dtype.name not in ("float32", "float64"):
            raise TypeError(f"expected float32 or float64 arrays, got {self.dtype}")
        self.f32 = self.dtype.name == "float32"
        self.n = x.shape[0]
        self.in_size = self.g.in_c * self.g.in_h * self.g.in_w
        self.out_size = self.g.out_c * self.g.out_h * self.g.out_w
        self.positions = self.g.out_h * self.g.out_w
        self.k = self.g.in_c * self.g.kh * self.g.kw


def im2col(cols, x, win, int n_threads):
    """cols (K, n*P) = the window under each output position of x (n, C*H*W), one row per weight (c, i, j);
    zeros where it meets padding."""
    cdef _Batch B = _Batch(x, win)
    cdef size_t px = _data(x, B.dtype, B.n, B.in_size, "im2col: x", False)
    cdef size_t pc = _data(cols, B.dtype, B.k, B.n * B.positions, "im2col: cols")
    cdef int rc
    with nogil:
        if B.f32:
            rc = fastnn_im2col_f32(<float *>pc, <const float *>px, B.n, &B.g, n_threads)
        else:
            rc = fastnn_im2col_f64(<double *>pc, <const double *>px, B.n, &B.g, n_threads)
    _check(rc, "im2col")


def col2im(dx, cols, win, int n_threads):
    """dx (n, C*H*W) = every column entry summed into the pixel it was read from (overwritten)."""
    cdef _Batch B = _Batch(dx, win)
    cdef size_t pd = _data(dx, B.dtype, B.n, B.in_size, "col2im: dx")
    cdef size_t pc = _data(cols, B.dtype, B.k, B.n * B.positions, "col2im: cols", False)
    cdef int rc
    with nogil:
        if B.f32:
            rc = fastnn_col2im_f32(<float *>pd, <const float *>pc, B.n, &B.g, n_threads)
        else:
            rc = fastnn_col2im_f64(<double *>pd, <const double *>pc, B.n, &B.g, n_threads)
    _check(rc, "col2im")


def conv2d_forward(y, cols, x, W, b, win, int act, double alpha, int n_threads):
    """y (n, out_c*P) = act(conv(x, W) + b); W (out_c, K); cols (K, n*P): the workspace."""
    cdef _Batch B = _Batch(x, win)
    cdef size_t px = _data(x, B.dtype, B.n, B.in_size, "conv2d_forward: x", False)
    cdef size_t py = _data(y, B.dtype, B.n, B.out_size, "conv2d_forward: y")
    cdef size_t pc = _data(cols, B.dtype, B.k, B.n * B.positions, "conv2d_forward: cols")
    cdef size_t pw = _data(W, B.dtype, B.g.out_c, B.k, "conv2d_forward: W", False)
    cdef size_t pb = _data(b.reshape(1, -1), B.dtype, 1, B.g.out_c, "conv2d_forward: b", False)
    cdef int rc
    if y.shape[0] != B.n:
        raise ValueError(f"conv2d_forward: y has {y.shape[0]} rows, x has {B.n}")
    with nogil:
        if B.f32:
            rc = fastnn_conv2d_forward_f32(<float *>py, <float *>pc, <const float *>px,
                                           <const float *>pw, <const float *>pb, B.n, &B.g, act, alpha, n_threads)
        else:
            rc = fastnn_conv2d_forward_f64(<double *>py, <double *>pc, <const double *>px,
                                           <const double *>pw, <const double *>pb, B.n, &B.g, act, alpha,
                                           n_threads)
    _check(rc, "conv2d_forward")


def conv2d_backward(dx, dW, db, cols, dz, x, W, win, int n_threads):
    """From dz (n, out_c*P), the layer input x and the forward's workspace: dW (out_c, K) = dz cols^T, db = sums
    of dz and, unless dx is None, dx = col2im(W^T dz) (cols is overwritten)."""
    cdef _Batch B = _Batch(dz, win)
    cdef size_t px = _data(x, B.dtype, B.n, B.in_size, "conv2d_backward: x", False)
    cdef size_t pz = _data(dz, B.dtype, B.n, B.out_size, "conv2d_backward: dz", False)
    cdef size_t pdw = _data(dW, B.dtype, B.g.out_c, B.k, "conv2d_backward: dW")
    cdef size_t pdb = _data(db.reshape(1, -1), B.dtype, 1, B.g.out_c, "conv2d_backward: db")
    cdef size_t pc = _data(cols, B.dtype, B.k, B.n * B.positions, "conv2d_backward: cols")
    cdef size_t pw = _data(W, B.dtype, B.g.out_c, B.k, "conv2d_backward: W", False)
    cdef size_t pdx = 0
    cdef int rc
    if dW.shape[0] != B.g.out_c or B.n == 0:
        raise ValueError("conv2d_backward: dW must be (out_c, K) and the batch non-empty")
    if dx is not None:
        pdx = _data(dx, B.dtype, B.n, B.in_size, "conv2d_backward: dx")
    with nogil:
        if B.f32:
            rc = fastnn_conv2d_backward_f32(<float *>pdx, <float *>pdw, <float *>pdb, <float *>pc,
                                            <const float *>pz, <const float *>px, <const float *>pw, B.n, &B.g,
                                            n_threads)
        else:
            rc = fastnn_conv2d_backward_f64(<double *>pdx, <double *>pdw, <double *>pdb, <double *>pc,
                                            <const double *>pz, <const double *>px,
                                            <const double *>pw, B.n, &B.g, n_threads)
    _check(rc, "conv2d_backward")


cdef size_t _index_data(arr, Py_ssize_t min_rows, Py_ssize_t cols, str what) except 0:
    if arr.dtype.name != "int32" or arr.ndim != 2 or not arr.flags.c_contiguous or not arr.flags.writeable or \
            arr.shape[1] != cols or arr.shape[0] < min_rows or arr.size == 0:
        raise ValueError(f"{what} must be a writable C-contiguous int32 array of ({min_rows} or more, {cols}), got "
                         f"{arr.dtype} {arr.shape}")
    return _pointer(arr)


def maxpool2d_forward(y, argmax, x, win, int n_threads):
    """y (n, c*out_h*out_w) = window maxima of x; argmax (int32, same shape), unless None, their plane indices."""
    cdef _Batch B = _Batch(x, win)
    cdef size_t px = _data(x, B.dtype, B.n, B.in_size, "maxpool2d_forward: x", False)
    cdef size_t py = _data(y, B.dtype, B.n, B.out_size, "maxpool2d_forward: y")
    cdef size_t pa = 0
    cdef int rc
    if argmax is not None:
        pa = _index_data(argmax, B.n, B.out_size, "maxpool2d_forward: argmax")
    with nogil:
        if B.f32:
            rc = fastnn_maxpool2d_forward_f32(<float *>py, <int32_t *>pa, <const float *>px, B.n, &B.g, n_threads)
        else:
            rc = fastnn_maxpool2d_forward_f64(<double *>py, <int32_t *>pa, <const double *>px, B.n, &B.g,
                                              n_threads)
    _check(rc, "maxpool2d_forward")


def maxpool2d_backward(dx, dy, argmax, win, int n_threads):
    """dx = dy scattered to the maxima argmax points at (overwritten)."""
    cdef _Batch B = _Batch(dy, win)
    cdef size_t py = _data(dy, B.dtype, B.n, B.out_size, "maxpool2d_backward: dy", False)
    cdef size_t pd = _data(dx, B.dtype, B.n, B.in_size, "maxpool2d_backward: dx")
    cdef size_t pa = _index_data(argmax, B.n, B.out_size, "maxpool2d_backward: argmax")
    cdef int rc
    with nogil:
        if B.f32:
            rc = fastnn_maxpool2d_backward_f32(<float *>pd, <const float *>py, <const int32_t *>pa, B.n, &B.g,
                                               n_threads)
        else:
            rc = fastnn_maxpool2d_backward_f64(<double *>pd, <const double *>py, <const int32_t *>pa, B.n, &B.g,
                                               n_threads)
    _check(rc, "maxpool2d_backward")


def avgpool2d_forward(y, x, win, int n_threads):
    """y = window means of x."""
    cdef _Batch B = _Batch(x, win)
    cdef size_t px = _data(x, B.dtype, B.n, B.in_size, "avgpool2d_forward: x", False)
    cdef size_t py = _data(y, B.dtype, B.n, B.out_size, "avgpool2d_forward: y")
    cdef int rc
    with nogil:
        if B.f32:
            rc = fastnn_avgpool2d_forward_f32(<float *>py, <const float *>px, B.n, &B.g, n_threads)
        else:
            rc = fastnn_avgpool2d_forward_f64(<double *>py, <const double *>px, B.n, &B.g, n_threads)
    _check(rc, "avgpool2d_forward")


def avgpool2d_backward(dx, dy, win, int n_threads):
    """dx = dy / (kh * kw) spread over each window (overwritten)."""
    cdef _Batch B = _Batch(dy, win)
    cdef size_t py = _data(dy, B.dtype, B.n, B.out_size, "avgpool2d_backward: dy", False)
    cdef size_t pd = _data(dx, B.dtype, B.n, B.in_size, "avgpool2d_backward: dx")
    cdef int rc
    with nogil:
        if B.f32:
            rc = fastnn_avgpool2d_backward_f32(<float *>pd, <const float *>py, B.n, &B.g, n_threads)
        else:
            rc = fastnn_avgpool2d_backward_f64(<double *>pd, <const double *>py, B.n, &B.g, n_threads)
    _check(rc, "avgpool2d_backward")


def dropout_forward(y, mask, x, double rate, uint64_t key, int n_threads):
    """mask = 1 / (1 - rate) where dropout_uniform(key, i) >= rate, else 0; y = x * mask (y may be x)."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1]
    cdef size_t px = _data(x, x.dtype, n, d, "dropout_forward: x", False)
    cdef size_t py = _data(y, x.dtype, n, d, "dropout_forward: y")
    cdef size_t pm = _data(mask, x.dtype, n, d, "dropout_forward: mask")
    cdef int rc
    cdef bint f32 = x.dtype.name == "float32"
    with nogil:
        if f32:
            rc = fastnn_dropout_forward_f32(<float *>py, <float *>pm, <const float *>px, n, d, rate, key, n_threads)
        else:
            rc = fastnn_dropout_forward_f64(<double *>py, <double *>pm, <const double *>px, n, d, rate, key,
                                            n_threads)
    _check(rc, "dropout_forward")


def dropout_backward(dx, dy, mask, int n_threads):
    """dx = dy * mask."""
    cdef Py_ssize_t n = dy.shape[0], d = dy.shape[1]
    cdef size_t py = _data(dy, dy.dtype, n, d, "dropout_backward: dy", False)
    cdef size_t pd = _data(dx, dy.dtype, n, d, "dropout_backward: dx")
    cdef size_t pm = _data(mask, dy.dtype, n, d, "dropout_backward: mask", False)
    cdef int rc
    cdef bint f32 = dy.dtype.name == "float32"
    with nogil:
        if f32:
            rc = fastnn_dropout_backward_f32(<float *>pd, <const float *>py, <const float *>pm, n, d, n_threads)
        else:
            rc = fastnn_dropout_backward_f64(<double *>pd, <const double *>py, <const double *>pm, n, d, n_threads)
    _check(rc, "dropout_backward")


def dropout_batch_key(uint64_t seed, int64_t b):
    """The dropout key of batch b of an epoch whose seed is `seed`."""
    return fastnn_dropout_batch_key(seed, b)


def dropout_layer_key(uint64_t key, int64_t layer):
    """The dropout key of layer `layer` under a pass's key."""
    return fastnn_dropout_layer_key(key, layer)


def dropout_uniform(uint64_t key, index):
    """The uniform numbers in [0, 1) of the elements `index` (ints) under `key`, as the C kernels draw them."""
    import numpy as np
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    out = np.empty(idx.shape[0], dtype=np.float64)
    cdef double[::1] o = out
    cdef const int64_t[::1] ii = idx
    cdef Py_ssize_t j
    for j in range(ii.shape[0]):
        o[j] = fastnn_dropout_uniform(key, ii[j])
    return out.reshape(np.shape(index))


# ----------------------------------------------------------------------------------------- whole-network kernels
from libc.stdlib cimport calloc, free


cdef void *_address(arr, dtype, tuple shape, str what) except NULL:
    """The data pointer of a C-contiguous, writable array of exactly this dtype and shape (checked)."""
    if arr is None:
        raise ValueError(f"NetHandle: {what} is missing")
    if arr.dtype != dtype or tuple(arr.shape) != shape or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"NetHandle: {what} must be a writable C-contiguous {dtype} array of shape {shape}, "
                         f"got {arr.dtype} {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"NetHandle: {what} is empty")
    return <void *>_pointer(arr)


LAYER_FIELDS = ("kind", "in_size", "out_size", "win", "act", "predict_act", "alpha", "rate", "W", "b", "dW", "db",
                "a", "delta", "cols", "argmax", "mask", "steps", "seq", "Wh", "bh", "dWh", "dbh", "states", "gates",
                "cells", "dgates", "carry", "state", "sparse")
_GATES = {0: 1, 1: 4, 2: 3}  # gate blocks of the simple, lstm and gru cells


cdef dict _parameter_shapes(fastnn_layer *L):
    """The shapes the kernels read each parameter array of this layer kind as."""
    cdef int64_t GU
    if L.kind == 0:  # dense, per step
        return {"W": (L.in_size // L.steps, L.out_size // L.steps), "b": (L.out_size // L.steps,)}
    if L.kind == 1:  # conv2d: (out_c, in_c kh kw)
        return {"W": (L.win.out_c, L.win.in_c * L.win.kh * L.win.kw), "b": (L.win.out_c,)}
    if L.kind == 6:  # embedding
        return {"W": (L.seq.features, L.seq.units)}
    if L.kind == 7:  # recurrent
        GU = _GATES.get(L.seq.cell, 1) * L.seq.units
        return {"W": (GU, L.seq.features), "Wh": (GU, L.seq.units), "b": (GU,), "bh": (GU,)}
    return {}


cdef dict _workspace_sizes(fastnn_layer *L):
    """Per-sample sizes of the workspaces of this layer kind."""
    cdef int64_t T = L.seq.steps, U = L.seq.units
    sizes = {"a": L.out_size, "delta": L.out_size, "mask": L.out_size, "argmax": L.out_size,
             "cols": L.win.out_h * L.win.out_w * L.win.in_c * L.win.kh * L.win.kw}
    if L.kind == 7:
        sizes.update(states=(T + 1) * U, gates=T * _GATES.get(L.seq.cell, 1) * U, cells=(T + 1) * U,
                     dgates=T * _GATES.get(L.seq.cell, 1) * U, carry=3 * U)
    return sizes


cdef class NetHandle:
    """A C view (fastnn_net) of a network's buffers, built once and reused by the whole-network kernels.

    layers: one dict per layer with the fields of fastnn_layer (LAYER_FIELDS; `win` the fastnn_window and `seq`
    the fastnn_sequence as tuples, or None); workspaces are (max_batch, per-sample size) arrays, or None for a
    handle that only predicts and evaluates. The handle keeps every array alive while it exists; the C code
    checks the table itself."""
    cdef fastnn_net net
    cdef readonly object dtype
    cdef readonly bint is_f32
    cdef readonly Py_ssize_t max_batch, d_in, d_out, widest
    cdef object _keep

    def __cinit__(self):
        self.net.layers = NULL

    def __init__(self, list layers, int loss_kind, params, grads, Py_ssize_t n_decay, x_batch, t_batch, w_batch,
                 Py_ssize_t max_batch, keep=None):
        cdef Py_ssize_t i
        cdef fastnn_layer *L
        self.dtype = params.dtype
        if self.dtype.name not in ("float32", "float64"):
            raise TypeError(f"NetHandle: dtype must be float32 or float64, got {self.dtype}")
        self.is_f32 = self.dtype.name == "float32"
        if not layers:
            raise ValueError("NetHandle: no layers")
        self._keep = ([dict(fields) for fields in layers], params, grads, x_batch, t_batch, w_batch, keep)
        self.net.loss_kind = loss_kind
        self.net.params = _address(params, self.dtype, (params.shape[0],), "params")
        self.net.grads = _address(grads, self.dtype, (params.shape[0],), "grads")
        self.net.n_params = params.shape[0]
        if not 0 <= n_decay <= params.shape[0]:
            raise ValueError("NetHandle: n_decay out of range")
        self.net.n_decay = n_decay
        self.net.keep = NULL
        if keep is not None:  # pruning: one uint8 flag per weight
            if keep.dtype.name != "uint8" or keep.shape != (n_decay,) or not keep.flags.c_contiguous or n_decay == 0:
                raise ValueError(f"NetHandle: keep must be a C-contiguous uint8 array of shape ({n_decay},)")
            self.net.keep = <const uint8_t *><size_t>_pointer(keep)
        self.max_batch = max_batch
        self.net.max_batch = max_batch
        self.net.layers = <fastnn_layer *>calloc(len(layers), sizeof(fastnn_layer))
        if self.net.layers == NULL:
            raise MemoryError()
        self.net.n_layers = len(layers)
        for i, fields in enumerate(layers):
            missing = set(LAYER_FIELDS) - set(fields)
            if missing:
                raise ValueError(f"NetHandle: layer {i} lacks {sorted(missing)}")
            L = &self.net.layers[i]
            L.kind = fields["kind"]
            L.in_size, L.out_size = fields["in_size"], fields["out_size"]
            L.steps = fields["steps"]
            if L.steps < 1 or L.in_size % L.steps or L.out_size % L.steps:
                raise ValueError(f"NetHandle: layer {i} steps {L.steps} do not divide its sizes")
            if fields["win"] is not None:
                _window(&L.win, fields["win"])
            if fields["seq"] is not None:
                (L.seq.cell, L.seq.act, L.seq.return_sequences, L.seq.steps, L.seq.features,
                 L.seq.units) = fields["seq"]
            L.act, L.predict_act = fields["act"], fields["predict_act"]
            L.alpha, L.rate = fields["alpha"], fields["rate"]
            for name, shape in _parameter_shapes(L).items():
                what = f"layer {i} {name}"
                if fields[name] is None:
                    raise ValueError(f"NetHandle: {what} is missing")
                p = _address(fields[name], self.dtype, shape, what)
                g = _address(fields["d" + name], self.dtype, shape, f"layer {i} d{name}")
                if name == "W":
                    L.W, L.dW = p, g
                elif name == "b":
                    L.b, L.db = p, g
                elif name == "Wh":
                    L.Wh, L.dWh = p, g
                else:
                    L.bh, L.dbh = p, g
            if fields["state"] is not None:
                state = fields["state"]
                size = (2 if L.seq.cell == 1 else 1) * L.seq.units
                if state.ndim != 2 or state.shape[0] < 1:
                    raise ValueError(f"NetHandle: layer {i} state must be (rows, {size})")
                L.state = _address(state, self.dtype, (state.shape[0], size), f"layer {i} state")
                L.state_rows = state.shape[0]
            sparse = fields["sparse"]
            if sparse is not None:  # (CSR of W^T, the largest batch to use it for), kept alive by self._keep
                if L.kind != 0 or L.steps != 1:
                    raise ValueError(f"NetHandle: layer {i} is not a dense layer on vectors; it cannot be sparse")
                _load_csr(&L.sparse, sparse[0], self.dtype, L.in_size, f"NetHandle: layer {i} sparse")
                if sparse[0].shape[0] != L.out_size:
                    raise ValueError(f"NetHandle: layer {i} sparse has {sparse[0].shape[0]} rows, not {L.out_size}")
                L.sparse_rows = sparse[1]
            if max_batch:
                sizes = _workspace_sizes(L)
                for name in ("a", "delta", "cols", "mask", "states", "gates", "cells", "dgates", "carry"):
                    if fields[name] is None:
                        continue
                    p = _address(fields[name], self.dtype, (max_batch, sizes[name]), f"layer {i} {name}")
                    if name == "a":
                        L.a = p
                    elif name == "delta":
                        L.delta = p
                    elif name == "cols":
                        L.cols = p
                    elif name == "mask":
                        L.mask = p
                    elif name == "states":
                        L.states = p
                    elif name == "gates":
                        L.gates = p
                    elif name == "cells":
                        L.cells = p
                    elif name == "dgates":
                        L.dgates = p
                    else:
                        L.carry = p
                if fields["argmax"] is not None:
                    if fields["argmax"].dtype.name != "int32":
                        raise ValueError(f"NetHandle: layer {i} argmax must be int32")
                    L.argmax = <int32_t *>_address(fields["argmax"], fields["argmax"].dtype,
                                                   (max_batch, sizes["argmax"]), f"layer {i} argmax")
        self.d_in = self.net.layers[0].in_size
        self.d_out = self.net.layers[self.net.n_layers - 1].out_size
        self.widest = max(fields["out_size"] for fields in layers)
        if max_batch:
            self.net.x_batch = _address(x_batch, self.dtype, (max_batch, self.d_in), "x_batch")
            self.net.t_batch = _address(t_batch, self.dtype, (max_batch, self.d_out), "t_batch")
            if w_batch is not None:
                self.net.w_batch = _address(w_batch, self.dtype, (max_batch,), "w_batch")

    def __dealloc__(self):
        free(self.net.layers)


cdef int _load_optimizer(fastnn_optimizer *opt, state, NetHandle h) except -1:
    opt.kind = state.kind
    opt.lr, opt.momentum, opt.nesterov = state.lr, state.momentum, state.nesterov
    opt.beta1, opt.beta2, opt.eps, opt.weight_decay = state.beta1, state.beta2, state.eps, state.weight_decay
    opt.rho, opt.eta_plus, opt.eta_minus = state.rho, state.eta_plus, state.eta_minus
    opt.step_min, opt.step_max = state.step_min, state.step_max
    opt.t = state.t
    opt.clip_norm = state.clip_norm
    opt.clipped = state.clipped
    opt.eps_placement = state.eps_placement
    n = (h.net.n_params,)
    opt.state1 = NULL if state.state1 is None else _address(state.state1, h.dtype, n, "optimizer state")
    opt.state2 = NULL if state.state2 is None else _address(state.state2, h.dtype, n, "optimizer state")
    return 0


def net_backprop(NetHandle h, x, t, int n_threads, w=None, bint training=False, uint64_t dropout_key=0,
                 distill=None):
    """Forward and backward pass over one batch (x: (n, in_size), t: (n, out_size), n <= max_batch, sample
    weights w: (n,) or None): fills the workspaces and the gradient buffer, returns the batch's mean loss.
    training turns dropout on, its masks drawn from dropout_key. distill: None, or (teacher logits (n, out_size),
    temperature, alpha) to train a cross_entropy network by the distillation loss (fastnn_distill_loss)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef double value = 0.0, temperature = 1.0, alpha = 0.0
    cdef int rc
    cdef size_t pw = 0, pu = 0
    if x.shape != (n, h.d_in) or t.shape != (n, h.d_out) or not 0 < n <= h.max_batch:
        raise ValueError(f"net_backprop: x {x.shape} / t {t.shape} do not fit the network or its workspace")
    cdef size_t px = _data(x, h.dtype, n, h.d_in, "net_backprop: x", False)
    cdef size_t pt = _data(t, h.dtype, n, h.d_out, "net_backprop: t", False)
    if w is not None:
        pw = _data(w.reshape(n, 1), h.dtype, n, 1, "net_backprop: w", False)
    if distill is not None:
        teacher, temperature, alpha = distill
        if teacher.shape != (n, h.d_out):
            raise ValueError(f"net_backprop: teacher logits {teacher.shape} do not fit t {t.shape}")
        pu = _data(teacher, h.dtype, n, h.d_out, "net_backprop: teacher", False)
    with nogil:
        if pu != 0:
            if h.is_f32:
                rc = fastnn_net_backprop_distill_f32(&h.net, &value, <const float *>px, <const float *>pt,
                                                     <const float *>pu, <const float *>pw, n, temperature, alpha,
                                                     training, dropout_key, n_threads)
            else:
                rc = fastnn_net_backprop_distill_f64(&h.net, &value, <const double *>px, <const double *>pt,
                                                     <const double *>pu, <const double *>pw, n, temperature, alpha,
                                                     training, dropout_key, n_threads)
        elif h.is_f32:
            rc = fastnn_net_backprop_f32(&h.net, &value, <const float *>px, <const float *>pt, <const float *>pw,
                                         n, training, dropout_key, n_threads)
        else:
            rc = fastnn_net_backprop_f64(&h.net, &value, <const double *>px, <const double *>pt,
                                         <const double *>pw, n, training, dropout_key, n_threads)
    _check(rc, "net_backprop")
    return value


def net_update(NetHandle h, state, int n_threads):
    """One optimizer update of the parameters from the gradient buffer; advances state.t."""
    cdef fastnn_optimizer opt
    cdef int rc
    _load_optimizer(&opt, state, h)
    with nogil:
        if h.is_f32:
            rc = fastnn_net_update_f32(&h.net, &opt, n_threads)
        else:
            rc = fastnn_net_update_f64(&h.net, &opt, n_threads)
    state.t, state.clipped = opt.t, opt.clipped
    _check(rc, "net_update")


cdef int _load_metrics(fastnn_metrics *m, acc) except -1:
    """Fill m from a metrics accumulator (kinds, ks, sums, weight: fastnn.training.MetricAccumulator)."""
    cdef int q, count = len(acc.kinds)
    if count > FASTNN_MAX_METRICS or len(acc.ks) != count or len(acc.sums) != count:
        raise ValueError(f"metrics: at most {FASTNN_MAX_METRICS} metrics, with one k and one sum each")
    m.n_metrics = count
    for q in range(count):
        m.kind[q] = acc.kinds[q]
        m.k[q] = acc.ks[q]
        m.sum[q] = acc.sums[q]
    m.weight = acc.weight
    return 0


cdef int _store_metrics(const fastnn_metrics *m, acc) except -1:
    cdef int q
    for q in range(m.n_metrics):
        acc.sums[q] = m.sum[q]
    acc.weight = m.weight
    return 0


cdef int _metrics_status(int rc, str where) except -1:
    if rc == FASTNN_EINVAL:
        raise ValueError(f"{where}: a metric does not apply to this output (accuracy needs a softmax or sigmoid "
                         "output, top-k accuracy a softmax one) or an argument is invalid")
    return _check(rc, where)


def metrics_accumulate(metrics, out, target, weights, int output_act, bint raw, bint skip_padding):
    """Add the metrics of the rows of out (n, d) against target (n, d), sample weights (n,) or None, to the
    accumulator `metrics` (see fastnn_metrics_accumulate)."""
    cdef fastnn_metrics m
    cdef Py_ssize_t n = out.shape[0], d = out.shape[1]
    cdef bint f32 = _is_float32(out)
    cdef size_t po = 0, pt = 0, pw = 0
    cdef int rc
    _load_metrics(&m, metrics)
    if target.shape != out.shape:
        raise ValueError(f"metrics_accumulate: target {target.shape} and out {out.shape} differ")
    if n > 0:
        po = _data(out, out.dtype, n, d, "metrics_accumulate: out", False)
        pt = _data(target, out.dtype, n, d, "metrics_accumulate: target", False)
        if weights is not None:
            pw = _data(weights.reshape(n, 1), out.dtype, n, 1, "metrics_accumulate: weights", False)
    with nogil:
        if f32:
            rc = fastnn_metrics_accumulate_f32(&m, <const float *>po, <const float *>pt, <const float *>pw, n, d,
                                               output_act, raw, skip_padding)
        else:
            rc = fastnn_metrics_accumulate_f64(&m, <const double *>po, <const double *>pt, <const double *>pw, n,
                                               d, output_act, raw, skip_padding)
    _metrics_status(rc, "metrics_accumulate")
    _store_metrics(&m, metrics)


cdef int _load_csr(fastnn_csr *A, X, dtype, Py_ssize_t n_cols, str where) except -1:
    """Fill A from a CSR matrix X (scipy.sparse: data of `dtype`, int64 indices and indptr, all C-contiguous) and
    check it; the arrays stay X's (the caller keeps X alive)."""
    data, indices, indptr = X.data, X.indices, X.indptr
    cdef Py_ssize_t n_rows = X.shape[0], nnz = data.shape[0]
    if X.shape[1] != n_cols:
        raise ValueError(f"{where}: the sparse matrix has {X.shape[1]} columns, expected {n_cols}")
    if indices.dtype.name != "int64" or indptr.dtype.name != "int64" or indices.ndim != 1 or indptr.ndim != 1:
        raise ValueError(f"{where}: the sparse matrix needs int64 indices and indptr")
    if indices.shape[0] != nnz or indptr.shape[0] != n_rows + 1:
        raise ValueError(f"{where}: the sparse matrix has {nnz} values, {indices.shape[0]} indices and "
                         f"{indptr.shape[0]} row pointers for {n_rows} rows")
    if not indices.flags.c_contiguous or not indptr.flags.c_contiguous:
        raise ValueError(f"{where}: sparse indices and indptr must be contiguous")
    A.n_rows, A.n_cols, A.nnz = n_rows, n_cols, nnz
    A.indptr = <const int64_t *><size_t>_pointer(indptr)
    A.data = NULL
    A.indices = NULL
    if nnz > 0:
        A.data = <const void *>_data(data.reshape(1, -1), dtype, 1, nnz, f"{where}: sparse data", False)
        A.indices = <const int64_t *><size_t>_pointer(indices)
    if fastnn_check_csr(A) != FASTNN_OK:
        raise ValueError(f"{where}: malformed sparse matrix (row pointers must start at 0, never decrease and end "
                         f"at {nnz}; column indices must lie in [0, {n_cols}))")
    return 0


def csr_gather(x, X, const int64_t[::1] rows, int n_threads):
    """x (n, n_cols) = the dense rows `rows` of the CSR matrix X (data of x's dtype, int64 indices / indptr);
    duplicate entries add up. ValueError, with x untouched, for a malformed X or a row out of range."""
    cdef fastnn_csr A
    cdef Py_ssize_t n = rows.shape[0]
    cdef bint f32 = _is_float32(x)
    cdef int rc
    _load_csr(&A, X, x.dtype, x.shape[1] if x.ndim == 2 else -1, "csr_gather")
    if n == 0:
        return
    cdef size_t px = _data(x, x.dtype, n, A.n_cols, "csr_gather: x")
    if x.shape[0] != n:
        raise ValueError(f"csr_gather: x has {x.shape[0]} rows, rows has {n}")
    with nogil:
        if f32:
            rc = fastnn_csr_gather_f32(<float *>px, &A, &rows[0], n, n_threads)
        else:
            rc = fastnn_csr_gather_f64(<double *>px, &A, &rows[0], n, n_threads)
    if rc == FASTNN_EINVAL:
        raise ValueError(f"csr_gather: a row index is outside [0, {A.n_rows})")
    _check(rc, "csr_gather")


cdef int _callback_allreduce(void *ctx, void *buf, int64_t count, int is_double) noexcept nogil:
    """fastnn_dist's callback when MPI_Allreduce cannot be called directly: the GIL, then sync.allreduce on a
    NumPy view of the buffer. A Python exception is kept on sync.exception and reported as a failed step."""
    with gil:
        sync = <object>ctx
        try:
            dtype = np.float64 if is_double else np.float32
            size = count * (8 if is_double else 4)
            view = np.frombuffer((ctypes.c_char * size).from_address(<size_t>buf), dtype=dtype)
            sync.allreduce(view)
            return 0
        except BaseException as exc:
            sync.exception = exc
            return -1


cdef int _load_dist(fastnn_dist *d, sync, int64_t progress_address) except -1:
    """The fastnn_dist of a fastnn.distributed step synchroniser (see _DataParallelRun there)."""
    d.mpi_allreduce = <void *><size_t>sync.mpi_allreduce
    d.mpi_int_handles = sync.mpi_int_handles
    d.comm, d.op_sum = sync.comm_handle, sync.op_sum
    d.type_float, d.type_double, d.in_place = sync.type_float, sync.type_double, sync.in_place
    d.allreduce = _callback_allreduce
    d.ctx = <void *>sync
    d.n_steps = sync.n_steps
    d.progress = <int64_t *><size_t>progress_address
    d.seconds = 0.0
    d.calls = d.bytes = 0
    d.error = 0
    return 0


def dist_allreduce(sync, double[::1] values):
    """Sums `values` over the ranks in place through the fastnn_dist hook the C step uses (fastnn.distributed
    checks the direct MPI_Allreduce call with it before training)."""
    cdef fastnn_dist d
    cdef int rc
    _load_dist(&d, sync, 0)
    with nogil:
        rc = fastnn_dist_allreduce(&d, &values[0], values.shape[0], 1)
    if rc != FASTNN_OK:
        sync.error = d.error
        raise sync.failure("dist_allreduce")


def net_train_epoch(NetHandle h, state, X, T, const int64_t[::1] order, Py_ssize_t batch, int n_threads,
                    W=None, uint64_t dropout_seed=0, metrics=None, distill=None, sync=None):
    """One epoch of minibatch training in C with the GIL released throughout, over the rows of X, T (and W, sample
    weights, or None) that `order` lists, in its order (a permutation, or a subset).
    X is a dense (n, in_size) array or a scipy.sparse CSR matrix (data of the network's dtype, int64 indices and
    indptr), whose batches are gathered into the dense batch workspace one at a time. metrics: None or an
    accumulator (fastnn.training.MetricAccumulator) to which each batch adds the metrics of its outputs.
    Returns (loss_sum, n_done, finite): finite is False when a batch loss was not finite (training stopped
    before that batch's update). distill: None, or (teacher logits (n_rows, out_size), temperature, alpha) to
    train a cross_entropy network by the distillation loss, each batch's teacher rows gathered as T's.
    sync: None, or data-parallel training (fastnn.distributed): each step's gradients are summed over the ranks
    in C between backprop and update (fastnn_net_train_epoch_dist), and the epoch makes sync.n_steps steps;
    sync.seconds, .calls, .bytes (allreduce statistics) and .error are updated."""
    cdef fastnn_optimizer opt
    cdef fastnn_dist dsync
    cdef fastnn_dist *ps = NULL
    cdef fastnn_distill dist
    cdef const fastnn_distill *pd = NULL
    cdef fastnn_csr A
    cdef const fastnn_csr *pA = NULL
    cdef fastnn_metrics m
    cdef fastnn_metrics *pm = NULL
    cdef double loss_sum = 0.0
    cdef int64_t n_done = 0
    cdef int rc
    cdef Py_ssize_t n_rows = X.shape[0], n = order.shape[0]
    cdef size_t pw = 0, px = 0
    cdef bint sparse = hasattr(X, "indptr")
    if X.shape != (n_rows, h.d_in) or T.shape != (n_rows, h.d_out) or n == 0 or n_rows == 0:
        raise ValueError("net_train_epoch: X, T and order do not fit the network")
    if not 0 < batch <= h.max_batch:
        raise ValueError(f"net_train_epoch: batch {batch} exceeds the workspace ({h.max_batch})")
    if W is not None and (W.shape != (n_rows,) or h.net.w_batch == NULL):
        raise ValueError("net_train_epoch: W must be (n_rows,) and the handle needs a w_batch workspace")
    if sparse:
        _load_csr(&A, X, h.dtype, h.d_in, "net_train_epoch: X")
        pA = &A
    else:
        px = _data(X, h.dtype, n_rows, h.d_in, "net_train_epoch: X", False)
    cdef size_t pt = _data(T, h.dtype, n_rows, h.d_out, "net_train_epoch: T", False)
    if W is not None:
        pw = _data(W.reshape(n_rows, 1), h.dtype, n_rows, 1, "net_train_epoch: W", False)
    if distill is not None:
        teacher, dist.temperature, dist.alpha = distill
        if teacher.shape != (n_rows, h.d_out):
            raise ValueError(f"net_train_epoch: teacher logits {teacher.shape} do not fit T {T.shape}")
        dist.teacher = <const void *>_data(teacher, h.dtype, n_rows, h.d_out, "net_train_epoch: teacher", False)
        import numpy as np
        teacher_batch = np.empty((batch, h.d_out), dtype=h.dtype)
        dist.teacher_batch = <void *>_data(teacher_batch, h.dtype, batch, h.d_out, "net_train_epoch: teacher batch")
        pd = &dist
    if metrics is not None:
        _load_metrics(&m, metrics)
        pm = &m
    _load_optimizer(&opt, state, h)
    if sync is not None:
        progress = sync.progress
        _load_dist(&dsync, sync, progress.ctypes.data if progress is not None else 0)
        ps = &dsync
    with nogil:
        if ps != NULL:
            if h.is_f32:
                rc = fastnn_net_train_epoch_dist_f32(&h.net, &opt, <const float *>px, pA, <const float *>pt,
                                                     <const float *>pw, pd, n_rows, &order[0], n, batch,
                                                     dropout_seed, pm, &loss_sum, &n_done, ps, n_threads)
            else:
                rc = fastnn_net_train_epoch_dist_f64(&h.net, &opt, <const double *>px, pA, <const double *>pt,
                                                     <const double *>pw, pd, n_rows, &order[0], n, batch,
                                                     dropout_seed, pm, &loss_sum, &n_done, ps, n_threads)
        elif pd != NULL:
            if h.is_f32:
                rc = fastnn_net_train_epoch_distill_f32(&h.net, &opt, <const float *>px, pA, <const float *>pt,
                                                        <const float *>pw, pd, n_rows, &order[0], n, batch,
                                                        dropout_seed, pm, &loss_sum, &n_done, n_threads)
            else:
                rc = fastnn_net_train_epoch_distill_f64(&h.net, &opt, <const double *>px, pA, <const double *>pt,
                                                        <const double *>pw, pd, n_rows, &order[0], n, batch,
                                                        dropout_seed, pm, &loss_sum, &n_done, n_threads)
        elif h.is_f32:
            rc = fastnn_net_train_epoch_f32(&h.net, &opt, <const float *>px, pA, <const float *>pt,
                                            <const float *>pw, n_rows, &order[0], n, batch, dropout_seed, pm, &loss_sum,
                                            &n_done, n_threads)
        else:
            rc = fastnn_net_train_epoch_f64(&h.net, &opt, <const double *>px, pA, <const double *>pt,
                                            <const double *>pw, n_rows, &order[0], n, batch, dropout_seed, pm, &loss_sum,
                                            &n_done, n_threads)
    state.t, state.clipped = opt.t, opt.clipped
    if pm != NULL:
        _store_metrics(pm, metrics)
        if rc == FASTNN_EINVAL:
            _metrics_status(rc, "net_train_epoch")
    if ps != NULL:
        sync.seconds += dsync.seconds
        sync.calls += dsync.calls
        sync.bytes += dsync.bytes
        sync.error = dsync.error
        if rc == FASTNN_EDIST:
            raise sync.failure("net_train_epoch")
    if rc == FASTNN_ENONFINITE:
        return loss_sum, n_done, False
    _check(rc, "net_train_epoch")
    return loss_sum, n_done, True


def net_infer_scratch_size(NetHandle h, Py_ssize_t n):
    """Elements of scratch net_predict / net_evaluate need for n samples."""
    cdef int64_t size = fastnn_net_infer_scratch_size(&h.net, n)
    if size < 0:
        raise ValueError("net_infer_scratch_size: invalid network or n")
    return size


cdef size_t _scratch(NetHandle h, scratch, Py_ssize_t n, str where) except 0:
    need = fastnn_net_infer_scratch_size(&h.net, n)
    if scratch.ndim != 1 or scratch.size < max(need, 1):
        raise ValueError(f"{where}: scratch must be 1-D with at least {need} elements, got {scratch.shape}")
    return _data(scratch.reshape(1, -1), h.dtype, 1, scratch.size, f"{where}: scratch")


def net_predict(NetHandle h, y, x, scratch, int n_threads):
    """Prediction for a batch x (n, in_size) into y (n, out_size), using only `scratch` (1-D, at least
    net_infer_scratch_size(h, n) elements): any number of threads may predict with one handle at once."""
    cdef Py_ssize_t n = x.shape[0]
    cdef int rc
    if n == 0:
        return
    cdef size_t px = _data(x, h.dtype, n, h.d_in, "net_predict: x", False)
    cdef size_t py = _data(y, h.dtype, n, h.d_out, "net_predict: y")
    cdef size_t ps = _scratch(h, scratch, n, "net_predict")
    if y.shape[0] != n:
        raise ValueError(f"net_predict: y has {y.shape[0]} rows, x has {n}")
    with nogil:
        if h.is_f32:
            rc = fastnn_net_predict_f32(&h.net, <float *>py, <const float *>px, n, <float *>ps, n_threads)
        else:
            rc = fastnn_net_predict_f64(&h.net, <double *>py, <const double *>px, n, <double *>ps, n_threads)
    _check(rc, "net_predict")


def net_evaluate(NetHandle h, x, t, scratch, int n_threads, w=None, metrics=None):
    """The mean loss over x (n, in_size) against t (n, out_size), sample weights w (n,) or None, without
    dropout, using only `scratch`. metrics: None or an accumulator to which these rows' metrics are added."""
    cdef Py_ssize_t n = x.shape[0]
    cdef double value = 0.0
    cdef int rc
    cdef size_t pw = 0
    cdef fastnn_metrics m
    cdef fastnn_metrics *pm = NULL
    if n == 0 or t.shape != (n, h.d_out):
        raise ValueError(f"net_evaluate: x {x.shape} / t {t.shape} do not fit the network")
    cdef size_t px = _data(x, h.dtype, n, h.d_in, "net_evaluate: x", False)
    cdef size_t pt = _data(t, h.dtype, n, h.d_out, "net_evaluate: t", False)
    cdef size_t ps = _scratch(h, scratch, n, "net_evaluate")
    if w is not None:
        pw = _data(w.reshape(n, 1), h.dtype, n, 1, "net_evaluate: w", False)
    if metrics is not None:
        _load_metrics(&m, metrics)
        pm = &m
    with nogil:
        if h.is_f32:
            rc = fastnn_net_evaluate_f32(&h.net, &value, <const float *>px, <const float *>pt, <const float *>pw,
                                         n, <float *>ps, pm, n_threads)
        else:
            rc = fastnn_net_evaluate_f64(&h.net, &value, <const double *>px, <const double *>pt,
                                         <const double *>pw, n, <double *>ps, pm, n_threads)
    if pm != NULL:
        _metrics_status(rc, "net_evaluate")
        _store_metrics(pm, metrics)
    _check(rc, "net_evaluate")
    return value


def net_forward_single(NetHandle h, y, x, scratch):
    """One sample x (in_size,) through a network of dense layers for prediction into y (out_size,); scratch:
    2 * the widest layer's values. (Typed memoryviews here: this is the latency path of one sample.)"""
    cdef float[::1] y32, s32
    cdef const float[::1] x32
    cdef double[::1] y64, s64
    cdef const double[::1] x64
    cdef int rc
    if h.is_f32:
        y32, x32, s32 = y, x, scratch
        if y32.shape[0] != h.d_out or x32.shape[0] != h.d_in or s32.shape[0] < 2 * h.widest:
            raise ValueError("net_forward_single: sizes do not fit the network")
        with nogil:
            rc = fastnn_net_forward_single_f32(&h.net, &y32[0], &x32[0], &s32[0])
    else:
        y64, x64, s64 = y, x, scratch
        if y64.shape[0] != h.d_out or x64.shape[0] != h.d_in or s64.shape[0] < 2 * h.widest:
            raise ValueError("net_forward_single: sizes do not fit the network")
        with nogil:
            rc = fastnn_net_forward_single_f64(&h.net, &y64[0], &x64[0], &s64[0])
    _check(rc, "net_forward_single")



# ------------------------------------------------------------------------------------------------- sequence kernels
# The embedding lookup, step repetition and recurrent layers (csrc/sequence.c, csrc/rnn.c; twins in
# fastnn/_py/sequence.py and fastnn/_py/rnn.py). NumPy arrays, as for the conv kernels. Token ids, y, dy and dx may
# have any C-contiguous shape holding the right number of values (the twins reshape them); the recurrent
# workspaces are flat buffers of at least the size the kernel needs. seq is the fastnn_sequence as a tuple
# (cell, act, return_sequences, steps, features, units).

cdef object _real_dtype(arr, str what):
    if arr is None:
        raise ValueError(f"{what} is required")
    if arr.dtype.name not in ("float32", "float64"):
        raise TypeError(f"{what}: expected a float32 or float64 array, got {arr.dtype}")
    return arr.dtype


cdef size_t _values(arr, dtype, Py_ssize_t size, str what, bint writable=True, bint at_least=False) except 0:
    """The address of a C-contiguous array of this dtype, of any shape, holding exactly `size` values (at least that
    many when at_least: a flat workspace)."""
    if arr is None:
        raise ValueError(f"{what} is required")
    if arr.dtype != dtype or not arr.flags.c_contiguous or (writable and not arr.flags.writeable):
        raise ValueError(f"{what} must be a {'writable ' if writable else ''}C-contiguous {dtype} array, got "
                         f"{arr.dtype} of shape {arr.shape}")
    if (arr.size < size) if at_least else (arr.size != size):
        raise ValueError(f"{what} holds {arr.size} values, expected {'at least ' if at_least else ''}{size}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    return _pointer(arr)


cdef size_t _matrix(arr, dtype, Py_ssize_t rows, Py_ssize_t cols, str what, bint writable=True) except 0:
    """The address of a C-contiguous (rows, cols) array of this dtype."""
    if arr is None:
        raise ValueError(f"{what} is required")
    if arr.ndim != 2 or arr.shape[0] != rows or arr.shape[1] != cols:
        raise ValueError(f"{what} has shape {arr.shape}, expected ({rows}, {cols})")
    return _data(arr, dtype, rows, cols, what, writable)


cdef int _embedding_status(int rc, str where, Py_ssize_t vocab) except -1:
    if rc == FASTNN_EINVAL:
        raise ValueError(f"{where}: token ids must be integers in [0, {vocab - 1}]")
    return _check(rc, where)


def embedding_forward(y, ids, W, int n_threads):
    """y (m, D) = W[ids] for m token ids (ids: any shape holding m values, y: any holding m D); W is (vocabulary,
    D). ValueError, with y untouched, when an id is not an integer in [0, vocabulary)."""
    dtype = _real_dtype(W, "embedding_forward: W")
    if W.ndim != 2:
        raise ValueError(f"embedding_forward: W must be 2-D (vocabulary, D), got shape {W.shape}")
    cdef Py_ssize_t vocab = W.shape[0], D = W.shape[1], m = ids.size
    cdef size_t pw = _matrix(W, dtype, vocab, D, "embedding_forward: W", False)
    cdef bint f32 = dtype.name == "float32"
    cdef int rc
    if m == 0:
        _same("embedding_forward", "y.size", y.size, 0)
        return
    cdef size_t pi = _values(ids, dtype, m, "embedding_forward: ids", False)
    cdef size_t py = _values(y, dtype, m * D, "embedding_forward: y")
    with nogil:
        if f32:
            rc = fastnn_embedding_forward_f32(<float *>py, <const float *>pi, <const float *>pw, m, vocab, D,
                                              n_threads)
        else:
            rc = fastnn_embedding_forward_f64(<double *>py, <const double *>pi, <const double *>pw, m, vocab, D,
                                              n_threads)
    _embedding_status(rc, "embedding_forward", vocab)


def embedding_backward(dW, dy, ids, int n_threads):
    """dW (vocabulary, D) = the sum of dy's rows (m, D) into the rows of their tokens (overwritten). ValueError,
    with dW untouched, when an id is not an integer in [0, vocabulary)."""
    dtype = _real_dtype(dW, "embedding_backward: dW")
    if dW.ndim != 2:
        raise ValueError(f"embedding_backward: dW must be 2-D (vocabulary, D), got shape {dW.shape}")
    cdef Py_ssize_t vocab = dW.shape[0], D = dW.shape[1], m = ids.size
    cdef size_t pw = _matrix(dW, dtype, vocab, D, "embedding_backward: dW")
    cdef size_t pi = 0, py = 0
    cdef bint f32 = dtype.name == "float32"
    cdef int rc
    if m > 0:
        pi = _values(ids, dtype, m, "embedding_backward: ids", False)
        py = _values(dy, dtype, m * D, "embedding_backward: dy", False)
    else:
        _same("embedding_backward", "dy.size", dy.size, 0)
    with nogil:
        if f32:
            rc = fastnn_embedding_backward_f32(<float *>pw, <const float *>py, <const float *>pi, m, vocab, D,
                                               n_threads)
        else:
            rc = fastnn_embedding_backward_f64(<double *>pw, <const double *>py, <const double *>pi, m, vocab, D,
                                               n_threads)
    _embedding_status(rc, "embedding_backward", vocab)


def repeat_forward(y, x, Py_ssize_t repeats, int n_threads):
    """y (n, repeats F) = each sample's x (n, F) repeated `repeats` times."""
    dtype = _real_dtype(x, "repeat_forward: x")
    if x.ndim != 2:
        raise ValueError(f"repeat_forward: x must be 2-D (n, F), got shape {x.shape}")
    if repeats < 1:
        raise ValueError(f"repeat_forward: repeats must be at least 1, got {repeats}")
    cdef Py_ssize_t n = x.shape[0], F = x.shape[1]
    cdef bint f32 = dtype.name == "float32"
    cdef int rc
    if n == 0:
        _same("repeat_forward", "y.size", y.size, 0)
        return
    cdef size_t px = _data(x, dtype, n, F, "repeat_forward: x", False)
    cdef size_t py = _values(y, dtype, n * repeats * F, "repeat_forward: y")
    with nogil:
        if f32:
            rc = fastnn_repeat_forward_f32(<float *>py, <const float *>px, n, F, repeats, n_threads)
        else:
            rc = fastnn_repeat_forward_f64(<double *>py, <const double *>px, n, F, repeats, n_threads)
    _check(rc, "repeat_forward")


def repeat_backward(dx, dy, Py_ssize_t repeats, int n_threads):
    """dx (n, F) = the sum over the repeats of dy (n, repeats F)."""
    dtype = _real_dtype(dx, "repeat_backward: dx")
    if dx.ndim != 2:
        raise ValueError(f"repeat_backward: dx must be 2-D (n, F), got shape {dx.shape}")
    if repeats < 1:
        raise ValueError(f"repeat_backward: repeats must be at least 1, got {repeats}")
    cdef Py_ssize_t n = dx.shape[0], F = dx.shape[1]
    cdef bint f32 = dtype.name == "float32"
    cdef int rc
    if n == 0:
        _same("repeat_backward", "dy.size", dy.size, 0)
        return
    cdef size_t pd = _data(dx, dtype, n, F, "repeat_backward: dx")
    cdef size_t py = _values(dy, dtype, n * repeats * F, "repeat_backward: dy", False)
    with nogil:
        if f32:
            rc = fastnn_repeat_backward_f32(<float *>pd, <const float *>py, n, F, repeats, n_threads)
        else:
            rc = fastnn_repeat_backward_f64(<double *>pd, <const double *>py, n, F, repeats, n_threads)
    _check(rc, "repeat_backward")


cdef int _sequence(fastnn_sequence *s, seq, str where) except -1:
    """Fill s from the tuple (cell, act, return_sequences, steps, features, units) and check it."""
    if len(seq) != 6:
        raise ValueError(f"{where}: seq is (cell, act, return_sequences, steps, features, units), got {seq!r}")
    s.cell, s.act, s.return_sequences, s.steps, s.features, s.units = [int(v) for v in seq]
    _check(fastnn_check_sequence(s), f"{where}: seq {tuple(seq)!r}")
    return 0


cdef class _Sequences:
    """The geometry, dtype and sizes of one recurrent call over the n sequences of x (n, T F)."""
    cdef fastnn_sequence s
    cdef object dtype
    cdef bint f32
    cdef Py_ssize_t n, T, F, U, GU, S, y_size

    def __init__(self, seq, x, str where):
        _sequence(&self.s, seq, where)
        self.dtype = _real_dtype(x, f"{where}: x")
        self.f32 = self.dtype.name == "float32"
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{where}: x must be 2-D (n >= 1, T F), got shape {x.shape}")
        self.n, self.T, self.F, self.U = x.shape[0], self.s.steps, self.s.features, self.s.units
        self.GU = (4 if self.s.cell == FASTNN_CELL_LSTM else 3 if self.s.cell == FASTNN_CELL_GRU else 1) * self.U
        self.S = 2 * self.U if self.s.cell == FASTNN_CELL_LSTM else self.U
        self.y_size = self.n * (self.T * self.U if self.s.return_sequences else self.U)

    cdef size_t cells(self, cells, str where) except? 0:
        """cells' address: (T + 1) n U values, or NULL when the simple cell is given None."""
        if cells is None and self.s.cell == FASTNN_CELL_SIMPLE:
            return 0
        return _values(cells, self.dtype, (self.T + 1) * self.n * self.U, f"{where}: cells", True, True)


def rnn_forward(y, states, gates, cells, proj, x, W_ih, W_hh, b_ih, b_hh, state0, state_out, seq, int n_threads):
    """A recurrent layer over the n sequences of x (n, T F): fills y (n, T U) or (n, U), the time-major workspaces
    states ((T + 1) n U values), gates (T n G U), cells ((T + 1) n U; None for the simple cell) and the scratch
    proj (n T G U). state0 (n, S) or None (zeros); state_out (n, S) or None receives the final state and may be
    state0."""
    cdef _Sequences q = _Sequences(seq, x, "rnn_forward")
    cdef Py_ssize_t n = q.n, T = q.T, U = q.U, GU = q.GU
    cdef size_t px = _data(x, q.dtype, n, T * q.F, "rnn_forward: x", False)
    cdef size_t py = _values(y, q.dtype, q.y_size, "rnn_forward: y")
    cdef size_t pst = _values(states, q.dtype, (T + 1) * n * U, "rnn_forward: states", True, True)
    cdef size_t pg = _values(gates, q.dtype, T * n * GU, "rnn_forward: gates", True, True)
    cdef size_t pc = q.cells(cells, "rnn_forward")
    cdef size_t pp = _values(proj, q.dtype, n * T * GU, "rnn_forward: proj", True, True)
    cdef size_t pwi = _matrix(W_ih, q.dtype, GU, q.F, "rnn_forward: W_ih", False)
    cdef size_t pwh = _matrix(W_hh, q.dtype, GU, U, "rnn_forward: W_hh", False)
    cdef size_t pbi = _values(b_ih, q.dtype, GU, "rnn_forward: b_ih", False)
    cdef size_t pbh = _values(b_hh, q.dtype, GU, "rnn_forward: b_hh", False)
    cdef size_t ps0 = 0, pso = 0
    cdef int rc
    if state0 is not None:
        ps0 = _matrix(state0, q.dtype, n, q.S, "rnn_forward: state0", False)
    if state_out is not None:
        pso = _matrix(state_out, q.dtype, n, q.S, "rnn_forward: state_out")
    with nogil:
        if q.f32:
            rc = fastnn_rnn_forward_f32(<float *>py, <float *>pst, <float *>pg, <float *>pc, <float *>pp,
                                        <const float *>px, <const float *>pwi, <const float *>pwh,
                                        <const float *>pbi, <const float *>pbh, <const float *>ps0,
                                        <float *>pso, n, &q.s, n_threads)
        else:
            rc = fastnn_rnn_forward_f64(<double *>py, <double *>pst, <double *>pg, <double *>pc, <double *>pp,
                                        <const double *>px, <const double *>pwi, <const double *>pwh,
                                        <const double *>pbi, <const double *>pbh, <const double *>ps0,
                                        <double *>pso, n, &q.s, n_threads)
    _check(rc, "rnn_forward")


def rnn_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dgates, gates, cells, carry, dy, x, states, W_ih, W_hh, seq,
                 int n_threads):
    """Backpropagation through time over what rnn_forward stored, from dy (shaped as y): overwrites dW_ih (G U, F),
    dW_hh (G U, U), db_ih, db_hh (G U) and, unless dx is None, dx (n, T F). Workspaces: dgates (T n G U values),
    carry (3 n U); gates and cells (None for the simple cell) are overwritten."""
    cdef _Sequences q = _Sequences(seq, x, "rnn_backward")
    cdef Py_ssize_t n = q.n, T = q.T, U = q.U, GU = q.GU
    cdef size_t px = _data(x, q.dtype, n, T * q.F, "rnn_backward: x", False)
    cdef size_t pdwi = _matrix(dW_ih, q.dtype, GU, q.F, "rnn_backward: dW_ih")
    cdef size_t pdwh = _matrix(dW_hh, q.dtype, GU, U, "rnn_backward: dW_hh")
    cdef size_t pdbi = _values(db_ih, q.dtype, GU, "rnn_backward: db_ih")
    cdef size_t pdbh = _values(db_hh, q.dtype, GU, "rnn_backward: db_hh")
    cdef size_t pdg = _values(dgates, q.dtype, T * n * GU, "rnn_backward: dgates", True, True)
    cdef size_t pg = _values(gates, q.dtype, T * n * GU, "rnn_backward: gates", True, True)
    cdef size_t pc = q.cells(cells, "rnn_backward")
    cdef size_t pca = _values(carry, q.dtype, 3 * n * U, "rnn_backward: carry", True, True)
    cdef size_t pdy = _values(dy, q.dtype, q.y_size, "rnn_backward: dy", False)
    cdef size_t pst = _values(states, q.dtype, (T + 1) * n * U, "rnn_backward: states", False, True)
    cdef size_t pwi = _matrix(W_ih, q.dtype, GU, q.F, "rnn_backward: W_ih", False)
    cdef size_t pwh = _matrix(W_hh, q.dtype, GU, U, "rnn_backward: W_hh", False)
    cdef size_t pdx = 0
    cdef int rc
    if dx is not None:
        pdx = _values(dx, q.dtype, n * T * q.F, "rnn_backward: dx")
    with nogil:
        if q.f32:
            rc = fastnn_rnn_backward_f32(<float *>pdx, <float *>pdwi, <float *>pdwh, <float *>pdbi, <float *>pdbh,
                                         <float *>pdg, <float *>pg, <float *>pc, <float *>pca, <const float *>pdy,
                                         <const float *>px, <const float *>pst, <const float *>pwi,
                                         <const float *>pwh, n, &q.s, n_threads)
        else:
            rc = fastnn_rnn_backward_f64(<double *>pdx, <double *>pdwi, <double *>pdwh, <double *>pdbi,
                                         <double *>pdbh, <double *>pdg, <double *>pg, <double *>pc, <double *>pca,
                                         <const double *>pdy, <const double *>px, <const double *>pst,
                                         <const double *>pwi, <const double *>pwh, n, &q.s, n_threads)
    _check(rc, "rnn_backward")


def rnn_scratch_size(seq, Py_ssize_t n):
    """Elements of scratch an inference pass of n sequences needs: states, gates, cells and the projection."""
    cdef fastnn_sequence s
    _sequence(&s, seq, "rnn_scratch_size")
    cdef int64_t size = fastnn_rnn_scratch_size(&s, n)
    if size < 0:
        raise ValueError(f"rnn_scratch_size: invalid n {n} or sizes too large")
    return size


# ------------------------------------------------------------------------------------------------------- pruning
def mask_apply(x, keep, int n_threads):
    """x[k] = 0 wherever keep[k] == 0 (x: a 1-D C-contiguous float buffer, keep: uint8 of the same length)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef bint f32 = _is_float32(x)
    cdef int rc
    if x.ndim != 1 or keep.ndim != 1 or keep.shape[0] != n or keep.dtype.name != "uint8" or \
            not keep.flags.c_contiguous:
        raise ValueError("mask_apply: keep must be a contiguous uint8 array as long as x")
    if n == 0:
        return
    cdef size_t px = _data(x.reshape(1, n), x.dtype, 1, n, "mask_apply: x")
    cdef size_t pk = _pointer(keep)
    with nogil:
        if f32:
            rc = fastnn_mask_apply_f32(<float *>px, <const uint8_t *>pk, n, n_threads)
        else:
            rc = fastnn_mask_apply_f64(<double *>px, <const uint8_t *>pk, n, n_threads)
    _check(rc, "mask_apply")


def sparse_dense_forward(y, x, Wt, b, int act, double alpha, int n_threads):
    """y (n, d_out) = act(x (n, d_in) W + b) with W^T given as the CSR matrix Wt (d_out, d_in): data of x's
    dtype, int64 indices and indptr; b (d_out,) or None."""
    cdef fastnn_csr A
    cdef Py_ssize_t n = x.shape[0]
    cdef bint f32 = _is_float32(x)
    cdef int rc
    cdef size_t pb = 0
    _load_csr(&A, Wt, x.dtype, x.shape[1] if x.ndim == 2 else -1, "sparse_dense_forward")
    if y.ndim != 2 or y.shape[0] != n or y.shape[1] != A.n_rows:
        raise ValueError(f"sparse_dense_forward: y has shape {y.shape}, expected ({n}, {A.n_rows})")
    if n == 0:
        return
    cdef size_t px = _data(x, x.dtype, n, A.n_cols, "sparse_dense_forward: x", False)
    cdef size_t py = _data(y, x.dtype, n, A.n_rows, "sparse_dense_forward: y")
    if b is not None:
        pb = _data(b.reshape(1, -1), x.dtype, 1, A.n_rows, "sparse_dense_forward: b", False)
    with nogil:
        if f32:
            rc = fastnn_sparse_dense_forward_f32(<float *>py, <const float *>px, &A, <const float *>pb, n, act,
                                                 alpha, n_threads)
        else:
            rc = fastnn_sparse_dense_forward_f64(<double *>py, <const double *>px, &A, <const double *>pb, n,
                                                 act, alpha, n_threads)
    _check(rc, "sparse_dense_forward")
# ------------------------------------------------------------------------------------------- int8 inference
def q8_path_supported(int path):
    """Whether this CPU (and this build) has the int8 GEMM path (0 portable, 1 avx2, 2 avx_vnni, 3 avx512_vnni)."""
    return bool(fastnn_q8_path_supported(path))


def q8_best_path():
    return fastnn_q8_best_path()


cdef int _q8_shapes(str where, Py_ssize_t m, Py_ssize_t n, int64_t k, Py_ssize_t lda, Py_ssize_t packed,
                    int path) except -1:
    if k < 1 or k > FASTNN_Q8_MAX_K or n < 1:
        raise ValueError(f"{where}: k must be in [1, {FASTNN_Q8_MAX_K}] and n >= 1, got k={k}, n={n}")
    if lda < (k + 3) // 4 * 4:
        raise ValueError(f"{where}: the activations have {lda} columns, expected at least {(k + 3) // 4 * 4}")
    if packed != (n + 15) // 16 * ((k + 3) // 4) * 64:
        raise ValueError(f"{where}: packed weights hold {packed} bytes, expected "
                         f"{(n + 15) // 16 * ((k + 3) // 4) * 64}")
    if not fastnn_q8_path_supported(path):
        raise ValueError(f"{where}: int8 path {path} is not supported by this CPU or build")
    return 0


def q8_gemm(int32_t[:, ::1] c, const uint8_t[:, ::1] a, const int8_t[::1] bp, int64_t k, int path,
            int n_threads):
    """c (m, n) int32 = a[:, :k] x w (k, n), w packed (fastnn/_py/quant.py q8_pack); exact."""
    cdef int64_t m = c.shape[0], n = c.shape[1], lda = a.shape[1]
    cdef int rc
    _same("q8_gemm", "a.shape[0]", a.shape[0], m)
    _q8_shapes("q8_gemm", m, n, k, lda, bp.shape[0], path)
    if m == 0:
        return
    with nogil:
        rc = fastnn_q8_gemm(&c[0, 0], &a[0, 0], &bp[0], m, n, k, lda, path, n_threads)
    _check(rc, "q8_gemm")


def q8_quantize_rows(uint8_t[:, ::1] q, float[::1] scale, int32_t[::1] zero_point, const float[:, ::1] x,
                     int n_threads):
    """Per row of x (m, k): uint8 q (m, ldq >= k), scale and zero point (dynamic, asymmetric)."""
    cdef int64_t m = x.shape[0], k = x.shape[1], ldq = q.shape[1]
    cdef int rc
    _same("q8_quantize_rows", "q.shape[0]", q.shape[0], m)
    _same("q8_quantize_rows", "scale.shape[0]", scale.shape[0], m)
    _same("q8_quantize_rows", "zero_point.shape[0]", zero_point.shape[0], m)
    if ldq < k or k < 1:
        raise ValueError(f"q8_quantize_rows: q has {ldq} columns for rows of {k}")
    if m == 0:
        return
    with nogil:
        rc = fastnn_q8_quantize_rows(&q[0, 0], &scale[0], &zero_point[0], &x[0, 0], m, k, ldq, n_threads)
    if rc == FASTNN_ENONFINITE:
        raise ValueError("q8_quantize_rows: the rows hold NaN or infinity")
    _check(rc, "q8_quantize_rows")


def q8_epilogue(float[:, ::1] y, const int32_t[:, ::1] c, const float[::1] a_scale, const int32_t[::1] a_zp,
                const float[::1] w_scale, const int32_t[::1] w_colsum, const float[::1] bias, int act,
                double alpha, int n_threads):
    """y = act((c - zp_i colsum_j) * (a_scale_i w_scale_j) + bias_j)."""
    cdef int64_t m = c.shape[0], n = c.shape[1]
    cdef int rc
    _same("q8_epilogue", "y.shape[0]", y.shape[0], m)
    _same("q8_epilogue", "y.shape[1]", y.shape[1], n)
    _same("q8_epilogue", "a_scale.shape[0]", a_scale.shape[0], m)
    _same("q8_epilogue", "a_zp.shape[0]", a_zp.shape[0], m)
    _same("q8_epilogue", "w_scale.shape[0]", w_scale.shape[0], n)
    _same("q8_epilogue", "w_colsum.shape[0]", w_colsum.shape[0], n)
    _same("q8_epilogue", "bias.shape[0]", bias.shape[0], n)
    if m == 0:
        return
    with nogil:
        rc = fastnn_q8_epilogue(&y[0, 0], &c[0, 0], &a_scale[0], &a_zp[0], &w_scale[0], &w_colsum[0], &bias[0],
                                m, n, act, alpha, n_threads)
    _check(rc, "q8_epilogue")


def q8_dense_forward(float[:, ::1] y, const float[:, ::1] x, const int8_t[::1] bp, const float[::1] w_scale,
                     const int32_t[::1] w_colsum, const float[::1] bias, int64_t k, int act, double alpha,
                     uint8_t[:, ::1] qa, int32_t[:, ::1] acc, float[::1] a_scale, int32_t[::1] a_zp, int path,
                     int n_threads):
    """y (m, n) = one quantized dense layer on float rows x (m, k); qa, acc, a_scale, a_zp: scratch of at least
    m rows."""
    cdef int64_t m = x.shape[0], n = y.shape[1], lda = qa.shape[1]
    cdef int rc
    _same("q8_dense_forward", "y.shape[0]", y.shape[0], m)
    _same("q8_dense_forward", "x.shape[1]", x.shape[1], k)
    _same("q8_dense_forward", "w_scale.shape[0]", w_scale.shape[0], n)
    _same("q8_dense_forward", "w_colsum.shape[0]", w_colsum.shape[0], n)
    _same("q8_dense_forward", "bias.shape[0]", bias.shape[0], n)
    _same("q8_dense_forward", "acc.shape[1]", acc.shape[1], n)
    if qa.shape[0] < m or acc.shape[0] < m or a_scale.shape[0] < m or a_zp.shape[0] < m:
        raise ValueError(f"q8_dense_forward: scratch for fewer than {m} rows")
    _q8_shapes("q8_dense_forward", m, n, k, lda, bp.shape[0], path)
    if m == 0:
        return
    with nogil:
        rc = fastnn_q8_dense_forward(&y[0, 0], &x[0, 0], &bp[0], &w_scale[0], &w_colsum[0], &bias[0], m, k, n,
                                     act, alpha, &qa[0, 0], lda, &acc[0, 0], &a_scale[0], &a_zp[0], path,
                                     n_threads)
    if rc == FASTNN_ENONFINITE:
        raise ValueError("q8_dense_forward: a layer's input holds NaN or infinity")
    _check(rc, "q8_dense_forward")


cdef int _q8_csr(str where, Py_ssize_t n, Py_ssize_t indices, Py_ssize_t data, Py_ssize_t indptr) except -1:
    if indptr != n + 1 or indices != data:
        raise ValueError(f"{where}: a CSR of {n} rows needs {n + 1} row pointers and as many indices as values, "
                         f"got {indptr} and {indices} indices for {data} values")
    return 0


def q8_sparse_scratch_bytes(int64_t m, int64_t k):
    """Bytes of the transposed blocks the sparse kernels may use for m rows of k inputs."""
    return fastnn_q8_sparse_scratch_bytes(m, k)


def q8_sparse_gemm(int32_t[:, ::1] c, const uint8_t[:, ::1] a, const int8_t[::1] data, const int32_t[::1] indices,
                   const int64_t[::1] indptr, int64_t k, int n_threads, uint8_t[::1] at=None):
    """c (m, n) int32 = a[:, :k] x w (k, n) from w^T's nonzeros as CSR (fastnn/_py/quant.py q8_csr); the same
    integers as q8_gemm. at: None, or q8_sparse_scratch_bytes(m, k) bytes of scratch (blocks of rows vectorize)."""
    cdef int64_t m = c.shape[0], n = c.shape[1], lda = a.shape[1]
    cdef int rc
    _same("q8_sparse_gemm", "a.shape[0]", a.shape[0], m)
    _q8_csr("q8_sparse_gemm", n, indices.shape[0], data.shape[0], indptr.shape[0])
    if k < 1 or k > FASTNN_Q8_MAX_K or n < 1 or lda < k:
        raise ValueError(f"q8_sparse_gemm: invalid sizes k={k}, n={n}, lda={lda}")
    if at is not None and at.shape[0] < fastnn_q8_sparse_scratch_bytes(m, k):
        raise ValueError(f"q8_sparse_gemm: at holds {at.shape[0]} bytes, expected "
                         f"{fastnn_q8_sparse_scratch_bytes(m, k)}")
    if m == 0:
        return
    cdef uint8_t *pat = NULL if at is None else &at[0]
    with nogil:
        rc = fastnn_q8_sparse_gemm(&c[0, 0], &a[0, 0], &data[0] if data.shape[0] else NULL,
                                   &indices[0] if indices.shape[0] else NULL, &indptr[0], m, n, k, lda, pat,
                                   n_threads)
    _check(rc, "q8_sparse_gemm")


def q8_sparse_dense_forward(float[:, ::1] y, const float[:, ::1] x, const int8_t[::1] data,
                            const int32_t[::1] indices, const int64_t[::1] indptr, const float[::1] w_scale,
                            const int32_t[::1] w_colsum, const float[::1] bias, int act, double alpha,
                            uint8_t[:, ::1] qa, int32_t[:, ::1] acc, float[::1] a_scale, int32_t[::1] a_zp,
                            int n_threads, uint8_t[::1] at=None):
    """q8_dense_forward through the sparse product: the same y, bit for bit (at: as for q8_sparse_gemm)."""
    cdef int64_t m = x.shape[0], k = x.shape[1], n = y.shape[1], lda = qa.shape[1]
    cdef int rc
    _same("q8_sparse_dense_forward", "y.shape[0]", y.shape[0], m)
    _same("q8_sparse_dense_forward", "w_scale.shape[0]", w_scale.shape[0], n)
    _same("q8_sparse_dense_forward", "w_colsum.shape[0]", w_colsum.shape[0], n)
    _same("q8_sparse_dense_forward", "bias.shape[0]", bias.shape[0], n)
    _same("q8_sparse_dense_forward", "acc.shape[1]", acc.shape[1], n)
    _q8_csr("q8_sparse_dense_forward", n, indices.shape[0], data.shape[0], indptr.shape[0])
    if qa.shape[0] < m or acc.shape[0] < m or a_scale.shape[0] < m or a_zp.shape[0] < m:
        raise ValueError(f"q8_sparse_dense_forward: scratch for fewer than {m} rows")
    if k < 1 or k > FASTNN_Q8_MAX_K or n < 1 or lda < k:
        raise ValueError(f"q8_sparse_dense_forward: invalid sizes k={k}, n={n}, lda={lda}")
    if at is not None and at.shape[0] < fastnn_q8_sparse_scratch_bytes(m, k):
        raise ValueError(f"q8_sparse_dense_forward: at holds {at.shape[0]} bytes, expected "
                         f"{fastnn_q8_sparse_scratch_bytes(m, k)}")
    if m == 0:
        return
    cdef uint8_t *pat = NULL if at is None else &at[0]
    with nogil:
        rc = fastnn_q8_sparse_dense_forward(&y[0, 0], &x[0, 0], &data[0] if data.shape[0] else NULL,
                                            &indices[0] if indices.shape[0] else NULL, &indptr[0], &w_scale[0],
                                            &w_colsum[0], &bias[0], m, k, n, act, alpha, &qa[0, 0], lda, pat,
                                            &acc[0, 0], &a_scale[0], &a_zp[0], n_threads)
    if rc == FASTNN_ENONFINITE:
        raise ValueError("q8_sparse_dense_forward: a layer's input holds NaN or infinity")
    _check(rc, "q8_sparse_dense_forward")


cdef class Q8Plan:
    """A stack of quantized dense layers for fastnn_q8_mlp_forward: pointers into the arrays it keeps alive.
    layers: a list of (packed int8, w_scale float32, colsum int32, bias float32, k, n, act, alpha[, sparse]),
    sparse None or (data int8, indices int32, indptr int64, min_rows, max_rows): W^T's nonzeros, used for chunks
    of min_rows to max_rows rows."""
    cdef fastnn_q8_layer *layers
    cdef int n_layers
    cdef list keep
    cdef readonly int64_t n_inputs, n_outputs

    def __cinit__(self, layers):
        self.layers = NULL
        self.n_layers = 0

    def __init__(self, layers):
        cdef int i
        cdef const int8_t[::1] packed
        cdef const float[::1] w_scale, bias
        cdef const int32_t[::1] colsum
        cdef const int8_t[::1] sp_data
        cdef const int32_t[::1] sp_indices
        cdef const int64_t[::1] sp_indptr
        self.keep = []
        n = len(layers)
        if n < 1:
            raise ValueError("Q8Plan: no layers")
        self.layers = <fastnn_q8_layer *>PyMem_Malloc(n * sizeof(fastnn_q8_layer))
        if self.layers == NULL:
            raise MemoryError("Q8Plan: out of memory")
        for i, entry in enumerate(layers):
            p, ws, cs, b, k, nn, act, alpha = entry[:8]
            sparse = entry[8] if len(entry) > 8 else None
            packed, w_scale, colsum, bias = p, ws, cs, b
            self.layers[i].sp_data = NULL
            self.layers[i].sp_indices = NULL
            self.layers[i].sp_indptr = NULL
            self.layers[i].sparse_rows = 0
            self.layers[i].sparse_min_rows = 0
            if sparse is not None:
                sd, si, sp, min_rows, rows = sparse
                sp_data, sp_indices, sp_indptr = sd, si, sp
                _q8_csr("Q8Plan", nn, sp_indices.shape[0], sp_data.shape[0], sp_indptr.shape[0])
                if sp_indptr[0] != 0 or sp_indptr[nn] != sp_data.shape[0]:
                    raise ValueError("Q8Plan: the CSR's row pointers do not span its values")
                if sp_data.shape[0] and (np.asarray(si).min() < 0 or np.asarray(si).max() >= k
                                         or (np.diff(np.asarray(sp)) < 0).any()):
                    raise ValueError("Q8Plan: a CSR index is outside the layer's inputs")
                self.layers[i].sp_data = &sp_data[0] if sp_data.shape[0] else NULL
                self.layers[i].sp_indices = &sp_indices[0] if sp_indices.shape[0] else NULL
                self.layers[i].sp_indptr = &sp_indptr[0]
                self.layers[i].sparse_rows = rows
                self.layers[i].sparse_min_rows = min_rows
                self.keep.append((sd, si, sp))
            _q8_shapes("Q8Plan", 1, nn, k, (k + 3) // 4 * 4, packed.shape[0], 0)
            _same("Q8Plan", "w_scale.shape[0]", w_scale.shape[0], nn)
            _same("Q8Plan", "colsum.shape[0]", colsum.shape[0], nn)
            _same("Q8Plan", "bias.shape[0]", bias.shape[0], nn)
            if i > 0:
                _same("Q8Plan", f"layer {i}'s k", k, self.layers[i - 1].n)
            self.layers[i].packed = &packed[0]
            self.layers[i].w_scale = &w_scale[0]
            self.layers[i].colsum = &colsum[0]
            self.layers[i].bias = &bias[0]
            self.layers[i].k = k
            self.layers[i].n = nn
            self.layers[i].act = act
            self.layers[i].alpha = alpha
            self.keep.append((p, ws, cs, b))
            self.n_layers = i + 1
        self.n_inputs = self.layers[0].k
        self.n_outputs = self.layers[self.n_layers - 1].n

    def __dealloc__(self):
        PyMem_Free(self.layers)

    def forward(self, float[:, ::1] y, const float[:, ::1] x, int path, int n_threads):
        """y (m, n_outputs) from x (m, n_inputs) through every layer."""
        cdef int64_t m = x.shape[0], nbytes
        cdef int rc
        cdef void *scratch
        _same("Q8Plan.forward", "x.shape[1]", x.shape[1], self.n_inputs)
        _same("Q8Plan.forward", "y.shape[0]", y.shape[0], m)
        _same("Q8Plan.forward", "y.shape[1]", y.shape[1], self.n_outputs)
        if not fastnn_q8_path_supported(path):
            raise ValueError(f"Q8Plan.forward: int8 path {path} is not supported by this CPU or build")
        if m == 0:
            return
        nbytes = fastnn_q8_mlp_scratch_bytes(self.layers, self.n_layers, m)
        # the wrapper owns the scratch (the kernel allocates nothing); uninitialised: every byte is written first
        scratch = PyMem_Malloc(<size_t>nbytes)
        if scratch == NULL:
            raise MemoryError(f"Q8Plan.forward: cannot allocate {nbytes} bytes of scratch")
        try:
            with nogil:
                rc = fastnn_q8_mlp_forward(&y[0, 0], &x[0, 0], m, self.layers, self.n_layers, scratch, nbytes,
                                           path, n_threads)
        finally:
            PyMem_Free(scratch)
        if rc == FASTNN_ENONFINITE:
            raise ValueError("Q8Plan.forward: a layer's input holds NaN or infinity")
        _check(rc, "Q8Plan.forward")
