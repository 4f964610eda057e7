"""Reading and writing a dataset: ``.cs`` files in either format and CSDAT streams (a mixin).

The async variants exist for cryosparc-tools compatibility; they read or write the whole
stream, as cryoweave has no asynchronous I/O of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoweave.dataset import fileio

NUMPY_FORMAT = fileio.NUMPY_FORMAT
CSDAT_FORMAT = fileio.CSDAT_FORMAT
DEFAULT_FORMAT = NUMPY_FORMAT
NEWEST_FORMAT = CSDAT_FORMAT


if TYPE_CHECKING:
    from cryoweave.dataset.core import Dataset


class Persistence:
    """File and stream methods of :class:`~cryoweave.dataset.Dataset`."""

    __slots__ = ()

    _cols: dict[str, np.ndarray]

    @classmethod
    def load(cls, file: Any, *, prefixes: Sequence[str] | None = None, fields: Sequence[str] | None = None,
             cstrs: bool = False, media_type: str | None = None) -> Dataset:
        """Read a ``.cs`` file (numpy or CSDAT format, detected from its first bytes).

        ``prefixes``/``fields`` select columns (``uid`` is always kept); only those are read.
        """
        dset = cls._from_cols(fileio.load(file, prefixes=prefixes, fields=fields))
        return dset.to_cstrs() if cstrs else dset

    @classmethod
    def inspect(cls, file: Any) -> dict[str, Any]:
        """The header of a ``.cs`` file: ``{length, dtype, compression, compressed_fields}``."""
        return fileio.inspect(file)

    def save(self, file: Any, *, format: int = DEFAULT_FORMAT, compression: str | None = "lz4") -> None:
        """Write a ``.cs`` file: numpy format by default, or CSDAT (LZ4-compressed unless
        ``compression=None``). A path is written atomically: complete, or not at all."""
        fileio.save(self._cols, file, format=format, compression=compression)

    def stream(self, compression: str | None = None) -> Iterator[bytes]:
        """The dataset as CSDAT stream chunks (uncompressed by default, as cryosparc-tools)."""
        return fileio.stream(self._cols, compression)

    def dumps(self) -> bytes:
        return b"".join(bytes(chunk) for chunk in self.stream())

    def dump(self, file) -> None:
        for chunk in self.stream():
            file.write(chunk)

    @classmethod
    def from_iterator(cls, source: Iterator[bytes], *, media_type: str | None = None) -> Dataset:
        return cls.load(fileio.IteratorReader(source))

    @classmethod
    async def from_async_stream(cls, stream, *, media_type: str | None = None) -> Dataset:
        return cls.load(await fileio.read_async(stream))

    @classmethod
    async def from_async_iterator(cls, iterator, *, media_type: str | None = None) -> Dataset:
        chunks = [bytes(c) async for c in iterator]
        return cls.from_iterator(iter(chunks))

    async def astream(self):
        for chunk in self.stream():
            yield chunk

    async def adump(self, file) -> None:
        for chunk in self.stream():
            result = file.write(chunk)
            if hasattr(result, "__await__"):
                await result

    async def adumps(self) -> bytes:
        return self.dumps()
