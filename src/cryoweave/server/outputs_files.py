"""What the output routes read from disk: safe paths, central slices of a map, a job's FSC curves.

Every file the server hands out must lie inside the project directory: a path a user sends is
checked lexically (no absolute path, no ``..``) and again after links are resolved; a path a
table names (a map's ``map/path``) is checked lexically only, so the links an import job made
to raw data outside the project still work.

>>> safe_file(Path("/data/P1"), Path("/data/P1/J3"), "fsc.txt")       # doctest: +SKIP
PosixPath('/data/P1/J3/fsc.txt')
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from cryoweave.errors import FormatError, NotFoundError, ParamError, UnsafePathError
from cryoweave.formats import mrc
from cryoweave.formats.png import png_bytes
from cryoweave.manage import safety
from cryoweave.spec.addresses import FINAL

GAP_PX = 4
"""Pixels between the three slices of a map."""


def parse_version(text: str | int | None) -> int | str:
    """``F`` (or nothing) or a version number from 0."""
    if text is None or text == "" or str(text).upper() == FINAL:
        return FINAL
    value = str(text)
    if not value.isdigit():
        raise ParamError(f"version {value!r} must be F or a number from 0 (e.g. version=3)")
    return int(value)


def finite_or_none(value: float) -> float | None:
    """A float for JSON: NaN and infinities become null (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _lexically_inside(relative: str) -> bool:
    try:
        safety.check_name(relative, "path")
    except UnsafePathError:
        return False
    return True


def safe_file(project_dir: Path, folder: Path, relative: str, what: str) -> Path:
    """The regular file ``folder/relative``, which must resolve (links followed) inside ``project_dir``;
    anything else (absolute, ``..``, a link leading out, a folder, nothing there) is a NotFoundError."""
    missing = NotFoundError(f"{what} has no file {relative!r}; name a file inside it, e.g. fsc.txt")
    if not _lexically_inside(relative):
        raise missing
    path = folder / relative
    if not path.is_file() or not safety.inside(project_dir, path):
        raise missing
    return path.resolve()


def project_file(project_dir: Path, stored: str, what: str) -> Path:
    """A file a record or a table names (project-relative, or absolute inside the project); links followed
    as they are (imports link raw data), but the path itself may not leave the project."""
    path = Path(stored)
    if path.is_absolute():
        normal = Path(os.path.normpath(path))
        if not normal.is_relative_to(os.path.normpath(project_dir)):
            raise NotFoundError(f"{what}: {stored} lies outside the project directory; it is not served")
        path = normal
    elif not _lexically_inside(stored):
        raise NotFoundError(f"{what}: {stored!r} leaves the project directory; it is not served")
    else:
        path = project_dir / stored
    if not path.is_file():
        raise NotFoundError(f"{what}: its file {stored} is missing; clear and re-run the job that made it, "
                            "or restore the file")
    return path


# ------------------------------------------------------------------------------------------- slices
def _normalised(image: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def central_slices(path: Path) -> list[np.ndarray]:
    """The central XY, XZ and YZ sections of a 3D map, read through a memory map (only what they touch)."""
    header = mrc.read_header(path)
    nz, ny, nx = header.shape
    if nz < 2:
        raise FormatError(f"{path}: a single {ny} × {nx} image, not a 3D map; slices need a volume")
    volume = np.memmap(header.path, dtype=header.dtype, mode="r", offset=header.data_offset, shape=header.shape)
    if np.iscomplexobj(volume):
        raise FormatError(f"{path}: complex values (MRC mode 4); slices need a real-valued map")
    return [np.array(volume[nz // 2]), np.array(volume[:, ny // 2, :]), np.array(volume[:, :, nx // 2])]


def slices_png(path: Path) -> bytes:
    """PNG bytes of a map's three central sections side by side, each scaled from its own min to max."""
    images = [_normalised(s) for s in central_slices(path)]
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + GAP_PX * (len(images) - 1)
    canvas = np.zeros((height, width), np.uint8)
    x = 0
    for image in images:
        top = (height - image.shape[0]) // 2
        canvas[top:top + image.shape[0], x:x + image.shape[1]] = image
        x += image.shape[1] + GAP_PX
    return png_bytes(canvas)


# ---------------------------------------------------------------------------------------------- FSC
def read_fsc(path: Path) -> tuple[list[str], np.ndarray]:
    """The columns and rows of an ``fsc.txt`` (``# shell frequency_A-1 resolution_A <curve> …``)."""
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("#"):
        raise FormatError(f"{path}: no header line ('# shell frequency_A-1 resolution_A ...')")
    names = lines[0].lstrip("#").split()
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split()
        if len(words) != len(names):
            raise FormatError(f"{path}: line {number} has {len(words)} columns, the header {len(names)}")
        try:
            rows.append([float(w) for w in words])
        except ValueError:
            raise FormatError(f"{path}: line {number} holds a value that is not a number") from None
    table = np.array(rows, dtype=np.float64).reshape(-1, len(names))
    return names, table


def fsc_curves(path: Path, resolution_A: float | None) -> dict[str, Any]:
    """``{resolution_A, curves, frequency}`` from a job's ``fsc.txt``; without a logged resolution, the
    corrected (else the last) curve's crossing of 0.143."""
    names, table = read_fsc(path)
    if "frequency_A-1" not in names:
        raise FormatError(f"{path}: no frequency_A-1 column (columns: {', '.join(names)})")
    frequency = table[:, names.index("frequency_A-1")]
    curves = {n: table[:, i] for i, n in enumerate(names) if n not in ("shell", "frequency_A-1", "resolution_A")}
    if resolution_A is None and curves and len(frequency) > 1:
        from cryoweave.jobs.library.fsc import resolution_at

        resolution_A = resolution_at(curves.get("corrected", list(curves.values())[-1]), frequency)
    return {"resolution_A": None if resolution_A is None else finite_or_none(resolution_A),
            "curves": {n: [finite_or_none(v) for v in c] for n, c in curves.items()},
            "frequency": [finite_or_none(v) for v in frequency]}
