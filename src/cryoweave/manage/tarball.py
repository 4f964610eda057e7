"""Project archives as tar files: writing them with a manifest, reading them back, verifying them.

An archive holds one top folder (the project folder's name) and, as its last member,
``<folder>/.cryoweave-archive.json``: the manifest, listing every member with its type, size and
the sha256 of its content (or its link target). So an archive can be checked at any time, long
after it was written, without the project it came from.

The format follows the suffix: ``.tar``, ``.tar.zst`` (zstandard, level 3, on every core) or
``.tar.gz``. Archives are written and read as streams: nothing is held in memory but one buffer.

>>> archive_format("P1.tar.zst")
'zst'
>>> verify_archive("/archives/P1.tar.zst")["project"]  # doctest: +SKIP
'P1'
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryoweave.errors import DataError, ParamError
from cryoweave.manage.safety import check_name

SUFFIXES = {".tar": "tar", ".tar.zst": "zst", ".tar.gz": "gz", ".tgz": "gz"}
"""The archive suffixes and their compression."""
MANIFEST_NAME = ".cryoweave-archive.json"
MANIFEST_VERSION = 1
ZSTD_LEVEL = 3
CHUNK = 1 << 20

Progress = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while file contents are written."""


def archive_format(path: str | os.PathLike) -> str:
    """The compression an archive's name asks for (``tar``, ``zst`` or ``gz``), or :class:`ParamError`."""
    name = os.fspath(path).lower()
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise ParamError(f"{path}: an archive's name must end in {', '.join(SUFFIXES)} (e.g. P1.tar.zst)")


def is_archive_name(path: str | os.PathLike) -> bool:
    """Whether a file name ends in one of the archive suffixes."""
    return any(os.fspath(path).lower().endswith(s) for s in SUFFIXES)


@dataclass
class Member:
    """One member of an archive: its name inside the top folder, its kind and what it holds.

    ``source`` is the file whose content is stored (the file a link points to, for ``--include-raw``);
    ``sha256`` is filled in as the content is written or read.
    """

    name: str
    kind: str  # "dir", "file" or "link"
    size: int = 0
    target: str = ""
    mode: int = 0o644
    mtime: float = 0.0
    sha256: str = ""
    source: Path | None = None
    external: bool = False  # a link that leads out of the folder, or the file stored in place of one

    def manifest(self) -> dict[str, Any]:
        """The member as the manifest lists it."""
        entry: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind == "file":
            entry.update(size=self.size, sha256=self.sha256)
        elif self.kind == "link":
            entry["target"] = self.target
        return entry


class _HashingWriter:
    """A file object that hashes and counts what goes through it to the file."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.digest, self.count = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _HashingReader:
    """A file object that hashes what is read from it (tarfile copies a member's content with ``read``)."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None = None):
        self.raw, self.digest, self.progress = raw, hashlib.sha256(), progress

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        if self.progress is not None:
            self.progress(len(data))
        return data


@contextmanager
def _tar_writer(fileobj: IO[bytes], kind: str) -> Iterator[tarfile.TarFile]:
    with ExitStack() as stack:
        if kind == "zst":
            import zstandard

            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1, write_checksum=True)
            fileobj = stack.enter_context(compressor.stream_writer(fileobj, closefd=False))
            mode = "w|"
        else:
            mode = "w|gz" if kind == "gz" else "w|"
        tar = stack.enter_context(tarfile.open(fileobj=fileobj, mode=mode, format=tarfile.PAX_FORMAT, bufsize=CHUNK))
        tar.copybufsize = CHUNK  # tarfile copies contents 16 KiB at a time otherwise
        yield tar


def write_archive(path: Path, kind: str, top: str, members: list[Member], manifest: dict[str, Any],
                  progress: Progress | None = None) -> tuple[str, int]:
    """Write ``members`` under ``top/`` and the manifest last into the new file ``path``; its sha256 and size.

    The sha256 of each file's content is computed as it is written (``Member.sha256``); a file whose
    size changed since it was listed is a :class:`DataError` naming it.
    """
    total = sum(m.size for m in members if m.kind == "file")
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    with open(path, "wb") as raw:
        out = _HashingWriter(raw)
        with _tar_writer(out, kind) as tar:
            for member in members:
                info = tarfile.TarInfo(f"{top}/{member.name}" if member.name else top)
                info.mode, info.mtime = member.mode & 0o7777, int(member.mtime)
                if member.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif member.kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, member.target
                    tar.addfile(info)
                else:
                    with open(member.source, "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        if size != member.size:
                            raise DataError(f"{member.source} changed while it was archived ({member.size} bytes "
                                            f"then {size}); archive the project again once nothing writes to it")
                        info.size = size
                        reader = _HashingReader(f, advance)
                        tar.addfile(info, reader)
                        member.sha256 = reader.digest.hexdigest()
            manifest = {**manifest, "files": [m.manifest() for m in members]}
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(f"{top}/{MANIFEST_NAME}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(members[0].mtime if members else 0)
            tar.addfile(info, _BytesReader(data))
        out.flush()
        os.fsync(raw.fileno())
    return out.digest.hexdigest(), out.count


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at:end], min(end, len(self.data))
        return chunk


# ---------------------------------------------------------------------- reading
def member_parts(name: str, where: str) -> tuple[str, ...]:
    """A member's name as folder parts (``./`` and ``.`` dropped), checked to stay inside the archive."""
    check_name(name, where)
    return tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


@contextmanager
def _tar_reader(path: Path, content: bool = True) -> Iterator[tarfile.TarFile]:
    kind = archive_format(path)
    with ExitStack() as stack:
        fileobj: Any = stack.enter_context(open(path, "rb"))
        if kind == "zst":
            import zstandard

            fileobj = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(
                fileobj, read_size=CHUNK, read_across_frames=True, closefd=False))
        mode = "r|gz" if kind == "gz" else "r|"
        if kind == "tar" and not content:
            mode = "r:"  # headers only: seek past the contents instead of reading them
        yield stack.enter_context(tarfile.open(fileobj=fileobj, mode=mode, bufsize=CHUNK))


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return tuple(errors)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn the errors of a damaged or foreign file into one :class:`DataError` naming the archive."""
    try:
        yield
    except FileNotFoundError as err:
        if err.filename and Path(err.filename) != path:
            raise DataError(f"archive {path}: {err.strerror}: {err.filename}") from None
        raise DataError(f"archive {path} does not exist") from None
    except _read_errors() as err:
        if isinstance(err, OSError) and err.errno is not None:  # the disk, not the archive
            raise DataError(f"archive {path}: {err.strerror}" + (f": {err.filename}" if err.filename else "")) \
                from None
        raise DataError(f"archive {path} cannot be read: {err or type(err).__name__}; it is damaged, "
                        "incomplete or not a tar archive") from None


def iterate(path: Path, content: bool = True) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """Each member of an archive with a reader of its content (regular files, when ``content``).

    Wrap the loop in :func:`reading` so that a damaged archive gives a :class:`DataError`.
    """
    with _tar_reader(path, content) as tar:
        for info in tar:
            yield info, (tar.extractfile(info) if content and info.isreg() else None)


def hash_stream(stream: IO[bytes], sink: IO[bytes] | None = None) -> tuple[str, int]:
    """The sha256 and size of what a stream holds, copied into ``sink`` on the way if one is given."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


def parse_manifest(path: Path, data: bytes) -> dict[str, Any]:
    """The manifest of an archive, checked to be one."""
    try:
        manifest = json.loads(data)
    except ValueError as err:
        raise DataError(f"archive {path}: its manifest {MANIFEST_NAME} is not JSON ({err}); it is damaged") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise DataError(f"archive {path}: its manifest {MANIFEST_NAME} lists no files; it is damaged")
    if int(manifest.get("version", 0)) > MANIFEST_VERSION:
        raise DataError(f"archive {path} was written by a newer cryoweave (manifest version "
                        f"{manifest.get('version')}); update cryoweave to read it")
    return manifest


def compare(path: Path, manifest: dict[str, Any], found: dict[str, dict[str, Any]]) -> None:
    """Check the members found (name -> manifest entry) against the manifest; :class:`DataError` names the first
    that differs."""
    listed = {entry["name"]: entry for entry in manifest["files"]}
    for name, entry in listed.items():
        got = found.get(name)
        if got is None:
            raise DataError(f"archive {path} is damaged: {name or '.'} is in its manifest but not in the archive")
        for key in ("type", "size", "sha256", "target"):
            if entry.get(key) != got.get(key):
                what = "content (sha256)" if key == "sha256" else key
                raise DataError(f"archive {path} is damaged: the {what} of {name or '.'} differs from its manifest "
                                f"({got.get(key)!r} instead of {entry.get(key)!r})")
    extra = sorted(set(found) - set(listed))
    if extra:
        raise DataError(f"archive {path} is damaged: {extra[0]} is in the archive but not in its manifest")


def verify_archive(path: str | os.PathLike) -> dict[str, Any]:
    """Read an archive through and check every member against its manifest; the manifest.

    A member missing, added, or whose content, size, type or link target differs from the manifest
    is a :class:`DataError` naming it; so is an archive without a manifest.

    >>> verify_archive("/archives/P1.tar.zst")["files"][0]  # doctest: +SKIP
    {'name': '', 'type': 'dir'}
    """
    path = Path(path)
    found: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] | None = None
    top = None
    with reading(path):
        for info, stream in iterate(path):
            parts = member_parts(info.name, f"archive {path}")
            if top is None and parts:
                top = parts[0]
            if manifest is not None:
                raise DataError(f"archive {path} is damaged: {info.name} comes after its manifest, which is last")
            name = "/".join(parts[1:])
            if name == MANIFEST_NAME and stream is not None:
                manifest = parse_manifest(path, stream.read())
                continue
            entry: dict[str, Any] = {"name": name, "type": "dir" if info.isdir() else
                                     "link" if info.issym() else "file" if info.isreg() else info.type.decode()}
            if stream is not None:
                entry["sha256"], entry["size"] = hash_stream(stream)
            elif info.issym():
                entry["target"] = info.linkname
            found[name] = entry
    if manifest is None:
        raise DataError(f"archive {path} has no manifest ({MANIFEST_NAME}); it was not written by cryoweave "
                        "or it is incomplete")
    compare(path, manifest, found)
    return manifest
