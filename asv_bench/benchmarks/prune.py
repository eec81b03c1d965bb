"""Inference of a pruned MNIST-shaped MLP: through the CSR copies fastnn.pruning's rule picks, and dense only.
The crossover itself is measured over a finer grid by asv_bench/prune_crossover.py."""
import numpy as np

from fastnn import pruning

from .common import MLP_SIZES, make_network, make_x, require_backend, setup, use_threads  # noqa: F401

NEVER = ((2.0, 0),)


class PrunedPredict:
    """Network.predict of the 784-256-128-10 MLP pruned by global magnitude (C backend, float32, one thread)."""

    params = [[0.9, 0.95, 0.99], [1, 256], ["rule", "dense"]]
    param_names = ["sparsity", "batch", "path"]

    def setup(self, sparsity, batch, path):
        require_backend("c")
        use_threads("c", 1)
        self.net = make_network("c", "float32")
        self.net.n_threads = 1
        self.net.prune(sparsity)
        X = make_x(batch, MLP_SIZES[0], "float32")
        self.x = np.ascontiguousarray(X[0]) if batch == 1 else X
        self.saved = pruning.SPARSE_RULES
        if path == "dense":
            pruning.SPARSE_RULES = NEVER
        self.net.predict(self.x)  # builds the CSR copies (or not), first touch of the weights

    def teardown(self, sparsity, batch, path):
        pruning.SPARSE_RULES = self.saved

    def time_predict(self, sparsity, batch, path):
        self.net.predict(self.x)
