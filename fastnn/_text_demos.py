"""The text demos of `python -m fastnn`: the three recurrent tasks of a first course.

  words   which language is this word? Two GRUs read a word character by character (word lists of
          /usr/share/dict: Debian's wamerican, wngerman, wfrench, ...), next to a scikit-learn baseline
  dates   sequence to sequence: human-readable dates ("Sunday, November 29, 2026", "11/29/26") to ISO dates
          ("2026-11-29") by an LSTM encoder, RepeatVector and an LSTM decoder; exact-match accuracy
  text    a character-level LSTM trained on a text file (default: a fixed slice of the Python standard library's
          own sources), printing per-epoch loss, characters/s and a sampled paragraph
"""
import time

import numpy as np

import fastnn
from fastnn.datasets import text as data
from fastnn.generation import generate

TEXT_DEMOS = {
    "words": {"epochs": 6, "batch_size": 64, "threshold": 0.85,
              "help": "which language is a word: two GRUs over characters (/usr/share/dict word lists)"},
    "dates": {"epochs": 8, "batch_size": 64, "threshold": 0.99,
              "help": "translate human-readable dates to ISO dates: LSTM encoder-decoder"},
    "text": {"epochs": 5, "batch_size": 32, "threshold": None,
             "help": "character-level LSTM on a text file (default: Python's own sources), then sample"},
}


def _epoch_printer(n_items, unit, extra=None):
    """A fit callback printing loss, items/s of the epoch and anything `extra(epoch)` returns."""
    clock = [time.perf_counter()]

    def report(epoch, history):
        seconds = time.perf_counter() - clock[0]
        line = f"epoch {epoch + 1}  loss {history['loss'][-1]:.4f}"
        if "val_loss" in history:
            line += f"  val_loss {history['val_loss'][-1]:.4f}"
        line += f"  {unit}/s {n_items / max(seconds, 1e-9):,.0f}"
        if extra is not None:
            line += "  " + extra(epoch)
        print(line, flush=True)
        clock[0] = time.perf_counter()

    return report


def run_words(args):
    try:
        words = data.load_words(per_language=args.per_language, seed=args.seed)
    except FileNotFoundError as error:
        print(f"python -m fastnn words: {error}")
        return None
    w_train, w_test, y_train, y_test = words.split(0.2)
    vocab = data.CharVocabulary.from_texts(list(w_train))
    length = max(len(w) for w in words.words)
    # pre-padding: the last step the GRU reads is the word's last character
    X_train, X_test = vocab.encode(list(w_train), length=length), vocab.encode(list(w_test), length=length)
    net = fastnn.Network([fastnn.Embedding(len(vocab), 32), fastnn.GRU(128, return_sequences=True), fastnn.GRU(128),
                          fastnn.Dense(len(words.classes))],
                         input_shape=(length,), loss="cross_entropy", dtype=args.dtype, seed=args.seed,
                         backend=args.backend)
    print(f"fastnn demo: the language of a word, {len(words.classes)} languages ({', '.join(words.classes)}), "
          f"{len(w_train):,} training / {len(w_test):,} test words from /usr/share/dict")
    net.summary()

    def accuracy(epoch=None):
        value = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
        return value if epoch is None else f"test accuracy {value:.4f}"

    # a cosine-decayed learning rate: at a constant one the training loss stalls near 0.3 (the model underfits)
    net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
            learning_rate=3e-3, clip_norm=5.0, lr_schedule=fastnn.CosineDecay(max(args.epochs, 1), 1e-4),
            callbacks=[_epoch_printer(len(X_train), "words", accuracy)])
    result = accuracy()
    print(f"test accuracy {result:.4f}  (scikit-learn's character 1-4-gram TF-IDF + logistic regression on the "
          f"same split: python asv_bench/language_baseline.py --per-language {args.per_language} --seed "
          f"{args.seed})")
    return result


def _dates_model(args, in_vocab, out_vocab):
    return fastnn.Network([fastnn.Embedding(len(in_vocab), 32), fastnn.LSTM(128), fastnn.RepeatVector(
        data.DATE_OUTPUT_LENGTH), fastnn.LSTM(128, return_sequences=True), fastnn.Dense(len(out_vocab))],
        input_shape=(data.DATE_INPUT_MAX_LENGTH,), loss="cross_entropy", dtype=args.dtype, seed=args.seed,
        backend=args.backend)


def run_dates(args):
    human, iso = data.date_pairs(24_000, seed=args.seed)
    in_vocab = data.CharVocabulary(data.DATE_INPUT_ALPHABET)
    out_vocab = data.CharVocabulary(data.DATE_OUTPUT_ALPHABET)
    X = in_vocab.encode(human, length=data.DATE_INPUT_MAX_LENGTH)
    Y = out_vocab.encode(iso, length=data.DATE_OUTPUT_LENGTH)
    n_test = 4_000
    X_train, Y_train, X_test, Y_test = X[:-n_test], Y[:-n_test], X[-n_test:], Y[-n_test:]
    net = _dates_model(args, in_vocab, out_vocab)
    print(f"fastnn demo: human-readable dates to ISO dates, {len(X_train):,} training / {n_test:,} held-out pairs, "
          f"e.g. {human[0]!r} -> {iso[0]!r}")
    net.summary()

    def exact(epoch=None):
        value = float(np.mean((net.predict(X_test).argmax(axis=2) == Y_test).all(axis=1)))
        return value if epoch is None else f"exact match {value:.4f}"

    net.fit(X_train, Y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
            learning_rate=2e-3, clip_norm=5.0, callbacks=[_epoch_printer(len(X_train), "pairs", exact)])
    result = exact()
    pred = net.predict(X_test[:5]).argmax(axis=2)
    for i in range(5):
        print(f"  {human[-n_test + i]!r:>32} -> {out_vocab.decode(pred[i])}")
    print(f"exact-match accuracy on {n_test:,} held-out dates: {result:.4f}")
    return result


def run_text(args):
    if args.file:
        with open(args.file, encoding="utf-8", errors="replace") as f:
            corpus = f.read()
        source = args.file
    else:
        corpus = data.load_stdlib_text(args.chars)
        source = f"{args.chars:,} characters of the Python standard library's sources"
    corpus = corpus[:args.chars]
    vocab = data.CharVocabulary.from_texts(corpus)
    ids = vocab.encode(corpus)
    T = args.steps
    n_seq = (len(ids) - 1) // T
    if n_seq < 2:
        print("python -m fastnn text: the text is too short")
        return None
    X = ids[:n_seq * T].reshape(n_seq, T)
    Y = ids[1:n_seq * T + 1].reshape(n_seq, T)
    n_val = max(1, n_seq // 20)
    layers = [fastnn.Embedding(len(vocab), 64), fastnn.LSTM(args.units, return_sequences=True),
              fastnn.Dense(len(vocab))]
    net = fastnn.Network(layers, input_shape=(None,), loss="cross_entropy", dtype=args.dtype, seed=args.seed,
                         backend=args.backend)
    print(f"fastnn demo: a character-level LSTM on {source} ({len(vocab)} symbols, sequences of {T})")
    net.summary()
    history = net.fit(X[:-n_val], Y[:-n_val], epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                      learning_rate=2e-3, clip_norm=5.0, validation_data=(X[-n_val:], Y[-n_val:]),
                      callbacks=[_epoch_printer((n_seq - n_val) * T, "characters")])
    sampler = fastnn.Network([layer.copy() for layer in layers[:1]] +
                             [fastnn.LSTM(args.units, return_sequences=True, stateful=True), layers[2].copy()],
                             input_shape=(None,), loss="cross_entropy", dtype=args.dtype, backend=args.backend)
    sampler.set_weights(net.get_weights())
    prompt = vocab.encode("def ")
    out = generate(sampler, prompt, 400, temperature=0.7, rng=args.seed)
    print("sampled at temperature 0.7:\n" + "-" * 60 + "\ndef " + vocab.decode(out) + "\n" + "-" * 60)
    return history["val_loss"][-1] if history["val_loss"] else None


TEXT_RUNNERS = {"words": run_words, "dates": run_dates, "text": run_text}
