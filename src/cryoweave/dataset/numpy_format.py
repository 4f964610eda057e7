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
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from cryoweave.dataset.dtypes import normalize_field
from cryoweave.dataset.parallel import parallel_workers
from cryoweave.dataset.strings import find_invalid_utf8, to_fixed
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
    cols = {}
    for k in names:
        sub = dtype.fields[k][0]
        native = sub.base.newbyteorder("=") if not sub.base.isnative else sub.base
        try:
            cols[k] = np.empty((n, *sub.shape), dtype=native)
        except (MemoryError, ValueError):
            raise _fail(name, f"not enough memory for {n} rows of field {k!r}") from None
    rows_per_chunk = max(1, _CHUNK_BYTES // max(1, dtype.itemsize))
    fd = _fileno(f)
    if fd is not None and size is not None and start is not None:
        _read_parallel(fd, start, header, cols, rows_per_chunk)
    else:
        _read_sequential(f, name, header, cols, rows_per_chunk)
    for k, array in cols.items():
        bad = find_invalid_utf8(array)
        if bad is not None:
            raise _fail(name, f"field {k!r} row {bad} holds bytes that are not valid UTF-8: "
                              f"{bytes(array[bad])!r}")
    return cols


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


def _scatter(chunk: np.ndarray, cols: dict[str, np.ndarray], start: int) -> None:
    stop = start + len(chunk)
    for k, dest in cols.items():
        dest[start:stop] = chunk[k]


def _read_parallel(fd: int, data_offset: int, header: NumpyHeader, cols: dict[str, np.ndarray],
                   rows_per_chunk: int) -> None:
    dtype, n = header.dtype, header.length
    starts = list(range(0, n, rows_per_chunk))

    def work(worker: int, workers: int) -> None:
        buffer = np.empty(min(rows_per_chunk, n), dtype=dtype)
        view = memoryview(buffer.view(np.uint8))  # (not .cast: PEP 3118 chokes on ':' in names)
        for start in starts[worker::workers]:
            count = min(rows_per_chunk, n - start)
            want = count * dtype.itemsize
            got = os.preadv(fd, [view[:want]], data_offset + start * dtype.itemsize)
            if got != want:
                raise DatasetLoadError(f"file shrank while it was being read (row {start})")
            _scatter(buffer[:count], cols, start)

    parallel_workers(work, total_bytes=n * dtype.itemsize)


def _read_sequential(f: BinaryIO, name: str, header: NumpyHeader, cols: dict[str, np.ndarray],
                     rows_per_chunk: int) -> None:
    dtype, n = header.dtype, header.length
    for start in range(0, n, rows_per_chunk):
        count = min(rows_per_chunk, n - start)
        raw = f.read(count * dtype.itemsize)
        if len(raw) < count * dtype.itemsize:
            raise _fail(name, f"file is truncated: the header promises {n} rows, the data ends in row "
                              f"{start + len(raw) // max(1, dtype.itemsize)}")
        _scatter(np.frombuffer(raw, dtype=dtype), cols, start)


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
    """Write columns as a numpy-format dataset (strings as fixed-width UTF-8 bytes)."""
    arrays = {}
    for k, a in cols.items():
        try:
            arrays[k] = to_fixed(a) if a.dtype.kind in "OSU" else a
        except DatasetError as err:
            raise DatasetSaveError(f"field {k!r}: {err}") from None
    dtype = np.dtype([(k, a.dtype, a.shape[1:]) for k, a in arrays.items()])
    n = len(arrays["uid"])
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


def _gather(chunk: np.ndarray, arrays: dict[str, np.ndarray], start: int) -> None:
    stop = start + len(chunk)
    for k, a in arrays.items():
        chunk[k] = a[start:stop]
