"""What users do to runs: queue to a lane, wait, kill, clear (with descendants), restart, clone.

>>> queue(store, "P1", "J7", lane="local")                 # doctest: +SKIP
>>> wait(store, "P1", "J7", timeout=600).status  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import socket
import time
from pathlib import Path

from cryoweave.builder import edits, lifecycle, usage
from cryoweave.errors import CryoweaveError, ParamError, StatusError
from cryoweave.model.lanes import ClusterLane
from cryoweave.model.records import JobRecord, RunInfo
from cryoweave.model.status import JobStatus
from cryoweave.run import cluster, local
from cryoweave.run.lanes import LOCAL, get_lane
from cryoweave.run.scheduler import Scheduler, log_line
from cryoweave.run.submission import job_script
from cryoweave.store import Store
from cryoweave.store import queue as tables
from cryoweave.store.transaction import ProjectTx

ENDED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.KILLED})


def parse_vars(pairs: list[str] | dict[str, str] | None) -> dict[str, str]:
    """Custom variables from ``name=value`` pairs (or a dict)."""
    if pairs is None:
        return {}
    if isinstance(pairs, dict):
        return {str(k): str(v) for k, v in pairs.items()}
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParamError(f"custom variable {pair!r} must be written name=value, e.g. time_requested=2:00:00")
        found[name.strip()] = value
    return found


def queue(store: Store, project: str, job: str, *, lane: str | None = None, priority: int = 0,
          custom_vars: dict[str, str] | None = None) -> JobRecord:
    """Queue a building job to a lane, checked against what the lane can give.

    The lane defaults to the one the job last ran on, else ``local``; so do custom variables.
    """
    record = store.get_job(project, job)
    chosen = get_lane(store, lane or (record.run.lane if record.run else LOCAL))
    earlier = dict(record.run.custom_vars) if record.run and record.run.lane == chosen.name else {}
    run = RunInfo(lane=chosen.name, priority=int(priority), custom_vars={**earlier, **parse_vars(custom_vars)})
    if isinstance(chosen, ClusterLane):
        directory = store.get_project(project).directory
        preview = record.model_copy(update={"run": run})
        job_script(store, chosen, project, directory, preview, token="preview")  # template errors, named, now
    else:
        local.check_fits(chosen, record.spec.resources, record.uid, record.type)
    return store.edit_job(project, job, lifecycle.queue(run=run))


def wait(store: Store, project: str, job: str, *, timeout: float | None = None,
         schedule: bool = True, interval: float = 0.1) -> JobRecord:
    """Wait until a queued or running job has ended (completed, failed, killed) or gone back to building.

    With ``schedule``, this process runs the scheduler while no other does, so waiting works
    without a server. ``TimeoutError`` after ``timeout`` seconds.
    """
    scheduler = Scheduler(store, describe=f"waiting for {project} {job}") if schedule else None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            record = store.get_job(project, job)
            if not record.status.active:
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {record.uid} is still {record.status.value} after {timeout:g} s")
            if scheduler is not None:
                scheduler.tick()
            time.sleep(interval)
    finally:
        if scheduler is not None:
            scheduler.close()


def kill(store: Store, project: str, job: str, reason: str = "killed by the user") -> JobRecord:
    """Stop a queued or running job: status ``killed`` first, then its process tree or cluster job."""
    before = store.get_job(project, job)
    if not before.status.active:
        raise StatusError(f"job {before.uid} is {before.status.value}; only queued or running jobs can be killed")
    record = store.edit_job(project, job, lifecycle.end_run(JobStatus.KILLED, reason))
    run = before.run
    folder = store.get_project(project).directory / before.uid
    if run is None or not run.token:
        return record
    try:
        lane = get_lane(store, run.lane)
    except CryoweaveError:
        lane = None
    if isinstance(lane, ClusterLane) and run.cluster_job_id:
        result = cluster.cancel(lane, run.cluster_job_id)
        if result.returncode != 0:
            store.add_event(project, job, f"cancelling cluster job {run.cluster_job_id} failed: {result.describe()}",
                            level="warning")
        log_line(folder, f"{before.uid} killed; cluster job {run.cluster_job_id} cancelled")
    elif run.pid and run.host == socket.gethostname():
        local.stop_worker(run.pid)
        log_line(folder, f"{before.uid} killed; its worker (pid {run.pid}) stopped")
    elif run.pid:
        store.add_event(project, job, f"its worker on {run.host} stops itself at its next heartbeat")
    return record


def _clear_one(record: JobRecord) -> edits.Change:
    change = edits.clear()

    def apply(tx: ProjectTx, current: JobRecord) -> str:
        if current.status.active:
            raise StatusError(f"job {current.uid} is {current.status.value}; kill it before clearing it")
        text = change(tx, current)
        old = current.run  # the lane and custom variables stay the job's choice; the priority is reset
        current.run = None if old is None else RunInfo(lane=old.lane, custom_vars=dict(old.custom_vars))
        return text
    return apply


def clear(store: Store, project: str, job: str, *, descendants: bool = False) -> list[JobRecord]:
    """Back to building, outputs and files removed, params and connections kept; ``descendants`` too."""
    root = store.get_job(project, job)
    if root.status == JobStatus.BUILDING and not descendants:
        raise StatusError(f"job {root.uid} is already building; there is nothing to clear")
    uids = [root.uid]
    if descendants:
        uids += tables.descendants(store, project, job)
    return clear_jobs(store, project, uids)


def clear_jobs(store: Store, project: str, uids: list[str]) -> list[JobRecord]:
    """Clear these jobs together (those not building): refused if any is running, or if a job that has run
    and is not among them still uses their files."""
    records = [store.get_job(project, uid) for uid in uids]
    busy = [r.uid for r in records if r.status.active]
    if busy:
        raise StatusError(f"{', '.join(busy)} {'is' if len(busy) == 1 else 'are'} queued or running; kill "
                          f"{'it' if len(busy) == 1 else 'them'} before clearing")
    _still_used(store, project, {r.uid for r in records if r.status != JobStatus.BUILDING})
    return [store.edit_job(project, r.uid, _clear_one(r)) for r in records if r.status != JobStatus.BUILDING]


def _still_used(store: Store, project: str, chosen: set[str]) -> None:
    """Refuse to clear jobs whose files completed, queued or running jobs (that stay) still use: passthroughs,
    connections, data files their tables name. Clearing them with their descendants is the way."""
    if not chosen:
        return
    blocked = usage.blockers(store.get_project(project).directory, store.job_records(project), chosen,
                             strict=False)
    if blocked:
        uid, users = min(blocked.items(), key=lambda kv: int(kv[0][1:]))
        named = ", ".join(sorted(users, key=lambda u: int(u[1:])))
        raise StatusError(f"{uid} is not cleared: {named} {'uses' if len(users) == 1 else 'use'} its results or "
                          f"files (passed through, connected, or named by their tables); clear "
                          f"{'it' if len(users) == 1 else 'them'} too (cryoweave job clear {project} {uid} "
                          "--descendants), or leave it")


def restart(store: Store, project: str, job: str) -> JobRecord:
    """Kill (if running), clear, and queue again to the same lane, priority and custom variables."""
    record = store.get_job(project, job)
    run = record.run
    if record.status.active:
        kill(store, project, job, "killed to restart")
    if record.status != JobStatus.BUILDING:
        clear(store, project, job)
    return queue(store, project, job, lane=run.lane if run else None, priority=run.priority if run else 0)


def clone(store: Store, project: str, job: str, *, workspace: str | None = None, title: str = "") -> JobRecord:
    """A new building job with the same type, parameters and connections (in the same workspaces)."""
    source = store.get_job(project, job)
    build = edits.new_job(source.spec, workspaces=[workspace] if workspace else list(source.workspaces),
                          title=title or f"{source.title} (clone of {source.uid})", description=source.description,
                          params=dict(source.params))

    def make(tx: ProjectTx, uid: str) -> JobRecord:
        record = build(tx, uid)
        record.inputs = copy.deepcopy(source.inputs)
        return record
    return store.create_job(project, make)


def job_log(store: Store, project: str, job: str) -> Path:
    """The path of a job's ``job.log`` (its stdout and stderr, and the scheduler's notes)."""
    return store.get_project(project).directory / store.get_job(project, job).uid / "job.log"
