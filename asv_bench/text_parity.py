#!/usr/bin/env python
"""The text demo's character LSTM trained by fastnn and by PyTorch from the same start: do they learn the same?

    python asv_bench/text_parity.py                        # 200,000 characters, 2 epochs (a few minutes)
    python asv_bench/text_parity.py --chars 50000 --epochs 1 --backend python

The model, data and optimizer are those of `python -m fastnn text` (fastnn/_text_demos.py, run_text): the first
--chars characters of fastnn.datasets.text.load_stdlib_text, a CharVocabulary of their characters, sequences of 64
characters whose targets are the next characters, the last 5% of the sequences held out for validation;
Embedding(V, 64) -> LSTM(128, return_sequences=True) -> Dense(V), softmax + cross-entropy over every step; Adam
(lr 2e-3), gradients clipped to global norm 5.0, batches of 32, float32. Unlike the demo it does not shuffle: both
libraries see the same batches in the same order (fastnn fit(shuffle=False); PyTorch the same slices in a loop).

PyTorch's model (nn.Embedding, nn.LSTM(batch_first=True), nn.Linear) starts from a copy of the fastnn network's
initial weights (the same layouts; the Linear weight is Dense.W transposed). torch.nn.utils.clip_grad_norm_ and
fastnn's clip_norm use one formula (g *= max_norm / (||g|| + 1e-6) when ||g|| > max_norm), and both Adams are
PyTorch's default (betas 0.9, 0.999, eps 1e-8), so the two runs differ only by floating-point rounding, which
grows over the steps but should leave the validation losses within 2% of each other. The script prints each
epoch's training and validation loss of both, and the relative difference of the final validation losses; it
exits with status 1 when that is above the target (--target, default 0.02), 0 otherwise, and 0 with a message
when PyTorch is not installed. The characters/s it prints are for information only (both libraries in one
process, --threads threads each); asv_bench/compare.py measures speed.
"""
import argparse
import os
import sys
import time

import numpy as np

# the fastnn of this checkout, not an installed one (as language_baseline.py and sklearn_compare.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

STEPS = 64
EMBED = 64
UNITS = 128
BATCH = 32
LR = 2e-3
CLIP_NORM = 5.0


def load_data(n_chars):
    """(vocab, X_train, Y_train, X_val, Y_val) as run_text builds them: int64 (n, STEPS) ids and next-ids."""
    from fastnn.datasets import text as data
    corpus = data.load_stdlib_text(n_chars)[:n_chars]
    vocab = data.CharVocabulary.from_texts(corpus)
    ids = vocab.encode(corpus)
    n_seq = (len(ids) - 1) // STEPS
    if n_seq < 2:
        raise SystemExit(f"text_parity: {n_chars} characters make fewer than 2 sequences of {STEPS}")
    X = ids[:n_seq * STEPS].reshape(n_seq, STEPS).astype(np.int64)
    Y = ids[1:n_seq * STEPS + 1].reshape(n_seq, STEPS).astype(np.int64)
    n_val = max(1, n_seq // 20)
    return vocab, X[:-n_val], Y[:-n_val], X[-n_val:], Y[-n_val:]


def fastnn_model(V, backend, seed):
    import fastnn
    layers = [fastnn.Embedding(V, EMBED), fastnn.LSTM(UNITS, return_sequences=True), fastnn.Dense(V)]
    return fastnn.Network(layers, input_shape=(None,), loss="cross_entropy", dtype="float32", seed=seed,
                          backend=backend)


def torch_model(net):
    """A PyTorch copy of the fastnn network: the same layers holding the same weights."""
    import torch
    from torch import nn
    embedding, lstm, dense = net.layers
    V = embedding.vocab_size

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, EMBED)
            self.lstm = nn.LSTM(EMBED, UNITS, batch_first=True)
            self.out = nn.Linear(UNITS, V)

        def forward(self, x):
            h, _ = self.lstm(self.embedding(x))
            return self.out(h)

    model = CharLSTM()
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(embedding.W))
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(model.lstm, name + "_l0").copy_(torch.from_numpy(getattr(lstm, name)))
        model.out.weight.copy_(torch.from_numpy(np.ascontiguousarray(dense.W.T)))
        model.out.bias.copy_(torch.from_numpy(dense.b))
    return model


def train_fastnn(net, X, Y, X_val, Y_val, epochs):
    """fit as run_text does, without shuffling; returns (train losses, val losses, seconds) per epoch."""
    seconds, clock = [], [time.perf_counter()]

    def timer(epoch, history):
        seconds.append(time.perf_counter() - clock[0])
        clock[0] = time.perf_counter()

    history = net.fit(X, Y, epochs=epochs, batch_size=BATCH, optimizer="adam", learning_rate=LR,
                      clip_norm=CLIP_NORM, shuffle=False, validation_data=(X_val, Y_val), callbacks=[timer])
    return list(history["loss"]), list(history["val_loss"]), seconds


def train_torch(model, X, Y, X_val, Y_val, epochs):
    """The same batches in the same order, the standard PyTorch step with clip_grad_norm_; the same returns."""
    import torch
    import torch.nn.functional as F
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    Xv, Yv = torch.from_numpy(X_val), torch.from_numpy(Y_val)
    losses, val_losses, seconds = [], [], []
    for _ in range(epochs):
        start_time = time.perf_counter()
        model.train()
        total = 0.0
        for start in range(0, Xt.shape[0], BATCH):
            xb, yb = Xt[start:start + BATCH], Yt[start:start + BATCH]
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            opt.step()
            total += loss.item() * xb.shape[0]
        losses.append(total / Xt.shape[0])
        model.eval()
        with torch.inference_mode():
            logits = model(Xv)
            val_losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Yv.reshape(-1)).item())
        seconds.append(time.perf_counter() - start_time)  # with the validation pass, as fastnn's fit
    return losses, val_losses, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=200_000, help="characters of text (default 200000)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="threads for each library (default 2)")
    parser.add_argument("--backend", choices=("c", "python"), default=None,
                        help="fastnn's backend (default: fastnn's default, the C one when it is built)")
    parser.add_argument("--seed", type=int, default=0, help="fastnn's initialisation seed (default 0)")
    parser.add_argument("--target", type=float, default=0.02,
                        help="the largest relative difference of the validation losses that passes (default 0.02)")
    args = parser.parse_args(argv)
    if args.chars < 1 or args.epochs < 1 or args.threads < 1:
        parser.error("--chars, --epochs and --threads must be positive")
    try:  # torch first: it then configures its own OpenMP runtime as it would alone (see compare.py)
        import torch
    except ImportError as exc:
        print(f"text_parity: skipped, PyTorch is not installed ({exc}); pip install torch to run it")
        return 0
    import fastnn
    torch.set_num_threads(args.threads)
    fastnn.set_num_threads(args.threads)

    try:
        vocab, X, Y, X_val, Y_val = load_data(args.chars)
    except (FileNotFoundError, ValueError) as exc:
        print(f"text_parity: skipped, the text is not available: {exc}")
        return 0
    net = fastnn_model(len(vocab), args.backend, args.seed)
    model = torch_model(net)  # copied before fastnn trains
    steps = -(-X.shape[0] // BATCH) * args.epochs
    print(f"text_parity: {args.chars:,} characters of the Python standard library's sources, {len(vocab)} symbols; "
          f"{X.shape[0]:,} training / {X_val.shape[0]:,} validation sequences of {STEPS}; {args.epochs} epoch(s) = "
          f"{steps:,} Adam steps of {BATCH} sequences; fastnn {fastnn.__version__} backend {net.backend}, "
          f"torch {torch.__version__}, {args.threads} thread(s) each")

    f_loss, f_val, f_sec = train_fastnn(net, X, Y, X_val, Y_val, args.epochs)
    t_loss, t_val, t_sec = train_torch(model, X, Y, X_val, Y_val, args.epochs)

    chars = X.shape[0] * STEPS
    print()
    print("| epoch | fastnn loss | torch loss | fastnn val_loss | torch val_loss | val rel. diff | "
          "fastnn chars/s | torch chars/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in range(args.epochs):
        if e >= len(f_val):  # fastnn stopped early (the loss diverged)
            print(f"| {e + 1} | — | {t_loss[e]:.4f} | — | {t_val[e]:.4f} | — | — | {chars / t_sec[e]:,.0f} |")
            continue
        rel = abs(f_val[e] - t_val[e]) / abs(t_val[e])
        print(f"| {e + 1} | {f_loss[e]:.4f} | {t_loss[e]:.4f} | {f_val[e]:.4f} | {t_val[e]:.4f} | {100 * rel:.4f}% | "
              f"{chars / f_sec[e]:,.0f} | {chars / t_sec[e]:,.0f} |")
    if len(f_val) < args.epochs:
        print(f"\ntext_parity: FAIL, fastnn stopped after {len(f_val)} of {args.epochs} epochs")
        return 1
    rel = abs(f_val[-1] - t_val[-1]) / abs(t_val[-1])
    verdict = "PASS" if rel <= args.target else "FAIL"
    print(f"\nfinal validation loss: fastnn {f_val[-1]:.5f}, torch {t_val[-1]:.5f}, relative difference "
          f"{100 * rel:.4f}% ({rel:.1e}; target <= {100 * args.target:g}%): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
