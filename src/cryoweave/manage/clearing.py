"""Freeing disk space: clear intermediate results, clear killed and failed jobs, clear jobs that are not final.

Three actions, each with a dry run that lists what would go and how many bytes it frees:

* **clear intermediate results** (a job, a workspace or the whole project): the versions of each output
  before the final one are deleted, except versions that another job uses (a connection, a result
  override at that version, a passthrough); the final version of every result always stays
  (:mod:`cryoweave.builder.usage` decides, file by file).
* **clear killed/failed jobs**: they go back to building; their files are deleted.
* **clear non-final jobs**: every job that is neither marked final nor an ancestor of a final job goes
  back to building (refused while no job is marked final: it would clear the whole project).

Clearing never deletes a file that a job which stays uses: a job whose tables are used by another job
that is not cleared with it (a passthrough, a connection, an override), or whose data files (stacks,
maps) the tables of such a job name, is kept and the report says by which jobs. The check repeats until
no kept job depends on a cleared one. Bytes freed count regular files only (a link frees nothing; a file
with another hard link frees nothing either).

>>> report = clear_intermediate(store, "P1", dry_run=True)   # doctest: +SKIP
>>> report.bytes, [j.job for j in report.jobs]                # doctest: +SKIP
(1234567890, ['J12', 'J15'])
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryoweave.builder import usage
from cryoweave.builder.edits import KEEP_WHEN_CLEARED
from cryoweave.errors import StatusError
from cryoweave.model.records import JobRecord
from cryoweave.model.status import JobStatus
from cryoweave.run import actions
from cryoweave.store import ProjectTx, Store
from cryoweave.store.transaction import parse_uid


class Action(enum.StrEnum):
    INTERMEDIATE = "clear intermediate results"
    FAILED = "clear killed/failed jobs"
    NON_FINAL = "clear non-final jobs"


COMMANDS = {Action.INTERMEDIATE: "cryoweave project clear-intermediate {p}",
            Action.FAILED: "cryoweave project cleanup {p} --killed-failed",
            Action.NON_FINAL: "cryoweave project cleanup {p} --non-final"}
"""The command that takes each action (``{p}``: the project)."""


@dataclass
class JobClearing:
    """One job's part of an action: the files that go (project-relative) and the bytes they free."""

    job: str
    type: str
    title: str
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    versions: dict[str, list[int]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)
    """Files kept because jobs that stay use them: file → those jobs."""


@dataclass
class ClearingReport:
    project: str
    action: Action
    dry_run: bool
    jobs: list[JobClearing] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Jobs the action would have cleared but keeps: job → why."""

    @property
    def bytes(self) -> int:
        return sum(j.bytes for j in self.jobs)

    @property
    def command(self) -> str:
        return COMMANDS[self.action].format(p=self.project)


def freed_bytes(paths: Iterable[Path]) -> int:
    """What deleting these paths frees: regular files with no other hard link (links free nothing)."""
    total = 0
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            total += st.st_size
    return total


def folder_files(project_dir: Path, uid: str) -> list[str]:
    """Every file of a job's folder that clearing the job deletes (project-relative)."""
    top = project_dir / uid
    if not top.is_dir():
        return []
    found = []
    for folder, dirs, files in os.walk(top):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder) / name
            if path.parent == top and name in KEEP_WHEN_CLEARED:
                continue
            found.append(path.relative_to(project_dir).as_posix())
    return sorted(found)


# ------------------------------------------------------------------------------------------ intermediate
def _scope(store: Store, project: str, records: dict[str, JobRecord], jobs: Iterable[str] | None,
           workspace: str | None) -> list[str]:
    if jobs is not None:
        chosen = [f"J{parse_uid(j, 'J', 'job')}" for j in jobs]
        missing = [j for j in chosen if j not in records]
        if missing:
            raise StatusError(f"project {project} has no job {missing[0]}")
        return chosen
    if workspace is not None:
        return [j.uid for j in store.jobs(project, workspace=workspace)]
    return list(records)


def clear_intermediate(store: Store, project: str, *, jobs: Iterable[str] | None = None,
                       workspace: str | None = None, dry_run: bool = False) -> ClearingReport:
    """Delete the intermediate results of some jobs (default: every job of the project) that no job uses."""
    project = store.get_project(project).uid
    records = store.job_records(project)
    directory = store.get_project(project).directory
    report = ClearingReport(project, Action.INTERMEDIATE, dry_run)
    users = usage.metafile_users(records)
    paths: dict[str, set[str]] = {}
    for uid in _scope(store, project, records, jobs, workspace):
        record = records[uid]
        if record.status.active:
            report.skipped[uid] = f"{record.status.value}: its outputs are still being written"
            continue
        plan = usage.plan_intermediate(directory, record, records, users, paths)
        if not plan.tables and not plan.kept:
            continue
        entry = JobClearing(uid, record.type, record.title, plan.files,
                            freed_bytes(directory / f for f in plan.files), plan.versions, plan.kept)
        if not dry_run and plan.tables:
            entry.bytes = _apply_intermediate(store, project, uid, paths)
        report.jobs.append(entry)
    return report


def _apply_intermediate(store: Store, project: str, uid: str, paths: dict[str, set[str]]) -> int:
    """Plan again with the project locked (nothing changes in between), then delete; the bytes freed."""
    freed = 0

    def change(tx: ProjectTx, record: JobRecord) -> str:
        nonlocal freed
        if record.status.active:
            raise StatusError(f"job {record.uid} is {record.status.value}; its intermediate results are cleared "
                              "once it has ended")
        records = tx.records()
        records[record.uid] = record
        plan = usage.plan_intermediate(tx.directory.path, record, records, paths=paths)
        freed = freed_bytes(tx.directory.path / f for f in plan.files)
        usage.apply_intermediate(tx.directory.path, record, plan)
        versions = "; ".join(f"{g} {', '.join(map(str, v))}" for g, v in plan.versions.items()) or "none"
        return f"intermediate results cleared: versions {versions}; {len(plan.files)} files, {freed:,} bytes freed"
    store.edit_job(project, uid, change)
    return freed


# ------------------------------------------------------------------------------------------ cleanup
def _candidates(records: dict[str, JobRecord], action: Action) -> tuple[set[str], dict[str, str]]:
    ended = {u for u, r in records.items() if r.status in actions.ENDED and not r.final}
    if action == Action.FAILED:
        return {u for u in ended if records[u].status in (JobStatus.KILLED, JobStatus.FAILED)}, {}
    finals = [u for u, r in records.items() if r.final]
    if not finals:
        raise StatusError("no job of this project is marked final, so every job would be cleared; mark the jobs "
                          "whose results you keep first (cryoweave job mark-final P J), then clean up")
    needed = usage.ancestors(records, finals)
    return ended - needed, {u: "an ancestor of a final job" for u in ended & needed}


def cleanup(store: Store, project: str, action: Action | str, *, dry_run: bool = False) -> ClearingReport:
    """Clear killed and failed jobs (``Action.FAILED``) or jobs that are not final nor ancestors of a final
    job (``Action.NON_FINAL``): back to building, their files deleted, except jobs that others still use."""
    action = Action(action)
    if action == Action.INTERMEDIATE:
        return clear_intermediate(store, project, dry_run=dry_run)
    info = store.get_project(project)
    records = store.job_records(info.uid)
    chosen, skipped = _candidates(records, action)
    paths: dict[str, set[str]] = {}
    while True:  # a kept job keeps what it uses: repeat until nothing more is kept
        blocked = usage.blockers(info.directory, records, chosen, strict=True, paths=paths)
        if not blocked:
            break
        for uid, by in blocked.items():
            skipped[uid] = "used by " + ", ".join(sorted(by, key=lambda u: int(u[1:])))
        chosen -= set(blocked)
    report = ClearingReport(info.uid, action, dry_run, skipped=skipped)
    for uid in sorted(chosen, key=lambda u: int(u[1:])):
        record = records[uid]
        files = folder_files(info.directory, uid)
        report.jobs.append(JobClearing(uid, record.type, record.title, files,
                                       freed_bytes(info.directory / f for f in files)))
    if not dry_run and report.jobs:
        actions.clear_jobs(store, info.uid, [j.job for j in report.jobs])
    return report


def reclaimable(store: Store, project: str) -> dict[str, dict[str, int]]:
    """What each action would free, job by job (dry runs): ``{action: {job: bytes}}``."""
    found: dict[str, dict[str, int]] = {}
    for action in Action:
        try:
            report = cleanup(store, project, action, dry_run=True)
        except StatusError:
            continue  # no final job: nothing to say about non-final ones
        found[action.value] = {j.job: j.bytes for j in report.jobs}
    return found
