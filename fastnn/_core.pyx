# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The C backend: a thin layer that checks shapes, takes pointers, releases the GIL around each kernel of
csrc/ and turns its status code into an exception. The twin of every function is in fastnn/_py/.

Arrays are C-contiguous memoryviews of one dtype (float32 or float64) per call; Network does the argument
validation and conversion before it gets here.
"""
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating
from libc.stdint cimport int64_t

from fastnn._core cimport *

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


def blas_enabled():
    """True when large products go to the BLAS installed by set_blas."""
    return bool(fastnn_have_blas())


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
              Py_ssize_t t, int n_threads):
    """One Adam update (step t >= 1) of the flat parameter buffer, L2 weight decay on the first n_decay."""
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
                                      weight_decay, t, n_threads)
        else:
            rc = fastnn_adam_step_f64(&params[0], &grads[0], &m[0], &v[0], n, n_decay, lr, beta1, beta2, eps,
                                      weight_decay, t, n_threads)
    _check(rc, "adam_step")


def adamw_step(floating[::1] params, const floating[::1] grads, floating[::1] m, floating[::1] v,
               Py_ssize_t n_decay, double lr, double beta1, double beta2, double eps, double weight_decay,
               Py_ssize_t t, int n_threads):
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
                                       weight_decay, t, n_threads)
        else:
            rc = fastnn_adamw_step_f64(&params[0], &grads[0], &m[0], &v[0], n, n_decay, lr, beta1, beta2, eps,
                                       weight_decay, t, n_threads)
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


# ----------------------------------------------------------------------------------------- whole-network kernels
from libc.stdlib cimport calloc, free


cdef void *_address(arr, dtype, tuple shape, str what) except NULL:
    """The data pointer of a C-contiguous, writable array of exactly this dtype and shape (checked)."""
    if arr.dtype != dtype or tuple(arr.shape) != shape or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"NetHandle: {what} must be a writable C-contiguous {dtype} array of shape {shape}, "
                         f"got {arr.dtype} {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"NetHandle: {what} is empty")
    return <void *><size_t>arr.__array_interface__["data"][0]


cdef class NetHandle:
    """A C view (fastnn_net) of a network's buffers, built once and reused by the whole-network kernels.

    layers: a list of (W, b, dW, db, a, delta, act, predict_act, alpha), where a and delta are (max_batch, d_out)
    workspaces or both None (a handle for prediction only). It keeps every array alive while it exists."""
    cdef fastnn_net net
    cdef readonly object dtype
    cdef readonly bint is_f32
    cdef readonly Py_ssize_t max_batch, d_in, d_out, widest
    cdef object _keep

    def __cinit__(self):
        self.net.layers = NULL

    def __init__(self, list layers, int loss_kind, params, grads, Py_ssize_t n_decay, x_batch, t_batch,
                 w_batch=None):
        cdef Py_ssize_t i
        cdef fastnn_layer *L
        self.dtype = params.dtype
        if self.dtype.name not in ("float32", "float64"):
            raise TypeError(f"NetHandle: dtype must be float32 or float64, got {self.dtype}")
        self.is_f32 = self.dtype.name == "float32"
        if not layers:
            raise ValueError("NetHandle: no layers")
        self._keep = (list(layers), params, grads, x_batch, t_batch, w_batch)
        self.net.n_layers = len(layers)
        self.net.loss_kind = loss_kind
        self.net.params = _address(params, self.dtype, (params.shape[0],), "params")
        self.net.grads = _address(grads, self.dtype, (params.shape[0],), "grads")
        self.net.n_params = params.shape[0]
        if not 0 <= n_decay <= params.shape[0]:
            raise ValueError("NetHandle: n_decay out of range")
        self.net.n_decay = n_decay
        self.d_in = layers[0][0].shape[0]
        self.d_out = layers[len(layers) - 1][0].shape[1]  # (wraparound is off in this module)
        self.max_batch = 0 if layers[0][4] is None else layers[0][4].shape[0]
        self.net.max_batch = self.max_batch
        self.net.layers = <fastnn_layer *>calloc(len(layers), sizeof(fastnn_layer))
        if self.net.layers == NULL:
            raise MemoryError()
        self.widest = 0
        for i, (W, b, dW, db, a, delta, act, predict_act, alpha) in enumerate(layers):
            L = &self.net.layers[i]
            L.d_in, L.d_out = W.shape[0], W.shape[1]
            if i > 0 and L.d_in != self.net.layers[i - 1].d_out:
                raise ValueError(f"NetHandle: layer {i} takes {L.d_in} inputs, layer {i - 1} gives "
                                 f"{self.net.layers[i - 1].d_out}")
            L.act, L.predict_act, L.alpha = act, predict_act, alpha
            L.W = _address(W, self.dtype, (L.d_in, L.d_out), f"layer {i} W")
            L.b = _address(b, self.dtype, (L.d_out,), f"layer {i} b")
            L.dW = _address(dW, self.dtype, (L.d_in, L.d_out), f"layer {i} dW")
            L.db = _address(db, self.dtype, (L.d_out,), f"layer {i} db")
            if self.max_batch:
                L.a = _address(a, self.dtype, (self.max_batch, L.d_out), f"layer {i} a")
                L.delta = _address(delta, self.dtype, (self.max_batch, L.d_out), f"layer {i} delta")
            self.widest = max(self.widest, L.d_out)
        if self.max_batch:
            self.net.x_batch = _address(x_batch, self.dtype, (self.max_batch, self.d_in), "x_batch")
            self.net.t_batch = _address(t_batch, self.dtype, (self.max_batch, self.d_out), "t_batch")
            if w_batch is not None:
                self.net.w_batch = _address(w_batch, self.dtype, (self.max_batch,), "w_batch")

    def __dealloc__(self):
        free(self.net.layers)


cdef int _load_optimizer(fastnn_optimizer *opt, state, NetHandle h) except -1:
    opt.kind = state.kind
    opt.lr, opt.momentum, opt.nesterov = state.lr, state.momentum, state.nesterov
    opt.beta1, opt.beta2, opt.eps, opt.weight_decay = state.beta1, state.beta2, state.eps, state.weight_decay
    opt.rho, opt.eta_plus, opt.eta_minus = state.rho, state.eta_plus, state.eta_minus
    opt.step_min, opt.step_max = state.step_min, state.step_max
    opt.t = state.t
    n = (h.net.n_params,)
    opt.state1 = NULL if state.state1 is None else _address(state.state1, h.dtype, n, "optimizer state")
    opt.state2 = NULL if state.state2 is None else _address(state.state2, h.dtype, n, "optimizer state")
    return 0


def net_backprop(NetHandle h, x, t, int n_threads, w=None):
    """Forward and backward pass over one batch (x: (n, d_in), t: (n, d_out), n <= max_batch, sample weights
    w: (n,) or None): fills the workspaces and the gradient buffer, returns the batch's mean loss."""
    cdef const float[:, ::1] x32, t32
    cdef const double[:, ::1] x64, t64
    cdef const float[::1] w32
    cdef const double[::1] w64
    cdef const float *w32_ptr = NULL
    cdef const double *w64_ptr = NULL
    cdef double value = 0.0
    cdef int rc
    cdef Py_ssize_t n = x.shape[0]
    if x.shape != (n, h.d_in) or t.shape != (n, h.d_out) or not 0 < n <= h.max_batch:
        raise ValueError(f"net_backprop: x {x.shape} / t {t.shape} do not fit the network or its workspace")
    if w is not None and w.shape != (n,):
        raise ValueError(f"net_backprop: w has shape {w.shape}, expected ({n},)")
    if h.is_f32:
        x32, t32 = x, t
        if w is not None:
            w32 = w
            w32_ptr = &w32[0]
        with nogil:
            rc = fastnn_net_backprop_f32(&h.net, &value, &x32[0, 0], &t32[0, 0], w32_ptr, n, n_threads)
    else:
        x64, t64 = x, t
        if w is not None:
            w64 = w
            w64_ptr = &w64[0]
        with nogil:
            rc = fastnn_net_backprop_f64(&h.net, &value, &x64[0, 0], &t64[0, 0], w64_ptr, n, n_threads)
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
    state.t = opt.t
    _check(rc, "net_update")


def net_train_epoch(NetHandle h, state, X, T, const int64_t[::1] order, Py_ssize_t batch, int n_threads,
                    W=None):
    """One epoch of minibatch training in C with the GIL released throughout; W: sample weights (n,) or None.
    Returns (loss_sum, n_done, finite): finite is False when a batch loss was not finite (training stopped
    before that batch's update)."""
    cdef fastnn_optimizer opt
    cdef const float[:, ::1] X32, T32
    cdef const double[:, ::1] X64, T64
    cdef const float[::1] W32
    cdef const double[::1] W64
    cdef const float *W32_ptr = NULL
    cdef const double *W64_ptr = NULL
    cdef double loss_sum = 0.0
    cdef int64_t n_done = 0
    cdef int rc
    cdef Py_ssize_t n = X.shape[0]
    if X.shape != (n, h.d_in) or T.shape != (n, h.d_out) or order.shape[0] != n or n == 0:
        raise ValueError("net_train_epoch: X, T and order do not fit the network")
    if not 0 < batch <= h.max_batch:
        raise ValueError(f"net_train_epoch: batch {batch} exceeds the workspace ({h.max_batch})")
    if W is not None and (W.shape != (n,) or h.net.w_batch == NULL):
        raise ValueError("net_train_epoch: W must be (n,) and the handle needs a w_batch workspace")
    _load_optimizer(&opt, state, h)
    if h.is_f32:
        X32, T32 = X, T
        if W is not None:
            W32 = W
            W32_ptr = &W32[0]
        with nogil:
            rc = fastnn_net_train_epoch_f32(&h.net, &opt, &X32[0, 0], &T32[0, 0], W32_ptr, &order[0], n, batch,
                                            &loss_sum, &n_done, n_threads)
    else:
        X64, T64 = X, T
        if W is not None:
            W64 = W
            W64_ptr = &W64[0]
        with nogil:
            rc = fastnn_net_train_epoch_f64(&h.net, &opt, &X64[0, 0], &T64[0, 0], W64_ptr, &order[0], n, batch,
                                            &loss_sum, &n_done, n_threads)
    state.t = opt.t
    if rc == FASTNN_ENONFINITE:
        return loss_sum, n_done, False
    _check(rc, "net_train_epoch")
    return loss_sum, n_done, True


def net_forward_single(NetHandle h, y, x, scratch):
    """One sample x (d_in,) through the network for prediction into y (d_out,); scratch: 2 * widest values."""
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
