#!/usr/bin/env python
"""A scikit-learn baseline for fastnn.datasets.load_words ("which language is this word?"): the accuracy a
recurrent model on the same split should beat.

    python -I asv_bench/language_baseline.py                       # all languages, 10,000 words each
    python -I asv_bench/language_baseline.py --languages english,german,french --per-language 5000

Character n-grams (1 to 4, analyzer="char_wb", so n-grams do not cross the word's edges, which are marked by a
space) weighted by TF-IDF (sublinear tf), then LogisticRegression (C=10, max_iter=1000), trained on the first
part of load_words(...).split() (80%) and scored on the rest. Prints the command, the data, the test accuracy,
the accuracy per language and the most frequent confusions. Needs the Debian word lists (see load_words).
"""
import argparse
import os
import shlex
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from fastnn.datasets import load_words  # noqa: E402
import sklearn  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", default=None, help="comma-separated names (default: all of WORD_LISTS)")
    parser.add_argument("--per-language", type=int, default=None, help="words per language (default: load_words')")
    parser.add_argument("--seed", type=int, default=0, help="load_words' seed")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args(argv)

    command = list(getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv)  # orig_argv (3.10+) keeps -I
    command[0] = os.path.basename(command[0])
    print("command:", " ".join(shlex.quote(a) for a in command))
    languages = args.languages.split(",") if args.languages else None
    data = load_words(languages, per_language=args.per_language, seed=args.seed)
    w_train, w_test, y_train, y_test = data.split(args.test_fraction)
    print(f"data: {len(data.classes)} languages ({', '.join(data.classes)}), {len(data) // len(data.classes)} "
          f"words each; {len(w_train)} train, {len(w_test)} test; scikit-learn {sklearn.__version__}")

    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True),
                          LogisticRegression(C=10.0, max_iter=1000))
    start = time.perf_counter()
    model.fit(list(w_train), y_train)
    fit_s = time.perf_counter() - start
    predicted = model.predict(list(w_test))
    accuracy = float(np.mean(predicted == y_test))
    print(f"test accuracy: {accuracy:.4f} (chance {1 / len(data.classes):.4f}); "
          f"{len(model[0].vocabulary_)} n-gram features; fit {fit_s:.1f} s")

    confusion = confusion_matrix(y_test, predicted, labels=range(len(data.classes)))
    width = max(len(c) for c in data.classes)
    for i, name in enumerate(data.classes):
        print(f"  {name:<{width}}  {confusion[i, i] / confusion[i].sum():.4f}")
    off = [(confusion[i, j], data.classes[i], data.classes[j]) for i in range(len(data.classes))
           for j in range(len(data.classes)) if i != j]
    print("most frequent confusions (true -> predicted):",
          ", ".join(f"{a} -> {b} {k}" for k, a, b in sorted(off, reverse=True)[:5]))
    return accuracy


if __name__ == "__main__":
    main()
