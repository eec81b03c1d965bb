"""Small real data sets shipped with fastnn, so the demo and the tests need no download (see README.md here)."""
import gzip as _gzip
import math as _math
import numbers as _numbers
import os as _os

import numpy as _np

from .images import load_mnist, load_cifar10, CIFAR10_CLASSES
from .text import (CharVocabulary, WordData, load_words, WORD_LISTS, date_pairs, DATE_FORMATS, DATE_INPUT_ALPHABET,
                   DATE_OUTPUT_ALPHABET, DATE_INPUT_MAX_LENGTH, DATE_OUTPUT_LENGTH, load_stdlib_text,
                   STDLIB_TEXT_FILES)

__all__ = ["CIFAR10_CLASSES", "CharVocabulary", "DATE_FORMATS", "DATE_INPUT_ALPHABET", "DATE_INPUT_MAX_LENGTH",
           "DATE_OUTPUT_ALPHABET", "DATE_OUTPUT_LENGTH", "STDLIB_TEXT_FILES", "WORD_LISTS", "WordData",
           "date_pairs", "load_cifar10", "load_digits", "load_mnist", "load_stdlib_text", "load_words",
           "train_test_split"]

_HERE = _os.path.dirname(_os.path.abspath(__file__))


def __dir__():
    """The public names only: the loaders, classes and constants (the submodules images and text, and the
    modules this one uses, stay importable but are not listed)."""
    return sorted(__all__)


def load_digits():
    """The UCI optical digits (1,797 8x8 images, pixel values 0..16, 10 classes).

    Returns (X, y): X float64 of shape (1797, 64), y int64 of shape (1797,).
    """
    with _gzip.open(_os.path.join(_HERE, "digits.csv.gz"), "rt") as f:
        data = _np.loadtxt(f, delimiter=",", dtype=_np.float64)
    return data[:, :-1], data[:, -1].astype(_np.int64)


class _Unset:
    """The default of an argument that has another spelling (to tell "not given" from any value)."""

    def __init__(self, value, text=None):
        self.value = value
        self.text = repr(value) if text is None else text

    def __repr__(self):
        return self.text


_DEFAULT_FRACTION, _DEFAULT_SEED = _Unset(0.25), _Unset(0)
_UNSET_STATE = _Unset(None, "<unset: seed is used>")


def _is_real(value):
    return isinstance(value, _numbers.Real) and not isinstance(value, (bool, _np.bool_))


def _n_test(n, test_fraction, test_size):
    if test_size is not None:  # scikit-learn's: a fraction in (0, 1), rounded up, or a count in [1, n - 1]
        if isinstance(test_size, _numbers.Integral) and not isinstance(test_size, (bool, _np.bool_)):
            if not 1 <= test_size < n:
                raise ValueError(f"test_size={test_size} must be a count in [1, {n - 1}] for {n} samples (or a "
                                 "fraction in (0, 1))")
            return int(test_size)
        if not _is_real(test_size) or not 0 < test_size < 1:
            raise ValueError(f"test_size must be a fraction in (0, 1) or a count of samples, got {test_size!r}")
        n_test = _math.ceil(test_size * n)
        if not 0 < n_test < n:
            raise ValueError(f"test_size={test_size} leaves no training or no test samples out of {n}")
        return n_test
    if not _is_real(test_fraction) or not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be a number in [0, 1), got {test_fraction!r}")
    return int(round(n * test_fraction))


def _order(n, seed, random_state):
    if random_state is None or isinstance(random_state, (_numbers.Integral, _np.random.RandomState)):
        # scikit-learn's check_random_state: None is NumPy's global RandomState, an int seeds a new one
        if isinstance(random_state, (bool, _np.bool_)):
            raise TypeError("random_state must be an int, None, a numpy.random.RandomState or Generator, got "
                            "a bool")
        if random_state is None:
            rs = _np.random.mtrand._rand
        elif isinstance(random_state, _np.random.RandomState):
            rs = random_state
        else:
            rs = _np.random.RandomState(random_state)
        return rs.permutation(n)
    if isinstance(random_state, _np.random.Generator):
        return random_state.permutation(n)
    if random_state is not _UNSET_STATE:
        raise TypeError("random_state must be an int, None, a numpy.random.RandomState or Generator, got "
                        f"{type(random_state).__name__}")
    return _np.random.default_rng(seed).permutation(n)


def train_test_split(X, y, test_fraction=_DEFAULT_FRACTION, seed=_DEFAULT_SEED, *, test_size=None,
                     random_state=_UNSET_STATE):
    """A random split without stratification: (X_train, X_test, y_train, y_test).

    Two spellings of the same two choices; give one of each pair, not both:

    - fastnn's: ``test_fraction`` (default 0.25; the test set has round(n * test_fraction) samples) and ``seed``
      (default 0; anything numpy.random.default_rng takes: None draws a fresh split each call).
    - scikit-learn's: ``test_size``, a fraction in (0, 1) (the test set has ceil(n * test_size) samples) or a
      count of samples, and ``random_state``: an int, None, or a numpy.random.RandomState / Generator. With an
      int or a RandomState the split is exactly sklearn.model_selection.train_test_split's (shuffle=True, no
      stratify); with a Generator, its permutation.
    """
    if test_size is not None and test_fraction is not _DEFAULT_FRACTION:
        raise TypeError("give test_fraction (fastnn's name) or test_size (scikit-learn's), not both")
    if random_state is not _UNSET_STATE and seed is not _DEFAULT_SEED:
        raise TypeError("give seed (fastnn's name) or random_state (scikit-learn's), not both")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples and y has {len(y)}; they must be as many")
    n = len(X)
    fraction = test_fraction.value if test_fraction is _DEFAULT_FRACTION else test_fraction
    n_test = _n_test(n, fraction, test_size)
    seed = seed.value if seed is _DEFAULT_SEED else seed
    order = _order(n, seed, random_state)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]
