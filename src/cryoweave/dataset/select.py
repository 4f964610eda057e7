"""Selecting rows by value: query masks, grouping (``split_by``), sorting and field statistics."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoweave.dataset.dtypes import dtype_notation, field_from_array
from cryoweave.dataset.parallel import parallel_map
from cryoweave.dataset.strings import as_text, factorize, is_string, to_object
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
        if a.dtype.kind == "S" and b.dtype.kind == "S":
            return bool(np.array_equal(a, b))
        return bool(np.array_equal(to_object(a), to_object(b)))
    return bool(np.array_equal(a, b))


def _values_mask(column: np.ndarray, values: Any, field: str) -> np.ndarray:
    if column.ndim != 1:
        raise DatasetError(f"cannot query field {field!r}: it holds arrays of shape {column.shape[1:]}")
    vals = np.asarray(values, dtype=object if is_string(column) else None).reshape(-1)
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
    if vals.dtype.kind in "iub" and column.dtype.kind in "iub":
        # Compare integers in the column's own type: numpy would promote u8 against i8 to
        # float64 and lose the low bits of 64-bit uids.
        try:
            vals = np.asarray(values, dtype=column.dtype).reshape(-1)
        except (OverflowError, ValueError, TypeError):
            vals = vals[(vals >= np.iinfo(column.dtype).min) & (vals <= np.iinfo(column.dtype).max)] \
                if column.dtype.kind != "b" else vals.astype(bool)
            vals = vals.astype(column.dtype)
    elif vals.dtype != column.dtype:
        return np.isin(column, vals)
    if len(vals) <= _FEW_VALUES:
        mask = np.zeros(len(column), dtype=bool)
        for v in vals:
            mask |= column == v
        return mask
    table = np.unique(vals)
    pos = np.searchsorted(table, column)
    np.minimum(pos, len(table) - 1, out=pos)
    return table[pos] == column


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
    uniques = None
    if column.dtype.kind in "OSU":  # strings: group small integer codes instead
        uniques, codes = factorize(column)
        order = np.argsort(codes.astype(np.uint32 if len(uniques) > 65535 else np.uint16), kind="stable")
        keyed = codes[order]
    else:
        order = np.argsort(column, kind="stable")
        keyed = column[order]
    # Each group is now one run of ``keyed``; stability keeps the rows of a group in order,
    # so its first row is where the value first appears.
    starts = np.flatnonzero(np.concatenate(([True], keyed[1:] != keyed[:-1]))) if n else np.zeros(0, np.intp)
    stops = np.append(starts[1:], n)
    if len(starts) == 1 or np.all(order == np.arange(n)):
        order = None  # already grouped: plain copies of contiguous blocks
    total = n * sum(a.itemsize * a[:1].size for a in dset._cols.values())
    names = list(dset._cols)
    if order is None:
        grouped = parallel_map(lambda f: dset._cols[f].copy(), names, total_bytes=total)
        first_rows = starts
    else:
        grouped = parallel_map(lambda f: dset._cols[f].take(order, axis=0), names, total_bytes=total)
        first_rows = order[starts]
    keys = to_object(uniques[keyed[starts]]) if uniques is not None else keyed[starts]
    result: dict[Any, Dataset] = {}
    for g in np.argsort(first_rows, kind="stable").tolist():
        a, b = starts[g], stops[g]
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
        if column.dtype.kind == "O":
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
