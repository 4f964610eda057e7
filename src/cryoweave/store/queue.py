"""The instance's run state: lanes, the active jobs of every project, heartbeats, the scheduler's lease.

These are instance-wide tables and columns (not project records): lanes are configuration of
the installation; a heartbeat is a timestamp column, beaten every few seconds without
rewriting the job's record file; the lease lets exactly one scheduler launch jobs at a time,
whichever process runs it (``cryoweave scheduler``, or an embedded one
while a command waits for a job).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, text, update

from cryoweave.errors import NotFoundError, ParamError
from cryoweave.model.lanes import LANE, ClusterLane, LocalLane
from cryoweave.model.records import JobRecord, utc_now
from cryoweave.model.status import ACTIVE, JobStatus
from cryoweave.store import database
from cryoweave.store.schema import instance_meta, jobs, lanes, projects
from cryoweave.store.store import Store
from cryoweave.store.transaction import aware, parse_uid

LEASE_KEY = "scheduler_lease"


# ---------------------------------------------------------------------- lanes
def list_lanes(store: Store) -> list[LocalLane | ClusterLane]:
    with database.transaction(store.engine, write=False) as conn:
        rows = conn.execute(select(lanes.c.config).order_by(lanes.c.name)).scalars().all()
    return [LANE.validate_json(r) for r in rows]


def get_lane(store: Store, name: str) -> LocalLane | ClusterLane | None:
    with database.transaction(store.engine, write=False) as conn:
        row = conn.execute(select(lanes.c.config).where(lanes.c.name == name)).scalar()
    return None if row is None else LANE.validate_json(row)


def save_lane(store: Store, lane: LocalLane | ClusterLane, *, replace: bool = False) -> LocalLane | ClusterLane:
    """Add a lane (or, with ``replace``, update the one of that name)."""
    with database.transaction(store.engine) as conn:
        old = conn.execute(select(lanes.c.config).where(lanes.c.name == lane.name)).scalar()
        if old is not None and not replace:
            raise ParamError(f"there is already a lane named {lane.name!r}; remove it first or replace it")
        lane = lane.model_copy(update={"created_at": LANE.validate_json(old).created_at if old else utc_now()})
        conn.execute(delete(lanes).where(lanes.c.name == lane.name))
        conn.execute(insert(lanes).values(name=lane.name, kind=lane.kind, config=lane.model_dump_json()))
    return lane


def remove_lane(store: Store, name: str) -> None:
    busy = [f"{j.project} {j.uid}" for j in active_jobs(store) if j.record.run and j.record.run.lane == name]
    if busy:
        raise ParamError(f"lane {name!r} has queued or running jobs ({', '.join(busy[:5])}); kill them or let "
                         "them finish first")
    with database.transaction(store.engine) as conn:
        if conn.execute(delete(lanes).where(lanes.c.name == name)).rowcount == 0:
            raise NotFoundError(f"there is no lane named {name!r} (cryoweave lane list shows them)")


# ---------------------------------------------------------------------- active jobs
@dataclass
class ActiveJob:
    """A queued or running job of any project, as the scheduler sees it."""

    project: str
    directory: str
    uid: str
    status: JobStatus
    updated_at: dt.datetime
    heartbeat_at: dt.datetime | None
    raw: str = field(repr=False)
    _record: JobRecord | None = field(default=None, repr=False)

    @property
    def record(self) -> JobRecord:
        if self._record is None:
            self._record = JobRecord.model_validate_json(self.raw)
        return self._record

    @property
    def key(self) -> tuple[str, str]:
        return self.project, self.uid


def active_jobs(store: Store) -> list[ActiveJob]:
    """Every job of every project that is queued, launched, started, running or waiting."""
    query = (select(projects.c.number.label("p"), projects.c.directory, jobs.c.number,
                    jobs.c.status, jobs.c.updated_at, jobs.c.heartbeat_at, jobs.c.record)
             .join(projects, projects.c.id == jobs.c.project_id)
             .where(jobs.c.status.in_([s.value for s in ACTIVE])))
    with database.transaction(store.engine, write=False) as conn:
        rows = conn.execute(query).all()
    return [ActiveJob(project=f"P{r.p}", directory=r.directory, uid=f"J{r.number}",
                      status=JobStatus(r.status), updated_at=aware(r.updated_at),
                      heartbeat_at=None if r.heartbeat_at is None else aware(r.heartbeat_at), raw=r.record)
            for r in rows]


def _job_row(conn, project: str, job: str):
    p, j = parse_uid(project, "P", "project"), parse_uid(job, "J", "job")
    return conn.execute(select(jobs.c.id, jobs.c.status, jobs.c.record).join(
        projects, projects.c.id == jobs.c.project_id).where(projects.c.number == p, jobs.c.number == j)).first()


def heartbeat(store: Store, project: str, job: str, token: str) -> bool:
    """Record that the worker of run ``token`` is alive; False when the job is no longer that run's."""
    with database.transaction(store.engine) as conn:
        row = _job_row(conn, project, job)
        if row is None or JobStatus(row.status) not in ACTIVE:
            return False
        run = json.loads(row.record).get("run") or {}
        if run.get("token") != token:
            return False
        conn.execute(update(jobs).where(jobs.c.id == row.id).values(heartbeat_at=utc_now()))
        return True


def descendants(store: Store, project: str, job: str) -> list[str]:
    """The jobs that take input from ``job``, directly or not, in number order."""
    p, j = parse_uid(project, "P", "project"), parse_uid(job, "J", "job")
    with database.transaction(store.engine, write=False) as conn:
        pid = conn.execute(select(projects.c.id).where(projects.c.number == p)).scalar()
        if pid is None:
            raise NotFoundError(f"there is no project P{p} on this instance")
        rows = conn.execute(text(
            "WITH RECURSIVE des(n) AS (SELECT child FROM job_parents WHERE project_id = :p AND parent = :j "
            "UNION SELECT jp.child FROM job_parents jp JOIN des ON jp.parent = des.n WHERE jp.project_id = :p) "
            "SELECT n FROM des"), {"p": pid, "j": j}).scalars().all()
    return [f"J{n}" for n in sorted(set(rows))]


# ---------------------------------------------------------------------- the scheduler's lease
def take_lease(store: Store, holder: str, seconds: float, describe: str = "") -> bool:
    """Become (or stay) the instance's scheduler for ``seconds``; False while another holds the lease."""
    now = utc_now().timestamp()
    with database.transaction(store.engine) as conn:
        database.first_use_lock(conn)
        query = select(instance_meta.c.value).where(instance_meta.c.key == LEASE_KEY)
        if database.is_postgres(store.engine):
            query = query.with_for_update()
        value = conn.execute(query).scalar()
        current = json.loads(value) if value else {}
        if current and current.get("holder") != holder and current.get("expires", 0) > now:
            return False
        new = json.dumps({"holder": holder, "expires": now + seconds, "who": describe})
        if value is None:
            conn.execute(insert(instance_meta).values(key=LEASE_KEY, value=new))
        else:
            conn.execute(update(instance_meta).where(instance_meta.c.key == LEASE_KEY).values(value=new))
        return True


def lease_holder(store: Store) -> dict | None:
    """Who holds the scheduler lease now (``None`` when nobody does)."""
    with database.transaction(store.engine, write=False) as conn:
        value = conn.execute(select(instance_meta.c.value).where(instance_meta.c.key == LEASE_KEY)).scalar()
    current = json.loads(value) if value else {}
    return current if current.get("expires", 0) > utc_now().timestamp() else None


def release_lease(store: Store, holder: str) -> None:
    with database.transaction(store.engine) as conn:
        value = conn.execute(select(instance_meta.c.value).where(instance_meta.c.key == LEASE_KEY)).scalar()
        if value and json.loads(value).get("holder") == holder:
            conn.execute(delete(instance_meta).where(instance_meta.c.key == LEASE_KEY))
