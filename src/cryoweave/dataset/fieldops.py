"""Changing a dataset's fields: add, keep, drop, rename, copy (a mixin of ``Dataset``).

These work in place unless ``copy=True``; in place they never copy the data of other fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoweave.dataset.dtypes import (
    Field,
    check_field_name,
    field_dtype,
    field_from_array,
    is_string_dtype,
    normalize_field,
)
from cryoweave.dataset.strings import empty_strings, encode_codes, is_string, to_object
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import DatasetError

_DTYPE_TOKEN = re.compile(r"(?:\d+(?:,\d+)*)?[<>|=]?[A-Za-z]\d*")


def new_column(field: Field, n: int) -> np.ndarray:
    """A zeroed column (empty strings for text) for a field of ``n`` rows."""
    dtype, shape = field_dtype(field)
    if is_string_dtype(dtype):
        return empty_strings(n, shape)
    return np.zeros((n, *shape), dtype=dtype)


if TYPE_CHECKING:
    from cryoweave.dataset.core import Dataset


class FieldOps:
    """Field operations of :class:`~cryoweave.dataset.Dataset` (see there for the storage)."""

    __slots__ = ()

    _cols: dict[str, np.ndarray]

    def add_fields(self, fields: Sequence[Any], dtypes: Any = None) -> Dataset:
        """Add zero-initialised fields (``""`` for strings), given as field tuples or names+dtypes.

        A field that already exists with the same type is left as it is; one that exists with
        another type is an error (cryosparc-tools silently keeps the old type).

        >>> d = Dataset(2).add_fields(["ctf/df1_A", "ctf/shift_A"], "f4,2f4")
        >>> d["ctf/shift_A"].shape
        (2, 2)
        """
        if len(fields) == 0:
            return self
        if dtypes is not None:
            notations = _DTYPE_TOKEN.findall(dtypes) if isinstance(dtypes, str) else list(dtypes)
            if len(notations) != len(fields):
                raise DatasetError(f"{len(fields)} field names but {len(notations)} dtypes: {dtypes!r}")
            descr = [normalize_field(str(f), d) for f, d in zip(fields, notations)]
        else:
            descr = [normalize_field(f[0], (f[1], f[2]) if len(f) == 3 else f[1]) for f in fields]
        n = len(self)
        for field in descr:
            name = field[0]
            if name in self._cols:
                existing = field_from_array(name, self._cols[name])
                if existing != field:
                    raise DatasetError(f"cannot add field {field}: {name!r} already exists as {existing}")
                continue
            self._cols[name] = new_column(field, n)
        return self._changed()

    def filter_fields(self, names: Collection[str] | Callable[[str], bool], *, copy: bool = False) -> Dataset:
        """Keep ``uid`` and the given fields (a collection or a predicate on the name)."""
        keep = (lambda f: f in names) if not callable(names) else names
        cols = {f: a for f, a in self._cols.items() if f == "uid" or keep(f)}
        return self._replace_cols(cols, copy)

    def filter_prefixes(self, prefixes: Collection[str], *, copy: bool = False) -> Dataset:
        """Keep ``uid`` and the fields whose prefix is one of ``prefixes``."""
        wanted = set(prefixes)
        return self.filter_fields(lambda f: f.split("/", 1)[0] in wanted and "/" in f, copy=copy)

    def filter_prefix(self, keep_prefix: str, *, rename: str | None = None, copy: bool = False) -> Dataset:
        """Keep ``uid`` and one prefix, optionally renaming that prefix."""
        result = self.filter_prefixes([keep_prefix], copy=copy)
        if rename and rename != keep_prefix:
            result.rename_prefix(keep_prefix, rename)
        return result

    def drop_fields(self, names: Collection[str] | Callable[[str], bool], *, copy: bool = False) -> Dataset:
        """Remove fields (``uid`` is never removed)."""
        drop = (lambda f: f in names) if not callable(names) else names
        return self.filter_fields(lambda f: not drop(f), copy=copy)

    def rename_fields(self, field_map: Mapping[str, str] | Callable[[str], str], *,
                      copy: bool = False) -> Dataset:
        """Rename fields by a mapping or a function of the name (``uid`` keeps its name)."""
        rename = field_map if callable(field_map) else (lambda f: field_map.get(f, f))
        cols: dict[str, np.ndarray] = {}
        for f, a in self._cols.items():
            new = f if f == "uid" else rename(f)
            check_field_name(new)
            if new in cols:
                raise DatasetError(f"renaming {f!r} to {new!r} would give two fields named {new!r}")
            cols[new] = a
        return self._replace_cols(cols, copy)

    def rename_field(self, current_name: str, new_name: str, *, copy: bool = False) -> Dataset:
        self._storage(current_name)
        return self.rename_fields({current_name: new_name}, copy=copy)

    def rename_prefix(self, old_prefix: str, new_prefix: str, *, copy: bool = False) -> Dataset:
        """Rename every ``old_prefix/...`` field to ``new_prefix/...``."""
        def rename(f: str) -> str:
            prefix, sep, rest = f.partition("/")
            return f"{new_prefix}/{rest}" if sep and prefix == old_prefix else f
        return self.rename_fields(rename, copy=copy)

    def copy_fields(self, old_fields: list[str], new_fields: list[str]) -> Dataset:
        """Copy the values of ``old_fields`` into ``new_fields``, creating them with the same type."""
        if len(old_fields) != len(new_fields):
            raise DatasetError("copy_fields needs as many new field names as old ones")
        for old, new in zip(old_fields, new_fields):
            source = self._storage(old)
            if new not in self._cols:
                self._cols[new] = source.copy()
            else:
                self[new] = source
        return self._changed()

    def reassign_uids(self) -> Dataset:
        """Give every row a new random uid."""
        self._cols["uid"] = generate_uids(len(self))
        return self._changed()

    def copy(self) -> Dataset:
        """A deep copy."""
        return type(self)(self, row_class=self._row_class)

    def to_pystrs(self, *, copy: bool = False) -> Dataset:
        """Hold every string column as Python ``str`` objects (how ``dataset[field]`` shows them)."""
        dset = self.copy() if copy else self
        for f, a in dset._cols.items():
            if is_string(a) and a.dtype.kind != "O":
                dset._cols[f] = to_object(a)
        return dset._changed()

    def to_cstrs(self, *, copy: bool = False) -> Dataset:
        """Hold every string column compactly, as codes into a table of its distinct values
        (decoded again on access). cryosparc-tools converts to offsets into its C string heap
        here; the codes are cryoweave's equivalent."""
        dset = self.copy() if copy else self
        for f, a in dset._cols.items():
            if is_string(a):
                dset._cols[f] = encode_codes(a)
        return dset._changed()
