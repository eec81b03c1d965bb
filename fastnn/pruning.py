"""Magnitude pruning of a Network's weights, and sparse inference through the pruned dense layers.

The weights of every layer with parameters (Dense and Conv2D W, Embedding W, the recurrent layers' W_ih and
W_hh; never biases) make up the first `n_decay` entries of the network's flat parameter buffer. Pruning keeps
one uint8 flag per such weight (`net._prune_keep`, 0 = pruned, aligned with that prefix). The optimizer update
(fit, train_step; in C inside the update, in the NumPy twin after it) zeroes the pruned weights' gradients before
the step and the weights after it, so fine-tuning keeps them at exactly zero whatever momentum, Adam's moments or
weight decay would do, and the other weights follow the trajectory of training with the gradient masked
(torch.nn.utils.prune's weight = weight_orig * mask).

Semantics:
- prune(amount, scope): the `amount` fraction of the weights *still unpruned* is pruned, as
  torch.nn.utils.prune's PruningContainer does for iterative pruning: prune(0.5) twice leaves 25%. The number
  pruned is round(amount * n) (n: unpruned weights in the scope; Python's round, as torch). "global" ranks all
  unpruned weights together by |w| (one threshold); "layer" ranks each layer's weights separately, so each
  layer loses `amount` of its unpruned weights. Ties in |w| are broken by position: among equal magnitudes the
  weight earlier in the flat buffer is pruned first (a stable sort), so the result is deterministic.
- Assigning weights (set_weights, net.weights[i] = ..., net.biases[i] = ...) on a pruned network keeps the mask:
  the values given are copied, then the pruned positions are set to zero again. Writing into the views in place
  (net.weights[0][...] = ...) bypasses this; call net.prune(0.0) afterwards to re-apply the mask (and refresh the
  sparse copies used for inference).
- remove_pruning() drops the mask (torch's prune.remove): the weights keep their zeros, training may regrow them.

Sparse inference: a pruned float network predicts through a CSR copy of W^T of each Dense layer for which that
is faster than the dense kernel, by the rule in `sparse_rows` (measured by asv_bench/prune_crossover.py). The
copies are built on the first prediction after pruning or training and dropped whenever the weights change.
"""
import math

import numpy as np

from . import _validation as check
from ._sparse import CSRRows

SCOPES = ("global", "layer")

# (sparsity, rows): a Dense layer with at least this fraction of zero weights predicts through its CSR copy for
# batches of up to `rows` samples. Chosen from asv_bench/prune_crossover.py (one-layer networks of the MLP's
# three shapes, one thread): each threshold is the lowest sparsity at which the CSR copy was faster for every
# shape at every batch size up to `rows`, in repeated runs; 4096 is the most rows predict runs at once
# (network.INFER_ROWS). The single-sample dense time varies between allocations of the same network (the README
# has the figures), so batch 1 takes the threshold at which the CSR copy also beats the faster of them.
SPARSE_RULES = ((0.93, 32), (0.95, 256), (0.97, 4096))


def sparse_rows(sparsity):
    """The largest batch for which a Dense layer of this sparsity predicts through its CSR copy (0: never)."""
    rows = 0
    for threshold, batch in SPARSE_RULES:
        if sparsity >= threshold:
            rows = max(rows, batch)
    return rows


def weight_ranges(net):
    """[(layer index in net.layers, start, stop)]: each layer's weights in the flat buffer's weight prefix."""
    ranges, offset = [], 0
    for i, layer in enumerate(net.layers):
        if not layer.has_params:
            continue
        size = sum(math.prod(shape) for shape in layer.param_shapes()[0])
        ranges.append((i, offset, offset + size))
        offset += size
    assert offset == net.n_decay
    return ranges


def magnitude_keep(weights, keep, amount, groups):
    """The keep flags after pruning `amount` of the unpruned entries of each group (index arrays into
    `weights`) by magnitude, ties to the earlier position. keep: the current flags (bool); returns a new array."""
    new = keep.copy()
    for group in groups:
        alive = group[keep[group]]
        k = int(round(amount * alive.size))
        if k == 0:
            continue
        order = np.argsort(np.abs(weights[alive]), kind="stable")
        new[alive[order[:k]]] = False
    return new


def prune(net, amount=0.9, scope="global"):
    amount = check.check_float("amount", amount, 0.0, 1.0)
    check.check_choice("scope", scope, SCOPES)
    if net.n_decay == 0:
        raise ValueError("this network has no prunable weights (only Dense, Conv2D, Embedding and recurrent "
                         "layers have weights; biases are never pruned)")
    weights = net._params[:net.n_decay]
    keep = np.ones(net.n_decay, dtype=bool) if net._prune_keep is None else net._prune_keep.astype(bool)
    if scope == "global":
        groups = [np.arange(net.n_decay)]
    else:
        groups = [np.arange(start, stop) for _, start, stop in weight_ranges(net)]
    new = magnitude_keep(weights, keep, amount, groups)
    net._set_prune_keep(new.astype(np.uint8))


def sparsity(net, per_layer=False):
    """Fraction of weights that are exactly zero: over all weights, or {layer index: fraction} per layer."""
    if net.n_decay == 0:
        raise ValueError("this network has no weights (only biases or no parameters)")
    zero = net._params[:net.n_decay] == 0
    if not per_layer:
        return float(zero.mean())
    return {i: float(zero[start:stop].mean()) for i, start, stop in weight_ranges(net)}


def build_sparse(net):
    """Per layer: None, or (CSR of W^T, largest batch) for the Dense layers sparse enough to pay."""
    from .layers import Dense
    out = []
    for layer in net.layers:
        entry = None
        if isinstance(layer, Dense) and layer.steps == 1:
            Wt = layer.W.T
            nonzero = Wt != 0
            rows = sparse_rows(1.0 - nonzero.mean())
            if rows:
                counts = nonzero.sum(axis=1)
                indptr = np.zeros(Wt.shape[0] + 1, dtype=np.int64)
                np.cumsum(counts, out=indptr[1:])
                indices = np.nonzero(nonzero)[1].astype(np.int64)
                data = np.ascontiguousarray(Wt[nonzero], dtype=net.dtype)
                entry = (CSRRows(data, indices, indptr, Wt.shape), rows)
        out.append(entry)
    return out if any(e is not None for e in out) else []
