"""Datasets as pandas DataFrames and back.

A shaped field becomes one column per component, named with its index: ``ctf/shift_A[0]``,
``ctf/shift_A[1]``; ``alignments3D_multi/pose[2,1]`` for two dimensions. ``from_pandas``
regroups such columns, so ``Dataset.from_pandas(d.to_pandas()) == d``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from cryoweave.dataset.dtypes import check_shape, field_from_array
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import CryoweaveError, DatasetError

if TYPE_CHECKING:
    import pandas as pd

    from cryoweave.dataset.core import Dataset

_COMPONENT = re.compile(r"^(?P<name>.+)\[(?P<index>\d+(?:,\d+)*)\]$")


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def to_pandas(dset: Dataset) -> pd.DataFrame:
    import pandas as pd

    data = {}
    for name in dset.fields():
        column = dset[name]
        if column.ndim == 1:
            data[name] = np.asarray(column)
            continue
        for index in np.ndindex(*column.shape[1:]):
            data[f"{name}[{','.join(map(str, index))}]"] = np.asarray(column[(slice(None), *index)])
    return pd.DataFrame(data, copy=False)


def from_pandas(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    groups: dict[str, dict[tuple[int, ...], np.ndarray]] = {}
    order: list[str] = []
    for label in frame.columns:
        if not isinstance(label, str):
            raise DatasetError(f"DataFrame column {label!r} must have a string name")
        match = _COMPONENT.match(label)
        name, index = (label, ())
        if match:
            name, index = match["name"], tuple(int(i) for i in match["index"].split(","))
        if name not in groups:
            groups[name] = {}
            order.append(name)
        values = frame[label].to_numpy()
        if values.dtype.kind not in "biufc":  # text (pandas marks missing text as None or NaN)
            values = np.array(["" if _missing(v) else v for v in values.tolist()] or [], dtype=object)
        groups[name][index] = values
    cols: dict[str, np.ndarray] = {}
    for name in order:
        parts = groups[name]
        if list(parts) == [()]:
            cols[name] = np.array(parts[()], copy=True)
            continue
        if () in parts:
            raise DatasetError(f"DataFrame has both column {name!r} and indexed columns {name}[...]")
        shape = tuple(max(idx[d] for idx in parts) + 1 for d in range(len(next(iter(parts)))))
        if len(parts) != int(np.prod(shape)) or any(len(idx) != len(shape) for idx in parts):
            raise DatasetError(f"DataFrame columns {name}[...] do not fill a complete array of shape {shape}")
        try:
            check_shape(shape, name)
        except CryoweaveError as err:
            raise DatasetError(str(err)) from None
        first = next(iter(parts.values()))
        out = np.empty((len(first), *shape), dtype=np.result_type(*[p.dtype for p in parts.values()]))
        for index, values in parts.items():
            out[(slice(None), *index)] = values
        cols[name] = out
    if "uid" in cols:
        cols["uid"] = cols["uid"].astype(np.uint64)
    else:
        cols = {"uid": generate_uids(len(frame)), **cols}
    for name, array in cols.items():
        try:
            field_from_array(name, array)
        except CryoweaveError as err:
            raise DatasetError(f"DataFrame column {name!r}: {err}") from None
    return cols
