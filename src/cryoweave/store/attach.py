"""Attaching a project directory to an instance, and detaching it.

Attach reads and checks every record file first; only then, in one transaction, it imports the
project with a new ``P`` number (jobs and workspaces keep theirs) and the title "Imported: …",
and takes the directory's lock. Any failure leaves the database as it was.

A lock file names the instance holding a project. Another instance refuses to attach it unless
told to take it over (``take_over=True``), for instance after the first instance is gone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select

from cryoweave.errors import AttachError, RecordError
from cryoweave.model.records import Event, JobRecord, ProjectRecord, WorkspaceRecord, utc_now
from cryoweave.store import database
from cryoweave.store.directory import ProjectDirectory
from cryoweave.store.schema import events, job_parents, job_workspaces, jobs, projects, workspaces
from cryoweave.store.store import Store
from cryoweave.store.transaction import ProjectInfo, input_parents, project_info

IMPORTED = "Imported: "


@dataclass
class ProjectFiles:
    """Everything a project directory says, read and checked."""

    project: ProjectRecord
    workspaces: list[WorkspaceRecord]
    jobs: list[JobRecord]
    events: dict[str, list[Event]]


def read_project_files(directory: ProjectDirectory) -> ProjectFiles:
    """Read every record file of a project directory; a :class:`RecordError` names the bad one."""
    project = directory.read_project()
    spaces = directory.read_workspaces()
    known = {w.uid for w in spaces}
    records, logs = [], {}
    for number in directory.job_numbers():
        record = directory.read_job(number)
        missing = [w for w in record.workspaces if w not in known]
        if missing:
            raise RecordError(f"{directory.path / record.uid / 'job.json'}: in workspace {missing[0]}, which "
                              f"{directory.path / 'workspaces.json'} does not have")
        records.append(record)
        logs[record.uid] = directory.read_events(number)
    return ProjectFiles(project, spaces, records, logs)


def attach(store: Store, path: str | os.PathLike, *, take_over: bool = False) -> ProjectInfo:
    directory = ProjectDirectory(Path(path).expanduser().absolute())
    where = directory.path
    if not where.is_dir():
        raise AttachError(f"cannot attach {where}: no such directory")
    if not directory.is_project():
        raise AttachError(f"cannot attach {where}: not a cryoweave project directory (no project.json)")
    try:
        content = read_project_files(directory)
        lock = directory.read_lock()
    except RecordError as err:
        raise AttachError(f"cannot attach {where}: {err}") from None
    if lock is not None and lock.instance_id != store.instance_id and not take_over:
        raise AttachError(f"cannot attach {where}: it is held by {lock.describe()}. Detach it there, or "
                          "take it over (--take-over) if this directory is a copy or that instance is gone")
    with database.transaction(store.engine) as conn:
        taken = conn.execute(select(projects.c.number).where(projects.c.directory == str(where))).scalar()
        if taken is not None:
            raise AttachError(f"cannot attach {where}: it is already attached to this instance as P{taken}")
        info = _import(store, conn, where, content)
        directory.write_project(info.record())
        directory.write_lock(store.instance_id, str(store.settings.home), store.settings.database_display)
    return store.get_project(info.uid)


def _import(store: Store, conn, where: Path, content: ProjectFiles) -> ProjectInfo:
    number = store.next_number(conn, "next_project")
    title = content.project.title
    title = title if title.startswith(IMPORTED) else IMPORTED + title
    now = utc_now()
    ws_numbers = [int(w.uid[1:]) for w in content.workspaces]
    job_numbers = [r.number for r in content.jobs]
    conn.execute(insert(projects).values(
        number=number, title=title, description=content.project.description, directory=str(where),
        archived=content.project.archived,
        keep_final_only=content.project.keep_final_only, next_workspace=max(ws_numbers, default=0) + 1,
        next_job=max(job_numbers, default=0) + 1, created_at=now, updated_at=now))
    project_id = conn.execute(select(projects.c.id).where(projects.c.number == number)).scalar_one()
    if content.workspaces:
        conn.execute(insert(workspaces), [
            {"project_id": project_id, "number": int(w.uid[1:]), "title": w.title, "description": w.description,
             "created_at": w.created_at, "updated_at": w.updated_at} for w in content.workspaces])
    if content.jobs:
        conn.execute(insert(jobs), [
            {"project_id": project_id, "number": r.number, "type": r.type, "title": r.title,
             "status": r.status.value, "created_at": r.created_at, "updated_at": r.updated_at,
             "record": r.model_dump_json()} for r in content.jobs])
        job_ids = dict(conn.execute(select(jobs.c.number, jobs.c.id).where(jobs.c.project_id == project_id)).all())
        ws_ids = dict(conn.execute(select(workspaces.c.number, workspaces.c.id)
                                   .where(workspaces.c.project_id == project_id)).all())
        links = [{"job_id": job_ids[r.number], "workspace_id": ws_ids[int(w[1:])]}
                 for r in content.jobs for w in r.workspaces]
        if links:
            conn.execute(insert(job_workspaces), links)
        edges = {(r.number, parent) for r in content.jobs for parent in input_parents(r)}
        if edges:
            conn.execute(insert(job_parents), [{"project_id": project_id, "child": c, "parent": p}
                                               for c, p in sorted(edges)])
        rows = [{"job_id": job_ids[r.number], "seq": e.seq, "record": e.model_dump_json()}
                for r in content.jobs for e in content.events.get(r.uid, [])]
        if rows:
            conn.execute(insert(events), rows)
    row = conn.execute(select(projects).where(projects.c.id == project_id)).one()
    return project_info(row, len(content.jobs), len(content.workspaces))


def detach(store: Store, project: str) -> Path:
    """Release a project: its records are exported, it leaves this instance, its lock is removed."""
    return store.forget_project(project, delete_files=False)

