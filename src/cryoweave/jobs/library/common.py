"""What the built-in job types share: declaring a job, checking files, reading and writing images.

Every job here checks all of its input first (files exist and can be read, sizes agree,
parameters make sense) and raises one clear error before it writes anything; only then does it
write its files and save its outputs. Image data is read through memory maps in chunks and new
stacks are written in chunks, so no job needs its particles to fit in memory.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.errors import CryoweaveError, DataError, FormatError, ParamError
from cryoweave.formats.mrc import MrcHeader, StackWriter, read_header

SHOWN = 5
"""How many names an error lists before it says how many more there are."""

CHUNK = 4096
"""Images read or written at a time by the streaming jobs."""


@dataclass(frozen=True)
class LibraryJob:
    """A built-in job type: its spec (plain data) and the function that runs it."""

    spec: dict[str, Any]
    run: Callable[[Any], None]
    outputs: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    """The outputs as they follow from the parameters (declared while the job is built, so later jobs
    can be connected to them before it runs); None: the spec's own outputs."""


def param(name: str, type: str, help: str, default: Any = None, **more: Any) -> dict[str, Any]:
    """A parameter declaration (every built-in parameter has help text)."""
    return {"name": name, "type": type, "help": help, "default": default, **more}


def listing(names: Sequence[Any], shown: int = SHOWN) -> str:
    """``a, b, c`` or ``a, b, c, … and 12 more``."""
    head = ", ".join(str(n) for n in names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown:,} more"


def count_param(params: dict[str, Any], name: str, least: int = 1) -> int:
    """A parameter that must be a whole number of at least ``least``."""
    value = params.get(name)
    if value is None or int(value) != value or value < least:
        raise ParamError(f"parameter {name!r} must be a whole number of at least {least}, not {value!r}")
    return int(value)


def positive(params: dict[str, Any], name: str, what: str) -> float:
    """A parameter that must be above zero (a pixel size, a distance)."""
    value = params.get(name)
    if value is None or not value > 0:
        raise ParamError(f"parameter {name!r} ({what}) must be above 0, not {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------- files
def expand(pattern: str, what: str) -> list[Path]:
    """The files a path or glob names, sorted; an error when it names none."""
    if not pattern:
        raise ParamError(f"say which {what} to import (a path or a glob such as /data/*.mrc)")
    if glob.has_magic(pattern):
        found = sorted(Path(p) for p in glob.glob(pattern) if not os.path.isdir(p))
        if not found:
            raise DataError(f"no {what} match {pattern!r}")
        return found
    path = Path(pattern)
    if not path.exists():
        raise DataError(f"{what}: {pattern} does not exist")
    if path.is_dir():
        raise DataError(f"{what}: {pattern} is a folder; give a file or a glob such as {pattern}/*.mrc")
    return [path]


def check_files(paths: Iterable[Path], what: str) -> None:
    """Every file exists and can be read; else one error naming how many and which."""
    bad = [str(p) for p in paths if not (os.path.isfile(p) and os.access(p, os.R_OK))]
    if bad:
        raise DataError(f"{len(bad):,} {what} are missing or unreadable: {listing(bad)}")


def read_headers(paths: Sequence[Path], what: str) -> list[MrcHeader]:
    """The MRC headers of ``paths``; one error listing every file that cannot be read."""
    check_files(paths, what)
    headers, bad = [], []
    for path in paths:
        try:
            headers.append(read_header(path))
        except (CryoweaveError, OSError) as err:
            bad.append(f"{path} ({str(err).removeprefix(f'{path}: ')})")
    if bad:
        raise DataError(f"{len(bad):,} {what} cannot be read as MRC: {listing(bad, 3)}")
    return headers


def import_sig(path: str | os.PathLike) -> int:
    """The first 8 bytes of the SHA-1 of a file's absolute path, as CryoSPARC's ``import_sig``."""
    digest = hashlib.sha1(os.path.abspath(path).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def link_imports(ctx: Any, paths: Sequence[Path]) -> list[str]:
    """Link imported files into ``J<n>/imported/`` (as CryoSPARC does) and return their
    project-relative paths; moving the raw data later means relinking one folder."""
    folder = ctx.directory / "imported"
    folder.mkdir(exist_ok=True)
    names, out = set(), []
    for path in paths:
        target = os.path.abspath(path)
        name = Path(target).name
        if name in names:
            name = f"{import_sig(target):016x}_{name}"
        names.add(name)
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        out.append(f"{ctx.uid}/imported/{name}")
    return out


def resolve_data_path(text: str, base: Path, project_dir: Path) -> Path:
    """A data path from a metadata file: absolute; relative to the metadata file's folder; or, as
    CryoSPARC writes them, relative to the project (``J3/extract/…``)."""
    path = Path(text.lstrip(">") if text.startswith(">") else text)
    if path.is_absolute():
        return path
    beside = base / path
    if beside.exists() or text.startswith(">"):
        return beside
    in_project = project_dir / path
    return in_project if in_project.exists() else beside


# ------------------------------------------------------------------------------------------ images
def blob_headers(ctx: Any, paths: np.ndarray, what: str) -> dict[str, MrcHeader]:
    """The header of each distinct stack a ``blob/path`` column names (checked to exist)."""
    distinct = [str(p) for p in np.unique(paths.astype(str))] if len(paths) else []
    files = [ctx.file(p) for p in distinct]
    return dict(zip(distinct, read_headers(files, what), strict=True))


def check_indices(headers: dict[str, MrcHeader], paths: np.ndarray, idx: np.ndarray, what: str) -> None:
    """Every ``blob/idx`` lies inside its stack."""
    for path, header in headers.items():
        mine = idx[paths == path]
        if len(mine) and int(mine.max()) >= header.nz:
            raise DataError(f"{what}: image {int(mine.max())} of {path} is asked for, but it holds "
                            f"{header.nz:,} images (0–{header.nz - 1})")


def read_blobs(headers: dict[str, MrcHeader], paths: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The images of rows (``paths[i]``, ``idx[i]``) as float32, in row order."""
    if not len(paths):
        return np.empty((0, 0, 0), np.float32)
    first = headers[str(paths[0])]
    out = np.empty((len(paths), first.ny, first.nx), np.float32)
    for path in np.unique(paths):
        rows = np.flatnonzero(paths == path)
        header = headers[str(path)]
        data = np.memmap(header.path, dtype=header.dtype, mode="r", offset=header.data_offset,
                         shape=(header.nz, header.ny, header.nx))
        out[_run(rows)] = data[_run(idx[rows])]  # one copy from the map where rows and images are consecutive
    return out


def _run(positions: np.ndarray) -> slice | np.ndarray:
    """``positions`` as a slice when they are consecutive and increasing (a view, not a gather)."""
    if len(positions) and positions[-1] - positions[0] == len(positions) - 1 and (np.diff(positions) == 1).all():
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def iter_blobs(ctx: Any, particles: Dataset, prefix: str = "blob", chunk: int = CHUNK,
               ) -> Iterator[tuple[slice, np.ndarray]]:
    """The particles' images in order, ``chunk`` at a time: ``(rows, images)``."""
    paths = particles[f"{prefix}/path"].astype(str)
    idx = particles[f"{prefix}/idx"].astype(np.int64)
    headers = blob_headers(ctx, paths, "particle stacks")
    check_indices(headers, paths, idx, "particles")
    for start in range(0, len(particles), chunk):
        rows = slice(start, min(start + chunk, len(particles)))
        yield rows, read_blobs(headers, paths[rows], idx[rows])


def shifts_px(particles: Dataset, psize: float, prefix: str = "alignments3D") -> np.ndarray:
    """``<prefix>/shift`` in pixels of ``psize`` Å (the alignment's own ``psize_A``, where set, may differ)."""
    shifts = particles[f"{prefix}/shift"].astype(np.float64)
    if f"{prefix}/psize_A" in particles:
        own = particles[f"{prefix}/psize_A"].astype(np.float64)
        shifts = shifts * np.where(own > 0, own / psize, 1.0)[:, None]
    return shifts


def box_of(headers: dict[str, MrcHeader], what: str) -> tuple[int, int]:
    """The one image size the stacks share; an error naming the sizes when they differ."""
    sizes: dict[tuple[int, int], list[str]] = {}
    for path, header in headers.items():
        sizes.setdefault((header.ny, header.nx), []).append(path)
    if len(sizes) > 1:
        parts = "; ".join(f"{ny}×{nx}: {listing(names, 2)}" for (ny, nx), names in sorted(sizes.items()))
        raise DataError(f"{what} have different box sizes ({parts}); import or process each size separately")
    return next(iter(sizes)) if sizes else (0, 0)


FLOAT16_MAX = float(np.finfo(np.float16).max)


def check_float16(block: np.ndarray, rows: slice, particles: Dataset) -> None:
    """Images ``rows`` of ``particles`` fit in float16; else an error naming the first that does not."""
    if len(block) and float(np.abs(block).max()) > FLOAT16_MAX:
        first = rows.start + int((np.abs(block).reshape(len(block), -1).max(axis=1) > FLOAT16_MAX).argmax())
        raise DataError(f"particle {first} (uid {int(particles['uid'][first])}) has values beyond "
                        f"±{FLOAT16_MAX:g}, which float16 cannot hold; write float32 stacks instead")


class StackOutput:
    """New particle stacks in a job's folder, ``per_stack`` images each, written as images come."""

    def __init__(self, ctx: Any, folder: str, total: int, box: tuple[int, int], pixel_size: float,
                 dtype: str = "float32", per_stack: int = 10_000):
        if per_stack < 1:
            raise ParamError(f"a stack holds at least 1 particle, not {per_stack}")
        self.ctx, self.total, self.box, self.pixel_size = ctx, total, box, pixel_size
        self.dtype, self.per_stack = np.dtype(dtype), per_stack
        self.folder = ctx.directory / folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.paths = np.empty(total, dtype=object)
        self.idx = np.zeros(total, np.uint32)
        self.done = 0
        self._writer: StackWriter | None = None
        self._written: list[Path] = []

    def write(self, images: np.ndarray) -> None:
        start = 0
        while start < len(images):
            if self._writer is None:
                number = self.done // self.per_stack
                count = min(self.per_stack, self.total - self.done)
                path = self.folder / f"batch_{number:06d}.mrcs"
                self._writer = StackWriter(path, count, *self.box, pixel_size=self.pixel_size, dtype=self.dtype)
                self._relative = self.ctx.relative(path)
            room = self._writer.count - self._writer.written
            piece = images[start:start + room]
            position = self._writer.written
            self._writer.write(piece)
            rows = slice(self.done, self.done + len(piece))
            self.paths[rows] = self._relative
            self.idx[rows] = np.arange(position, position + len(piece))
            self.done += len(piece)
            start += len(piece)
            if self._writer.written == self._writer.count:
                self._written.append(self._writer.close())
                self._writer = None

    def abort(self) -> None:
        """Remove every stack written so far (the job failed before saving its outputs)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written = []
        with contextlib.suppress(OSError):  # the folder too, when nothing else is in it
            self.folder.rmdir()

    def blob(self, particles: Dataset, sign: np.ndarray | float = -1.0) -> Dataset:
        """A ``blob`` result for ``particles`` pointing at the new stacks."""
        if self.done != self.total:
            raise FormatError(f"{self.folder}: {self.done:,} of {self.total:,} particles were written")
        out = Dataset.allocate(self.total, [("uid", "<u8"), ("blob/path", "O"), ("blob/idx", "<u4"),
                                            ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"),
                                            ("blob/sign", "<f4"), ("blob/import_sig", "<u8")])
        out["uid"] = particles["uid"]
        out["blob/path"] = self.paths
        out["blob/idx"] = self.idx
        out["blob/shape"] = np.array(self.box, np.uint32)
        out["blob/psize_A"] = self.pixel_size
        out["blob/sign"] = sign
        return out
