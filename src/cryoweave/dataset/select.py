"""Selecting rows by value: query masks, grouping (``split_by``), sorting and field statistics."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoweave.dataset import memory
from cryoweave.dataset.dtypes import dtype_notation, field_from_array
from cryoweave.dataset.parallel import parallel_map
from cryoweave.dataset.strings import StringCodes, as_text, factorize, is_string, plain, to_object
from cryoweave.errors import DatasetError, FieldNotFoundError

if TYPE_CHECKING:
    from cryoweave.dataset.core import Dataset

_FEW_VALUES = 16  # up to this many query values, compare directly instead of searching


def columns_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values (strings compared as text whatever their storage)."""
    if a.shape != b.shape:
        return False
    if is_string(a) or is_string(b):
        if not (is_string(a) and is_string(b)):
            return False
        if isinstance(a, StringCodes) and isinstance(b, StringCodes) and a.uniques is b.uniques:
            return bool(np.array_equal(plain(a), plain(b)))
        if a.dtype.kind == "S" and b.dtype.kind == "S" and not isinstance(a, StringCodes) \
                and not isinstance(b, StringCodes):
            return bool(np.array_equal(a, b))
        return bool(np.array_equal(to_object(a), to_object(b)))
    return bool(np.array_equal(a, b))


def _exact_integers(values: Any, dtype: np.dtype) -> np.ndarray | None:
    """Integer query values in the column's type, exactly; None if some value is not a number.

    ``np.asarray([5, 2**64 - 1])`` is float64, and comparing 64-bit uids as floats matches uids
    that differ in their low bits. Values outside the type's range cannot match and are dropped.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        raw = values.reshape(-1)
    else:
        items = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else (
            list(values) if isinstance(values, list | tuple | set | frozenset) else [values])
        exact = []
        for v in items:
            if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer | float | np.floating):
                return None
            if isinstance(v, int | np.integer) or float(v).is_integer():  # 7.0 is 7; 7.5, NaN match none
                exact.append(int(v))
        raw = np.array(exact, dtype=object)
    info = np.iinfo(dtype)
    inside = (raw >= info.min) & (raw <= info.max)
    return raw[inside].astype(dtype)


def _values_mask(column: np.ndarray, values: Any, field: str) -> np.ndarray:
    if column.ndim != 1:
        raise DatasetError(f"cannot query field {field!r}: it holds arrays of shape {column.shape[1:]}")
    vals = np.asarray(values, dtype=object if is_string(column) else None).reshape(-1)
    if isinstance(column, StringCodes):  # compare codes: look the wanted texts up in the table
        index = {u: i for i, u in enumerate(column.uniques.tolist())}
        wanted = np.array(sorted({index[t] for t in (as_text(v) for v in vals.tolist()) if t in index}),
                          dtype=np.int64)
        return _values_mask(plain(column), wanted, field)
    if is_string(column):
        texts = [as_text(v) for v in vals.tolist()]
        if column.dtype.kind == "S":
            targets = [t.encode("utf-8") for t in texts]
            if any(len(t) > column.dtype.itemsize for t in targets):
                targets = [t for t in targets if len(t) <= column.dtype.itemsize]
        else:
            targets = texts
        if len(targets) <= _FEW_VALUES:
            mask = np.zeros(len(column), dtype=bool)
            for t in targets:
                mask |= column == t
            return mask
        uniques, codes = factorize(column)
        wanted = set(targets)
        return np.fromiter((u in wanted for u in uniques.tolist()), dtype=bool, count=len(uniques))[codes]
    if column.dtype.kind in "iu":
        exact = _exact_integers(values, column.dtype)
        if exact is None:  # not all integers: numpy's own comparison rules
            return np.isin(column, vals)
        vals = exact
    elif vals.dtype != column.dtype:
        return np.isin(column, vals)
    if len(vals) <= _FEW_VALUES:
        mask = np.zeros(len(column), dtype=bool)
        for v in vals:
            mask |= column == v
        return mask
    if column.dtype.kind in "iu":
        return isin_integers(column, vals)
    return np.isin(column, vals)


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads any integers evenly


def isin_integers(column: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.isin`` for integer columns, without sorting the column.

    A bitmap over a multiplicative hash of the values rules out almost every row at once; the
    few rows left are checked exactly by binary search.

    >>> isin_integers(np.array([5, 9, 2**63 + 1], dtype=np.uint64), np.array([9, 2**63 + 1], dtype=np.uint64))
    array([False,  True,  True])
    """
    table = np.unique(values.astype(column.dtype))
    bits = int(min(24, max(10, np.ceil(np.log2(16 * len(table))))))
    shift = np.uint64(64 - bits)

    def bucket(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.uint64, copy=False) * _FIBONACCI) >> shift).astype(np.intp)

    seen = np.zeros(1 << bits, dtype=bool)
    seen[bucket(table)] = True
    candidates = np.flatnonzero(seen[bucket(column)])
    subset = column[candidates]
    pos = np.minimum(np.searchsorted(table, subset), len(table) - 1)
    mask = np.zeros(len(column), dtype=bool)
    mask[candidates[table[pos] == subset]] = True
    return mask


def query_mask(dset: Dataset, query: Mapping[str, Any], invert: bool = False) -> np.ndarray:
    missing = [f for f in query if f not in dset]
    if missing:
        raise FieldNotFoundError(f"cannot query fields not in the dataset: {', '.join(map(repr, missing))}")
    mask = np.ones(len(dset), dtype=bool)
    for field, values in query.items():
        mask &= _values_mask(dset._cols[field], values, field)
    return np.invert(mask, out=mask) if invert else mask


def split_by(dset: Dataset, field: str) -> dict[Any, Dataset]:
    column = dset._storage(field)
    if column.ndim != 1:
        raise DatasetError(f"cannot split by field {field!r}: it holds arrays of shape {column.shape[1:]}")
    n = len(column)
    uniques, codes = factorize(column)
    counts = np.bincount(codes, minlength=len(uniques))
    bounds = np.concatenate(([0], np.cumsum(counts)))
    names = list(dset._cols)
    total = n * sum(a.itemsize * a[:1].size for a in dset._cols.values())
    if n == 0 or bool(np.all(codes[1:] >= codes[:-1])):
        # Already grouped (rows of a micrograph together, as extraction writes them): each
        # group is a block of rows, copied as it is.
        grouped = parallel_map(lambda f: dset._cols[f].copy(), names, total_bytes=total)
    else:
        # Reorder every column once so each group is one block, then hand out views of the
        # blocks: one gather per column instead of one per (group, column).
        order = np.argsort(codes.astype(np.uint16 if len(uniques) <= 65536 else np.uint32), kind="stable")
        grouped = parallel_map(lambda f: memory.take(dset._cols[f], order), names, total_bytes=total)
    keys = to_object(uniques) if uniques.dtype.kind in "SU" else uniques
    result: dict[Any, Dataset] = {}
    for g in range(len(uniques)):  # codes are in order of first appearance
        a, b = bounds[g], bounds[g + 1]
        result[keys[g]] = dset._new({f: col[a:b] for f, col in zip(names, grouped)})
    return result


def sort_indices(dset: Dataset, field: str | Sequence[str], descending: bool) -> np.ndarray:
    fields = [field] if isinstance(field, str) else list(field)
    if not fields:
        raise DatasetError("sort() needs at least one field")
    keys = []
    for f in reversed(fields):  # np.lexsort: last key is the primary one
        column = dset._storage(f)
        if column.ndim != 1:
            raise DatasetError(f"cannot sort by field {f!r}: it holds arrays of shape {column.shape[1:]}")
        if isinstance(column, StringCodes):  # order by text: rank the table, sort the ranks
            rank = np.empty(len(column.uniques), dtype=np.int64)
            rank[np.argsort(column.uniques.astype(str), kind="stable")] = np.arange(len(column.uniques))
            column = rank[plain(column)]
        elif column.dtype.kind == "O":
            column = column.astype(str)
        keys.append(column)
    n = len(dset)
    if descending:  # sort the reversed rows ascending, then reverse: ties keep their order
        keys = [k[::-1] for k in keys]
    order = np.argsort(keys[0], kind="stable") if len(keys) == 1 else np.lexsort(keys)
    return (n - 1 - order)[::-1] if descending else order


def field_stats(dset: Dataset) -> list[dict[str, Any]]:
    """One dict per field: name, dtype notation, then min/max/mean/std and NaN count for numbers
    (per component for shaped fields) or the number of distinct values for strings."""
    out = []
    for name, column in dset._cols.items():
        entry: dict[str, Any] = {"field": name, "dtype": dtype_notation(field_from_array(name, column))}
        out.append(entry)
        if is_string(column):
            uniques, _ = factorize(column)
            entry["distinct"] = len(uniques)
            if len(uniques):
                entry["example"] = as_text(to_object(uniques[:1])[0])
            continue
        if len(column) == 0:
            continue
        values = column.reshape(len(column), -1).astype(np.float64) if column.dtype.kind != "c" \
            else np.abs(column.reshape(len(column), -1))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            stats = {"min": np.nanmin(values, axis=0), "max": np.nanmax(values, axis=0)}
            if name != "uid":
                stats |= {"mean": np.nanmean(values, axis=0), "std": np.nanstd(values, axis=0)}
        if column.dtype.kind in "iub":  # exact integers (float64 would round 64-bit values)
            flat = column.reshape(len(column), -1)
            stats["min"], stats["max"] = flat.min(axis=0), flat.max(axis=0)
        for key, value in stats.items():
            entry[key] = value.tolist() if column.ndim > 1 else value.tolist()[0]
        if column.dtype.kind in "fc":
            entry["nan"] = int(np.isnan(column).sum())
        elif column.ndim == 1 and name != "uid":
            entry["distinct"] = len(factorize(column)[0])
    return out
