"""Magnitude pruning (fastnn/pruning.py, csrc/prune.c and its twin fastnn/_py/prune.py).

References: masks against a NumPy sort-and-threshold computation and against torch.nn.utils.prune (global and
per layer, one call and iterated); fine-tuning against PyTorch training the same network with prune's
weight = weight_orig * mask reparametrisation; sparse inference against NumPy's dense product."""
import copy
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import _codes, pruning
from fastnn._sparse import CSRRows
from references import ref_act

SIZES = [12, 10, 7, 4]


def _net(backend, dtype="float64", seed=0, sizes=SIZES, loss="cross_entropy"):
    return fastnn.Network(sizes, activations="tanh", loss=loss, dtype=dtype, seed=seed, backend=backend)


def _data(n=40, d=SIZES[0], classes=SIZES[-1], seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, classes, size=n)


def _weights(net):
    return net._params[:net.n_decay].copy()


def _ref_keep(w, amount, groups, keep=None):
    """NumPy reference: in each group, the round(amount * alive) alive entries of smallest |w| are dropped
    (weights drawn from a continuous distribution: no ties), by a threshold on the sorted magnitudes."""
    keep = np.ones(w.size, bool) if keep is None else keep.copy()
    for g in groups:
        alive = g[keep[g]]
        k = int(round(amount * alive.size))
        if k:
            threshold = np.sort(np.abs(w[alive]))[k - 1]
            keep[alive[np.abs(w[alive]) <= threshold]] = False
    return keep


def _layer_groups(net):
    out, offset = [], 0
    for W in net.weights:
        out.append(np.arange(offset, offset + W.size))
        offset += W.size
    return out


# ----------------------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("amounts", [(0.9,), (0.5, 0.5), (0.3, 0.6, 0.2), (0.0,)])
def test_masks_equal_numpy_reference(backend, scope, amounts):
    net = _net(backend)
    w0 = _weights(net)
    groups = [np.arange(w0.size)] if scope == "global" else _layer_groups(net)
    keep = None
    for amount in amounts:
        net.prune(amount, scope=scope)
        keep = _ref_keep(w0, amount, groups, keep)
    np.testing.assert_array_equal(net._prune_keep.astype(bool), keep)
    np.testing.assert_array_equal(_weights(net), np.where(keep, w0, 0.0))
    assert net.sparsity() == pytest.approx(1 - keep.mean())
    expected = {i: 1 - keep[g].mean() for i, g in enumerate(_layer_groups(net))}  # Dense layers 0, 1, 2
    assert net.sparsity(per_layer=True) == pytest.approx(expected)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_masks_equal_torch_prune(scope):
    torch = pytest.importorskip("torch")
    from torch.nn.utils import prune as tprune
    net = _net("python")
    mods = [torch.nn.Linear(W.shape[0], W.shape[1]).double() for W in net.weights]
    with torch.no_grad():
        for m, W in zip(mods, net.weights):
            m.weight.copy_(torch.from_numpy(W.T.copy()))
    for amount in (0.6, 0.5):  # iterated: torch's PruningContainer prunes amount of the remaining
        net.prune(amount, scope=scope)
        if scope == "global":
            tprune.global_unstructured([(m, "weight") for m in mods], tprune.L1Unstructured, amount=amount)
        else:
            for m in mods:
                tprune.l1_unstructured(m, "weight", amount=amount)
    flat = np.concatenate([m.weight_mask.numpy().T.ravel() for m in mods])
    np.testing.assert_array_equal(net._prune_keep, flat.astype(np.uint8))


def test_ties_broken_by_position(backend):
    net = _net(backend)
    signs = np.where(np.arange(net.n_decay) % 3 == 0, -1.0, 1.0)
    net._params[:net.n_decay] = 0.5 * signs
    net.prune(0.25)
    k = int(round(0.25 * net.n_decay))
    expected = np.r_[np.zeros(k, np.uint8), np.ones(net.n_decay - k, np.uint8)]
    np.testing.assert_array_equal(net._prune_keep, expected)


def test_conv_and_recurrent_weights_are_prunable_biases_never(backend):
    conv = fastnn.Network([fastnn.Conv2D(3, 3, activation="relu"), fastnn.Flatten(), fastnn.Dense(4)],
                          input_shape=(1, 6, 6), loss="cross_entropy", seed=0, backend=backend)
    rnn = fastnn.Network([fastnn.LSTM(5), fastnn.Dense(3)], input_shape=(4, 2), loss="cross_entropy", seed=0,
                         backend=backend)
    for net in (conv, rnn):
        b0 = net._params[net.n_decay:].copy()
        net.prune(0.5, scope="layer")
        np.testing.assert_array_equal(net._params[net.n_decay:], b0)
        for layer_sparsity in net.sparsity(per_layer=True).values():
            assert layer_sparsity == pytest.approx(0.5, abs=0.04)  # round(amount * n) of 15, 27, ...: within 1/2n


# ------------------------------------------------------------------------------------------------- training
OPTIMIZERS = [("sgd", dict(momentum=0.9, weight_decay=1e-3)), ("sgd", dict(momentum=0.9, nesterov=True)),
              ("adam", dict(weight_decay=1e-3)), ("adamw", dict(weight_decay=1e-2)), ("rmsprop", {})]


@pytest.mark.parametrize("optimizer,options", OPTIMIZERS)
def test_fit_keeps_pruned_weights_zero_and_backends_agree(optimizer, options, dtype):
    X, y = _data()
    nets = {}
    for backend in ("c", "python"):
        if backend == "c" and not fastnn._backend.c_available():
            continue
        net = _net(backend, dtype=dtype.name)
        # momentum / moments built up before pruning must not resurrect the pruned weights
        net.fit(X, y, epochs=1, batch_size=8, optimizer=optimizer, learning_rate=0.01, shuffle=False, **options)
        net.prune(0.7)
        keep = net._prune_keep.copy()
        before = _weights(net)
        net.fit(X, y, epochs=3, batch_size=8, optimizer=optimizer, learning_rate=0.01, shuffle=False,
                reset_optimizer=False, **options)
        net.train_step(X[:5], y[:5], optimizer=optimizer, learning_rate=0.01, **options)
        w = _weights(net)
        assert np.all(w[keep == 0] == 0)
        assert np.all(w[keep == 1] != before[keep == 1])  # the others do train
        np.testing.assert_array_equal(net._prune_keep, keep)
        nets[backend] = net
    if len(nets) == 2:
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(nets["c"]._params, nets["python"]._params, rtol=tol, atol=tol)


@pytest.mark.parametrize("optimizer,options", OPTIMIZERS)
def test_fine_tuning_follows_torch_prune(backend, optimizer, options):
    """Unpruned weights follow PyTorch training the network reparametrised as weight_orig * mask (gradient
    masked), with weight decay on the weights only, as fastnn applies it."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils import prune as tprune
    X, y = _data()
    net = _net(backend)
    net.prune(0.6, scope="layer")
    mods = [torch.nn.Linear(W.shape[0], W.shape[1]).double() for W in net.weights]
    with torch.no_grad():
        for m, W, b, keep in zip(mods, net.weights, net.biases, _split(net._prune_keep, net)):
            m.weight.copy_(torch.from_numpy(W.T.copy()))
            m.bias.copy_(torch.from_numpy(b.copy()))
            tprune.custom_from_mask(m, "weight", torch.from_numpy(keep.T.astype(np.float64)))
    model = torch.nn.Sequential(mods[0], torch.nn.Tanh(), mods[1], torch.nn.Tanh(), mods[2])
    wd = options.get("weight_decay", 0.0)
    groups = [{"params": [m.weight_orig for m in mods], "weight_decay": wd},
              {"params": [m.bias for m in mods], "weight_decay": 0.0}]
    lr = 0.01
    if optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=options["momentum"], nesterov=options.get("nesterov", False))
    elif optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=lr)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=lr)
    else:
        opt = torch.optim.RMSprop(groups, lr=lr, alpha=0.99, eps=1e-8)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for step in range(4):
        rows = slice(10 * step, 10 * step + 10)
        net.train_step(X[rows], y[rows], optimizer=optimizer, learning_rate=lr,
                       **({"rho": 0.99, "epsilon": 1e-8} if optimizer == "rmsprop" else {}), **options)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(Xt[rows]), yt[rows]).backward()
        opt.step()
    for m, W, b in zip(mods, net.weights, net.biases):
        # m.weight is only recomputed by the next forward: the effective weight is weight_orig * weight_mask
        effective = (m.weight_orig * m.weight_mask).detach().numpy().T
        np.testing.assert_allclose(W, effective, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, m.bias.detach().numpy(), rtol=1e-9, atol=1e-12)


def _split(keep, net):
    out, offset = [], 0
    for W in net.weights:
        out.append(keep[offset:offset + W.size].reshape(W.shape))
        offset += W.size
    return out


def test_mask_kernel_twins(c_kernels, py_kernels, dtype, rng):
    x = rng.normal(size=1001).astype(dtype)
    keep = (rng.random(1001) < 0.3).astype(np.uint8)
    expected = np.where(keep == 1, x, 0)
    for k in (c_kernels, py_kernels):
        for n_threads in (1, 2):
            got = x.copy()
            k.mask_apply(got, keep, n_threads)
            np.testing.assert_array_equal(got, expected)


# -------------------------------------------------------------------------------------------- persistence
def test_mask_survives_save_load_pickle_and_deepcopy(backend, tmp_path):
    X, y = _data()
    net = _net(backend)
    net.prune(0.8, scope="layer")
    path = tmp_path / "pruned.fastnn"
    net.save(path)
    copies = [fastnn.load(path, backend=backend), pickle.loads(pickle.dumps(net)), copy.deepcopy(net)]
    for other in copies:
        np.testing.assert_array_equal(other._prune_keep, net._prune_keep)
        np.testing.assert_array_equal(other._params, net._params)
        other.fit(X, y, epochs=1, optimizer="adam", learning_rate=0.05)
        assert np.all(_weights(other)[net._prune_keep == 0] == 0)


def test_unpruned_file_has_no_mask_and_remove_pruning(backend, tmp_path):
    X, y = _data()
    net = _net(backend)
    net.save(tmp_path / "plain.fastnn")
    assert not fastnn.load(tmp_path / "plain.fastnn").pruned
    net.prune(0.5)
    assert net.pruned
    net.remove_pruning()
    assert not net.pruned and net.sparsity() == pytest.approx(0.5, abs=0.01)
    net.fit(X, y, epochs=1, optimizer="adam", learning_rate=0.05)
    assert net.sparsity() < 0.01  # regrown
    net.save(tmp_path / "removed.fastnn")
    assert not fastnn.load(tmp_path / "removed.fastnn").pruned


def test_load_refuses_an_inconsistent_mask(tmp_path):
    net = _net("python")
    net.prune(0.5)
    net.save(tmp_path / "a.fastnn")
    import zipfile
    with zipfile.ZipFile(tmp_path / "a.fastnn") as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    import io as _io
    buf = _io.BytesIO()
    np.save(buf, np.ones(net.n_decay, np.uint8) * 2)
    entries["prune_mask.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "b.fastnn", "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    with pytest.raises(ValueError, match="pruning mask"):
        fastnn.load(tmp_path / "b.fastnn")


def test_assigning_weights_reapplies_the_mask(backend, rng):
    net = _net(backend)
    net.prune(0.5, scope="layer")
    keeps = _split(net._prune_keep, net)
    new = [rng.normal(size=W.shape) for W in net.weights]
    net.weights[0] = new[0]
    np.testing.assert_array_equal(net.weights[0], np.where(keeps[0] == 1, new[0], 0))
    arrays = net.get_weights()
    arrays[2] = new[1]  # layer 1's W (get_weights: W0, b0, W1, b1, ...)
    net.set_weights(arrays)
    np.testing.assert_array_equal(net.weights[1], np.where(keeps[1] == 1, new[1], 0))


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("amount,scope,error", [(-0.1, "global", ValueError), (1.0, "global", ValueError),
                                                (1.5, "layer", ValueError), (float("nan"), "global", ValueError),
                                                ("0.5", "global", TypeError), (None, "global", TypeError),
                                                (0.5, "row", ValueError), (0.5, None, ValueError)])
def test_bad_input_leaves_network_unchanged(backend, amount, scope, error):
    net = _net(backend)
    net.prune(0.3)
    params, keep = net._params.copy(), net._prune_keep.copy()
    with pytest.raises(error):
        net.prune(amount, scope=scope)
    np.testing.assert_array_equal(net._params, params)
    np.testing.assert_array_equal(net._prune_keep, keep)


def test_prune_refused_during_fit(backend):
    X, y = _data()
    net = _net(backend)
    net.prune(0.5)
    errors = []

    def callback(epoch, history):
        for call in (lambda: net.prune(0.5), net.remove_pruning):
            with pytest.raises(RuntimeError, match="while fit is running"):
                call()
            errors.append(epoch)

    keep = net._prune_keep.copy()
    net.fit(X, y, epochs=2, optimizer="adam", callbacks=[callback])
    assert errors == [0, 0, 1, 1]
    np.testing.assert_array_equal(net._prune_keep, keep)
    assert np.all(_weights(net)[keep == 0] == 0)
    net.prune(0.5)  # after fit: fine
    assert net.sparsity() == pytest.approx(0.75, abs=0.01)


def test_no_prunable_weights_is_refused(backend, monkeypatch):
    # every Network ends in a Dense layer, so there is always a weight to prune; the check is for the day a
    # weightless layer ends one: a network that reports no weights
    net = _net(backend)
    params = net._params.copy()
    monkeypatch.setattr(net, "n_decay", 0)
    with pytest.raises(ValueError, match="no prunable weights"):
        net.prune(0.5)
    np.testing.assert_array_equal(net._params, params)
    assert not net.pruned


# ------------------------------------------------------------------------------------------ sparse inference
def _csr_of_transpose(W):
    Wt = W.T
    nz = Wt != 0
    indptr = np.r_[0, np.cumsum(nz.sum(1))].astype(np.int64)
    return CSRRows(np.ascontiguousarray(Wt[nz]), np.nonzero(nz)[1].astype(np.int64), indptr, Wt.shape)


@pytest.mark.parametrize("n", [1, 3, 4, 9])
@pytest.mark.parametrize("act", [_codes.LINEAR, _codes.RELU, _codes.TANH, _codes.SOFTMAX, _codes.LEAKY_RELU])
def test_sparse_dense_forward_equals_numpy(kernels, dtype, rng, n, act):
    W = rng.normal(size=(13, 9)) * (rng.random((13, 9)) < 0.2)
    W[:, 4] = 0  # an output with no stored value
    b = rng.normal(size=9)
    x = rng.normal(size=(n, 13))
    expected = ref_act(x @ W + b, act, 0.01)
    for n_threads in (1, 2):
        y = np.full((n, 9), np.nan, dtype=dtype)
        kernels.sparse_dense_forward(y, x.astype(dtype), _csr_of_transpose(W.astype(dtype)), b.astype(dtype), act,
                                     0.01, n_threads)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def test_sparse_kernel_thread_count_independent(c_kernels, rng):
    W = (rng.normal(size=(200, 64)) * (rng.random((200, 64)) < 0.1)).astype(np.float32)
    x = rng.normal(size=(37, 200)).astype(np.float32)
    b = rng.normal(size=64).astype(np.float32)
    outs = []
    for n_threads in (1, 2, 3):
        y = np.empty((37, 64), np.float32)
        c_kernels.sparse_dense_forward(y, x, _csr_of_transpose(W), b, _codes.RELU, 0.0, n_threads)
        outs.append(y)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


@pytest.mark.parametrize("rules", [None, ((0.0, 10**9),)])  # the shipped rule, and sparse for every batch
def test_sparse_inference_equals_dense(backend, dtype, monkeypatch, rules):
    if rules is not None:
        monkeypatch.setattr(pruning, "SPARSE_RULES", rules)
    X, y = _data(n=50)
    net = _net(backend, dtype=dtype.name, sizes=[12, 64, 32, 4])
    net.prune(0.97)
    W = [w.astype(np.float64) for w in net.weights]
    b = [v.astype(np.float64) for v in net.biases]
    a = X
    for i in range(3):
        a = ref_act(a @ W[i] + b[i], _codes.TANH if i < 2 else _codes.SOFTMAX, 0.0)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    single = net.predict(X[0])
    assert any(entry is not None for entry in net._sparse)  # the CSR copies are in use
    np.testing.assert_allclose(single, a[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(net.predict(X), a, rtol=tol, atol=tol)
    assert net.evaluate(X, y) == pytest.approx(-np.mean(np.log(a[np.arange(50), y])), rel=1e-4)
    # training drops the copies; the next prediction rebuilds them from the new weights
    net.fit(X, y, epochs=1, optimizer="adam", learning_rate=0.01)
    assert not net._sparse
    dense = net.predict(X)
    W = [w.astype(np.float64) for w in net.weights]
    b = [v.astype(np.float64) for v in net.biases]
    a = X
    for i in range(3):
        a = ref_act(a @ W[i] + b[i], _codes.TANH if i < 2 else _codes.SOFTMAX, 0.0)
    np.testing.assert_allclose(dense, a, rtol=tol, atol=tol)
    np.testing.assert_allclose(net.predict(X[3]), a[3], rtol=tol, atol=tol)


def test_sparse_rule_only_at_high_sparsity():
    assert pruning.sparse_rows(0.0) == 0
    assert pruning.sparse_rows(0.5) == 0
    for threshold, rows in pruning.SPARSE_RULES:
        assert pruning.sparse_rows(threshold) >= rows


def test_sparse_inference_after_conv_layers(backend, monkeypatch, rng):
    """The Dense layers behind Conv2D + Flatten predict through their CSR copies; the conv layer stays dense."""
    net = fastnn.Network([fastnn.Conv2D(3, 3, activation="relu"), fastnn.Flatten(), fastnn.Dense(16, "relu"),
                          fastnn.Dense(4)], input_shape=(1, 6, 6), loss="cross_entropy", seed=0, backend=backend)
    net.prune(0.9, scope="layer")
    X = rng.normal(size=(9, 1, 6, 6))
    monkeypatch.setattr(pruning, "SPARSE_RULES", ((2.0, 0),))  # never
    dense, dense_one = net.predict(X), net.predict(X[0])
    assert not net._sparse
    monkeypatch.setattr(pruning, "SPARSE_RULES", ((0.0, 10**9),))  # always
    net.prune(0.0)  # re-applies the mask, drops the copies: the next prediction builds them under the new rule
    sparse, sparse_one = net.predict(X), net.predict(X[0])
    assert [entry is not None for entry in net._sparse] == [False, False, True, True]
    np.testing.assert_allclose(sparse, dense, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sparse_one, dense_one, rtol=1e-6, atol=1e-6)


def test_distillation_keeps_pruned_weights_zero(backend):
    """Fine-tuning a pruned student by distillation goes through the same masked update."""
    X, y = _data()
    teacher = _net(backend, seed=5)
    teacher.fit(X, y, epochs=2, optimizer="adam", learning_rate=0.01)
    net = _net(backend)
    net.prune(0.8)
    keep = net._prune_keep.copy()
    net.fit(X, y, epochs=2, optimizer="adam", learning_rate=0.01, teacher=teacher, temperature=4.0, alpha=0.9)
    net.train_step(X[:8], y[:8], optimizer="adam", learning_rate=0.01, teacher=teacher, temperature=4.0, alpha=0.9)
    assert np.all(_weights(net)[keep == 0] == 0)
    assert net.sparsity() == pytest.approx(0.8, abs=0.01)
