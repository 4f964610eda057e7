"""String columns: three storages behind one logical type.

A string column is held as

- Python ``str`` objects (numpy dtype ``O``): what users see through ``dataset[field]``;
- :class:`StringCodes`: integer codes into a table of the distinct values. Cryo-EM string
  columns repeat a few values many times (a path per micrograph, one ctf type), so loading
  stores 4 bytes a row instead of a 100-byte path, and row operations move codes;
- fixed-width UTF-8 bytes (``S<w>``): what a numpy-format ``.cs`` holds, kept as it is when a
  column has too many distinct values to be worth a table.

Loaded columns are decoded to ``str`` the first time Python touches them. Conversions go
through :func:`factorize`: each distinct value is encoded or decoded once.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from cryoweave.errors import DatasetError

# Odd 64-bit multipliers for the row hash of fixed-width strings (any odd constants work).
_HASH_MULTIPLIERS = np.random.default_rng(0x5EED).integers(0, 2**63, 4096, dtype=np.uint64) * np.uint64(2) + 1
_SMALL = 2048  # below this many rows a plain dict pass beats vectorised tricks


class StringCodes(np.ndarray):
    """A string column as integer codes into ``uniques``, an object array of ``str``.

    Row ``i`` holds ``uniques[codes[i]]``. Row operations (take, slice, copy, reshape) act on the
    codes and keep the table; never compare or compute with the codes as numbers.
    """

    uniques: np.ndarray

    def __array_finalize__(self, obj) -> None:
        self.uniques = getattr(obj, "uniques", None)

    def __reduce__(self):
        return (make_codes, (np.asarray(self), self.uniques))


def make_codes(codes: np.ndarray, uniques: np.ndarray) -> StringCodes:
    """A :class:`StringCodes` column from codes and the table they index."""
    out = np.asarray(codes).view(StringCodes)
    out.uniques = uniques
    return out


def plain(array: np.ndarray) -> np.ndarray:
    """The array without its :class:`StringCodes` wrapper (the codes themselves)."""
    return array.view(np.ndarray) if isinstance(array, StringCodes) else array


def is_string(array: np.ndarray) -> bool:
    return isinstance(array, StringCodes) or array.dtype.kind in "OSU"


def encode_codes(array: np.ndarray) -> StringCodes:
    """Any string column as :class:`StringCodes`."""
    if isinstance(array, StringCodes):
        return array
    uniques, codes = factorize(array.reshape(-1))
    return make_codes(codes.astype(np.uint32).reshape(array.shape), to_object(uniques))


def concat_strings(pieces: list[np.ndarray]) -> np.ndarray:
    """Concatenate pieces of a string column whatever their storages."""
    coded = [p for p in pieces if isinstance(p, StringCodes)]
    if not coded:
        kinds = {p.dtype.kind for p in pieces}
        return np.concatenate([to_object(p) for p in pieces] if len(kinds) > 1 else pieces)
    table = coded[0].uniques
    if all(isinstance(p, StringCodes) and p.uniques is table for p in pieces):
        return make_codes(np.concatenate([plain(p) for p in pieces]), table)
    index: dict[str, int] = {}
    remapped = []
    for piece in pieces:
        piece = encode_codes(piece)
        mapping = np.fromiter((index.setdefault(u, len(index)) for u in piece.uniques.tolist()),
                              dtype=np.uint32, count=len(piece.uniques))
        remapped.append(mapping[plain(piece)])
    uniques = np.empty(len(index), dtype=object)
    uniques[:] = list(index)
    return make_codes(np.concatenate(remapped), uniques)


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

    Columns of particle tables come in long runs (rows are grouped by micrograph, one ctf type
    for all), so runs are found first and only their first values are looked up.

    >>> uniques, codes = factorize(np.array(["b", "a", "b"], dtype=object))
    >>> list(uniques), codes.tolist()
    (['b', 'a'], [0, 1, 0])
    """
    if array.ndim != 1:
        raise DatasetError("only one-dimensional fields can be grouped by value")
    if isinstance(array, StringCodes):
        used, codes = factorize(plain(array))
        return array.uniques[used], codes
    n = len(array)
    if array.dtype.kind == "U":
        array = array.astype(object)
    if n <= _SMALL:
        return _factorize_dict(array)
    heads = run_starts(array)
    if heads is not None:
        uniques, head_codes = _factorize_dict(array[heads])
        return uniques, np.repeat(head_codes, np.diff(np.append(heads, n)))
    if array.dtype.kind == "O":
        return _factorize_dict(array)
    if array.dtype.kind == "S":
        return _factorize_fixed_bytes(array)
    uniques, first, inverse = np.unique(array, return_index=True, return_inverse=True)
    return _first_seen_order(uniques, first, inverse)


def run_starts(array: np.ndarray, most: float = 1 / 16) -> np.ndarray | None:
    """Indices where a new run of equal values starts, or None when there are more runs than
    ``most`` of the rows (then grouping by value is cheaper done another way)."""
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    if array.dtype.kind == "O":
        pointers = _object_pointers(array)
        if pointers is None:
            return None
        changes = pointers[1:] != pointers[:-1]  # same object: same value (the converse is checked later)
    elif array.dtype.kind in "SV" or array.ndim > 1:
        changes = _row_changes(array)
    else:
        changes = array[1:] != array[:-1]
    if changes.ndim > 1:
        changes = changes.any(axis=tuple(range(1, changes.ndim)))
    count = int(np.count_nonzero(changes)) + 1
    if count > max(16, most * n):
        return None
    starts = np.empty(count, dtype=np.intp)
    starts[0] = 0
    starts[1:] = np.flatnonzero(changes) + 1
    return starts


def _row_changes(array: np.ndarray) -> np.ndarray:
    """``changes[i]``: row ``i + 1`` may differ from row ``i`` (never False where they differ).

    The rows' bytes are compared with themselves shifted by one row, eight bytes at a time; each
    differing word is mapped back to the rows it covers. A word straddling two rows can flag an
    extra boundary, which only splits a run of equal values in two: harmless to callers.
    """
    n = len(array)
    changes = np.zeros(max(n - 1, 0), dtype=bool)
    if n < 2:
        return changes
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    width = raw.size // n
    if width < 8:  # a word would span several rows: give each row a zero-padded word of its own
        words = np.zeros(n, dtype=np.uint64)
        words.view(np.uint8).reshape(n, 8)[:, :width] = raw.reshape(n, width)
        return words[1:] != words[:-1]
    later, earlier = raw[width:], raw[:-width]
    whole = len(later) - len(later) % 8
    words = np.flatnonzero(later[:whole].view(np.uint64) != earlier[:whole].view(np.uint64))
    first_bytes = words * 8
    tail = np.flatnonzero(later[whole:] != earlier[whole:]) + whole
    changes[first_bytes // width] = True
    changes[(first_bytes + 7) // width] = True
    changes[tail // width] = True
    return changes


def _object_pointers(array: np.ndarray) -> np.ndarray | None:
    """The object addresses held by an object array, as unsigned integers (no copy, read only)."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    raw = (ctypes.c_uint64 * len(array)).from_address(array.ctypes.data)
    return np.ctypeslib.as_array(raw).copy()


def _factorize_dict(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seen: dict[Any, int] = {}
    setdefault = seen.setdefault
    values = array.tolist() if array.dtype.kind != "O" else array
    codes = np.fromiter((setdefault(v, len(seen)) for v in values), dtype=np.intp, count=len(array))
    if array.dtype.kind == "O":
        uniques = np.empty(len(seen), dtype=object)
        uniques[:] = list(seen)
    else:
        uniques = np.array(list(seen), dtype=array.dtype).reshape(len(seen), *array.shape[1:])
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
    if isinstance(array, StringCodes):
        return array.uniques[plain(array)]
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
    if array.dtype.kind == "S" and not isinstance(array, StringCodes):
        return _minimal_width(array)
    table, codes = fixed_table(array)
    return table[codes]


def fixed_table(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(table, codes)`` with ``table[codes]`` the column as minimal fixed-width UTF-8 bytes.

    Writers use the pair to build records a chunk at a time without a full bytes column.
    """
    if isinstance(array, StringCodes):
        uniques, codes = array.uniques, plain(array)
        used = np.bincount(codes.reshape(-1), minlength=len(uniques)).astype(bool) if codes.size else \
            np.zeros(len(uniques), dtype=bool)
    else:
        flat = array.reshape(-1)
        uniques, codes = factorize(flat if array.dtype.kind == "O" else flat.astype(object))
        codes = codes.reshape(array.shape)
        used = np.ones(len(uniques), dtype=bool)
    try:
        encoded = [as_text(u).encode("utf-8") if keep else b""
                   for u, keep in zip(uniques.tolist(), used.tolist())]
    except UnicodeEncodeError as err:
        raise DatasetError(f"string {err.object!r} cannot be written as UTF-8 "
                           "(a file name in another encoding?)") from None
    width = max((len(e) for e in encoded), default=0) + 1
    table = np.array(encoded, dtype=f"S{width}") if encoded else np.zeros(0, dtype=f"S{width}")
    return table, codes


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
