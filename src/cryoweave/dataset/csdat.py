"""The CSDAT stream format (``\\x95CSDAT``): a JSON header, one block per column, a string heap.

Layout (little-endian): magic, u32 header length, JSON header
``{"length", "dtype", "compression", "compressed_fields"}``, then (when length > 0) for each
field a u32 block size and the block (raw column bytes, or one LZ4 *block* of them), then the
string heap to the end of the stream. A string column's block holds one u64 heap offset per
row; the heap starts with the empty string and holds each distinct string once, NUL-terminated.

Reading seeks past the columns not asked for. Every size is checked against the header and
the data before anything is allocated, so a corrupt stream is an error, never a crash.
"""

from __future__ import annotations

import ctypes
import functools
import io
import json
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from cryoweave.dataset import memory
from cryoweave.dataset.dtypes import normalize_field, parse_dtype
from cryoweave.dataset.parallel import parallel_map
from cryoweave.dataset.strings import as_text, factorize, is_string, make_codes
from cryoweave.errors import CryoweaveError, DatasetLoadError, DatasetSaveError

MAGIC = b"\x95CSDAT"
NEVER_COMPRESS = frozenset({"uid"})
LONG_NAME = 52  # cryosparc-tools' SHORTKEYSZ: longer names live in the string heap
_U32 = 1 << 32
_LZ4_MAX_RATIO = 256  # an LZ4 block never expands to more than ~255x its size


def _fail(name: str, problem: str) -> DatasetLoadError:
    return DatasetLoadError(f"cannot load dataset {name}: {problem}")


def _read_exact(f: BinaryIO, size: int, name: str, what: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise _fail(name, f"file is truncated in {what}: expected {size} bytes, found {len(data)}")
    return data


def parse_header(raw: bytes, name: str) -> dict[str, Any]:
    """Decode and validate a CSDAT JSON header; fields come back as normalised tuples."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _fail(name, f"header is not valid JSON: {raw[:80]!r}") from None
    if not isinstance(header, dict):
        raise _fail(name, "header must be a JSON object")
    length, dtype = header.get("length"), header.get("dtype")
    compression, compressed = header.get("compression"), header.get("compressed_fields", [])
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise _fail(name, f"header 'length' must be a non-negative integer, not {length!r}")
    if compression not in (None, "lz4"):
        raise _fail(name, f"compression {compression!r} is not supported (only 'lz4' or none)")
    if not isinstance(dtype, list) or not isinstance(compressed, list):
        raise _fail(name, "header 'dtype' and 'compressed_fields' must be lists")
    fields = []
    for entry in dtype:
        if (not isinstance(entry, list) or len(entry) not in (2, 3) or not isinstance(entry[0], str)
                or not isinstance(entry[1], str) or (len(entry) == 3 and not isinstance(entry[2], list))):
            raise _fail(name, f"header field {entry!r} must be [name, dtype] or [name, dtype, shape]")
        try:
            notation = (entry[1], tuple(entry[2])) if len(entry) == 3 else entry[1]
            fields.append(normalize_field(entry[0], notation) if entry[0] != "uid" else ("uid", "<u8"))
            if entry[0] == "uid" and entry[1] != "<u8":
                raise CryoweaveError(f"uid must be '<u8', not {entry[1]!r}")
        except (CryoweaveError, TypeError) as err:
            raise _fail(name, f"header field {entry[0]!r}: {err}") from None
    names = [f[0] for f in fields]
    if len(set(names)) != len(names):
        raise _fail(name, "header names the same field twice")
    if not all(isinstance(c, str) for c in compressed) or not set(compressed) <= set(names):
        raise _fail(name, f"compressed_fields {compressed!r} must name fields of the header")
    return {"length": length, "dtype": fields, "compression": compression, "compressed_fields": compressed}


def read_header(f: BinaryIO, name: str) -> dict[str, Any]:
    """Read the header of a stream positioned just after its magic bytes."""
    size = int.from_bytes(_read_exact(f, 4, name, "the header size"), "little")
    return parse_header(_read_exact(f, size, name, "the header"), name)


def _skip(f: BinaryIO, size: int, name: str, what: str) -> None:
    try:
        if f.seekable():
            here = f.tell()
            end = f.seek(0, os.SEEK_END)
            if end - here < size:
                raise _fail(name, f"file is truncated in {what}: expected {size} bytes, found {end - here}")
            f.seek(here + size)
            return
    except (AttributeError, OSError):
        pass
    _read_exact(f, size, name, what)


def load(f: BinaryIO, name: str, header: dict[str, Any], keep: list[str] | None) -> dict[str, np.ndarray]:
    """Read the selected fields (all when ``keep`` is None) of the columns after the header."""
    n, compressed = header["length"], set(header["compressed_fields"])
    cols: dict[str, np.ndarray] = {}
    strings: list[str] = []
    for field in header["dtype"] if n > 0 else []:
        fname = field[0]
        dtype, shape = parse_dtype((field[1], field[2]) if len(field) == 3 else field[1])
        is_str = dtype.kind == "O"
        item = np.dtype(np.uint64) if is_str else dtype
        expected = n * item.itemsize * int(np.prod(shape, dtype=np.int64))
        what = f"column {fname!r}"
        size = int.from_bytes(_read_exact(f, 4, name, f"the size of {what}"), "little")
        if keep is not None and fname not in keep:
            _skip(f, size, name, what)
            continue
        if fname in compressed:
            if expected > _LZ4_MAX_RATIO * size + 64:
                raise _fail(name, f"{what} is {size} compressed bytes, too few for the {n} rows "
                                  "the header promises")
            cols[fname] = _decompress(_read_exact(f, size, name, what), item, (n, *shape), name, what)
        else:
            if size != expected:
                raise _fail(name, f"{what} holds {size} bytes but {n} rows of {field[1]} need {expected}")
            cols[fname] = _read_column(f, item, (n, *shape), name, what)
        if is_str:
            strings.append(fname)
    heap = f.read()
    if strings:
        _resolve_strings(cols, strings, heap, name)
    if n == 0:
        for field in header["dtype"]:
            if keep is None or field[0] in keep:
                dtype, shape = parse_dtype((field[1], field[2]) if len(field) == 3 else field[1])
                cols[field[0]] = np.empty((0, *shape), dtype=dtype)
    return cols


def _read_column(f: BinaryIO, item: np.dtype, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    """An uncompressed column block read straight into its array."""
    out = memory.empty(shape, item)
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
        try:
            chunk = f.readinto(view[got:])
        except (AttributeError, NotImplementedError, io.UnsupportedOperation):  # a reader without readinto
            data = f.read(len(view) - got)
            view[got:got + len(data)] = data
            chunk = len(data)
        if not chunk:
            raise _fail(name, f"file is truncated in {what}: expected {len(view)} bytes, found {got}")
        got += chunk
    return out


def _decompress(block: bytes, item: np.dtype, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    """An LZ4 block decompressed into a new column array (checked to be exactly its size)."""
    expected = int(np.prod(shape, dtype=np.int64)) * item.itemsize
    if expected == 0:
        return np.empty(shape, dtype=item)
    native = _native_lz4()
    if native is not None and expected < 2**31 and len(block) < 2**31:
        out = memory.empty(shape, item)
        got = native(block, out.ctypes.data, len(block), expected)
        if got != expected:
            raise _fail(name, f"{what} is not a valid LZ4 block of {expected} bytes")
        return out
    import lz4.block

    try:
        raw = lz4.block.decompress(block, uncompressed_size=expected, return_bytearray=True)
    except (lz4.block.LZ4BlockError, ValueError, MemoryError) as err:
        raise _fail(name, f"{what} is not a valid LZ4 block of {expected} bytes ({err})") from None
    return np.frombuffer(raw, dtype=item).reshape(shape)


@functools.cache
def _native_lz4():
    """``LZ4_decompress_safe`` of the LZ4 library inside python-lz4, to decompress into our own
    arrays (its Python API always allocates a new buffer); None where it is not exported.
    The function never writes past the given capacity and rejects malformed input."""
    try:
        import lz4.block._block as extension

        function = ctypes.CDLL(extension.__file__).LZ4_decompress_safe
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def _resolve_strings(cols: dict[str, np.ndarray], names: list[str], heap: bytes, name: str) -> None:
    ends = np.flatnonzero(np.frombuffer(heap, dtype=np.uint8) == 0)
    for field in names:
        shape = cols[field].shape
        uniques, codes = factorize(cols[field].reshape(-1))
        # A string runs from its offset to the next NUL (an offset may point inside an entry).
        slots = np.searchsorted(ends, uniques, side="left")
        bad = slots >= len(ends)
        if bad.any():
            raise _fail(name, f"field {field!r} points to string offset {int(uniques[bad][0])}, past the "
                              f"end of the {len(heap)}-byte string heap (is the file truncated?)")
        values = np.empty(len(uniques), dtype=object)
        try:
            values[:] = [heap[a:b].decode("utf-8") for a, b in zip(uniques.tolist(), ends[slots].tolist())]
        except UnicodeDecodeError as err:
            raise _fail(name, f"field {field!r} holds a string that is not valid UTF-8: "
                              f"{err.object[:80]!r}") from None
        cols[field] = make_codes(codes.astype(np.uint32).reshape(shape), values)


# ---------------------------------------------------------------------------- writing
def _string_offsets(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bytes]:
    heap = bytearray(b"\0")
    where: dict[bytes, int] = {b"": 0}
    # cryosparc-tools keeps field names of LONG_NAME bytes or more in the string heap and, when
    # reading, expects them at the offsets a fresh heap would give: first, in field order.
    for fname in cols:
        encoded = fname.encode("utf-8")
        if len(encoded) >= LONG_NAME and encoded not in where:
            where[encoded] = len(heap)
            heap += encoded + b"\0"
    offsets = {}
    for fname, column in cols.items():
        if not is_string(column):
            continue
        uniques, codes = factorize(column.reshape(-1))
        table = np.empty(len(uniques), dtype=np.uint64)
        for i, value in enumerate(uniques.tolist()):
            try:
                data = value.rstrip(b"\0") if isinstance(value, bytes) else as_text(value).encode("utf-8")
            except UnicodeEncodeError:
                raise DatasetSaveError(f"field {fname!r} holds a string that cannot be written as UTF-8: "
                                       f"{value!r} (a file name in another encoding?)") from None
            if b"\0" in data:
                raise DatasetSaveError(f"field {fname!r} holds a string with a NUL character: {data[:80]!r}")
            off = where.get(data)
            if off is None:
                off = where[data] = len(heap)
                heap += data + b"\0"
            table[i] = off
        offsets[fname] = table[codes].reshape(column.shape)
    return offsets, bytes(heap)


def _bytes_view(array: np.ndarray) -> memoryview:
    """The raw bytes of an array as a flat byte buffer (no copy when it is contiguous)."""
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def stream(cols: dict[str, np.ndarray], compression: str | None = None) -> Iterator[bytes | memoryview]:
    """The CSDAT stream of columns, chunk by chunk (header, then one block per field, then heap)."""
    if compression not in (None, "lz4"):
        raise DatasetSaveError(f"compression {compression!r} is not supported; use 'lz4' or None")
    n = len(cols["uid"])
    offsets, heap = _string_offsets(cols)
    descr = []
    for fname, column in cols.items():
        base = "|O" if fname in offsets else column.dtype.str
        descr.append([fname, base, list(column.shape[1:])] if column.ndim > 1 else [fname, base])
    compressed = [f for f in cols if compression and f not in NEVER_COMPRESS]
    header = json.dumps({"length": n, "dtype": descr, "compression": compression,
                         "compressed_fields": compressed}).encode()
    yield MAGIC
    yield len(header).to_bytes(4, "little")
    yield header
    if n > 0:
        names = list(cols)

        def block(fname: str) -> memoryview:
            raw = _bytes_view(offsets.get(fname, cols[fname]))
            if fname in compressed:
                import lz4.block
                raw = memoryview(lz4.block.compress(raw, mode="fast", acceleration=1000, store_size=False))
            if raw.nbytes >= _U32:
                raise DatasetSaveError(f"field {fname!r} is {raw.nbytes} bytes, over the 4 GiB a CSDAT "
                                       "column can hold; save in the numpy format or split the dataset")
            return raw

        row_bytes = sum(c.itemsize * c[:1].size for c in cols.values())
        for raw in parallel_map(block, names, total_bytes=n * row_bytes):
            yield raw.nbytes.to_bytes(4, "little")
            yield raw
    yield heap
