"""MNIST and CIFAR-10 from their original binary files, with NumPy and the standard library only.

Where the files are looked for, in this order (the first folder that holds a complete set wins):

1. the ``path`` argument, if given;
2. the folder named by the environment variable ``$FASTNN_DATA``, if set;
3. ``~/.cache/fastnn``.

MNIST is also looked for in a ``mnist/`` subfolder of each, CIFAR-10 in a ``cifar-10-batches-bin/`` subfolder
of each (the layout of its tarball), and a ``cifar-10-binary.tar.gz`` in one of the folders is read as well.
When nothing is found and ``download=True`` (the default), the files are downloaded into the first of those
folders that is writable; without a network the loaders raise FileNotFoundError saying where they looked and
what to put there.

Nothing here runs code from a data file: MNIST is parsed from its IDX format and CIFAR-10 from its *binary*
version (never the pickled "python version"), and from a tarball only the six batch files are read, as regular
members with the exact expected names and sizes.

Checks. Every file is checked for its format and its exact size before use, and a file that fails raises
ValueError naming the file and what is wrong with it. The expected contents (shapes, MD5 checksums, record
counts) live in the tables ``_MNIST_FILES``, ``_CIFAR_RECORDS`` and ``_CIFAR_TAR_MD5`` below and are *always*
enforced, so a subset or a look-alike data set is refused rather than returned under the wrong name. The tests
swap these tables (pytest's monkeypatch) for ones that describe tiny synthetic files; that keeps a single code
path for real and synthetic data instead of a switch that would turn checking off.
"""
import collections
import gzip
import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.request
import zlib

import numpy as np

__all__ = ["load_mnist", "load_cifar10", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Seconds a download may sit without receiving data; short, so that an offline machine fails fast.
_TIMEOUT = 10
# What a failed download raises: URLError, timeouts and resets are OSErrors; a cut-off body is an HTTPException;
# ValueError is ours (too large, or a bad file once fetched).
_DOWNLOAD_ERRORS = (OSError, ValueError, http.client.HTTPException)

# ------------------------------------------------------------------------------------------------- MNIST tables
# stem: the name up to the "-idx3-ubyte" / ".idx3-ubyte" part; shape: of the array in the file;
# md5: of the uncompressed file (the same checksums whichever spelling or compression the file has).
_IdxFile = collections.namedtuple("_IdxFile", "stem shape md5")
_MNIST_FILES = (
    _IdxFile("train-images", (60000, 28, 28), "6bbc9ace898e44ae57da46a324031adb"),
    _IdxFile("train-labels", (60000,), "a25bea736e30d166cdddb491f175f624"),
    _IdxFile("t10k-images", (10000, 28, 28), "2646ac647ad5339dbf082846283269ea"),
    _IdxFile("t10k-labels", (10000,), "27ae3e4e09519cfbb04c329615203637"),
)
# Mirrors of the gzipped files, tried in order (yann.lecun.com itself no longer serves them to scripts).
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# The largest gzip download accepted for one file, so a wrong URL serving endless data cannot fill the disk.
_MNIST_MAX_DOWNLOAD = 64 << 20

# ---------------------------------------------------------------------------------------------- CIFAR-10 tables
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = "test_batch.bin"
_CIFAR_RECORDS = 10000  # per file
_CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32  # label byte, then 1024 red, 1024 green, 1024 blue, each row by row
_CIFAR_TAR = "cifar-10-binary.tar.gz"
_CIFAR_TAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
_CIFAR_MAX_DOWNLOAD = 256 << 20


# ------------------------------------------------------------------------------------------------------ folders
def _base_folders(path):
    """The folders searched, in order, without duplicates: path, $FASTNN_DATA, ~/.cache/fastnn."""
    folders = []
    for folder in (path, os.environ.get("FASTNN_DATA"), os.path.join("~", ".cache", "fastnn")):
        if folder:
            folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
            if folder not in folders:
                folders.append(folder)
    return folders


def _writable_folder(folders):
    """The first of folders that exists or can be made, and is writable; None if there is none."""
    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK | os.X_OK):
            return folder
    return None


def _md5(data=b""):
    # a checksum against damage, not a security check; the keyword keeps FIPS-mode Pythons working
    return hashlib.md5(data, usedforsecurity=False)


def _md5_of_file(path):
    h = _md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_capped(path, expected):
    """The bytes of path, gunzipped if its name ends in .gz, for a file expected to hold `expected` bytes.

    Reading stops a little past `expected`, so a gzip bomb or a wrong, huge file is not read into memory whole;
    the slack lets the format checks that follow say precisely what is wrong with a slightly-off file.
    """
    limit = expected + (1 << 16)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # BadGzipFile: not gzip at all; EOFError: cut off; zlib.error: corrupt stream
        raise ValueError(f"{path}: not a valid gzip file ({e})") from e
    if len(data) > limit:
        raise ValueError(f"{path}: far more than the {expected} bytes expected"
                         f"{' once decompressed' if path.endswith('.gz') else ''}: not this data set's file")
    return data


def _download(url, dest, max_bytes):
    """Fetches url into the file dest (written under a temporary name, renamed when complete)."""
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
    fd, part = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".fastnn-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            total = 0
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"{url}: larger than the {max_bytes} bytes expected")
                out.write(chunk)
        os.replace(part, dest)
    finally:
        if os.path.exists(part):
            os.remove(part)


# -------------------------------------------------------------------------------------------------------- MNIST
def _mnist_names(entry):
    """The file names accepted for one MNIST file, in order of preference (uncompressed first: faster to read)."""
    kind = f"idx{len(entry.shape)}-ubyte"
    plain = (f"{entry.stem}-{kind}", f"{entry.stem}.{kind}")
    return plain + tuple(name + ".gz" for name in plain)


def _idx_size(entry):
    """The exact byte count of the IDX file entry describes."""
    return 4 + 4 * len(entry.shape) + int(np.prod(entry.shape, dtype=np.int64))


def _parse_idx(data, name, entry):
    """The uint8 array stored in the IDX bytes data (from file name), checked against entry's shape and MD5.

    IDX layout: two zero bytes, a type byte (0x08: unsigned byte), a byte with the number of dimensions n,
    n big-endian uint32 sizes, then the values, row-major, with nothing after them.
    """
    ndim = len(entry.shape)
    if len(data) < 4:
        raise ValueError(f"{name}: {len(data)} bytes, too short for an IDX header (a truncated download?)")
    if data[0] != 0 or data[1] != 0:
        hint = "; it looks gzip-compressed, so give it a .gz name" if data[:2] == b"\x1f\x8b" else ""
        raise ValueError(f"{name}: not an IDX file (magic number 0x{data[:4].hex()}, "
                         f"expected 0x0000080{ndim}){hint}")
    if data[2] != 0x08:
        raise ValueError(f"{name}: IDX element type 0x{data[2]:02x}, expected 0x08 (unsigned byte)")
    if data[3] != ndim:
        raise ValueError(f"{name}: IDX file with {data[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: {len(data)} bytes, shorter than its {header}-byte IDX header (truncated)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    n_values = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != n_values:
        what = "truncated" if len(data) - header < n_values else "trailing bytes"
        raise ValueError(f"{name}: the header says shape {shape}, i.e. {header + n_values} bytes, "
                         f"but the file has {len(data)} ({what})")
    if shape != tuple(entry.shape):
        raise ValueError(f"{name}: shape {shape}, expected {tuple(entry.shape)} for MNIST")
    digest = _md5(data).hexdigest()
    if digest != entry.md5:
        raise ValueError(f"{name}: MD5 {digest} (of the uncompressed bytes), expected {entry.md5}: "
                         "the file is damaged or not the original MNIST; delete it and load again")
    # a copy, so the caller gets an ordinary writable array rather than a read-only view of the bytes
    return np.frombuffer(data, np.uint8, count=n_values, offset=header).reshape(shape).copy()


def _find_mnist(folders):
    """(folder, {stem: file path}) for the first folder holding all four files; (None, partial finds) if none."""
    partial = {}
    for base in folders:
        for folder in (base, os.path.join(base, "mnist")):
            found = {}
            for entry in _MNIST_FILES:
                for name in _mnist_names(entry):
                    if os.path.isfile(os.path.join(folder, name)):
                        found[entry.stem] = os.path.join(folder, name)
                        break
            if len(found) == len(_MNIST_FILES):
                return folder, found
            if found:
                partial[folder] = found
    return None, partial


def _download_mnist(folder, have):
    """Downloads into folder the gzipped files that have (stem -> path) lacks; returns the error of the last
    failed attempt, or None when all are now there. A file is kept only once its MD5 has been checked."""
    error = None
    for entry in _MNIST_FILES:
        if entry.stem in have:
            continue
        name = _mnist_names(entry)[0] + ".gz"  # the mirrors' spelling: train-images-idx3-ubyte.gz
        dest = os.path.join(folder, name)
        for mirror in _MNIST_MIRRORS:
            try:
                _download(mirror + name, dest, _MNIST_MAX_DOWNLOAD)
                _parse_idx(_read_capped(dest, _idx_size(entry)), dest, entry)
            except _DOWNLOAD_ERRORS as e:
                error = e
                if os.path.exists(dest):
                    os.remove(dest)
                continue
            have[entry.stem] = dest
            break
        else:
            return error
    return None


def load_mnist(path=None, download=True):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28 pixels, 10 classes.

    Returns ``(X_train, y_train, X_test, y_test)``:

    - ``X_train``: uint8 array of shape (60000, 1, 28, 28), ``X_test``: uint8 of shape (10000, 1, 28, 28).
      The layout is NCHW (sample, channel, row, column) with a single channel; pixel values are 0..255 with
      0 the background. For a dense network flatten and scale them: ``X.reshape(len(X), -1) / 255.0``.
    - ``y_train``: int64 of shape (60000,), ``y_test``: int64 of shape (10000,), the digits 0..9.

    The four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte`` are read from the first of ``path``, ``$FASTNN_DATA``, ``~/.cache/fastnn``
    (or a ``mnist/`` subfolder of one) that holds all four. The names may also be spelled with a dot
    (``train-images.idx3-ubyte``) and the files may be gzipped (``train-images-idx3-ubyte.gz``).
    If none holds them and ``download`` is true, the missing ones are downloaded into the first writable of
    those folders; otherwise, or if that fails, FileNotFoundError says where to put them.

    Every file is checked (IDX header, exact size, shape, MD5 of the uncompressed bytes); a damaged, truncated
    or foreign file raises ValueError naming it.
    """
    folders = _base_folders(path)
    folder, files = _find_mnist(folders)
    error = None
    if folder is None and download:
        target = _writable_folder(folders)
        if target is not None:
            have = dict(files.get(target, {}))  # complete a partial set there rather than start over
            error = _download_mnist(target, have)
            if error is None:
                folder, files = target, have
    if folder is None:
        raise FileNotFoundError(_mnist_missing_message(folders, files, download, error)) from error

    arrays = {}
    for entry in _MNIST_FILES:
        file = files[entry.stem]
        arrays[entry.stem] = _parse_idx(_read_capped(file, _idx_size(entry)), file, entry)
    for split in ("train", "t10k"):
        labels = arrays[f"{split}-labels"]
        if labels.size and labels.max() > 9:
            raise ValueError(f"{files[split + '-labels']}: label {labels.max()} found, MNIST labels are 0..9")

    def images(split):
        x = arrays[f"{split}-images"]
        return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])

    return (images("train"), arrays["train-labels"].astype(np.int64),
            images("t10k"), arrays["t10k-labels"].astype(np.int64))


def _mnist_missing_message(folders, partial, download, error):
    wanted = ", ".join(_mnist_names(e)[0] for e in _MNIST_FILES)
    looked = "\n".join(f"  {base}  and  {os.path.join(base, 'mnist')}" for base in folders)
    lines = [
        "MNIST not found. Looked in (first complete set wins):",
        looked,
        f"for the four files {wanted}",
        "(also accepted: '.' instead of the '-' before idx, e.g. train-images.idx3-ubyte, and gzipped '.gz').",
    ]
    for folder, found in partial.items():
        missing = [e.stem for e in _MNIST_FILES if e.stem not in found]
        lines.append(f"{folder} has only some of them; missing: {', '.join(missing)}")
    if not download:
        lines.append("Downloading was off (download=False).")
    elif error is not None:
        lines.append(f"Downloading failed: {error}")
    else:
        lines.append("Downloading was not possible: none of those folders is writable.")
    lines.append("To fix: download the four .gz files (e.g. from " + _MNIST_MIRRORS[0] + ") or copy the files "
                 "into ~/.cache/fastnn, or into a folder of your choice and set FASTNN_DATA to it "
                 "(or pass path=).")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- CIFAR-10
def _parse_cifar(data, name):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one CIFAR-10 binary batch file's bytes."""
    size = _CIFAR_RECORDS * _CIFAR_RECORD_BYTES
    if len(data) != size:
        raise ValueError(f"{name}: {len(data)} bytes, expected {size} ({_CIFAR_RECORDS} records of "
                         f"{_CIFAR_RECORD_BYTES} bytes){' (truncated)' if len(data) < size else ''}")
    records = np.frombuffer(data, np.uint8).reshape(_CIFAR_RECORDS, _CIFAR_RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{name}: record {bad} has label {labels[bad]}, CIFAR-10 labels are 0..9")
    # the 3072 pixel bytes are already channel-major, each channel row by row: exactly NCHW. A view of data;
    # the caller copies.
    images = records[:, 1:].reshape(_CIFAR_RECORDS, 3, 32, 32)
    return images, labels


def _cifar_from_tar(tar_path):
    """{file name: bytes} of the six batch files in the tarball, read without extracting anything else."""
    size = _CIFAR_RECORDS * _CIFAR_RECORD_BYTES
    wanted = {f"{_CIFAR_DIR}/{name}": name for name in _CIFAR_TRAIN + (_CIFAR_TEST,)}
    digest = _md5_of_file(tar_path)
    if digest != _CIFAR_TAR_MD5:
        raise ValueError(f"{tar_path}: MD5 {digest}, expected {_CIFAR_TAR_MD5}: the file is damaged or not "
                         "the original CIFAR-10 binary tarball; delete it and load again")
    out = {}
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            for member in tar:
                member_name = member.name[2:] if member.name.startswith("./") else member.name
                # only regular files with the exact expected names: no links, devices, other paths
                if member_name not in wanted or not member.isreg():
                    continue
                if member.size != size:
                    raise ValueError(f"{tar_path}: member {member.name} has {member.size} bytes, expected {size}")
                out[wanted[member_name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ValueError(f"{tar_path}: not a readable .tar.gz ({e})") from e
    missing = sorted(set(wanted.values()) - set(out))
    if missing:
        raise ValueError(f"{tar_path}: no regular member {_CIFAR_DIR}/{missing[0]} "
                         f"(missing: {', '.join(missing)})")
    return out


def _save_extracted(folder, files):
    """Writes the batch files next to the tarball, so later loads skip decompressing it; best effort only."""
    dest = os.path.join(folder, _CIFAR_DIR)
    try:
        os.makedirs(dest, exist_ok=True)
        for name, data in files.items():
            fd, part = tempfile.mkstemp(dir=dest, prefix=".fastnn-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(part, os.path.join(dest, name))
            finally:
                if os.path.exists(part):
                    os.remove(part)
    except OSError:
        pass  # a read-only folder: the data were read from the tarball anyway


def _find_cifar(folders):
    """('dir', folder) for a folder with all six batch files, ('tar', path) for a tarball, or (None, None)."""
    names = _CIFAR_TRAIN + (_CIFAR_TEST,)
    for base in folders:
        for folder in (os.path.join(base, _CIFAR_DIR), base):
            if all(os.path.isfile(os.path.join(folder, n)) for n in names):
                return "dir", folder
        tar_path = os.path.join(base, _CIFAR_TAR)
        if os.path.isfile(tar_path):
            return "tar", tar_path
    return None, None


def load_cifar10(path=None, download=True):
    """CIFAR-10: 50,000 training and 10,000 test colour images of 32x32 pixels in 10 classes.

    Returns ``(X_train, y_train, X_test, y_test)``:

    - ``X_train``: uint8 array of shape (50000, 3, 32, 32), ``X_test``: uint8 of shape (10000, 3, 32, 32),
      NCHW with the channels in R, G, B order, values 0..255.
    - ``y_train``: int64 of shape (50000,), ``y_test``: int64 of shape (10000,), 0..9, naming
      ``CIFAR10_CLASSES[y]``.

    Reads the binary version: ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin`` (10,000
    records of 1 label byte + 3,072 pixel bytes each) from ``cifar-10-batches-bin/`` in, or directly in, the
    first of ``path``, ``$FASTNN_DATA``, ``~/.cache/fastnn`` that has them, or from ``cifar-10-binary.tar.gz``
    in one of those folders (then also extracted beside it, if the folder is writable, for faster loads later).
    If none has them and ``download`` is true, the tarball (about 163 MB) is downloaded into the first writable
    of those folders; otherwise, or if that fails, FileNotFoundError says where to put it.

    Each file's size and labels are checked, and a tarball's MD5; a bad file raises ValueError naming it.
    (The pickled "python version" of CIFAR-10 is never read: unpickling can run code.)
    """
    folders = _base_folders(path)
    kind, where = _find_cifar(folders)
    error = None
    if kind is None and download:
        target = _writable_folder(folders)
        if target is not None:
            tar_path = os.path.join(target, _CIFAR_TAR)
            try:
                _download(_CIFAR_URL, tar_path, _CIFAR_MAX_DOWNLOAD)
                _cifar_from_tar(tar_path)  # checks the MD5 before the download is accepted
                kind, where = "tar", tar_path
            except _DOWNLOAD_ERRORS as e:
                error = e
                if os.path.exists(tar_path):
                    os.remove(tar_path)
    if kind is None:
        raise FileNotFoundError(_cifar_missing_message(folders, download, error)) from error

    size = _CIFAR_RECORDS * _CIFAR_RECORD_BYTES
    if kind == "dir":
        files = {n: os.path.join(where, n) for n in _CIFAR_TRAIN + (_CIFAR_TEST,)}
        data = {n: _read_capped(p, size) for n, p in files.items()}
    else:
        data = _cifar_from_tar(where)
        files = {n: f"{where}:{_CIFAR_DIR}/{n}" for n in data}
        _save_extracted(os.path.dirname(where), data)

    train = [_parse_cifar(data[n], files[n]) for n in _CIFAR_TRAIN]
    X_test, y_test = _parse_cifar(data[_CIFAR_TEST], files[_CIFAR_TEST])
    X_test = X_test.copy()  # own, writable memory instead of a read-only view of the file's bytes
    X_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return X_train, y_train, X_test, y_test


def _cifar_missing_message(folders, download, error):
    names = ", ".join(_CIFAR_TRAIN + (_CIFAR_TEST,))
    looked = "\n".join(f"  {os.path.join(base, _CIFAR_DIR)}  and  {base}" for base in folders)
    lines = [
        "CIFAR-10 (binary version) not found. Looked in:",
        looked,
        f"for the six files {names}, and in the folders themselves for {_CIFAR_TAR}.",
    ]
    if not download:
        lines.append("Downloading was off (download=False).")
    elif error is not None:
        lines.append(f"Downloading failed: {error}")
    else:
        lines.append("Downloading was not possible: none of those folders is writable.")
    lines.append(f"To fix: download {_CIFAR_URL} (the binary version, not the python one) and put it, or the "
                 f"{_CIFAR_DIR}/ folder it contains, into ~/.cache/fastnn, or into a folder of your choice and "
                 "set FASTNN_DATA to it (or pass path=).")
    return "\n".join(lines)
