"""Layer 1: the dataset, a table of items keyed by ``uid``, and the ``.cs`` formats.

>>> from cryoweave.dataset import Dataset
>>> d = Dataset.allocate(3, [("ctf/df1_A", "f4")])
>>> d.fields()
['uid', 'ctf/df1_A']
"""

from cryoweave.dataset.column import Column
from cryoweave.dataset.core import Dataset
from cryoweave.dataset.dtypes import Field
from cryoweave.dataset.persistence import CSDAT_FORMAT, DEFAULT_FORMAT, NEWEST_FORMAT, NUMPY_FORMAT
from cryoweave.dataset.row import Row, Spool
from cryoweave.dataset.uids import generate_uids

__all__ = [
    "CSDAT_FORMAT",
    "DEFAULT_FORMAT",
    "NEWEST_FORMAT",
    "NUMPY_FORMAT",
    "Column",
    "Dataset",
    "Field",
    "Row",
    "Spool",
    "generate_uids",
]
