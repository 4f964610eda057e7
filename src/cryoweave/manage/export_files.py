"""The data files an exported table names: gathered under ``data/`` as links (or copies), paths rewritten ``>``.

Each text path field of the table (``blob/path``, ``location/micrograph_path`` …) is factorised once,
so a table of 1,000,000 particles naming a few thousand stacks costs a few thousand file look-ups.
A file of the project goes to ``data/<its project-relative path>`` (``data/J1/imported/mic_000.mrcs``);
a file outside it to ``data/external/<short hash of its folder>/<name>``. The table then names it
``>data/…``: relative to the ``.csg``'s folder, as CryoSPARC's exports do.

A link points at the file's real path (every link on the way resolved), so the export still works
when the project's own links (import jobs link raw data into ``J<n>/imported/``) change. A copy
copies the bytes: a hard link to the project's file would not survive the project's cleanup and is
not what an upload to EMPIAR needs. Within one export, a file copied once for one group is hard
linked for the next (same folder, same bytes).

>>> placer = DataPlacer(Path("/data/P1"), copy=False)                     # doctest: +SKIP
>>> placer.rewrite(dataset, Path("/data/P1/exports/groups/P1_J7_particles"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.dataset.strings import factorize, make_codes
from cryoweave.errors import DataError
from cryoweave.jobs.library.common import listing
from cryoweave.jobs.library.result_group import path_fields

SHOWN = 10


def data_name(text: str, project_dir: Path) -> tuple[str, Path]:
    """Where a table's path goes in an export (``data/…``) and the file it names.

    >>> data_name("J1/imported/a.mrcs", Path("/p"))
    ('data/J1/imported/a.mrcs', PosixPath('/p/J1/imported/a.mrcs'))
    >>> data_name("/raw/x/b.mrc", Path("/p"))[0].startswith("data/external/")
    True
    """
    path = Path(os.path.normpath(project_dir / text))  # an absolute text stays itself
    try:
        inner = path.relative_to(project_dir)
        if inner.parts:
            return f"data/{inner.as_posix()}", path
    except ValueError:
        pass
    digest = hashlib.sha1(str(path.parent).encode("utf-8")).hexdigest()[:10]
    return f"data/external/{digest}/{path.name}", path


class DataPlacer:
    """Links (or copies) the data files of the tables of one export; counts what it placed."""

    def __init__(self, project_dir: Path, *, copy: bool):
        self.project_dir, self.copy = Path(project_dir), copy
        self.files = 0
        self.bytes = 0
        self.missing_required: list[str] = []
        self.missing_other: list[str] = []
        self._copied: dict[str, Path] = {}  # real source path -> a copy already made in this export
        self._folders: set[Path] = set()  # folders made (thousands of files share a few folders)

    def rewrite(self, data: Dataset, folder: Path) -> None:
        """Place the files the table names under ``folder/data`` and rewrite its path fields ``>data/…``.

        Missing files are collected (:meth:`check`); a missing file of a field other than
        ``<result>/path`` keeps its path as it was.
        """
        for field in path_fields(data):
            raw = data._cols[field]  # the column as stored (codes, fixed bytes or str): decoded once per value
            uniques, codes = factorize(np.asarray(raw).reshape(-1))
            names = []
            for value in uniques.tolist():
                text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
                names.append(self._place(field, text, folder))
            table = np.empty(len(names), dtype=object)
            table[:] = names
            data._cols[field] = make_codes(codes.astype(np.uint32).reshape(np.shape(raw)), table)

    def check(self, where: str) -> None:
        """Refuse an export whose tables name missing files (it would be broken)."""
        if self.missing_required:
            missing = sorted(set(self.missing_required))
            raise DataError(f"cannot export {where}: {len(missing):,} data file(s) its items name are missing: "
                            f"{listing(missing, SHOWN)}; find and fix them with: cryoweave project check "
                            "(then cryoweave project relink)")

    def _place(self, field: str, text: str, folder: Path) -> str:
        if not text:
            return text
        name, source = data_name(text, self.project_dir)
        real = os.path.realpath(source)
        if not os.path.isfile(real):
            (self.missing_required if field.rsplit("/", 1)[1] == "path" else self.missing_other).append(str(source))
            return text
        target = folder / name
        if not os.path.lexists(target):
            if target.parent not in self._folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._folders.add(target.parent)
            if not self.copy:
                os.symlink(real, target)
            elif real in self._copied:
                os.link(self._copied[real], target)
            else:
                shutil.copyfile(real, target)
                self._copied[real] = target
            self.files += 1
            self.bytes += os.stat(real).st_size
        return ">" + name
