"""Test setup shared by every test file.

`backend` runs a test once per backend ("c" and "python"). "c" is skipped when the extension is missing, unless
FASTNN_FORCE_EXT=1, where a missing extension is an error (the CI build must have it). FASTNN_BACKEND=python
runs the whole suite on the NumPy backend only.
"""
import os

import numpy as np
import pytest

import fastnn
from fastnn import _backend

FORCE_EXT = os.environ.get("FASTNN_FORCE_EXT", "")
ONLY_PYTHON = os.environ.get("FASTNN_BACKEND", "").lower() == "python"

if FORCE_EXT == "1" and not _backend.c_available():
    raise RuntimeError(f"FASTNN_FORCE_EXT=1 but fastnn._core does not import: {_backend._CORE_ERROR}")

BACKENDS = ["python"] if ONLY_PYTHON else ["c", "python"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "c" and not _backend.c_available():
        pytest.skip("the C extension is not built")
    return request.param


@pytest.fixture
def kernels(backend):
    """The kernel module of the backend under test."""
    return _backend.get(backend)


@pytest.fixture
def c_kernels():
    if ONLY_PYTHON or not _backend.c_available():
        pytest.skip("the C extension is not built (or FASTNN_BACKEND=python)")
    return _backend.get("c")


@pytest.fixture
def py_kernels():
    return _backend.get("python")


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def digits():
    """The shipped UCI digits, scaled to [0, 1] and split 75/25 with a fixed seed."""
    X, y = fastnn.datasets.load_digits()
    return fastnn.datasets.train_test_split(X / 16.0, y, test_fraction=0.25, seed=0)
