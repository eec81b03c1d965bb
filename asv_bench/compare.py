#!/usr/bin/env python
"""fastnn side by side with PyTorch (CPU), scikit-learn, a hand-written NumPy MLP and FANN, on twelve workloads.

    python asv_bench/compare.py --threads 2 --repeats 3            # the measurement (a few minutes)
    python asv_bench/compare.py --quick                             # a smoke test (small workloads, 1 repeat)
    python asv_bench/compare.py --workloads mnist_mlp,infer_batch --libs fastnn-c,torch
    python asv_bench/compare.py --workloads lenet5_mnist,cnn_mnist,lenet5_infer1   # the convolutional ones
    python asv_bench/compare.py --workloads rnn_char,lstm_char,lstm_batch,lstm_generate1 --libs fastnn-c,torch

Every (library, workload) pair runs in its own subprocess (`compare.py --worker LIB WORKLOAD ...`, which prints
one JSON line), so no library's threads, allocator or JIT state leaks into another's timing. The runs are
interleaved (round r runs every workload for every library, the library order rotated by r), repeated --repeats
times, and the medians are reported. The sgemm peak (a float32 2048^3 matmul through NumPy with the same threads)
is measured once per round, in the same run, and so is each library's own best float32 2048^3 product (torch.mm
for PyTorch, the faster of fastnn's engines through fastnn._core.gemm for fastnn's C backend, NumPy's matmul for
the libraries whose products are NumPy's). The notes say which matrix-product engine fastnn ran each workload's
products on (fastnn._gemm: the shapes its networks tuned, else the default engine of each dense product). Every library gets the same thread count: OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS in the subprocess environment, plus torch.set_num_threads and
fastnn.set_num_threads. Libraries that are not installed are skipped with a note.

Workloads (float32 everywhere):
  tiny_online    16-32-4, tanh hidden, linear output, MSE, plain SGD (lr 0.01), batch 1, 20k samples: samples/s
  mnist_mlp      784-256-128-10, ReLU, softmax + cross-entropy, Adam (lr 1e-3), batch 128, one epoch over 10k
                 random samples of MNIST shape (pixels uniform in [0, 1), random labels): samples/s, % of peak
  wide_mlp       1024-2048-2048-10, ReLU, softmax + CE, SGD momentum 0.9 (lr 0.01), batch 256, one epoch over 2048
                 random samples: samples/s, % of peak
  infer_latency  one sample through 784-256-128-10 from Python (probabilities out): median microseconds per call
  infer_batch    10,000 samples through 784-256-128-10: samples/s
  lenet5_mnist   LeNet-5 on 1x28x28 images: Conv2D(6, 5x5, pad 2) ReLU, MaxPool 2, Conv2D(16, 5x5) ReLU, MaxPool 2,
                 Flatten, Dense 120 ReLU, Dense 84 ReLU, Dense 10, softmax + CE, Adam (lr 1e-3), batch 64, one epoch
                 over 10k random images (pixels k/256 for random bytes k, random labels): samples/s, % of peak
  cnn_mnist      Conv2D(32, 3x3) ReLU, Conv2D(64, 3x3) ReLU, MaxPool 2, Flatten, Dense 128 ReLU, Dense 10, softmax +
                 CE, Adam (lr 1e-3), batch 64, one epoch over 10k such images: samples/s, % of peak
  lenet5_infer1  one image through LeNet-5 from Python (probabilities out): median microseconds per call
  rnn_char       min-char-rnn: SimpleRNN(100, tanh) over one-hot characters (vocabulary 65, sequences of 25),
                 Dense(65) at every step, cross-entropy over all 25 steps, Adam (lr 2e-3), batch 1, one epoch over
                 random token sequences: characters (tokens) per second
  lstm_char      Embedding(65, 64), LSTM(128) over sequences of 64, Dense(65) at every step, cross-entropy over all
                 steps, Adam (lr 2e-3), batch 1: tokens per second
  lstm_batch     lstm_char with LSTM(256) and batches of 32 sequences: tokens per second
  lstm_generate1 the lstm_char model, stateful, fed one token per call carrying (h, c) from call to call
                 (probabilities out): median microseconds per token
  infer_latency_int8, infer_batch_int8
                 infer_latency / infer_batch with int8 weights: fastnn-c (and fastnn-python) run
                 net.quantize(weights="int8", per_channel=True); torch runs torch.ao.quantization.quantize_dynamic
                 (qint8 Linear); onnxruntime runs quantize_dynamic(QInt8, per_channel=True) of net.to_onnx();
                 fastnn-c-f32 is fastnn's float32 network on the same data, for reference. Only these two
                 workloads run onnxruntime and fastnn-c-f32, e.g.
                 python asv_bench/compare.py --workloads infer_latency_int8,infer_batch_int8 \
                     --libs fastnn-c,fastnn-c-f32,onnxruntime,torch --threads 1 --repeats 5
The convolutional and recurrent workloads compare fastnn with PyTorch only (scikit-learn, the NumPy MLP and FANN have
no convolution or recurrent layers: their rows say n/a); the NumPy backend of fastnn trains on fewer images or
sequences there (throughput is per image or token). The recurrent workloads start both libraries from the same
initial weights (see rnn_initial_weights).
"% of peak" = 6 x multiply-adds per sample x samples/s / sgemm FLOP/s (forward 2, backward 4 flops per multiply-add;
a dense layer does one per weight, a convolution one per weight and output position; for the recurrent workloads
the sample is one token: the recurrent layer's weight_ih and weight_hh and the output layer's weights, once per step).
"% of own sgemm peak" is the same figure over the library's own peak instead of NumPy's (none for FANN and
onnxruntime, which have no float32 product measured here).
"""
import argparse
import ctypes
import ctypes.util
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

LIBS = ["fastnn-c", "fastnn-python", "torch", "sklearn", "numpy", "fann", "onnxruntime", "fastnn-c-f32"]
WORKLOADS = ["tiny_online", "mnist_mlp", "wide_mlp", "infer_latency", "infer_batch", "lenet5_mnist", "cnn_mnist",
             "lenet5_infer1", "rnn_char", "lstm_char", "lstm_batch", "lstm_generate1", "infer_latency_int8",
             "infer_batch_int8"]
INT8_WORKLOADS = ("infer_latency_int8", "infer_batch_int8")
INT8_ONLY_LIBS = ("onnxruntime", "fastnn-c-f32")  # peers that run only the int8 workloads
RESULT = "@@RESULT "

# sizes, samples (full, quick) and what each workload measures
SPECS = {
    "tiny_online": dict(sizes=[16, 32, 4], n=(20000, 4000), batch=1, unit="samples/s"),
    "mnist_mlp": dict(sizes=[784, 256, 128, 10], n=(10000, 2048), batch=128, unit="samples/s"),
    "wide_mlp": dict(sizes=[1024, 2048, 2048, 10], n=(2048, 512), batch=256, unit="samples/s"),
    "infer_latency": dict(sizes=[784, 256, 128, 10], n=(3000, 300), batch=1, unit="µs/call"),
    "infer_batch": dict(sizes=[784, 256, 128, 10], n=(10000, 2000), batch=10000, unit="samples/s"),
    "infer_latency_int8": dict(sizes=[784, 256, 128, 10], n=(3000, 300), batch=1, unit="µs/call"),
    "infer_batch_int8": dict(sizes=[784, 256, 128, 10], n=(10000, 2000), batch=10000, unit="samples/s"),
}

# Convolutional networks, written once and built from these lists for every library, so that all train the same
# architecture: ("conv", filters, kernel, padding), ("maxpool", pool), ("flatten",), ("dense", units). Every layer
# with weights but the last is followed by a ReLU; the last feeds softmax + cross-entropy.
IMAGE_SHAPE = (1, 28, 28)
ARCHS = {
    "lenet5": [("conv", 6, 5, 2), ("maxpool", 2), ("conv", 16, 5, 0), ("maxpool", 2), ("flatten",), ("dense", 120),
               ("dense", 84), ("dense", 10)],
    "cnn": [("conv", 32, 3, 0), ("conv", 64, 3, 0), ("maxpool", 2), ("flatten",), ("dense", 128), ("dense", 10)],
}
# n_python: the images fastnn's NumPy backend trains on (full, quick), fewer than the others: it is slow on these
CONV_SPECS = {
    "lenet5_mnist": dict(arch="lenet5", n=(10000, 2048), n_python=(2048, 1024), batch=64, unit="samples/s"),
    "cnn_mnist": dict(arch="cnn", n=(10000, 1024), n_python=(1024, 512), batch=64, unit="samples/s"),
    "lenet5_infer1": dict(arch="lenet5", n=(3000, 300), batch=1, unit="µs/call"),
}
SPECS.update(CONV_SPECS)
PEAK_WORKLOADS = ("mnist_mlp", "wide_mlp", "lenet5_mnist", "cnn_mnist", "rnn_char", "lstm_char", "lstm_batch")

# Recurrent character models, built from these entries for both libraries: `cell` "rnn" (tanh) or "lstm" of `units`
# units; the input is the one-hot rows of the characters (`embed` None) or token ids through an Embedding(VOCAB,
# embed); Dense(VOCAB) at every step feeds softmax + cross-entropy over all steps. `steps` characters per sequence,
# `batch` sequences per update; n: sequences per epoch (for lstm_generate1: tokens, one per call).
VOCAB = 65
RNN_LR = 2e-3
RNN_SPECS = {
    "rnn_char": dict(cell="rnn", units=100, embed=None, steps=25, batch=1, n=(2000, 200), n_python=(400, 100),
                     unit="tokens/s"),
    "lstm_char": dict(cell="lstm", units=128, embed=64, steps=64, batch=1, n=(600, 60), n_python=(120, 30),
                      unit="tokens/s"),
    "lstm_batch": dict(cell="lstm", units=256, embed=64, steps=64, batch=32, n=(512, 64), n_python=(128, 64),
                       unit="tokens/s"),
    "lstm_generate1": dict(cell="lstm", units=128, embed=64, steps=1, batch=1, n=(3000, 300), unit="µs/token"),
}
SPECS.update(RNN_SPECS)

# what a library cannot run, and why
UNSUPPORTED = {
    ("fann", "mnist_mlp"): "FANN 2.2 has no Adam, no softmax/cross-entropy and no minibatches",
    ("fann", "wide_mlp"): "FANN 2.2 has no softmax/cross-entropy and no minibatches (only per-sample or full batch)",
}
# what a library cannot run by its nature: a row in the table that says so, instead of a note
NOT_APPLICABLE = {(lib, w): "n/a (no convolution)" for lib in ("sklearn", "numpy", "fann") for w in CONV_SPECS}
NOT_APPLICABLE.update({(lib, w): "n/a (no recurrent layers)" for lib in ("sklearn", "numpy", "fann")
                       for w in RNN_SPECS})
NOT_APPLICABLE.update({(lib, w): "n/a (no int8 inference)" for lib in ("sklearn", "numpy", "fann")
                       for w in INT8_WORKLOADS})
# --before DIR adds this library: fastnn's C backend imported from DIR (a checkout of an earlier commit, built in
# place), so a change is measured before and after side by side in one run; it runs the dense and recurrent
# workloads (a checkout older than the recurrent layers fails those, and the notes say so)
BEFORE = "fastnn-c-before"


def n_weights(sizes):
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def arch_shapes(arch, image_shape=IMAGE_SHAPE):
    """(layer, input shape, output shape) for each layer of a convolutional architecture."""
    shape, out = tuple(image_shape), []
    for layer in ARCHS[arch]:
        kind = layer[0]
        if kind == "conv":
            _, filters, k, pad = layer
            new = (filters, shape[1] + 2 * pad - k + 1, shape[2] + 2 * pad - k + 1)
        elif kind == "maxpool":
            new = (shape[0], shape[1] // layer[1], shape[2] // layer[1])
        elif kind == "flatten":
            new = (shape[0] * shape[1] * shape[2],)
        else:
            new = (layer[1],)
        out.append((layer, shape, new))
        shape = new
    return out


def macs_per_sample(workload):
    """Multiply-adds of one sample's forward pass: a dense layer's weights; a convolution's weights times its
    output positions; for a recurrent workload, one token's (one step of the recurrent and output layers)."""
    if workload in RNN_SPECS:  # per token
        spec = RNN_SPECS[workload]
        U, gates = spec["units"], 4 if spec["cell"] == "lstm" else 1
        features = VOCAB if spec["embed"] is None else spec["embed"]
        return gates * U * (features + U) + U * VOCAB
    if workload not in CONV_SPECS:
        return n_weights(SPECS[workload]["sizes"])
    total = 0
    for layer, shape_in, shape_out in arch_shapes(CONV_SPECS[workload]["arch"]):
        if layer[0] == "conv":
            total += layer[1] * shape_in[0] * layer[2] ** 2 * shape_out[1] * shape_out[2]
        elif layer[0] == "dense":
            total += shape_in[0] * layer[1]
    return total


# =============================================================================================== worker side
def make_data(workload, n, seed=0):
    """Seeded float32 data for a workload: (X, y) for training, X for inference."""
    import numpy as np
    rng = np.random.default_rng(seed)
    sizes = SPECS[workload]["sizes"]
    if workload == "tiny_online":  # a smooth regression target a 16-32-4 tanh net can learn
        X = rng.standard_normal((n, 16)).astype(np.float32)
        A = rng.standard_normal((16, 4)).astype(np.float32) / 4
        y = (np.tanh(X @ A) + 0.05 * rng.standard_normal((n, 4))).astype(np.float32)
        return X, y
    if workload == "wide_mlp":
        X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    else:  # MNIST shape: 784 pixels in [0, 1)
        X = rng.random((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=n).astype(np.int64)
    y[:sizes[-1]] = np.arange(sizes[-1])  # every class present (scikit-learn infers the classes from y)
    return X, y


def make_images(n, seed=0):
    """Seeded MNIST-shaped data for the convolutional workloads: (n, 1, 28, 28) float32 images whose pixels are
    random bytes / 256 (in [0, 1)), and int64 labels in [0, 10) with every class present."""
    import numpy as np
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n, *IMAGE_SHAPE), dtype=np.uint8).astype(np.float32) / np.float32(256)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    y[:10] = np.arange(10)
    return X, y


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def torch_epoch(batch_loss, opt, bs, shuffle=True):
    """A PyTorch training epoch for time_training: the standard zero_grad / loss / backward / step loop over
    batches of bs rows, in a torch.randperm order or in order; batch_loss(xb, yb) gives a batch's loss."""
    import numpy as np
    import torch

    def epoch(Xe, ye):
        Xt, yt = torch.from_numpy(np.ascontiguousarray(Xe)), torch.from_numpy(np.ascontiguousarray(ye))
        order = torch.randperm(Xt.shape[0]) if shuffle else None
        total = 0.0
        for start in range(0, Xt.shape[0], bs):
            rows = order[start:start + bs] if shuffle else slice(start, start + bs)
            xb, yb = Xt[rows], yt[rows]
            opt.zero_grad(set_to_none=True)
            loss = batch_loss(xb, yb)
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        return total / Xt.shape[0]

    return epoch


def time_training(train_epoch, X, y, warm=512, epochs=3, items_per_sample=1):
    """Samples/s of one epoch: the median of `epochs` timed epochs, after a short warm-up epoch on the first
    `warm` samples. (One timed epoch right after start-up also timed the thread pools of the BLAS libraries
    NumPy and SciPy load, which spin for ~0.1 s after loading and take cores from whatever runs then.)
    items_per_sample: count each sample as that many items (a sequence of T tokens: tokens/s)."""
    train_epoch(X[:warm], y[:warm])
    times, loss = [], None
    for _ in range(epochs):
        with Timer() as t:
            loss = train_epoch(X, y)
        times.append(t.seconds)
    seconds = statistics.median(times)
    return {"value": X.shape[0] * items_per_sample / seconds, "seconds": seconds,
            "loss": None if loss is None else float(loss)}


def time_latency(predict_one, X):
    """Median microseconds of one call over the rows of X (after 50 warm-up calls)."""
    for i in range(min(50, X.shape[0])):
        predict_one(X[i])
    clock = time.perf_counter_ns
    times = []
    for row in X:
        t0 = clock()
        predict_one(row)
        times.append(clock() - t0)
    return {"value": statistics.median(times) / 1000.0, "seconds": sum(times) / 1e9,
            "p90_us": sorted(times)[int(0.9 * len(times))] / 1000.0}


def time_batch(predict, X, calls=3):
    """Samples/s of predict(X), the median of `calls` calls after one warm-up call."""
    predict(X)
    times = []
    for _ in range(calls):
        with Timer() as t:
            predict(X)
        times.append(t.seconds)
    return {"value": X.shape[0] / statistics.median(times), "seconds": statistics.median(times)}


# ------------------------------------------------------------------------------------------------ fastnn
def run_fastnn(backend, workload, n, threads):
    import fastnn
    fastnn.set_num_threads(threads)
    sizes = SPECS[workload]["sizes"]
    info = {"version": fastnn.__version__}
    if workload == "tiny_online":
        net = fastnn.Network(sizes, activations=["tanh", "linear"], loss="mse", seed=0, backend=backend)
        opts = dict(batch_size=1, optimizer="sgd", learning_rate=0.01)
    elif workload == "mnist_mlp":
        net = fastnn.Network(sizes, activations="relu", loss="cross_entropy", seed=0, backend=backend)
        opts = dict(batch_size=128, optimizer="adam", learning_rate=1e-3)
    elif workload == "wide_mlp":
        net = fastnn.Network(sizes, activations="relu", loss="cross_entropy", seed=0, backend=backend)
        opts = dict(batch_size=256, optimizer="sgd", learning_rate=0.01, momentum=0.9)
    else:
        net = fastnn.Network(sizes, activations="relu", loss="cross_entropy", seed=0, backend=backend)
        X, _ = make_data(workload, n)
        if workload == "infer_latency":
            return {**info, **time_latency(net.predict, X)}
        return {**info, **time_batch(net.predict, X)}
    info["backend"] = net.backend
    X, y = make_data(workload, n)

    def epoch(Xe, ye):
        return net.fit(Xe, ye, epochs=1, shuffle=True, **opts)["loss"][-1]

    return {**info, **time_training(epoch, X, y)}


# ------------------------------------------------------------------------------------------------- torch
def run_torch(workload, n, threads):
    import numpy as np
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sizes = SPECS[workload]["sizes"]
    info = {"version": torch.__version__, "torch_threads": torch.get_num_threads()}
    hidden = nn.Tanh if workload == "tiny_online" else nn.ReLU
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(hidden())
    model = nn.Sequential(*layers)
    if workload in ("infer_latency", "infer_batch"):
        model.eval()
        X, _ = make_data(workload, n)

        def predict(x):
            with torch.inference_mode():
                xt = torch.from_numpy(x)
                if xt.ndim == 1:
                    return torch.softmax(model(xt.unsqueeze(0)), dim=1)[0].numpy()
                return torch.softmax(model(xt), dim=1).numpy()

        return {**info, **(time_latency(predict, X) if workload == "infer_latency" else time_batch(predict, X))}
    if workload == "tiny_online":
        loss_fn, opt, bs = nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), 1
    elif workload == "mnist_mlp":
        loss_fn, opt, bs = nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3), 128
    else:
        loss_fn, opt, bs = nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), 256
    X, y = make_data(workload, n)

    epoch = torch_epoch(lambda xb, yb: loss_fn(model(xb), yb), opt, bs)
    return {**info, **time_training(epoch, X, y)}


# ------------------------------------------------------------------------------------------- int8 inference
def run_int8(lib, workload, n, threads):
    """infer_latency_int8 / infer_batch_int8: the 784-256-128-10 ReLU MLP (fastnn's seed-0 weights for fastnn
    and onnxruntime; PyTorch's own initialisation, which does not change the speed), probabilities out."""
    import numpy as np
    sizes = SPECS[workload]["sizes"]
    X, _ = make_data(workload, n)
    timer = time_latency if workload == "infer_latency_int8" else time_batch
    if lib.startswith("fastnn") or lib == "onnxruntime":
        import fastnn
        fastnn.set_num_threads(threads)
        backend = "python" if lib == "fastnn-python" else "c"
        net = fastnn.Network(sizes, activations="relu", loss="cross_entropy", seed=0, backend=backend)
        if lib == "fastnn-c-f32":
            return {"version": fastnn.__version__, **timer(net.predict, X)}
        if lib != "onnxruntime":
            qnet = net.quantize(weights="int8", per_channel=True)
            return {"version": fastnn.__version__, "int8_path": qnet.int8_path, **timer(qnet.predict, X)}
        import tempfile
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "mlp.onnx"), os.path.join(tmp, "mlp.int8.onnx")
            net.to_onnx(src)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(dst, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def predict(x):
            return session.run(None, {name: x[None] if x.ndim == 1 else x})[0]

        return {"version": ort.__version__, **timer(predict, X)}
    if lib == "torch":
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        model = torch.ao.quantization.quantize_dynamic(nn.Sequential(*layers).eval(), {nn.Linear},
                                                       dtype=torch.qint8)

        def predict(x):
            with torch.inference_mode():
                xt = torch.from_numpy(x)
                if xt.ndim == 1:
                    return torch.softmax(model(xt.unsqueeze(0)), dim=1)[0].numpy()
                return torch.softmax(model(xt), dim=1).numpy()

        return {"version": torch.__version__, "engine": torch.backends.quantized.engine, **timer(predict, X)}
    raise ValueError(f"{lib} has no int8 inference ({workload})")


# ---------------------------------------------------------------------------------- convolutional networks
def run_fastnn_conv(backend, workload, n, threads):
    import fastnn
    fastnn.set_num_threads(threads)
    spec = CONV_SPECS[workload]
    layers, arch = [], ARCHS[spec["arch"]]
    for i, layer in enumerate(arch):
        kind = layer[0]
        if kind == "conv":
            layers.append(fastnn.Conv2D(layer[1], layer[2], padding=layer[3], activation="relu"))
        elif kind == "maxpool":
            layers.append(fastnn.MaxPool2D(layer[1]))
        elif kind == "flatten":
            layers.append(fastnn.Flatten())
        else:  # the last Dense gets the softmax fused into the cross-entropy loss
            layers.append(fastnn.Dense(layer[1], activation="linear" if i == len(arch) - 1 else "relu"))
    net = fastnn.Network(layers, input_shape=IMAGE_SHAPE, loss="cross_entropy", dtype="float32", seed=0,
                         backend=backend)
    info = {"version": fastnn.__version__, "backend": net.backend, "n_params": net.n_params}
    X, y = make_images(n)
    if spec["unit"] == "µs/call":  # each row X[i] is one (1, 28, 28) image
        return {**info, **time_latency(net.predict, X)}

    def epoch(Xe, ye):
        return net.fit(Xe, ye, epochs=1, batch_size=spec["batch"], shuffle=True, optimizer="adam",
                       learning_rate=1e-3)["loss"][-1]

    return {**info, **time_training(epoch, X, y)}


def run_torch_conv(workload, n, threads):
    import numpy as np
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = CONV_SPECS[workload]
    modules = []
    shapes = arch_shapes(spec["arch"])
    for i, (layer, shape_in, _) in enumerate(shapes):
        kind = layer[0]
        if kind == "conv":
            modules += [nn.Conv2d(shape_in[0], layer[1], layer[2], padding=layer[3]), nn.ReLU()]
        elif kind == "maxpool":
            modules.append(nn.MaxPool2d(layer[1]))
        elif kind == "flatten":
            modules.append(nn.Flatten())
        else:
            modules.append(nn.Linear(shape_in[0], layer[1]))
            if i < len(shapes) - 1:
                modules.append(nn.ReLU())
    model = nn.Sequential(*modules)
    info = {"version": torch.__version__, "torch_threads": torch.get_num_threads(),
            "n_params": sum(p.numel() for p in model.parameters())}
    X, y = make_images(n)
    if spec["unit"] == "µs/call":
        model.eval()

        def predict_one(x):  # x: one (1, 28, 28) image
            with torch.inference_mode():
                return torch.softmax(model(torch.from_numpy(x).unsqueeze(0)), dim=1).numpy()

        return {**info, **time_latency(predict_one, X)}
    loss_fn, opt, bs = nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3), spec["batch"]

    epoch = torch_epoch(lambda xb, yb: loss_fn(model(xb), yb), opt, bs)
    return {**info, **time_training(epoch, X, y)}


# ------------------------------------------------------------------------------------- recurrent networks
def make_tokens(workload, n, seed=0):
    """Seeded character data for a recurrent workload: one stream of n * steps + 1 random token ids in
    [0, VOCAB), cut into n sequences X (n, steps) with the next character of each as the target y (n, steps),
    both int64. rnn_char's inputs are their one-hot rows instead: X (n, steps, VOCAB) float32. The timings do not
    depend on the values."""
    import numpy as np
    spec = RNN_SPECS[workload]
    T = spec["steps"]
    stream = np.random.default_rng(seed).integers(0, VOCAB, size=n * T + 1)
    X, y = stream[:-1].reshape(n, T), stream[1:].reshape(n, T)
    if spec["embed"] is None:
        X = np.eye(VOCAB, dtype=np.float32)[X]
    return X, y


def rnn_initial_weights(workload, seed=0):
    """The weights both libraries start from, in PyTorch's layouts: embedding (VOCAB, embed); weight_ih (G U, F),
    weight_hh (G U, U), bias_ih and bias_hh (G U) with PyTorch's gate order; out_weight (VOCAB, U) and out_bias
    (VOCAB) of the output nn.Linear (fastnn's Dense.W is its transpose). Drawn here with NumPy in PyTorch's default
    distributions (fastnn initialises recurrent layers and embeddings the same way): embedding N(0, 1), the rest
    U(-1/sqrt(U), 1/sqrt(U)). Each library's worker copies them into its model, so no process imports the other
    library (importing fastnn sets OMP_WAIT_POLICY and loads a second OpenMP runtime into torch's process)."""
    import numpy as np
    spec = RNN_SPECS[workload]
    rng = np.random.default_rng(seed)
    U, G = spec["units"], 4 if spec["cell"] == "lstm" else 1
    F = VOCAB if spec["embed"] is None else spec["embed"]
    bound = 1.0 / U ** 0.5
    weights = {}
    if spec["embed"] is not None:
        weights["embedding"] = rng.standard_normal((VOCAB, F))
    for name, shape in (("weight_ih", (G * U, F)), ("weight_hh", (G * U, U)), ("bias_ih", (G * U,)),
                        ("bias_hh", (G * U,)), ("out_weight", (VOCAB, U)), ("out_bias", (VOCAB,))):
        weights[name] = rng.uniform(-bound, bound, size=shape)
    return {name: w.astype(np.float32) for name, w in weights.items()}


def fastnn_rnn_layers(workload, stateful=False):
    import fastnn
    spec = RNN_SPECS[workload]
    layers = [] if spec["embed"] is None else [fastnn.Embedding(VOCAB, spec["embed"])]
    if spec["cell"] == "lstm":
        layers.append(fastnn.LSTM(spec["units"], return_sequences=True, stateful=stateful))
    else:
        layers.append(fastnn.SimpleRNN(spec["units"], activation="tanh", return_sequences=True, stateful=stateful))
    return layers + [fastnn.Dense(VOCAB)]


def load_fastnn_rnn(net, weights):
    """Copy rnn_initial_weights into a network built from fastnn_rnn_layers."""
    layers = list(net.layers)
    if "embedding" in weights:
        layers.pop(0).W[...] = weights["embedding"]
    recurrent, dense = layers
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(recurrent, name)[...] = weights[name]
    dense.W[...] = weights["out_weight"].T
    dense.b[...] = weights["out_bias"]


def run_fastnn_rnn(backend, workload, n, threads):
    import numpy as np

    import fastnn
    fastnn.set_num_threads(threads)
    spec = RNN_SPECS[workload]
    generate = spec["unit"] == "µs/token"
    input_shape = (spec["steps"], VOCAB) if spec["embed"] is None else (None,)
    net = fastnn.Network(fastnn_rnn_layers(workload, stateful=generate), input_shape=input_shape,
                         loss="cross_entropy", dtype="float32", seed=0, backend=backend)
    load_fastnn_rnn(net, rnn_initial_weights(workload))
    info = {"version": fastnn.__version__, "backend": net.backend, "n_params": net.n_params}
    if generate:  # one token per call, the state carried by the network
        tokens = np.random.default_rng(0).integers(0, VOCAB, size=(n, 1))
        net.reset_states()
        return {**info, **time_latency(lambda row: net.predict(row[None, :])[0, -1], tokens)}
    X, y = make_tokens(workload, n)

    def epoch(Xe, ye):
        return net.fit(Xe, ye, epochs=1, batch_size=spec["batch"], shuffle=False, optimizer="adam",
                       learning_rate=RNN_LR, reset_optimizer=False)["loss"][-1]

    return {**info, **time_training(epoch, X, y, warm=max(16, 2 * spec["batch"]), items_per_sample=spec["steps"])}


def torch_rnn_model(workload, weights):
    """The PyTorch twin of fastnn_rnn_layers (nn.Embedding, nn.RNN or nn.LSTM with batch_first, nn.Linear),
    holding rnn_initial_weights."""
    import torch
    from torch import nn
    spec = RNN_SPECS[workload]

    class CharModel(nn.Module):
        def __init__(self):
            super().__init__()
            features = VOCAB if spec["embed"] is None else spec["embed"]
            self.embedding = None if spec["embed"] is None else nn.Embedding(VOCAB, spec["embed"])
            if spec["cell"] == "lstm":
                self.rnn = nn.LSTM(features, spec["units"], batch_first=True)
            else:
                self.rnn = nn.RNN(features, spec["units"], nonlinearity="tanh", batch_first=True)
            self.out = nn.Linear(spec["units"], VOCAB)

        def forward(self, x, state=None):
            if self.embedding is not None:
                x = self.embedding(x)
            h, state = self.rnn(x, state)
            return self.out(h), state

    model = CharModel()
    with torch.no_grad():
        if model.embedding is not None:
            model.embedding.weight.copy_(torch.from_numpy(weights["embedding"]))
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(model.rnn, name + "_l0").copy_(torch.from_numpy(weights[name]))
        model.out.weight.copy_(torch.from_numpy(weights["out_weight"]))
        model.out.bias.copy_(torch.from_numpy(weights["out_bias"]))
    return model


def run_torch_rnn(workload, n, threads):
    import numpy as np
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = RNN_SPECS[workload]
    model = torch_rnn_model(workload, rnn_initial_weights(workload))
    info = {"version": torch.__version__, "torch_threads": torch.get_num_threads(),
            "n_params": sum(p.numel() for p in model.parameters())}
    if spec["unit"] == "µs/token":
        model.eval()
        tokens = np.random.default_rng(0).integers(0, VOCAB, size=(n, 1))
        state = [None]  # (h, c), carried from call to call

        def predict_one(row):  # row: one token id, shape (1,)
            with torch.inference_mode():
                logits, state[0] = model(torch.from_numpy(row).view(1, 1), state[0])
                return torch.softmax(logits[0, -1], dim=0).numpy()

        return {**info, **time_latency(predict_one, tokens)}
    loss_fn, opt, bs = nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=RNN_LR), spec["batch"]

    # the batches in order, as fastnn's fit(shuffle=False)
    epoch = torch_epoch(lambda xb, yb: loss_fn(model(xb)[0].reshape(-1, VOCAB), yb.reshape(-1)), opt, bs,
                        shuffle=False)

    X, y = make_tokens(workload, n)
    return {**info, **time_training(epoch, X, y, warm=max(16, 2 * bs), items_per_sample=spec["steps"])}


# ----------------------------------------------------------------------------------------------- sklearn
def run_sklearn(workload, n, threads):
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    warnings.simplefilter("ignore", ConvergenceWarning)
    sizes = SPECS[workload]["sizes"]
    info = {"version": sklearn.__version__}
    hidden = tuple(sizes[1:-1])
    common = dict(hidden_layer_sizes=hidden, alpha=0.0, shuffle=True, random_state=0, tol=0.0,
                  n_iter_no_change=10 ** 9)
    X, y = make_data(workload, n)
    if workload == "tiny_online":  # partial_fit = one pass over the data in minibatches of batch_size
        est = MLPRegressor(activation="tanh", solver="sgd", batch_size=1, learning_rate_init=0.01, momentum=0.0,
                           **common)

        def epoch(Xe, ye):
            est.partial_fit(Xe, ye)
            return est.loss_

        return {**info, **time_training(epoch, X, y)}
    if workload in ("mnist_mlp", "wide_mlp"):  # fit with max_iter=1: one epoch (plus initialisation)
        if workload == "mnist_mlp":
            est = MLPClassifier(activation="relu", solver="adam", batch_size=128, learning_rate_init=1e-3,
                                max_iter=1, **common)
        else:
            est = MLPClassifier(activation="relu", solver="sgd", batch_size=256, learning_rate_init=0.01,
                                momentum=0.9, nesterovs_momentum=False, max_iter=1, **common)

        def epoch(Xe, ye):
            est.fit(Xe, ye)
            return est.loss_

        return {**info, **time_training(epoch, X, y)}
    # inference: a classifier fitted for one epoch on a few samples, then predict_proba
    Xf, yf = make_data("mnist_mlp", 256, seed=1)
    est = MLPClassifier(activation="relu", solver="adam", batch_size=128, max_iter=1, **common).fit(Xf, yf)
    if workload == "infer_latency":
        return {**info, **time_latency(lambda x: est.predict_proba(x.reshape(1, -1))[0], X)}
    return {**info, **time_batch(est.predict_proba, X)}


# ------------------------------------------------------------------------------------------------- numpy
class NumpyMLP:
    """A straightforward NumPy MLP: forward, backward, SGD (momentum) or Adam, float32 throughout."""

    def __init__(self, sizes, hidden, loss, seed=0):
        import numpy as np
        self.np = np
        rng = np.random.default_rng(seed)
        self.hidden, self.loss = hidden, loss
        self.W, self.b = [], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            limit = np.sqrt(6.0 / a) if hidden == "relu" else np.sqrt(6.0 / (a + b))
            self.W.append(rng.uniform(-limit, limit, (a, b)).astype(np.float32))
            self.b.append(np.zeros(b, dtype=np.float32))
        self.params = self.W + self.b
        self.state = None
        self.t = 0

    def forward(self, X, keep=False):
        np = self.np
        acts = [X]
        h = X
        last = len(self.W) - 1
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = h @ W
            z += b
            if i < last:
                if self.hidden == "relu":
                    np.maximum(z, 0, out=z)
                else:
                    np.tanh(z, out=z)
            acts.append(z)
            h = z
        return acts if keep else h

    def predict(self, X):
        np = self.np
        z = self.forward(X)
        if self.loss == "mse":
            return z
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, X, y):
        """Gradients of the mean loss; returns (loss, grads in the order of self.params)."""
        np = self.np
        acts = self.forward(X, keep=True)
        out = acts[-1]
        n = X.shape[0]
        if self.loss == "mse":
            diff = out - y
            loss = float((diff * diff).mean())
            d = diff * np.float32(2.0 / diff.size)
        else:
            z = out - out.max(axis=1, keepdims=True)
            e = np.exp(z)
            p = e / e.sum(axis=1, keepdims=True)
            loss = float(-np.log(p[np.arange(n), y] + np.float32(1e-12)).mean())
            p[np.arange(n), y] -= 1
            d = p * np.float32(1.0 / n)
        gW, gb = [None] * len(self.W), [None] * len(self.W)
        for i in range(len(self.W) - 1, -1, -1):
            gW[i] = acts[i].T @ d
            gb[i] = d.sum(axis=0)
            if i > 0:
                d = d @ self.W[i].T
                if self.hidden == "relu":
                    d *= acts[i] > 0
                else:
                    d *= 1 - acts[i] * acts[i]
        return loss, gW + gb

    def sgd(self, grads, lr, momentum=0.0):
        np = self.np
        if momentum:
            if self.state is None:
                self.state = [np.zeros_like(p) for p in self.params]
            for p, g, v in zip(self.params, grads, self.state):
                v *= np.float32(momentum)
                v += g
                p -= np.float32(lr) * v
        else:
            for p, g in zip(self.params, grads):
                p -= np.float32(lr) * g

    def adam(self, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        np = self.np
        if self.state is None:
            self.state = [(np.zeros_like(p), np.zeros_like(p)) for p in self.params]
        self.t += 1
        lr_t = np.float32(lr * np.sqrt(1 - beta2 ** self.t) / (1 - beta1 ** self.t))
        for p, g, (m, v) in zip(self.params, grads, self.state):
            m *= np.float32(beta1)
            m += np.float32(1 - beta1) * g
            v *= np.float32(beta2)
            v += np.float32(1 - beta2) * (g * g)
            p -= lr_t * m / (np.sqrt(v) + np.float32(eps))


def run_numpy(workload, n, threads):
    import numpy as np
    sizes = SPECS[workload]["sizes"]
    info = {"version": np.__version__}
    if workload == "tiny_online":
        net, step, bs = NumpyMLP(sizes, "tanh", "mse"), lambda g: net.sgd(g, 0.01), 1
    elif workload == "mnist_mlp":
        net, step, bs = NumpyMLP(sizes, "relu", "ce"), lambda g: net.adam(g, 1e-3), 128
    elif workload == "wide_mlp":
        net, step, bs = NumpyMLP(sizes, "relu", "ce"), lambda g: net.sgd(g, 0.01, 0.9), 256
    else:
        net = NumpyMLP(sizes, "relu", "ce")
        X, _ = make_data(workload, n)
        return {**info, **(time_latency(net.predict, X) if workload == "infer_latency"
                           else time_batch(net.predict, X))}
    X, y = make_data(workload, n)
    rng = np.random.default_rng(0)

    def epoch(Xe, ye):
        order = rng.permutation(Xe.shape[0])
        total = 0.0
        for start in range(0, Xe.shape[0], bs):
            idx = order[start:start + bs]
            loss, grads = net.backward(Xe[idx], ye[idx])
            step(grads)
            total += loss * idx.shape[0]
        return total / Xe.shape[0]

    return {**info, **time_training(epoch, X, y)}


# -------------------------------------------------------------------------------------------------- FANN
class FannTrainData(ctypes.Structure):
    _fields_ = [("errno_f", ctypes.c_int), ("error_log", ctypes.c_void_p), ("errstr", ctypes.c_char_p),
                ("num_data", ctypes.c_uint), ("num_input", ctypes.c_uint), ("num_output", ctypes.c_uint),
                ("input", ctypes.POINTER(ctypes.POINTER(ctypes.c_float))),
                ("output", ctypes.POINTER(ctypes.POINTER(ctypes.c_float)))]


FANN_LINEAR, FANN_SIGMOID_SYMMETRIC, FANN_LINEAR_PIECE = 0, 5, 12  # enum fann_activationfunc_enum
FANN_TRAIN_INCREMENTAL = 0


def load_fann():
    """libfann (float fann_type) through ctypes, with the prototypes used here."""
    name = ctypes.util.find_library("fann") or "libfann.so.2"
    lib = ctypes.CDLL(name)
    P, u, f, i = ctypes.c_void_p, ctypes.c_uint, ctypes.c_float, ctypes.c_int
    fp = ctypes.POINTER(ctypes.c_float)
    protos = {
        "fann_create_standard_array": (P, [u, ctypes.POINTER(u)]),
        "fann_destroy": (None, [P]),
        "fann_set_activation_function_hidden": (None, [P, i]),
        "fann_set_activation_function_output": (None, [P, i]),
        "fann_set_activation_steepness_hidden": (None, [P, f]),
        "fann_set_activation_steepness_output": (None, [P, f]),
        "fann_set_training_algorithm": (None, [P, i]),
        "fann_set_learning_rate": (None, [P, f]),
        "fann_set_learning_momentum": (None, [P, f]),
        "fann_randomize_weights": (None, [P, f, f]),
        "fann_run": (fp, [P, P]),  # input passed as an address (NumPy's .ctypes.data)
        "fann_train": (None, [P, fp, fp]),
        "fann_create_train": (ctypes.POINTER(FannTrainData), [u, u, u]),
        "fann_destroy_train": (None, [ctypes.POINTER(FannTrainData)]),
        "fann_shuffle_train_data": (None, [ctypes.POINTER(FannTrainData)]),
        "fann_train_epoch": (f, [P, ctypes.POINTER(FannTrainData)]),
    }
    for fname, (restype, argtypes) in protos.items():
        fn = getattr(lib, fname)
        fn.restype, fn.argtypes = restype, argtypes
    return lib, name


def run_fann(workload, n, threads):
    import numpy as np
    lib, name = load_fann()
    sizes = SPECS[workload]["sizes"]
    info = {"version": "2.2 (" + name + ")", "threads_note": "FANN is single-threaded"}
    arr = (ctypes.c_uint * len(sizes))(*sizes)
    ann = lib.fann_create_standard_array(len(sizes), arr)
    lib.fann_randomize_weights(ann, -0.1, 0.1)
    lib.fann_set_activation_function_output(ann, FANN_LINEAR)
    try:
        if workload == "tiny_online":
            lib.fann_set_activation_function_hidden(ann, FANN_SIGMOID_SYMMETRIC)  # tanh(steepness * x)
            lib.fann_set_activation_steepness_hidden(ann, 1.0)
            lib.fann_set_training_algorithm(ann, FANN_TRAIN_INCREMENTAL)  # fann_train per sample, in C
            lib.fann_set_learning_rate(ann, 0.01)
            lib.fann_set_learning_momentum(ann, 0.0)
            X, y = make_data(workload, n)

            def epoch(Xe, ye):
                data = lib.fann_create_train(Xe.shape[0], Xe.shape[1], ye.shape[1])
                try:
                    ctypes.memmove(data.contents.input[0], Xe.ctypes.data, Xe.nbytes)
                    ctypes.memmove(data.contents.output[0], np.ascontiguousarray(ye).ctypes.data, ye.nbytes)
                    lib.fann_shuffle_train_data(data)
                    return lib.fann_train_epoch(ann, data)
                finally:
                    lib.fann_destroy_train(data)

            return {**info, **time_training(epoch, X, y)}
        # inference: FANN 2.2 has no ReLU and no softmax; bounded linear hidden layers, linear output
        lib.fann_set_activation_function_hidden(ann, FANN_LINEAR_PIECE)
        X, _ = make_data(workload, n)
        n_out = sizes[-1]

        row_bytes = 4 * n_out
        run, memmove = lib.fann_run, ctypes.memmove

        def predict_one(x):
            out = np.empty(n_out, dtype=np.float32)
            memmove(out.ctypes.data, run(ann, x.ctypes.data), row_bytes)
            return out

        if workload == "infer_latency":
            return {**info, **time_latency(predict_one, X)}

        def predict(Xb):  # fann_run on each row, outputs copied into one array
            Xb = np.ascontiguousarray(Xb)
            out = np.empty((Xb.shape[0], n_out), dtype=np.float32)
            x_addr, x_step, o_addr = Xb.ctypes.data, Xb.strides[0], out.ctypes.data
            for k in range(Xb.shape[0]):
                memmove(o_addr + k * row_bytes, run(ann, x_addr + k * x_step), row_bytes)
            return out

        return {**info, **time_batch(predict, X)}
    finally:
        lib.fann_destroy(ann)


# ------------------------------------------------------------------------------------------ peak and probe
def run_peak(threads, quick):
    """float32 2048^3 matmul through NumPy: the best of 5 (after one warm-up) as FLOP/s."""
    import numpy as np
    k = 2048
    rng = np.random.default_rng(0)
    A = rng.standard_normal((k, k), dtype=np.float32)
    B = rng.standard_normal((k, k), dtype=np.float32)
    C = np.empty((k, k), dtype=np.float32)
    np.matmul(A, B, out=C)
    best = float("inf")
    for _ in range(3 if quick else 5):
        with Timer() as t:
            np.matmul(A, B, out=C)
        best = min(best, t.seconds)
    return {"value": 2.0 * k ** 3 / best, "seconds": best, "version": np.__version__}


# where each library's own products run: its own best float32 2048^3 product is its "own sgemm peak"
# (libraries absent here have none: FANN multiplies in scalar loops, onnxruntime is not measured)
OWN_PEAK_OF = {"numpy": "numpy", "sklearn": "numpy", "fastnn-python": "numpy", "torch": "torch",
               "fastnn-c": "fastnn-c", "fastnn-c-f32": "fastnn-c", BEFORE: BEFORE}


def best_of(call, quick):
    call()
    best = float("inf")
    for _ in range(3 if quick else 5):
        with Timer() as t:
            call()
        best = min(best, t.seconds)
    return best


def run_own_peak(lib, threads, quick):
    """The library's own best float32 2048^3 product as FLOP/s (after one warm-up, the best of 5): torch.mm for
    torch; for fastnn's C backend the faster of its engines (own kernels, BLAS) through fastnn._core.gemm, the
    call its layers make; NumPy's matmul for the libraries whose products are NumPy's."""
    if OWN_PEAK_OF.get(lib, lib) == "numpy":
        return run_peak(threads, quick)
    import numpy as np
    k = 2048
    rng = np.random.default_rng(0)
    A = rng.standard_normal((k, k), dtype=np.float32)
    B = rng.standard_normal((k, k), dtype=np.float32)
    C = np.empty((k, k), dtype=np.float32)
    if lib == "torch":
        import torch
        torch.set_num_threads(threads)
        At, Bt, Ct = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(C)
        seconds = best_of(lambda: torch.mm(At, Bt, out=Ct), quick)
        return {"value": 2.0 * k ** 3 / seconds, "seconds": seconds, "engine": "torch.mm",
                "version": torch.__version__}
    if lib in ("fastnn-c", "fastnn-c-f32", BEFORE):
        import fastnn
        from fastnn import _backend
        fastnn.set_num_threads(threads)
        core = _backend.get("c")
        if not hasattr(core, "gemm"):  # a fastnn before the engines: no product of its own to time
            return {"error": "this fastnn has no fastnn._core.gemm"}
        from fastnn import _gemm
        seconds = {}
        for name in ("own", "blas") if core.blas_enabled() else ("own",):
            seconds[name] = best_of(lambda: core.gemm(_gemm.ENGINES[name], False, False, A, B, C,
                                                      n_threads=threads), quick)
        best = min(seconds, key=seconds.get)
        return {"value": 2.0 * k ** 3 / seconds[best], "seconds": seconds[best],
                "engine": engine_label(best), "version": fastnn.__version__}
    return {"error": f"no own sgemm peak for {lib}"}


def engine_label(engine):
    """"own (avx512)", "blas (mkl)", "loops": an engine of fastnn._gemm with what it runs on here."""
    from fastnn import _blas, _gemm
    if engine == "own":
        return f"own ({_gemm.isa()})"
    if engine == "blas":
        return f"blas ({getattr(_blas, 'SOURCE', None) or 'scipy'})"
    return engine


def dense_products(workload):
    """(trans_a, trans_b, m, n, k) of the products of a dense workload (asv_bench/benchmarks/gemm.py), or []."""
    if workload not in ("tiny_online", "mnist_mlp", "wide_mlp", "infer_latency", "infer_batch"):
        return []
    sizes, batch = SPECS[workload]["sizes"], SPECS[workload]["batch"]
    train = workload in ("tiny_online", "mnist_mlp", "wide_mlp")
    products = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        if workload == "infer_batch":  # predict runs in chunks of at most INFER_ROWS (4,096) rows
            rows = sorted({min(batch, 4096), batch % 4096} - {0})
            products += [(False, False, r, d_out, d_in) for r in rows]
            continue
        products.append((False, False, batch, d_out, d_in))
        if train:
            products.append((True, False, d_in, d_out, batch))
            if d_in != sizes[0]:
                products.append((False, True, batch, d_in, d_out))
    return products


def fastnn_engines(workload, threads):
    """The engine of each of the workload's products in this (finished) run, from fastnn._gemm: the products
    the networks tuned (fastnn._gemm.tuned()), else the dense workload's own shapes through engine_for.
    Returns {"summary": "own (avx512) for all 8 products", "products": [[dtype, ta, tb, m, n, k, threads, engine]]}
    or None for a fastnn before the engines."""
    try:
        from fastnn import _gemm
    except ImportError:
        return None
    entries = []
    tuned = _gemm.tuned() if hasattr(_gemm, "tuned") else {}
    if tuned:
        for key, (engine, _, tuned_threads) in sorted(tuned.items(), key=str):
            entries.append([*key, tuned_threads, engine])
    else:
        for trans_a, trans_b, m, n, k in dense_products(workload):
            entries.append(["float32", trans_a, trans_b, m, n, k, threads,
                            _gemm.engine_for("float32", trans_a, trans_b, m, n, k)])
    forced = _gemm.forced() if hasattr(_gemm, "forced") else None
    if not entries:
        summary = (f"{engine_label(forced)} for every product (FASTNN_GEMM)" if forced
                   else "not tuned in this run (each product on its default engine)")
        return {"summary": summary, "products": []}
    counts = {}
    for entry in entries:
        label = engine_label(entry[-1])
        counts[label] = counts.get(label, 0) + 1
    if len(counts) == 1:
        summary = f"{next(iter(counts))} for all {len(entries)} products"
    else:
        summary = ", ".join(f"{label} for {c}" for label, c in sorted(counts.items(), key=lambda x: -x[1]))
        summary += f" of {len(entries)} products"
    if not tuned:
        summary += " (untuned: the default per shape)"
    if forced:
        summary += " (forced by FASTNN_GEMM)"
    return {"summary": summary, "products": entries}


def probe(lib):
    """Is `lib` usable here? Returns {"ok": True, "version": ...} or {"ok": False, "why": ...}."""
    try:
        if lib.startswith("fastnn"):
            import fastnn
            from fastnn import _backend
            backend = lib.split("-")[1]
            if backend == "c" and not _backend.c_available():
                return {"ok": False, "why": f"the fastnn C extension does not import ({_backend._CORE_ERROR})"}
            return {"ok": True, "version": fastnn.__version__}
        if lib == "torch":
            import torch
            return {"ok": True, "version": torch.__version__}
        if lib == "onnxruntime":
            import onnxruntime
            import onnx  # noqa: F401 (fastnn's export)
            return {"ok": True, "version": onnxruntime.__version__}
        if lib == "sklearn":
            import sklearn
            return {"ok": True, "version": sklearn.__version__}
        if lib == "numpy":
            import numpy
            return {"ok": True, "version": numpy.__version__}
        if lib == "fann":
            _, name = load_fann()
            return {"ok": True, "version": "2.2 (" + name + ")"}
    except (ImportError, OSError, AttributeError) as exc:
        return {"ok": False, "why": f"not installed ({type(exc).__name__}: {exc})"}
    return {"ok": False, "why": "unknown library"}


def worker(lib, workload, threads, quick):
    out = run_worker(lib, workload, threads, quick)
    if (lib in ("fastnn-c", BEFORE) and workload not in ("probe", "peak") + INT8_WORKLOADS
            and "error" not in out):
        engines = fastnn_engines(workload, threads)
        if engines is not None:
            out["engines"] = engines
    return out


def run_worker(lib, workload, threads, quick):
    if workload == "probe":
        return probe(lib)
    if workload == "peak":
        return run_own_peak(lib, threads, quick)
    n = SPECS[workload]["n"][1 if quick else 0]
    if workload in INT8_WORKLOADS:
        out = run_int8(lib, workload, n, threads)
        out["n"] = n
        return out
    if workload in RNN_SPECS:
        if lib == "fastnn-python" and "n_python" in RNN_SPECS[workload]:
            n = RNN_SPECS[workload]["n_python"][1 if quick else 0]
        if lib in ("fastnn-c", BEFORE):
            out = run_fastnn_rnn("c", workload, n, threads)
        elif lib == "fastnn-python":
            out = run_fastnn_rnn("python", workload, n, threads)
        elif lib == "torch":
            out = run_torch_rnn(workload, n, threads)
        else:
            raise ValueError(f"{lib} has no recurrent layers ({workload})")
        out["n"] = n
        return out
    if workload in CONV_SPECS:
        if lib == "fastnn-python" and "n_python" in CONV_SPECS[workload]:
            n = CONV_SPECS[workload]["n_python"][1 if quick else 0]
        if lib.startswith("fastnn-"):
            out = run_fastnn_conv(lib.split("-")[1], workload, n, threads)
        elif lib == "torch":
            out = run_torch_conv(workload, n, threads)
        else:
            raise ValueError(f"{lib} has no convolution ({workload})")
        out["n"] = n
        return out
    if lib in ("fastnn-c", BEFORE):
        out = run_fastnn("c", workload, n, threads)
    elif lib == "fastnn-python":
        out = run_fastnn("python", workload, n, threads)
    elif lib == "torch":
        out = run_torch(workload, n, threads)
    elif lib == "sklearn":
        out = run_sklearn(workload, n, threads)
    elif lib == "numpy":
        out = run_numpy(workload, n, threads)
    elif lib == "fann":
        out = run_fann(workload, n, threads)
    else:
        raise ValueError(f"unknown library {lib!r}")
    out["n"] = n
    return out


# =============================================================================================== parent side
def thread_env(threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    return env


def spawn(lib, workload, args, timeout=900):
    """Run one worker subprocess; returns its JSON dict, or {"error": ...}."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, workload, "--threads", str(args.threads)]
    if args.quick:
        cmd.append("--quick")
    env = thread_env(args.threads)
    if lib == BEFORE:
        env["PYTHONPATH"] = os.path.abspath(args.before)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=os.path.dirname(os.path.abspath(__file__)))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def cpu_model():
    model, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        fields = {}
        for line in info.splitlines():
            if ":" in line:
                key, value = (s.strip() for s in line.split(":", 1))
                fields.setdefault(key, value)
        model = fields.get("model name", model)
        extra = []
        if "cpu family" in fields and "model" in fields:
            extra.append(f"family {fields['cpu family']} model {fields['model']}")
        cpu_flags = fields.get("flags", "").split()
        isa = [x for x in ("avx512f", "avx2", "fma") if x in cpu_flags]
        if isa:
            extra.append("/".join(isa))
        if "hypervisor" in cpu_flags:
            extra.append("virtual machine")
        flags = ", ".join(extra)
    except OSError:
        pass
    return f"{model} ({flags}; {os.cpu_count()} logical CPUs)" if flags else f"{model} ({os.cpu_count()} CPUs)"


def is_latency(unit):
    """Units of time per call or token ("µs/call", "µs/token"), where smaller is faster."""
    return unit.startswith("µs/")


def fmt_value(value, unit):
    if value is None:
        return "—"
    if is_latency(unit):
        return f"{value:,.1f} µs"
    return f"{value:,.0f}/s"


def speed_ratio(fast, peer, unit):
    """fastnn-C speed / peer speed (throughput ratio; for latency, peer µs / fastnn-C µs)."""
    if fast is None or peer is None:
        return None
    return peer / fast if is_latency(unit) else fast / peer


def fastnn_commit():
    """The commit of the source tree around this script, "+dirty" when fastnn's sources differ from it."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "fastnn", "csrc", "setup.py",
                                "pyproject.toml"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + (" + uncommitted changes" if dirty else "")) if head else "unknown"


def load_average():
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "n/a"


def own_peak_of(lib, peak, own_peaks):
    """The median own sgemm peak (FLOP/s) of a library: its own measurement, NumPy's for the libraries whose
    products are NumPy's, None where there is none."""
    source = OWN_PEAK_OF.get(lib)
    if source == "numpy":
        return peak
    values = own_peaks.get(source) if source else None
    return statistics.median(values) if values else None


def render(args, libs, workloads, results, peaks, notes, versions, started, elapsed, loads, own_peaks=None,
           own_peak_engines=None):
    lines = []
    own_peaks, own_peak_engines = own_peaks or {}, own_peak_engines or {}
    peak = statistics.median(peaks) if peaks else None
    lines.append(f"fastnn vs peers, float32, {args.threads} thread(s) per library, median of {args.repeats} "
                 f"interleaved run(s){' (--quick: small workloads)' if args.quick else ''}")
    lines.append("")
    lines.append(f"- date: {started:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min; load average (1/5/15 min) "
                 f"{loads[0]} at the start, {loads[1]} at the end")
    lines.append(f"- CPU: {cpu_model()}; Python {platform.python_version()}, {platform.system()} "
                 f"{platform.release()}")
    lines.append(f"- fastnn source: commit {fastnn_commit()}")
    lines.append("- versions: " + ", ".join(f"{lib} {versions[lib]}" for lib in libs if lib in versions))
    if peak:
        lines.append(f"- sgemm peak (NumPy float32 2048³ matmul, {args.threads} thread(s)): {peak / 1e9:,.1f} "
                     f"GFLOP/s (median of {len(peaks)}; range {min(peaks) / 1e9:,.1f}–{max(peaks) / 1e9:,.1f})")
    shown_peak = any(w in PEAK_WORKLOADS for w in workloads)
    if shown_peak and (peak or own_peaks):
        parts = []
        for lib in libs:
            value = own_peak_of(lib, peak, own_peaks)
            if value is None or lib not in versions:  # not measured, or not usable here
                continue
            how = OWN_PEAK_OF.get(lib)
            how = ", ".join(own_peak_engines.get(lib, {})) if how == lib else f"{how}'s"
            parts.append(f"{lib} {value / 1e9:,.1f}" + (f" ({how})" if how else ""))
        if parts:
            lines.append(f"- own sgemm peaks (each library's own best float32 2048³ product, {args.threads} "
                         f"thread(s), median over rounds; GFLOP/s): " + "; ".join(parts))
    if any(w in INT8_WORKLOADS for w in workloads):
        lines.append("- int8 workloads: fastnn-c is the int8 QuantizedNetwork; fastnn-c-f32 fastnn's float32 "
                     "network; torch quantize_dynamic (qint8); onnxruntime quantize_dynamic (QInt8, per channel)")
    lines.append("- ×: fastnn-C speed ÷ that library's speed (> 1: fastnn-C is faster); for the latency workloads "
                 "(infer_latency, lenet5_infer1, lstm_generate1) that is the library's µs ÷ fastnn-C's µs")
    units = sorted({SPECS[w]["unit"] for w in workloads})
    lines.append("- units: " + ", ".join(f"{u} ({', '.join(w for w in workloads if SPECS[w]['unit'] == u)})"
                                         for u in units))
    lines.append("")
    lines.append("| workload | library | median | range (min–max) | % of sgemm peak | × (fastnn-C ÷ lib) "
                 "| % of own sgemm peak |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for workload in workloads:
        unit = SPECS[workload]["unit"]
        meds = {lib: statistics.median(v) for lib, v in results.get(workload, {}).items() if v}
        fast = meds.get("fastnn-c")
        for lib in libs:
            if (lib, workload) in NOT_APPLICABLE:
                lines.append(f"| {workload} | {lib} | {NOT_APPLICABLE[lib, workload]} | — | — | — | — |")
                continue
            if lib not in meds:
                continue
            vals = results[workload][lib]
            med = meds[lib]
            pct = own_pct = "—"
            if workload in PEAK_WORKLOADS and peak:
                pct = f"{100.0 * 6 * macs_per_sample(workload) * med / peak:.1f}%"
            own = own_peak_of(lib, peak, own_peaks)
            if workload in PEAK_WORKLOADS and own:
                own_pct = f"{100.0 * 6 * macs_per_sample(workload) * med / own:.1f}%"
            ratio = speed_ratio(fast, med, unit)
            ratio_s = "—" if ratio is None or lib == "fastnn-c" else f"{ratio:,.2f}"
            rng = f"{fmt_value(min(vals), unit)} – {fmt_value(max(vals), unit)}" if len(vals) > 1 else "—"
            name = f"**{lib}**" if lib == "fastnn-c" else lib
            lines.append(f"| {workload} | {name} | {fmt_value(med, unit)} | {rng} | {pct} | {ratio_s} | {own_pct} |")
    if notes:
        lines.append("")
        lines.append("Notes:")
        for note in notes:
            lines.append(f"- {note}")
    return "\n".join(lines)


def parse_list(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds; medians are reported (default 5, 1 with --quick)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--libs", default=",".join(LIBS), help=f"comma-separated subset of {','.join(LIBS)}")
    parser.add_argument("--quick", action="store_true", help="small workloads: a smoke test, not a measurement")
    parser.add_argument("--output", help="also write the markdown table to this file")
    parser.add_argument("--json", help="also write every raw result to this JSON file")
    parser.add_argument("--before", metavar="DIR",
                        help=f"also run the dense and recurrent workloads with fastnn imported from DIR (an earlier commit built "
                             f"in place: git worktree add DIR <commit> && cd DIR && python setup.py build_ext "
                             f"--inplace), as the library {BEFORE}")
    parser.add_argument("--worker", nargs=2, metavar=("LIB", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")

    if args.worker:
        lib, workload = args.worker
        try:
            out = worker(lib, workload, args.threads, args.quick)
        except Exception as exc:  # reported to the parent, which notes it and goes on
            import traceback
            traceback.print_exc()
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(RESULT + json.dumps(out), flush=True)
        return 0

    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    workloads = parse_list(args.workloads, WORKLOADS, "workload")
    libs = parse_list(args.libs, LIBS, "library")
    if args.before:
        libs.append(BEFORE)
        for w in CONV_SPECS:
            NOT_APPLICABLE[(BEFORE, w)] = "n/a (before: no convolution)"
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    load_start = load_average()

    notes, versions, usable = [], {}, []
    for lib in libs:
        info = spawn(lib, "probe", args, timeout=300)
        if info.get("ok"):
            usable.append(lib)
            versions[lib] = info.get("version", "?")
        else:
            notes.append(f"{lib} skipped: {info.get('why') or info.get('error')}")
            print(f"skip {lib}: {info.get('why') or info.get('error')}", file=sys.stderr)
    for (lib, workload), why in UNSUPPORTED.items():
        if lib in usable and workload in workloads:
            notes.append(f"{lib} skips {workload}: {why}")
    if "fann" in usable:
        notes.append("fann: tiny_online uses fann_train_epoch with FANN_TRAIN_INCREMENTAL (fann_train on each "
                     "sample, in C; data shuffled by fann_shuffle_train_data each epoch) and FANN_SIGMOID_SYMMETRIC "
                     "with steepness 1 (= tanh); inference uses fann_run per sample with FANN_LINEAR_PIECE hidden "
                     "layers and a linear output (FANN 2.2 has no ReLU and no softmax); FANN is single-threaded")
    if "sklearn" in usable:
        notes.append("sklearn: tiny_online = MLPRegressor(solver='sgd', batch_size=1).partial_fit (one pass); "
                     "mnist_mlp / wide_mlp = MLPClassifier(max_iter=1).fit (one epoch, includes initialisation "
                     "and label encoding); inference = predict_proba; alpha=0 (no L2)")
    notes.append("mnist_mlp and infer_* use random data of MNIST shape (784 pixels uniform in [0, 1), random "
                 "labels), not MNIST itself: the timings do not depend on the values")
    conv = [w for w in workloads if w in CONV_SPECS]
    if conv:
        sizes = ", ".join(f"{w} {CONV_SPECS[w]['n'][1 if args.quick else 0]:,}"
                          + (f" (fastnn-python {CONV_SPECS[w]['n_python'][1 if args.quick else 0]:,})"
                             if "n_python" in CONV_SPECS[w] else "") for w in conv)
        notes.append(f"{', '.join(conv)}: random 1x28x28 images (random bytes / 256) and random labels; images per "
                     f"epoch (or latency calls): {sizes}; the same layers in fastnn (Conv2D, MaxPool2D, Flatten, "
                     "Dense; softmax fused into the cross-entropy) and PyTorch (nn.Conv2d + nn.ReLU, nn.MaxPool2d, "
                     "nn.Flatten, nn.Linear, nn.CrossEntropyLoss, torch.optim.Adam), float32, NCHW; "
                     "lenet5_infer1 = predict on one (1, 28, 28) image, softmax included")
    recurrent = [w for w in workloads if w in RNN_SPECS]
    if recurrent:
        sizes = ", ".join(f"{w} {RNN_SPECS[w]['n'][1 if args.quick else 0]:,}"
                          + (f" (fastnn-python {RNN_SPECS[w]['n_python'][1 if args.quick else 0]:,})"
                             if "n_python" in RNN_SPECS[w] else "") for w in recurrent)
        notes.append(f"{', '.join(recurrent)}: random character sequences (vocabulary {VOCAB}); sequences per epoch "
                     f"(lstm_generate1: tokens): {sizes}; both libraries start from the same initial weights "
                     "(drawn once with NumPy in PyTorch's default distributions and copied into each) and train on "
                     "the same batches in the same order (fastnn fit(shuffle=False, batch_size=B) over the array of "
                     "sequences; PyTorch the standard zero_grad / forward / CrossEntropyLoss / backward / Adam.step "
                     "loop over the same slices), every sequence from a zero state; PyTorch uses nn.Embedding, "
                     "nn.RNN (tanh) or nn.LSTM with batch_first=True and nn.Linear on every step; "
                     "lstm_generate1 = one (1, 1) token per call on a stateful network (fastnn: predict, "
                     "LSTM(stateful=True); PyTorch: the module called with the (h, c) of the previous call, in "
                     "torch.inference_mode()), softmax included; throughput counts tokens (sequences x steps), "
                     "the median of 3 epochs after a warm-up epoch on max(16, 2 x batch) sequences")
    notes.append("training throughput = samples of one epoch / its wall time (shuffling and per-batch Python "
                 "overhead included), the median of 3 epochs in each process after a warm-up epoch on 512 "
                 "samples; infer_latency = median of per-call "
                 "times over the input rows, infer_batch = median of 3 calls")

    results = {w: {lib: [] for lib in usable} for w in workloads}
    raw, peaks = [], []
    # each library's own best sgemm, once per round, for the libraries whose products are not NumPy's
    own_peak_libs = sorted({OWN_PEAK_OF[lib] for lib in usable if lib in OWN_PEAK_OF} - {"numpy"})
    if not any(w in PEAK_WORKLOADS for w in workloads):
        own_peak_libs = []
    own_peaks = {lib: [] for lib in own_peak_libs}
    own_peak_engines = {}
    engines_seen = {}  # workload -> {summary: rounds}
    for r in range(args.repeats):
        out = spawn("numpy", "peak", args)
        if "value" in out:
            peaks.append(out["value"])
        raw.append({"round": r, "lib": "numpy", "workload": "peak", **out})
        print(f"[round {r + 1}/{args.repeats}] sgemm peak {out.get('value', 0) / 1e9:.1f} GFLOP/s", file=sys.stderr)
        for lib in own_peak_libs:
            out = spawn(lib, "peak", args)
            raw.append({"round": r, "lib": lib, "workload": "own_peak", **out})
            if "value" in out:
                own_peaks[lib].append(out["value"])
                if out.get("engine"):
                    own_peak_engines.setdefault(lib, {}).setdefault(out["engine"], 0)
                    own_peak_engines[lib][out["engine"]] += 1
                print(f"[round {r + 1}/{args.repeats}] own sgemm peak {lib} {out['value'] / 1e9:.1f} GFLOP/s "
                      f"({out.get('engine', '')})", file=sys.stderr)
            else:
                notes.append(f"{lib} own sgemm peak round {r + 1} failed: {out.get('error')}")
        for w in workloads:
            order = [lib for lib in usable if (lib, w) not in UNSUPPORTED and (lib, w) not in NOT_APPLICABLE
                     and (lib not in INT8_ONLY_LIBS or w in INT8_WORKLOADS)]
            shift = r % max(1, len(order))
            order = order[shift:] + order[:shift]
            for lib in order:
                out = spawn(lib, w, args)
                raw.append({"round": r, "lib": lib, "workload": w, **out})
                if "value" in out:
                    results[w][lib].append(out["value"])
                    versions.setdefault(lib, out.get("version", "?"))
                    if lib == "fastnn-c" and out.get("engines"):
                        seen = engines_seen.setdefault(w, {})
                        seen[out["engines"]["summary"]] = seen.get(out["engines"]["summary"], 0) + 1
                    print(f"[round {r + 1}/{args.repeats}] {w:14s} {lib:14s} "
                          f"{fmt_value(out['value'], SPECS[w]['unit'])}", file=sys.stderr)
                else:
                    print(f"[round {r + 1}/{args.repeats}] {w:14s} {lib:14s} ERROR {out.get('error')}",
                          file=sys.stderr)
                    notes.append(f"{lib} {w} round {r + 1} failed: {out.get('error')}")
    for w in workloads:
        seen = engines_seen.get(w)
        if seen:
            text = "; ".join(f"{summary}" + (f" ({count} of {args.repeats} rounds)" if len(seen) > 1 else "")
                             for summary, count in seen.items())
            notes.append(f"fastnn-c matrix-product engines, {w}: {text}")
    elapsed = time.perf_counter() - t0
    table = render(args, libs, workloads, results, peaks, notes, versions, started, elapsed,
                   (load_start, load_average()), own_peaks, own_peak_engines)
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "repeats": args.repeats, "quick": args.quick,
                       "date": started.isoformat(), "cpu": cpu_model(), "results": raw}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
