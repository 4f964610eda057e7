"""What may come in from outside: relative names that stay inside their folder, links that do not lead out.

An exported job or group, a ``.csg`` and a tar archive come from elsewhere; each name they hold is
checked before anything is written, so none of them can make cryoweave read or write a file outside
the folder it was given (``../../etc/passwd``, ``/home/me/.ssh/id_rsa``, a link ``data -> /``).

A linked export holds links to the data of the project it came from, outside its folder by design;
those are accepted only when the caller says it trusts them (``allow_links``), and only as links to
existing regular files.

>>> check_name("J7/J7_particles.cs", "export")
'J7/J7_particles.cs'
>>> check_name("../secret", "export")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
UnsafePathError: export: '../secret' climbs out of its folder with '..'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryoweave.errors import UnsafePathError


def check_name(name: str, where: str) -> str:
    """A relative name that stays inside its folder (returned as given), or :class:`UnsafePathError`."""
    text = str(name)
    if not text or "\x00" in text:
        raise UnsafePathError(f"{where}: {text!r} is not a file name")
    posix = PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or os.path.isabs(text) or (len(text) > 1 and text[1] == ":"):
        raise UnsafePathError(f"{where}: {text!r} is an absolute path; only names inside the folder are accepted")
    if ".." in posix.parts:
        raise UnsafePathError(f"{where}: {text!r} climbs out of its folder with '..'")
    return text


def inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path``, every link on the way followed, lies in ``root`` (itself resolved)."""
    top = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), top]) == top


@dataclass(frozen=True)
class ExternalLink:
    """A link in a folder that leads out of it: its name in the folder and the file it resolves to."""

    name: str
    target: Path


def check_tree(root: str | os.PathLike, where: str, *, allow_links: bool = False) -> list[ExternalLink]:
    """Walk a folder (not following links) and check each link; the links that lead out of it.

    A link leading out is refused unless ``allow_links``; then it must resolve to an existing regular
    file (a link to a folder outside would bring a whole tree in). Links inside are always fine.
    """
    root = Path(root)
    top = os.path.realpath(root)
    found: list[ExternalLink] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                continue
            real = os.path.realpath(path)
            if os.path.commonpath([real, top]) == top:
                continue
            relative = os.path.relpath(path, root)
            if not allow_links:
                raise UnsafePathError(
                    f"{where}: {relative} is a link to {os.readlink(path)}, outside the folder; links that lead out "
                    "are refused unless you trust where the folder came from (allow links: --allow-links), or "
                    "make it without links (export with --copy-data, archive with --include-raw)")
            if not os.path.isfile(real):
                raise UnsafePathError(f"{where}: {relative} links to {real}, which is not an existing regular file")
            found.append(ExternalLink(relative, Path(real)))
    return found
