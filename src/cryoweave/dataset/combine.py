"""Combining datasets by rows: append, union, interlace, inner join on uid, replace.

Joins are sort-based on the u64 uids (both sides sorted on worker threads, then a merge by
``searchsorted``), followed by one gather per column: no Python loop over rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoweave.dataset import memory
from cryoweave.dataset.dtypes import Field, field_from_array
from cryoweave.dataset.parallel import parallel_map
from cryoweave.dataset.strings import concat_strings, is_string, to_object
from cryoweave.errors import DatasetError

if TYPE_CHECKING:
    from cryoweave.dataset.core import Dataset


def _row_bytes(cols: Mapping[str, np.ndarray]) -> int:
    return sum(a.itemsize * a[:1].size for a in cols.values())


def concat_columns(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate pieces of one field, whatever the storage of string pieces."""
    if any(is_string(a) for a in arrays):
        return concat_strings(list(arrays))
    return np.concatenate(arrays)


def common_fields(datasets: Sequence[Dataset], assert_same_fields: bool = False) -> list[Field]:
    """Fields (same name and type) present in every dataset, in the first dataset's order."""
    if not datasets:
        return []
    descrs = [d.descr() for d in datasets]
    shared = set.intersection(*(set(d) for d in descrs))
    if assert_same_fields:
        for i, descr in enumerate(descrs):
            extra = [f for f in descr if f not in shared]
            if extra or len(descr) != len(shared):
                raise DatasetError(f"dataset {i} does not have the same fields as the others: "
                                   f"common fields {sorted(shared)}, extra fields {extra}")
    return [f for f in descrs[0] if f in shared]


def _check_unique(uid_arrays: Sequence[np.ndarray], what: str) -> None:
    uids = np.concatenate(uid_arrays) if len(uid_arrays) > 1 else uid_arrays[0]
    if len(uids) > 1:
        ordered = np.sort(uids)
        dup = np.flatnonzero(ordered[1:] == ordered[:-1])
        if len(dup):
            raise DatasetError(f"cannot {what} datasets that contain the same uid more than once "
                               f"(e.g. uid {int(ordered[dup[0]])}); pass repeat_allowed=True to allow it")


def append_many(cls: type[Dataset], datasets: Sequence[Dataset], assert_same_fields: bool,
                repeat_allowed: bool) -> Dataset:
    if not datasets:
        return cls()
    first = datasets[0]
    nonempty = [d for d in datasets if len(d) > 0]
    if not nonempty:
        return cls(first)
    if not repeat_allowed:
        _check_unique([d._cols["uid"] for d in nonempty], "append")
    if len(nonempty) == 1:
        return cls(nonempty[0])
    names = [f[0] for f in common_fields(nonempty, assert_same_fields)]
    total = sum(len(d) for d in nonempty) * _row_bytes(nonempty[0]._cols)
    pieces = parallel_map(lambda f: concat_columns([d._cols[f] for d in nonempty]), names, total_bytes=total)
    return cls._from_cols(dict(zip(names, pieces)), first._row_class)


def extend(target: Dataset, others: Sequence[Dataset], repeat_allowed: bool) -> Dataset:
    others = [d for d in others if len(d) > 0]
    if not others:
        return target
    if not repeat_allowed:
        _check_unique([target._cols["uid"]] + [d._cols["uid"] for d in others], "extend")
    required = target.descr()
    for i, other in enumerate(others):
        missing = set(required) - set(other.descr())
        if missing:
            raise DatasetError(f"cannot extend: dataset {i} lacks fields {sorted(missing)}")
    target._cols = {f: concat_columns([target._cols[f]] + [d._cols[f] for d in others]) for f in target._cols}
    return target._changed()


def union_many(cls: type[Dataset], datasets: Sequence[Dataset], assert_same_fields: bool) -> Dataset:
    if not datasets:
        return cls()
    first = datasets[0]
    nonempty = [d for d in datasets if len(d) > 0]
    if not nonempty:
        return cls(first)
    names = [f[0] for f in common_fields(nonempty, assert_same_fields)]
    uids = np.concatenate([d._cols["uid"] for d in nonempty])
    _, first_rows = np.unique(uids, return_index=True)
    keep = np.zeros(len(uids), dtype=bool)
    keep[first_rows] = True  # the first occurrence of each uid, in dataset order
    bounds = np.cumsum([0] + [len(d) for d in nonempty])
    picks = [np.flatnonzero(keep[a:b]) for a, b in itertools.pairwise(bounds)]
    total = int(keep.sum()) * _row_bytes(nonempty[0]._cols)

    def gather(f: str) -> np.ndarray:
        return concat_columns([memory.take(d._cols[f], p) for d, p in zip(nonempty, picks)])

    return cls._from_cols(dict(zip(names, parallel_map(gather, names, total_bytes=total))), first._row_class)


def interlace(first: Dataset, others: Sequence[Dataset], assert_same_fields: bool) -> Dataset:
    datasets = [first, *others]
    if any(len(d) != len(first) for d in datasets):
        raise DatasetError("all datasets must be the same length to interlace: "
                           + ", ".join(str(len(d)) for d in datasets))
    _check_unique([d._cols["uid"] for d in datasets], "interlace")
    names = [f[0] for f in common_fields(datasets, assert_same_fields)]
    step = len(datasets)
    cols = {}
    for f in names:
        pieces = [d._cols[f] for d in datasets]
        if any(is_string(p) for p in pieces):
            pieces = [to_object(p) for p in pieces]
        dtype = np.result_type(*[p.dtype for p in pieces])
        out = np.empty((len(first) * step, *pieces[0].shape[1:]), dtype=dtype)
        for i, p in enumerate(pieces):
            out[i::step] = p
        cols[f] = out
    return type(first)._from_cols(cols, first._row_class)


def _sorted_with_order(uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(uids, kind="stable")
    return uids[order], order


def match_last(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each left uid: the index of its **last** occurrence in ``right``, and whether found.

    >>> match_last(np.array([5, 7, 9], np.uint64), np.array([9, 5, 5], np.uint64))
    (array([2, 0, 0]), array([ True, False,  True]))
    """
    if len(left) == len(right) and np.array_equal(left, right):
        # The same uids in the same order (a job's own files): no search needed, unless a
        # repeated uid must resolve to its last occurrence.
        ordered = np.sort(right)
        if len(ordered) < 2 or not (ordered[1:] == ordered[:-1]).any():
            return np.arange(len(left)), np.ones(len(left), dtype=bool)
    (sorted_left, left_order), (sorted_right, right_order) = parallel_map(
        _sorted_with_order, [left, right], total_bytes=(len(left) + len(right)) * 64)
    # Sorted needles make the binary searches walk memory forward.
    pos = np.searchsorted(sorted_right, sorted_left, side="right") - 1
    found_sorted = pos >= 0
    np.maximum(pos, 0, out=pos)
    if len(sorted_right):
        found_sorted &= sorted_right[pos] == sorted_left
    else:
        found_sorted[:] = False
    index = np.empty(len(left), dtype=np.intp)
    found = np.empty(len(left), dtype=bool)
    index[left_order] = right_order[pos] if len(right_order) else 0
    found[left_order] = found_sorted
    return index, found


def _join_field_order(datasets: Sequence[Dataset]) -> list[tuple[int, str]]:
    """(dataset index, field) for the joined dataset: each field from the last dataset holding it."""
    owner: dict[str, int] = {}
    types: dict[str, Field] = {}
    for i, d in enumerate(datasets):
        for f, a in d._cols.items():
            if f == "uid":
                continue
            field = field_from_array(f, a)
            if f in types and types[f] != field:
                raise DatasetError(f"cannot innerjoin datasets with fields of the same name but different "
                                   f"types: {types[f]} and {field}")
            types[f] = field
            owner[f] = i
    return [(i, f) for i, d in enumerate(datasets) for f in d._cols if f != "uid" and owner.get(f) == i]


def innerjoin_many(cls: type[Dataset], datasets: Sequence[Dataset]) -> Dataset:
    if not datasets:
        return cls()
    if len(datasets) == 1:
        return cls(datasets[0])
    first = datasets[0]
    layout = _join_field_order(datasets)
    left = first._cols["uid"]
    keep = np.ones(len(left), dtype=bool)
    indices: list[np.ndarray | None] = [None]
    for other in datasets[1:]:
        index, found = match_last(left, other._cols["uid"])
        keep &= found
        indices.append(index)
    rows = np.flatnonzero(keep)
    row_index = [rows] + [idx[rows] for idx in indices[1:]]  # type: ignore[index]
    tasks = [(0, "uid"), *layout]
    total = len(rows) * sum(_row_bytes(d._cols) for d in datasets)

    keep_all = len(rows) == len(left)  # then the first dataset's rows are copied, not gathered

    def gather(task: tuple[int, str]) -> np.ndarray:
        i, f = task
        column = datasets[i]._cols[f]
        return column.copy() if i == 0 and keep_all else memory.take(column, row_index[i])

    cols = dict(zip([f for _, f in tasks], parallel_map(gather, tasks, total_bytes=total)))
    return cls._from_cols(cols, first._row_class)


def replace(target: Dataset, query: Mapping[str, Any], others: Sequence[Dataset],
            assume_disjoint: bool) -> Dataset:
    others = [d for d in others if len(d) > 0]
    names = [f[0] for f in common_fields([target, *others], assert_same_fields=True)]
    keep = np.ones(len(target), dtype=bool)
    if not assume_disjoint and others:
        incoming = np.concatenate([d._cols["uid"] for d in others])
        _, found = match_last(target._cols["uid"], incoming)
        keep &= ~found
    if query:
        keep &= target.query_mask(query, invert=True)
    rows = np.flatnonzero(keep)
    cols = {f: concat_columns([target._cols[f].take(rows, axis=0)] + [d._cols[f] for d in others])
            for f in names}
    return type(target)._from_cols(cols, target._row_class)
