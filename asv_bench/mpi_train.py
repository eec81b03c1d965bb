#!/usr/bin/env python
"""Data-parallel training over MPI on the mnist_mlp workload of compare.py (784-256-128-10, ReLU, softmax +
cross-entropy, Adam lr 1e-3, float32), two ways:

    mpirun -n 2 python -m mpi4py asv_bench/mpi_train.py curve      # the loss curve on 2 ranks, and in 1 process
    mpirun -n 2 python -m mpi4py asv_bench/mpi_train.py bench      # samples/s and allreduce cost on 2 ranks
    python asv_bench/mpi_train.py bench --threads 2                # the same workload in 1 process
    python asv_bench/mpi_train.py model --step-ms 1.36 --bytes 940584 --local-ms 0.26   # estimate for more ranks

(As root Open MPI's mpirun needs --allow-run-as-root, and --oversubscribe for more ranks than cores. `python -m
mpi4py` aborts every rank when one raises, instead of leaving the others waiting.)

curve: the data is MNIST-shaped (pixels uniform in [0, 1)) with learnable labels (the argmax of a fixed random
linear map of the pixels), split into one shard per rank. Every rank trains with
fit(..., distributed=DataParallel(), shuffle=False) at batch 64 per rank; rank 0 then trains the same network
in one process on the same global batches (batch 64 x ranks, each the union of the ranks' batches) and prints
both loss curves and their largest relative difference.

bench: one fit epoch over 10,000 samples at a global batch of 128 (strong scaling: 128 / ranks per rank) after a
warm-up epoch, repeated --repeats times; prints the median samples/s and, on several ranks, the median gradient
allreduce time per step measured in the C step (it includes waiting for the slowest rank), its bytes, and the
median time of the same allreduce alone (the ranks in step after a barrier). With --per-rank-batch the batch is
128 per rank (weak scaling).

model: from a step's compute time (at one rank's batch), the gradient bytes and the allreduce's measured cost on
one node (--local-ms: copying and summing, which a network does not remove), the step time of p ranks on a network
of --gbits Gbit/s with a ring allreduce: 2 (p - 1) / p x bytes / bandwidth + 2 (p - 1) x latency + local cost.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

SIZES = [784, 256, 128, 10]


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, SIZES[0]), dtype=np.float32)
    mapping = rng.normal(size=(SIZES[0], SIZES[-1])).astype(np.float32)
    return X, np.argmax((X - 0.5) @ mapping, axis=1)


def network(fastnn):
    return fastnn.Network(SIZES, activations="relu", loss="cross_entropy", dtype="float32", seed=0)


def curve(args):
    import fastnn
    from fastnn.distributed import DataParallel
    dp = DataParallel()
    rank, size = dp.rank, dp.size
    fastnn.set_num_threads(args.threads)
    X, y = data(args.samples)
    shards = np.array_split(np.arange(args.samples), size)
    net = network(fastnn)
    history = net.fit(X[shards[rank]], y[shards[rank]], epochs=args.epochs, batch_size=args.batch, shuffle=False,
                      optimizer="adam", learning_rate=1e-3, distributed=dp)
    if rank != 0:
        return
    # one process, the same global batches: batch b is the union of every rank's batch b
    steps = max(-(-len(s) // args.batch) for s in shards)
    order = np.concatenate([s[b * args.batch:(b + 1) * args.batch] for b in range(steps) for s in shards])
    single = network(fastnn)
    sizes = [sum(len(s[b * args.batch:(b + 1) * args.batch]) for s in shards) for b in range(steps)]
    if len(set(sizes)) == 1:  # equal global batches: one fit over the reordered rows
        reference = single.fit(X[order], y[order], epochs=args.epochs, batch_size=sizes[0], shuffle=False,
                               optimizer="adam", learning_rate=1e-3)["loss"]
    else:  # unequal ones: step by step
        reference = []
        for _ in range(args.epochs):
            total, start = 0.0, 0
            for rows in sizes:
                batch = order[start:start + rows]
                total += single.train_step(X[batch], y[batch], optimizer="adam", learning_rate=1e-3) * rows
                start += rows
            reference.append(total / args.samples)
    print(f"{size} ranks x batch {args.batch} (global batch {args.batch * size}), {args.samples} samples, "
          f"float32, hook {dp.stats['hook']}")
    print("epoch  loss on %d ranks      loss in 1 process" % size)
    for epoch, (a, b) in enumerate(zip(history["loss"], reference)):
        print(f"{epoch + 1:5d}  {a:.10f}       {b:.10f}")
    diff = max(abs(a - b) / abs(b) for a, b in zip(history["loss"], reference))
    params = np.linalg.norm(net._params - single._params) / np.linalg.norm(single._params)
    print(f"largest relative difference: loss {diff:.2e}, parameters {params:.2e}")


def bench(args):
    import fastnn
    fastnn.set_num_threads(args.threads)
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    except ImportError:
        comm = None
    size = comm.Get_size() if comm is not None else 1
    rank = comm.Get_rank() if comm is not None else 0
    batch = args.global_batch if args.per_rank_batch else args.global_batch // size
    X, y = data(args.samples // size, seed=rank)
    net = network(fastnn)
    rates, allreduce_ms, byte_counts, steps = [], [], [], []
    for repeat in range(args.repeats + 1):
        dp = fastnn.distributed.DataParallel() if size > 1 else None
        if comm is not None:
            comm.Barrier()
        started = time.perf_counter()
        net.fit(X, y, epochs=1, batch_size=batch, optimizer="adam", learning_rate=1e-3, distributed=dp,
                reset_optimizer=False)
        elapsed = time.perf_counter() - started
        if comm is not None:
            elapsed = comm.allreduce(elapsed, op=MPI.MAX)
        if repeat == 0:
            continue  # warm-up
        rates.append(X.shape[0] * size / elapsed)
        if dp is not None:
            allreduce_ms.append(1e3 * dp.stats["allreduce_seconds"] / dp.stats["steps"])
            byte_counts.append(dp.stats["bytes_per_step"])
            steps.append(dp.stats["steps"])
    alone = []
    if size > 1:  # the same allreduce with the ranks already in step: its cost without the wait for the slowest
        grads = np.ones_like(net._params)
        for _ in range(200):
            comm.Barrier()
            started = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
            alone.append(time.perf_counter() - started)
    if rank == 0:
        result = {"ranks": size, "threads_per_rank": args.threads, "batch_per_rank": batch,
                  "global_batch": batch * size, "samples": X.shape[0] * size,
                  "samples_per_s": round(statistics.median(rates)),
                  "runs": [round(r) for r in rates]}
        if allreduce_ms:
            result.update(allreduce_ms_per_step=round(statistics.median(allreduce_ms), 4),
                          allreduce_alone_ms=round(1e3 * statistics.median(alone), 4),
                          allreduce_bytes_per_step=byte_counts[0], steps_per_epoch=steps[0],
                          step_ms=round(1e3 * batch * size / statistics.median(rates), 4))
        else:
            result.update(step_ms=round(1e3 * batch / statistics.median(rates), 4))
        print(json.dumps(result))


def model(args):
    bandwidth = args.gbits * 1e9 / 8
    print(f"ring allreduce of {args.bytes} bytes at {args.gbits} Gbit/s, {args.latency_us} us per message, plus "
          f"{args.local_ms} ms of on-node copying and summing; compute {args.step_ms} ms per step")
    print("ranks  allreduce ms  step ms  allreduce share")
    for p in args.ranks:
        comm_ms = 1e3 * (2 * (p - 1) / p * args.bytes / bandwidth + 2 * (p - 1) * args.latency_us * 1e-6)
        comm_ms += args.local_ms
        step = args.step_ms + comm_ms
        print(f"{p:5d}  {comm_ms:12.3f}  {step:7.3f}  {comm_ms / step:14.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["curve", "bench", "model"], nargs="?", default="curve")
    parser.add_argument("--threads", type=int, default=1, help="fastnn threads per rank")
    parser.add_argument("--samples", type=int, default=None, help="samples in all (curve: 4096, bench: 10000)")
    parser.add_argument("--epochs", type=int, default=5, help="curve: epochs")
    parser.add_argument("--batch", type=int, default=64, help="curve: batch per rank")
    parser.add_argument("--repeats", type=int, default=5, help="bench: timed epochs (after one warm-up)")
    parser.add_argument("--global-batch", type=int, default=128, help="bench: the batch of all ranks together")
    parser.add_argument("--per-rank-batch", action="store_true", help="bench: --global-batch per rank instead")
    parser.add_argument("--step-ms", type=float, default=None, help="model: compute time of one step")
    parser.add_argument("--bytes", type=int, default=None, help="model: gradient bytes per step")
    parser.add_argument("--gbits", type=float, default=10.0, help="model: network bandwidth")
    parser.add_argument("--latency-us", type=float, default=25.0, help="model: time per message")
    parser.add_argument("--local-ms", type=float, default=0.0,
                        help="model: the allreduce's own cost on one node (bench's allreduce_alone_ms)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 64], help="model: rank counts")
    args = parser.parse_args()
    if args.mode == "model":
        if args.step_ms is None or args.bytes is None:
            parser.error("model needs --step-ms and --bytes")
        return model(args)
    if args.samples is None:
        args.samples = 4096 if args.mode == "curve" else 10000
    (curve if args.mode == "curve" else bench)(args)


if __name__ == "__main__":
    sys.exit(main())
