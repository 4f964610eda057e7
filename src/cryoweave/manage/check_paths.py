"""The integrity check's third part: the data files the tables name, and the links in job folders.

The tables read are the final version of each output group's own table and every passthrough source
(each once, and only their path fields: ``<result>/path`` and ``*_path`` text fields). Each distinct
path is looked up once (:class:`FileLookup`): project-relative, absolute, or (``>name``) relative to
the table's folder. A missing ``<result>/path`` file is an error (the result's data cannot be read);
a missing file named by another path field (``location/micrograph_path``) is a warning.

Links in job folders (``J<n>/imported/`` holds links to the raw data) whose targets are gone are
reported with their targets; when the data moved, ``cryoweave project relink`` re-points them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from cryoweave.errors import CryoweaveError
from cryoweave.manage.check_outputs import Headers
from cryoweave.manage.check_records import Snapshot
from cryoweave.manage.metafiles import is_primary_path, path_values
from cryoweave.manage.problems import Problem, ProblemKind, Severity

EXAMPLES = 3


class FileLookup:
    """Whether files exist, each absolute path looked up once."""

    def __init__(self) -> None:
        self.known: dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        found = self.known.get(path)
        if found is None:
            found = self.known[path] = os.path.exists(path)
        return found


def data_tables(snap: Snapshot) -> list[str]:
    """The tables whose data paths are checked: final versions of each group's own table and of each
    result it made, and every passthrough source, each once, in job order."""
    names: dict[str, None] = {}
    for record in snap.records.values():
        for group in record.outputs.values():
            if not group.tables:
                continue
            names[group.tables[-1].metafile] = None
            for result in group.results.values():
                if result.passthrough:
                    names.update(dict.fromkeys(s.metafile for s in result.sources))
                elif result.metafiles:
                    names[result.metafiles[-1]] = None
    return list(names)


def absolute(root: Path, metafile: str, path: str) -> str:
    """A path as a table holds it, made absolute: ``>name`` beside the table, else project-relative."""
    if path.startswith(">"):
        return os.path.normpath(os.path.join(root, os.path.dirname(metafile), path[1:]))
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))


def relink_hint(snap: Snapshot, targets: list[str]) -> str:
    """What to do about files that are gone: restore them, or relink from the folder they were in."""
    absolute_targets = [t for t in targets if os.path.isabs(t)]
    if not absolute_targets:
        return "restore the files (or clear and re-run the job that made them)"
    try:
        common = os.path.commonpath([os.path.dirname(t) for t in absolute_targets])
    except ValueError:
        common = "OLD"
    return (f"restore the files; if they moved, re-point the project at their new place: cryoweave project "
            f"relink {snap.uid} --from {common} --to NEW_FOLDER")


def check_data_paths(snap: Snapshot, headers: Headers, exists: FileLookup,
                     progress: Callable[[], None] | None = None) -> list[Problem]:
    """Every file named in the path fields of the data tables exists."""
    problems = []
    for metafile in data_tables(snap):
        head = headers(metafile)
        if progress is not None:
            progress()
        if not head.ok:
            continue  # reported with the table or the passthrough
        try:
            values = path_values(head)
        except CryoweaveError as err:
            problems.append(Problem(ProblemKind.METAFILE, metafile, f"its path fields cannot be read: {err}",
                                    "restore the file, or clear and re-run the job that made it"))
            continue
        for field, paths in values.items():
            missing = [(p, full) for p in paths if p for full in [absolute(snap.root, metafile, p)]
                       if not exists(full)]
            if not missing:
                continue
            examples = []
            targets = []
            for shown, full in missing:
                target = _link_target(full)
                if target or os.path.isabs(shown):  # only these can have moved with the raw data
                    targets.append(target or full)
                if len(examples) < EXAMPLES:
                    examples.append(f"{shown} (a link to {target}, which is missing)" if target else shown)
            more = f" and {len(missing) - len(examples):,} more" if len(missing) > len(examples) else ""
            primary = is_primary_path(field)
            effect = "its data cannot be read" if primary else "jobs that need these files will fail"
            problems.append(Problem(ProblemKind.DATA_PATH, f"{metafile} {field}",
                                    f"{len(missing):,} of the {len(paths):,} files it names are missing: "
                                    f"{', '.join(examples)}{more}; {effect}", relink_hint(snap, targets),
                                    severity=Severity.ERROR if primary else Severity.WARNING))
    return problems


def _link_target(path: str) -> str:
    """Where a link on the way to ``path`` points (absolute), if ``path`` or one of its folders is a link."""
    current = path
    while True:
        if os.path.islink(current):
            target = os.readlink(current)
            return os.path.normpath(os.path.join(os.path.dirname(current), target))
        parent = os.path.dirname(current)
        if parent == current:
            return ""
        current = parent


def walk_links(folder: Path) -> Iterator[os.DirEntry]:
    """Every link under ``folder`` (links to folders are not followed)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            yield entry
        elif entry.is_dir(follow_symlinks=False):
            yield from walk_links(Path(entry.path))


def check_links(snap: Snapshot, exists: FileLookup, progress: Callable[[], None] | None = None) -> tuple[list[Problem],
                                                                                                          int]:
    """Broken links in each job's folder (one problem per job); and how many links there are."""
    problems, count = [], 0
    for uid in snap.records:
        broken: list[tuple[str, str]] = []
        for entry in walk_links(snap.root / uid):
            count += 1
            if not exists(os.path.normpath(entry.path)):
                target = os.readlink(entry.path)
                broken.append((os.path.relpath(entry.path, snap.root),
                               os.path.normpath(os.path.join(os.path.dirname(entry.path), target))))
        if progress is not None:
            progress()
        if broken:
            shown = ", ".join(f"{name} -> {target}" for name, target in broken[:EXAMPLES])
            more = f" and {len(broken) - EXAMPLES:,} more" if len(broken) > EXAMPLES else ""
            problems.append(Problem(ProblemKind.LINK, f"{uid}/",
                                    f"{len(broken):,} link(s) point to files that are missing: {shown}{more}",
                                    relink_hint(snap, [t for _, t in broken])))
    return problems, count
