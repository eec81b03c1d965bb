"""Training on several processes or machines over MPI: data-parallel training and federated averaging.

    net.fit(X_shard, y_shard, epochs=10, batch_size=64, distributed=fastnn.distributed.DataParallel())
    net.fit(X_client, y_client, epochs=20, distributed=fastnn.distributed.FedAvg(local_epochs=2))

Run the same script on every rank (`mpirun -n 4 python train.py`), each with its own shard of the data. mpi4py
(the optional extra `fastnn[mpi]`) is imported only when one of these objects is created, so `import fastnn`
never needs MPI.

DataParallel, per step: every rank computes the gradient of its batch, the ranks sum the flat gradient buffer
in place (MPI_Allreduce, called from the C training step between backprop and the optimizer update, with no
Python call per step), each rank's share weighted by its batch's rows over the global batch's, so the update
is the one a single process makes on the union of the ranks' batches (the global batch: ranks x batch_size
rows). Rank 0's initial parameters and generator state are broadcast at the start of fit, so the ranks start
equal and stay equal (they apply the same summed gradient). Shards may differ in size: every rank makes the
same number of steps per epoch (the most any rank needs); a rank whose shard has run out of batches takes part
with an empty batch (zero rows, zero weight), so the result is still the exact mean over the rows trained. The
epoch's loss, metrics and validation loss are summed over the ranks, so the history, early stopping, the
learning-rate schedule and the non-finite check agree on every rank; a callback returning False on any rank
stops every rank. Only rank 0 prints progress; write model files from rank 0 (`if dp.is_root: net.save(...)`).

FedAvg (McMahan et al. 2017): each fit epoch is one round: the participating ranks (clients) train
`local_epochs` epochs on their own shard with their own optimizer state, then the parameters are averaged over
them, weighted by their sample counts, and every rank continues from the average. With local_epochs=1, one
full batch per client and plain SGD this is exactly DataParallel's full-batch step.

A rank that dies or hangs: the others would wait in the allreduce forever, so each rank runs a watchdog
thread; when a collective step has made no progress for `timeout` seconds it prints which rank gave up where
and aborts the MPI job (MPI_Abort), so every rank exits with an error instead of hanging. (Open MPI's mpirun
also ends the job when a rank exits without finalising.)
"""
import ctypes
import math
import os
import sys
import threading
import time

import numpy as np

__all__ = ["DataParallel", "FedAvg", "DistributedError"]


class DistributedError(RuntimeError):
    """Data-parallel training stopped because another rank failed, or the allreduce itself failed."""


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("fastnn.distributed needs mpi4py and an MPI library (Open MPI or MPICH): "
                          "pip install 'fastnn[mpi]' (or pip install mpi4py)") from None
    return MPI


def _mpi_allreduce_address():
    """The address of MPI_Allreduce in the MPI library mpi4py loaded, or None."""
    try:
        return ctypes.cast(ctypes.CDLL(None).MPI_Allreduce, ctypes.c_void_p).value
    except (AttributeError, OSError):
        pass
    try:  # loaded without RTLD_GLOBAL: find it among the process's mapped files
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libmpi" in line and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return ctypes.cast(ctypes.CDLL(path).MPI_Allreduce, ctypes.c_void_p).value
        except (AttributeError, OSError):
            continue
    return None


class _Strategy:
    """What DataParallel and FedAvg share: the communicator and the watchdog's timeout."""

    def __init__(self, comm, timeout):
        if timeout is not None:
            timeout = float(timeout)
            if not timeout > 0:
                raise ValueError(f"timeout must be > 0 seconds or None, got {timeout}")
        self.timeout = timeout
        self._MPI = _mpi()
        self.comm = comm if comm is not None else self._MPI.COMM_WORLD
        self.stats = {}

    @property
    def rank(self):
        return self.comm.Get_rank()

    @property
    def size(self):
        return self.comm.Get_size()

    @property
    def is_root(self):
        """True on rank 0, the rank that should write model files."""
        return self.rank == 0


class DataParallel(_Strategy):
    """Synchronous data-parallel training over an MPI communicator (default MPI.COMM_WORLD): pass to
    Network.fit(..., distributed=DataParallel()) on every rank, each with its own shard of X, y.

    batch_size in fit is per rank: a step trains on the union of the ranks' batches. timeout: seconds a
    collective step may make no progress (a step's own compute included) before the watchdog aborts the job;
    None disables it. hook: "auto" calls MPI_Allreduce directly from the C step (no GIL, no Python), falling back
    to "python" (the C step calls back into mpi4py with the GIL) when the MPI library cannot be reached that way;
    "c" requires the direct call. The NumPy backend always uses mpi4py.

    After fit, `stats` holds the allreduce statistics of the last fit: steps, seconds (the gradient allreduces
    on this rank), bytes per step, and the hook used."""

    def __init__(self, comm=None, timeout=300.0, hook="auto"):
        if hook not in ("auto", "c", "python"):
            raise ValueError(f"hook must be 'auto', 'c' or 'python', got {hook!r}")
        super().__init__(comm, timeout)
        self.hook = hook

    def __repr__(self):
        return f"DataParallel(rank={self.rank}, size={self.size}, timeout={self.timeout}, hook={self.hook!r})"

    def _start(self, net, n, batch_size, full_batch):
        return _DataParallelRun(self, net, n, batch_size, full_batch)


class FedAvg(_Strategy):
    """Federated averaging over an MPI communicator: each fit epoch is a round in which the participating ranks
    (a `fraction` of them, at least one, drawn each round from a generator all ranks share) train
    `local_epochs` epochs on their own data, then every rank takes their parameters' average weighted by
    sample counts. Each client keeps its own optimizer state across rounds. history["loss"] is the mean loss
    over the participants' local epochs of the round."""

    def __init__(self, local_epochs=1, fraction=1.0, comm=None, timeout=300.0, seed=0):
        from . import _validation as check
        self.local_epochs = check.check_int("local_epochs", local_epochs, 1)
        self.fraction = check.check_float("fraction", fraction, 0.0, 1.0, include_minimum=False,
                                         include_maximum=True)
        self.seed = seed
        super().__init__(comm, timeout)

    def __repr__(self):
        return (f"FedAvg(local_epochs={self.local_epochs}, fraction={self.fraction}, rank={self.rank}, "
                f"size={self.size})")

    def _start(self, net, n, batch_size, full_batch):
        return _FedAvgRun(self, net, n, batch_size, full_batch)


class _Watchdog:
    """Aborts the MPI job when a collective makes no progress for `timeout` seconds. `progress` (one int64,
    also incremented by the C step after each allreduce) and `busy` say whether the rank waits on the others."""

    def __init__(self, strategy):
        self.strategy = strategy
        self.progress = np.zeros(1, dtype=np.int64)
        self.where = None
        self._stop = threading.Event()
        self._thread = None
        if strategy.timeout is not None:
            self._thread = threading.Thread(target=self._watch, name="fastnn-distributed-watchdog", daemon=True)
            self._thread.start()

    def enter(self, where):
        self.where = where
        self.progress[0] += 1

    def leave(self):
        self.progress[0] += 1
        self.where = None

    def _watch(self):
        timeout = self.strategy.timeout
        last, since = int(self.progress[0]), time.monotonic()
        while not self._stop.wait(min(1.0, timeout / 4)):
            now, value = time.monotonic(), int(self.progress[0])
            if value != last or self.where is None:
                last, since = value, now
                continue
            if now - since >= timeout:
                rank = self.strategy.rank
                sys.stderr.write(f"fastnn.distributed: rank {rank} has waited {now - since:.1f} s for the other "
                                 f"ranks in {self.where} (timeout={timeout} s): a rank has died or hangs. "
                                 "Aborting the MPI job.\n")
                sys.stderr.flush()
                try:
                    self.strategy.comm.Abort(70)
                finally:
                    os._exit(70)

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _Run:
    """One fit under a strategy: agreement on the network and data, the collectives fit needs, the watchdog."""

    def __init__(self, strategy, net, n, batch_size, full_batch):
        self.strategy = strategy
        self.comm = strategy.comm
        self.rank, self.size = strategy.rank, strategy.size
        self.watchdog = _Watchdog(strategy)
        try:
            self._agree(net, n, batch_size, full_batch)
        except BaseException:
            self.watchdog.close()
            raise

    def _collective(self, where, fn, *args):
        self.watchdog.enter(where)
        try:
            return fn(*args)
        finally:
            self.watchdog.leave()

    def _agree(self, net, n, batch_size, full_batch):
        layout = (type(net).__name__, net._params.shape[0], str(net.dtype), net.backend, bool(full_batch),
                  net.get_config()["layers"] if hasattr(net, "get_config") else None)
        info = self._collective("fit's start (allgather of the shards)", self.comm.allgather, (layout, int(n)))
        layouts = [item[0] for item in info]
        if any(other != layouts[0] for other in layouts):
            bad = next(r for r, other in enumerate(layouts) if other != layouts[0])
            raise ValueError(f"fastnn.distributed: rank {bad}'s network (or optimizer) differs from rank 0's: "
                             f"{layouts[bad][:5]} != {layouts[0][:5]}; every rank must fit the same network")
        self.shards = [item[1] for item in info]
        self.n_total = sum(self.shards)
        self.batch = max(self.shards) if full_batch else min(batch_size, max(self.shards))
        self.n_steps = max(-(-s // self.batch) for s in self.shards)
        # the ranks start from rank 0's parameters and shuffle with its generator
        self._collective("fit's start (broadcast of the parameters)", self.comm.Bcast, net._params, 0)
        state = self._collective("fit's start (broadcast of the generator)", self.comm.bcast,
                                 net._rng.bit_generator.state, 0)
        net._rng.bit_generator.state = state

    def dropout_seed(self, seed):
        """Each rank draws its own dropout masks (the ranks' batches hold different samples)."""
        return (seed ^ (self.rank * 0x9E3779B97F4A7C15)) & (2**63 - 1) if seed else 0

    def allreduce(self, values, where):
        """The sums over the ranks of `values` (float64), under the watchdog."""
        values = np.array(values, dtype=np.float64)
        self._collective(where, self.comm.Allreduce, self.strategy._MPI.IN_PLACE, values)
        return values

    def any(self, flag, where="fit (a stop decision)"):
        """Whether `flag` is true on any rank."""
        return bool(self.allreduce([1.0 if flag else 0.0], where)[0] > 0)

    def combine_metrics(self, accumulator, where):
        if accumulator is None:
            return
        summed = self.allreduce(np.append(accumulator.sums, accumulator.weight), where)
        accumulator.sums[...] = summed[:-1]
        accumulator.weight = float(summed[-1])

    def validation_loss(self, value, rows, accumulator):
        """The mean of the ranks' validation losses weighted by their validation rows; metrics summed."""
        self.combine_metrics(accumulator, "fit (validation metrics)")
        total = self.allreduce([value * rows, rows], "fit (validation loss)")
        return float(total[0] / total[1])

    def close(self):
        self.watchdog.close()


class _StepSync:
    """What the C (or NumPy) epoch reads to sum each step's gradients over the ranks (fastnn_dist)."""

    def __init__(self, run, use_c):
        MPI = run.strategy._MPI
        self.comm = run.comm
        self._MPI = MPI
        self.n_steps = run.n_steps
        self.progress = run.watchdog.progress
        self.seconds, self.calls, self.bytes, self.error, self.exception = 0.0, 0, 0, 0, None
        self.mpi_allreduce, self.mpi_int_handles = 0, 0
        self.comm_handle = self.op_sum = self.type_float = self.type_double = self.in_place = 0
        self.hook = "python"
        if not use_c:
            return
        address = _mpi_allreduce_address()
        handle_size = MPI._sizeof(MPI.Comm)
        if address is None or handle_size not in (ctypes.sizeof(ctypes.c_int), ctypes.sizeof(ctypes.c_void_p)):
            if run.strategy.hook == "c":
                raise RuntimeError("DataParallel(hook='c'): MPI_Allreduce could not be found in the loaded MPI "
                                   "library; use hook='auto' or 'python'")
            return
        self.mpi_allreduce = address
        self.mpi_int_handles = int(handle_size == ctypes.sizeof(ctypes.c_int) != ctypes.sizeof(ctypes.c_void_p))
        signed = lambda value: ctypes.c_ssize_t(int(value)).value  # noqa: E731  (MPICH's IN_PLACE is (void *)-1)
        self.comm_handle = signed(MPI._handleof(self.comm))
        self.op_sum = signed(MPI._handleof(MPI.SUM))
        self.type_float, self.type_double = signed(MPI._handleof(MPI.FLOAT)), signed(MPI._handleof(MPI.DOUBLE))
        self.in_place = signed(MPI.IN_PLACE)
        self.hook = "c"

    def allreduce(self, buf):
        """The callback path: sum buf (a NumPy array) over the ranks in place."""
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)

    def failure(self, where):
        if self.exception is not None:
            return DistributedError(f"{where}: the allreduce failed: {self.exception!r}")
        if self.error:
            return DistributedError(f"{where}: MPI_Allreduce failed with error code {self.error}")
        return DistributedError(f"{where}: another rank's training step failed (see its error); this rank stopped "
                                "at the same step")


class _DataParallelRun(_Run):

    def __init__(self, strategy, net, n, batch_size, full_batch):
        super().__init__(strategy, net, n, batch_size, full_batch)
        try:
            self.sync = _StepSync(self, use_c=net.backend == "c" and strategy.hook != "python")
            if self.sync.hook == "c":  # the raw call is only trusted once it has summed correctly
                check = np.array([float(self.rank + 1)])
                self._collective("fit's start (check of the allreduce)", net._kernels.dist_allreduce, self.sync,
                                 check)
                if check[0] != self.size * (self.size + 1) / 2:
                    raise RuntimeError(f"fastnn.distributed: the direct MPI_Allreduce call summed to {check[0]} "
                                       "instead of the expected value; use DataParallel(hook='python')")
        except BaseException:
            self.close()
            raise

    def train_epoch(self, kernels, handle, state, X, T, make_order, batch, n_threads, W, dropout_seed, seen,
                    distill):
        """One epoch: returns (loss_sum, count, finite) over all ranks."""
        order = make_order()
        self.watchdog.enter("a training step (the gradient allreduce)")
        try:
            loss_sum, n_done, finite = kernels.net_train_epoch(handle, state, X, T, order, batch, n_threads, W,
                                                               self.dropout_seed(dropout_seed), seen, distill,
                                                               sync=self.sync)
        finally:
            self.watchdog.leave()
        # the C step already agreed on finiteness; the sums make the history the same on every rank
        self.combine_metrics(seen, "fit (training metrics)")
        total = self.allreduce([loss_sum, n_done, 0.0 if finite else 1.0], "fit (the epoch's loss)")
        return float(total[0]), float(total[1]), bool(total[2] == 0)

    def close(self):
        sync = getattr(self, "sync", None)
        if sync is not None:
            self.strategy.stats = {"hook": sync.hook, "steps": sync.calls, "allreduce_seconds": sync.seconds,
                                   "bytes_per_step": sync.bytes // sync.calls if sync.calls else 0}
        super().close()


class _FedAvgRun(_Run):

    def __init__(self, strategy, net, n, batch_size, full_batch):
        super().__init__(strategy, net, n, batch_size, full_batch)
        self.net = net
        self.batch = n if full_batch else min(batch_size, n)  # each client's own batches
        seed = self._collective("fit's start (broadcast of the seed)", self.comm.bcast, strategy.seed, 0)
        self.clients = np.random.default_rng(seed)
        self.rounds = 0

    def train_epoch(self, kernels, handle, state, X, T, make_order, batch, n_threads, W, dropout_seed, seen,
                    distill):
        """One round: local epochs on the participants, then the weighted average of the parameters."""
        k = max(1, int(round(self.strategy.fraction * self.size)))
        chosen = self.clients.choice(self.size, size=k, replace=False) if k < self.size else range(self.size)
        takes_part = self.rank in set(int(c) for c in chosen)
        loss_sum, n_done, finite = 0.0, 0, True
        for _ in range(self.strategy.local_epochs):
            order = make_order()  # drawn on every rank, so the generators stay in step
            if takes_part and finite:
                part, done, finite = kernels.net_train_epoch(handle, state, X, T, order, self.batch,
                                                             n_threads, W, self.dropout_seed(dropout_seed), seen,
                                                             distill)
                loss_sum, n_done = loss_sum + part, n_done + done
        self.combine_metrics(seen, "fit (training metrics)")
        total = self.allreduce([loss_sum, n_done, 0.0 if finite else 1.0], "fit (the round's loss)")
        if total[2] > 0:
            return math.nan, 1.0, False
        params = self.net._params
        weight = float(self.shards[self.rank]) if takes_part else 0.0
        summed = self.allreduce(np.append(params.astype(np.float64) * weight, weight),
                                "fit (the average of the parameters)")
        params[...] = summed[:-1] / summed[-1]
        self.rounds += 1
        return float(total[0]), float(total[1]), True

    def close(self):
        self.strategy.stats = {"rounds": self.rounds}
        super().close()
