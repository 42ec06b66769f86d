"""safetensors files, read and written with the standard library alone.

A safetensors file is three pieces, one after the other:

    [ N: 8 bytes, unsigned little-endian ][ N bytes of JSON: the header ][ the buffer ]

The header is one JSON object. Each key names a tensor and maps to
``{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}``, where the
offsets count bytes from the start of the buffer; the optional key
``"__metadata__"`` holds a flat object of strings. The tensor's bytes are its
elements in row-major (C) order, little-endian, so

    end - begin = itemsize(dtype) · Π shape.                     (S1)

The buffer is covered exactly: sorted by offset, each tensor begins where the
previous one ended and the last one ends at the end of the file (no holes, no
overlaps), which is what the format's reference reader demands too.

Nothing here runs code from the file: the header is parsed as JSON and the
buffer is read as plain numbers. Arrays come back on the host (NumPy), as
``backend.load_npz`` returns them; ``Parameter``s move them to the backend.
"""

import json
import math
import os
import pathlib
import struct

from minilora import backend
from minilora.fileio import atomic_write

# The file's dtype names and the array dtypes they are read as (little-endian).
# BF16 has no NumPy dtype: it is read as float32, exactly (Eq. S2 in bf16_to_float32).
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "BOOL": "|b1"}
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "BOOL": 1}
NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "bool": "BOOL"}

MAX_HEADER = 100 * 1024 * 1024  # the reference reader's limit: a larger header is not a real file
METADATA = "__metadata__"


class SafetensorsError(ValueError):
    """A file that is not a well-formed safetensors file; the message says what is wrong."""


def _host():
    """Files are read and written on the host, whatever backend computes."""
    return backend.module_for("cpu")


def bf16_to_float32(bits):
    """bfloat16 bit patterns (uint16) as float32, exactly.

    bfloat16 is the top half of a float32 (1 sign, 8 exponent, 7 mantissa bits),
    so shifting its 16 bits into the high half of a 32-bit word gives the same
    number as a float32:   float32_bits = bf16_bits << 16.            (S2)
    """
    return (bits.astype("<u4") << 16).view("<f4").astype("float32")


def load(path):
    """Read every tensor of a safetensors file: ``{name: host array}`` in file order.

    F64, F32, F16, I64, I32 and BOOL keep their dtype; BF16 comes back as float32
    (Eq. S2). Anything malformed raises ``SafetensorsError`` naming the problem.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header, start = _read_header(f, size, path)
        entries = _check_entries(header, size - start, path)
        arrays = {}
        for name, (dtype, shape, begin, end) in entries.items():
            f.seek(start + begin)
            raw = bytearray(f.read(end - begin))  # a bytearray, so the array is writable
            if len(raw) != end - begin:
                raise SafetensorsError(f"{path}: the file ended inside tensor {name!r} (it was cut short while being read)")
            array = _host().frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)  # (*shape)
            arrays[name] = bf16_to_float32(array) if dtype == "BF16" else array.astype(array.dtype.newbyteorder("="), copy=False)
    return arrays


def load_metadata(path):
    """The file's ``__metadata__`` (a dict of strings; empty if it has none), without reading tensors."""
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        header, _ = _read_header(f, os.fstat(f.fileno()).st_size, path)
    return dict(header.get(METADATA, {}))


def _read_header(f, size, path):
    """The parsed header and the byte where the buffer starts."""
    if size < 8:
        raise SafetensorsError(f"{path}: {size} bytes is too short for a safetensors file (the header length alone takes 8)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_HEADER:
        raise SafetensorsError(f"{path}: the header claims {n} bytes, more than the {MAX_HEADER} a safetensors header may have")
    if 8 + n > size:
        raise SafetensorsError(f"{path}: the header claims {n} bytes but the file has only {size - 8} after the length (a truncated file?)")
    text = f.read(n)
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as err:
        raise SafetensorsError(f"{path}: the header is not UTF-8 text ({err})") from err
    except json.JSONDecodeError as err:
        raise SafetensorsError(f"{path}: the header is not valid JSON ({err}); the file is damaged or not safetensors") from err
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header must be a JSON object of tensors, got a JSON {type(header).__name__}")
    return header, 8 + n


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise SafetensorsError(f"the header names {repeated} more than once; a tensor name must be unique")
    return dict(pairs)


def _check_entries(header, buffer_size, path):
    """{name: (dtype, shape, begin, end)} once every entry is checked against Eq. S1 and the buffer."""
    metadata = header.get(METADATA, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{path}: {METADATA} must be an object of strings, got {metadata!r}")
    entries = {}
    for name, info in header.items():
        if name == METADATA:
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"{path}: tensor {name!r} must be an object with exactly dtype, shape and data_offsets, got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has dtype {dtype!r}, which minilora does not read; supported: {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise SafetensorsError(f"{path}: tensor {name!r} has shape {shape!r}; a shape is a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets) and offsets[0] <= offsets[1]):
            raise SafetensorsError(f"{path}: tensor {name!r} has data_offsets {offsets!r}; they must be [begin, end] with 0 <= begin <= end")
        begin, end = offsets
        if end > buffer_size:
            raise SafetensorsError(
                f"{path}: tensor {name!r} ends at byte {end} of the buffer, which holds only {buffer_size} bytes (a truncated file?)"
            )
        wanted = ITEMSIZE[dtype] * math.prod(shape)
        if end - begin != wanted:
            raise SafetensorsError(f"{path}: tensor {name!r} of shape {shape} and dtype {dtype} needs {wanted} bytes but its offsets span {end - begin}")
        entries[name] = (dtype, tuple(shape), begin, end)
    _check_coverage(entries, buffer_size, path)
    return entries


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_coverage(entries, buffer_size, path):
    """Sorted by offset, the tensors tile the buffer: no overlap, no hole, nothing left over."""
    position, previous = 0, None
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: (item[1][2], item[1][3])):
        if begin < position:
            raise SafetensorsError(f"{path}: tensor {name!r} (bytes {begin}-{end}) overlaps tensor {previous!r}, which ends at byte {position}")
        if begin > position:
            raise SafetensorsError(f"{path}: bytes {position}-{begin} of the buffer belong to no tensor; a safetensors buffer has no holes")
        position, previous = end, name
    if position != buffer_size:
        raise SafetensorsError(f"{path}: the buffer has {buffer_size - position} bytes after its last tensor; a safetensors buffer has no trailing data")


def save(path, arrays, metadata=None):
    """Write ``{name: array}`` (any backend) as a safetensors file, atomically; returns the path.

    Supported dtypes: float64, float32, float16, int64, int32, bool. ``metadata``
    is an optional dict of strings stored as ``__metadata__``. The tensors are
    written in the order given; the header is padded with spaces to a multiple
    of 8 bytes so that every tensor starts aligned.
    """
    path = pathlib.Path(path)
    header, chunks, position = {}, [], 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError(f"metadata must map strings to strings (safetensors stores no other values), got {metadata!r}")
        header[METADATA] = dict(metadata)
    for name, array in arrays.items():
        if not isinstance(name, str) or name == METADATA:
            raise ValueError(f"tensor names must be strings other than {METADATA!r}, got {name!r}")
        host = backend.to_numpy(array.data if hasattr(array, "grad") else array)
        kind = NAMES.get(host.dtype.name)
        if kind is None:
            raise TypeError(f"tensor {name!r} has dtype {host.dtype}, which safetensors files here hold only as one of {', '.join(NAMES)}; convert it first")
        raw = _host().ascontiguousarray(host, dtype=DTYPES[kind]).tobytes()  # row-major, little-endian
        header[name] = {"dtype": kind, "shape": list(host.shape), "data_offsets": [position, position + len(raw)]}
        chunks.append(raw)
        position += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)

    atomic_write(path, write)
    return path
