"""Row-wise access to a dataset: ``Row`` (one item as a mapping) and ``Spool`` (a list of rows).

Rows are convenient and slow; on large datasets use column operations instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

import numpy as np

from cryoweave.errors import DatasetError


class Row(Mapping):
    """One item of a dataset: ``row["ctf/df1_A"]`` reads and writes the dataset in place."""

    __slots__ = ("__dict__", "cols", "idx")

    def __init__(self, cols: dict[str, np.ndarray], idx: int):
        self.idx = idx
        self.cols = cols

    def __array__(self, dtype=None, copy=None):
        # numpy must treat a row as one object, not as a sequence of its fields.
        out = np.empty((), dtype=object)
        out[()] = self
        return out

    def __len__(self) -> int:
        return len(self.cols)

    def __getitem__(self, key: str):
        return self.cols[key][self.idx]

    def __setitem__(self, key: str, value) -> None:
        self.cols[key][self.idx] = value

    def __contains__(self, key: object) -> bool:
        return key in self.cols

    def __iter__(self):
        return iter(self.cols)

    def item(self, key: str, default=None):
        """The value of a field as a plain Python value (``default`` if the field is absent)."""
        return self.cols[key].item(self.idx) if key in self.cols else default

    def to_list(self, exclude_uid: bool = False) -> list:
        return [col.item(self.idx) if col.ndim == 1 else col[self.idx].tolist()
                for key, col in self.cols.items() if not (exclude_uid and key == "uid")]

    def to_dict(self) -> dict[str, Any]:
        return {key: col.item(self.idx) if col.ndim == 1 else col[self.idx].tolist()
                for key, col in self.cols.items()}

    def from_dict(self, values: Mapping[str, Any]) -> None:
        """Set every field of the row from a mapping that holds all of them."""
        for key in self.cols:
            self[key] = values[key]

    def __repr__(self) -> str:
        body = "".join(f"\n    ('{k}', {self[k]!r})," for k in self)
        return f"{type(self).__name__}([{body}\n])"

    def _ipython_key_completions_(self):
        return list(self.cols)


R = TypeVar("R", bound=Row)


class Spool(list[R], Generic[R]):
    """A list of rows with the splitting and batching helpers of cryosparc-tools' ``Spool``."""

    DEFAULT_RNG = np.random.default_rng()

    @classmethod
    def set_default_random(cls, rng: np.random.Generator) -> None:
        cls.DEFAULT_RNG = rng

    def __init__(self, items: Iterable[R] = (), rng: np.random.Generator | None = None):
        super().__init__(items)
        self.indices: np.ndarray | None = None
        self.spool_index = 0
        self.random = rng or self.DEFAULT_RNG

    def set_random(self, rng: np.random.Generator) -> None:
        self.random = rng

    def _sub(self, items: Iterable[R]) -> Spool[R]:
        return Spool(items, rng=self.random)

    def split(self, num: int, random: bool = True, prefix: str | None = None):
        """Two spools: ``num`` rows, then the rest; optionally set ``{prefix}/split`` to 0/1."""
        idxs = self.random.permutation(len(self)) if random else np.arange(len(self))
        first, second = self._sub(self[i] for i in idxs[:num]), self._sub(self[i] for i in idxs[num:])
        if prefix is not None:
            for value, part in ((0, first), (1, second)):
                for row in part:
                    row[f"{prefix}/split"] = value
        return first, second

    def split_half_in_order(self, prefix: str, random: bool = True):
        """Assign ``{prefix}/split`` 0 or 1 to every row (randomly or alternating), keep order."""
        values = self.random.integers(0, 2, len(self)) if random else np.arange(len(self)) % 2
        for row, value in zip(self, values.tolist()):
            row[f"{prefix}/split"] = value
        field = f"{prefix}/split"
        return self._sub(r for r in self if r[field] == 0), self._sub(r for r in self if r[field] == 1)

    def split_into_quarter(self, num: int):
        return self.split(num, random=True)

    def split_by_splits(self, prefix: str = "alignments"):
        field = "split" if prefix is None else f"{prefix}/split"
        return self._sub(r for r in self if r[field] == 0), self._sub(r for r in self if r[field] == 1)

    def split_from_field(self, field: str, vals: tuple[Any, Any] = (0, 1)):
        return (self._sub(r for r in self if r[field] == vals[0]),
                self._sub(r for r in self if r[field] == vals[1]))

    def split_by(self, field: str) -> dict[Any, list[R]]:
        groups: dict[Any, list[R]] = {}
        for row in self:
            groups.setdefault(row[field], []).append(row)
        return groups

    def get_random_subset(self, num: int) -> list[R]:
        if num > len(self):
            raise DatasetError(f"cannot take {num} random rows from a spool of {len(self)}")
        return [self[i] for i in self.random.choice(len(self), size=num, replace=False)]

    def setup_spooling(self, random: bool = True) -> None:
        self.indices = self.random.permutation(len(self)) if random else np.arange(len(self))
        self.spool_index = 0

    def spool(self, num: int, peek: bool = False) -> list[R]:
        """``num`` rows in the spool's (random) order, advancing unless ``peek``; wraps around."""
        if self.indices is None:
            self.setup_spooling()
        assert self.indices is not None
        if num >= len(self):
            return list(self)
        current = np.arange(self.spool_index, self.spool_index + num) % len(self.indices)
        if not peek:
            self.spool_index = (self.spool_index + num) % len(self.indices)
        return [self[self.indices[i]] for i in current]

    def make_batches(self, num: int = 200) -> list[list[R]]:
        return [self[i : i + num] for i in range(0, len(self), num)]

    def __str__(self) -> str:
        return f"{type(self).__name__} object with {len(self)} items."
