"""Model files: save is atomic and writes exactly the given path; load survives thousands of corrupted files.

The fuzz takes a valid saved model (float32 and float64) and mutates it: bit flips, truncations, appended
garbage, archive entries swapped/renamed/missing/extra, parameters of the wrong dtype/shape/values, edited JSON
metadata, pickled object arrays, foreign files. For every case `fastnn.load` must either return a Network whose
parameters are all finite, or raise ValueError saying the file is not a valid fastnn model file (path problems:
FileNotFoundError / IsADirectoryError / NotADirectoryError / PermissionError). Anything else is a failure.
Run with `pytest -s` to see the counts.
"""
import collections
import copy
import gzip
import io
import json
import os
import pathlib
import pickle
import stat
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import fastnn

MESSAGE = "is not a valid fastnn model file"
PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
SIZES = [5, 7, 3]
SEED = 20240611


def _net(dtype="float32", seed=0, backend=None):
    return fastnn.Network(SIZES, activations="tanh", loss="cross_entropy", dtype=dtype, seed=seed,
                          backend=backend)


def _params(net):
    return [a.copy() for a in net.weights + net.biases]


def _assert_same(a, b):
    for x, y in zip(_params(a), _params(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------------------------- save
@pytest.mark.parametrize("kind", ["str", "pathlib"])
@pytest.mark.parametrize("name", ["model", "model.fastnn", "model.npz", "model.npy", ".hidden"])
def test_save_writes_exactly_the_path(tmp_path, kind, name):
    net = _net()
    path = tmp_path / name
    net.save(str(path) if kind == "str" else path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    _assert_same(fastnn.load(str(path) if kind == "str" else path), net)


def test_save_overwrites_and_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _net(seed=1).save("m")
    new = _net(seed=2)
    new.save(pathlib.Path("m"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    _assert_same(fastnn.load("m"), new)


def test_save_file_mode_follows_umask_and_keeps_an_existing_mode(tmp_path):
    old = os.umask(0o022)
    try:
        _net().save(tmp_path / "new")
        assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o644  # not mkstemp's 0o600
        os.umask(0o077)
        _net().save(tmp_path / "private")
        assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o600
        os.chmod(tmp_path / "new", 0o640)
        _net(seed=3).save(tmp_path / "new")  # overwriting keeps the file's mode, as writing in place would
        assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o640
    finally:
        os.umask(old)


def _crash_in_savez(*args, **kwargs):
    f = args[0]
    f.write(b"PK\x03\x04 half a zip")  # something reaches the disk first
    raise RuntimeError("simulated crash in savez")


def _crash_in_replace(*args, **kwargs):
    raise OSError("simulated crash in os.replace")


def _crash_in_fsync(*args, **kwargs):
    raise OSError("simulated crash in os.fsync")


def _interrupt_in_savez(*args, **kwargs):
    args[0].write(b"partial")
    raise KeyboardInterrupt


@pytest.mark.parametrize("target, crash, exc", [
    ((np, "savez"), _crash_in_savez, RuntimeError),
    ((os, "replace"), _crash_in_replace, OSError),
    ((os, "fsync"), _crash_in_fsync, OSError),
    ((np, "savez"), _interrupt_in_savez, KeyboardInterrupt),
])
@pytest.mark.parametrize("existing", [True, False])
def test_save_is_atomic(tmp_path, monkeypatch, target, crash, exc, existing):
    path = tmp_path / "model.fastnn"
    old = _net(seed=1)
    if existing:
        old.save(path)
        old_bytes = path.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(*target, crash)
        with pytest.raises(exc):
            _net(seed=2).save(path)
    # no temporary file is left behind, and the old file (if any) is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == (["model.fastnn"] if existing else [])
    if existing:
        assert path.read_bytes() == old_bytes
        _assert_same(fastnn.load(path), old)


def test_save_to_bad_paths_leaves_nothing(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError):
        _net().save(tmp_path / "adir")
    with pytest.raises(FileNotFoundError):
        _net().save(tmp_path / "missing" / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
    assert list((tmp_path / "adir").iterdir()) == []


# ----------------------------------------------------------------------------------------- file builders
def _npy(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape, descr, fortran=False, version=(1, 0)):
    """The bytes of a .npy header with any shape/descr, followed by no data."""
    buf = io.BytesIO()
    d = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, d)
    else:
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


def _zip(entries, compression=zipfile.ZIP_STORED):
    """A zip of (name, bytes) entries, in order (duplicates allowed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name"
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _meta_bytes(meta):
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def _model_file(meta, params, meta_name="meta.npy", params_name="params.npy", raw_meta=None):
    meta_arr = _meta_bytes(meta) if raw_meta is None else np.frombuffer(raw_meta, dtype=np.uint8)
    return _zip([(meta_name, _npy(meta_arr)), (params_name, _npy(params))])


_UNPICKLED = []


def _record_unpickle(tag):
    _UNPICKLED.append(tag)
    return tag


class _Bomb:
    """Unpickling this calls _record_unpickle: the fuzz asserts it never happens."""

    def __reduce__(self):
        return (_record_unpickle, ("unpickled!",))


# ------------------------------------------------------------------------------------------------ fuzz
def _v1_meta(net):
    """The metadata a version-1 file (fastnn before layers of several kinds) had for a dense network."""
    sizes = [net.n_inputs] + [layer.units for layer in net.layers]
    layers = [{"type": "dense", "d_in": a, "d_out": b, "activation": layer.activation}
              for a, b, layer in zip(sizes[:-1], sizes[1:], net.layers)]
    return {"format": "fastnn", "version": 1, "dtype": net.dtype.name, "loss": net.loss, "sizes": sizes,
            "layers": layers, "n_params": net.n_params}


def _conv_net(dtype="float32", seed=0, backend=None):
    return fastnn.Network([fastnn.Conv2D(2, 3, padding=1, activation="tanh"), fastnn.MaxPool2D(2), fastnn.Flatten(),
                           fastnn.Dropout(0.25), fastnn.Dense(3)], input_shape=(1, 4, 5), loss="cross_entropy",
                          dtype=dtype, seed=seed, backend=backend)


class _Base:
    """A valid model file to mutate: version 1 (written by hand, as older fastnn did) of a dense network, or
    version 2 (written by save) of a small convolutional one."""

    def __init__(self, tmp_path, dtype, version=2):
        self.dtype, self.version = dtype, version
        net = _net(dtype) if version == 1 else _conv_net(dtype)
        X = np.random.default_rng(0).normal(size=(20, *net.input_shape))
        net.fit(X, np.arange(20) % 3, epochs=2)
        path = tmp_path / f"base-{dtype}-v{version}.fastnn"
        if version == 1:
            path.write_bytes(_model_file(_v1_meta(net), net._params))
        else:
            net.save(path)
        self.path = path
        self.bytes = path.read_bytes()
        with zipfile.ZipFile(path) as zf:
            self.meta = json.loads(np.load(io.BytesIO(zf.read("meta.npy"))).tobytes())
            self.params = np.load(io.BytesIO(zf.read("params.npy")))
        self.n = self.params.size


_DELETE = object()
WEIRD = [None, True, False, 0, 1, -1, 2, 10**9, -10**9, 10**30, 1.5, float("nan"), float("inf"), "", "x",
         "1", "float32", "float64", "relu", "mse", [], [1], [[]], {}, {"a": 1}, [None], ["relu"], [5, 7, 3]]


def _meta_cases(base, rng):
    """(label, meta dict or raw bytes) edits of the JSON metadata."""
    m = base.meta
    n = base.n
    cases = []

    def edit(label, **changes):
        d = copy.deepcopy(m)
        for k, v in changes.items():
            if v is _DELETE:
                d.pop(k, None)
            else:
                d[k] = v
        cases.append((label, d))

    for v in ["fastnm", "FASTNN", None, 1, ["fastnn"], ""]:
        edit(f"format={v!r}", format=v)
    other = 2 if base.version == 1 else 1
    for v in [0, other, 3, str(base.version), float(base.version), True, None, -1, 10**100, [base.version]]:
        edit(f"version={v!r}", version=v)
    for v in ["float16", "int32", "float", "f4", None, 32, ["float32"], "object", "complex128",
              "float64" if base.dtype == "float32" else "float32"]:
        edit(f"dtype={v!r}", dtype=v)
    for v in ["hinge", None, 3, ["mse"], "", "MSE", "mse", "binary_cross_entropy"]:
        edit(f"loss={v!r}", loss=v)
    layers = m["layers"]
    for v in ([] if base.version == 2 else [[5, 7], [5, 7, 3, 2], [5, 8, 3], [10**9, 10**9, 3], [10**9, 7, 3], [-5, 7, 3], [0, 7, 3],
              [5.0, 7, 3], ["5", 7, 3], [True, 7, 3], [], [5], None, "5,7,3", 573, [[5], 7, 3],
              [5, 7, 3.5], [2**63, 7, 3], [1] * 5000]):
        edit(f"sizes={str(v)[:30]}", sizes=v)
        # the same with layers and n_params made consistent (only the parameters can then disagree)
        if isinstance(v, list) and len(v) >= 2 and all(type(s) is int for s in v):
            lays = [{"type": "dense", "d_in": a, "d_out": b, "activation": "tanh"} for a, b in zip(v[:-1], v[1:])]
            lays[-1]["activation"] = "softmax"
            edit(f"consistent sizes={str(v)[:30]}", sizes=v, layers=lays,
                 n_params=sum(a * b + b for a, b in zip(v[:-1], v[1:])))
    for v in [n - 1, n + 1, -n, 0, 10**9, 10**30, str(n), float(n), None, True, [n]]:
        edit(f"n_params={v!r}", n_params=v)
    for key in list(m):
        edit(f"missing {key}", **{key: _DELETE})
    edit("extra key", comment="hello", extra=[1, 2, 3])
    if base.version == 2:
        for v in [[1, 4], [4, 5], [1, 4, 5, 1], [], [0, 4, 5], [1, 2, 2], [1, 4.0, 5], [10**9, 4, 5], "1,4,5", None,
                  [1, 10**9, 10**9], [2, 4, 5], [20], [True, 4, 5]]:
            edit(f"input_shape={str(v)[:30]}", input_shape=v)
        for i, layer in enumerate(layers):
            for field in list(layer) + ["zzz"]:
                for v in [None, 0, -1, 1, 2, 10**9, 10**30, 1.5, "same", "x", [], [1], [2, 2], [0, 1], [3, 3, 3],
                          "relu", "softmax", "conv2d", "dense", {}, True]:
                    d = copy.deepcopy(m)
                    d["layers"][i][field] = v
                    cases.append((f"layers[{i}].{field}={v!r}", d))
                d = copy.deepcopy(m)
                d["layers"][i].pop(field, None)
                cases.append((f"layers[{i}] without {field}", d))
    # layers
    for i in range(len(layers) if base.version == 1 else 0):
        for field, vals in [("type", ["conv", None, 1, "Dense"]), ("d_in", [0, -1, 10**9, "5", 5.0, None]),
                            ("d_out", [0, -1, 10**9, "7", None]),
                            ("activation", ["gelu", None, 1, ["relu"], "", "softmax", "linear", "relu"])]:
            for v in vals:
                d = copy.deepcopy(m)
                d["layers"][i][field] = v
                cases.append((f"layers[{i}].{field}={v!r}", d))
        d = copy.deepcopy(m)
        del d["layers"][i]["activation"]
        cases.append((f"layers[{i}] without activation", d))
    for i in range(len(layers)):
        for v in [None, 1, "dense", [], [1, 2]]:
            d = copy.deepcopy(m)
            d["layers"][i] = v
            cases.append((f"layers[{i}]={v!r}", d))
    for v in [None, [], layers[:1], layers + layers[-1:], "dense", {}]:
        edit(f"layers={str(v)[:30]}", layers=v)
    for v in [None, 1, "meta", [m], [], True]:
        cases.append((f"meta is {type(v).__name__}", v))
    # random: replace 1-3 fields (top level or inside a layer) with weird values
    for k in range(300):
        d = copy.deepcopy(m)
        for _ in range(rng.integers(1, 4)):
            value = copy.deepcopy(WEIRD[rng.integers(len(WEIRD))])
            if rng.random() < 0.3:
                layer = d["layers"][rng.integers(len(d["layers"]))] if isinstance(d.get("layers"), list) and \
                    d["layers"] and isinstance(d["layers"][0], dict) else d
                if isinstance(layer, dict):
                    keys = list(layer) + ["zzz"]
                    layer[keys[rng.integers(len(keys))]] = value
            else:
                keys = list(d) + ["zzz"]
                d[keys[rng.integers(len(keys))]] = value
        cases.append((f"random meta edit {k}", d))
    # raw bytes that are not (valid) JSON / UTF-8
    text = json.dumps(m).encode()
    raws = [b"", b"{", b"not json", b"\xff\xfe\x00", text[:-1], text + b"x", b"\xef\xbb\xbf" + text,
            text.replace(b'"', b"'"), b"[" * 100000 + b"]" * 100000, b"[" * 100000, b'{"a":' * 50000,
            b"NaN", b"1e999", b"9" * 5000, text.decode().encode("utf-16"), b"\x00" * 64,
            json.dumps(dict(m, sizes=[5, 7, 3], n_params=int("9" * 4000))).encode(),
            text.replace(b"tanh", b"t\xffnh")]
    raws += [bytes(rng.integers(0, 256, rng.integers(1, 400), dtype=np.uint8)) for _ in range(40)]
    raws += [bytes(b ^ (1 << int(rng.integers(8))) if i == j else b for i, b in enumerate(text))
             for j in rng.integers(0, len(text), 120)]
    for i, r in enumerate(raws):
        cases.append((f"raw meta bytes {i}", r))
    return cases


def _cases(base, rng, tmp_path):
    """Yield (category, label, file bytes or a callable making the path to load, expected-to-load or None)."""
    data = base.bytes
    n, dt = base.n, np.dtype(base.dtype)
    meta_arr = _meta_bytes(base.meta)

    # 1. bit flips: 1 to 4 bits at random positions
    for i in range(1200):
        b = bytearray(data)
        for pos in rng.integers(0, len(b), rng.integers(1, 5)):
            b[pos] ^= 1 << int(rng.integers(8))
        yield "bit flip", f"bit flip {i}", bytes(b)
    # ... and every single-byte overwrite of the zip headers (local headers, central directory, end record)
    for pos in list(range(0, 80)) + list(range(len(data) - 200, len(data))):
        b = bytearray(data)
        b[pos] = int(rng.integers(256)) if b[pos] != 0xFF else 0
        yield "header byte", f"byte {pos}", bytes(b)

    # 2. truncation at every length, and appended garbage
    for length in range(len(data)):
        yield "truncation", f"truncated to {length}", data[:length]
    for i in range(150):
        garbage = bytes(rng.integers(0, 256, rng.integers(1, 3000), dtype=np.uint8))
        yield "appended", f"appended {len(garbage)} random bytes", data + garbage
    for label, extra in [("itself", data), ("an EOCD", b"PK\x05\x06" + b"\x00" * 18), ("zeros", b"\x00" * 70000),
                         ("PK", b"PK\x01\x02" * 100)]:
        yield "appended", f"appended {label}", data + extra
    yield "appended", "prepended garbage", b"garbage!" * 10 + data

    # 3. archive entries
    meta_npy, params_npy = _npy(meta_arr), _npy(base.params)
    entry_sets = {
        "missing meta": [("params.npy", params_npy)],
        "missing params": [("meta.npy", meta_npy)],
        "empty archive": [],
        "swapped": [("meta.npy", params_npy), ("params.npy", meta_npy)],
        "renamed meta": [("metadata.npy", meta_npy), ("params.npy", params_npy)],
        "renamed params": [("meta.npy", meta_npy), ("weights.npy", params_npy)],
        "no .npy suffix": [("meta", meta_npy), ("params", params_npy)],
        "no .npy suffix, raw json": [("meta", json.dumps(base.meta).encode()), ("params", base.params.tobytes())],
        "extra entry": [("meta.npy", meta_npy), ("params.npy", params_npy), ("extra.npy", params_npy)],
        "extra non-npy entry": [("meta.npy", meta_npy), ("params.npy", params_npy), ("README", b"hi")],
        "duplicate meta": [("meta.npy", meta_npy), ("meta.npy", meta_npy), ("params.npy", params_npy)],
        "duplicate params": [("meta.npy", meta_npy), ("params.npy", params_npy), ("params.npy", params_npy)],
        "in a folder": [("a/meta.npy", meta_npy), ("a/params.npy", params_npy)],
        "reversed order": [("params.npy", params_npy), ("meta.npy", meta_npy)],
        "meta not npy": [("meta.npy", json.dumps(base.meta).encode()), ("params.npy", params_npy)],
        "params not npy": [("meta.npy", meta_npy), ("params.npy", base.params.tobytes())],
        "empty members": [("meta.npy", b""), ("params.npy", b"")],
        "header only": [("meta.npy", meta_npy[:128]), ("params.npy", params_npy[:128])],
        "trailing bytes in params": [("meta.npy", meta_npy), ("params.npy", params_npy + b"\x00" * 8)],
        "trailing bytes in meta": [("meta.npy", meta_npy + b"zz"), ("params.npy", params_npy)],
        "params short by one value": [("meta.npy", meta_npy), ("params.npy", params_npy[:-dt.itemsize])],
    }
    for label, entries in entry_sets.items():
        yield "entries", label, _zip(entries)
    yield "entries", "deflated (np.savez_compressed)", _zip([("meta.npy", meta_npy), ("params.npy", params_npy)],
                                                            zipfile.ZIP_DEFLATED)
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        yield "entries", f"compression {method}", _zip([("meta.npy", meta_npy), ("params.npy", params_npy)], method)
    for i in range(60):  # random subsets / permutations / renames of the two entries
        pool = [("meta.npy", meta_npy), ("params.npy", params_npy), ("meta", meta_npy), ("x.npy", params_npy),
                ("params.npy", meta_npy), ("meta.npy", params_npy)]
        pick = [pool[j] for j in rng.integers(0, len(pool), rng.integers(0, 4))]
        yield "entries", f"random entries {i}: {[p[0] for p in pick]}", _zip(pick)

    # 4. parameters of the wrong dtype / shape / values
    other = np.float64 if dt == np.float32 else np.float32
    bad_params = {
        "params float16": base.params.astype(np.float16),
        "params other float": base.params.astype(other),
        "params int32": base.params.astype(np.int32),
        "params int64": base.params.astype(np.int64),
        "params uint8": base.params.astype(np.uint8),
        "params bool": base.params.astype(bool),
        "params complex": base.params.astype(np.complex128),
        "params longdouble": base.params.astype(np.longdouble),
        "params structured": np.zeros(n, dtype=[("a", dt)]),
        "params subarray dtype": np.zeros(n // 2 + 1, dtype=(dt, 2)),
        "params bytes": np.array([b"x" * 8] * n),
        "params str": np.array(["x"] * n),
        "params datetime": np.zeros(n, dtype="M8[s]"),
        "params byte-swapped": base.params.astype(dt.newbyteorder("S")),  # same values: may load
        "params n-1": base.params[:-1],
        "params n+1": np.append(base.params, dt.type(0)),
        "params 2-D (1, n)": base.params.reshape(1, -1),
        "params 2-D (n, 1) fortran": np.asfortranarray(base.params.reshape(-1, 1)),
        "params 0-D": base.params[0],
        "params empty": base.params[:0],
        "params 3-D": np.zeros((n, 1, 1), dtype=dt),
    }
    for label, p in bad_params.items():
        yield "params", label, _model_file(base.meta, p)
    for i in range(60):
        p = base.params.copy()
        p[rng.integers(0, n, rng.integers(1, 4))] = [np.nan, np.inf, -np.inf][i % 3]
        yield "params", f"params with {['nan', 'inf', '-inf'][i % 3]} {i}", _model_file(base.meta, p)
    for i in range(40):  # random finite values: a different but valid model, must load
        p = rng.normal(scale=10.0 ** rng.integers(-30, 30), size=n).astype(dt)
        yield "params", f"random finite params {i}", _model_file(base.meta, p)
    # .npy headers that claim absurd shapes or odd descrs, with (almost) no data behind them
    for shape in [(10**9,), (10**12,), (2**62,), (n, 10**9), (-1,), (n,), ()]:
        for descr in [dt.str, "|O", "<f4", ">f8", "|u1", "<U10", "|V8"]:
            yield "npy header", f"params header shape={shape} descr={descr}", _zip(
                [("meta.npy", meta_npy), ("params.npy", _npy_header(shape, descr))])
        yield "npy header", f"meta header shape={shape}", _zip(
            [("meta.npy", _npy_header(shape, "|u1")), ("params.npy", params_npy)])
    yield "npy header", "header version 2.0", _zip(
        [("meta.npy", meta_npy), ("params.npy", _npy_header((n,), dt.str, version=(2, 0)) + base.params.tobytes())])
    for hdr in [b"\x93NUMPY\x03\x00" + b"\x00" * 8, b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 200,
                b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}   \n", b"\x93NUMPY\x09\x09",
                b"\x93NUMPY\x01\x00\x40\x00"
                + b"{'descr': '<f4', 'fortran_order': False, 'shape': (((((((((1,),),),),),),),)} ".ljust(63) + b"\n",
                b"\x93NUMPY\x01\x00\x20\x00" + b"(" * 31 + b"\n",
                b"\x93NUMPY\x02\x00\xff\xff\xff\x7f" + b" " * 100]:
        yield "npy header", f"bad header {hdr[:20]!r}", _zip([("meta.npy", meta_npy), ("params.npy", hdr)])

    # 5. metadata edits (JSON content, types, sizes, non-JSON bytes) and the meta array's own dtype/shape
    for label, m in _meta_cases(base, rng):
        if isinstance(m, bytes):
            yield "meta", label, _model_file(None, base.params, raw_meta=m)
        else:
            yield "meta", label, _model_file(m, base.params)
    for label, arr in [("meta int8", meta_arr.astype(np.int8)), ("meta uint16", meta_arr.astype(np.uint16)),
                       ("meta float", meta_arr.astype(float)), ("meta 2-D", meta_arr.reshape(1, -1)),
                       ("meta 0-D", meta_arr[0]), ("meta str", np.array(json.dumps(base.meta))),
                       ("meta bytes", np.array(json.dumps(base.meta).encode())),
                       ("meta object", np.array([base.meta], dtype=object))]:
        yield "meta", label, _zip([("meta.npy", _npy(arr)), ("params.npy", params_npy)])

    # 6. pickled object arrays inside the npz (must never be unpickled)
    bomb = np.array([_Bomb(), 1.0], dtype=object)
    yield "pickle", "pickled params", _zip([("meta.npy", meta_npy), ("params.npy", _npy(bomb))])
    yield "pickle", "pickled meta", _zip([("meta.npy", _npy(bomb)), ("params.npy", params_npy)])
    yield "pickle", "pickled both", _zip([("meta.npy", _npy(bomb)), ("params.npy", _npy(bomb))])
    yield "pickle", "pickle as a bare file", pickle.dumps(_Bomb())
    yield "pickle", "object .npy file", _npy(bomb)

    # 7. foreign files and path problems
    yield "foreign", "empty file", b""
    yield "foreign", "one byte", b"P"
    yield "foreign", "text", b"this is not a model\n"
    yield "foreign", "zip magic only", b"PK\x03\x04"
    yield "foreign", "empty zip", _zip([])
    yield "foreign", ".npy of the params", params_npy
    yield "foreign", ".npy of the meta", meta_npy
    yield "foreign", "gzip of the model", gzip.compress(data)
    yield "foreign", "npz of other arrays", _zip([("a.npy", _npy(np.zeros(3))), ("b.npy", _npy(np.ones(3)))])
    yield "foreign", "other meta/params", _zip([("meta.npy", _npy(np.zeros(3))), ("params.npy", _npy(np.zeros(3)))])

    def directory():
        p = tmp_path / "a_directory"
        p.mkdir(exist_ok=True)
        return p

    def missing():
        return tmp_path / "does_not_exist"

    def under_a_file():
        p = tmp_path / "plain_file"
        p.write_bytes(data)
        return p / "model"

    def unreadable():
        p = tmp_path / "unreadable"
        p.write_bytes(data)
        p.chmod(0)
        return p  # root can still read it: then it loads

    for label, make in [("directory", directory), ("missing", missing), ("under a file", under_a_file),
                        ("unreadable", unreadable)]:
        yield "path", label, make


def _classify(path, path_case):
    """'loaded', 'rejected', 'path error', or ('unexpected', why)."""
    try:
        with np.errstate(all="raise"):
            net = fastnn.load(path)
    except ValueError as exc:
        if MESSAGE not in str(exc):
            return "unexpected", f"ValueError without '{MESSAGE}': {exc}"
        return "rejected", None
    except PATH_ERRORS as exc:
        if path_case:
            return "path error", None
        return "unexpected", f"{type(exc).__name__} for a readable file: {exc}"
    except Exception as exc:  # noqa: BLE001 - any other type is exactly what this test looks for
        return "unexpected", f"{type(exc).__name__}: {str(exc)[:300]}"
    if not isinstance(net, fastnn.Network):
        return "unexpected", f"load returned {type(net).__name__}"
    if not all(np.isfinite(a).all() for a in net.weights + net.biases):
        return "unexpected", "loaded a network with non-finite parameters"
    if net.dtype.name not in ("float32", "float64") or net._params.size != sum(a.size for a in _params(net)):
        return "unexpected", "loaded an inconsistent network"
    return "loaded", None


# cases whose outcome is known, whatever else happens: a loader that refuses these is too strict, one that
# accepts those is too lax
MUST_LOAD = ("deflated", "reversed order", "params byte-swapped", "random finite params", "header version 2.0",
             "extra key")
MUST_REJECT = ("truncated to", "params with", "pickle", "params float16", "params other float", "params int",
               "params n-1", "params n+1", "params 2-D", "params 0-D", "params empty", "format=", "version=",
               "missing", "duplicate", "renamed", "swapped", "extra entry", "empty", "sizes=", "meta is",
               "trailing bytes", "params short", "bad header", "dtype=")


def test_load_fuzz(tmp_path):
    rng = np.random.default_rng(SEED)
    _UNPICKLED.clear()
    counts = collections.Counter()
    per_category = collections.defaultdict(collections.Counter)
    unexpected = []
    path = tmp_path / "case.fastnn"
    for dtype, version in (("float32", 1), ("float64", 1), ("float32", 2), ("float64", 2)):
        base = _Base(tmp_path, dtype, version)
        assert _classify(base.path, False) == ("loaded", None)
        for category, label, case in _cases(base, rng, tmp_path):
            if callable(case):
                target, path_case = case(), True
            else:
                path.write_bytes(case)
                target, path_case = path, False
            outcome = _classify(target, path_case)
            if isinstance(outcome, tuple):
                outcome, why = outcome
            if outcome == "loaded" and category != "path" and label.startswith(MUST_REJECT):
                outcome, why = "unexpected", "loaded a file that must be rejected"
            elif outcome == "rejected" and label.startswith(MUST_LOAD):
                outcome, why = "unexpected", "rejected a valid file"
            if outcome == "unexpected":
                unexpected.append(f"[{dtype} v{version}] {category}: {label}: {why}")
            counts[outcome] += 1
            per_category[category][outcome] += 1
    total = sum(counts.values())
    print(f"\nmodel-file fuzz: {total} cases, {counts['loaded']} loaded, {counts['rejected']} rejected "
          f"(ValueError), {counts['path error']} path errors, {counts['unexpected']} unexpected")
    for category, c in per_category.items():
        print(f"  {category:12s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for line in unexpected[:200]:
        print("  UNEXPECTED", line)
    assert not _UNPICKLED, "fastnn.load unpickled an object"
    assert total >= 3000
    assert counts["rejected"] > 0 and counts["loaded"] > 0
    assert not unexpected, f"{len(unexpected)} unexpected outcomes, e.g. {unexpected[:5]}"


# ----------------------------------------------------------------------------- absurd sizes, no allocation
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_absurd_sizes_are_rejected_before_allocating(tmp_path, dtype):
    base = _Base(tmp_path, dtype, version=1)
    dt = np.dtype(dtype)
    meta_npy = _npy(_meta_bytes(base.meta))
    huge = [10**6, 10**6, 3]
    lays = [{"type": "dense", "d_in": a, "d_out": b, "activation": "tanh"} for a, b in zip(huge[:-1], huge[1:])]
    lays[-1]["activation"] = "softmax"
    n_huge = sum(a * b + b for a, b in zip(huge[:-1], huge[1:]))
    huge_meta = dict(base.meta, sizes=huge, layers=lays, n_params=n_huge)
    files = {
        # metadata and parameter header agree on 10**12 parameters; the data is not there
        "consistent huge": _zip([("meta.npy", _npy(_meta_bytes(huge_meta))),
                                 ("params.npy", _npy_header((n_huge,), dt.str) + b"\x00" * 64)]),
        # version 2: a million inputs to a Dense of a million units, consistent, without the data
        "consistent huge v2": _zip([("meta.npy", _npy(_meta_bytes(dict(
            base.meta, version=2, input_shape=[10**6], layers=[{"type": "dense", "units": 10**6}],
            n_params=10**12 + 10**6)))), ("params.npy", _npy_header((10**12 + 10**6,), dt.str) + b"\x00" * 64)]),
        "params header 10**9": _zip([("meta.npy", meta_npy), ("params.npy", _npy_header((10**9,), dt.str))]),
        "meta header 10**10": _zip([("meta.npy", _npy_header((10**10,), "|u1")),
                                    ("params.npy", _npy(base.params))]),
        "meta header 2**40, params too": _zip([("meta.npy", _npy_header((2**40,), "|u1")),
                                               ("params.npy", _npy_header((2**40,), dt.str))]),
    }
    # the zip's own size fields (central directory and local headers) claim 2 GiB members
    blown = bytearray(base.bytes)
    for sig, offsets in ((b"PK\x01\x02", (20, 24)), (b"PK\x03\x04", (18, 22))):
        start = 0
        while (start := blown.find(sig, start)) >= 0:
            for off in offsets:
                blown[start + off:start + off + 4] = struct.pack("<I", 0x7FFFFFFF)
            start += 4
    files["zip sizes 2 GiB"] = bytes(blown)
    path = tmp_path / "huge.fastnn"
    for label, content in files.items():
        path.write_bytes(content)
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=MESSAGE):
                fastnn.load(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, f"{label}: load allocated {peak / 2**20:.0f} MiB before refusing the file"


def test_load_never_unpickles(tmp_path):
    _UNPICKLED.clear()
    base = _Base(tmp_path, "float32")
    bomb = np.array([_Bomb()], dtype=object)
    path = tmp_path / "bomb.npz"
    np.savez(path, meta=_meta_bytes(base.meta), params=bomb)
    with pytest.raises(ValueError, match=MESSAGE):
        fastnn.load(path)
    np.savez(path, meta=bomb, params=base.params)
    with pytest.raises(ValueError, match=MESSAGE):
        fastnn.load(path)
    assert _UNPICKLED == []
    # the bomb does work when pickle is allowed: the check above is meaningful
    with np.load(path, allow_pickle=True) as archive:
        archive["meta"]
    assert _UNPICKLED == ["unpickled!"]


def test_rejection_messages_name_the_problem(tmp_path):
    base = _Base(tmp_path, "float64")
    path = tmp_path / "m.fastnn"
    cases = [
        (b"", "empty"),
        (_npy(base.params), ".npy"),
        (_model_file(dict(base.meta, version=3), base.params), "version"),
        (_model_file(dict(base.meta, format="x"), base.params), "format"),
        (_model_file(base.meta, base.params.astype(np.float32)), "parameters"),
        (_model_file(base.meta, np.full(base.n, np.nan)), "NaN"),
        (_model_file(dict(base.meta, loss="hinge"), base.params), "hinge"),
    ]
    for content, word in cases:
        path.write_bytes(content)
        with pytest.raises(ValueError, match=MESSAGE) as info:
            fastnn.load(path)
        assert word in str(info.value), str(info.value)
