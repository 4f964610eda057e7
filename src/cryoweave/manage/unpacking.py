"""Extracting a project archive safely: every member checked before anything is written.

An archive comes from elsewhere, so each member is checked (:class:`MemberCheck`) before it is
extracted: a relative name that stays in the archive's one top folder, only files, folders and links
(no devices or fifos; hard links only to a file already extracted from it), no link that leads out
of the project folder unless the caller trusts the archive (``allow_links``), and never a member
written through a link or a file. Files are created new, each folder on the way is one made here,
and the members are compared with the archive's manifest at the end.

>>> top, has_manifest = check_members(Path("/archives/P1.tar.zst"))  # doctest: +SKIP
>>> extract(Path("/archives/P1.tar.zst"), Path("/data/.tmp-extract"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import Any

from cryoweave.errors import DataError, UnsafePathError
from cryoweave.manage.tarball import MANIFEST_NAME, compare, hash_stream, iterate, member_parts, parse_manifest, reading


class MemberCheck:
    """The checks every member passes before it is extracted (see :func:`extract`)."""

    def __init__(self, path: Path, allow_links: bool):
        self.where, self.allow_links = f"archive {path}", allow_links
        self.top: str | None = None
        self.seen: dict[str, str] = {}  # member name (with the top folder) -> dir / file / link

    def check(self, info: tarfile.TarInfo) -> tuple[tuple[str, ...], str]:
        """A member's name parts and kind (``dir``, ``file``, ``link``, ``hardlink``); refusals raise."""
        parts = member_parts(info.name, self.where)
        if not parts:
            if info.isdir():
                return parts, "dir"
            raise UnsafePathError(f"{self.where}: the member {info.name!r} has no name")
        if self.top is None:
            self.top = parts[0]
        elif parts[0] != self.top:
            raise UnsafePathError(f"{self.where}: it holds more than one top folder ({self.top}, {parts[0]}); "
                                  "a project archive holds the project's folder only")
        name = "/".join(parts)
        if len(parts) == 1 and not info.isdir():
            raise UnsafePathError(f"{self.where}: {info.name} is not a folder; a project archive holds the "
                                  "project's folder only")
        if name in self.seen:
            raise UnsafePathError(f"{self.where}: {name} is in it twice; refused (one copy would replace the other)")
        for i in range(1, len(parts)):
            kind = self.seen.get("/".join(parts[:i]))
            if kind not in (None, "dir"):
                raise UnsafePathError(f"{self.where}: {name} would be written through {'/'.join(parts[:i])}, "
                                      f"which is a {kind}, not a folder; refused")
        if info.isdir():
            kind = "dir"
        elif info.isreg():
            kind = "file"
        elif info.issym():
            kind = "link"
            self._check_link(name, info.linkname)
        elif info.islnk():
            kind = "hardlink"
            source = "/".join(member_parts(info.linkname, self.where))
            if self.seen.get(source) != "file":
                raise UnsafePathError(f"{self.where}: {name} is a hard link to {info.linkname}, which is not a file "
                                      "extracted before it from the same folder; refused")
        else:
            what = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
                    tarfile.FIFOTYPE: "fifo"}.get(info.type, f"member of type {info.type!r}")
            raise UnsafePathError(f"{self.where}: {name} is a {what}; only files, folders and links are extracted")
        self.seen[name] = "file" if kind == "hardlink" else kind
        return parts, kind

    def _check_link(self, name: str, target: str) -> None:
        if not target:
            raise UnsafePathError(f"{self.where}: {name} is a link to nothing; refused")
        lands = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if posixpath.isabs(target):
            why = "an absolute path"
        elif lands.split("/")[0] != self.top:
            why = "a place outside the project folder"
        else:
            return
        if not self.allow_links:
            raise UnsafePathError(
                f"{self.where}: {name} is a link to {target}, {why}; refused: extract links that lead out (such as "
                "the raw data an import job links to) only from an archive you trust (--allow-links), or archive "
                "the project with --include-raw so that the files themselves are stored")


def check_members(path: Path, allow_links: bool = False) -> tuple[str, bool]:
    """Read an archive's headers and check every member (nothing is written); its top folder and whether it
    holds a manifest."""
    checker, has_manifest = MemberCheck(path, allow_links), False
    with reading(path):
        for info, _ in iterate(path, content=False):
            parts, _kind = checker.check(info)
            has_manifest = has_manifest or parts[1:] == (MANIFEST_NAME,)
    if checker.top is None:
        raise DataError(f"archive {path} is empty")
    return checker.top, has_manifest


def _folder(root: Path, parts: tuple[str, ...], where: str) -> Path:
    """``root/parts``, each folder on the way made here or a real folder made before (never a link)."""
    path = root
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            os.mkdir(path, 0o700)
            continue
        if not stat.S_ISDIR(mode):
            raise UnsafePathError(f"{where}: {'/'.join(parts)} is not a real folder; refused to write through it")
    return path


def extract(path: Path, root: Path, allow_links: bool = False, skip: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Extract an archive's members into the empty folder ``root``, checking each; its manifest, if it has one.

    Every member passes :class:`MemberCheck` again as it comes (the file may have changed since
    :func:`check_members`); files are created new (never through a link), then the members are compared with
    the manifest. Names in ``skip`` (inside the top folder) are not extracted. The caller removes ``root`` on
    any error.
    """
    checker, where = MemberCheck(path, allow_links), f"archive {path}"
    found: dict[str, dict[str, Any]] = {}
    folders: list[tuple[Path, tarfile.TarInfo]] = []
    manifest = None
    with reading(path):
        for info, stream in iterate(path):
            parts, kind = checker.check(info)
            if not parts:
                continue
            name = "/".join(parts[1:])
            if name == MANIFEST_NAME and stream is not None:
                manifest = parse_manifest(path, stream.read())
                continue
            if name in skip:
                continue
            parent = _folder(root, parts[:-1], where)
            target = parent / parts[-1]
            if kind == "dir":
                _folder(root, parts, where)
                folders.append((target, info))
                found[name] = {"name": name, "type": "dir"}
            elif kind == "link":
                os.symlink(info.linkname, target)
                found[name] = {"name": name, "type": "link", "target": info.linkname}
            elif kind == "hardlink":
                source = member_parts(info.linkname, where)
                os.link(root.joinpath(*source), target, follow_symlinks=False)
                with open(target, "rb") as f:
                    digest, size = hash_stream(f)
                found[name] = {"name": name, "type": "file", "size": size, "sha256": digest}
            else:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    digest, size = hash_stream(stream, out)
                os.chmod(target, info.mode & 0o777)
                os.utime(target, (info.mtime, info.mtime))
                found[name] = {"name": name, "type": "file", "size": size, "sha256": digest}
    for folder, info in reversed(folders):  # deepest first, once nothing more goes in
        os.chmod(folder, (info.mode & 0o777) | 0o700)
        os.utime(folder, (info.mtime, info.mtime))
    if manifest is not None:
        compare(path, manifest, found)
    return manifest
