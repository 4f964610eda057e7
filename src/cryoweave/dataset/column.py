"""``Column``: the numpy array a dataset hands out for one field."""

from __future__ import annotations

import numpy as np

from cryoweave.dataset.strings import to_fixed, to_object


class Column(np.ndarray):
    """A dataset field as a numpy array that shares the dataset's memory.

    Writing into a column writes into the dataset; reductions give numpy scalars.

    >>> from cryoweave import Dataset
    >>> d = Dataset({"uid": [1, 2], "ctf/df1_A": [1.0, 3.0]})
    >>> d["ctf/df1_A"][0] = 2.0
    >>> float(d["ctf/df1_A"].mean())
    2.5
    """

    def __array_wrap__(self, obj, context=None, return_scalar=False):
        # A reduction (np.sum, np.max ...) over a column gives a scalar, not a 0-d Column.
        if obj.shape == ():
            return obj[()]
        return super().__array_wrap__(obj, context, return_scalar)

    def __setitem__(self, key, value):
        if self.dtype.kind == "O" and isinstance(value, np.ndarray) and value.dtype.kind in "SU":
            value = to_object(value)
        super().__setitem__(key, value)

    def to_fixed(self) -> np.ndarray:
        """String columns as fixed-width UTF-8 bytes (``S<w>``); other columns unchanged."""
        return to_fixed(np.asarray(self)) if self.dtype.kind in "OU" else self
