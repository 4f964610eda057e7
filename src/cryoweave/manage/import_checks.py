"""Checking an exported job folder before anything of it is written: the plan of an import.

Everything an import will read is checked here, so that a refusal leaves the target project as it
was: ``job.json`` (kind, schema version, fields), every link in the folder (links leading out are
refused unless ``allow_links``), each group folder's ``.csg`` (its metafiles inside the folder and
present, its item counts) and every data path of its table: a ``<result>/path`` must be a ``>`` path
naming an existing file inside the folder (an absolute or project-relative path means the export is
not self-contained). Other path fields (``location/micrograph_path`` …) name files the import never
reads; their ``>`` paths are checked and placed like the others, other values are kept as text.

>>> plan = check_export(Path("/data/P2/imports/P1_J7_homo_reconstruct"))    # doctest: +SKIP
>>> [g.name for g in plan.groups]                                           # doctest: +SKIP
['particles', 'volume']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.dataset.strings import factorize
from cryoweave.errors import CryoweaveError, DataError, FormatError, RecordError, UnsafePathError
from cryoweave.formats.csg import ResultGroupFile, contained_metafiles, read_csg
from cryoweave.jobs.library.result_group import load_group, path_fields
from cryoweave.manage import exported
from cryoweave.manage.safety import check_name, check_tree, inside
from cryoweave.model import files
from cryoweave.model.records import Event


@dataclass
class GroupPlan:
    """One output group to import: its ``.csg``, its items, and the files its ``>`` paths name."""

    name: str
    folder: Path
    csg: ResultGroupFile
    data: Dataset
    files: dict[str, Path] = field(default_factory=dict)  # ">data/…" -> the file in the export
    kept_as_text: int = 0


@dataclass
class ImportPlan:
    """An exported job, checked: its record, groups, events, images and log."""

    folder: Path
    job: exported.ExportedJob
    groups: list[GroupPlan]
    events: list[Event]
    images: dict[str, Path]  # "images/x.png" -> the file
    log: Path | None
    allow_links: bool


def check_export(folder: str | os.PathLike, *, allow_links: bool = False) -> ImportPlan:
    """Check an exported job folder completely; the plan of its import (nothing is written)."""
    folder = Path(folder)
    where = f"exported job {folder}"
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give the folder that cryoweave export job made "
                        "(<project>/exports/jobs/<P>_<J>_<type>)")
    job = exported.load_exported(folder / exported.RECORD_NAME)
    check_tree(folder, where, allow_links=allow_links)
    groups = [_check_group(folder, g, allow_links) for g in job.groups]
    events, images = _check_events(folder)
    log = folder / exported.LOG_NAME
    if log.exists() and not (log.is_file() and inside(folder, log)):
        raise UnsafePathError(f"{where}: {exported.LOG_NAME} is not a regular file inside the folder")
    return ImportPlan(folder=folder, job=job, groups=groups, events=events, images=images,
                      log=log if log.exists() else None, allow_links=allow_links)


def _check_group(top: Path, entry: exported.ExportedGroup, allow_links: bool) -> GroupPlan:
    record = top / exported.RECORD_NAME
    name = check_name(entry.folder, f"{record}: group {entry.name!r}")
    if "/" in name.replace("\\", "/"):
        raise UnsafePathError(f"{record}: group {entry.name!r} names folder {name!r}; a group's folder lies "
                              "directly in the exported job's folder")
    folder = top / name
    if not folder.is_dir():
        raise DataError(f"{record}: the folder {name!r} of group {entry.name!r} is missing from {top}")
    csgs = sorted(folder.glob("*.csg"))
    preferred = folder / f"{name}_exported.csg"
    if preferred in csgs:
        csgs = [preferred]
    if len(csgs) != 1:
        raise DataError(f"{folder}: expected one .csg file (the group's), found {len(csgs)}")
    csg = read_csg(csgs[0])
    if csg.name != entry.name:
        raise RecordError(f"{csgs[0]}: it describes group {csg.name!r}, but {record} says the folder holds group "
                          f"{entry.name!r}; the export was edited")
    for metafile, path in contained_metafiles(csg).items():
        if not path.is_file():
            raise DataError(f"{csgs[0]} names the table {metafile!r}, but {path} is missing; the export is "
                            "incomplete (export the job again)")
    try:
        data = load_group(csg)
    except CryoweaveError as err:
        raise FormatError(f"{csgs[0]}: {err}") from None
    for slot, result in csg.results.items():
        if result.num_items != len(data):
            raise DataError(f"{csgs[0]}: result {slot!r} says num_items {result.num_items:,} but its table holds "
                            f"{len(data):,} items; the export was edited")
    plan = GroupPlan(name=entry.name, folder=folder, csg=csg, data=data)
    _check_paths(plan, top, allow_links)
    return plan


def _check_paths(plan: GroupPlan, top: Path, allow_links: bool) -> None:
    """Every data path of the group's table: ``>`` paths inside the folder naming existing files."""
    csg_path = plan.csg.path
    for name in path_fields(plan.data):
        uniques, _ = factorize(np.asarray(plan.data._cols[name]).reshape(-1))
        required = name.rsplit("/", 1)[1] == "path"
        for value in uniques.tolist():
            text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
            if not text:
                continue
            if not text.startswith(">"):
                if required:
                    raise UnsafePathError(f"{csg_path}: field {name} holds {text!r}, a path outside the export "
                                          "(absolute or project-relative): the export is not self-contained; "
                                          "export the job again with cryoweave export job")
                plan.kept_as_text += 1  # a file the import never reads (e.g. a micrograph left behind)
                continue
            rest = check_name(text[1:].lstrip("/"), f"{csg_path}: field {name}")
            path = plan.folder / rest
            if not os.path.isfile(path):
                raise DataError(f"{csg_path}: field {name} names {text!r}, but {path} is missing (or not a "
                                "file); the export is incomplete")
            if not allow_links and not inside(top, path):
                raise UnsafePathError(f"{csg_path}: field {name} names {text!r}, which leads out of the folder "
                                      f"(to {os.path.realpath(path)}); refused unless you allow links "
                                      "(--allow-links)")
            plan.files[text] = path


def _check_events(folder: Path) -> tuple[list[Event], dict[str, Path]]:
    path = folder / exported.EVENTS_NAME
    if not path.exists():
        return [], {}
    if not path.is_file() or not inside(folder, path):
        raise UnsafePathError(f"{path}: not a regular file inside the exported job's folder")
    events = files.load_events(path.read_bytes(), path)
    images: dict[str, Path] = {}
    for event in events:
        image = event.data.get("image")
        if not isinstance(image, str) or not image:
            continue
        name = check_name(image, f"{path}: event {event.seq}'s image")
        parts = Path(name).parts
        if len(parts) != 2 or parts[0] != exported.IMAGES:
            raise UnsafePathError(f"{path}: event {event.seq} names image {image!r}; images of an exported job "
                                  f"lie in its {exported.IMAGES}/ folder")
        file = folder / name
        if not file.is_file() or not inside(folder, file):
            raise DataError(f"{path}: event {event.seq} names image {image!r}, which is missing from {folder}")
        images[name] = file
    return events, images
