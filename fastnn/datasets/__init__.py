"""Small real data sets shipped with fastnn, so the demo and the tests need no download (see README.md here)."""
import gzip
import os

import numpy as np

from .images import load_mnist, load_cifar10, CIFAR10_CLASSES
from .text import (CharVocabulary, WordData, load_words, WORD_LISTS, date_pairs, DATE_FORMATS, DATE_INPUT_ALPHABET,
                   DATE_OUTPUT_ALPHABET, DATE_INPUT_MAX_LENGTH, DATE_OUTPUT_LENGTH, load_stdlib_text,
                   STDLIB_TEXT_FILES)

_HERE = os.path.dirname(os.path.abspath(__file__))


def load_digits():
    """The UCI optical digits (1,797 8x8 images, pixel values 0..16, 10 classes).

    Returns (X, y): X float64 of shape (1797, 64), y int64 of shape (1797,).
    """
    with gzip.open(os.path.join(_HERE, "digits.csv.gz"), "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return data[:, :-1], data[:, -1].astype(np.int64)


def train_test_split(X, y, test_fraction=0.25, seed=0):
    """A seeded, stratification-free random split: (X_train, X_test, y_train, y_test)."""
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = int(round(len(X) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]
