"""Reference for lenet5_mnist.py: the same LeNet-5 recipe in PyTorch (CPU), to tell what the 98.8% target asks.

Same data (fastnn.datasets.load_mnist, X/255 float32), same layers, 5 epochs, batch 64, Adam 1e-3, shuffled
each epoch. --init default keeps PyTorch's own initialization; --init he uses fastnn's (He uniform on the ReLU
layers, Glorot uniform on the output layer, zero biases).

    PYTHONPATH=. python asv_bench/accuracy_runs/lenet5_mnist_torch.py --seeds 0 1 2 --threads 1
"""
import argparse
import math
import os
import statistics
import time


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--init", choices=["default", "he"], default="default")
    parser.add_argument("--data", default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import numpy as np
    import torch
    from torch import nn
    import fastnn
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    X_train, y_train, X_test, y_test = fastnn.datasets.load_mnist(path=args.data, download=False)
    X_train = torch.from_numpy((X_train / np.float32(255)).astype(np.float32))
    X_test = torch.from_numpy((X_test / np.float32(255)).astype(np.float32))
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    print(f"PyTorch {torch.__version__} LeNet-5 reference: {args.epochs} epochs, batch {args.batch_size}, adam 1e-3, "
          f"init {args.init}, torch threads {torch.get_num_threads()}", flush=True)

    finals = {}
    start_all = time.perf_counter()
    for seed in args.seeds:
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
        if args.init == "he":
            layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
            with torch.no_grad():
                for i, layer in enumerate(layers):
                    fan_in = layer.weight[0].numel()
                    fan_out = layer.weight.shape[0] * (layer.weight[0, 0].numel() if layer.weight.dim() == 4 else 1)
                    last = i == len(layers) - 1
                    limit = math.sqrt(6.0 / (fan_in + fan_out)) if last else math.sqrt(6.0 / fan_in)
                    layer.weight.uniform_(-limit, limit)
                    layer.bias.zero_()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(seed)
        accs = []
        t_seed = time.perf_counter()
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            net.train()
            order = torch.randperm(len(X_train), generator=gen)
            total = 0.0
            for i in range(0, len(order), args.batch_size):
                idx = order[i:i + args.batch_size]
                opt.zero_grad()
                loss = loss_fn(net(X_train[idx]), y_train[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            secs = time.perf_counter() - t0
            net.eval()
            with torch.no_grad():
                acc = float((net(X_test).argmax(1) == y_test).float().mean())
            accs.append(acc)
            print(f"seed {seed}  epoch {epoch + 1}/{args.epochs}  loss {total / len(X_train):.5f}  "
                  f"test accuracy {acc:.4f}  train {secs:.1f} s", flush=True)
        finals[seed] = accs[-1]
        print(f"seed {seed}  final test accuracy {accs[-1]:.4f}  (per epoch: {' '.join(f'{a:.4f}' for a in accs)})  "
              f"wall {time.perf_counter() - t_seed:.1f} s", flush=True)
    median = statistics.median(finals.values())
    print("final test accuracy per seed: " + ", ".join(f"seed {s}: {a:.4f}" for s, a in finals.items()))
    print(f"median over {len(finals)} seed(s): {median:.4f}")
    print(f"total wall time {time.perf_counter() - start_all:.1f} s")


if __name__ == "__main__":
    main()
