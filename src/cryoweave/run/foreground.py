"""Running a job in this process, now: start it, call its type's ``run(ctx)``, record how it ended.

A job type that can run declares a ``run`` callable next to its ``spec`` (a module or class with
both attributes). The job reads inputs and writes outputs only through its
:class:`~cryoweave.builder.context.JobContext`. An error a user can fix (a cryoweave error) fails
the job with its message; any other exception fails it with the traceback in its event log.

>>> run_job(store, default_registry(), "P1", "J7").status      # doctest: +SKIP
<JobStatus.COMPLETED: 'completed'>
"""

from __future__ import annotations

import traceback

from cryoweave.builder import edits, lifecycle
from cryoweave.builder.context import JobContext
from cryoweave.errors import CryoweaveError, JobTypeError
from cryoweave.jobs import Registry
from cryoweave.model.records import JobRecord
from cryoweave.model.status import JobStatus
from cryoweave.store import Store


def run_job(store: Store, registry: Registry, project: str, job: str) -> JobRecord:
    """Run a building or queued job to its end here; returns its record (completed or failed)."""
    record = store.get_job(project, job)
    job_type = registry.get(record.type)
    run = getattr(job_type.implementation, "run", None)
    if not callable(run):
        raise JobTypeError(f"job type {record.type!r} ({job_type.source}) declares no run function, so {record.uid} "
                           "cannot run; its plugin must provide run(ctx) next to its spec")
    store.edit_job(project, job, lifecycle.start())
    ctx = JobContext(store, project, job)
    try:
        run(ctx)
    except KeyboardInterrupt:
        store.edit_job(project, job, edits.transition(JobStatus.KILLED, "interrupted (Ctrl-C)"))
        raise
    except CryoweaveError as err:
        return store.edit_job(project, job, lifecycle.finish(str(err)))
    except Exception as err:  # the job's own bug: keep the traceback for whoever debugs it
        ctx.log(f"{type(err).__name__}: {err}", level="error", data={"traceback": traceback.format_exc()})
        return store.edit_job(project, job, lifecycle.finish(f"{type(err).__name__}: {err}"))
    return store.edit_job(project, job, lifecycle.finish())
