"""Archiving a project into one tar file, restoring it, and attaching an archive on any instance.

``archive_project`` makes the project read-only, writes its folder into ``DEST.tar``,
``DEST.tar.zst`` or ``DEST.tar.gz`` under a temporary name, reads the archive back and checks every
member against what was written, and only then gives it its name. The lock file stays out, so the
archive attaches anywhere without taking anything over. Links inside the project stay links; links
to the raw data outside it (import jobs link their files into ``J<n>/imported/``) stay links too,
unless ``include_raw`` stores the files they point to, as ``tar -h`` would. The instance remembers
where each project was archived (``archive:P<n>`` in its ``instance_meta`` table), so that
``unarchive_project`` can restore a project whose directory was removed.

>>> from cryoweave.api import Instance                                         # doctest: +SKIP
>>> with Instance() as inst:                                                   # doctest: +SKIP
...     report = archive_project(inst.store, "P1", "/archive/P1.tar.zst", remove_directory=True)
...     unarchive_project(inst.store, "P1")          # the directory is back, writable
...     attach_archive(inst.store, "/archive/P1.tar.zst", "/data/imports")    # a second, writable copy
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from cryoweave.errors import CryoweaveError, DataError, NotFoundError, ParamError, StatusError
from cryoweave.manage.tarball import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    Member,
    Progress,
    archive_format,
    hash_stream,
    verify_archive,
    write_archive,
)
from cryoweave.manage.unpacking import check_members, extract
from cryoweave.model.records import utc_now
from cryoweave.store import Store, database
from cryoweave.store.attach import attach
from cryoweave.store.directory import LOCK_NAME, ProjectDirectory
from cryoweave.store.schema import instance_meta, jobs, projects
from cryoweave.store.transaction import ProjectInfo

ACTIVE = ("queued", "launched", "started", "running", "waiting")
LEFT_OUT = (LOCK_NAME, MANIFEST_NAME)
"""Files of the project folder's top that an archive leaves out."""


@dataclass(frozen=True)
class ArchiveReport:
    """What ``archive_project`` wrote: where, how big, how many members, and the archive's sha256."""

    project: str
    path: Path
    bytes: int
    data_bytes: int  # the files' content, before compression
    files: int
    folders: int
    links: int  # links kept as links
    external_links: int  # of those, links that lead out of the project (raw data)
    raw_files: int  # files stored in place of links that lead out (include_raw)
    sha256: str
    include_raw: bool
    verified: bool
    directory_removed: bool
    seconds: float

    def data(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class ArchiveLocation:
    """Where the instance remembers a project was archived."""

    path: Path
    sha256: str
    bytes: int
    created_at: str
    include_raw: bool
    directory_removed: bool


# ---------------------------------------------------------------------- what goes in
def _link_member(root: Path, name: str, path: Path, st: os.stat_result, include_raw: bool) -> Member:
    """A link of the project: a link inside stays one (made relative); one that leads out stays one,
    or with ``include_raw`` becomes the file it points to."""
    text = os.readlink(path)
    real = os.path.realpath(path)
    top = os.path.realpath(root)
    if os.path.commonpath([real, top]) == top:
        lands = os.path.normpath(os.path.join(os.path.dirname(name), text))
        if os.path.isabs(text) or lands == ".." or lands.startswith("../"):  # would break once moved
            text = os.path.relpath(os.path.relpath(real, top), os.path.dirname(name) or ".")
        return Member(name, "link", target=text, mode=0o777, mtime=st.st_mtime)
    if not include_raw:
        return Member(name, "link", target=text, mode=0o777, mtime=st.st_mtime, external=True)
    try:
        target = os.stat(real)
    except OSError:
        raise DataError(f"{path} is a link to {text}, which does not exist; --include-raw cannot store it. "
                        "Put the raw data back, or archive without --include-raw") from None
    if not stat.S_ISREG(target.st_mode):
        raise DataError(f"{path} is a link to the folder {real}; --include-raw stores the files links point to, "
                        "not folders. Archive without --include-raw and keep that folder yourself")
    return Member(name, "file", size=target.st_size, mode=target.st_mode, mtime=target.st_mtime,
                  source=Path(real), external=True)


def plan_members(root: Path, include_raw: bool = False) -> list[Member]:
    """The members of a project folder's archive, in order (folders before what they hold), nothing read yet."""
    top = os.lstat(root)
    members = [Member("", "dir", mode=top.st_mode, mtime=top.st_mtime)]
    pending = [""]
    while pending:
        folder = pending.pop()
        with os.scandir(root / folder) as found:
            entries = sorted(found, key=lambda e: e.name)
        inner = []
        for entry in entries:
            name = f"{folder}/{entry.name}" if folder else entry.name
            if not folder and entry.name in LEFT_OUT:
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                members.append(_link_member(root, name, Path(entry.path), st, include_raw))
            elif stat.S_ISDIR(st.st_mode):
                members.append(Member(name, "dir", mode=st.st_mode, mtime=st.st_mtime))
                inner.append(name)
            elif stat.S_ISREG(st.st_mode):
                members.append(Member(name, "file", size=st.st_size, mode=st.st_mode, mtime=st.st_mtime,
                                      source=Path(entry.path)))
            else:
                raise DataError(f"{entry.path} is neither a file, a folder nor a link (a socket or fifo?); "
                                "remove it before archiving the project")
        pending.extend(reversed(inner))
    return members


# ---------------------------------------------------------------------- the instance's side
def _mark_archived(store: Store, uid: str) -> bool:
    """Make the project read-only, unless jobs are active; whether it already was."""
    with store.project(uid) as tx:
        active = tx.conn.execute(select(jobs.c.number).where(
            jobs.c.project_id == tx.row.id, jobs.c.status.in_(ACTIVE))).scalars().all()
        if active:
            raise StatusError(f"project {tx.uid} has active jobs ({', '.join(f'J{n}' for n in sorted(active))}); "
                              "wait for them or kill them before archiving it")
        tx.require_held()
        if tx.row.archived:
            return True
        tx.conn.execute(update(projects).where(projects.c.id == tx.row.id).values(archived=True,
                                                                                  updated_at=utc_now()))
        tx.export_project()
        return False


def _remember(store: Store, uid: str, location: ArchiveLocation) -> None:
    key = f"archive:{uid}"
    value = json.dumps({**asdict(location), "path": str(location.path)})
    with database.transaction(store.engine) as conn:
        conn.execute(delete(instance_meta).where(instance_meta.c.key == key))
        conn.execute(insert(instance_meta).values(key=key, value=value))


def archived_location(store: Store, project_uid: str) -> ArchiveLocation | None:
    """Where this instance last archived a project (``None`` if it never did).

    >>> archived_location(inst.store, "P1").path  # doctest: +SKIP
    PosixPath('/archive/P1.tar.zst')
    """
    uid = store.get_project(project_uid).uid
    with database.transaction(store.engine, write=False) as conn:
        value = conn.execute(select(instance_meta.c.value).where(instance_meta.c.key == f"archive:{uid}")).scalar()
    if value is None:
        return None
    data = json.loads(value)
    return ArchiveLocation(**{**data, "path": Path(data["path"])})


# ---------------------------------------------------------------------- archive
def _destination(dest: str | os.PathLike, directory: Path) -> Path:
    dest = Path(dest).expanduser().absolute()
    archive_format(dest)
    if os.path.lexists(dest):
        raise ParamError(f"{dest} already exists; remove it or name another archive")
    if not dest.parent.is_dir():
        raise ParamError(f"cannot write {dest}: the folder {dest.parent} does not exist")
    top = os.path.realpath(directory)
    if os.path.commonpath([os.path.realpath(dest.parent), top]) == top:
        raise ParamError(f"{dest} is inside the project directory {directory}; put the archive elsewhere")
    return dest


def _publish(partial: Path, dest: Path) -> None:
    """Give the verified archive its name, never replacing a file that appeared there meanwhile."""
    try:
        os.link(partial, dest)
    except FileExistsError:
        raise ParamError(f"{dest} already exists; remove it or name another archive") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(dest):
            raise ParamError(f"{dest} already exists; remove it or name another archive") from None
        os.rename(partial, dest)
        return
    partial.unlink()


def archive_project(store: Store, project_uid: str, dest: str | os.PathLike, *, include_raw: bool = False,
                    remove_directory: bool = False, progress: Progress | None = None) -> ArchiveReport:
    """Write a project's folder into a verified tar archive and leave the project read-only.

    ``dest`` ends in ``.tar``, ``.tar.zst`` or ``.tar.gz`` and must not exist. The archive is read
    back and every member compared (name, type, size, link target, sha256) before it gets its name;
    with ``remove_directory`` the project's folder is then deleted (the project stays listed,
    archived; :func:`unarchive_project` restores it). ``progress(done, total)`` follows the bytes.

    >>> report = archive_project(inst.store, "P1", "/archive/P1.tar.zst")  # doctest: +SKIP
    >>> report.verified, report.files                                      # doctest: +SKIP
    (True, 42)
    """
    started = time.monotonic()
    info = store.get_project(project_uid)
    directory = info.directory
    dest = _destination(dest, directory)
    was_archived = _mark_archived(store, info.uid)
    partial = None
    try:
        members = plan_members(directory, include_raw)
        name = dest.parent / f".partial-{secrets.token_hex(4)}-{dest.name}"  # the same suffix, so the same format
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the mode an ordinary file gets
        partial = name
        manifest = {"version": MANIFEST_VERSION, "project": info.uid, "title": info.title,
                    "instance_id": store.instance_id, "folder": directory.name,
                    "created_at": utc_now().isoformat(), "include_raw": include_raw}
        digest, size = write_archive(partial, archive_format(dest), directory.name, members, manifest, progress)
        written = verify_archive(partial)
        if written["files"] != [m.manifest() for m in members]:
            raise DataError(f"archive {dest}: what was read back differs from what was written; not kept")
        _publish(partial, dest)
    except BaseException:
        if partial is not None:
            partial.unlink(missing_ok=True)
        if not was_archived:
            with suppress(CryoweaveError):  # the error that stopped the archive is the one to report
                store.update_project(info.uid, archived=False)
        raise
    _remember(store, info.uid, ArchiveLocation(dest, digest, size, manifest["created_at"], include_raw,
                                               remove_directory))
    if remove_directory:
        try:
            shutil.rmtree(directory)
        except OSError as err:
            raise DataError(f"the archive {dest} is written and verified, but {directory} could not be removed "
                            f"completely ({err}); remove the rest yourself") from None
    return ArchiveReport(
        project=info.uid, path=dest, bytes=size, data_bytes=sum(m.size for m in members if m.kind == "file"),
        files=sum(m.kind == "file" for m in members), folders=sum(m.kind == "dir" for m in members),
        links=sum(m.kind == "link" for m in members),
        external_links=sum(m.kind == "link" and m.external for m in members),
        raw_files=sum(m.kind == "file" and m.external for m in members),
        sha256=digest, include_raw=include_raw, verified=True, directory_removed=remove_directory,
        seconds=round(time.monotonic() - started, 3))


# ---------------------------------------------------------------------- extract, unarchive, attach
def _unpack(archive: Path, target: Path, top: str, allow_links: bool,
            accept: Callable[[dict[str, Any] | None], None] | None = None) -> Path:
    """Extract into a temporary sibling of ``target``, check, then rename into place; nothing left on failure."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".cryoweave-extract-", dir=target.parent))
    except OSError as err:
        raise ParamError(f"cannot extract into {target.parent}: {err.strerror or err}") from None
    try:
        manifest = extract(archive, tmp, allow_links, skip=(LOCK_NAME,))
        if accept is not None:
            accept(manifest)
        if os.path.lexists(target):
            raise ParamError(f"{target} already exists; remove it or extract elsewhere")
        os.rename(tmp / top, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hash_stream(f)[0]


def _archive_path(archive: str | os.PathLike) -> Path:
    path = Path(archive).expanduser().absolute()
    archive_format(path)
    if not path.is_file():
        raise NotFoundError(f"archive {path} does not exist")
    return path


def extract_archive(archive: str | os.PathLike, dest_parent: str | os.PathLike, *,
                    allow_links: bool = False) -> Path:
    """Extract a project archive safely into a new folder inside ``dest_parent``; that folder.

    Every member is checked before anything is written (no absolute names, no ``..``, one top
    folder, only files, folders and links, no link leading out unless ``allow_links``, nothing
    written through a link); the files are checked against the archive's manifest. On any refusal
    nothing is left behind (:class:`UnsafePathError`, :class:`DataError`).

    >>> extract_archive("/archive/P1.tar.zst", "/data/imports")  # doctest: +SKIP
    PosixPath('/data/imports/apoferritin')
    """
    path = _archive_path(archive)
    top, _ = check_members(path, allow_links)
    target = Path(dest_parent).expanduser().absolute() / top
    if os.path.lexists(target):
        raise ParamError(f"{target} already exists; remove it or extract elsewhere (--to)")
    return _unpack(path, target, top, allow_links)


def attach_archive(store: Store, archive: str | os.PathLike, dest_parent: str | os.PathLike, *,
                   allow_links: bool = False) -> ProjectInfo:
    """Extract a project archive under ``dest_parent`` and attach the copy, writable, with a new project id.

    >>> attach_archive(inst.store, "/archive/P1.tar.zst", "/data/imports").uid  # doctest: +SKIP
    'P2'
    """
    folder = extract_archive(archive, dest_parent, allow_links=allow_links)
    try:
        info = attach(store, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return store.update_project(info.uid, archived=False) if info.archived else info


def unarchive_project(store: Store, project_uid: str, *, source: str | os.PathLike | None = None,
                      allow_links: bool = False) -> Path:
    """Make an archived project writable again, first restoring its directory from its archive if it is gone.

    The archive is ``source``, or where the project was last archived. It is extracted safely next
    to the directory's old place, checked against its manifest (which must name this project of
    this instance), and renamed into place. Links that lead out of the project (raw data) are
    extracted when the archive is byte for byte the one this instance wrote (its sha256 is
    remembered), or with ``allow_links``.

    >>> unarchive_project(inst.store, "P1")  # doctest: +SKIP
    PosixPath('/data/projects/apoferritin')
    """
    info = store.get_project(project_uid)
    directory = info.directory
    if os.path.lexists(directory):
        if source is not None:
            raise ParamError(f"{info.uid}'s directory {directory} is still there; an archive (--from) restores only "
                             "a project whose directory was removed")
        store.update_project(info.uid, archived=False)
        return directory
    known = archived_location(store, info.uid)
    if source is None:
        if known is None:
            raise NotFoundError(f"{info.uid}'s directory {directory} is gone and this instance knows no archive of "
                                f"it; name one: cryoweave project unarchive {info.uid} --from ARCHIVE")
        source = known.path
    path = _archive_path(source)
    if known is not None and path == known.path and _sha256(path) == known.sha256:
        allow_links = True  # byte for byte the archive this instance wrote: its links are the project's own

    def accept(manifest: dict[str, Any] | None) -> None:
        if manifest is None:
            raise DataError(f"archive {path} has no manifest ({MANIFEST_NAME}): it was not written by cryoweave "
                            f"project archive, so it cannot restore {info.uid}; attach it instead "
                            "(cryoweave project attach ARCHIVE --to FOLDER)")
        if (manifest.get("project"), manifest.get("instance_id")) != (info.uid, store.instance_id):
            raise ParamError(f"archive {path} holds {manifest.get('project')} ({manifest.get('title')!r}) of "
                             f"another instance or project, not {info.uid}; attach it instead")

    top, _ = check_members(path, allow_links)
    _unpack(path, directory, top, allow_links, accept)
    ProjectDirectory(directory).write_lock(store.instance_id, str(store.settings.home),
                                           store.settings.database_display)
    store.update_project(info.uid, archived=False)
    return directory
