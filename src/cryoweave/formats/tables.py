"""Read and write any table file cryoweave knows, chosen by content or extension.

``.cs`` datasets in either format (detected from the first bytes), ``.csg`` result groups
(loaded as the joined group) and RELION ``.star`` particle files.

>>> TABLE_FORMATS
('numpy', 'csdat', 'csdat-raw', 'star')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryoweave.dataset import CSDAT_FORMAT, NUMPY_FORMAT, Dataset
from cryoweave.errors import CryoweaveError, FormatError

TABLE_FORMATS = ("numpy", "csdat", "csdat-raw", "star")
"""Output formats: numpy ``.cs``, CSDAT with LZ4, CSDAT uncompressed, RELION ``.star``."""


def table_kind(path: str | os.PathLike) -> str:
    """``"star"``, ``"csg"`` or ``"cs"`` for a path, from its extension (``.cs`` otherwise)."""
    suffix = Path(path).suffix.lower()
    return {".star": "star", ".csg": "csg"}.get(suffix, "cs")


def read_table(path: str | os.PathLike, *, prefixes: Sequence[str] | None = None,
               fields: Sequence[str] | None = None,
               micrograph_shape: tuple[int, int] | None = None) -> Dataset:
    """The dataset in a ``.cs``, ``.csg`` or ``.star`` file, optionally only some fields."""
    kind = table_kind(path)
    if kind == "cs":
        return Dataset.load(path, prefixes=prefixes, fields=fields)
    if kind == "csg":
        from cryoweave.formats.csg import load_csg

        dset = load_csg(path)
    else:
        from cryoweave.formats.star import read_star

        dset = read_star(path, micrograph_shape=micrograph_shape)
    if prefixes is not None or fields is not None:
        wanted, chosen = set(prefixes or ()), set(fields or ())
        dset = dset.filter_fields(lambda f: f in chosen or ("/" in f and f.split("/", 1)[0] in wanted))
    return dset


def output_format(path: str | os.PathLike, requested: str | None = None) -> str:
    """The format to write: the one requested, else ``star`` for ``.star`` and ``numpy`` otherwise."""
    if requested is not None:
        if requested not in TABLE_FORMATS:
            raise FormatError(f"unknown output format {requested!r}; "
                              f"choose one of {', '.join(TABLE_FORMATS)}")
        if (requested == "star") != (table_kind(path) == "star"):
            raise FormatError(f"output {path} has the wrong extension for format {requested!r}")
        return requested
    if table_kind(path) == "csg":
        raise FormatError(f"cannot write {path}: a .csg describes .cs files; write a .cs and export the "
                          "group instead")
    return "star" if table_kind(path) == "star" else "numpy"


def write_table(dset: Dataset, path: str | os.PathLike, format: str) -> None:
    """Write a dataset in one of :data:`TABLE_FORMATS` (atomically)."""
    if format == "star":
        from cryoweave.formats.star import write_star

        write_star(dset, path)
        return
    if format not in TABLE_FORMATS:
        raise FormatError(f"unknown output format {format!r}; choose one of {', '.join(TABLE_FORMATS)}")
    try:
        dset.save(path, format=NUMPY_FORMAT if format == "numpy" else CSDAT_FORMAT,
                  compression="lz4" if format == "csdat" else None)
    except CryoweaveError:
        raise
    except OSError as err:
        raise FormatError(f"cannot write {path}: {err.strerror or err}") from None
