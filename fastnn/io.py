"""Model files: a NumPy .npz archive (a zip) of plain arrays plus JSON metadata, read with allow_pickle=False.

Entries: "meta", the UTF-8 bytes of a JSON object {"format": "fastnn", "version": 1, "dtype", "loss", "sizes",
"layers": [layer configs], "n_params"}; and "params", the flat parameter buffer (all weights, then all biases)
in the network's dtype. The file is the same for both backends and round-trips bit for bit.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastnn"
VERSION = 1


def save(net, path):
    """Write `net` to exactly `path` (no suffix added), atomically: a crash mid-save keeps any old file."""
    path = os.fspath(path)
    meta = {"format": FORMAT, "version": VERSION, "dtype": net.dtype.name, "loss": net.loss,
            "sizes": list(net.sizes), "layers": [layer.config() for layer in net.layers],
            "n_params": net.n_params}
    meta_bytes = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=meta_bytes, params=net._params)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _bad(path, why):
    return ValueError(f"{path!s} is not a valid fastnn model file: {why}")


def _read_meta(path, archive):
    try:
        raw = archive["meta"]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _bad(path, f"cannot read its metadata ({exc})") from None
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _bad(path, "the metadata entry is not a byte string")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"the metadata is not JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, "the metadata does not say format 'fastnn'")
    if meta.get("version") != VERSION:
        raise _bad(path, f"format version {meta.get('version')!r}, this fastnn reads version {VERSION}")
    return meta


def _network_args(path, meta):
    """Network constructor arguments from validated metadata."""
    sizes, layers = meta.get("sizes"), meta.get("layers")
    if not (isinstance(sizes, list) and all(type(s) is int and s >= 1 for s in sizes) and len(sizes) >= 2):
        raise _bad(path, f"bad 'sizes' {sizes!r}")
    if not (isinstance(layers, list) and len(layers) == len(sizes) - 1):
        raise _bad(path, "'layers' does not match 'sizes'")
    activations = []
    for i, layer in enumerate(layers):
        expected = {"type": "dense", "d_in": sizes[i], "d_out": sizes[i + 1]}
        if not isinstance(layer, dict) or any(layer.get(k) != v for k, v in expected.items()):
            raise _bad(path, f"layer {i} is {layer!r}, expected a dense layer {sizes[i]} -> {sizes[i + 1]}")
        activations.append(layer.get("activation"))
    return dict(sizes=sizes, activations=activations, loss=meta.get("loss"), dtype=meta.get("dtype"))


def load(path, backend=None):
    """Read a network written by Network.save. Never unpickles; a truncated, corrupted or foreign file raises
    ValueError saying what is wrong."""
    from .network import Network

    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _bad(path, f"cannot open it as an archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _bad(path, "it is a single .npy array, not an archive")
    with archive:
        if sorted(archive.files) != ["meta", "params"]:
            raise _bad(path, f"entries {sorted(archive.files)}, expected ['meta', 'params']")
        meta = _read_meta(path, archive)
        args = _network_args(path, meta)
        if args["dtype"] not in ("float32", "float64"):
            raise _bad(path, f"dtype {args['dtype']!r}")
        n_params = sum(a * b + b for a, b in zip(args["sizes"][:-1], args["sizes"][1:]))
        if meta.get("n_params") != n_params:
            raise _bad(path, f"n_params {meta.get('n_params')!r} does not match sizes (expected {n_params})")
        try:
            params = archive["params"]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
            raise _bad(path, f"cannot read its parameters ({exc})") from None
    if params.dtype != np.dtype(args["dtype"]) or params.shape != (n_params,):
        raise _bad(path, f"parameters are {params.dtype} {params.shape}, expected {args['dtype']} ({n_params},)")
    if not np.isfinite(params).all():
        raise _bad(path, "parameters contain NaN or infinity")
    try:
        net = Network(backend=backend, **args)
    except (TypeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None
    net._params[...] = params
    return net
