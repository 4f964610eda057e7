"""``Dataset``: a table of items keyed by a 64-bit ``uid``, one numpy array per field.

The API is that of cryosparc-tools 5.x's ``Dataset`` (same method names, arguments and
semantics), so a script written for it runs with only its import changed. Differences, each a
deliberate fix, are listed in ``docs/dataset.md``.

Columns are independent arrays: adding, dropping, renaming or selecting fields never copies
the other fields. Operations that make a new dataset (take, mask, joins ...) copy the data
they keep, so the new dataset never shares writable memory with the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from cryoweave.dataset import combine, memory, select
from cryoweave.dataset.column import Column
from cryoweave.dataset.display import dataset_html, dataset_repr
from cryoweave.dataset.dtypes import Field, check_field_name, field_from_array
from cryoweave.dataset.fieldops import FieldOps
from cryoweave.dataset.parallel import parallel_map
from cryoweave.dataset.persistence import Persistence
from cryoweave.dataset.row import Row, Spool
from cryoweave.dataset.strings import is_string, to_fixed, to_object
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import CryoweaveError, DatasetError, FieldNotFoundError


def _as_column(name: str, values: Any) -> np.ndarray:
    """A user-given value as a column array we own (copied, normalised dtype)."""
    array = np.asarray(values)
    if array.ndim == 0:
        raise DatasetError(f"field {name!r} must be an array of values, one per row, not a scalar")
    if name == "uid":
        return array.astype(np.uint64, copy=True)
    if array.dtype.kind == "U":
        return to_object(array)
    if array.dtype.kind == "O":
        return array.copy()
    try:
        field_from_array(name, array)
    except CryoweaveError as err:
        raise DatasetError(f"field {name!r}: {err}") from None
    if not array.dtype.isnative:
        return array.astype(array.dtype.newbyteorder("="))
    return array.copy()


class Dataset(FieldOps, Persistence, Mapping[str, Column]):
    """A table of items: ``uid`` plus fields named ``<result>/<field>``.

    Build one from a row count (random uids), a mapping or list of ``(name, values)``, a
    numpy record array or another dataset (deep copy); or load one from a ``.cs`` file.

    >>> d = Dataset([("uid", [1, 2, 3]), ("ctf/df1_A", [1.0, 2.0, 3.0])])
    >>> d.descr()
    [('uid', '<u8'), ('ctf/df1_A', '<f8')]
    >>> len(d.query({"uid": [2, 3]}))
    2
    """

    __slots__ = ("__dict__", "_cols", "_row_class", "_rows")
    media_type: ClassVar[str] = "application/x-cryosparc-dataset"

    # ------------------------------------------------------------------ construction
    def __init__(self, allocate: Any = 0, row_class: type[Row] = Row):
        self._row_class = row_class
        self._rows: Spool | None = None
        if isinstance(allocate, Dataset):
            self._cols = {k: v.copy() for k, v in allocate._cols.items()}
            return
        cols: dict[str, np.ndarray] = {}
        if allocate is None or isinstance(allocate, int | np.integer):
            cols["uid"] = generate_uids(int(allocate or 0))
        elif isinstance(allocate, np.ndarray):
            if allocate.dtype.names is None:
                raise DatasetError("a dataset is made from a structured (record) array, "
                                   f"not an array of {allocate.dtype}")
            for name in allocate.dtype.names:
                if not name:
                    raise DatasetError(f"record array of dtype {allocate.dtype} has an unnamed field")
                cols[name] = _as_column(name, allocate[name])
        else:
            items = allocate.items() if isinstance(allocate, Mapping) else allocate
            for name, values in items:
                if name in cols:
                    raise DatasetError(f"field {name!r} is given twice")
                check_field_name(name)
                cols[name] = _as_column(name, values)
        lengths = {len(a) for a in cols.values()}
        if len(lengths) > 1:
            detail = ", ".join(f"{k}: {len(v)}" for k, v in cols.items())
            raise DatasetError(f"all fields of a dataset must have the same length ({detail})")
        if "uid" not in cols:
            cols = {"uid": generate_uids(lengths.pop() if lengths else 0), **cols}
        self._cols = cols

    @classmethod
    def _from_cols(cls, cols: dict[str, np.ndarray], row_class: type[Row] = Row) -> Dataset:
        """Wrap arrays we own without copying or checking them (internal fast path)."""
        dset = cls.__new__(cls)
        dset._row_class = row_class
        dset._rows = None
        dset._cols = cols
        return dset

    def _new(self, cols: dict[str, np.ndarray]) -> Dataset:
        return type(self)._from_cols(cols, self._row_class)

    @classmethod
    def allocate(cls, size: int = 0, fields: Sequence[Field] = ()) -> Dataset:
        """A dataset of ``size`` rows with random uids and zeroed (or empty-string) fields."""
        return cls(size).add_fields(list(fields))

    # ------------------------------------------------------------------ mapping protocol
    def __len__(self) -> int:
        return len(self._cols["uid"])

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._cols))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._cols

    def _storage(self, name: str) -> np.ndarray:
        try:
            return self._cols[name]
        except KeyError:
            raise FieldNotFoundError(self._missing(name)) from None

    def _missing(self, name: str) -> str:
        prefix = name.split("/", 1)[0]
        near = [f for f in self._cols if f.split("/", 1)[0] == prefix][:8]
        hint = f"; fields with prefix {prefix!r}: {', '.join(near)}" if near else ""
        return f"dataset has no field {name!r}{hint}"

    def __getitem__(self, key):
        if isinstance(key, str):
            array = self._storage(key)
            if is_string(array) and array.dtype.kind != "O":  # decode the first time Python looks
                array = self._cols[key] = to_object(array)
            return array.view(Column)
        return self.rows()[key]

    def _values(self, name: str, rows: Any = slice(None)) -> np.ndarray:
        """A field's values (text decoded to ``str``) for some rows, leaving its storage as it is."""
        array = self._storage(name)[rows]
        return to_object(array) if is_string(array) else array

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self._cols:
            raise DatasetError(f"cannot set field {key!r}: it does not exist; use add_fields() first")
        self[key][...] = value

    def __delitem__(self, key: str) -> None:
        self._storage(key)
        self.drop_fields([key])

    def __eq__(self, other: object) -> bool:
        return (type(self) is type(other) and isinstance(other, Dataset) and len(self) == len(other)
                and self.descr() == other.descr()
                and all(select.columns_equal(self._cols[f], other._cols[f]) for f in self._cols))

    def is_equivalent(self, other: object) -> bool:
        """Same rows and fields with the same values, in any field order."""
        return (isinstance(other, Dataset) and len(self) == len(other)
                and set(self.descr()) == set(other.descr())
                and all(select.columns_equal(self._cols[f], other._cols[f]) for f in self._cols))

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        return {"_row_class": self._row_class, "_cols": self._cols}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._row_class = state["_row_class"]
        self._rows = None
        self._cols = state["_cols"]

    def __array__(self, dtype=None, copy=None):
        return self.to_records()

    # ------------------------------------------------------------------ fields
    def fields(self, exclude_uid: bool = False) -> list[str]:
        """Field names in order (``uid`` first unless the data put it elsewhere)."""
        return [f for f in self._cols if not (exclude_uid and f == "uid")]

    def descr(self, exclude_uid: bool = False) -> list[Field]:
        """numpy-style field descriptors; strings are ``'|O'`` whatever their storage."""
        return [field_from_array(f, a) for f, a in self._cols.items() if not (exclude_uid and f == "uid")]

    def prefixes(self) -> list[str]:
        """Distinct first components of the field names (``ctf`` for ``ctf/df1_A``), in order."""
        return list(dict.fromkeys(f.split("/", 1)[0] for f in self._cols if f != "uid"))

    def cols(self) -> dict[str, Column]:
        return {k: self[k] for k in self._cols}

    def rows(self) -> Spool:
        """All rows as ``Row`` objects (slow for large datasets: prefer column operations)."""
        if self._rows is None or len(self._rows) != len(self):
            cols = self.cols()
            self._rows = Spool(self._row_class(cols, i) for i in range(len(self)))
        return self._rows

    def _changed(self) -> Dataset:
        if self._rows is not None:
            if len(self._rows) == len(self):
                cols = self.cols()
                for row in self._rows:
                    row.cols = cols
            else:
                self._rows = None
        return self

    def _replace_cols(self, cols: dict[str, np.ndarray], copy: bool) -> Dataset:
        if copy:
            return self._new({k: v.copy() for k, v in cols.items()})
        self._cols = cols
        return self._changed()

    # ------------------------------------------------------------------ conversion
    def to_list(self, exclude_uid: bool = False) -> list[list]:
        """Rows as lists of plain Python values."""
        names = self.fields(exclude_uid)
        columns = [self._values(f).tolist() for f in names]
        return [list(row) for row in zip(*columns)] if names else [[] for _ in range(len(self))]

    def to_records(self, fixed: bool = False) -> np.recarray:
        """A numpy record array; ``fixed=True`` turns strings into fixed-width UTF-8 bytes."""
        arrays = {f: (to_fixed(a) if fixed else to_object(a)) if is_string(a) else a
                  for f, a in self._cols.items()}
        dtype = np.dtype([(f, a.dtype, a.shape[1:]) for f, a in arrays.items()])
        out = np.empty(len(self), dtype=dtype)
        for f, a in arrays.items():
            out[f] = a
        return out.view(np.recarray)

    def to_pandas(self):
        """A pandas DataFrame: one column per scalar field, ``name[i]``/``name[i,j]`` for shaped ones."""
        from cryoweave.dataset.frames import to_pandas
        return to_pandas(self)

    @classmethod
    def from_pandas(cls, frame) -> Dataset:
        """The dataset of a DataFrame made by :meth:`to_pandas` (or any frame of plain columns)."""
        from cryoweave.dataset.frames import from_pandas
        return cls._from_cols(from_pandas(frame))

    # ------------------------------------------------------------------ subsets
    def take(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """The rows at the given integer indices, in that order."""
        idx = np.asarray(indices)
        if idx.dtype.kind == "b":
            raise DatasetError("take() needs integer row indices; use mask() for a boolean mask")
        if idx.size == 0:
            idx = idx.astype(np.intp)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise DatasetError("take() needs a one-dimensional array of integer row indices, "
                               f"not {idx.dtype} of shape {idx.shape}")
        idx = memory.checked_indices(idx, len(self))
        return self._new(self._gather(idx))

    def _gather(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Every column's rows at (already checked) indices, into fresh memory."""
        nbytes = sum(a.itemsize * a[:1].size for a in self._cols.values()) * len(idx)
        taken = parallel_map(lambda a: memory.take(a, idx), list(self._cols.values()), total_bytes=nbytes)
        return dict(zip(self._cols, taken))

    def mask(self, mask: Sequence[bool] | np.ndarray) -> Dataset:
        """The rows where the boolean mask is True."""
        m = np.asarray(mask)
        if m.size == 0 and len(self) == 0:
            m = m.astype(bool).reshape(0)
        if m.shape != (len(self),):
            raise DatasetError(f"mask has shape {m.shape} but the dataset has {len(self)} rows")
        if m.dtype != np.bool_:
            raise DatasetError(f"mask must be boolean, not {m.dtype}")
        return self.take(np.flatnonzero(m))

    def slice(self, start: int = 0, stop: int | None = None, step: int = 1) -> Dataset:
        """The rows ``start:stop:step`` (out-of-range bounds are clamped)."""
        return self._new({f: a[start:stop:step].copy() for f, a in self._cols.items()})

    def subset(self, rows: Collection[Row]) -> Dataset:
        """The rows given as ``Row`` objects of this dataset."""
        return self.take([r.idx for r in rows])

    def query_mask(self, query: Mapping[str, Any], invert: bool = False) -> np.ndarray:
        """Boolean mask of the rows whose every queried field is one of the given values."""
        return select.query_mask(self, query, invert)

    def query(self, query: Mapping[str, Any] | Callable[[Row], bool]) -> Dataset:
        """Rows matching a ``{field: value or values}`` query (all fields must match), or a predicate.

        >>> d = Dataset({"uid": [1, 2, 3], "k": [5, 6, 5]})
        >>> d.query({"k": 5})["uid"].tolist()
        [1, 3]
        """
        if isinstance(query, Mapping):
            return self.take(np.flatnonzero(self.query_mask(query)))
        return self.mask(np.fromiter((bool(query(r)) for r in self.rows()), dtype=bool, count=len(self)))

    def split_by(self, field: str) -> dict[Any, Dataset]:
        """``{value: dataset of the rows with that value}`` for each distinct value, in order seen."""
        return select.split_by(self, field)

    def sort(self, field: str | Sequence[str], *, descending: bool = False) -> Dataset:
        """Rows sorted by one field or several (the first is the primary key); stable."""
        return self.take(select.sort_indices(self, field, descending))

    def stats(self) -> list[dict[str, Any]]:
        """Per-field statistics: type, min, max, mean, std, NaN count, distinct values."""
        return select.field_stats(self)

    # ------------------------------------------------------------------ combining rows
    @classmethod
    def common_fields(cls, *datasets: Dataset, assert_same_fields: bool = False) -> list[Field]:
        return combine.common_fields(datasets, assert_same_fields)

    def append(self, *others: Dataset, assert_same_fields: bool = False,
               repeat_allowed: bool = False) -> Dataset:
        """A new dataset with the rows of this one then the others (fields common to all)."""
        if not others:
            return self
        return type(self).append_many(self, *others, assert_same_fields=assert_same_fields,
                                      repeat_allowed=repeat_allowed)

    @classmethod
    def append_many(cls, *datasets: Dataset, assert_same_fields: bool = False,
                    repeat_allowed: bool = False) -> Dataset:
        return combine.append_many(cls, datasets, assert_same_fields, repeat_allowed)

    def extend(self, *others: Dataset, repeat_allowed: bool = False) -> Dataset:
        """Append the others' rows to this dataset in place (they need at least its fields)."""
        return combine.extend(self, others, repeat_allowed)

    def union(self, *others: Dataset, assert_same_fields: bool = False,
              assume_unique: bool = False) -> Dataset:
        """Rows of all datasets by uid; the first occurrence of a uid wins."""
        if not others:
            return self
        return type(self).union_many(self, *others, assert_same_fields=assert_same_fields,
                                     assume_unique=assume_unique)

    @classmethod
    def union_many(cls, *datasets: Dataset, assert_same_fields: bool = False,
                   assume_unique: bool = False) -> Dataset:
        return combine.union_many(cls, datasets, assert_same_fields)

    def interlace(self, *datasets: Dataset, assert_same_fields: bool = False) -> Dataset:
        """Alternate the rows of equal-length datasets: a0, b0, a1, b1 ..."""
        if not datasets:
            return self
        return combine.interlace(self, datasets, assert_same_fields)

    def innerjoin(self, *others: Dataset, assert_no_drop: bool = False) -> Dataset:
        """Rows whose uid is in every dataset, with the fields of all of them.

        Row order is this dataset's; a field present in several datasets takes the value of
        the last one; where a later dataset repeats a uid, its last row is used.
        """
        if not others:
            return self
        result = type(self).innerjoin_many(self, *others)
        if assert_no_drop and len(result) != len(self):
            raise DatasetError(f"innerjoin dropped {len(self) - len(result)} of {len(self)} rows "
                               "whose uid is missing from another dataset")
        return result

    @classmethod
    def innerjoin_many(cls, *datasets: Dataset) -> Dataset:
        return combine.innerjoin_many(cls, datasets)

    def replace(self, query: Mapping[str, Any], *others: Dataset, assume_disjoint: bool = False,
                assume_unique: bool = False) -> Dataset:
        """Drop the rows matching ``query`` and those whose uid is in the others, then append them."""
        return combine.replace(self, query, others, assume_disjoint)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        return dataset_repr(self)

    def _repr_html_(self) -> str:
        return dataset_html(self)

    def _ipython_key_completions_(self) -> list[str]:
        return self.fields()
