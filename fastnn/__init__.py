"""fastnn: fast neural networks (dense and convolutional) on the CPU.

The hot loops are C99 with OpenMP (csrc/), wrapped by Cython (fastnn._core); a NumPy twin (fastnn._py) gives the
same numbers where the extension cannot build. See README.md.
"""
from . import _backend, datasets, distributed, search
from . import _threads
from ._threads import get_num_threads, set_num_threads
from .io import load
from .layers import (GRU, LSTM, AvgPool2D, Conv2D, Dense, Dropout, Embedding, Flatten, MaxPool2D, RepeatVector,
                     SimpleRNN)
from .network import Network
from .quantized import QuantizedNetwork
from .training import (CosineDecay, EarlyStopping, ExponentialDecay, History, ReduceLROnPlateau,
                       StepDecay)

__version__ = "0.1.0"

BACKEND = _backend.DEFAULT


def _blas_source():
    if BACKEND == "python":
        return "numpy"
    from . import _blas
    return _blas.describe() if _blas.SOURCE else None


def _gemm_engines():
    """The engines of the float products: the own kernels' instruction set, what FASTNN_GEMM forces."""
    if BACKEND == "python":
        return "numpy (matmul)"
    from . import _gemm
    forced = _gemm.forced()
    how = f"every product on {forced} (FASTNN_GEMM)" if forced else "own by default, the BLAS where timed faster"
    return f"own kernels {_gemm.isa()} (best here: {_gemm.ISA_NAMES[_backend._core.gemm_isa(best=True)]}); {how}"


def _int8_path(kernels):
    """The int8 GEMM path QuantizedNetwork uses (FASTNN_INT8_PATH or the best this CPU has)."""
    from . import quantized
    if BACKEND == "python":
        return "numpy (int64 matmul)"
    try:
        path = quantized.PATH_NAMES[quantized.resolve_path(kernels)]
    except (ValueError, RuntimeError) as exc:
        return f"error: {exc}"
    return f"{path} (available: {', '.join(quantized.available_paths(kernels))})"


def show_config(file=None):
    """Print (and return as a dict) the backend, OpenMP, threads and BLAS in use."""
    kernels = _backend.get(None)
    config = {
        "fastnn": __version__,
        "backend": BACKEND,
        "c_extension": "available" if _backend.c_available() else f"unavailable ({_backend._CORE_ERROR})",
        "openmp": bool(kernels.openmp_enabled()),
        "threads": get_num_threads(),
        "omp_wait_policy": __import__("os").environ.get("OMP_WAIT_POLICY"),
        "gomp_spincount": __import__("os").environ.get("GOMP_SPINCOUNT"),
        "blas_threads": __import__("fastnn._blas", fromlist=["_blas"]).num_threads() if BACKEND == "c" else None,
        "blas": _blas_source(),
        "int8": _int8_path(kernels),
        "gemm": _gemm_engines(),
    }
    import numpy
    config["numpy"] = numpy.__version__
    for key, value in config.items():
        print(f"{key:>12}: {value}", file=file)
    return config


def from_onnx(model, dtype=None, backend=None, output=None):
    """A Network from an ONNX model (a path, bytes or an onnx.ModelProto) made of the operators fastnn's layers
    are (as written by Network.to_onnx, torch.onnx.export and skl2onnx); see fastnn.onnx_import."""
    from .onnx_import import from_onnx as _from_onnx
    return _from_onnx(model, dtype=dtype, backend=backend, output=output)


def from_state_dict(layers_or_network, state_dict, *, input_shape=None, loss=None, dtype=None, backend=None,
                    strict=True):
    """A Network from an architecture and a mapping of arrays in PyTorch's names and layouts; see
    fastnn.convert."""
    from .convert import from_state_dict as _from_state_dict
    return _from_state_dict(layers_or_network, state_dict, input_shape=input_shape, loss=loss, dtype=dtype,
                            backend=backend, strict=strict)


def from_sklearn(estimator, *, dtype=None, backend=None):
    """A Network from a fitted scikit-learn (or fastnn) MLPClassifier / MLPRegressor; see fastnn.convert."""
    from .convert import from_sklearn as _from_sklearn
    return _from_sklearn(estimator, dtype=dtype, backend=backend)


_LAZY = ("MLPClassifier", "MLPRegressor")


def __getattr__(name):  # fastnn.MLPClassifier / MLPRegressor (fastnn/sklearn.py) import scikit-learn on first use
    if name in _LAZY:
        from . import sklearn
        return getattr(sklearn, name)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():  # what dir() lists by default, plus the estimators __getattr__ imports on first use
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["AvgPool2D", "BACKEND", "Conv2D", "CosineDecay", "Dense", "Dropout", "EarlyStopping", "Embedding",
           "ExponentialDecay", "Flatten", "from_onnx", "from_sklearn", "from_state_dict", "GRU", "History", "LSTM", "MLPClassifier", "MLPRegressor", "MaxPool2D",
           "Network", "QuantizedNetwork", "ReduceLROnPlateau", "RepeatVector", "SimpleRNN", "StepDecay", "datasets", "get_num_threads",
           "load", "set_num_threads", "show_config"]
