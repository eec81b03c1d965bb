"""Text data for the recurrent layers, with NumPy and the standard library only, and nothing downloaded.

- ``CharVocabulary``: characters <-> integer ids, with id 0 for padding and id 1 for unknown characters; its
  ``config()`` is a plain dict, so it can be saved with a model.
- ``load_words``: which language is this word? Words from the Debian word-list packages in /usr/share/dict
  (``WORD_LISTS`` says which file and package per language), cleaned, made unambiguous and balanced.
- ``date_pairs``: dates written by people in many formats, with their ISO 8601 form, for sequence-to-sequence
  translation; ``DATE_*`` constants give the alphabets and the longest strings, so a model can be built.
- ``load_stdlib_text``: a fixed slice of the Python standard library's own sources (``STDLIB_TEXT_FILES``), for
  a character-level language model.
"""
import collections
import dataclasses
import datetime
import functools
import os
import random
import string
import sysconfig
import unicodedata

import numpy as np

__all__ = ["CharVocabulary", "WordData", "load_words", "WORD_LISTS", "date_pairs", "DATE_FORMATS",
           "DATE_INPUT_ALPHABET", "DATE_OUTPUT_ALPHABET", "DATE_INPUT_MAX_LENGTH", "DATE_OUTPUT_LENGTH",
           "load_stdlib_text", "STDLIB_TEXT_FILES"]


# ----------------------------------------------------------------------------------------------- vocabulary
class CharVocabulary:
    """A fixed mapping between characters and integer ids.

    Id 0 is padding (``PAD``), id 1 stands for any character outside the alphabet (``UNKNOWN``), and the
    characters of the alphabet get ids 2, 3, ... in the order given. ``len(vocab)`` is the number of ids, i.e.
    the input size an Embedding layer needs.

    ``CharVocabulary("abc")`` takes the alphabet as given; ``CharVocabulary.from_texts(texts)`` collects the
    characters of some texts, sorted by code point (so the same texts always give the same ids).
    """

    PAD = 0
    UNKNOWN = 1
    # what decode() writes for an UNKNOWN id
    UNKNOWN_CHAR = "\N{REPLACEMENT CHARACTER}"

    def __init__(self, alphabet):
        chars = list(alphabet)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"an alphabet holds single characters, got {c!r}")
        repeated = sorted(c for c, k in collections.Counter(chars).items() if k > 1)
        if repeated:
            raise ValueError(f"characters repeated in the alphabet: {''.join(repeated)!r}")
        self._alphabet = "".join(chars)
        self._chars = np.array(["", self.UNKNOWN_CHAR] + chars, dtype=object)  # id -> text, for decode
        # code point -> id as two sorted arrays, so encode is one searchsorted over the whole text
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        self._codes = codes[order]
        self._code_ids = order.astype(np.int64) + 2

    @classmethod
    def from_texts(cls, texts, min_count=1):
        """The vocabulary of the characters that occur at least min_count times in texts (a str or an
        iterable of str), sorted by code point."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive int, got {min_count!r}")
        counts = collections.Counter()
        for text in _as_texts(texts)[0]:
            counts.update(text)
        return cls(sorted(c for c, k in counts.items() if k >= min_count))

    @property
    def alphabet(self):
        """The characters with ids 2, 3, ..., as one string."""
        return self._alphabet

    def __len__(self):
        return len(self._alphabet) + 2

    def __contains__(self, char):
        return isinstance(char, str) and len(char) == 1 and char in self._alphabet

    def __eq__(self, other):
        return isinstance(other, CharVocabulary) and other._alphabet == self._alphabet

    def __hash__(self):
        return hash((CharVocabulary, self._alphabet))

    def __repr__(self):
        return f"CharVocabulary({self._alphabet!r})"

    def config(self):
        """A plain, JSON-serialisable dict from which from_config() rebuilds this vocabulary."""
        return {"alphabet": self._alphabet}

    @classmethod
    def from_config(cls, config):
        unknown = set(config) - {"alphabet"}
        if unknown or "alphabet" not in config:
            raise ValueError(f"a CharVocabulary config has exactly the key 'alphabet', got {sorted(config)}")
        if not isinstance(config["alphabet"], str):
            raise ValueError(f"config['alphabet'] must be a str, got {type(config['alphabet']).__name__}")
        return cls(config["alphabet"])

    def _ids(self, text):
        """The ids of the characters of text, a 1-D int64 array (UNKNOWN for characters not in the alphabet)."""
        if not text:
            return np.zeros(0, np.int64)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        if not len(self._codes):
            return np.full(len(codes), self.UNKNOWN, np.int64)
        at = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        return np.where(self._codes[at] == codes, self._code_ids[at], self.UNKNOWN)

    def encode(self, texts, length=None, pad="pre", truncate="pre"):
        """The ids of texts, as int64.

        texts: a str, giving an array of shape (T,), or a list (any iterable) of str, giving shape (N, T).
        length: T; by default the length of the longest text. Shorter texts are padded with PAD (0) on the
            side pad names ("pre": before the text, the default, so the text ends at the last step; "post":
            after it); longer ones lose characters on the side truncate names ("pre", the default, keeps the
            end of the text, as Keras' pad_sequences does; "post" keeps the beginning).
        """
        for name, side in (("pad", pad), ("truncate", truncate)):
            if side not in ("pre", "post"):
                raise ValueError(f"{name} must be 'pre' or 'post', got {side!r}")
        texts, single = _as_texts(texts)
        if length is None:
            length = max((len(t) for t in texts), default=0)
        elif isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"length must be a non-negative int or None, got {length!r}")
        length = int(length)
        kept = [t if len(t) <= length else (t[len(t) - length:] if truncate == "pre" else t[:length])
                for t in texts]
        out = np.zeros((len(kept), length), np.int64)
        if kept and length:
            sizes = np.array([len(t) for t in kept], np.int64)[:, None]
            steps = np.arange(length)
            where = steps >= length - sizes if pad == "pre" else steps < sizes
            out[where] = self._ids("".join(kept))  # row-major order of `where` = order of the joined text
        return out[0] if single else out

    def decode(self, ids):
        """The text of ids, PAD skipped and UNKNOWN written as UNKNOWN_CHAR: a str for a 1-D sequence of
        ids, a list of str for a 2-D one (each row)."""
        ids = np.asarray(ids)
        if ids.ndim not in (1, 2):
            raise ValueError(f"decode takes a 1-D or 2-D array of ids, got {ids.ndim} dimensions")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"ids must lie in 0..{len(self) - 1}, got {ids.min()}..{ids.max()}")
        ids = ids.astype(np.intp, copy=False)
        if ids.ndim == 1:
            return "".join(self._chars[ids])
        return ["".join(self._chars[row]) for row in ids]


def _as_texts(texts):
    """(list of str, whether a single str was given); np.str_ counts as str, bytes are refused."""
    if isinstance(texts, str):
        return [str(texts)], True
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError("texts must be str (decode bytes first), not bytes")
    out = []
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"texts must be str or an iterable of str, found a {type(t).__name__}")
        out.append(str(t))
    return out, False


# ------------------------------------------------------------------------------------------------- words
DICT_DIR = "/usr/share/dict"
# language -> (file in /usr/share/dict, Debian package that installs it)
WORD_LISTS = {
    "english": ("american-english", "wamerican"),
    "german": ("ngerman", "wngerman"),
    "french": ("french", "wfrench"),
    "spanish": ("spanish", "wspanish"),
    "italian": ("italian", "witalian"),
    "portuguese": ("portuguese", "wportuguese"),
    "dutch": ("dutch", "wdutch"),
    "swedish": ("swedish", "wswedish"),
}
# the default number of words per language is the size of the smallest cleaned list, but at most this
_PER_LANGUAGE_CAP = 10_000


@dataclasses.dataclass(frozen=True, eq=False)
class WordData:
    """What load_words returns: words[i] is in language classes[labels[i]]."""

    words: np.ndarray  # str, shape (N,)
    labels: np.ndarray  # int64, shape (N,)
    classes: tuple  # language names, in label order

    def __len__(self):
        return len(self.words)

    def split(self, test_fraction=0.2):
        """(words_train, words_test, labels_train, labels_test), the same for the same data every time.

        Stratified: the first round(test_fraction * n) words of each language, in the (already shuffled) order
        of ``words``, are the test set; both parts keep that order."""
        if not 0.0 <= test_fraction <= 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1], got {test_fraction!r}")
        test = np.zeros(len(self.words), bool)
        for label in range(len(self.classes)):
            members = np.flatnonzero(self.labels == label)
            test[members[:int(round(test_fraction * len(members)))]] = True
        return self.words[~test], self.words[test], self.labels[~test], self.labels[test]


def load_words(languages=None, min_length=3, max_length=12, per_language=None, seed=0, dict_dir=None):
    """Words labelled with their language, from the word lists in /usr/share/dict.

    languages: names from WORD_LISTS, in the order of the labels; by default all of WORD_LISTS (english,
        german, french, spanish, italian, portuguese, dutch, swedish).
    min_length, max_length: the word lengths kept, in characters.
    per_language: words drawn per language (the classes are balanced); by default the size of the smallest
        cleaned list, at most 10,000.
    seed: which words are drawn, and their order.
    dict_dir: where the lists are; by default /usr/share/dict.

    Each list is read as UTF-8 (as latin-1 where it is not valid UTF-8, as Debian's swedish list is), put in
    Unicode NFC form and lowercased. Possessives ("'s") and every entry with a character that is not a letter
    (hyphens, apostrophes, digits, dots) are dropped, as are words outside min_length..max_length and words
    found in the lists of more than one of the languages asked for (such as "hotel" or "radio"), so that each
    word has exactly one right answer. Then per_language words are drawn from each language's list and all
    are shuffled. Returns a WordData; WordData.split() gives a fixed, stratified 80/20 train/test split.

    Raises FileNotFoundError, naming the Debian packages to install, when lists are missing.
    """
    languages = tuple(WORD_LISTS) if languages is None else tuple(languages)
    unknown = [lang for lang in languages if lang not in WORD_LISTS]
    if unknown:
        raise ValueError(f"unknown languages {unknown}; known: {', '.join(WORD_LISTS)}")
    if len(set(languages)) != len(languages) or len(languages) < 2:
        raise ValueError(f"languages must name at least two different languages, got {list(languages)}")
    for name, value in (("min_length", min_length), ("max_length", max_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if min_length > max_length:
        raise ValueError(f"min_length ({min_length}) is larger than max_length ({max_length})")
    folder = os.fspath(dict_dir) if dict_dir is not None else DICT_DIR
    paths = [os.path.join(folder, WORD_LISTS[lang][0]) for lang in languages]
    missing = [lang for lang, path in zip(languages, paths) if not os.path.isfile(path)]
    if missing:
        packages = " ".join(WORD_LISTS[lang][1] for lang in missing)
        files = ", ".join(os.path.join(folder, WORD_LISTS[lang][0]) for lang in missing)
        raise FileNotFoundError(f"word lists not found: {files}. On Debian or Ubuntu install them with: "
                                f"apt-get install {packages}")

    sets = [_word_set(path, os.stat(path).st_mtime_ns, min_length, max_length) for path in paths]
    seen = collections.Counter()
    for words in sets:
        seen.update(words)
    lists = [sorted(w for w in words if seen[w] == 1) for words in sets]  # sorted: the draw needs a fixed order

    smallest = min(len(words) for words in lists)
    if per_language is None:
        per_language = min(smallest, _PER_LANGUAGE_CAP)
    elif isinstance(per_language, bool) or not isinstance(per_language, int) or per_language < 1:
        raise ValueError(f"per_language must be a positive int or None, got {per_language!r}")
    elif per_language > smallest:
        which = languages[min(range(len(lists)), key=lambda i: len(lists[i]))]
        raise ValueError(f"per_language={per_language}, but the {which} list has only {smallest} words "
                         f"between {min_length} and {max_length} characters that no other list has")

    rng = np.random.default_rng(seed)
    words, labels = [], []
    for label, candidates in enumerate(lists):
        for i in np.sort(rng.choice(len(candidates), per_language, replace=False)):
            words.append(candidates[i])
        labels.extend([label] * per_language)
    order = rng.permutation(len(words))
    words = np.array(words, dtype=f"<U{max_length}")[order]
    return WordData(words, np.asarray(labels, np.int64)[order], languages)


@functools.lru_cache(maxsize=8)
def _word_set(path, mtime_ns, min_length, max_length):
    """The cleaned words of one list, as a frozenset (mtime_ns is only part of the cache key)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    words = set()
    for line in text.splitlines():
        word = unicodedata.normalize("NFC", line.strip()).lower()
        if word.endswith("'s") or not word.isalpha():
            continue
        if min_length <= len(word) <= max_length:
            words.add(word)
    return frozenset(words)


# ------------------------------------------------------------------------------------------------- dates
# English names written out here, so nothing depends on the locale (calendar's and strftime's names do).
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # date.weekday() order

# The human formats, as str.format templates. Fields: d / dd day (1 / 01), m / mm month number (11 / 01),
# Y four-digit year, yy two-digit year, Month / mon month name (November / Nov), Weekday / wkd (Sunday / Sun).
# A slash always means month first (US), a dot day first, so no string names two dates.
DATE_FORMATS = (
    "{d} {mon} {Y}",  # 29 Nov 2026
    "{Weekday}, {Month} {d}, {Y}",  # Sunday, November 29, 2026
    "{mm}/{dd}/{yy}",  # 11/29/26
    "{m}/{d}/{Y}",  # 11/29/2026
    "{dd}.{mm}.{Y}",  # 29.11.2026
    "{d}.{m}.{yy}",  # 29.11.26
    "{Month} {d} {Y}",  # November 29 2026
    "{Month} {d}, {Y}",  # November 29, 2026
    "{wkd} {d} {mon} {Y}",  # Sun 29 Nov 2026
    "{Y} {mon} {d}",  # 2026 Nov 29
    "{d} {Month} {Y}",  # 29 November 2026
    "{mon} {d}, {Y}",  # Nov 29, 2026
    "{dd}-{mon}-{Y}",  # 29-Nov-2026
    "{Weekday} {d} {Month} {Y}",  # Sunday 29 November 2026
    "{wkd}, {mon} {d}, {Y}",  # Sun, Nov 29, 2026
)
# Formats with names are written as above, all lower case or all upper case, each a third of the time.
_CASES = (str, str.lower, str.upper)


def _fields(date):
    return {"d": str(date.day), "dd": f"{date.day:02d}", "m": str(date.month), "mm": f"{date.month:02d}",
            "Y": f"{date.year:04d}", "yy": f"{date.year % 100:02d}",
            "Month": _MONTHS[date.month - 1], "mon": _MONTHS[date.month - 1][:3],
            "Weekday": _WEEKDAYS[date.weekday()], "wkd": _WEEKDAYS[date.weekday()][:3]}


def _field_names(template):
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _date_input_alphabet():
    chars = set(string.digits)
    for template in DATE_FORMATS:
        chars.update("".join(literal for literal, _, _, _ in string.Formatter().parse(template)))
    for name in _MONTHS + _WEEKDAYS:
        for case in _CASES:
            chars.update(case(name))
    return "".join(sorted(chars))


# Every character a human date string can hold (digits, letters of the names in all cases, " ,-./").
DATE_INPUT_ALPHABET = _date_input_alphabet()
# The characters of an ISO date.
DATE_OUTPUT_ALPHABET = "0123456789-"
# The longest human string ("Wednesday, September 30, 2026"); every field's longest value, in every format.
DATE_INPUT_MAX_LENGTH = max(len(t.format(d="30", dd="30", m="12", mm="12", Y="2026", yy="26", Month="September",
                                         mon="Sep", Weekday="Wednesday", wkd="Wed")) for t in DATE_FORMATS)
# Every ISO string ("2026-11-29") has this length.
DATE_OUTPUT_LENGTH = 10


def _as_date(value, name):
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be a datetime.date or an ISO string such as '2026-11-29', got {value!r}")


def date_pairs(n, seed=0, start="1950-01-01", end="2049-12-31"):
    """n dates between start and end (both included, drawn uniformly), as (human_strings, iso_strings).

    human_strings[i] writes the date iso_strings[i] ("2026-11-29") in one of DATE_FORMATS, drawn uniformly,
    e.g. "29 nov 2026", "Sunday, November 29, 2026", "11/29/26", "29.11.2026", "2026 NOV 29"; formats with month
    or weekday names come as written in DATE_FORMATS, in lower case or in upper case. The formats with a
    two-digit year are used only when start and end are less than 100 years apart (as 1950..2049 are), so that
    each two-digit year names a single year. The same arguments give the same lists, on any machine and in any
    locale (random.Random(seed); the English names are written out in this module).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    start, end = _as_date(start, "start"), _as_date(end, "end")
    if start > end:
        raise ValueError(f"start ({start}) is after end ({end})")
    formats = DATE_FORMATS
    if end.year - start.year >= 100:
        formats = tuple(t for t in formats if "yy" not in _field_names(t))
    span = (end - start).days
    rng = random.Random(seed)
    human, iso = [], []
    for _ in range(n):
        date = start + datetime.timedelta(days=rng.randrange(span + 1))
        template = rng.choice(formats)
        case = _CASES[rng.randrange(len(_CASES))]
        human.append(case(template.format(**_fields(date))))
        iso.append(date.isoformat())
    return human, iso



# --------------------------------------------------------------------------------------- stdlib sources
# Well-known modules of the standard library, sorted by path, present as plain .py files from Python 3.9 on.
# Their text changes between Python versions, so the slice is fixed for one Python version (about 1.2 million
# characters on 3.11).
STDLIB_TEXT_FILES = (
    "argparse.py", "ast.py", "collections/__init__.py", "configparser.py", "dataclasses.py", "difflib.py",
    "functools.py", "inspect.py", "logging/__init__.py", "pickle.py", "pydoc.py", "shutil.py", "subprocess.py",
    "tarfile.py", "textwrap.py", "threading.py", "typing.py",
)


def load_stdlib_text(n_chars=1_000_000, offset=0):
    """Characters offset .. offset + n_chars of the concatenated STDLIB_TEXT_FILES, as one str.

    The files are read from this interpreter's standard library (sysconfig.get_paths()["stdlib"]) as UTF-8 with
    newlines made "\\n", and joined in the order of STDLIB_TEXT_FILES, each followed by one blank line. n_chars=None
    gives everything from offset. Raises ValueError if the files hold fewer than offset + n_chars characters,
    and FileNotFoundError if one is missing (a Python installed without its .py sources).
    """
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative int, got {offset!r}")
    if n_chars is not None and (isinstance(n_chars, bool) or not isinstance(n_chars, int) or n_chars < 0):
        raise ValueError(f"n_chars must be a non-negative int or None, got {n_chars!r}")
    text = _stdlib_text()
    stop = len(text) if n_chars is None else offset + n_chars
    if stop > len(text) or offset > len(text):
        raise ValueError(f"the standard library files hold {len(text)} characters; "
                         f"asked for {offset}..{stop}")
    return text[offset:stop]


@functools.lru_cache(maxsize=1)
def _stdlib_text():
    root = sysconfig.get_paths()["stdlib"]
    parts = []
    for name in STDLIB_TEXT_FILES:
        path = os.path.join(root, *name.split("/"))
        try:
            with open(path, encoding="utf-8", newline=None) as f:
                parts.append(f.read().rstrip("\n") + "\n\n")
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: not found; this Python has no .py source for {name}") from None
    return "".join(parts)
