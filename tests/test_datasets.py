"""The MNIST and CIFAR-10 loaders (fastnn.datasets.images), on tiny synthetic files made here, plus one test on
the real MNIST when it is on this machine (see .ci/fetch_mnist).

The loaders always check the files against the tables in images.py (shapes, MD5s, records per file); the
synthetic files are described by tables patched in with monkeypatch. No test touches the network: urlopen is
replaced, either by one that fails or by one that serves bytes made here."""
import gzip
import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from fastnn.datasets import images

N_TRAIN, N_TEST = 6, 4  # synthetic MNIST sizes
CIFAR_RECORDS = 3  # synthetic CIFAR-10 records per batch file


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No $FASTNN_DATA, a fresh empty home (so ~/.cache/fastnn is ours), and a urlopen that always fails."""
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def no_network(request, timeout=None):
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


def serve(monkeypatch, files):
    """Replaces urlopen with one that serves files {url: bytes}; other URLs fail. Returns the list of URLs asked."""
    asked = []

    def fake_urlopen(request, timeout=None):
        url = request.full_url
        asked.append(url)
        assert timeout is not None and timeout <= 60, "downloads must have a short timeout"
        if url not in files:
            raise urllib.error.URLError(f"not served: {url}")
        return io.BytesIO(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return asked


# ------------------------------------------------------------------------------------------------- MNIST helpers
def idx_bytes(array, type_byte=0x08):
    header = bytes([0, 0, type_byte, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def mnist_arrays(seed=0, train_labels=None):
    rng = np.random.default_rng(seed)
    return {
        "train-images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels": (np.asarray(train_labels, np.uint8) if train_labels is not None
                         else rng.integers(0, 10, N_TRAIN, dtype=np.uint8)),
        "t10k-images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


@pytest.fixture
def write_mnist(monkeypatch):
    """write_mnist(folder, sep="-", gz=False, ...) writes the four synthetic MNIST files into folder and points
    the loader's table of expected shapes and MD5s at them. Returns {stem: array} and the file paths."""

    def write(folder, sep="-", gz=False, arrays=None):
        arrays = arrays if arrays is not None else mnist_arrays()
        os.makedirs(folder, exist_ok=True)
        table, paths = [], {}
        for stem, array in arrays.items():
            data = idx_bytes(array)
            name = f"{stem}{sep}idx{array.ndim}-ubyte" + (".gz" if gz else "")
            paths[stem] = os.path.join(folder, name)
            with (gzip.open if gz else open)(paths[stem], "wb") as f:
                f.write(data)
            table.append(images._IdxFile(stem, array.shape, md5(data)))
        monkeypatch.setattr(images, "_MNIST_FILES", tuple(table))
        return arrays, paths

    return write


def check_mnist(result, arrays):
    X_train, y_train, X_test, y_test = result
    assert X_train.shape == (N_TRAIN, 1, 28, 28) and X_test.shape == (N_TEST, 1, 28, 28)
    assert X_train.dtype == X_test.dtype == np.uint8
    assert y_train.shape == (N_TRAIN,) and y_test.shape == (N_TEST,)
    assert y_train.dtype == y_test.dtype == np.int64
    np.testing.assert_array_equal(X_train[:, 0], arrays["train-images"])
    np.testing.assert_array_equal(X_test[:, 0], arrays["t10k-images"])
    np.testing.assert_array_equal(y_train, arrays["train-labels"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels"])
    assert X_train.flags.writeable and X_test.flags.writeable


# ------------------------------------------------------------------------------------------------- MNIST parsing
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("sep", ["-", "."], ids=["dash", "dot"])
def test_mnist_reads_each_spelling(offline, write_mnist, sep, gz):
    arrays, _ = write_mnist(offline / "data", sep=sep, gz=gz)
    check_mnist(images.load_mnist(offline / "data", download=False), arrays)


def test_mnist_found_in_fastnn_data_mnist_subfolder(offline, write_mnist, monkeypatch):
    arrays, _ = write_mnist(offline / "env" / "mnist")
    monkeypatch.setenv("FASTNN_DATA", str(offline / "env"))
    check_mnist(images.load_mnist(download=False), arrays)


def test_mnist_found_in_home_cache(offline, write_mnist):
    arrays, _ = write_mnist(offline / "home" / ".cache" / "fastnn")
    check_mnist(images.load_mnist(download=False), arrays)


def test_mnist_skips_incomplete_folder(offline, write_mnist, monkeypatch):
    # path holds three of the four files: the complete set under $FASTNN_DATA is used instead
    arrays, paths = write_mnist(offline / "first", gz=True)
    os.remove(paths["t10k-labels"])
    write_mnist(offline / "env", arrays=arrays)
    monkeypatch.setenv("FASTNN_DATA", str(offline / "env"))
    check_mnist(images.load_mnist(offline / "first", download=False), arrays)


def test_mnist_path_comes_first(offline, write_mnist, monkeypatch):
    # $FASTNN_DATA holds a damaged set, which must not be read when path has a good one
    arrays, paths = write_mnist(offline / "env")
    with open(paths["train-images"], "r+b") as f:
        f.truncate(100)
    monkeypatch.setenv("FASTNN_DATA", str(offline / "env"))
    write_mnist(offline / "first", arrays=arrays)
    check_mnist(images.load_mnist(offline / "first", download=False), arrays)


def damage(path, edit):
    """Rewrites the file at path (gzipped or not) as edit(its uncompressed bytes)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    with opener(path, "wb") as f:
        f.write(edit(data))


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("stem, edit, message", [
    ("train-images", lambda b: b[:-1], "truncated"),
    ("train-images", lambda b: b[:-28 * 28], "truncated"),
    ("t10k-labels", lambda b: b + b"\0", "trailing bytes"),
    ("t10k-labels", lambda b: b + bytes(1 << 20), "far more than the 12 bytes expected"),  # read capped
    ("train-labels", lambda b: b[:3], "too short for an IDX header"),
    ("train-images", lambda b: b[:10], "shorter than its 16-byte IDX header"),
    ("t10k-images", lambda b: b"PK\x03\x04" + b[4:], "not an IDX file"),
    ("t10k-images", lambda b: b[:2] + b"\x0d" + b[3:], "element type 0x0d"),
    ("train-labels", lambda b: b[:3] + b"\x03" + b[4:], "3 dimensions, expected 1"),
    ("train-labels", lambda b: b[:-1] + bytes([(b[-1] + 1) % 10]), "MD5"),  # same size, one label changed
], ids=["cut-1", "cut-image", "extra", "huge", "tiny", "cut-header", "zip", "float", "ndim", "md5"])
def test_mnist_bad_file_raises_naming_it(offline, write_mnist, gz, stem, edit, message):
    _, paths = write_mnist(offline / "data", gz=gz)
    damage(paths[stem], edit)
    with pytest.raises(ValueError, match=message) as info:
        images.load_mnist(offline / "data", download=False)
    assert paths[stem] in str(info.value)


def test_mnist_wrong_count_is_refused(offline, write_mnist):
    # a well-formed IDX file with one image fewer than the table says: a subset is not MNIST
    arrays, paths = write_mnist(offline / "data")
    with open(paths["t10k-images"], "wb") as f:
        f.write(idx_bytes(arrays["t10k-images"][:-1]))
    with pytest.raises(ValueError, match=r"shape \(3, 28, 28\), expected \(4, 28, 28\)"):
        images.load_mnist(offline / "data", download=False)


def test_mnist_label_out_of_range(offline, write_mnist):
    arrays = mnist_arrays(train_labels=[1, 2, 12, 3, 4, 5])
    _, paths = write_mnist(offline / "data", arrays=arrays)
    with pytest.raises(ValueError, match="label 12") as info:
        images.load_mnist(offline / "data", download=False)
    assert paths["train-labels"] in str(info.value)


def test_mnist_gz_name_that_is_not_gzip(offline, write_mnist):
    _, paths = write_mnist(offline / "data", gz=True)
    with open(paths["train-labels"], "wb") as f:
        f.write(b"this is not gzip data")
    with pytest.raises(ValueError, match="not a valid gzip file") as info:
        images.load_mnist(offline / "data", download=False)
    assert paths["train-labels"] in str(info.value)


def test_mnist_truncated_gzip(offline, write_mnist):
    _, paths = write_mnist(offline / "data", gz=True)
    with open(paths["train-images"], "r+b") as f:
        f.truncate(os.path.getsize(paths["train-images"]) // 2)
    with pytest.raises(ValueError, match="not a valid gzip file"):
        images.load_mnist(offline / "data", download=False)


def test_mnist_gzip_without_gz_name_gets_a_hint(offline, write_mnist):
    _, paths = write_mnist(offline / "data")
    data = open(paths["t10k-labels"], "rb").read()
    with open(paths["t10k-labels"], "wb") as f:
        f.write(gzip.compress(data))
    with pytest.raises(ValueError, match="looks gzip-compressed"):
        images.load_mnist(offline / "data", download=False)


# ------------------------------------------------------------------------------------------ MNIST absent / download
def test_mnist_absent_without_download_says_where_to_put_it(offline):
    with pytest.raises(FileNotFoundError) as info:
        images.load_mnist(offline / "nowhere", download=False)
    message = str(info.value)
    for needed in (str(offline / "nowhere"), str(offline / "nowhere" / "mnist"),
                   str(offline / "home" / ".cache" / "fastnn"), "train-images-idx3-ubyte",
                   "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                   "FASTNN_DATA", "download=False"):
        assert needed in message
    assert not (offline / "nowhere").exists(), "download=False must not create folders"


def test_mnist_absent_message_names_missing_files(offline, write_mnist):
    _, paths = write_mnist(offline / "data")
    os.remove(paths["t10k-images"])
    with pytest.raises(FileNotFoundError, match="missing: t10k-images"):
        images.load_mnist(offline / "data", download=False)


def test_mnist_offline_download_fails_clearly(offline):
    with pytest.raises(FileNotFoundError, match="Downloading failed: .*no network") as info:
        images.load_mnist(offline / "data")
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert [p.name for p in (offline / "data").iterdir()] == [], "a failed download must leave nothing behind"


def test_mnist_download(offline, write_mnist, monkeypatch):
    # make the gz files as the mirrors have them; the first mirror lacks one of them, so the second is tried
    arrays, paths = write_mnist(offline / "source", gz=True)
    first, second = images._MNIST_MIRRORS
    served = {second + os.path.basename(p): open(p, "rb").read() for p in paths.values()}
    served.update({first + os.path.basename(p): open(p, "rb").read()
                   for stem, p in paths.items() if stem != "train-labels"})
    asked = serve(monkeypatch, served)

    target = offline / "new" / "folder"  # does not exist yet: made for the download
    check_mnist(images.load_mnist(target), arrays)
    assert sorted(p.name for p in target.iterdir()) == sorted(os.path.basename(p) for p in paths.values())
    assert first + "train-labels-idx1-ubyte.gz" in asked and second + "train-labels-idx1-ubyte.gz" in asked

    # the second load reads the downloaded files without the network
    serve(monkeypatch, {})
    check_mnist(images.load_mnist(target), arrays)


def test_mnist_download_completes_a_partial_set(offline, write_mnist, monkeypatch):
    arrays, paths = write_mnist(offline / "data", gz=True)
    missing = paths["t10k-images"]
    data = open(missing, "rb").read()
    os.remove(missing)
    asked = serve(monkeypatch, {images._MNIST_MIRRORS[0] + "t10k-images-idx3-ubyte.gz": data})
    check_mnist(images.load_mnist(offline / "data"), arrays)
    assert asked == [images._MNIST_MIRRORS[0] + "t10k-images-idx3-ubyte.gz"]


def test_mnist_download_with_bad_checksum_is_not_kept(offline, write_mnist, monkeypatch):
    _, paths = write_mnist(offline / "source", gz=True)
    bad = idx_bytes(mnist_arrays(seed=1)["train-images"])  # right shape, other pixels
    serve(monkeypatch, {m + "train-images-idx3-ubyte.gz": gzip.compress(bad) for m in images._MNIST_MIRRORS})
    with pytest.raises(FileNotFoundError, match="MD5"):
        images.load_mnist(offline / "data")
    assert not (offline / "data" / "train-images-idx3-ubyte.gz").exists()


# ------------------------------------------------------------------------------------------------ CIFAR-10 helpers
@pytest.fixture
def cifar(monkeypatch):
    """Synthetic CIFAR-10 batch files with CIFAR_RECORDS records each, and the loader's table set to match.
    Returns {file name: (images (n, 3, 32, 32), labels (n,), file bytes)}."""
    monkeypatch.setattr(images, "_CIFAR_RECORDS", CIFAR_RECORDS)
    rng = np.random.default_rng(0)
    batches = {}
    for name in images._CIFAR_TRAIN + (images._CIFAR_TEST,):
        x = rng.integers(0, 256, (CIFAR_RECORDS, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, CIFAR_RECORDS, dtype=np.uint8)
        # the binary format: per record, the label byte then R, G, B planes, each row by row
        data = np.concatenate([y[:, None], x.reshape(CIFAR_RECORDS, -1)], axis=1).tobytes()
        batches[name] = (x, y, data)
    return batches


def write_cifar_dir(folder, batches):
    os.makedirs(folder, exist_ok=True)
    for name, (_, _, data) in batches.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def add(tar, name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def cifar_tarball(batches, skip=(), extra=True):
    """The tarball's bytes; with extra, also members that must never be extracted."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if extra:
            add(tar, "cifar-10-batches-bin/test_batch.bin", kind=tarfile.SYMTYPE, linkname="/etc/passwd")
            add(tar, "../escaped.bin", b"outside")
            add(tar, "cifar-10-batches-bin/batches.meta.txt", b"airplane\n")
            add(tar, "cifar-10-batches-bin/evil", kind=tarfile.SYMTYPE, linkname="/etc")
        for name, (_, _, data) in batches.items():
            if name not in skip:
                add(tar, f"cifar-10-batches-bin/{name}", data)
    return buf.getvalue()


def check_cifar(result, batches):
    X_train, y_train, X_test, y_test = result
    n_train = 5 * CIFAR_RECORDS
    assert X_train.shape == (n_train, 3, 32, 32) and X_test.shape == (CIFAR_RECORDS, 3, 32, 32)
    assert X_train.dtype == X_test.dtype == np.uint8
    assert y_train.shape == (n_train,) and y_test.shape == (CIFAR_RECORDS,)
    assert y_train.dtype == y_test.dtype == np.int64
    train = [batches[n] for n in images._CIFAR_TRAIN]
    np.testing.assert_array_equal(X_train, np.concatenate([x for x, _, _ in train]))
    np.testing.assert_array_equal(y_train, np.concatenate([y for _, y, _ in train]))
    x, y, data = batches[images._CIFAR_TEST]
    np.testing.assert_array_equal(X_test, x)
    np.testing.assert_array_equal(y_test, y)
    # the layout, spelled out: record 1's red plane starts right after its label byte
    rec = images._CIFAR_RECORD_BYTES
    assert bytes(X_test[1, 0].ravel()) == data[rec + 1:rec + 1 + 1024]
    assert X_train.flags.writeable and X_test.flags.writeable


def test_cifar_classes():
    assert images.CIFAR10_CLASSES == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                      "ship", "truck")


# ------------------------------------------------------------------------------------------------ CIFAR-10 parsing
@pytest.mark.parametrize("sub", ["cifar-10-batches-bin", ""], ids=["subfolder", "flat"])
def test_cifar_reads_batch_files(offline, cifar, sub):
    write_cifar_dir(offline / "data" / sub, cifar)
    check_cifar(images.load_cifar10(offline / "data", download=False), cifar)


def test_cifar_found_through_fastnn_data(offline, cifar, monkeypatch):
    write_cifar_dir(offline / "env" / "cifar-10-batches-bin", cifar)
    monkeypatch.setenv("FASTNN_DATA", str(offline / "env"))
    check_cifar(images.load_cifar10(download=False), cifar)


def test_cifar_tarball_reads_only_regular_batch_members(offline, cifar, monkeypatch):
    data = cifar_tarball(cifar)
    monkeypatch.setattr(images, "_CIFAR_TAR_MD5", md5(data))
    folder = offline / "a" / "data"
    folder.mkdir(parents=True)
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    check_cifar(images.load_cifar10(folder, download=False), cifar)
    # extracted beside it: the six batch files, regular, and nothing else anywhere
    extracted = folder / "cifar-10-batches-bin"
    assert sorted(p.name for p in extracted.iterdir()) == sorted(cifar)
    assert all(p.is_file() and not p.is_symlink() for p in extracted.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]
    assert not (offline / "a" / "escaped.bin").exists()
    # and the next load uses the extracted files, even with the tarball gone
    (folder / "cifar-10-binary.tar.gz").unlink()
    check_cifar(images.load_cifar10(folder, download=False), cifar)


def test_cifar_tarball_without_a_regular_member(offline, cifar, monkeypatch):
    # test_batch.bin is there only as the symlink to /etc/passwd, which must not count
    data = cifar_tarball(cifar, skip=("test_batch.bin",))
    monkeypatch.setattr(images, "_CIFAR_TAR_MD5", md5(data))
    (offline / "cifar-10-binary.tar.gz").write_bytes(data)
    with pytest.raises(ValueError, match="no regular member cifar-10-batches-bin/test_batch.bin"):
        images.load_cifar10(offline, download=False)


def test_cifar_tarball_checksum(offline, cifar):
    (offline / "cifar-10-binary.tar.gz").write_bytes(cifar_tarball(cifar))  # MD5 table not patched
    with pytest.raises(ValueError, match="MD5") as info:
        images.load_cifar10(offline, download=False)
    assert "cifar-10-binary.tar.gz" in str(info.value)


def test_cifar_tarball_not_gzip(offline, cifar, monkeypatch):
    data = b"<html>a proxy error page</html>"
    monkeypatch.setattr(images, "_CIFAR_TAR_MD5", md5(data))
    (offline / "cifar-10-binary.tar.gz").write_bytes(data)
    with pytest.raises(ValueError, match="not a readable .tar.gz"):
        images.load_cifar10(offline, download=False)


@pytest.mark.parametrize("edit, message", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b[:-images._CIFAR_RECORD_BYTES], "truncated"),
    (lambda b: b + b"\0", r"bytes, expected 9219 \("),
    (lambda b: b[:images._CIFAR_RECORD_BYTES] + b"\x0a" + b[images._CIFAR_RECORD_BYTES + 1:],
     "record 1 has label 10"),
], ids=["cut-1", "cut-record", "extra", "label"])
def test_cifar_bad_batch_raises_naming_it(offline, cifar, edit, message):
    folder = offline / "cifar-10-batches-bin"
    write_cifar_dir(folder, cifar)
    path = folder / "data_batch_3.bin"
    path.write_bytes(edit(path.read_bytes()))
    with pytest.raises(ValueError, match=message) as info:
        images.load_cifar10(offline, download=False)
    assert str(path) in str(info.value)


def test_cifar_incomplete_folder_is_not_used(offline, cifar):
    write_cifar_dir(offline / "cifar-10-batches-bin", cifar)
    (offline / "cifar-10-batches-bin" / "data_batch_5.bin").unlink()
    with pytest.raises(FileNotFoundError):
        images.load_cifar10(offline, download=False)


# ---------------------------------------------------------------------------------------- CIFAR-10 absent / download
def test_cifar_absent_without_download_says_where_to_put_it(offline):
    with pytest.raises(FileNotFoundError) as info:
        images.load_cifar10(offline / "nowhere", download=False)
    message = str(info.value)
    for needed in (str(offline / "nowhere"), str(offline / "home" / ".cache" / "fastnn" / "cifar-10-batches-bin"),
                   "data_batch_1.bin", "test_batch.bin", "cifar-10-binary.tar.gz", "FASTNN_DATA",
                   "download=False"):
        assert needed in message


def test_cifar_offline_download_fails_clearly(offline):
    with pytest.raises(FileNotFoundError, match="Downloading failed: .*no network"):
        images.load_cifar10(offline / "data")
    assert list((offline / "data").iterdir()) == []


def test_cifar_download(offline, cifar, monkeypatch):
    data = cifar_tarball(cifar)
    monkeypatch.setattr(images, "_CIFAR_TAR_MD5", md5(data))
    serve(monkeypatch, {images._CIFAR_URL: data})
    check_cifar(images.load_cifar10(), cifar)  # nothing anywhere: into ~/.cache/fastnn
    cache = offline / "home" / ".cache" / "fastnn"
    assert (cache / "cifar-10-binary.tar.gz").read_bytes() == data
    assert sorted(p.name for p in (cache / "cifar-10-batches-bin").iterdir()) == sorted(cifar)


def test_cifar_download_with_bad_checksum_is_not_kept(offline, cifar, monkeypatch):
    serve(monkeypatch, {images._CIFAR_URL: cifar_tarball(cifar)})  # MD5 table not patched
    with pytest.raises(FileNotFoundError, match="MD5"):
        images.load_cifar10(offline / "data")
    assert list((offline / "data").iterdir()) == []


# ---------------------------------------------------------------------------------------------------- real MNIST
def test_real_mnist():
    """Runs only where the real files are (e.g. after .ci/fetch_mnist); never downloads."""
    try:
        X_train, y_train, X_test, y_test = images.load_mnist(download=False)
    except FileNotFoundError:
        pytest.skip("real MNIST not found (run .ci/fetch_mnist, or set FASTNN_DATA)")
    assert X_train.shape == (60000, 1, 28, 28) and X_test.shape == (10000, 1, 28, 28)
    assert X_train.dtype == X_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert X_train.max() == 255 and X_train.min() == 0
