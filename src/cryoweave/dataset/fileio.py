"""Opening, detecting and atomically writing ``.cs`` files in either format."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import numpy as np

from cryoweave.atomic import atomic_write
from cryoweave.dataset import csdat, numpy_format
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import DatasetLoadError, DatasetSaveError

NUMPY_FORMAT = 1
CSDAT_FORMAT = 2
FORMAT_NAMES = {NUMPY_FORMAT: "numpy", CSDAT_FORMAT: "csdat"}
_CSDAT_V1 = b"\x94CSDAT"


def _name(file: Any) -> str:
    if isinstance(file, str | PurePath):
        return str(file)
    return str(getattr(file, "name", None) or f"<{type(file).__name__}>")


@contextmanager
def _open_for_reading(file: Any):
    if isinstance(file, str | PurePath):
        path = Path(file)
        try:
            with open(path, "rb") as f:
                yield f
        except FileNotFoundError:
            raise DatasetLoadError(f"cannot load dataset {path}: no such file") from None
        except IsADirectoryError:
            raise DatasetLoadError(f"cannot load dataset {path}: it is a directory, not a .cs file") from None
        except PermissionError:
            raise DatasetLoadError(f"cannot load dataset {path}: permission denied") from None
    else:
        yield file


def _detect(f: BinaryIO, name: str) -> tuple[int, bytes]:
    """The format of a stream from its first six bytes (which are consumed and returned)."""
    magic = f.read(6)
    if magic == numpy_format.MAGIC:
        return NUMPY_FORMAT, magic
    if magic == csdat.MAGIC:
        return CSDAT_FORMAT, magic
    if magic == _CSDAT_V1:
        raise DatasetLoadError(f"cannot load dataset {name}: it is in the CSDAT v1 format of "
                               "cryosparc-tools 4.1-4.3, which no current reader supports; load and "
                               "re-save it with cryosparc-tools 4.3 in the numpy format")
    if not magic:
        raise DatasetLoadError(f"cannot load dataset {name}: the file is empty")
    raise DatasetLoadError(f"cannot load dataset {name}: it starts with {magic!r}, which is neither a "
                           "numpy .cs file (\\x93NUMPY) nor a CSDAT stream (\\x95CSDAT)")


def _read_header(f: BinaryIO, name: str) -> tuple[int, Any, list[tuple]]:
    """Detect the format and read the header: (format, header, field descriptors)."""
    kind, magic = _detect(f, name)
    if kind == NUMPY_FORMAT:
        head = numpy_format.read_header(f, name, consumed=magic)
        fields = []
        for k in head.dtype.names:
            sub = head.dtype.fields[k][0]
            base = "|O" if sub.base.kind in "SU" else sub.base.newbyteorder("=").str
            fields.append((k, base, sub.shape) if sub.shape else (k, base))
        return kind, head, fields
    header = csdat.read_header(f, name)
    return kind, header, header["dtype"]


def _selection(f_fields: list[str], prefixes: Sequence[str] | None,
               fields: Sequence[str] | None) -> list[str] | None:
    if prefixes is None and fields is None:
        return None
    wanted_prefixes = set(prefixes or ())
    wanted_fields = set(fields or ())
    return [f for f in f_fields
            if f == "uid" or f in wanted_fields or ("/" in f and f.split("/", 1)[0] in wanted_prefixes)]


def _with_uid(cols: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    if "uid" in cols:
        return cols
    return {"uid": generate_uids(n), **cols}


def load(file: Any, *, prefixes: Sequence[str] | None = None,
         fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Columns of a dataset file or binary stream (format detected from its first bytes)."""
    name = _name(file)
    with _open_for_reading(file) as f:
        try:
            kind, header, descr = _read_header(f, name)
            keep = _selection([fl[0] for fl in descr], prefixes, fields)
            if kind == NUMPY_FORMAT:
                cols, n = numpy_format.load(f, name, header, keep), header.length
            else:
                cols, n = csdat.load(f, name, header, keep), header["length"]
        except DatasetLoadError:
            raise
        except (OSError, MemoryError, ValueError, EOFError) as err:
            raise DatasetLoadError(f"cannot load dataset {name}: {err}") from None
    return _with_uid(cols, n)


def inspect(file: Any) -> dict[str, Any]:
    """``{length, dtype, compression, compressed_fields, format}`` of a dataset, from its header."""
    name = _name(file)
    with _open_for_reading(file) as f:
        kind, header, descr = _read_header(f, name)
    if kind == NUMPY_FORMAT:
        return {"length": header.length, "dtype": descr, "compression": None, "compressed_fields": [],
                "format": "numpy"}
    return {**header, "format": "csdat"}


def stream(cols: dict[str, np.ndarray], compression: str | None = None) -> Iterator[bytes]:
    return csdat.stream(cols, compression)


def save(cols: dict[str, np.ndarray], file: Any, *, format: int = NUMPY_FORMAT,
         compression: str | None = "lz4") -> None:
    """Write a dataset; a path is written to a temporary file first and renamed when complete."""
    if format not in FORMAT_NAMES:
        raise DatasetSaveError(f"invalid dataset save format for {_name(file)}: {format!r} "
                               f"(use NUMPY_FORMAT=1 or CSDAT_FORMAT=2)")
    if isinstance(file, str | PurePath):
        with atomic_write(Path(file), error=DatasetSaveError) as f:
            _write(cols, f, format, compression)
    else:
        _write(cols, file, format, compression)


def _write(cols: dict[str, np.ndarray], f: BinaryIO, format: int, compression: str | None) -> None:
    if format == NUMPY_FORMAT:
        numpy_format.save(cols, f)
    else:
        for chunk in csdat.stream(cols, compression):
            f.write(chunk)


class IteratorReader(io.RawIOBase):
    """A readable, non-seekable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        view = memoryview(target).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += bytes(chunk)
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


async def read_async(stream: Any) -> io.BytesIO:
    """Everything an async readable (``await stream.read(n)``) yields, as a seekable buffer."""
    parts = []
    while True:
        chunk = await stream.read(1 << 20)
        if not chunk:
            break
        parts.append(bytes(chunk))
    return io.BytesIO(b"".join(parts))
