"""Relinking a project to raw data that moved: links and absolute paths from one folder to another.

Import jobs link the raw files into ``J<n>/imported/`` and some tables name files by absolute path
(``location/micrograph_path`` of micrographs outside the project). When the raw data moves, every
link under the project whose target lies in the old folder is re-pointed to the same path in the new
one (a new link made under a temporary name, then renamed over the old: never a moment without a
link), and every absolute path in the ``.cs`` tables' path fields that lies in the old folder is
rewritten (the table written to a temporary file in its own format, then renamed). Folders match by
whole components: ``/old/raw`` does not match ``/old/raw2``.

Refused, with nothing changed: an archived project, a project with queued or running jobs, a new
folder that does not exist, and (unless ``force``) a relink after which some links or paths would
still name missing files (the first ten are listed). ``dry_run`` says what would change.

>>> report = relink(store, "P1", "/old/raw", "/new/raw", dry_run=True)   # doctest: +SKIP
>>> len(report.links), report.applied                                     # doctest: +SKIP
(3, False)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryoweave.errors import CryoweaveError, DataError, ParamError, StatusError
from cryoweave.manage.check_paths import walk_links
from cryoweave.manage.check_records import Snapshot, read_snapshot
from cryoweave.manage.metafiles import TableHeader, moved, path_values, read_header, rewrite_paths, under
from cryoweave.model.status import ACTIVE
from cryoweave.store import Store

SHOWN = 10


@dataclass
class LinkChange:
    """A link re-pointed (or to re-point): where it is (project-relative), its old and new target."""

    link: str
    old_target: str
    new_target: str
    target_exists: bool


@dataclass
class TableChange:
    """A ``.cs`` table whose path fields name files in the old folder: the fields, the distinct paths
    (old values), the new paths that do not exist, and (once applied) the rows changed per field."""

    metafile: str
    fields: list[str]
    paths: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class RelinkReport:
    project: str
    old: str
    new: str
    links: list[LinkChange] = field(default_factory=list)
    tables: list[TableChange] = field(default_factory=list)
    dry_run: bool = False
    applied: bool = False

    @property
    def missing(self) -> list[str]:
        """New targets and paths that do not exist."""
        return ([c.new_target for c in self.links if not c.target_exists]
                + [p for t in self.tables for p in t.missing])

    def summary(self) -> str:
        paths = sum(len(t.paths) for t in self.tables)
        rows = sum(n for t in self.tables for n in t.rows.values())
        verb = "re-pointed" if self.applied else "would re-point"
        text = (f"{self.project}: {verb} {len(self.links):,} link(s) and "
                f"{'rewrote' if self.applied else 'would rewrite'} {paths:,} distinct path(s)"
                + (f" ({rows:,} rows)" if self.applied else "")
                + f" in {len(self.tables):,} table(s) from {self.old} to {self.new}")
        if self.missing:
            text += f"; {len(self.missing):,} of the new targets do not exist"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "from": self.old, "to": self.new, "dry_run": self.dry_run,
                "applied": self.applied,
                "links": [vars(c) for c in self.links], "tables": [vars(t) for t in self.tables],
                "missing": self.missing}


def _folder(text: str | os.PathLike, what: str) -> str:
    value = os.fspath(text)
    if not value or "\x00" in value:
        raise ParamError(f"{what}: {value!r} is not a folder")
    return os.path.normpath(os.path.abspath(os.path.expanduser(value)))


def relink(store: Store, project_uid: str, old: str | os.PathLike, new: str | os.PathLike, *,
           dry_run: bool = False, force: bool = False) -> RelinkReport:
    """Re-point the project's links and absolute table paths from folder ``old`` to folder ``new``.

    >>> relink(store, "P1", "/mnt/old/raw", "/mnt/new/raw").summary()     # doctest: +SKIP
    'P1: re-pointed 3 link(s) and rewrote 0 path(s) in 0 table(s) from /mnt/old/raw to /mnt/new/raw'
    """
    old, new = _folder(old, "--from"), _folder(new, "--to")
    if old == new:
        raise ParamError(f"--from and --to are the same folder ({old}); nothing to relink")
    snap = read_snapshot(store, project_uid)
    if snap.info.archived:
        raise StatusError(f"project {snap.uid} is archived (read-only); unarchive it before relinking "
                          f"(cryoweave project unarchive {snap.uid})")
    busy = [uid for uid, r in snap.records.items() if r.status in ACTIVE]
    if busy:
        raise StatusError(f"project {snap.uid} has queued or running jobs ({', '.join(busy[:10])}); they may read "
                          "the files being relinked: wait for them or kill them first")
    if not os.path.isdir(new):
        raise ParamError(f"--to {new} does not exist (or is not a folder); move the data there first, then relink")
    root = snap.root
    if not root.is_dir():
        raise DataError(f"project {snap.uid}'s directory {root} is missing; attach it from where it is now")
    report = RelinkReport(project=snap.uid, old=old, new=new, dry_run=dry_run)
    report.links = _links_to_move(root, old, new)
    heads: dict[str, TableHeader] = {}
    for metafile in _metafiles(snap):
        head = read_header(root / metafile)
        if not head.ok or not head.path_fields():
            continue
        change = _table_change(head, metafile, old, new)
        if change is not None:
            report.tables.append(change)
            heads[metafile] = head
    missing = report.missing
    if missing and not force and not dry_run:
        shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN:,} more" if len(missing) > SHOWN else "")
        raise DataError(f"nothing relinked: {len(missing):,} of the new targets under {new} do not exist ({shown}); "
                        "check --to (or move the rest of the data there), or pass --force to re-point them anyway")
    if dry_run:
        return report
    for change in report.links:
        _repoint(root / change.link, change.new_target)
    for change in report.tables:
        change.rows = rewrite_paths(heads[change.metafile], old, new)
    report.applied = True
    return report


def _links_to_move(root: Path, old: str, new: str) -> list[LinkChange]:
    changes = []
    for entry in walk_links(root):
        target = os.readlink(entry.path)
        full = os.path.normpath(os.path.join(os.path.dirname(entry.path), target))
        if under(full, old):
            goal = moved(full, old, new)
            changes.append(LinkChange(link=os.path.relpath(entry.path, root), old_target=target, new_target=goal,
                                      target_exists=os.path.exists(goal)))
    return sorted(changes, key=lambda c: c.link)


def _metafiles(snap: Snapshot) -> list[str]:
    """Every ``.cs`` file the project's records name (each once)."""
    names: dict[str, None] = {}
    for record in snap.records.values():
        for group in record.outputs.values():
            names.update(dict.fromkeys(t.metafile for t in group.tables))
            for result in group.results.values():
                names.update(dict.fromkeys(result.metafiles))
                names.update(dict.fromkeys(s.metafile for s in result.sources))
    return list(names)


def _table_change(head: TableHeader, metafile: str, old: str, new: str) -> TableChange | None:
    try:
        values = path_values(head)
    except CryoweaveError:
        return None  # an unreadable table: the check reports it
    hits = sorted({p for paths in values.values() for p in paths if os.path.isabs(p) and under(p, old)})
    if not hits:
        return None
    chosen = set(hits)
    fields = [k for k, paths in values.items() if any(p in chosen for p in paths)]
    goals = [moved(p, old, new) for p in hits]
    return TableChange(metafile=metafile, fields=fields, paths=hits,
                       missing=[g for g in goals if not os.path.exists(g)])


def _repoint(link: Path, target: str) -> None:
    """Make ``link`` point to ``target``: a new link under a temporary name, renamed over the old one."""
    temporary = link.with_name(f".{link.name}.relink-{uuid.uuid4().hex[:8]}")
    try:
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise DataError(f"cannot re-point {link} to {target}: {err.strerror or err}") from None
