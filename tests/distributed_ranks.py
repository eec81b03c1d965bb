"""What each MPI rank runs for tests/test_distributed.py: `mpirun -n 2 python distributed_ranks.py SCENARIO OUT`.

Each scenario trains on this rank's shard of data every rank can rebuild (data(seed)), and writes what the test
compares into OUT/rank<r>.npz; the test computes the single-process references itself."""
import os
import signal
import sys
import time
import warnings

import numpy as np

import fastnn
from fastnn.distributed import DataParallel, FedAvg

N_FEATURES, N_CLASSES = 5, 3


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, N_FEATURES)), rng.integers(0, N_CLASSES, n)


def network(dtype, backend, seed):
    return fastnn.Network([N_FEATURES, 8, N_CLASSES], activations="tanh", loss="cross_entropy", dtype=dtype,
                          backend=backend, seed=seed)


def shard(n_rows, rank):
    """Rank 0 holds rows [0, n_rows[0]), rank 1 the next n_rows[1] rows."""
    start = sum(n_rows[:rank])
    return np.arange(start, start + n_rows[rank])


def equivalence(comm, out):
    """DataParallel for each (dtype, backend, hook, shards) case, and FedAvg(1) vs DataParallel full batch."""
    rank = comm.Get_rank()
    X, y = data(80)
    results = {}
    for name, dtype, backend, hook, n_rows in [("f64_c", "float64", "c", "c", (40, 40)),
                                               ("f32_c", "float32", "c", "c", (40, 40)),
                                               ("f64_c_python_hook", "float64", "c", "python", (40, 40)),
                                               ("f64_py", "float64", "python", "auto", (40, 40)),
                                               ("f64_c_uneven", "float64", "c", "auto", (40, 26)),
                                               ("f64_py_uneven", "float64", "python", "auto", (40, 26))]:
        if backend == "c" and not fastnn._backend.c_available():
            continue
        rows = shard(n_rows, rank)
        net = network(dtype, backend, seed=rank)  # rank 0's parameters must win
        dp = DataParallel(hook=hook)
        history = net.fit(X[rows], y[rows], epochs=20, batch_size=4, shuffle=False, optimizer="adam",
                          learning_rate=0.01, distributed=dp, metrics=["accuracy"])
        results[name] = net._params.copy()
        results[name + "_loss"] = np.array(history["loss"])
        results[name + "_accuracy"] = np.array(history["accuracy"])
        results[name + "_steps"] = np.array(dp.stats["steps"])
        results[name + "_hook"] = np.array(dp.stats["hook"])
    for n_rows in [(40, 40), (40, 26)]:
        rows = shard(n_rows, rank)
        key = "_".join(map(str, n_rows))
        for name, strategy in [("fedavg", FedAvg(local_epochs=1)), ("dp_full", DataParallel())]:
            net = network("float64", None, seed=0)
            net.fit(X[rows], y[rows], epochs=30, batch_size=1000, shuffle=False, optimizer="sgd",
                    learning_rate=0.5, distributed=strategy)
            results[f"{name}_{key}"] = net._params.copy()
    # FedAvg with several local epochs of minibatches, and with half the clients per round
    rows = shard((40, 26), rank)
    for name, strategy in [("fedavg_e2", FedAvg(local_epochs=2)), ("fedavg_half", FedAvg(fraction=0.5, seed=7))]:
        net = network("float64", None, seed=0)
        history = net.fit(X[rows], y[rows], epochs=3, batch_size=8, shuffle=False, optimizer="sgd",
                          learning_rate=0.2, distributed=strategy)
        results[name] = net._params.copy()
        results[name + "_loss"] = np.array(history["loss"])
    # validation, metrics and early stopping on shards whose losses differ: the ranks must agree
    Xr, yr = data(48, seed=10 + rank)
    net = network("float64", None, seed=0)
    stopping = fastnn.EarlyStopping(patience=2, min_delta=10.0, restore_best_weights=False)
    history = net.fit(Xr, yr, epochs=10, batch_size=8, validation_split=0.25, early_stopping=stopping,
                      metrics=["accuracy"], distributed=DataParallel())
    results["early_val_loss"] = np.array(history["val_loss"])
    results["early_val_accuracy"] = np.array(history["val_accuracy"])
    results["early_local_val_loss"] = np.array(net.evaluate(Xr[36:], yr[36:]))
    results["early_params"] = net._params.copy()
    # a callback that stops rank 1 only, after epoch 3, stops both
    net = network("float64", None, seed=0)
    history = net.fit(Xr, yr, epochs=10, batch_size=8, distributed=DataParallel(),
                      callbacks=[lambda epoch, history: not (rank == 1 and epoch == 2)])
    results["callback_epochs"] = np.array(len(history["loss"]))
    # a communicator of one rank changes nothing
    from mpi4py import MPI
    for name, strategy in [("self_dp", DataParallel(comm=MPI.COMM_SELF)), ("self_plain", None)]:
        net = network("float64", None, seed=rank)
        net.fit(X, y, epochs=3, batch_size=8, optimizer="adam", distributed=strategy)
        results[name] = net._params.copy()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **results)


def regression_network(seed):
    return fastnn.Network([N_FEATURES, 8, 1], activations="tanh", loss="mse", dtype="float64", seed=seed)


def nonfinite(comm, out):
    """Rank 1's shard has a target of 1e200 in row 13 (epoch 1, batch 3 of batch_size 4), whose squared error
    overflows: both ranks stop at that step."""
    rank = comm.Get_rank()
    X, _ = data(40, seed=rank)
    y = X.sum(axis=1)
    if rank == 1:
        y[13] = 1e200
    net = regression_network(seed=rank)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = net.fit(X, y, epochs=5, batch_size=4, shuffle=False, distributed=DataParallel(timeout=30))
    messages = [str(w.message) for w in caught if "diverged" in str(w.message)]
    np.savez(os.path.join(out, f"rank{rank}.npz"), params=net._params, epochs=np.array(len(history["loss"])),
             message=np.array(messages[0] if messages else ""))


def step_fails(comm, out):
    """On the NumPy backend, rank 1's backprop raises in its third step: rank 1 raises that error, rank 0 a
    DistributedError at the same step, and neither waits for the other."""
    import fastnn._py.network as twin
    rank = comm.Get_rank()
    X, y = data(40, seed=rank)
    net = network("float64", "python", seed=0)
    if rank == 1:
        backprop, calls = twin.net_backprop, []

        def failing(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("injected failure")
            return backprop(*args, **kwargs)
        twin.net_backprop = failing
    try:
        net.fit(X, y, epochs=2, batch_size=4, shuffle=False, distributed=DataParallel(timeout=30))
        error = "none"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    np.savez(os.path.join(out, f"rank{rank}.npz"), error=np.array(error))


def dies(comm, out, how):
    """Rank 1 dies (SIGKILL) or hangs (sleeps) after its second epoch; rank 0 must not wait forever."""
    rank = comm.Get_rank()
    X, y = data(40, seed=rank)
    net = network("float64", None, seed=0)

    def callback(epoch, history):
        if rank == 1 and epoch == 1:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(600)

    net.fit(X, y, epochs=1000, batch_size=4, distributed=DataParallel(timeout=2), callbacks=[callback])
    print(f"rank {rank} finished training", flush=True)


def main():
    from mpi4py import MPI
    scenario, out = sys.argv[1], sys.argv[2]
    comm = MPI.COMM_WORLD
    if scenario == "equivalence":
        equivalence(comm, out)
    elif scenario == "nonfinite":
        nonfinite(comm, out)
    elif scenario == "step_fails":
        step_fails(comm, out)
    else:
        dies(comm, out, scenario)


if __name__ == "__main__":
    main()
