"""The store: the instance database and the project directories, kept in step.

Every change runs in one database transaction that first locks its project (see
:mod:`~cryoweave.store.database`), and writes the changed record files into the project
directory *before* committing. So the directory is never behind the database: if the process
dies between the two, the directory holds the newer state and attaching it recovers it.

Higher layers change jobs through :meth:`Store.edit_job`, giving a function that checks and
applies the change to the job record with the project locked: the store stays persistence only.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cryoweave.errors import AttachError, NotFoundError, ParamError, StatusError, StoreError
from cryoweave.model.records import Event, JobRecord, WorkspaceRecord, utc_now
from cryoweave.settings import Settings
from cryoweave.store import database
from cryoweave.store.directory import ProjectDirectory, slug
from cryoweave.store.schema import instance_meta, job_workspaces, jobs, projects, workspaces
from cryoweave.store.transaction import JobSummary, ProjectInfo, ProjectTx, aware, parse_uid, project_info


def _label_changes(what: str, title: str | None, description: str | None) -> dict[str, Any]:
    """The columns a rename or new description changes (a title cannot be blank)."""
    values: dict[str, Any] = {"updated_at": utc_now()}
    if title is not None:
        if not title.strip():
            raise ParamError(f"a {what} needs a title")
        values["title"] = title.strip()
    if description is not None:
        values["description"] = description
    return values


class Store:
    """The instance: its database (SQLite by default, PostgreSQL by URL) and its projects."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        try:
            self.settings.home.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot use {self.settings.home} as the cryoweave home (CRYOWEAVE_HOME): "
                             f"{err.strerror or err}") from None
        self.engine = database.connect(self.settings.database_url)
        database.upgrade(self.engine)
        self.instance_id = database.instance_id(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def project(self, uid: str, *, write: bool = True) -> Iterator[ProjectTx]:
        """A project for one transaction: locked for writing, or as it stands for reading."""
        number = parse_uid(uid, "P", "project")
        with database.transaction(self.engine, write=write) as conn:
            query = select(projects).where(projects.c.number == number)
            if write and database.is_postgres(self.engine):
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise NotFoundError(f"there is no project P{number} on this instance "
                                    "(cryoweave project list shows them)")
            yield ProjectTx(self, conn, row)

    def next_number(self, conn: Connection, key: str) -> int:
        """Take the next number of an instance-wide counter (locked until the transaction ends)."""
        # The row must exist before it can be locked: two first users would both insert it otherwise.
        dialect_insert = postgresql_insert if database.is_postgres(self.engine) else sqlite_insert
        conn.execute(dialect_insert(instance_meta).values(key=key, value="1").on_conflict_do_nothing())
        query = select(instance_meta.c.value).where(instance_meta.c.key == key)
        if database.is_postgres(self.engine):
            query = query.with_for_update()
        current = int(conn.execute(query).scalar_one())
        conn.execute(update(instance_meta).where(instance_meta.c.key == key).values(value=str(current + 1)))
        return current

    # ------------------------------------------------------------------ projects
    def create_project(self, title: str, container: str | Path, description: str = "") -> ProjectInfo:
        """A new project in a new folder named after its title inside ``container``."""
        if not title.strip():
            raise ParamError("a project needs a title")
        container = Path(container).expanduser().absolute()
        if container.exists() and not container.is_dir():
            raise ParamError(f"{container} is not a directory; name the folder the project goes into")
        try:
            container.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ParamError(f"cannot make the project folder in {container}: {err.strerror or err}") from None
        now = utc_now()
        with database.transaction(self.engine) as conn:
            number = self.next_number(conn, "next_project")  # from here on, project creation is serialised
            directory = self._claim_directory(conn, container, slug(title))
            conn.execute(insert(projects).values(
                number=number, title=title.strip(), description=description, directory=str(directory),
                archived=False, next_workspace=1, next_job=1, created_at=now, updated_at=now))
            row = conn.execute(select(projects).where(projects.c.number == number)).one()
            folder = ProjectDirectory(directory)
            folder.write_project(project_info(row).record())
            folder.write_workspaces([])
            folder.write_lock(self.instance_id, str(self.settings.home), self.settings.database_display)
        return project_info(row)

    @staticmethod
    def _claim_directory(conn: Connection, container: Path, base: str) -> Path:
        """Make a new folder ``base``, ``base-2`` ... that no project (here or elsewhere) uses yet."""
        used = set(conn.execute(select(projects.c.directory)).scalars())
        for n in range(1, 10_000):
            candidate = container / (base if n == 1 else f"{base}-{n}")
            if str(candidate) in used:
                continue
            try:
                candidate.mkdir()  # exclusive: another instance creating the same name loses here
            except FileExistsError:
                continue
            except OSError as err:
                raise ParamError(f"cannot make the project folder {candidate}: {err.strerror or err}") from None
            return candidate
        raise ParamError(f"too many projects named {base!r} in {container}")

    def projects(self, number: int | None = None) -> list[ProjectInfo]:
        """The instance's projects (or the one numbered ``number``) with their job and workspace counts."""
        jobs_q = select(jobs.c.project_id, func.count()).group_by(jobs.c.project_id)
        spaces_q = select(workspaces.c.project_id, func.count()).group_by(workspaces.c.project_id)
        rows_q = select(projects).order_by(projects.c.number)
        if number is not None:
            rows_q = rows_q.where(projects.c.number == number)
            only = select(projects.c.id).where(projects.c.number == number).scalar_subquery()
            jobs_q, spaces_q = jobs_q.where(jobs.c.project_id == only), spaces_q.where(workspaces.c.project_id == only)
        with database.transaction(self.engine, write=False) as conn:
            counts = dict(conn.execute(jobs_q).all())
            spaces = dict(conn.execute(spaces_q).all())
            rows = conn.execute(rows_q).all()
        return [project_info(r, counts.get(r.id, 0), spaces.get(r.id, 0)) for r in rows]

    def get_project(self, uid: str) -> ProjectInfo:
        number = parse_uid(uid, "P", "project")
        found = self.projects(number)
        if not found:
            raise NotFoundError(f"there is no project P{number} on this instance "
                                "(cryoweave project list shows them)")
        return found[0]

    def update_project(self, uid: str, *, title: str | None = None, description: str | None = None,
                       archived: bool | None = None, keep_final_only: bool | None = None) -> ProjectInfo:
        with self.project(uid) as tx:
            if archived is None or archived:  # unarchiving is the one change an archived project takes
                tx.require_writable()
            else:
                tx.require_held()
            values = _label_changes("project", title, description)
            if archived is not None:
                values["archived"] = archived
            if keep_final_only is not None:
                values["keep_final_only"] = keep_final_only
            tx.conn.execute(update(projects).where(projects.c.id == tx.row.id).values(**values))
            tx.export_project()
        return self.get_project(uid)

    # ------------------------------------------------------------------ workspaces
    def create_workspace(self, project: str, title: str, description: str = "") -> WorkspaceRecord:
        with self.project(project) as tx:
            return tx.create_workspace(title, description)

    def workspaces(self, project: str) -> list[WorkspaceRecord]:
        with self.project(project, write=False) as tx:
            return tx.workspaces()

    def update_workspace(self, project: str, workspace: str, *, title: str | None = None,
                         description: str | None = None) -> WorkspaceRecord:
        with self.project(project) as tx:
            tx.require_writable()
            ws_id = tx.workspace_ids([workspace])[f"W{parse_uid(workspace, 'W', 'workspace')}"]
            values = _label_changes("workspace", title, description)
            tx.conn.execute(update(workspaces).where(workspaces.c.id == ws_id).values(**values))
            tx.export_workspaces()
            return next(w for w in tx.workspaces() if w.uid == f"W{parse_uid(workspace, 'W', 'workspace')}")

    # ------------------------------------------------------------------ jobs
    def create_job(self, project: str, build: Callable[[ProjectTx, str], JobRecord],
                   after: Callable[[ProjectTx, int, JobRecord], None] | None = None) -> JobRecord:
        """A new job numbered in its project; ``build(tx, uid)`` makes its record (checks included);
        ``after(tx, job_id, record)``, if given, adds to it in the same transaction (events of an import)."""
        with self.project(project) as tx:
            tx.require_writable()
            number = tx.row.next_job
            record = build(tx, f"J{number}")
            result = tx.conn.execute(insert(jobs).values(
                project_id=tx.row.id, number=number, type=record.type, title=record.title,
                status=record.status.value, created_at=record.created_at, updated_at=record.updated_at,
                record=record.model_dump_json()))
            tx.conn.execute(update(projects).where(projects.c.id == tx.row.id).values(next_job=number + 1))
            tx.save_job(result.inserted_primary_key[0], record, f"created ({record.type})")
            if after is not None:
                after(tx, result.inserted_primary_key[0], record)
            return record

    def edit_job(self, project: str, job: str, change: Callable[[ProjectTx, JobRecord], str | None]) -> JobRecord:
        """Apply ``change`` to a job with its project locked; its return value is logged as an event."""
        with self.project(project) as tx:
            tx.require_writable()
            job_id, record = tx.job(job)
            event = change(tx, record)
            tx.save_job(job_id, record, event)
            return record

    def get_job(self, project: str, job: str) -> JobRecord:
        with self.project(project, write=False) as tx:
            return tx.job(job)[1]

    def job_records(self, project: str) -> dict[str, JobRecord]:
        """Every job record of a project, by uid, in number order (one read)."""
        with self.project(project, write=False) as tx:
            return tx.records()

    def job_events(self, project: str, job: str) -> list[Event]:
        with self.project(project, write=False) as tx:
            return tx.events(tx.job(job)[0])

    def add_event(self, project: str, job: str, text: str, *, level: str = "info",
                  data: dict | None = None) -> Event:
        """Add an entry to a job's event log (the job record itself is not changed)."""
        with self.project(project) as tx:
            tx.require_held()
            job_id, record = tx.job(job)
            return tx.add_event(job_id, record.uid, text, level=level, data=data)

    def jobs(self, project: str, *, workspace: str | None = None, status: str | None = None,
             type: str | None = None) -> list[JobSummary]:
        """The jobs of a project (optionally of one workspace, status or type), in number order."""
        number = parse_uid(project, "P", "project")
        query = (select(jobs.c.number, jobs.c.type, jobs.c.title, jobs.c.status, jobs.c.created_at,
                        jobs.c.updated_at).join(projects, projects.c.id == jobs.c.project_id)
                 .where(projects.c.number == number).order_by(jobs.c.number))
        if status is not None:
            query = query.where(jobs.c.status == status)
        if type is not None:
            query = query.where(jobs.c.type == type)
        if workspace is not None:
            ws = parse_uid(workspace, "W", "workspace")
            query = (query.join(job_workspaces, job_workspaces.c.job_id == jobs.c.id)
                     .join(workspaces, workspaces.c.id == job_workspaces.c.workspace_id)
                     .where(workspaces.c.number == ws))
        with database.transaction(self.engine, write=False) as conn:
            if conn.execute(select(projects.c.id).where(projects.c.number == number)).first() is None:
                raise NotFoundError(f"there is no project P{number} on this instance")
            rows = conn.execute(query).all()
        return [JobSummary(uid=f"J{r.number}", type=r.type, title=r.title, status=r.status,
                           created_at=aware(r.created_at), updated_at=aware(r.updated_at)) for r in rows]

    # ------------------------------------------------------------------ removing projects
    def forget_project(self, project: str, *, delete_files: bool) -> Path:
        """Remove a project from the instance (its rows); optionally delete its directory too."""
        with self.project(project) as tx:
            active = tx.conn.execute(select(jobs.c.number).where(
                jobs.c.project_id == tx.row.id, jobs.c.status.in_(["queued", "launched", "started", "running",
                                                                   "waiting"]))).scalars().all()
            if active:
                raise StatusError(f"project {tx.uid} has active jobs ({', '.join(f'J{n}' for n in active)}); "
                                  "kill or finish them first")
            directory = tx.directory
            present = directory.path.is_dir()
            held = present and tx.holds_directory()
            if delete_files and present and not held:
                raise AttachError(f"project {tx.uid}'s directory is held by another instance; it is not "
                                  f"deleted. Detach {tx.uid} here instead (cryoweave project detach {tx.uid})")
            if held and not delete_files:
                tx.export_project()
                tx.export_workspaces()
            tx.conn.execute(delete(projects).where(projects.c.id == tx.row.id))
            tx.conn.execute(delete(instance_meta).where(instance_meta.c.key == f"archive:{tx.uid}"))
        # Only once the rows are gone: a failed commit must leave the files and the lock as they were;
        # and a directory another instance now holds is left to it.
        if delete_files and present:
            shutil.rmtree(directory.path, ignore_errors=True)
        elif held:
            directory.remove_lock()
        return directory.path
