"""Import Result Group (``import_result_group``): a ``.csg`` and its ``.cs`` files as an output group.

The ``.csg`` is what CryoSPARC writes next to every output group and into every exported group, and
what users hand-edit to re-import a filtered subset (a ``metafile`` pointed at a filtered ``.cs``,
``num_items`` changed to match). The job declares, while it runs, one output named as the
``.csg``'s group (``particles``) with its datatype and one slot per result, and saves the items with
their own uids, so everything made from them downstream stays traceable to the original items.

Checked before anything is written:

* the ``.csg`` reads (see :func:`cryoweave.formats.csg.read_csg`); its metafiles all lie in its own
  folder (no absolute path, no ``..``, no symlink leading out: :func:`~cryoweave.formats.csg.contained_metafiles`);
* each metafile exists, is a ``.cs`` table, and holds as many items as its ``num_items`` says;
* the data files its tables name exist. Paths in the tables starting with ``>`` are relative to the
  ``.csg``'s folder (a group exported by ``cryoweave export group`` names its data so) and are
  rewritten project-relative (when inside the project) or absolute. Such a path may not climb out of
  the folder (``..``), and a file it names that is a link leading out of the folder (a linked export
  holds links to the data of the project it came from) is refused unless ``allow_links`` is set:
  whoever made the folder chose what those links read. Other
  relative paths are project-relative and stay as they are (also looked for in the project holding
  the ``.csg`` when it lies in a job folder ``J<n>`` of another project). ``<result>/path`` files must
  exist ("Unable to find data referenced by cs files"); a missing file named by any other path field
  (``location/micrograph_path``, ``mscope_params/defect_path`` …) is reported in the log.

A result whose table lacks fields that cryoweave's result type has (an older CryoSPARC version) gets
them zero-filled, and the log says which.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.errors import CryoweaveError, DataError, DatasetLoadError, FormatError, ParamError, UnsafePathError
from cryoweave.formats.csg import ResultGroupFile, contained_metafiles, read_csg
from cryoweave.jobs.library.common import LibraryJob, listing, param
from cryoweave.spec import result_fields
from cryoweave.spec.results import is_path_field

JOB_FOLDER = re.compile(r"^J\d+$")


def complete(dataset: Dataset, name: str, dtype: str, datatype: str) -> list[str]:
    """Add (zero-filled) the fields of result ``name`` that ``dataset`` lacks; the names added."""
    try:
        fields = result_fields(name, dtype, datatype)
    except CryoweaveError:
        return []  # a result type cryoweave does not know: nothing to complete it with
    missing = [f for f in fields if f[0] not in dataset]
    dataset.add_fields(missing)
    return [f[0] for f in missing]


def path_fields(dataset: Dataset) -> list[str]:
    """The fields that hold file paths: ``<result>/path`` and ``<result>/…_path`` text fields."""
    return [f for f in dataset.fields() if is_path_field(f) and dataset[f].dtype.kind in "OSU"]


def text_of(values: Any) -> np.ndarray:
    """A column of strings (bytes decoded) as an object array of ``str``."""
    array = np.asarray(values)
    if array.dtype.kind == "S":
        return np.array([v.decode() for v in array.tolist()], dtype=object)
    return array.astype(str).astype(object)


def _item_counts(group: ResultGroupFile, files: dict[str, Path]) -> dict[str, int]:
    """Rows of each metafile (each checked to exist and to be a ``.cs`` table)."""
    counts, missing = {}, []
    for metafile, path in files.items():
        if not path.is_file():
            missing.append(str(path))
            continue
        try:
            counts[metafile] = int(Dataset.inspect(path)["length"])
        except (DatasetLoadError, OSError) as err:
            raise FormatError(f"{group.path}: metafile {metafile!r} is not a readable .cs table: {err}") from None
    if missing:
        raise DataError(f"{group.path}: {len(missing):,} of its metafiles are missing: {listing(missing)}")
    return counts


def check_num_items(group: ResultGroupFile, counts: dict[str, int]) -> None:
    """Each result's (and the items table's) ``num_items`` agrees with its files.

    A ``.csg`` with cryoweave's composed keys counts the group's items for every result (a passthrough
    points at a bigger ancestor table); that is checked after loading, in :func:`load_group`.
    """
    if group.items is not None or any(r.extra or r.prefix for r in group.results.values()):
        return
    for slot, r in group.results.items():
        held = counts[r.metafile]
        if held != r.num_items:
            raise DataError(f"{group.path}: result {slot!r} says num_items {r.num_items:,} but its metafile "
                            f"{r.metafile!r} holds {held:,} items; correct num_items (or the metafile)")


def load_group(group: ResultGroupFile) -> Dataset:
    """The group's items (its metafiles joined on uid), read from the ``.csg``'s folder."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # num_items was checked; the loader would only warn
        data = group.load(project_dir=None)
    composed = group.items is not None or any(r.extra or r.prefix for r in group.results.values())
    if composed:
        for slot, r in [*group.results.items(), *([("items", group.items)] if group.items else [])]:
            if r.num_items != len(data):
                raise DataError(f"{group.path}: {slot!r} says num_items {r.num_items:,} but the group holds "
                                f"{len(data):,} items")
    return data


def rewrite_paths(ctx: Any, group: ResultGroupFile, data: Dataset, *,
                  allow_links: bool = False) -> tuple[list[str], list[str]]:
    """Rewrite the table's ``>`` paths for this project, in place; the data files that are missing:
    (those of ``<result>/path`` fields, those of other path fields)."""
    folder = group.path.parent
    guard = _Containment(group.path, allow_links)
    elsewhere = folder.parent if JOB_FOLDER.match(folder.name) else None
    required: list[str] = []
    optional: list[str] = []
    for field in path_fields(data):
        values = text_of(data[field])
        uniques, inverse = np.unique(values.astype(str), return_inverse=True)
        new = []
        for text in uniques.tolist():
            guard.check(field, text)
            out, exists = _one_path(ctx, text, folder, elsewhere)
            new.append(out)
            if not exists:
                (required if field.rsplit("/", 1)[1] == "path" else optional).append(str(ctx.file(out)))
        data[field] = np.array(new, dtype=object)[inverse.reshape(-1)] if len(values) else values
    return sorted(set(required)), sorted(set(optional))


class _Containment:
    """Refuses ``>`` paths that climb out of the ``.csg``'s folder, and links leading out unless allowed."""

    def __init__(self, csg: Path, allow_links: bool):
        self.csg, self.allow_links = csg, allow_links
        self.top = os.path.realpath(csg.parent)

    def check(self, field: str, text: str) -> None:
        if not text.startswith(">"):
            return
        rest = text[1:].lstrip("/")
        if ".." in PurePosixPath(rest.replace("\\", "/")).parts:
            raise UnsafePathError(f"{self.csg}: {field} names {text!r}, which climbs out of the .csg's folder "
                                  "with '..'; a '>' path names a file in that folder or below it")
        real = os.path.realpath(self.csg.parent / rest)
        if self.allow_links or os.path.commonpath([real, self.top]) == self.top:
            return
        raise UnsafePathError(f"{self.csg}: {field} names {text!r}, a link to {real}, outside the .csg's folder; "
                              "links that lead out are refused unless you trust where the folder came from (set "
                              "parameter allow_links=true), or export the group with its data copied (--copy-data)")


def _one_path(ctx: Any, text: str, folder: Path, elsewhere: Path | None) -> tuple[str, bool]:
    """How this project names a path of the table, and whether its file exists."""
    if not text:
        return text, True
    if text.startswith(">"):
        target = os.path.normpath(folder / text[1:].lstrip("/"))
        return ctx.relative(target), os.path.exists(target)
    if os.path.isabs(text):
        return text, os.path.exists(text)
    if ctx.file(text).exists():
        return text, True
    if elsewhere is not None and (elsewhere / text).exists():
        return os.path.normpath(elsewhere / text), True
    return text, False


def run(ctx: Any) -> None:
    source = ctx.params.get("csg_path")
    if not source:
        raise ParamError("say which .csg file to import (parameter 'csg_path')")
    group = read_csg(source)
    files = contained_metafiles(group)
    check_num_items(group, _item_counts(group, files))
    data = load_group(group)
    required, optional = rewrite_paths(ctx, group, data, allow_links=bool(ctx.params.get("allow_links")))
    if required:
        raise DataError(f"Unable to find data referenced by cs files: {len(required):,} of the data files named by "
                        f"the tables of {group.path} are missing: {listing(required)}")
    added = {slot: complete(data, slot, r.dtype, group.type) for slot, r in group.results.items()}
    slots = [{"name": slot, "dtype": r.dtype} for slot, r in group.results.items()]
    ctx.add_output(group.name, group.type, slots=slots, title=group.title or group.name,
                   description=group.description)
    ctx.log(f"read {len(data):,} items of group {group.name!r} ({group.type}) from {group.path}"
            + (f" (written by CryoSPARC {group.version})" if group.version else ""))
    if optional:
        ctx.warning(f"{len(optional):,} of the files named by other path fields of the tables are missing (their "
                    f"paths are kept): {listing(optional)}")
    for slot, names in added.items():
        if names:
            ctx.log(f"result {slot!r} lacked {len(names)} field(s), added as zeros: {listing(names)}")
    ctx.save_output(group.name, data)


SPEC = {
    "type": "import_result_group",
    "title": "Import Result Group",
    "description": "Import an output group from a .csg file and its .cs tables (as CryoSPARC exports them, or "
                   "hand-edited), keeping the items' uids; the output is named as the group.",
    "category": "import",
    "run_outputs": "one output, named and typed as the .csg's group (e.g. particles), one slot per result",
    "params": [param("csg_path", "path", "The .csg file to import; the .cs files it names must lie in its "
                                         "folder (or below)"),
               param("allow_links", "boolean", "Accept data files that are links leading out of the .csg's "
                                               "folder (a group exported with its data linked); only for a "
                                               "folder you trust", default=False)],
}

JOBS = [LibraryJob(SPEC, run)]
