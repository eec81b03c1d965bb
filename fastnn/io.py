"""Model files: a NumPy .npz archive (a zip) of plain arrays plus JSON metadata, read without pickle.

Entries: "meta.npy", the UTF-8 bytes of a JSON object as a uint8 array, and "params.npy", the flat parameter
buffer (all weights, then all biases) in the network's dtype. The file is the same for both backends and
round-trips bit for bit. The JSON object, version 2 (written since layers of several kinds exist):
{"format": "fastnn", "version": 2, "dtype", "loss", "input_shape": [per-sample shape], "layers": [each layer's
config(), e.g. {"type": "conv2d", "filters": 6, ...}], "n_params"}. io knows no layer kind: the layers rebuild
themselves from their configs (fastnn.layers.layer_from_config) and the network infers their shapes. Version 1
(dense networks only: "sizes" and layers {"type": "dense", "d_in", "d_out", "activation"}) still loads.

Loading treats the file as untrusted bytes. It does not go through np.load: it opens the zip itself, reads each
entry's .npy header first and checks its dtype and shape against what the metadata implies (and the metadata's
sizes against the bytes actually in the file) before it reads any data, so absurd sizes are refused before
anything big is allocated, and object arrays are refused without being unpickled. Whatever is wrong with the
file (truncation, bit flips, a foreign or hand-edited file) raises ValueError "<path> is not a valid fastnn model
file: <why>"; only path problems raise OSError (FileNotFoundError, IsADirectoryError, PermissionError, ...).
"""
import contextlib
import errno
import json
import os
import stat
import tempfile
import zipfile

import numpy as np

from . import _backend, _codes
from .layers import Dense, layer_from_config

FORMAT = "fastnn"
VERSION = 2
READABLE_VERSIONS = (1, 2, 3)
# Version 3: a QuantizedNetwork (Network.quantize): the version 2 metadata plus "quantized" (how) and
# "n_qweights"; "params.npy" holds the float32 biases of the quantized layers ("n_params" of them), and two more
# entries: "qweights.npy", their int8 weights (each layer's (k, n) GEMM matrix, row-major, one after the other),
# and "qscales.npy", their float32 per-output-channel scales (one per bias). Float networks are still written as
# version 2, so older fastnn versions keep reading them.
QUANTIZED_VERSION = 3
QUANTIZED_ENTRIES = ("qweights.npy", "qscales.npy")
_MAX_LAYERS = 100000
ENTRIES = ("meta.npy", "params.npy")
# Optional entries (a file without them still loads): "prune_mask.npy", a pruned network's keep flags (uint8, one
# per weight, 0 = pruned; see fastnn.pruning).
OPTIONAL_ENTRIES = ("prune_mask.npy",)
DTYPES = ("float32", "float64")

_MAX_META_BYTES = 1 << 24  # the metadata of a 10,000-layer network is ~1 MB
_MAX_NPY_HEADER = 10000  # numpy's own limit on a .npy header
_MAX_DEFLATE_RATIO = 1100  # deflate cannot expand more than ~1032:1
_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


# ------------------------------------------------------------------------------------------------- save
def save(net, path):
    """Write `net` to exactly `path` (no suffix added), atomically: a crash mid-save keeps any old file.

    The archive goes to a temporary file in the same directory, is flushed to disk, then renamed over `path`.
    The file gets the mode a plain open(path, "w") would give it: an existing file's mode, else 0o666 & ~umask."""
    path = os.fspath(path)
    if hasattr(net, "_file_meta"):  # a QuantizedNetwork: version 3 and its extra entries
        meta, arrays = {"format": FORMAT, **net._file_meta()}, net._file_arrays()
    else:
        meta = {"format": FORMAT, "version": VERSION, **net.get_config(), "n_params": net.n_params}
        arrays = {"params": net._params}
        if net._prune_keep is not None:
            arrays["prune_mask"] = net._prune_keep
    meta_bytes = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot save the network to {path!r}: it is a folder; give a file "
                                "name, e.g. os.path.join(folder, 'model.fastnn')", path)
    mode = _new_file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=directory)
    except OSError as exc:  # say it with the user's path, not the temporary file's
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            why = (f"the folder {os.path.dirname(path) or directory!r} does not exist (create it first, e.g. "
                   "os.makedirs(folder, exist_ok=True))")
        else:
            why = f"cannot create a file in the folder {directory!r} ({exc.strerror})"
        raise type(exc)(exc.errno, f"cannot save the network to {path!r}: {why}", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=meta_bytes, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0o600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _umask():
    try:
        with open("/proc/self/status") as f:  # Linux >= 4.7: read it without changing it
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting (briefly process-wide)
    os.umask(mask)
    return mask


def _new_file_mode(path):
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode) & 0o777  # never copy setuid/setgid/sticky bits
    except OSError:
        pass
    return 0o666 & ~_umask()


def _fsync_directory(directory):
    """Make the rename durable (POSIX); best effort, the file itself is complete either way."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------- load
class InvalidModelFile(ValueError):
    """The file is not a valid fastnn model file (a ValueError)."""


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...]"


def _bad(path, why):
    return InvalidModelFile(f"{path!s} is not a valid fastnn model file: {why}")


@contextlib.contextmanager
def _decoding(path, what):
    """Turn any failure while decoding the file's bytes into InvalidModelFile.

    The zip and .npy parsers raise a zoo of types on corrupt input (zipfile.BadZipFile, zlib.error, EOFError,
    struct.error, NotImplementedError for an unknown compression method or flag, RuntimeError for an
    'encrypted' entry, UnicodeDecodeError for a name, tokenize.TokenError or SyntaxError for a .npy header,
    RecursionError for deeply nested JSON, ...); all of them mean the same thing here. MemoryError is let
    through: every size is checked against the file before anything is allocated, so it would be a real one."""
    try:
        yield
    except (InvalidModelFile, MemoryError, *_PATH_ERRORS):
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise _bad(path, f"{what} ({type(exc).__name__}: {str(exc)[:200]})") from None


def _open_npy(path, zf, info):
    """Open an archive entry and read its .npy header: (stream, shape, fortran_order, dtype)."""
    fp = zf.open(info)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=_MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=_MAX_NPY_HEADER)
        else:
            raise _bad(path, f"entry {info.filename!r} is .npy format version {version}, expected 1.0 or 2.0")
    except BaseException:
        fp.close()
        raise
    return fp, shape, fortran, dtype


def _read_exactly(path, fp, info, nbytes):
    """The entry's remaining nbytes of data; the entry must end there (the zip's CRC is checked at its end)."""
    if nbytes > info.file_size:
        raise _bad(path, f"entry {info.filename!r} holds {info.file_size} bytes, too few for its "
                         f"{nbytes}-byte array (truncated?)")
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise _bad(path, f"entry {info.filename!r} ends after {len(data)} of {nbytes} data bytes (truncated?)")
    if fp.read(1):
        raise _bad(path, f"entry {info.filename!r} has bytes after its array")
    return data


def _check_entries(path, zf, file_size):
    infos = zf.infolist()
    names = sorted(info.filename for info in infos)
    present, quantized = set(names), set(QUANTIZED_ENTRIES)
    extra = present - set(ENTRIES) - set(OPTIONAL_ENTRIES)
    if (len(present) != len(names) or not set(ENTRIES) <= present or extra not in (set(), quantized)
            or (extra and present & set(OPTIONAL_ENTRIES))):
        raise _bad(path, f"entries {_short(names)}, expected {list(ENTRIES)} (and optionally "
                         f"{list(OPTIONAL_ENTRIES)}; or with {list(QUANTIZED_ENTRIES)} for a quantized network)")
    entries = {}
    for info in infos:
        if info.flag_bits & 0x41:
            raise _bad(path, f"entry {info.filename!r} is marked encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(path, f"entry {info.filename!r} uses compression method {info.compress_type}, "
                             "expected stored or deflated")
        if info.header_offset < 0 or info.compress_size < 0 or \
                info.header_offset + info.compress_size > file_size:
            raise _bad(path, f"entry {info.filename!r} claims {info.compress_size} bytes at offset "
                             f"{info.header_offset}, past the end of the {file_size}-byte file (truncated?)")
        stored = info.compress_type == zipfile.ZIP_STORED
        if (stored and info.file_size != info.compress_size) or \
                info.file_size > max(info.compress_size, 1) * _MAX_DEFLATE_RATIO:
            raise _bad(path, f"entry {info.filename!r} claims {info.file_size} bytes from {info.compress_size}")
        entries[info.filename] = info
    return entries


def _read_meta(path, zf, info):
    with _decoding(path, "cannot read its metadata"):
        fp, shape, _, dtype = _open_npy(path, zf, info)
        with fp:
            if dtype != np.uint8 or len(shape) != 1:
                raise _bad(path, f"the metadata entry is a {dtype} array of shape {_short(shape)}, "
                                 "expected bytes (uint8, 1-D)")
            if shape[0] > _MAX_META_BYTES:
                raise _bad(path, f"the metadata is {shape[0]} bytes, more than {_MAX_META_BYTES}")
            raw = _read_exactly(path, fp, info, shape[0])
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(path, f"the metadata is not UTF-8 JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, "the metadata does not say format 'fastnn'")
    version = meta.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise _bad(path, f"format version {_short(version)}, this fastnn reads versions "
                         f"{', '.join(map(str, READABLE_VERSIONS))}")
    return meta


def _common_args(path, meta):
    dtype, loss = meta.get("dtype"), meta.get("loss")
    if not (isinstance(dtype, str) and dtype in DTYPES):
        raise _bad(path, f"dtype {_short(dtype)}, expected one of {list(DTYPES)}")
    if not (isinstance(loss, str) and loss in _codes.LOSSES):
        raise _bad(path, f"loss {_short(loss)}, expected one of {sorted(_codes.LOSSES)}")
    return dtype, loss


def _network_args_v1(path, meta):
    """Version 1: a stack of dense layers described by "sizes" and per-layer d_in, d_out, activation."""
    sizes, layers = meta.get("sizes"), meta.get("layers")
    dtype, loss = _common_args(path, meta)
    if not (isinstance(sizes, list) and len(sizes) >= 2 and all(type(s) is int and s >= 1 for s in sizes)):
        raise _bad(path, f"bad 'sizes' {_short(sizes)}: expected a list of at least two positive integers")
    if not (isinstance(layers, list) and len(layers) == len(sizes) - 1):
        raise _bad(path, f"'layers' does not match 'sizes' {_short(sizes)}")
    built = []
    for i, layer in enumerate(layers):
        expected = {"type": "dense", "d_in": sizes[i], "d_out": sizes[i + 1]}
        if not isinstance(layer, dict) or any(type(layer.get(k)) is not type(v) or layer.get(k) != v
                                              for k, v in expected.items()):
            raise _bad(path, f"layer {i} is {_short(layer)}, expected a dense layer {sizes[i]} -> {sizes[i + 1]}")
        activation = layer.get("activation")
        if not (isinstance(activation, str) and activation in _codes.ACTIVATIONS):
            raise _bad(path, f"layer {i} has activation {_short(activation)}, expected one of "
                             f"{sorted(_codes.ACTIVATIONS)}")
        built.append(Dense(sizes[i + 1], activation))
    return dict(layers=built, input_shape=(sizes[0],), loss=loss, dtype=dtype)


def _network_args_v2(path, meta):
    """Version 2: input_shape and the layers' own configs, rebuilt and shape-checked by fastnn.layers."""
    from .network import Network

    input_shape, layers = meta.get("input_shape"), meta.get("layers")
    dtype, loss = _common_args(path, meta)
    # a sequence network may take any number of steps: its first entry is then None (JSON null)
    if not (isinstance(input_shape, list) and 1 <= len(input_shape) <= 3 and
            all((type(s) is int and s >= 1) or (s is None and i == 0) for i, s in enumerate(input_shape))):
        raise _bad(path, f"bad 'input_shape' {_short(input_shape)}: expected 1 to 3 positive integers")
    if not (isinstance(layers, list) and 1 <= len(layers) <= _MAX_LAYERS):
        raise _bad(path, f"bad 'layers' {_short(layers)}: expected a list of layer configs")
    ignore_index = meta.get("ignore_index")
    if ignore_index is not None and type(ignore_index) is not int:
        raise _bad(path, f"bad 'ignore_index' {_short(ignore_index)}: expected an integer")
    try:
        built = [layer_from_config(config) for config in layers]
        _, shape = Network._declared_shape(tuple(input_shape), built)
        Network._build_layers(built, shape, loss)
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"its layers do not build: {str(exc)[:300]}") from None
    return dict(layers=built, input_shape=tuple(input_shape), loss=loss, dtype=dtype, ignore_index=ignore_index)


def _network_args(path, meta):
    """Network constructor arguments and the parameter count, from metadata checked key by key."""
    args = (_network_args_v1 if meta["version"] == 1 else _network_args_v2)(path, meta)
    n_params = sum(layer.n_params for layer in args["layers"]) if meta["version"] == 2 else \
        sum(a * b + b for a, b in zip(meta["sizes"][:-1], meta["sizes"][1:]))
    stated = meta.get("n_params")
    if type(stated) is not int or stated != n_params:
        raise _bad(path, f"n_params {_short(stated)} does not match the layers (expected {n_params})")
    return args, n_params


def _read_params(path, zf, info, dtype, n_params):
    dtype = np.dtype(dtype)
    with _decoding(path, "cannot read its parameters"):
        fp, shape, _, stored = _open_npy(path, zf, info)
        with fp:
            # the same float type in either byte order (a file written on a big-endian machine), nothing else
            if stored.kind != "f" or stored.itemsize != dtype.itemsize or stored.shape != () or stored.names:
                raise _bad(path, f"parameters are {stored} {_short(shape)}, expected {dtype.name} ({n_params},)")
            if tuple(shape) != (n_params,):
                raise _bad(path, f"parameters have shape {_short(shape)}, expected ({n_params},) for the sizes "
                                 "in the metadata")
            data = _read_exactly(path, fp, info, n_params * dtype.itemsize)
    params = np.frombuffer(data, dtype=stored)
    if not np.isfinite(params).all():
        raise _bad(path, "parameters contain NaN or infinity")
    return params.astype(dtype, copy=False)  # byte-swapped if need be; load copies it into the network


def _read_prune_mask(path, zf, info, n_decay):
    """The keep flags of a pruned network: uint8 0/1, one per weight."""
    with _decoding(path, "cannot read its pruning mask"):
        fp, shape, _, stored = _open_npy(path, zf, info)
        with fp:
            if stored != np.uint8 or tuple(shape) != (n_decay,):
                raise _bad(path, f"the pruning mask is {stored} {_short(shape)}, expected uint8 ({n_decay},)")
            data = _read_exactly(path, fp, info, n_decay)
    keep = np.frombuffer(data, dtype=np.uint8).copy()
    if keep.size and keep.max() > 1:
        raise _bad(path, "the pruning mask holds values other than 0 and 1")
    return keep


def load(path, backend=None):
    """Read a network written by Network.save (a Network) or QuantizedNetwork.save (a QuantizedNetwork, format
    version 3). Never unpickles; a truncated, corrupted or foreign file raises
    ValueError saying what is wrong (path problems raise FileNotFoundError, IsADirectoryError, ...)."""
    from .network import Network

    _backend.get(backend)  # a bad `backend` argument is the caller's error, not the file's
    path = os.fspath(path)
    with open(path, "rb") as f:  # path problems raise as they are
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _bad(path, "it is not a regular file")
        head = f.read(8)
        if not head:
            raise _bad(path, "it is empty")
        if head.startswith(b"\x93NUMPY"):
            raise _bad(path, "it is a single .npy array, not an archive")
        f.seek(0)
        with _decoding(path, "cannot open it as a zip archive"):
            zf = zipfile.ZipFile(f)
        with zf:
            entries = _check_entries(path, zf, st.st_size)
            meta = _read_meta(path, zf, entries["meta.npy"])
            if (meta["version"] == QUANTIZED_VERSION) != ("qweights.npy" in entries):
                raise _bad(path, f"format version {meta['version']} with entries {_short(sorted(entries))}")
            if meta["version"] == QUANTIZED_VERSION:
                return _load_quantized(path, zf, entries, meta, backend)
            args, n_params = _network_args(path, meta)
            params = _read_params(path, zf, entries["params.npy"], args["dtype"], n_params)
            try:
                net = Network._from_parameters(params, backend=backend, **args)
            except (TypeError, ValueError) as exc:  # e.g. an activation the loss does not allow
                raise _bad(path, str(exc)) from None
            if "prune_mask.npy" in entries:
                keep = _read_prune_mask(path, zf, entries["prune_mask.npy"], net.n_decay)
                if np.any(net._params[:net.n_decay][keep == 0] != 0):
                    raise _bad(path, "weights the pruning mask marks as pruned are not zero")
                net._set_prune_keep(keep)
    return net


def _read_typed(path, zf, info, dtype, count, what):
    """A 1-D array of exactly `count` values of `dtype` (either byte order) from an entry, checked first."""
    dtype = np.dtype(dtype)
    with _decoding(path, f"cannot read its {what}"):
        fp, shape, _, stored = _open_npy(path, zf, info)
        with fp:
            if stored.kind != dtype.kind or stored.itemsize != dtype.itemsize or stored.names:
                raise _bad(path, f"{what} are {stored}, expected {dtype.name}")
            if tuple(shape) != (count,):
                raise _bad(path, f"{what} have shape {_short(shape)}, expected ({count},) for the layers in the "
                                 "metadata")
            data = _read_exactly(path, fp, info, count * dtype.itemsize)
    return np.frombuffer(data, dtype=stored).astype(dtype)


def _load_quantized(path, zf, entries, meta, backend):
    """Version 3: a QuantizedNetwork."""
    from .quantized import QuantizedNetwork, expected_sizes

    how = meta.get("quantized")
    if not (isinstance(how, dict) and how.get("weights") == "int8" and type(how.get("per_channel")) is bool):
        raise _bad(path, f"bad 'quantized' {_short(how)}: expected weights 'int8' and per_channel true/false")
    args = _network_args_v2(path, meta)
    try:
        QuantizedNetwork._check_layers(args["layers"])
    except NotImplementedError as exc:
        raise _bad(path, str(exc)) from None
    n_b, n_w = expected_sizes(args["layers"])
    for key, want in (("n_params", n_b), ("n_qweights", n_w)):
        if type(meta.get(key)) is not int or meta[key] != want:
            raise _bad(path, f"{key} {_short(meta.get(key))} does not match the layers (expected {want})")
    biases = _read_typed(path, zf, entries["params.npy"], np.float32, n_b, "biases")
    qweights = _read_typed(path, zf, entries["qweights.npy"], np.int8, n_w, "int8 weights")
    qscales = _read_typed(path, zf, entries["qscales.npy"], np.float32, n_b, "scales")
    if not np.isfinite(biases).all():
        raise _bad(path, "biases contain NaN or infinity")
    if not (np.isfinite(qscales).all() and (qscales > 0).all()):
        raise _bad(path, "scales must be finite and positive")
    if (qweights == -128).any():
        raise _bad(path, "int8 weights must be in [-127, 127]")
    try:
        return QuantizedNetwork._from_flat(args["layers"], args["input_shape"], args["loss"], args["dtype"],
                                           how["per_channel"], biases, qweights, qscales, backend)
    except (TypeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None
