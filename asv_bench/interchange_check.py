#!/usr/bin/env python
"""How closely fastnn's interchange paths reproduce the other libraries, as one table of maximum absolute
differences (the figures the tests assert as bounds):

    python -I asv_bench/interchange_check.py

- export: onnxruntime on net.to_onnx() against net.predict, for a dense, a convolutional and a recurrent
  network, float32 (and float64 where onnxruntime has double kernels: Gemm, activations), batch of 64;
- import: fastnn.from_onnx of torch.onnx.export (the TorchScript exporter) against the PyTorch module;
- from_state_dict: a Network from module.state_dict() against the PyTorch module (float32 and float64);
- from_sklearn: a Network from a fitted scikit-learn MLP against its predict_proba (float64);
- skl2onnx: onnxruntime on skl2onnx's model against fastnn's export of from_sklearn of the same estimator.
Needs onnx, onnxruntime, torch, scikit-learn and skl2onnx.
"""
import copy
import io
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import onnxruntime  # noqa: E402
import torch  # noqa: E402

import fastnn  # noqa: E402
from fastnn import GRU, LSTM, Conv2D, Dense, Embedding, Flatten, MaxPool2D  # noqa: E402


def run(model, x):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the missing double kernels are reported in the table
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def networks(dtype):
    yield "dense 64-128-10 softmax", fastnn.Network([64, 128, 10], loss="cross_entropy", dtype=dtype, seed=0), \
        lambda rng: rng.standard_normal((64, 64)).astype(dtype)
    yield "conv 1x12x12 conv-pool-dense", fastnn.Network(
        [Conv2D(4, 3, padding=1, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)],
        input_shape=(1, 12, 12), loss="cross_entropy", dtype=dtype, seed=0), \
        lambda rng: rng.standard_normal((64, 1, 12, 12)).astype(dtype)
    yield "embedding-LSTM-GRU-dense, T=9", fastnn.Network(
        [Embedding(20, 8), LSTM(16, return_sequences=True), GRU(12), Dense(5)], input_shape=(None,),
        loss="cross_entropy", dtype=dtype, seed=0), lambda rng: rng.integers(0, 20, (64, 9)).astype(np.int64)


def main():
    rng = np.random.default_rng(0)
    rows = []
    for dtype in ("float32", "float64"):
        for name, net, make in networks(dtype):
            x = make(rng)
            try:
                got = run(net.to_onnx(), x)
            except Exception as exc:  # onnxruntime has no double Conv / LSTM / GRU kernels
                rows.append((f"export {dtype}", name, f"not run: {type(exc).__name__}"))
                continue
            rows.append((f"export {dtype}", name, f"{np.abs(got - net.predict(x)).max():.2e}"))

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10)).eval()
    x = rng.standard_normal((64, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.from_numpy(x[:1]), buffer, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    imported = fastnn.from_onnx(buffer.getvalue())
    rows.append(("from_onnx(torch.onnx.export)", "conv-relu-pool-flatten-linear",
                 f"{np.abs(imported.predict(x) - want).max():.2e}"))
    layers = [Conv2D(4, 3, padding=1, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)]
    for dtype, m in (("float32", module), ("float64", copy.deepcopy(module).double())):
        net = fastnn.Network.from_state_dict(layers, m.state_dict(), input_shape=(1, 12, 12))
        xd = x.astype(dtype)
        with torch.no_grad():
            want = m(torch.from_numpy(xd)).numpy()
        rows.append((f"from_state_dict {dtype}", "the same module", f"{np.abs(net.predict(xd) - want).max():.2e}"))

    import skl2onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X = X / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier((32,), max_iter=50, random_state=0).fit(X, y)
    net = fastnn.from_sklearn(est)
    rows.append(("from_sklearn float64", "MLPClassifier((32,)) on digits",
                 f"{np.abs(net.predict(X) - est.predict_proba(X)).max():.2e}"))
    X32 = X.astype(np.float32)
    session = onnxruntime.InferenceSession(
        skl2onnx.to_onnx(est, X32[:1], options={type(est): {"zipmap": False}}).SerializeToString(),
        providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: X32})[-1]  # (label, probabilities)
    ours = run(fastnn.from_sklearn(est, dtype="float32").to_onnx(), X32)
    rows.append(("skl2onnx vs to_onnx(from_sklearn)", "the same estimator, onnxruntime",
                 f"{np.abs(ours - theirs).max():.2e}"))

    print(f"fastnn {fastnn.__version__} ({fastnn.BACKEND}), onnxruntime {onnxruntime.__version__}, "
          f"torch {torch.__version__}")
    print("| path | model | max abs difference |\n|---|---|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
