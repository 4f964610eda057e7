"""cryoweave: CryoSPARC-compatible datasets, result groups and projects, in the open."""

from cryoweave.dataset import (
    CSDAT_FORMAT,
    DEFAULT_FORMAT,
    NEWEST_FORMAT,
    NUMPY_FORMAT,
    Column,
    Dataset,
    Row,
    Spool,
    generate_uids,
)
from cryoweave.errors import (
    AddressError,
    CryoweaveError,
    DatasetError,
    DatasetLoadError,
    DatasetSaveError,
    FieldNotFoundError,
    FormatError,
    RowIndexError,
    SpecError,
)

__version__ = "0.1.0"

__all__ = [
    "CSDAT_FORMAT",
    "DEFAULT_FORMAT",
    "NEWEST_FORMAT",
    "NUMPY_FORMAT",
    "AddressError",
    "Column",
    "CryoweaveError",
    "Dataset",
    "DatasetError",
    "DatasetLoadError",
    "DatasetSaveError",
    "FieldNotFoundError",
    "FormatError",
    "Row",
    "RowIndexError",
    "SpecError",
    "Spool",
    "__version__",
    "generate_uids",
]
