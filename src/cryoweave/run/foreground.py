"""Running a job's code in this process: call its type's ``run(ctx)`` and record how it ended.

A job type that can run declares a ``run`` callable next to its ``spec`` (a module or class with
both attributes). The job reads inputs and writes outputs only through its
:class:`~cryoweave.builder.context.JobContext`. An error a user can fix (a cryoweave error) fails
the job with its message; any other exception fails it with the traceback in its event log.
:func:`run_job` runs a job in the foreground (``cryoweave job run``); a worker launched by a
lane calls :func:`execute` for its run once the job is running.

>>> run_job(store, default_registry(), "P1", "J7").status      # doctest: +SKIP
<JobStatus.COMPLETED: 'completed'>
"""

from __future__ import annotations

import contextlib
import os
import socket
import traceback
import uuid
from collections.abc import Callable

from cryoweave.builder import lifecycle
from cryoweave.builder.context import JobContext
from cryoweave.errors import CryoweaveError, JobTypeError, StatusError
from cryoweave.jobs import Registry
from cryoweave.model.records import JobRecord, RunInfo
from cryoweave.model.status import JobStatus
from cryoweave.store import Store


class Terminated(BaseException):
    """The worker was told to stop (SIGTERM: the job was killed, or its cluster job cancelled)."""


def run_function(registry: Registry, record: JobRecord) -> Callable[[JobContext], object]:
    job_type = registry.get(record.type)
    run = getattr(job_type.implementation, "run", None)
    if not callable(run):
        raise JobTypeError(f"job type {record.type!r} ({job_type.source}) declares no run function, so {record.uid} "
                           "cannot run; its plugin must provide run(ctx) next to its spec")
    return run


def _stop(store: Store, project: str, job: str, change: lifecycle.Change) -> JobRecord:
    """Record how the run ended, unless the job was already stopped from outside (killed, timed out)."""
    try:
        return store.edit_job(project, job, change)
    except StatusError:
        return store.get_job(project, job)


def execute(store: Store, registry: Registry, project: str, job: str, token: str | None = None) -> JobRecord:
    """Call the running job's code to its end; returns its record (completed, failed or killed)."""
    ctx = JobContext(store, project, job, token=token)
    try:
        run = run_function(registry, ctx.record)
        run(ctx)
    except (KeyboardInterrupt, Terminated) as err:
        why = ("interrupted (Ctrl-C)" if isinstance(err, KeyboardInterrupt) else
               "terminated by SIGTERM from outside cryoweave (e.g. the cluster cancelled the job or its time "
               "limit ran out)")
        _stop(store, project, job, lifecycle.end_run(JobStatus.KILLED, why, token))
        raise
    except CryoweaveError as err:
        return _stop(store, project, job, lifecycle.finish(str(err), token))
    except Exception as err:  # the job's own bug: keep the traceback for whoever debugs it
        trace = traceback.format_exc()
        print(trace, flush=True)  # into job.log, when a worker runs it
        with contextlib.suppress(CryoweaveError):
            ctx.log(f"{type(err).__name__}: {err}", level="error", data={"traceback": trace})
        return _stop(store, project, job, lifecycle.finish(f"{type(err).__name__}: {err}", token))
    return _stop(store, project, job, lifecycle.finish(None, token))


def run_job(store: Store, registry: Registry, project: str, job: str) -> JobRecord:
    """Run a building or queued job to its end here; returns its record (completed or failed).

    The run has a heartbeat like a lane's worker, so a scheduler notices if this process dies.
    """
    from cryoweave.run.heartbeat import Heartbeat

    run_function(registry, store.get_job(project, job))  # a type that cannot run is refused before it starts
    token = uuid.uuid4().hex
    store.edit_job(project, job, lifecycle.start(run=RunInfo(lane="foreground", token=token,
                                                             host=socket.gethostname(), pid=os.getpid())))
    beat = Heartbeat(store, project, job, token)
    beat.beat()
    beat.start()
    try:
        return execute(store, registry, project, job, token)
    finally:
        beat.stop()
