"""The text data (fastnn.datasets.text): CharVocabulary, load_words, date_pairs and load_stdlib_text.

load_words is tested on small word lists written here (always), and on the Debian lists in /usr/share/dict when
they are installed (.ci/run installs them; elsewhere those tests skip). The dates are checked with a parser
written here, independent of the generator's own tables."""
import collections
import datetime
import json
import os
import re
import sysconfig

import numpy as np
import pytest

from fastnn.datasets import text
from fastnn.datasets import (CharVocabulary, load_words, date_pairs, load_stdlib_text, DATE_FORMATS,
                             DATE_INPUT_ALPHABET, DATE_OUTPUT_ALPHABET, DATE_INPUT_MAX_LENGTH, DATE_OUTPUT_LENGTH)


# ---------------------------------------------------------------------------------------------- vocabulary
def test_vocabulary_ids_and_round_trip():
    vocab = CharVocabulary("abc")
    assert len(vocab) == 5 and vocab.alphabet == "abc"
    assert CharVocabulary.PAD == 0 and CharVocabulary.UNKNOWN == 1
    ids = vocab.encode("cab")
    assert ids.dtype == np.int64 and ids.shape == (3,)
    assert ids.tolist() == [4, 2, 3]
    assert vocab.decode(ids) == "cab"
    assert vocab.decode(vocab.encode(["a", "", "abcab"])) == ["a", "", "abcab"]


def test_vocabulary_padding_and_truncation():
    vocab = CharVocabulary("abc")
    texts = ["ab", "abcab", ""]
    pre = vocab.encode(texts)
    assert pre.dtype == np.int64 and pre.shape == (3, 5)
    assert pre.tolist() == [[0, 0, 0, 2, 3], [2, 3, 4, 2, 3], [0] * 5]
    post = vocab.encode(texts, pad="post")
    assert post.tolist() == [[2, 3, 0, 0, 0], [2, 3, 4, 2, 3], [0] * 5]
    # truncation: "pre" (default) keeps the end, "post" keeps the beginning
    assert vocab.encode(texts, length=3).tolist() == [[0, 2, 3], [4, 2, 3], [0, 0, 0]]
    assert vocab.encode(texts, length=3, truncate="post", pad="post").tolist() == [[2, 3, 0], [2, 3, 4], [0, 0, 0]]
    assert vocab.encode("abcab", length=7).tolist() == [0, 0, 2, 3, 4, 2, 3]
    assert vocab.encode(texts, length=0).shape == (3, 0)
    assert vocab.encode([]).shape == (0, 0) and vocab.encode([], length=4).shape == (0, 4)
    assert vocab.decode(vocab.encode(texts, length=8, pad="post")) == texts


def test_vocabulary_unknown_characters():
    vocab = CharVocabulary("ab")
    assert vocab.encode("axb\u00e9").tolist() == [2, 1, 3, 1]
    assert vocab.decode([2, 1, 3]) == "a" + CharVocabulary.UNKNOWN_CHAR + "b"
    assert CharVocabulary("").encode("xy").tolist() == [1, 1]
    assert "a" in vocab and "x" not in vocab and "ab" not in vocab


def test_vocabulary_random_round_trip():
    rng = np.random.default_rng(0)
    alphabet = "".join(chr(c) for c in rng.permutation(np.r_[32:127, 0xe0:0x100, 0x3b1:0x3ca, 0x1f600:0x1f610]))
    vocab = CharVocabulary(alphabet)
    texts = ["".join(rng.choice(list(alphabet), rng.integers(0, 30))) for _ in range(200)]
    ids = vocab.encode(texts)
    assert ids.min() >= 0 and ids.max() < len(vocab) and (ids != CharVocabulary.UNKNOWN).all()
    assert vocab.decode(ids) == texts
    assert [vocab.decode(vocab.encode(t)) for t in texts] == texts
    # the vectorised encode agrees with a per-character lookup
    lookup = {c: i + 2 for i, c in enumerate(alphabet)}
    assert vocab.encode(texts[0]).tolist() == [lookup[c] for c in texts[0]]


def test_vocabulary_from_texts_and_config():
    vocab = CharVocabulary.from_texts(["hello", "world"])
    assert vocab.alphabet == "dehlorw"  # sorted by code point
    assert CharVocabulary.from_texts("hello world", min_count=2).alphabet == "lo"
    assert CharVocabulary.from_texts(np.array(["ba", "c"])).alphabet == "abc"
    config = vocab.config()
    assert config == {"alphabet": "dehlorw"}
    again = CharVocabulary.from_config(json.loads(json.dumps(config)))
    assert again == vocab and hash(again) == hash(vocab)
    assert np.array_equal(again.encode(["low", "herd"]), vocab.encode(["low", "herd"]))
    odd = CharVocabulary("\n\"\\\u00fc\U0001f600")
    assert CharVocabulary.from_config(json.loads(json.dumps(odd.config()))) == odd


def test_vocabulary_errors():
    with pytest.raises(ValueError, match="repeated"):
        CharVocabulary("abca")
    with pytest.raises(ValueError, match="single characters"):
        CharVocabulary(["ab", "c"])
    vocab = CharVocabulary("ab")
    with pytest.raises(ValueError, match="pad"):
        vocab.encode("a", pad="left")
    with pytest.raises(ValueError, match="truncate"):
        vocab.encode("a", truncate="both")
    with pytest.raises(ValueError, match="length"):
        vocab.encode("a", length=-1)
    with pytest.raises(TypeError, match="bytes"):
        vocab.encode(b"ab")
    with pytest.raises(TypeError):
        vocab.encode(["a", 3])
    with pytest.raises(ValueError, match="0..3"):
        vocab.decode([0, 4])
    with pytest.raises(ValueError, match="0..3"):
        vocab.decode([-1])
    with pytest.raises(ValueError, match="integers"):
        vocab.decode([1.0])
    with pytest.raises(ValueError, match="dimensions"):
        vocab.decode(np.zeros((1, 1, 1), np.int64))
    with pytest.raises(ValueError, match="alphabet"):
        CharVocabulary.from_config({"alphabet": "ab", "extra": 1})


# --------------------------------------------------------------------------------------------------- dates
# The test's own reading of human dates: English names written out again here, not taken from the module.
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def parse_human(s):
    """The date s names, or an AssertionError. Slash: month/day/year; dot: day.month.year (years of two digits
    are 19xx from 50 on, else 20xx); otherwise one month name, a four-digit year, a day, perhaps a weekday."""
    low = s.lower()
    numeric = re.fullmatch(r"(\d{1,2})([/.])(\d{1,2})\2(\d{2}|\d{4})", low)
    if numeric:
        a, sep, b, y = numeric.groups()
        month, day = (int(a), int(b)) if sep == "/" else (int(b), int(a))
        year = int(y) if len(y) == 4 else (1900 if int(y) >= 50 else 2000) + int(y)
        return datetime.date(year, month, day)
    tokens = [t for t in re.split(r"[ ,\-]+", low) if t]
    names = [t for t in tokens if not t.isdigit()]
    numbers = [t for t in tokens if t.isdigit()]
    months = [i + 1 for i, m in enumerate(MONTHS) for t in names if t in (m, m[:3])]
    weekdays = [i for i, w in enumerate(WEEKDAYS) for t in names if t in (w, w[:3])]
    assert len(months) == 1 and len(months) + len(weekdays) == len(names), s
    years = [t for t in numbers if len(t) == 4]
    days = [t for t in numbers if len(t) <= 2]
    assert len(years) == 1 and len(days) == 1 and len(numbers) == 2, s
    date = datetime.date(int(years[0]), months[0], int(days[0]))
    assert all(w == date.weekday() for w in weekdays), f"{s}: wrong weekday"
    return date


def test_date_pairs_are_valid():
    human, iso = date_pairs(3000, seed=1)
    assert len(human) == len(iso) == 3000
    lo, hi = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)
    for h, i in zip(human, iso):
        date = datetime.date.fromisoformat(i)
        assert lo <= date <= hi and i == date.isoformat()
        assert len(i) == DATE_OUTPUT_LENGTH and set(i) <= set(DATE_OUTPUT_ALPHABET)
        assert 0 < len(h) <= DATE_INPUT_MAX_LENGTH and set(h) <= set(DATE_INPUT_ALPHABET), h
        assert parse_human(h) == date, (h, i)
    # many formats, in several cases
    assert len(set(re.sub(r"\d", "0", h) for h in human)) > 100
    assert any(h.isupper() for h in human) and any(h.islower() for h in human)
    assert any(h[0].isupper() and not h.isupper() for h in human)


def test_date_pairs_formats_of_one_date():
    human, iso = date_pairs(1500, seed=0, start="2026-11-29", end="2026-11-29")
    assert set(iso) == {"2026-11-29"}
    expected = {"29 nov 2026", "Sunday, November 29, 2026", "11/29/26", "29.11.2026", "November 29 2026",
                "sun 29 nov 2026", "2026 nov 29", "29 NOVEMBER 2026", "nov 29, 2026", "29-Nov-2026"}
    assert expected <= set(human)
    assert all(parse_human(h) == datetime.date(2026, 11, 29) for h in set(human))
    # every format occurs, in each of its case variants (3 for formats with names, 1 for numbers only)
    variants = [1 if re.fullmatch(r"[{}dmyY/.]+", t) else 3 for t in DATE_FORMATS]
    assert len(set(human)) == sum(variants)


def test_date_input_max_length_is_reached():
    human, _ = date_pairs(1500, start=datetime.date(2025, 9, 30), end="2026-09-30")
    assert max(len(h) for h in human) <= DATE_INPUT_MAX_LENGTH
    longest, _ = date_pairs(500, start="2026-09-30", end="2026-09-30")  # a Wednesday in September
    assert max(len(h) for h in longest) == DATE_INPUT_MAX_LENGTH == len("Wednesday, September 30, 2026")


def test_date_pairs_seed_and_range():
    assert date_pairs(50, seed=3) == date_pairs(50, seed=3)
    assert date_pairs(50, seed=3) != date_pairs(50, seed=4)
    assert date_pairs(0) == ([], [])
    # a span of 100 years or more: no two-digit years, which would be ambiguous
    human, iso = date_pairs(3000, start="1900-01-01", end="2099-12-31")
    assert not any(re.fullmatch(r"\d+[/.]\d+[/.]\d\d", h) for h in human)
    assert min(iso) < "1950" and max(iso) > "2050"
    for h, i in zip(human, iso):
        assert parse_human(h) == datetime.date.fromisoformat(i)
    with pytest.raises(ValueError, match="after"):
        date_pairs(1, start="2000-01-02", end="2000-01-01")
    with pytest.raises(ValueError, match="ISO"):
        date_pairs(1, start="1/2/2000")
    with pytest.raises(ValueError, match="n must"):
        date_pairs(-1)


def test_date_alphabets_build_vocabularies():
    human, iso = date_pairs(200)
    source, target = CharVocabulary(DATE_INPUT_ALPHABET), CharVocabulary(DATE_OUTPUT_ALPHABET)
    x = source.encode(human, length=DATE_INPUT_MAX_LENGTH)
    y = target.encode(iso)
    assert x.shape == (200, DATE_INPUT_MAX_LENGTH) and y.shape == (200, DATE_OUTPUT_LENGTH)
    assert (x != CharVocabulary.UNKNOWN).all() and (y >= 2).all()
    assert source.decode(x) == human and target.decode(y) == iso
    assert set(DATE_OUTPUT_ALPHABET) == set("0123456789-")


# --------------------------------------------------------------------------------------- words, synthetic
def write_lists(folder, contents, encoding="utf-8"):
    """contents: {language: list of lines}; writes each under its /usr/share/dict file name."""
    folder.mkdir(exist_ok=True)
    for language, lines in contents.items():
        (folder / text.WORD_LISTS[language][0]).write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return folder


def test_load_words_cleaning(tmp_path):
    folder = write_lists(tmp_path / "dict", {
        "english": ["cat", "cat's", "Dog", "dog", "hotel", "ox", "well-known", "it'll", "x1y", "seventeenletters",
                    "house", "mouse"],
        "german": ["Katze", "Hund", "Hotel", "Straße", "über", "zu", "Haus"],
    })
    write_lists(folder, {"swedish": ["hund", "sjö", "älg", "hus", "båt"]}, encoding="latin-1")
    data = load_words(["english", "german"], per_language=4, dict_dir=folder, max_length=12)
    assert data.classes == ("english", "german")
    by_language = {c: sorted(data.words[data.labels == i]) for i, c in enumerate(data.classes)}
    # english keeps cat, dog, house, mouse (hotel is in both lists); german katze, hund, straße, über, haus
    assert by_language["english"] == ["cat", "dog", "house", "mouse"]
    assert set(by_language["german"]) <= {"katze", "hund", "straße", "über", "haus"}
    assert len(by_language["german"]) == 4
    # a latin-1 list is read too, and "hund" is now ambiguous between german and swedish
    data = load_words(["german", "swedish"], dict_dir=folder)
    assert sorted(data.words[data.labels == 1]) == ["båt", "hus", "sjö", "älg"]
    assert "hund" not in data.words


def test_load_words_balance_seed_and_split(tmp_path):
    rng = np.random.default_rng(0)
    lists = {lang: sorted({"".join(rng.choice(list(letters), rng.integers(3, 9))) for _ in range(size)})
             for lang, letters, size in (("english", "abcdef", 300), ("french", "ghijkl", 200),
                                         ("italian", "mnopqr", 250))}
    folder = write_lists(tmp_path / "dict", lists)
    data = load_words(["english", "french", "italian"], dict_dir=folder)
    smallest = min(len(v) for v in lists.values())
    assert np.bincount(data.labels).tolist() == [smallest] * 3  # the default: the smallest list
    assert data.labels.dtype == np.int64 and len(data) == 3 * smallest
    again = load_words(["english", "french", "italian"], dict_dir=folder)
    assert np.array_equal(again.words, data.words) and np.array_equal(again.labels, data.labels)
    other = load_words(["english", "french", "italian"], dict_dir=folder, seed=1)
    assert not np.array_equal(other.words, data.words)
    for i, lang in enumerate(data.classes):
        assert set(data.words[data.labels == i]) <= set(lists[lang])
    w_train, w_test, y_train, y_test = data.split()
    assert not set(w_train) & set(w_test) and len(w_train) + len(w_test) == len(data)
    assert np.bincount(y_test).tolist() == [round(0.2 * smallest)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(data.split(), again.split()))
    with pytest.raises(ValueError, match="only"):
        load_words(["english", "french"], per_language=smallest + 1, dict_dir=folder)
    # a reordered language list gives the labels in that order
    assert load_words(["french", "english"], per_language=5, dict_dir=folder).classes == ("french", "english")


def test_load_words_missing_lists_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="wfrench witalian"):
        load_words(["french", "italian"], dict_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown languages"):
        load_words(["english", "klingon"], dict_dir=tmp_path)
    with pytest.raises(ValueError, match="two different"):
        load_words(["english", "english"], dict_dir=tmp_path)
    with pytest.raises(ValueError, match="min_length"):
        load_words(min_length=5, max_length=4, dict_dir=tmp_path)


# ---------------------------------------------------------------------------------- words, Debian lists
def debian_lists_or_skip():
    missing = [pkg for file, pkg in text.WORD_LISTS.values() if not os.path.isfile(os.path.join(text.DICT_DIR, file))]
    if missing:
        pytest.skip(f"word lists not installed (apt-get install {' '.join(missing)})")


@pytest.fixture(scope="module")
def words():
    debian_lists_or_skip()
    return load_words()


def test_debian_words_balanced_and_clean(words):
    assert words.classes == tuple(text.WORD_LISTS)
    assert np.bincount(words.labels).tolist() == [10_000] * len(words.classes)
    assert len(set(words.words)) == len(words)
    for w in words.words[:5000]:
        assert w.isalpha() and w == w.lower() and 3 <= len(w) <= 12, w


def test_debian_words_disjoint_across_languages(words):
    # read again here, plainly, every lowercased entry of every list
    entries = {}
    for language, (file, _) in text.WORD_LISTS.items():
        raw = open(os.path.join(text.DICT_DIR, file), "rb").read()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            content = raw.decode("latin-1")
        entries[language] = {line.strip().lower() for line in content.splitlines()}
    for label, language in enumerate(words.classes):
        mine = set(words.words[words.labels == label])
        assert mine <= entries[language]
        for other in words.classes:
            if other != language:
                assert not mine & entries[other], (language, other, sorted(mine & entries[other])[:5])


def test_debian_words_split(words):
    w_train, w_test, y_train, y_test = words.split()
    assert len(w_test) == 0.2 * len(words) and not set(w_train) & set(w_test)
    assert np.bincount(y_test).tolist() == [2000] * len(words.classes)


# ------------------------------------------------------------------------------------------ stdlib text
def test_stdlib_text_slices():
    text_ = load_stdlib_text(2000)
    assert len(text_) == 2000
    with open(os.path.join(sysconfig.get_paths()["stdlib"], text.STDLIB_TEXT_FILES[0]), encoding="utf-8") as f:
        assert f.read().startswith(text_)
    assert load_stdlib_text(100, offset=50) == load_stdlib_text(200)[50:150]
    everything = load_stdlib_text(None)
    assert len(everything) >= 1_000_000 and "\r" not in everything
    assert load_stdlib_text() == everything[:1_000_000]
    assert load_stdlib_text(None, offset=len(everything) - 5) == everything[-5:]
    with pytest.raises(ValueError, match="characters"):
        load_stdlib_text(10, offset=len(everything) - 5)
    with pytest.raises(ValueError, match="offset"):
        load_stdlib_text(10, offset=-1)
    # every file is in, in order
    positions = [everything.find(name) for name in ("class ArgumentParser", "def unified_diff", "class Thread:")]
    assert -1 < positions[0] < positions[1] < positions[2]
    vocab = CharVocabulary.from_texts(everything)
    assert vocab.decode(vocab.encode(everything)) == everything
