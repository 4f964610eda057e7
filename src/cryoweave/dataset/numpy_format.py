"""The numpy ``.cs`` format: an ``.npy`` file holding one structured array, one record per row.

Reading: the header is parsed with ``ast.literal_eval`` (never unpickled, any header size),
checked against the file's real size, and rows are read in chunks of a few MiB that are
de-interleaved straight into one contiguous array per field, on several threads. Peak memory
is the table plus one chunk per thread; only the requested fields are kept.

Writing: records are assembled in chunks and written with ``pwrite`` at their offsets, so
threads can fill chunks side by side. Strings become fixed-width UTF-8 bytes.
"""

from __future__ import annotations

import ast
import os
import threading
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from cryoweave.dataset import memory
from cryoweave.dataset.dtypes import normalize_field
from cryoweave.dataset.parallel import parallel_workers
from cryoweave.dataset.strings import (
    StringCodes,
    find_invalid_utf8,
    fixed_table,
    is_string,
    make_codes,
    run_starts,
    to_fixed,
)
from cryoweave.errors import DatasetError, DatasetLoadError, DatasetSaveError, SpecError

MAGIC = b"\x93NUMPY"
_ALIGN = 64
_CHUNK_BYTES = 4 * 1024 * 1024
_MAX_HEADER = 1 << 30
_GROWTH_DIGITS = 21


@dataclass(frozen=True)
class NumpyHeader:
    dtype: np.dtype
    length: int


def _fail(name: str, problem: str) -> DatasetLoadError:
    return DatasetLoadError(f"cannot load dataset {name}: {problem}")


def read_header(f: BinaryIO, name: str, consumed: bytes = b"") -> NumpyHeader:
    """Parse and check the header of a numpy-format file; ``consumed`` are its first bytes if
    they were already read. Leaves the file positioned at the first record."""
    prefix = consumed + f.read(8 - len(consumed))
    if len(prefix) < 8 or prefix[:6] != MAGIC:
        raise _fail(name, "not a numpy .npy file (bad magic bytes)")
    major = prefix[6]
    if major not in (1, 2, 3):
        raise _fail(name, f"numpy format version {major}.{prefix[7]} is not supported (1.0, 2.0 or 3.0)")
    size_bytes = f.read(2 if major == 1 else 4)
    if len(size_bytes) < (2 if major == 1 else 4):
        raise _fail(name, "file is truncated inside its header")
    header_len = int.from_bytes(size_bytes, "little")
    if header_len > _MAX_HEADER:
        raise _fail(name, f"header claims {header_len} bytes, more than the 1 GiB limit")
    raw = f.read(header_len)
    if len(raw) < header_len:
        raise _fail(name, f"file is truncated: the header says it is {header_len} bytes long, "
                          f"only {len(raw)} follow")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
        raise _fail(name, f"header is not a valid numpy header dict (its declared length, "
                          f"{header_len} bytes, may be wrong): {raw[:80]!r}...") from None
    if not raw.endswith(b"\n"):
        raise _fail(name, f"header does not end with a newline where its declared length ({header_len} "
                          "bytes) says it ends; the length field is wrong or the file is damaged")
    if not isinstance(header, dict) or set(header) != {"descr", "shape", "fortran_order"}:
        raise _fail(name, "header must be a dict with exactly the keys 'descr', 'fortran_order' and 'shape'")
    shape = header["shape"]
    if (not isinstance(shape, tuple) or len(shape) != 1 or not isinstance(shape[0], int)
            or isinstance(shape[0], bool) or shape[0] < 0):
        raise _fail(name, f"a dataset is a one-dimensional array of records, not shape {shape!r}")
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except Exception:
        raise _fail(name, f"header has an invalid dtype description {header['descr']!r}") from None
    if dtype.names is None:
        raise _fail(name, f"holds a plain array of {dtype}, not a table of records with named fields")
    if dtype.hasobject:
        raise _fail(name, "holds pickled Python objects; cryoweave never unpickles data. "
                          "Re-save it with string fields as fixed-width bytes")
    if dtype.itemsize == 0 and shape[0] > 0:
        raise _fail(name, "records of zero bytes")
    for field in dtype.names:
        sub = dtype.fields[field][0]
        try:
            normalize_field(field, (sub.base, sub.shape))
        except SpecError as err:
            raise _fail(name, f"field {field!r}: {err}") from None
    return NumpyHeader(dtype=dtype, length=shape[0])


def _file_size(f: BinaryIO) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(here)
        return end
    except (AttributeError, OSError, ValueError):
        return None


def load(f: BinaryIO, name: str, header: NumpyHeader, keep: list[str] | None) -> dict[str, np.ndarray]:
    """Read the selected fields (all when ``keep`` is None) of the records after the header."""
    dtype, n = header.dtype, header.length
    names = [k for k in dtype.names if keep is None or k in keep]
    data_bytes = n * dtype.itemsize
    size, start = _file_size(f), _tell(f)
    if size is not None and start is not None and size - start < data_bytes:
        raise _fail(name, f"file is truncated: the header promises {n} rows of {dtype.itemsize} bytes "
                          f"({data_bytes} bytes) but {max(0, size - start)} bytes follow it")
    rows_per_chunk = max(1, _CHUNK_BYTES // max(1, dtype.itemsize))
    fd = _fileno(f)
    parallel = fd is not None and size is not None and start is not None
    first = np.empty(min(rows_per_chunk, n), dtype=dtype)
    if len(first):
        if parallel:
            _pread_rows(fd, start, dtype, 0, first, name)
        else:
            _read_rows(f, name, header, 0, first)
    # Text fields whose values come in runs (a path per micrograph) are stored as codes.
    coders = {k: _TextCoder(name, k) for k in names if _worth_coding(first[k])}
    cols = {}
    for k in names:
        sub = dtype.fields[k][0]
        native = sub.base.newbyteorder("=") if not sub.base.isnative else sub.base
        try:
            cols[k] = memory.empty((n,), np.dtype(np.uint32)) if k in coders else \
                memory.empty((n, *sub.shape), native)
        except (MemoryError, ValueError):
            raise _fail(name, f"not enough memory for {n} rows of field {k!r}") from None
    sink = _Scatter(cols, coders)
    sink.scatter(first, 0)
    if parallel:
        _read_parallel(fd, start, header, sink, rows_per_chunk, name)
    else:
        _read_sequential(f, name, header, sink, rows_per_chunk)
    for k in sink.non_ascii:  # only fields with bytes >= 0x80 can hold invalid UTF-8
        array = cols[k]
        bad = find_invalid_utf8(array)
        if bad is not None:
            raise _fail(name, f"field {k!r} row {bad} holds bytes that are not valid UTF-8: "
                              f"{bytes(array[bad])!r}")
    for k, coder in coders.items():
        cols[k] = coder.column(cols[k])
    return cols


def _worth_coding(values: np.ndarray) -> bool:
    """A 1-D bytes field whose sample has few runs of equal values."""
    if values.dtype.kind != "S" or values.ndim != 1 or values.dtype.itemsize == 0:
        return False
    return run_starts(np.ascontiguousarray(values), most=1 / 16) is not None


class _TextCoder:
    """Turns chunks of one fixed-width bytes field into codes; the table is shared by threads."""

    def __init__(self, name: str, field: str):
        self.name, self.field = name, field
        self.index: dict[bytes, int] = {}
        self.values: list[str] = []
        self.lock = threading.Lock()

    def encode(self, values: np.ndarray, start: int) -> np.ndarray:
        contiguous = np.ascontiguousarray(values)
        heads = run_starts(contiguous, most=1.0)
        assert heads is not None
        keys = contiguous[heads].tolist()
        codes = np.empty(len(keys), dtype=np.uint32)
        for i, key in enumerate(keys):
            code = self.index.get(key)
            codes[i] = code if code is not None else self._add(key, start + int(heads[i]))
        return np.repeat(codes, np.diff(np.append(heads, len(contiguous))))

    def _add(self, key: bytes, row: int) -> int:
        with self.lock:
            code = self.index.get(key)
            if code is None:
                try:
                    text = key.decode("utf-8")
                except UnicodeDecodeError:
                    raise _fail(self.name, f"field {self.field!r} row {row} holds bytes that are not "
                                           f"valid UTF-8: {key!r}") from None
                code = len(self.values)
                self.values.append(text)
                self.index[key] = code
            return code

    def column(self, codes: np.ndarray) -> np.ndarray:
        uniques = np.empty(len(self.values), dtype=object)
        uniques[:] = self.values
        return make_codes(codes, uniques)


class _Scatter:
    """De-interleaves chunks of records into the columns (codes for coded text fields)."""

    def __init__(self, cols: dict[str, np.ndarray], coders: dict[str, _TextCoder]):
        self.cols, self.coders = cols, coders
        self.non_ascii: set[str] = set()

    def scatter(self, chunk: np.ndarray, start: int) -> None:
        stop = start + len(chunk)
        for k, dest in self.cols.items():
            if k in self.coders:
                dest[start:stop] = self.coders[k].encode(chunk[k], start)
                continue
            part = dest[start:stop]
            part[...] = chunk[k]
            # Check text while it is still in cache; valid UTF-8 needs no second look when ASCII.
            if dest.dtype.kind == "S" and part.size and dest.dtype.itemsize and \
                    part.reshape(-1).view(np.uint8).max() >= 0x80:
                self.non_ascii.add(k)


def _tell(f: BinaryIO) -> int | None:
    try:
        return f.tell()
    except (AttributeError, OSError, ValueError):
        return None


def _fileno(f: BinaryIO) -> int | None:
    try:
        return f.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _pread_rows(fd: int, data_offset: int, dtype: np.dtype, start: int, buffer: np.ndarray,
                name: str) -> None:
    want = len(buffer) * dtype.itemsize
    view = memoryview(buffer.view(np.uint8))  # (not .cast: PEP 3118 chokes on ':' in names)
    got = os.preadv(fd, [view[:want]], data_offset + start * dtype.itemsize)
    if got != want:
        raise _fail(name, f"file shrank while it was being read (row {start})")


def _read_parallel(fd: int, data_offset: int, header: NumpyHeader, sink: _Scatter, rows_per_chunk: int,
                   name: str) -> None:
    dtype, n = header.dtype, header.length
    starts = list(range(rows_per_chunk, n, rows_per_chunk))  # the first chunk is already done

    def work(worker: int, workers: int) -> None:
        buffer = np.empty(min(rows_per_chunk, n), dtype=dtype)
        for start in starts[worker::workers]:
            count = min(rows_per_chunk, n - start)
            _pread_rows(fd, data_offset, dtype, start, buffer[:count], name)
            sink.scatter(buffer[:count], start)

    parallel_workers(work, total_bytes=n * dtype.itemsize)


def _read_rows(f: BinaryIO, name: str, header: NumpyHeader, start: int, buffer: np.ndarray) -> None:
    dtype = header.dtype
    raw = f.read(len(buffer) * dtype.itemsize)
    if len(raw) < len(buffer) * dtype.itemsize:
        raise _fail(name, f"file is truncated: the header promises {header.length} rows, the data ends "
                          f"in row {start + len(raw) // max(1, dtype.itemsize)}")
    buffer.view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)


def _read_sequential(f: BinaryIO, name: str, header: NumpyHeader, sink: _Scatter,
                     rows_per_chunk: int) -> None:
    n = header.length
    buffer = np.empty(min(rows_per_chunk, n), dtype=header.dtype)
    for start in range(rows_per_chunk, n, rows_per_chunk):
        count = min(rows_per_chunk, n - start)
        _read_rows(f, name, header, start, buffer[:count])
        sink.scatter(buffer[:count], start)


def header_bytes(dtype: np.dtype, length: int) -> bytes:
    """The magic, version and padded header dict of an ``.npy`` file, as numpy writes them."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': ({length},), }}"
    text += " " * (_GROWTH_DIGITS - len(str(length)))  # numpy's room to grow the shape in place
    try:
        encoded, majors = text.encode("latin1"), (1, 2)
    except UnicodeEncodeError:
        encoded, majors = text.encode("utf-8"), (3,)
    for major in majors:
        size_len = 2 if major == 1 else 4
        # numpy pads with 1 to 64 spaces so that the data starts on a 64-byte boundary.
        padding = _ALIGN - (8 + size_len + len(encoded) + 1) % _ALIGN
        total = len(encoded) + padding + 1
        if total < 1 << (8 * size_len):
            break
    return MAGIC + bytes([major, 0]) + total.to_bytes(size_len, "little") + encoded + b" " * padding + b"\n"


def save(cols: dict[str, np.ndarray], f: BinaryIO) -> None:
    """Write columns as a numpy-format dataset (strings as fixed-width UTF-8 bytes).

    A text column becomes a table of its distinct values in bytes and one code per row; the
    bytes of each chunk of records are looked up from the table, never as a whole column.
    """
    arrays: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]] = {}
    types = []
    for k, a in cols.items():
        try:
            if a.dtype.kind == "S" and not isinstance(a, StringCodes):
                arrays[k] = to_fixed(a)
                types.append((k, arrays[k].dtype, a.shape[1:]))
            elif is_string(a):
                table, codes = fixed_table(a)
                arrays[k] = (table, codes)
                types.append((k, table.dtype, a.shape[1:]))
            else:
                arrays[k] = a
                types.append((k, a.dtype, a.shape[1:]))
        except DatasetError as err:
            raise DatasetSaveError(f"field {k!r}: {err}") from None
    dtype = np.dtype(types)
    n = len(cols["uid"])
    head = header_bytes(dtype, n)
    fd = _fileno(f)
    rows_per_chunk = max(1, _CHUNK_BYTES // max(1, dtype.itemsize))
    if fd is None:
        f.write(head)
        buffer = np.empty(min(rows_per_chunk, n), dtype=dtype)
        for start in range(0, n, rows_per_chunk):
            count = min(rows_per_chunk, n - start)
            _gather(buffer[:count], arrays, start)
            f.write(memoryview(buffer[:count].view(np.uint8)))
        return
    f.flush()
    base = f.tell()
    os.pwrite(fd, head, base)
    data_offset = base + len(head)
    starts = list(range(0, n, rows_per_chunk))

    def work(worker: int, workers: int) -> None:
        buffer = np.empty(min(rows_per_chunk, n), dtype=dtype)
        for start in starts[worker::workers]:
            count = min(rows_per_chunk, n - start)
            _gather(buffer[:count], arrays, start)
            view = memoryview(buffer[:count].view(np.uint8))
            offset = data_offset + start * dtype.itemsize
            while len(view):
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written

    parallel_workers(work, total_bytes=n * dtype.itemsize)
    f.seek(data_offset + n * dtype.itemsize)


def _gather(chunk: np.ndarray, arrays: dict, start: int) -> None:
    stop = start + len(chunk)
    for k, a in arrays.items():
        if isinstance(a, tuple):
            table, codes = a
            chunk[k] = table[codes[start:stop]]
        else:
            chunk[k] = a[start:stop]
