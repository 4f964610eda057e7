"""The storage cache of a project: per-job sizes kept in the instance home, refreshed incrementally.

One JSON file per project, ``<home>/storage/P1.json``, written atomically. It names the project
directory it was computed for (a project re-attached elsewhere, or a new P1 after the old one was
removed, does not reuse it) and holds, per job, its :class:`~cryoweave.manage.storage_walk.Tally`,
when it was walked and the job's *signature*: the record's ``updated_at``, and ``(mtime_ns, size)``
of the job folder, its ``events.jsonl`` and its ``job.log``. A job whose signature is unchanged is not
walked again: a finished job's folder rarely changes, and when cryoweave changes it the record, the
folder (a file added, replaced or removed) or the log does. A change deep inside a job folder that
touches none of those (a user editing ``J3/sub/x`` by hand) is seen at the next change of the job or
with ``cryoweave storage P1 --refresh`` after removing the cache file. A job that changed within the
second before its signature was taken is walked once more after that second (see :data:`RACY_NS`).

The project total stays exact without walking the whole project again: each tally keeps the inodes
that can be reached twice (files with several hard links, files reached through links that lead
out of the project) and only a byte count for the rest (see
:func:`~cryoweave.manage.storage_walk.project_total`), so the total is recomputed from the cache.
Files in no job folder are two more parts, ``exports`` (the ``exports/`` folder) and ``other``
(the project's own record files, folders users added, job folders no job owns), walked again when
the names, sizes or times of their entries and of the entries one level down change.

A refresh holds ``<home>/storage/P1.lock`` (``flock``, released by the kernel if the process dies), so
two refreshes of one project never run at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryoweave.atomic import atomic_write
from cryoweave.errors import StoreError
from cryoweave.manage.storage_walk import Tally, folder_key, project_total, walk
from cryoweave.model.records import utc_now

if TYPE_CHECKING:
    from cryoweave.store import Store
    from cryoweave.store.transaction import JobSummary

FORMAT = 1
PARTS = ("exports", "other")
"""The rows of files in no job folder."""
WORKERS = 1
"""Job folders walked at once. Measured on 2 cores, 1,000 jobs / 200,000 files in the page cache
(benchmarks/bench_storage.py): idle, 1.7 s with 1 thread, 2.2 s with 2, 3.4 s with 4 (the walk is bound by
Python, not by waiting); only on a loaded machine did 2 threads win (2.9 s against 3.6 s). On a network
file system, where stat calls wait, more threads may pay: ``refresh(..., workers=N)``."""
RACY_NS = 1_000_000_000
"""File times closer than this to the moment a signature was taken may not show a change made just
after (file system clocks tick coarsely, up to a second on some network file systems): such an
entry is walked again once the second has passed (as git treats "racily clean" files)."""


def storage_folder(home: Path) -> Path:
    return home / "storage"


def cache_path(home: Path, project: str) -> Path:
    """``<home>/storage/P1.json``."""
    return storage_folder(home) / f"{project}.json"


def _entry_key(path: Path) -> list[Any] | None:
    key = folder_key(path)
    return list(key) if key else None


def job_signature(directory: Path, job: JobSummary) -> list[Any]:
    """What must be unchanged for a job's cached size to stand (four cheap ``stat`` calls)."""
    folder = directory / job.uid
    return [job.updated_at.isoformat(), _entry_key(folder), _entry_key(folder / "events.jsonl"),
            _entry_key(folder / "job.log")]


def part_names(directory: Path, job_uids: set[str]) -> dict[str, list[str]]:
    """The top-level names of the project directory in no job folder, by part (``exports``, ``other``)."""
    parts: dict[str, list[str]] = {name: [] for name in PARTS}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return parts
    for name in names:
        if name in job_uids:
            continue
        parts["exports" if name == "exports" else "other"].append(name)
    return parts


def part_signature(directory: Path, names: list[str]) -> list[Any]:
    """Names, times and sizes of a part's entries and of the entries one level down."""
    signature: list[Any] = []
    for name in names:
        path = directory / name
        signature.append([name, _entry_key(path)])
        if path.is_dir():
            try:
                children = sorted(os.listdir(path))
            except OSError:
                continue
            signature.extend([f"{name}/{child}", _entry_key(path / child)] for child in children)
    return signature


@dataclass
class Cached:
    """One job's or part's cached figures."""

    signature: list[Any]
    walked_at: str
    tally: Tally
    racy: bool = False
    """Something changed within :data:`RACY_NS` before the signature was taken: walk it again next time."""


@dataclass
class StorageCache:
    """A project's cached storage figures (what the cache file holds)."""

    project: str
    directory: str
    computed_at: str = ""
    jobs: dict[str, Cached] = field(default_factory=dict)
    parts: dict[str, Cached] = field(default_factory=dict)
    walked: list[str] = field(default_factory=list)
    """Jobs and parts walked by the refresh that made this cache (not saved)."""

    def to_json(self) -> dict[str, Any]:
        def one(c: Cached) -> dict[str, Any]:
            return {"signature": c.signature, "walked_at": c.walked_at, "racy": c.racy, **c.tally.to_json()}

        total = project_total([c.tally for c in [*self.jobs.values(), *self.parts.values()]])
        return {"format": FORMAT, "project": self.project, "directory": self.directory,
                "computed_at": self.computed_at, "total": total.__dict__,
                "jobs": {uid: one(c) for uid, c in self.jobs.items()},
                "parts": {name: one(c) for name, c in self.parts.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StorageCache:
        def one(d: dict[str, Any]) -> Cached:
            return Cached(signature=d["signature"], walked_at=d["walked_at"], tally=Tally.from_json(d),
                          racy=bool(d.get("racy", False)))

        return cls(project=data["project"], directory=data["directory"], computed_at=data["computed_at"],
                   jobs={uid: one(d) for uid, d in data["jobs"].items()},
                   parts={name: one(d) for name, d in data["parts"].items()})


def load_cache(home: Path, project: str, directory: Path) -> StorageCache | None:
    """The cache of ``project`` if there is a readable one made for ``directory``; else None."""
    try:
        data = json.loads(cache_path(home, project).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("directory") != str(directory):
            return None
        return StorageCache.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):  # missing, half-copied by hand, older format: recompute
        return None


def save_cache(home: Path, cache: StorageCache) -> None:
    folder = storage_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache_path(home, cache.project), error=StoreError) as f:
        f.write(json.dumps(cache.to_json(), separators=(",", ":")).encode())


@dataclass(frozen=True)
class Changes:
    """What differs between a cache and the project now."""

    jobs: list[str]
    parts: list[str]
    gone: list[str]

    def __bool__(self) -> bool:
        return bool(self.jobs or self.parts or self.gone)


def changes(cache: StorageCache | None, directory: Path, summaries: list[JobSummary]) -> tuple[Changes, dict]:
    """The jobs and parts whose signature changed (or that the cache lacks), and the new signatures."""
    uids = {j.uid for j in summaries}
    signatures: dict[str, list[Any]] = {j.uid: job_signature(directory, j) for j in summaries}
    names = part_names(directory, uids)
    for part in PARTS:
        signatures[part] = part_signature(directory, names[part])
    old = (cache.jobs | cache.parts) if cache else {}
    changed = [k for k, sig in signatures.items()
               if k not in old or old[k].racy or _plain(old[k].signature) != _plain(sig)]
    gone = sorted(set(cache.jobs) - uids) if cache else []
    return Changes([k for k in changed if k not in PARTS], [k for k in changed if k in PARTS], gone), signatures


def _plain(value: Any) -> Any:
    """A signature as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def refresh(store: Store, project: str, *, workers: int | None = None, wait: bool = True) -> StorageCache | None:
    """Walk what changed since the cache was made (everything when there is none) and save the cache.

    Holds the project's refresh lock: waits for a refresh already running to finish, or with
    ``wait=False`` returns None at once instead.

    >>> refresh(store, "P1").walked                                   # doctest: +SKIP
    ['J7', 'other']
    """
    with refresh_lock(store.settings.home, project, wait=wait) as held:
        return _refresh_locked(store, project, workers or WORKERS) if held else None


def _refresh_locked(store: Store, project: str, workers: int) -> StorageCache:
    home = store.settings.home
    info = store.get_project(project)
    directory = info.directory
    summaries = store.jobs(info.uid)
    uids = {j.uid for j in summaries}
    old = load_cache(home, info.uid, directory)
    cache = StorageCache(project=info.uid, directory=str(directory))
    if old:
        cache.jobs = {uid: c for uid, c in old.jobs.items() if uid in uids}
        cache.parts = {part: c for part, c in old.parts.items() if part in PARTS}
    walked: list[str] = []
    for attempt in range(2):  # a second pass once what changed in the last second has settled
        snapshot = time.time_ns()
        diff, signatures = changes(cache, directory, summaries)
        if attempt and not diff:
            break
        names = part_names(directory, uids)
        _walk_changed(cache, directory, names, [*diff.jobs, *diff.parts], signatures, snapshot, workers)
        walked.extend(k for k in [*diff.jobs, *diff.parts] if k not in walked)
        racy = [_newest(c.signature) for c in [*cache.jobs.values(), *cache.parts.values()] if c.racy]
        if not racy:
            break
        if attempt == 0:
            time.sleep(min(RACY_NS, max(0, max(racy) + RACY_NS - time.time_ns())) / 1e9)
    cache.jobs = {uid: cache.jobs[uid] for uid in sorted(cache.jobs, key=lambda u: int(u[1:]))}
    cache.computed_at = utc_now().isoformat()
    cache.walked = walked
    save_cache(home, cache)
    return cache


def _walk_changed(cache: StorageCache, directory: Path, names: dict[str, list[str]], keys: list[str],
                  signatures: dict[str, list[Any]], snapshot: int, workers: int) -> None:
    """Walk these jobs and parts (a few threads) and put their figures in the cache."""
    def one(key: str) -> tuple[str, Cached]:
        sig, now = signatures[key], utc_now().isoformat()
        tally = walk(directory, directory, only=names[key]) if key in PARTS else walk(directory / key, directory)
        return key, Cached(sig, now, tally, _racy(sig, snapshot))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for key, cached in pool.map(one, keys):
            (cache.parts if key in PARTS else cache.jobs)[key] = cached


def _newest(signature: Any) -> int:
    """The latest modification time (ns) in a signature (its ``[mtime_ns, size]`` pairs)."""
    if isinstance(signature, list | tuple):
        if len(signature) == 2 and all(isinstance(v, int) for v in signature):
            return signature[0]
        return max((_newest(v) for v in signature), default=0)
    return 0


def _racy(signature: Any, snapshot_ns: int) -> bool:
    """Whether something in the signature changed so shortly before it was taken that a change right
    after could keep the same time (coarse file system clocks): then it is walked again next time."""
    return _newest(signature) >= snapshot_ns - RACY_NS


@contextmanager
def refresh_lock(home: Path, project: str, *, wait: bool) -> Iterator[bool]:
    """Hold ``<home>/storage/P1.lock``; yields False (without waiting) when ``wait`` is off and it is held."""
    folder = storage_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{project}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
