"""The scheduler: starts queued jobs when their inputs are complete and their lane has room, and
watches launched and running jobs until they end.

One process schedules at a time, whichever it is: ``cryoweave scheduler``,
or a command waiting for a job (``cryoweave job queue --wait``) when no other runs (the
database holds a lease naming the process, renewed while it works, see
:mod:`cryoweave.store.queue`). Within the process, ticks of all its schedulers take turns.

Order: higher priority first, then first queued first. On a local lane the first job that does
not fit blocks the jobs behind it (no job waits forever behind smaller ones); a job waiting for
an input does not block anyone, and shows why it waits. Watching: a local worker whose process
is gone, a worker whose heartbeat stopped for ``CRYOWEAVE_HEARTBEAT_TIMEOUT_S``, and a cluster
job that the cluster ended or forgot before the job finished all make the job ``failed`` with
the reason, in its event log and its ``job.log``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from cryoweave.atomic import atomic_write
from cryoweave.builder import lifecycle
from cryoweave.builder.bindings import cached
from cryoweave.builder.edits import Change
from cryoweave.errors import CryoweaveError, StatusError
from cryoweave.model.lanes import ClusterLane, LocalLane
from cryoweave.model.records import JobRecord, RunInfo, utc_now
from cryoweave.model.status import JobStatus
from cryoweave.run import cluster, local
from cryoweave.run.lanes import LOCAL, all_lanes
from cryoweave.run.submission import LOG_NAME, SCRIPT_NAME, job_script, script_values
from cryoweave.store import Store
from cryoweave.store import queue as tables
from cryoweave.store.queue import ActiveJob
from cryoweave.store.transaction import ProjectTx

LEASE_S = 20.0
_PROCESS_HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
_TICK_LOCK = threading.Lock()
FOREGROUND = "foreground"
_CLUSTER_ENDS = {"CANCELLED": "was cancelled outside cryoweave", "TIMEOUT": "reached its time limit",
                 "NODE_FAIL": "lost its node", "OUT_OF_MEMORY": "ran out of memory", "PREEMPTED": "was preempted",
                 "BOOT_FAIL": "could not boot its node", "DEADLINE": "missed its deadline"}


def _set_waiting(text: str) -> Change:
    def change(tx: ProjectTx, record: JobRecord) -> None:
        if record.status != JobStatus.QUEUED:
            raise StatusError(f"job {record.uid} is no longer queued")
        record.run = (record.run or RunInfo(lane=LOCAL)).model_copy(update={"waiting": text})
    return change


def log_line(directory: Path, text: str) -> None:
    """Append a line to a job's ``job.log`` (what the scheduler saw, next to what the job printed)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / LOG_NAME, "a", encoding="utf-8") as f:
            f.write(f"cryoweave scheduler: {text}\n")
    except OSError:
        pass


def _tail(directory: Path, lines: int = 3) -> str:
    try:
        text = (directory / LOG_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("cryoweave")][-lines:]
    return ("; its job.log ends: " + " | ".join(kept))[:600] if kept else ""


class Scheduler:
    """Starts and watches the jobs of every project of an instance (see the module's notes).

    The job types' code is loaded by the workers (from the installed packages), not here.
    """

    def __init__(self, store: Store, *, describe: str = ""):
        self.store, self.settings = store, store.settings
        self.host = socket.gethostname()
        self.holder = _PROCESS_HOLDER
        self.describe = describe or f"{self.host} pid {os.getpid()}"
        self.launcher = local.Launcher(self.settings)
        self._pids: dict[str, int] = {}
        self._polled: dict[str, float] = {}
        self._renew_at = 0.0
        self.holding = False

    # ------------------------------------------------------------------ the loop
    def tick(self) -> bool:
        """One round: watch the running jobs, start what can start. False while another process schedules."""
        with _TICK_LOCK:
            return self._tick()

    def _tick(self) -> bool:
        now = time.monotonic()
        if not self.holding or now >= self._renew_at:
            self.holding = tables.take_lease(self.store, self.holder, LEASE_S, self.describe)
            self._renew_at = now + LEASE_S / 3
        if not self.holding:
            return False
        active = tables.active_jobs(self.store)
        lanes = {lane.name: lane for lane in all_lanes(self.store)}
        for job in active:
            if job.status != JobStatus.QUEUED:
                try:
                    self._watch(job, lanes)
                except CryoweaveError as err:  # one project's trouble (detached, unreadable) stops no other
                    log_line(self._dir(job), f"cannot watch {job.uid}: {err}")
        self._start(active, lanes)
        return True

    def run(self, until: Callable[[], bool] | None = None, interval: float = 0.1) -> None:
        """Tick until ``until()`` says to stop (forever without it); the lease is released at the end."""
        try:
            while until is None or not until():
                try:
                    self.tick()
                except (CryoweaveError, OSError, SQLAlchemyError) as err:  # the database away for a moment …
                    print(f"cryoweave scheduler: this round failed, trying again: {err}", file=sys.stderr, flush=True)
                    self.holding = False
                    time.sleep(max(interval, 1.0))
                time.sleep(interval)
        finally:
            self.close()

    def close(self) -> None:
        if self.holding:
            with contextlib.suppress(CryoweaveError):
                tables.release_lease(self.store, self.holder)
            self.holding = False
        self.launcher.close()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _dir(job: ActiveJob) -> Path:
        return Path(job.directory) / job.uid

    def _edit(self, job: ActiveJob, change: Change) -> JobRecord | None:
        try:
            return self.store.edit_job(job.project, job.uid, change)
        except StatusError:
            return None  # the job moved on meanwhile (finished, killed, cleared): nothing to do

    def _fail(self, job: ActiveJob, message: str, token: str | None) -> None:
        if self._edit(job, lifecycle.end_run(JobStatus.FAILED, message, token)) is not None:
            log_line(self._dir(job), f"{job.uid} failed: {message}")

    def _wait(self, job: ActiveJob, text: str) -> None:
        if job.record.run is None or job.record.run.waiting != text:
            self._edit(job, _set_waiting(text))

    # ------------------------------------------------------------------ watching
    def _watch(self, job: ActiveJob, lanes: dict) -> None:
        run = job.record.run
        if run is None or not run.token:
            return
        lane = lanes.get(run.lane)
        if isinstance(lane, ClusterLane) and run.cluster_job_id and self._poll_cluster(job, lane, run):
            return
        pid = run.pid or self._pids.get(run.token)
        mine = run.host == self.host and not isinstance(lane, ClusterLane)
        if mine and pid and not local.process_alive(pid):  # _fail does nothing if the worker finished meanwhile
            self._fail(job, f"its worker (pid {pid} on {run.host}) ended without finishing the job"
                       + _tail(self._dir(job)), run.token)
            return
        now = utc_now()
        timeout = self.settings.heartbeat_timeout_s
        if job.status in (JobStatus.STARTED, JobStatus.RUNNING, JobStatus.WAITING):
            last = job.heartbeat_at or job.record.status_times.get(JobStatus.STARTED) or job.updated_at
            silent = (now - last).total_seconds()
            if silent > timeout:
                if mine and pid:
                    local.stop_worker(pid, grace_s=2)
                if isinstance(lane, ClusterLane) and run.cluster_job_id:
                    cluster.cancel(lane, run.cluster_job_id)
                self._fail(job, f"no heartbeat from its worker (pid {run.pid} on {run.host}) for {silent:.0f} s: "
                           "the worker was killed, ran out of memory or lost its node", run.token)
        elif job.status == JobStatus.LAUNCHED and not isinstance(lane, ClusterLane):
            launched = job.record.status_times.get(JobStatus.LAUNCHED) or job.updated_at
            if (now - launched).total_seconds() > timeout:
                self._fail(job, f"its worker never started on {run.host or run.lane} within {timeout:.0f} s"
                           + _tail(self._dir(job)), run.token)

    def _poll_cluster(self, job: ActiveJob, lane: ClusterLane, run: RunInfo) -> bool:
        """Ask the cluster about the job (at most every CRYOWEAVE_CLUSTER_POLL_S); True when it ended."""
        now = time.monotonic()
        if now - self._polled.get(run.token, float("-inf")) < self.settings.cluster_poll_s:
            return False
        self._polled[run.token] = now
        kind, state = cluster.job_state(lane, run.cluster_job_id)
        if kind in ("waiting", "running", "error"):
            shown = state if kind != "error" else f"status command failed: {state}"
            if shown != run.cluster_state:
                self._edit(job, lifecycle.update_run(run.token, f"cluster job {run.cluster_job_id}: {shown}",
                                                     cluster_state=shown))
            return False
        if kind == "unknown":
            why = f"the cluster no longer knows its job {run.cluster_job_id} (lost, or purged long after it ended)"
        else:
            why = (f"its cluster job {run.cluster_job_id} {_CLUSTER_ENDS.get(state, f'ended ({state})')} "
                   "before the job finished")
        self._fail(job, why + _tail(self._dir(job)), run.token)  # nothing, if the worker finished since we looked
        self._polled.pop(run.token, None)
        return True

    # ------------------------------------------------------------------ starting
    def _start(self, active: list[ActiveJob], lanes: dict) -> None:
        def order(job: ActiveJob) -> tuple:
            run = job.record.run
            queued = job.record.status_times.get(JobStatus.QUEUED) or job.updated_at
            return -(run.priority if run else 0), queued, int(job.project[1:]), int(job.uid[1:])

        queued = sorted((j for j in active if j.status == JobStatus.QUEUED), key=order)
        room = {name: local.free(lane, active) for name, lane in lanes.items() if isinstance(lane, LocalLane)}
        blocked: set[str] = set()
        lookups: dict[str, Callable] = {}
        for job in queued:
            try:
                self._start_one(job, lanes, room, blocked, lookups)
            except CryoweaveError as err:  # one project's trouble (detached, held elsewhere) stops no other
                log_line(self._dir(job), f"cannot start {job.uid}: {err}")

    def _start_one(self, job: ActiveJob, lanes: dict, room: dict, blocked: set[str], lookups: dict) -> None:
        """Start one queued job if it can start; else note why it waits (``blocked``: lanes whose queue is held)."""
        record = job.record
        name = record.run.lane if record.run else LOCAL
        lane = lanes.get(name)
        if lane is None:
            self._wait(job, f"lane {name!r} does not exist; clear the job and queue it to another lane")
            return
        if job.project not in lookups:
            lookups[job.project] = cached(lambda uid, p=job.project: self.store.get_job(p, uid))
        try:
            problems = lifecycle.requirements(record, lookups[job.project], running=True)
        except CryoweaveError as err:
            problems = [str(err)]
        if problems:
            self._wait(job, "; ".join(problems))
            return
        if isinstance(lane, LocalLane):
            need = record.spec.resources
            try:
                local.check_fits(lane, need, job.uid, record.type)
            except CryoweaveError as err:
                self._fail(job, str(err), None)
                return
            if name in blocked or not room[name].fits(need):
                blocked.add(name)
                self._wait(job, f"waiting for lane {name} to have {need.cpu} CPU, {need.gpu} GPU and "
                           f"{need.ram_gb:g} GB free (jobs queued before it start first)")
                return
            self._launch_local(job, lane, room[name].take(need))
        else:
            self._submit(job, lane)

    def _launch_local(self, job: ActiveJob, lane: LocalLane, given: dict) -> None:
        token = uuid.uuid4().hex
        if self._edit(job, lifecycle.launch(token, host=self.host, **given)) is None:
            return
        folder = self._dir(job)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._pids[token] = self.launcher.launch(job.project, job.uid, token, folder / LOG_NAME, given["gpus"])
        except (CryoweaveError, OSError) as err:
            self._fail(job, f"could not start its worker: {err}", token)

    def _submit(self, job: ActiveJob, lane: ClusterLane) -> None:
        token = uuid.uuid4().hex
        record, folder = job.record, self._dir(job)
        need = record.spec.resources
        try:
            script = job_script(self.store, lane, job.project, Path(job.directory), record, token)
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(folder / SCRIPT_NAME, text=True) as f:
                f.write(script)
            os.chmod(folder / SCRIPT_NAME, 0o755)
        except (CryoweaveError, OSError) as err:
            self._fail(job, f"its job script for lane {lane.name!r} cannot be written: {err}", None)
            return
        script_path = f"{job.uid}/{SCRIPT_NAME}"
        if self._edit(job, lifecycle.launch(token, cpu=need.cpu, ram_gb=need.ram_gb, script=script_path)) is None:
            return
        values = script_values(self.store, lane, job.project, Path(job.directory), record, token)
        try:
            cluster_id = cluster.submit(lane, values)
        except CryoweaveError as err:
            self._fail(job, str(err), token)
            return
        log_line(folder, f"{job.uid} submitted to lane {lane.name} as cluster job {cluster_id}")
        self._edit(job, lifecycle.update_run(token, f"submitted to lane {lane.name} as cluster job {cluster_id}",
                                             cluster_job_id=cluster_id, cluster_state="submitted"))
