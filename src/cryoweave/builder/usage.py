"""Which files of a project are in use, and by which jobs: what clearing must never delete.

A job **uses** the files that hold:

* its own outputs at their final version (the table of the last version and, for each result it made,
  the file of that result's last version);
* the results its outputs pass through (``sources``: files of its ancestors);
* what its inputs are bound to: each connected group at its final version (and the group's passthrough
  sources), each single-slot override at the version it names;
* the data files (stacks, maps, links to raw data) named by path fields in the tables of any of the above
  and of its own saved versions that it keeps.

Intermediate results are a job's saved versions before the final one. Clearing them deletes the version
tables (and the data files only they name, inside the job's folder) that no job uses, and takes those
versions out of the job's record; every other file stays. :func:`plan_intermediate` says what would go,
:func:`drop_versions` changes the record.

>>> users = metafile_users(records)                       # doctest: +SKIP
>>> users["J3/J3_particles.cs"]                           # doctest: +SKIP
{'J3', 'J7', 'J9'}
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoweave.dataset import fileio
from cryoweave.dataset.strings import factorize
from cryoweave.errors import CryoweaveError
from cryoweave.model.records import JobRecord, OutputGroup, ResultRef
from cryoweave.model.status import JobStatus
from cryoweave.spec.results import is_path_field
from cryoweave.store.transaction import input_parents


def version_files(group: OutputGroup, version: int) -> set[str]:
    """The files a load of ``group`` at ``version`` reads: its table, and for each result the job made
    the latest version up to it (passthrough sources are not included)."""
    files = {t.metafile for t in group.tables if t.version == version}
    for result in group.results.values():
        if result.passthrough:
            continue
        upto = [i for i, v in enumerate(result.versions) if v <= version]
        if upto:
            files.add(result.metafiles[upto[-1]])
    return files


def final_files(group: OutputGroup) -> set[str]:
    """The files of a group at its final version, its passthrough sources included."""
    if not group.tables:
        return set()
    files = version_files(group, group.tables[-1].version)
    files |= {s.metafile for r in group.results.values() if r.passthrough for s in r.sources}
    return files


def own_files(record: JobRecord) -> set[str]:
    """Every table a job saved (every version of every output group)."""
    files = set()
    for group in record.outputs.values():
        files |= {t.metafile for t in group.tables}
        files |= {m for r in group.results.values() if not r.passthrough for m in r.metafiles}
    return files


def _ref_files(ref: ResultRef, records: Mapping[str, JobRecord]) -> set[str]:
    source = records.get(ref.job)
    group = source.outputs.get(ref.group) if source is not None else None
    result = group.results.get(ref.result) if group is not None else None
    if result is None:
        return set()
    if result.passthrough:
        return {s.metafile for s in result.sources}
    if not result.versions:
        return set()
    index = -1 if ref.version == "F" or ref.version not in result.versions else result.versions.index(ref.version)
    return {result.metafiles[index]}


def used_files(record: JobRecord, records: Mapping[str, JobRecord]) -> set[str]:
    """The tables a job uses (see the module's docstring), its own final ones included."""
    files = set()
    for group in record.outputs.values():
        files |= final_files(group)
    for connections in record.inputs.values():
        for connection in connections:
            source = records.get(connection.job)
            group = source.outputs.get(connection.group) if source is not None else None
            if group is not None:
                files |= final_files(group)
            for ref in connection.overrides.values():
                files |= _ref_files(ref, records)
    return files


def metafile_users(records: Mapping[str, JobRecord]) -> dict[str, set[str]]:
    """Each table in use, with the jobs that use it."""
    users: dict[str, set[str]] = {}
    for uid, record in records.items():
        for metafile in used_files(record, records):
            users.setdefault(metafile, set()).add(uid)
    return users


def ancestors(records: Mapping[str, JobRecord], uids: Iterable[str]) -> set[str]:
    """Every job the given jobs depend on through their inputs, directly or not."""
    seen: set[str] = set()
    todo = list(uids)
    while todo:
        record = records.get(todo.pop())
        for parent in input_parents(record) if record is not None else ():
            if f"J{parent}" not in seen:
                seen.add(f"J{parent}")
                todo.append(f"J{parent}")
    return seen


def blockers(project_dir: Path, records: Mapping[str, JobRecord], chosen: set[str], *, strict: bool,
             paths: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """For each job in ``chosen`` (to be cleared together), the jobs that stay and still use its files.

    A job is blocked by a staying job that passes its results through or is connected to them, or whose
    tables name one of its files (a stack, a map), directly or through a link (an import of files that lie
    in another job's folder). ``strict`` (bulk cleanup): every job that stays counts; otherwise (clearing jobs
    the user picked, to run them again) only completed, queued and running ones: a building, killed or
    failed job takes the new outputs when it is run again.
    """
    paths = {} if paths is None else paths
    owner = {m: uid for uid in chosen for m in own_files(records[uid])}
    where: dict[str, str | None] = {}
    blocked: dict[str, set[str]] = {}
    for uid, record in records.items():
        if uid in chosen or not (strict or record.status == JobStatus.COMPLETED or record.status.active):
            continue
        for metafile in own_files(record) | used_files(record, records):
            if metafile in owner:
                blocked.setdefault(owner[metafile], set()).add(uid)
                continue
            if metafile not in paths:
                paths[metafile] = data_paths(project_dir, metafile)
            for path in paths[metafile]:
                if path not in where:
                    where[path] = job_folder(project_dir, path)
                if where[path] in chosen:
                    blocked.setdefault(where[path], set()).add(uid)  # type: ignore[arg-type]
    return blocked


def job_folder(project_dir: Path, path: str) -> str | None:
    """The job folder (``J6``) a data path's file really lies in, links followed; None outside any."""
    real = Path(os.path.realpath(project_dir / path))
    try:
        top = real.relative_to(os.path.realpath(project_dir)).parts[0]
    except (ValueError, IndexError):
        return None
    return top if top.startswith("J") and top[1:].isdigit() else None


def data_paths(project_dir: Path, metafile: str) -> set[str]:
    """The files a table names in its path fields, each once, as the project names them (project-relative,
    normalised, or absolute). A table that cannot be read names nothing (the check reports it)."""
    path = project_dir / metafile
    try:
        fields = [f[0] for f in fileio.inspect(path)["dtype"] if is_path_field(f[0])]
        if not fields:
            return set()
        cols = fileio.load(path, fields=fields)
    except (CryoweaveError, OSError):
        return set()
    found: set[str] = set()
    for name in fields:
        column = cols[name]
        if column.ndim != 1:
            continue
        found |= {t if os.path.isabs(t) else os.path.normpath(t) for t in distinct_text(column) if t}
    return found


def distinct_text(column: np.ndarray) -> list[str]:
    """The distinct values of a text column (``str``, bytes or fixed-width bytes), as ``str``."""
    uniques, _codes = factorize(column.reshape(-1))
    return [u.decode("utf-8", errors="replace") if isinstance(u, bytes) else str(u) for u in uniques.tolist()]


@dataclass
class IntermediatePlan:
    """What clearing a job's intermediate results deletes: tables, data files, and the versions that go."""

    job: str
    tables: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    versions: dict[str, list[int]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)
    """Intermediate tables kept because other jobs use them: table → the jobs."""

    @property
    def files(self) -> list[str]:
        return [*self.tables, *self.data]


def plan_intermediate(project_dir: Path, record: JobRecord, records: Mapping[str, JobRecord],
                      users: Mapping[str, set[str]] | None = None,
                      paths: Mapping[str, set[str]] | None = None) -> IntermediatePlan:
    """What clearing the intermediate results of ``record`` would delete (nothing is deleted here).

    ``users`` (from :func:`metafile_users`) and ``paths`` (table → its data paths, a cache) may be given
    when planning for many jobs.
    """
    users = metafile_users(records) if users is None else users
    paths = {} if paths is None else paths

    def named(metafile: str) -> set[str]:
        if metafile not in paths:
            paths[metafile] = data_paths(project_dir, metafile)  # type: ignore[index]
        return paths[metafile]

    plan = IntermediatePlan(job=record.uid)
    mine = own_files(record)
    finals = set().union(*(final_files(g) for g in record.outputs.values()), set()) & mine
    doomed = set()
    for metafile in sorted(mine - finals):
        using = users.get(metafile, set()) - {record.uid}
        if using:
            plan.kept[metafile] = sorted(using)
        else:
            doomed.add(metafile)
    if not doomed:
        return plan
    plan.tables = sorted(doomed)
    for group in record.outputs.values():
        gone = [t.version for t in group.tables if t.metafile in doomed]
        if gone:
            plan.versions[group.name] = gone
    folder = record.uid + "/"
    every = set(users).union(*(own_files(r) for r in records.values()))
    in_use = every - doomed  # every table that stays, anywhere in the project
    real = os.path.realpath
    still_named = {real(project_dir / p) for m in in_use for p in named(m)}  # links followed
    candidates = set().union(*(named(m) for m in doomed))
    plan.data = sorted(p for p in candidates if p.startswith(folder) and job_folder(project_dir, p) == record.uid
                       and real(project_dir / p) not in still_named)
    return plan


def drop_versions(record: JobRecord, tables: Iterable[str]) -> None:
    """Take the versions held by deleted ``tables`` out of a job's record (the final ones never are)."""
    gone = set(tables)
    for group in record.outputs.values():
        final = group.tables[-1] if group.tables else None
        group.tables = [t for t in group.tables if t.metafile not in gone or t is final]
        for result in group.results.values():
            if result.passthrough or not result.versions:
                continue
            keep = [i for i, m in enumerate(result.metafiles) if m not in gone or i == len(result.metafiles) - 1]
            result.versions = [result.versions[i] for i in keep]
            result.metafiles = [result.metafiles[i] for i in keep]
            result.num_items = [result.num_items[i] for i in keep]


def apply_intermediate(project_dir: Path, record: JobRecord, plan: IntermediatePlan) -> int:
    """Delete what ``plan`` lists and take its versions out of ``record``; the bytes freed.

    The record must then be saved (in the same transaction that planned, so nothing changed in between).
    """
    freed = 0
    for name in plan.files:
        path = project_dir / name
        try:
            if path.is_file() and not path.is_symlink():
                freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
    drop_versions(record, plan.tables)
    return freed
