"""Walking a folder for its size, as seed 004 counts it: every file, links followed, each inode once.

A :class:`Tally` holds what one walk found: the folder's own size (each ``(st_dev, st_ino)`` counted
once, ``st_size`` of regular files; folders themselves count 0), and what the project total needs to
stay exact without walking the whole project again (see :func:`project_total`):

- ``private``: files reached without passing a link and with one hard link: such a file has exactly
  one name in the project, so it is in no other job's tally; only its bytes are kept;
- ``shared``: files reached without a link but with more hard links: ``(dev, ino, size)`` each, so the
  total can count an inode linked into two jobs once;
- ``outside``: files reached through a link that leads out of the project (an import job's
  ``imported/`` links to raw data): ``(dev, ino, size)`` each, counted once in the total and
  reported apart ("of which linked data outside the project").

A file reached through a link that stays inside the project counts in the walked folder's size but
not in these three: its real name is walked elsewhere without a link. A broken link, a link loop or
an unreadable folder counts 0 and leaves a note; nothing raises.

>>> tally = walk(Path("/data/P1/J3"), Path("/data/P1"))          # doctest: +SKIP
>>> tally.bytes, tally.files, tally.linked_bytes                 # doctest: +SKIP
(52428800, 212, 41943040)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_NOTES = 20
"""Notes kept per walk (a folder of 10,000 broken links says so once, with a count)."""


@dataclass
class Tally:
    """What one walk found; ``bytes``/``files`` count each inode once within the walked folder."""

    bytes: int = 0
    files: int = 0
    linked_bytes: int = 0
    linked_files: int = 0
    private_bytes: int = 0
    private_files: int = 0
    shared: dict[tuple[int, int], int] = field(default_factory=dict)
    outside: dict[tuple[int, int], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: int = 0

    def note(self, text: str) -> None:
        self.skipped += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def to_json(self) -> dict[str, Any]:
        """A compact form for the cache file: inodes as ``[dev, ino, size]`` triples."""
        return {"bytes": self.bytes, "files": self.files, "linked_bytes": self.linked_bytes,
                "linked_files": self.linked_files, "private_bytes": self.private_bytes,
                "private_files": self.private_files,
                "shared": [[d, i, s] for (d, i), s in self.shared.items()],
                "outside": [[d, i, s] for (d, i), s in self.outside.items()],
                "notes": self.notes, "skipped": self.skipped}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        return cls(bytes=int(data["bytes"]), files=int(data["files"]), linked_bytes=int(data["linked_bytes"]),
                   linked_files=int(data.get("linked_files", 0)), private_bytes=int(data["private_bytes"]),
                   private_files=int(data["private_files"]),
                   shared={(int(d), int(i)): int(s) for d, i, s in data["shared"]},
                   outside={(int(d), int(i)): int(s) for d, i, s in data["outside"]},
                   notes=list(data.get("notes", [])), skipped=int(data.get("skipped", 0)))


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real + os.sep)


def walk(folder: str | os.PathLike, project_root: str | os.PathLike, *,
         only: Iterable[str] | None = None) -> Tally:
    """The size of ``folder`` (links followed, each inode once), classified for the project total.

    ``project_root`` decides which links lead out. ``only``: walk just these names inside ``folder``
    (used for the files of a project that are in no job folder). Example::

        walk("/data/P1/J3", "/data/P1").bytes
    """
    tally = Tally()
    root_real = os.path.realpath(project_root)
    seen: set[tuple[int, int]] = set()
    top = os.fspath(folder)
    # The stack holds (path, reached through a link, that link leads out, keys of the folders above).
    stack: list[tuple[str, bool, bool, tuple[tuple[int, int], ...]]] = []
    try:
        top_stat = os.stat(top)
    except OSError as err:
        tally.note(f"{top}: {err.strerror or err}")
        return tally
    top_link = os.path.islink(top)
    top_out = top_link and not _inside(os.path.realpath(top), root_real)
    if only is None:
        stack.append((top, top_link, top_out, ((top_stat.st_dev, top_stat.st_ino),)))
    else:
        ancestors = ((top_stat.st_dev, top_stat.st_ino),)
        for name in only:
            path = os.path.join(top, name)
            _visit_path(path, tally, seen, stack, root_real, ancestors)
    link_dirs: set[tuple[int, int]] = set()
    while stack:
        path, via_link, out, ancestors = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as err:
            tally.note(f"{path}: cannot read the folder ({err.strerror or err})")
            continue
        for entry in entries:
            try:
                if entry.is_symlink():
                    try:
                        st = entry.stat()
                    except OSError as err:
                        kind = "a link loop" if err.errno == 40 else "a broken link"
                        tally.note(f"{entry.path}: {kind} ({err.strerror or err}), counted as 0")
                        continue
                    link_out = not _inside(os.path.realpath(entry.path), root_real)
                    if stat.S_ISDIR(st.st_mode):
                        key = (st.st_dev, st.st_ino)
                        if key in ancestors:
                            tally.note(f"{entry.path}: a link loop (leads back to a folder above it), counted as 0")
                        elif key not in link_dirs:  # a folder linked twice is walked once through links
                            link_dirs.add(key)
                            stack.append((entry.path, True, link_out, (*ancestors, key)))
                    elif stat.S_ISREG(st.st_mode):
                        _count(tally, seen, st, True, link_out)
                elif entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    stack.append((entry.path, via_link, out, (*ancestors, (st.st_dev, st.st_ino))))
                else:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        _count(tally, seen, st, via_link, out)
            except OSError as err:  # removed while we walk, no permission
                tally.note(f"{entry.path}: {err.strerror or err}, counted as 0")
    return tally


def _visit_path(path: str, tally: Tally, seen: set[tuple[int, int]], stack: list, root_real: str,
                ancestors: tuple[tuple[int, int], ...]) -> None:
    """One named entry at the top of a walk (a file is counted, a folder pushed)."""
    try:
        st = os.stat(path)
    except OSError as err:
        tally.note(f"{path}: {err.strerror or err}, counted as 0")
        return
    link = os.path.islink(path)
    out = link and not _inside(os.path.realpath(path), root_real)
    if stat.S_ISDIR(st.st_mode):
        stack.append((path, link, out, (*ancestors, (st.st_dev, st.st_ino))))
    elif stat.S_ISREG(st.st_mode):
        _count(tally, seen, st, link, out)


def _count(tally: Tally, seen: set[tuple[int, int]], st: os.stat_result, via_link: bool, out: bool) -> None:
    key = (st.st_dev, st.st_ino)
    size = st.st_size
    if key not in seen:
        seen.add(key)
        tally.bytes += size
        tally.files += 1
        if via_link and out:
            tally.linked_bytes += size
            tally.linked_files += 1
    if not via_link:
        if st.st_nlink == 1:
            tally.private_bytes += size
            tally.private_files += 1
        else:
            tally.shared[key] = size
    elif out:
        tally.outside[key] = size


@dataclass(frozen=True)
class Total:
    """A project's size with each inode counted once across the whole project directory."""

    bytes: int
    files: int
    linked_bytes: int
    linked_files: int


def project_total(tallies: Iterable[Tally]) -> Total:
    """The inode-unique total of tallies that together cover a project directory (each part once).

    Single-link files reached without a link have one name only, so their bytes add up; the rest is
    a union of inodes. An inode both inside (a hard link) and reached through an outside link counts
    as inside: deleting the project would not free it either way, but it is in the project.

    >>> project_total([walk(p / "J1", p), walk(p / "J2", p), walk(p, p, only=["exports"])]).bytes  # doctest: +SKIP
    734003200
    """
    tallies = list(tallies)
    inside: dict[tuple[int, int], int] = {}
    outside: dict[tuple[int, int], int] = {}
    for t in tallies:
        inside.update(t.shared)
        outside.update(t.outside)
    linked = {key: size for key, size in outside.items() if key not in inside}
    return Total(bytes=sum(t.private_bytes for t in tallies) + sum(inside.values()) + sum(linked.values()),
                 files=sum(t.private_files for t in tallies) + len(inside) + len(linked),
                 linked_bytes=sum(linked.values()), linked_files=len(linked))


def reference_walk(folder: str | os.PathLike) -> tuple[int, int]:
    """``(bytes, files)`` by the plainest walk there is (``os.walk`` following links, ``os.stat``,
    a set of inodes): the baseline the benchmark compares with. Loops are cut by folder inode."""
    seen: set[tuple[int, int]] = set()
    folders: set[tuple[int, int]] = set()
    total = files = 0
    for here, dirs, names in os.walk(folder, followlinks=True):
        st = os.stat(here)
        if (st.st_dev, st.st_ino) in folders:
            dirs[:] = []
            continue
        folders.add((st.st_dev, st.st_ino))
        for name in names:
            try:
                st = os.stat(os.path.join(here, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
                files += 1
    return total, files


def folder_key(path: Path) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of a path, or None when it is missing (part of a job's signature)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
