"""MRC files (micrographs, particle stacks, maps): the header read directly, images read by range.

Imports of thousands of micrographs read only the 1,024-byte header of each file: its size,
mode (data type), pixel size and where the data begins; a file too short for what its header
says is caught then, not when a job reads it. Images are read by index range through a memory
map, so a stack larger than memory is read in chunks. Files are written with ``mrcfile`` (the
reference implementation of MRC2014), to a temporary file renamed into place.

>>> write_mrc("/tmp/stack.mrcs", np.zeros((10, 64, 64), np.float32), pixel_size=1.1, stack=True)   # doctest: +SKIP
>>> read_header("/tmp/stack.mrcs").shape                                                        # doctest: +SKIP
(10, 64, 64)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoweave.errors import FormatError

HEADER_BYTES = 1024
MODES = {0: np.int8, 1: np.int16, 2: np.float32, 4: np.complex64, 6: np.uint16, 12: np.float16}
"""MRC2014 modes cryoweave reads, and their data types (mode 101, packed 4-bit, is not read)."""
_WORDS = np.dtype([("nx", "i4"), ("ny", "i4"), ("nz", "i4"), ("mode", "i4"), ("start", "i4", 3),
                   ("mxyz", "i4", 3), ("cella", "f4", 3), ("cellb", "f4", 3), ("axes", "i4", 3),
                   ("stats", "f4", 3), ("ispg", "i4"), ("nsymbt", "i4"), ("extra", "V100"),
                   ("origin", "f4", 3), ("map", "S4"), ("machst", "u1", 4), ("rms", "f4"), ("nlabl", "i4"),
                   ("labels", "S80", 10)])


@dataclass(frozen=True)
class MrcHeader:
    """What an MRC file holds: ``nz`` images (or sections) of ``ny`` × ``nx`` values of ``dtype``."""

    path: Path
    nx: int
    ny: int
    nz: int
    mode: int
    dtype: np.dtype
    pixel_size: tuple[float, float, float]
    """Ångström per voxel along x, y, z (0 when the header gives no cell size)."""
    data_offset: int
    space_group: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.nz, self.ny, self.nx

    @property
    def is_volume(self) -> bool:
        """A 3D map (space group 1–230) rather than a stack of 2D images (space group 0)."""
        return 1 <= self.space_group <= 230


def _words(raw: bytes, order: str) -> np.void:
    return np.frombuffer(raw, dtype=_WORDS.newbyteorder(order), count=1)[0]


def read_header(path: str | os.PathLike) -> MrcHeader:
    """The header of an MRC file, checked against the file's size; no image data is read."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as err:
        raise FormatError(f"{path}: cannot be read: {err.strerror or err}") from None
    if len(raw) < HEADER_BYTES:
        raise FormatError(f"{path}: {len(raw)} bytes is too short for an MRC file (its header alone is 1,024 bytes)")
    order = ">" if raw[212] == 0x11 else "<"  # the machine stamp: 0x44 little-endian, 0x11 big-endian
    words = _words(raw, order)
    if not 0 <= int(words["mode"]) < 1000 and order == "<":  # an old file without a stamp, written big-endian
        order, words = ">", _words(raw, ">")
    nx, ny, nz, mode = (int(words[k]) for k in ("nx", "ny", "nz", "mode"))
    if not bytes(words["map"]).startswith(b"MAP"):
        raise FormatError(f"{path}: not an MRC file (no 'MAP ' mark at byte 208, as MRC2014 requires)")
    if min(nx, ny, nz) < 1:
        raise FormatError(f"{path}: the header gives {nx} × {ny} × {nz} values; each must be at least 1")
    if mode not in MODES:
        raise FormatError(f"{path}: MRC mode {mode} is not read by cryoweave (modes: "
                          f"{', '.join(f'{m} ({np.dtype(t).name})' for m, t in MODES.items())})")
    nsymbt = int(words["nsymbt"])
    if nsymbt < 0:
        raise FormatError(f"{path}: negative extended header size {nsymbt}")
    dtype = np.dtype(MODES[mode]).newbyteorder(order)
    offset = HEADER_BYTES + nsymbt
    needed = offset + nx * ny * nz * dtype.itemsize
    if size < needed:
        raise FormatError(f"{path}: the file is {size:,} bytes but its header describes {nz:,} × {ny} × {nx} "
                          f"{dtype.name} values ({needed:,} bytes): it is truncated or damaged")
    grid = [int(m) if int(m) > 0 else n for m, n in zip(words["mxyz"], (nx, ny, nz), strict=True)]
    cell = [float(c) for c in words["cella"]]
    pixel = tuple(round(c / g, 6) if c > 0 else 0.0 for c, g in zip(cell, grid, strict=True))
    return MrcHeader(path=path, nx=nx, ny=ny, nz=nz, mode=mode, dtype=dtype, pixel_size=pixel,
                     data_offset=offset, space_group=int(words["ispg"]))


def read_images(source: str | os.PathLike | MrcHeader, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Images (sections) ``start:stop`` of an MRC file as a ``(n, ny, nx)`` array in native byte order."""
    header = source if isinstance(source, MrcHeader) else read_header(source)
    stop = header.nz if stop is None else stop
    if not 0 <= start <= stop <= header.nz:
        raise FormatError(f"{header.path}: images {start}:{stop} asked for, but the file holds {header.nz:,} "
                          f"(0:{header.nz})")
    if start == stop:
        return np.empty((0, header.ny, header.nx), header.dtype.newbyteorder("="))
    per_image = header.ny * header.nx
    data = np.memmap(header.path, dtype=header.dtype, mode="r",
                     offset=header.data_offset + start * per_image * header.dtype.itemsize,
                     shape=(stop - start, header.ny, header.nx))
    return np.asarray(data, dtype=header.dtype.newbyteorder("="))


def write_mrc(path: str | os.PathLike, data: np.ndarray, *, pixel_size: float, stack: bool) -> Path:
    """Write a 2D image, an image stack (``stack=True``) or a 3D map; replaces ``path`` only when complete."""
    import mrcfile

    path = Path(path)
    array = np.asarray(data)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise FormatError(f"{path}: MRC data must be 2D or 3D, not shape {array.shape}")
    if array.dtype not in [np.dtype(t) for t in MODES.values()]:
        array = array.astype(np.float32)
    if not pixel_size > 0:
        raise FormatError(f"{path}: the pixel size must be above 0 Å, not {pixel_size}")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with mrcfile.new(temporary, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(array))
            if stack:
                mrc.set_image_stack()
            else:
                mrc.set_volume()
            mrc.voxel_size = pixel_size
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


class StackWriter:
    """Write a stack of ``count`` images of ``ny`` × ``nx`` in pieces, so it never has to be in memory.

    The file is made at its full size in a temporary file, filled through a memory map, its header
    statistics set at the end, and renamed into place by :meth:`close`; :meth:`abort` (or an error
    inside a ``with`` block) removes it.

    >>> with StackWriter("/tmp/out.mrcs", 1000, 128, 128, pixel_size=2.0) as out:   # doctest: +SKIP
    ...     out.write(images_0_to_99)                                               # in order
    """

    def __init__(self, path: str | os.PathLike, count: int, ny: int, nx: int, *, pixel_size: float,
                 dtype: np.dtype | str = np.float32):
        import mrcfile

        self.path, self.count, self.written = Path(path), int(count), 0
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise FormatError(f"{self.path}: stacks are written as float32 or float16, not {self.dtype}")
        if not pixel_size > 0:
            raise FormatError(f"{self.path}: the pixel size must be above 0 Å, not {pixel_size}")
        fd, self.temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            self._mrc = mrcfile.new_mmap(self.temporary, shape=(self.count, ny, nx),
                                         mrc_mode=12 if self.dtype == np.float16 else 2, overwrite=True)
            self._mrc.set_image_stack()
            self._mrc.voxel_size = pixel_size
        except BaseException:
            Path(self.temporary).unlink(missing_ok=True)
            raise
        self._sum = self._sum2 = 0.0
        self._min, self._max = np.inf, -np.inf

    def write(self, images: np.ndarray) -> None:
        """Append images ``(n, ny, nx)`` after those already written."""
        n = len(images)
        if self.written + n > self.count:
            raise FormatError(f"{self.path}: {self.written + n:,} images written to a stack made for {self.count:,}")
        block = np.asarray(images, dtype=self.dtype)
        self._mrc.data[self.written:self.written + n] = block
        if n:  # header statistics, accumulated in float64 without a float64 copy of the block
            single = block.astype(np.float32, copy=False)
            self._sum += float(single.sum(dtype=np.float64))
            self._sum2 += float(np.square(single).sum(dtype=np.float64))
            self._min, self._max = min(self._min, float(single.min())), max(self._max, float(single.max()))
        self.written += n

    def close(self) -> Path:
        """Finish the file (every image written) and move it into place."""
        if self.written != self.count:
            self.abort()
            raise FormatError(f"{self.path}: {self.written:,} of {self.count:,} images were written; file not kept")
        values = self.count * self._mrc.data.shape[1] * self._mrc.data.shape[2]
        mean = self._sum / values if values else 0.0
        header = self._mrc.header
        header.dmin, header.dmax = (self._min, self._max) if values else (0.0, 0.0)
        header.dmean = mean
        header.rms = float(np.sqrt(max(self._sum2 / values - mean * mean, 0.0))) if values else 0.0
        self._mrc.close()
        os.replace(self.temporary, self.path)
        return self.path

    def abort(self) -> None:
        self._mrc.close()
        Path(self.temporary).unlink(missing_ok=True)

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, kind, value, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
