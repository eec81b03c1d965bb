"""Whole-array checks on the inputs (twin of csrc/checks.c)."""
import numpy as np

SLICE = 1 << 16  # elements per isfinite call


def all_finite(x, n_threads):
    """True when the 1-D array x holds no NaN and no infinity; in slices, so no boolean temporary the size of x."""
    return all(bool(np.isfinite(x[i:i + SLICE]).all()) for i in range(0, x.shape[0], SLICE))
