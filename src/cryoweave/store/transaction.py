"""One project locked for one transaction, and the rows the store hands out.

A :class:`ProjectTx` reads and writes its project's rows and writes the changed record files into
the project directory before the transaction commits (see :mod:`~cryoweave.store.store`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from cryoweave.errors import AttachError, NotFoundError, ParamError, RecordError, StatusError
from cryoweave.model.records import Event, JobRecord, ProjectRecord, WorkspaceRecord, utc_now
from cryoweave.store.directory import ProjectDirectory
from cryoweave.store.schema import events, job_parents, job_workspaces, jobs, projects, workspaces

if TYPE_CHECKING:
    from cryoweave.store.store import Store


@dataclass(frozen=True)
class ProjectInfo:
    """A project as listed: identity, title, where it lives, whether it is archived, its size."""

    uid: str
    title: str
    description: str
    directory: Path
    archived: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    jobs: int = 0
    workspaces: int = 0
    keep_final_only: bool = False

    def record(self) -> ProjectRecord:
        return ProjectRecord(uid=self.uid, title=self.title, description=self.description,
                             created_at=self.created_at, updated_at=self.updated_at, archived=self.archived,
                             keep_final_only=self.keep_final_only)


@dataclass(frozen=True)
class JobSummary:
    """A job as listed (no parameters or connections): cheap to read for thousands of jobs."""

    uid: str
    type: str
    title: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime


def parse_uid(uid: str, letter: str, what: str) -> int:
    text = str(uid).strip()
    if len(text) > 1 and text[0].upper() == letter and text[1:].isdigit() and int(text[1:]) > 0:
        return int(text[1:])
    raise NotFoundError(f"{uid!r} is not a {what} id; write it as {letter}1, {letter}2 ...")


def aware(value: dt.datetime) -> dt.datetime:
    """A time read back from the database, as UTC (SQLite drops the zone)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def project_info(row: Any, jobs_count: int = 0, workspaces_count: int = 0) -> ProjectInfo:
    """A ``projects`` row as listed."""
    return ProjectInfo(uid=f"P{row.number}", title=row.title, description=row.description,
                       directory=Path(row.directory), archived=bool(row.archived),
                       created_at=aware(row.created_at), updated_at=aware(row.updated_at),
                       jobs=jobs_count, workspaces=workspaces_count,
                       keep_final_only=bool(getattr(row, "keep_final_only", False)))


def input_parents(record: JobRecord) -> set[int]:
    """The numbers of the jobs a job takes inputs from (connected groups and single-slot overrides)."""
    jobs_ = {c.job for conns in record.inputs.values() for c in conns}
    jobs_ |= {ref.job for conns in record.inputs.values() for c in conns for ref in c.overrides.values()}
    return {parse_uid(j, "J", "job") for j in jobs_}


class ProjectTx:
    """A project locked for one transaction: reads and writes its rows and record files."""

    def __init__(self, store: Store, conn: Connection, row: Any):
        self.store, self.conn, self.row = store, conn, row
        self.uid = f"P{row.number}"
        self.directory = ProjectDirectory(row.directory)

    def require_writable(self) -> None:
        if self.row.archived:
            raise StatusError(f"project {self.uid} is archived (read-only); unarchive it first")
        self.require_held()

    def holds_directory(self) -> bool:
        """Whether this instance holds the project's directory (its lock names this instance)."""
        try:
            lock = self.directory.read_lock()
        except RecordError:
            return False
        return lock is None or lock.instance_id == self.store.instance_id

    def require_held(self) -> None:
        """Refuse to write into a directory another instance has taken over (its lock says so)."""
        if not self.directory.path.is_dir():
            raise AttachError(f"project {self.uid}'s directory {self.directory.path} is missing; attach it from "
                              f"where it is now, or detach {self.uid} (cryoweave project detach {self.uid})")
        if not self.holds_directory():
            lock = self.directory.read_lock()
            holder = lock.describe() if lock else "another instance (its lock file is unreadable)"
            raise AttachError(f"project {self.uid}'s directory {self.directory.path} is now held by {holder}; "
                              f"this instance can only detach it (cryoweave project detach {self.uid})")

    def info(self) -> ProjectInfo:
        return project_info(self.row)

    def export_project(self) -> None:
        row = self.conn.execute(select(projects).where(projects.c.id == self.row.id)).one()
        self.directory.write_project(project_info(row).record())

    def export_workspaces(self) -> None:
        self.directory.write_workspaces(self.workspaces())

    def workspaces(self) -> list[WorkspaceRecord]:
        rows = self.conn.execute(select(workspaces).where(workspaces.c.project_id == self.row.id)
                                 .order_by(workspaces.c.number)).all()
        return [WorkspaceRecord(uid=f"W{r.number}", title=r.title, description=r.description,
                                created_at=aware(r.created_at), updated_at=aware(r.updated_at)) for r in rows]

    def create_workspace(self, title: str, description: str = "") -> WorkspaceRecord:
        self.require_writable()
        if not title.strip():
            raise ParamError("a workspace needs a title")
        number = self.conn.execute(select(projects.c.next_workspace).where(projects.c.id == self.row.id)).scalar_one()
        now = utc_now()
        self.conn.execute(insert(workspaces).values(project_id=self.row.id, number=number, title=title,
                                                    description=description, created_at=now, updated_at=now))
        self.conn.execute(update(projects).where(projects.c.id == self.row.id).values(
            next_workspace=number + 1, updated_at=now))
        self.export_workspaces()
        return next(w for w in self.workspaces() if w.uid == f"W{number}")

    def workspace_ids(self, uids: list[str]) -> dict[str, int]:
        numbers = {parse_uid(u, "W", "workspace"): u for u in uids}
        rows = self.conn.execute(select(workspaces.c.id, workspaces.c.number).where(
            workspaces.c.project_id == self.row.id, workspaces.c.number.in_(numbers))).all()
        found = {f"W{r.number}": r.id for r in rows}
        missing = [u for u in (f"W{n}" for n in numbers) if u not in found]
        if missing:
            raise NotFoundError(f"project {self.uid} has no workspace {missing[0]}")
        return found

    def job(self, uid: str) -> tuple[int, JobRecord]:
        number = parse_uid(uid, "J", "job")
        row = self.conn.execute(select(jobs.c.id, jobs.c.record).where(
            jobs.c.project_id == self.row.id, jobs.c.number == number)).first()
        if row is None:
            raise NotFoundError(f"project {self.uid} has no job J{number}")
        return row.id, JobRecord.model_validate_json(row.record)

    def records(self) -> dict[str, JobRecord]:
        """Every job record of the project, by uid, in number order (one query)."""
        rows = self.conn.execute(select(jobs.c.number, jobs.c.record).where(jobs.c.project_id == self.row.id)
                                 .order_by(jobs.c.number)).all()
        return {f"J{r.number}": JobRecord.model_validate_json(r.record) for r in rows}

    def documents(self) -> dict[str, dict]:
        """Every job record of the project as plain JSON data, by uid: for listings of thousands of jobs,
        where validating each record (with its spec) would cost more than the list is worth."""
        rows = self.conn.execute(select(jobs.c.number, jobs.c.record).where(jobs.c.project_id == self.row.id)
                                 .order_by(jobs.c.number)).all()
        return {f"J{r.number}": json.loads(r.record) for r in rows}

    def parents(self) -> dict[str, list[str]]:
        """The jobs each job takes inputs from (see :func:`input_parents`), by uid, for the whole project."""
        rows = self.conn.execute(select(job_parents.c.child, job_parents.c.parent)
                                 .where(job_parents.c.project_id == self.row.id)
                                 .order_by(job_parents.c.child, job_parents.c.parent)).all()
        found: dict[str, list[str]] = {}
        for child, parent in rows:
            found.setdefault(f"J{child}", []).append(f"J{parent}")
        return found

    def ancestors(self, record: JobRecord) -> set[str]:
        """Every job a job depends on through its inputs, directly or not (one recursive query)."""
        direct = input_parents(record)
        if not direct:
            return set()
        start = " UNION ".join(f"SELECT {n}" for n in sorted(direct))
        rows = self.conn.execute(text(
            f"WITH RECURSIVE anc(n) AS ({start} UNION SELECT jp.parent FROM job_parents jp JOIN anc "
            "ON jp.child = anc.n WHERE jp.project_id = :p) SELECT n FROM anc"), {"p": self.row.id}).scalars()
        return {f"J{n}" for n in rows}

    def save_job(self, job_id: int, record: JobRecord, event: str | None = None, *, level: str = "info",
                 data: dict | None = None) -> None:
        """Store a changed job record (and an event about it), then write its files."""
        record.updated_at = utc_now()
        self.conn.execute(update(jobs).where(jobs.c.id == job_id).values(
            type=record.type, title=record.title, status=record.status.value, updated_at=record.updated_at,
            record=record.model_dump_json()))
        links = self.workspace_ids(record.workspaces)
        self.conn.execute(delete(job_parents).where(job_parents.c.project_id == self.row.id,
                                                    job_parents.c.child == record.number))
        parents = input_parents(record)
        if parents:
            self.conn.execute(insert(job_parents), [{"project_id": self.row.id, "child": record.number, "parent": n}
                                                    for n in sorted(parents)])
        self.conn.execute(delete(job_workspaces).where(job_workspaces.c.job_id == job_id))
        if links:
            self.conn.execute(insert(job_workspaces), [{"job_id": job_id, "workspace_id": w}
                                                       for w in links.values()])
        self.directory.write_job(record)
        if event is not None:
            self.add_event(job_id, record.uid, event, level=level, data=data)

    def add_event(self, job_id: int, job_uid: str, text: str, *, level: str = "info",
                  data: dict | None = None) -> Event:
        seq = (self.conn.execute(select(func.max(events.c.seq)).where(events.c.job_id == job_id)).scalar()
               or 0) + 1
        event = Event(seq=seq, time=utc_now(), level=level, text=text, data=data or {})
        self.conn.execute(insert(events).values(job_id=job_id, seq=seq, record=event.model_dump_json()))
        if not self.directory.append_event(job_uid, event):  # the log is not what the database says: rewrite
            self.directory.write_events(job_uid, self.events(job_id))
        return event

    def events(self, job_id: int) -> list[Event]:
        rows = self.conn.execute(select(events.c.record).where(events.c.job_id == job_id)
                                 .order_by(events.c.seq)).scalars()
        return [Event.model_validate_json(r) for r in rows]

    def touch(self) -> None:
        self.conn.execute(update(projects).where(projects.c.id == self.row.id).values(updated_at=utc_now()))
