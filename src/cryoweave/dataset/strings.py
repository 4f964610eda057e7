"""String columns: two storages behind one logical type.

A string column is held either as Python ``str`` objects (numpy dtype ``O``; what users see
through ``dataset[field]``) or as fixed-width UTF-8 bytes (dtype ``S<w>``; what a numpy-format
``.cs`` file holds). Loading keeps the bytes, so a million paths cost one copy instead of a
million Python objects; they are decoded the first time the column is touched from Python.

Cryo-EM string columns repeat a few values many times (a path per micrograph, one ctf type),
so conversions go through :func:`factorize`: encode or decode each distinct value once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cryoweave.errors import DatasetError

# Odd 64-bit multipliers for the row hash of fixed-width strings (any odd constants work).
_HASH_MULTIPLIERS = np.random.default_rng(0x5EED).integers(0, 2**63, 4096, dtype=np.uint64) * np.uint64(2) + 1
_SMALL = 2048  # below this many rows a plain dict pass beats vectorised tricks


def is_string(array: np.ndarray) -> bool:
    return array.dtype.kind in "OSU"


def as_text(value: Any) -> str:
    """The string a value stands for in a string column (``None`` is the empty string)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8")
    return str(value)


def factorize(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a 1-D column in order of first appearance, and each row's code.

    >>> uniques, codes = factorize(np.array(["b", "a", "b"], dtype=object))
    >>> list(uniques), codes.tolist()
    (['b', 'a'], [0, 1, 0])
    """
    if array.ndim != 1:
        raise DatasetError("only one-dimensional fields can be grouped by value")
    n = len(array)
    if array.dtype.kind == "O" or n <= _SMALL:
        return _factorize_dict(array)
    if array.dtype.kind == "S":
        return _factorize_fixed_bytes(array)
    if array.dtype.kind == "U":
        return factorize(array.astype(object))
    uniques, first, inverse = np.unique(array, return_index=True, return_inverse=True)
    return _first_seen_order(uniques, first, inverse)


def _factorize_dict(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seen: dict[Any, int] = {}
    setdefault = seen.setdefault
    values = array.tolist() if array.dtype.kind != "O" else array
    codes = np.fromiter((setdefault(v, len(seen)) for v in values), dtype=np.intp, count=len(array))
    uniques = np.empty(len(seen), dtype=array.dtype if array.dtype.kind != "O" else object)
    if array.dtype.kind == "O":
        uniques[:] = list(seen)
    else:
        uniques[:] = np.array(list(seen), dtype=array.dtype) if seen else uniques
    return uniques, codes


def _first_seen_order(uniques: np.ndarray, first: np.ndarray, inverse: np.ndarray):
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniques[order], rank[inverse.reshape(-1)]


def _factorize_fixed_bytes(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Hash each row's bytes to one u64, group the hashes, then verify that every row equals
    # the representative of its group; on a (rare) collision fall back to an exact sort.
    width = array.dtype.itemsize
    words = (width + 7) // 8
    if words > len(_HASH_MULTIPLIERS) or width == 0:
        uniques, first, inverse = np.unique(array, return_index=True, return_inverse=True)
        return _first_seen_order(uniques, first, inverse)
    if width % 8:
        padded = np.zeros(len(array), dtype=f"S{words * 8}")
        padded[:] = array
    else:
        padded = np.ascontiguousarray(array)
    hashes = padded.view(np.uint64).reshape(len(array), words) @ _HASH_MULTIPLIERS[:words]
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if np.array_equal(array[first][inverse], array):
        return _first_seen_order(array[first], first, inverse)
    uniques, first, inverse = np.unique(array, return_index=True, return_inverse=True)
    return _first_seen_order(uniques, first, inverse)


def find_invalid_utf8(array: np.ndarray) -> int | None:
    """Index of the first row of a fixed-width bytes column that is not valid UTF-8, or None."""
    if array.dtype.kind != "S" or len(array) == 0 or array.dtype.itemsize == 0:
        return None
    raw = np.ascontiguousarray(array).view(np.uint8)
    if raw.max() < 0x80:  # pure ASCII: always valid, and the usual case
        return None
    rows = np.flatnonzero((raw.reshape(len(array), -1) >= 0x80).any(axis=1))
    for i in rows.tolist():
        try:
            bytes(array[i]).decode("utf-8")
        except UnicodeDecodeError:
            return i
    return None


def to_object(array: np.ndarray) -> np.ndarray:
    """A string column as an object array of ``str`` (decoding UTF-8 bytes once per value)."""
    if array.dtype.kind == "O":
        return array
    if array.dtype.kind == "U":
        return array.astype(object)
    if array.dtype.kind != "S":
        raise DatasetError(f"cannot use a column of type {array.dtype} as strings")
    uniques, codes = factorize(array.reshape(-1))
    decoded = np.empty(len(uniques), dtype=object)
    decoded[:] = [bytes(u).decode("utf-8", errors="replace") for u in uniques]
    return decoded[codes].reshape(array.shape)


def to_fixed(array: np.ndarray) -> np.ndarray:
    """A string column as fixed-width UTF-8 bytes, ``S<w>`` with ``w`` = longest value + 1.

    The trailing NUL of the longest value matches what cryosparc-tools writes, so files are
    byte-identical where both write the same data.
    """
    if array.dtype.kind == "S":
        return _minimal_width(array)
    flat = array.reshape(-1)
    uniques, codes = factorize(flat if array.dtype.kind == "O" else flat.astype(object))
    try:
        encoded = [as_text(u).encode("utf-8") for u in uniques]
    except UnicodeEncodeError as err:
        raise DatasetError(f"string {err.object!r} cannot be written as UTF-8 "
                           "(a file name in another encoding?)") from None
    width = max((len(e) for e in encoded), default=0) + 1
    table = np.array(encoded, dtype=f"S{width}") if encoded else np.zeros(0, dtype=f"S{width}")
    return table[codes].reshape(array.shape)


def _minimal_width(array: np.ndarray) -> np.ndarray:
    """Fixed-width bytes narrowed or widened to the longest value + 1 (e.g. after a subset)."""
    width = array.dtype.itemsize
    if array.size == 0:
        return array.astype("S1")
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8).reshape(array.size, width) if width else None
    # Already minimal when no value fills the last byte and some value uses the one before.
    if raw is not None and width >= 2 and not raw[:, -1].any() and raw[:, -2].any():
        return array
    longest = int(np.strings.str_len(array).max())
    return array.astype(f"S{longest + 1}")


def empty_strings(n: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    out = np.empty((n, *shape), dtype=object)
    out.fill("")
    return out
