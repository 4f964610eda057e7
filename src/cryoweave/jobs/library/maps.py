"""Maps in and out for the jobs on volumes: the one map an input names (checked), and a new map
saved as an output (a new item with ``<slot>/path``, ``shape``, ``psize_A``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import CryoweaveError, DataError
from cryoweave.formats.mrc import MrcHeader, read_header, write_mrc
from cryoweave.jobs.library.common import check_files
from cryoweave.spec import result_fields


def box_text(shape: tuple[int, ...]) -> str:
    """A map's size as people write it, x × y × z (``shape`` is z, y, x)."""
    return "×".join(str(n) for n in shape[::-1])


def map_input(ctx: Any, group: Dataset, slot: str, what: str) -> tuple[MrcHeader, float]:
    """The header of the one map a group names in ``slot``, and its pixel size (both checked)."""
    if len(group) != 1:
        raise DataError(f"input {what!r} holds {len(group):,} items; this job takes one map at a time")
    path = str(group[f"{slot}/path"][0])
    if not path:
        raise DataError(f"input {what!r} names no file in {slot}/path")
    try:
        check_files([ctx.file(path)], f"{slot} files")
    except DataError:
        raise DataError(f"input {what!r}: the {slot} file {ctx.file(path)} is missing or unreadable") from None
    try:
        header = read_header(ctx.file(path))
    except (CryoweaveError, OSError) as err:
        raise DataError(f"input {what!r}: {path} cannot be read as MRC ({err})") from None
    if header.nz < 2:
        raise DataError(f"input {what!r}: {path} is a 2D image of {header.ny}×{header.nx} px, not a 3D map")
    psize = float(group[f"{slot}/psize_A"][0]) if f"{slot}/psize_A" in group else 0.0
    if not (math.isfinite(psize) and psize > 0):
        raise DataError(f"input {what!r}: {slot}/psize_A is {psize:g}, not a pixel size; the map {path} needs one "
                        "(import it again with its pixel size)")
    return header, psize


def save_map(ctx: Any, group: str, slot: str, data: np.ndarray, psize: float) -> None:
    """Write a map as ``J<n>/J<n>_<slot>.mrc`` and save it, a new item, as output ``group``."""
    save_maps(ctx, group, {slot: data}, psize)


def save_maps(ctx: Any, group: str, maps: dict[str, np.ndarray], psize: float) -> None:
    """Write each map as ``J<n>/J<n>_<slot>.mrc`` and save them as one new item (one slot each) of ``group``."""
    dataset = Dataset.allocate(1, [field for slot in maps for field in result_fields(slot)])
    dataset["uid"] = generate_uids(1)
    for slot, data in maps.items():
        path = ctx.directory / f"{ctx.uid}_{slot}.mrc"
        write_mrc(path, data.astype(np.float32), pixel_size=psize, stack=False)
        dataset[f"{slot}/path"] = np.array([ctx.relative(path)], dtype=object)
        dataset[f"{slot}/shape"] = np.array(data.shape, np.uint32)
        dataset[f"{slot}/psize_A"] = psize
    ctx.save_output(group, dataset)
