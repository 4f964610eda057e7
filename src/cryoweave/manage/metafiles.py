"""Reading ``.cs`` tables for the integrity check and for relinking: headers, path fields, their values.

A table is opened for its header only (:func:`read_header`: format, length, fields, and whether the
file holds all the rows its header promises), and for its path fields only (:func:`path_values`:
the distinct values of each ``<result>/path`` or ``*_path`` text field). Nothing else is read.

>>> is_path_field("blob/path"), is_path_field("location/micrograph_path"), is_path_field("ctf/type")
(True, True, False)
>>> under("/old/raw/a.mrc", "/old/raw"), under("/old/raw2/a.mrc", "/old/raw")
(True, False)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoweave.builder.usage import distinct_text
from cryoweave.dataset import Dataset, csdat, fileio, numpy_format
from cryoweave.dataset.strings import factorize, make_codes
from cryoweave.errors import CryoweaveError
from cryoweave.spec.results import is_path_field


def is_primary_path(name: str) -> bool:
    """``<result>/path``: the file the result's data is in (a missing one makes the result unusable)."""
    return "/" in name and name.rsplit("/", 1)[1] == "path"


def under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies in it, comparing whole components (``/a/b`` is not in ``/a/b2``)."""
    folder = folder.rstrip("/") or "/"
    if path == folder:
        return True
    return path.startswith(folder if folder == "/" else folder + "/")


def moved(path: str, old: str, new: str) -> str:
    """``path`` (in ``old``) as it is under ``new``."""
    old, new = old.rstrip("/") or "/", new.rstrip("/") or "/"
    rest = path[len(old):].lstrip("/")
    return os.path.join(new, rest) if rest else new


@dataclass
class TableHeader:
    """What a ``.cs`` file's header says, and what is wrong with the file (``problem``, empty when fine)."""

    path: Path
    problem: str = ""
    format: str = ""
    length: int = 0
    fields: list[str] = field(default_factory=list)
    text_fields: set[str] = field(default_factory=set)
    compression: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problem

    def prefixes(self) -> set[str]:
        return {f.split("/", 1)[0] for f in self.fields if "/" in f}

    def path_fields(self) -> list[str]:
        return [f for f in self.fields if f in self.text_fields and is_path_field(f)]


def read_header(path: Path) -> TableHeader:
    """The header of a ``.cs`` file, checked against the file's size (numpy format) or its column blocks
    (CSDAT, whose ``uid`` column is read); a missing, unreadable or truncated file says so in ``problem``."""
    head = TableHeader(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            if magic == numpy_format.MAGIC:
                header = numpy_format.read_header(f, str(path), consumed=magic)
                head.format, head.length = "numpy", header.length
                head.fields = list(header.dtype.names)
                head.text_fields = {k for k in head.fields if header.dtype.fields[k][0].base.kind in "SU"}
                promised = header.length * header.dtype.itemsize
                follows = os.fstat(f.fileno()).st_size - f.tell()
                if follows < promised:
                    head.problem = (f"truncated: its header promises {header.length:,} rows ({promised:,} bytes) "
                                    f"but {follows:,} bytes follow it")
                return head
            if magic == csdat.MAGIC:
                header = csdat.read_header(f, str(path))
                head.format, head.length = "csdat", header["length"]
                head.fields = [d[0] for d in header["dtype"]]
                head.text_fields = {d[0] for d in header["dtype"] if str(d[1]).lstrip("|<>=").startswith("O")}
                head.compression = header["compression"]
                f.seek(0)
                fileio.load(f, fields=["uid"])  # walks every column block: a short file fails here
                return head
        Dataset.inspect(path)  # neither magic: let the reader say what the file is
        head.problem = "not a .cs table"
    except FileNotFoundError:
        head.problem = "missing"
    except IsADirectoryError:
        head.problem = "a directory, not a .cs file"
    except OSError as err:
        head.problem = f"cannot be read ({err.strerror or err})"
    except CryoweaveError as err:
        text = str(err)
        prefix = f"cannot load dataset {path}: "
        head.problem = text[len(prefix):] if text.startswith(prefix) else text
    return head


def path_values(head: TableHeader) -> dict[str, list[str]]:
    """The distinct values of each path field of a table (only those fields are read)."""
    fields = head.path_fields()
    if not fields:
        return {}
    cols = fileio.load(head.path, fields=fields)
    return {k: distinct_text(cols[k]) for k in fields if k in cols}


def rewrite_paths(head: TableHeader, old: str, new: str) -> dict[str, int]:
    """Rewrite every path field value in ``old`` to the same path in ``new``, in place, atomically,
    keeping the file's format; the number of rows changed per field (nothing written when none)."""
    cols = fileio.load(head.path)
    changed: dict[str, int] = {}
    for name in head.path_fields():
        column = cols[name]
        if column.ndim != 1:
            continue
        uniques, codes = factorize(column)
        texts = [u.decode("utf-8", errors="replace") if isinstance(u, bytes) else str(u) for u in uniques.tolist()]
        hit = np.array([under(t, old) for t in texts], dtype=bool)
        if not hit.any():
            continue
        table = np.empty(len(texts), dtype=object)
        table[:] = [moved(t, old, new) if h else t for t, h in zip(texts, hit.tolist())]
        changed[name] = int(np.count_nonzero(hit[codes])) if len(codes) else 0
        cols[name] = make_codes(np.asarray(codes, dtype=np.uint32), table)
    if changed:
        fmt = fileio.CSDAT_FORMAT if head.format == "csdat" else fileio.NUMPY_FORMAT
        fileio.save(cols, head.path, format=fmt, compression=head.compression)
    return changed
