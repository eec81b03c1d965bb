"""Recurrent networks: the recurrent and embedding kernels of each backend called directly (forward and
backpropagation through time), and the character LSTM of `python -m fastnn text` (one train_step, and one token of
stateful generation).

The kernel shapes are the text demo's character LSTM (a batch of 1 sequence of 64 steps, 128 units: training on
one stream) and a batched, wider variant (32 sequences of 64 steps, 256 units: compare.py's lstm_batch); every
cell (SimpleRNN with tanh, LSTM, GRU) runs both, on 64 input features (the demo's embedding width), with
return_sequences (dy on every step) and with the gradient of the input (a recurrent layer after an Embedding
needs it).
"""
import numpy as np

import fastnn
from fastnn import _codes

from .common import BACKENDS, THREADS, kernels, require_backend, rng, setup, use_threads  # noqa: F401 (setup)

RNN_DTYPES = ["float32"]
CELLS = ["simple", "lstm", "gru"]  # fastnn._codes.CELL_SIMPLE, CELL_LSTM, CELL_GRU (looked up in setup, see below)
FEATURES = 64  # input width of every recurrent kernel here: the text demo's Embedding(V, 64)
# name: (batch n, steps T, units U)
RNN_SHAPES = {
    "n1_T64_U128": (1, 64, 128),
    "n32_T64_U256": (32, 64, 256),
}
VOCAB = 65  # the character vocabulary of compare.py's recurrent workloads
LR = 2e-3  # the text demo's Adam learning rate and gradient clipping
CLIP_NORM = 5.0


def char_lstm(stateful=False):
    """The text demo's character model: Embedding(65, 64) -> LSTM(128, return_sequences) -> Dense(65)."""
    return [fastnn.Embedding(VOCAB, FEATURES), fastnn.LSTM(128, return_sequences=True, stateful=stateful),
            fastnn.Dense(VOCAB)]


def make_char_lstm(backend, dtype, stateful=False):
    return fastnn.Network(char_lstm(stateful), input_shape=(None,), loss="cross_entropy", dtype=dtype, seed=0,
                          backend=backend)


def make_ids(n, T, seed=0):
    """n sequences of T random token ids in [0, VOCAB) and their next-token targets, int64 (n, T) each."""
    stream = rng(seed).integers(0, VOCAB, size=n * T + 1)
    return stream[:-1].reshape(n, T), stream[1:].reshape(n, T)


# Everything recurrent is looked up when a benchmark is set up, never at import: asv imports this module for
# every commit it measures, and a commit from before the recurrent layers must skip these benchmarks (setup raises
# NotImplementedError) instead of breaking the discovery of the whole suite.
def require_kernel(backend, name):
    """The kernel `name` of a backend; NotImplementedError (asv: skip) for a build that predates it."""
    k = kernels(backend)
    if not hasattr(k, name) or not hasattr(fastnn, "LSTM"):
        raise NotImplementedError(f"backend {backend!r} has no kernel {name} (built before the recurrent layers)")
    return k


def cell_code(cell):
    """fastnn's code for a cell name and its number of gate blocks."""
    code = getattr(_codes, "CELL_" + cell.upper(), None)
    if code is None:
        raise NotImplementedError(f"this fastnn has no {cell} cell")
    return code, _codes.CELL_GATES[code]


class RNNKernels:
    """rnn_forward and rnn_backward of each cell over a whole batch of sequences (workspaces as Network lays them
    out: time-major, flat). The backward kernel overwrites the forward's gates and cells with its own batch-major
    intermediates, so time_backward first copies the forward's back from a saved copy (memory traffic of the
    size of the workspaces, small next to the kernel's products); setup runs the forward pass once to fill
    them."""

    params = [BACKENDS, RNN_DTYPES, CELLS, list(RNN_SHAPES), THREADS]
    param_names = ["backend", "dtype", "cell", "shape", "n_threads"]

    def setup(self, backend, dtype, cell, shape, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.k = require_kernel(backend, "rnn_forward")
        self.n_threads = n_threads
        n, T, U = RNN_SHAPES[shape]
        F, (code, gates) = FEATURES, cell_code(cell)
        GU = gates * U
        self.seq = (code, _codes.TANH, 1, T, F, U)
        gen = rng()
        bound = 1.0 / np.sqrt(U)  # PyTorch's (and fastnn's) initialisation
        self.W_ih, self.W_hh = (gen.uniform(-bound, bound, s).astype(dtype) for s in ((GU, F), (GU, U)))
        self.b_ih, self.b_hh = (gen.uniform(-bound, bound, GU).astype(dtype) for _ in range(2))
        self.x = gen.standard_normal((n, T * F)).astype(dtype)
        self.y = np.empty((n, T * U), dtype=dtype)
        self.states = np.empty((T + 1) * n * U, dtype=dtype)
        self.gates = np.empty(T * n * GU, dtype=dtype)
        self.cells = None if cell == "simple" else np.empty((T + 1) * n * U, dtype=dtype)
        self.proj = np.empty(n * T * GU, dtype=dtype)
        self.dgates = np.empty(T * n * GU, dtype=dtype)
        self.carry = np.empty(3 * n * U, dtype=dtype)
        self.dy = (gen.standard_normal((n, T * U)) / (n * T)).astype(dtype)
        self.dx = np.empty_like(self.x)
        self.dW_ih, self.dW_hh = np.empty_like(self.W_ih), np.empty_like(self.W_hh)
        self.db_ih, self.db_hh = np.empty_like(self.b_ih), np.empty_like(self.b_hh)
        self.time_forward(backend, dtype, cell, shape, n_threads)
        self.saved_gates = self.gates.copy()
        self.saved_cells = None if self.cells is None else self.cells.copy()

    def time_forward(self, backend, dtype, cell, shape, n_threads):
        self.k.rnn_forward(self.y, self.states, self.gates, self.cells, self.proj, self.x, self.W_ih, self.W_hh,
                           self.b_ih, self.b_hh, None, None, self.seq, self.n_threads)

    def time_backward(self, backend, dtype, cell, shape, n_threads):
        np.copyto(self.gates, self.saved_gates)
        if self.cells is not None:
            np.copyto(self.cells, self.saved_cells)
        self.k.rnn_backward(self.dx, self.dW_ih, self.dW_hh, self.db_ih, self.db_hh, self.dgates, self.gates,
                            self.cells, self.carry, self.dy, self.x, self.states, self.W_ih, self.W_hh, self.seq,
                            self.n_threads)


class EmbeddingKernels:
    """embedding_forward (row lookup) and embedding_backward (rows scattered into dW) of Embedding(65, 64) over the
    tokens of the batches of RNNKernels (64 and 2048 tokens)."""

    params = [BACKENDS, RNN_DTYPES, list(RNN_SHAPES), THREADS]
    param_names = ["backend", "dtype", "shape", "n_threads"]

    def setup(self, backend, dtype, shape, n_threads):
        require_backend(backend)
        use_threads(backend, n_threads)
        self.k = require_kernel(backend, "embedding_forward")
        self.n_threads = n_threads
        n, T, _ = RNN_SHAPES[shape]
        ids, _ = make_ids(n, T)
        self.ids = ids.astype(dtype)  # token ids travel in the network's real-valued buffers
        gen = rng()
        self.W = gen.standard_normal((VOCAB, FEATURES)).astype(dtype)
        self.y = np.empty((n * T, FEATURES), dtype=dtype)
        self.dy = gen.standard_normal((n * T, FEATURES)).astype(dtype)
        self.dW = np.empty_like(self.W)

    def time_forward(self, backend, dtype, shape, n_threads):
        self.k.embedding_forward(self.y, self.ids, self.W, self.n_threads)

    def time_backward(self, backend, dtype, shape, n_threads):
        self.k.embedding_backward(self.dW, self.dy, self.ids, self.n_threads)


class CharLSTMTrain:
    """The text demo's character LSTM: Network.train_step (forward, BPTT, gradient clipping to norm 5, Adam) on a
    batch of 1 or 32 sequences of 64 characters."""

    params = [BACKENDS, RNN_DTYPES, [1, 32], THREADS]
    param_names = ["backend", "dtype", "batch", "n_threads"]

    def setup(self, backend, dtype, batch, n_threads):
        require_backend(backend)
        require_kernel(backend, "rnn_forward")
        use_threads(backend, n_threads)
        self.net = make_char_lstm(backend, dtype)
        self.X, self.y = make_ids(batch, 64)
        self.time_train_step(backend, dtype, batch, n_threads)  # allocates the workspaces and Adam's moments

    def time_train_step(self, backend, dtype, batch, n_threads):
        self.net.train_step(self.X, self.y, optimizer="adam", learning_rate=LR, clip_norm=CLIP_NORM)


class CharLSTMGenerate:
    """One token of generation with the stateful character LSTM: Network.predict on a (1, 1) batch, the state
    carried from call to call (what fastnn.generation.generate does per token, sampling aside)."""

    params = [BACKENDS, RNN_DTYPES, THREADS]
    param_names = ["backend", "dtype", "n_threads"]

    def setup(self, backend, dtype, n_threads):
        require_backend(backend)
        require_kernel(backend, "rnn_forward")
        use_threads(backend, n_threads)
        self.net = make_char_lstm(backend, dtype, stateful=True)
        self.token = np.array([[1]])
        self.net.predict(self.token)

    def time_next_token(self, backend, dtype, n_threads):
        self.net.predict(self.token)
