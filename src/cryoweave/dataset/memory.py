"""Memory for large columns: fresh arrays backed by transparent huge pages, and gathers into them.

Loading a million-row table takes hundreds of MiB of fresh memory at once. The kernel hands it
out one 4 KiB page fault at a time unless the region is marked for huge pages; numpy marks only
allocations of 4 MiB or more, which misses the 3.8 MB of a 1M-row float32 column. Loaded
columns of 2 MiB or more are therefore allocated here as their own anonymous mapping marked
``MADV_HUGEPAGE`` (2 MiB pages: 512x fewer faults). Each array owns its mapping, which is
unmapped when the array is freed, so dropping a field still frees its memory.
"""

from __future__ import annotations

import mmap

import numpy as np

from cryoweave.errors import RowIndexError

HUGE_MIN_BYTES = 2 * 1024 * 1024
_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array; large numeric ones on their own huge-page mapping.

    >>> empty((3, 2), np.dtype("f4")).shape
    (3, 2)
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if nbytes < HUGE_MIN_BYTES or dtype.hasobject or _HUGEPAGE is None:
        return np.empty(shape, dtype=dtype)
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(_HUGEPAGE)
    except (OSError, ValueError):
        return np.empty(shape, dtype=dtype)
    return np.frombuffer(region, dtype=dtype, count=count).reshape(shape)


def take(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``array[indices]`` along the rows (indices must already be in range).

    Results go to numpy's own allocator, not :func:`empty`: measured here, gathers gain nothing
    from huge pages (their output is written in one sequential pass) and lose the reuse of freed
    memory that numpy's allocator gives to repeated operations.
    """
    # mode="wrap": the caller checked the indices, and mode="raise" re-checks every one.
    return np.take(array, indices, axis=0, mode="wrap") if len(indices) else array[:0].copy()


def checked_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """Row indices as ``intp``, negative ones counted from the end; out-of-range ones are an error."""
    idx = indices.astype(np.intp, copy=False) if indices.dtype != np.intp else indices
    if len(idx):
        low, high = int(idx.min()), int(idx.max())
        if low < -n or high >= n:
            bad = high if high >= n else low
            raise RowIndexError(f"row index {bad} is out of range for a dataset of {n} rows")
    return idx
