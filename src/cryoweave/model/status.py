"""The job status lifecycle of the seeds, with only the legal transitions.

    building ─► queued ─► launched ─► started ─► running ⇄ waiting ─► completed
       ▲          │          │           │          │         │
       │          └──────────┴───────────┴──────────┴─────────┴─► killed / failed
       │          (a queued job fails when its lane cannot take it: a script that does not render)
       └── clear (from queued, completed, killed, failed)    killed/failed ─► completed (mark completed)

>>> JobStatus.BUILDING.can_become(JobStatus.QUEUED)
True
>>> JobStatus.COMPLETED.can_become(JobStatus.RUNNING)
False
"""

from __future__ import annotations

from enum import StrEnum

from cryoweave.errors import StatusError


class JobStatus(StrEnum):
    BUILDING = "building"
    QUEUED = "queued"
    LAUNCHED = "launched"
    STARTED = "started"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    KILLED = "killed"
    FAILED = "failed"

    def can_become(self, other: JobStatus) -> bool:
        return other in TRANSITIONS[self]

    @property
    def editable(self) -> bool:
        """Params and connections can change only while a job is being built."""
        return self is JobStatus.BUILDING

    @property
    def active(self) -> bool:
        """Queued or running somewhere: the job's directory may be changing."""
        return self in ACTIVE


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.LAUNCHED, JobStatus.STARTED, JobStatus.RUNNING,
                    JobStatus.WAITING})

_STOPPED = {JobStatus.KILLED, JobStatus.FAILED}
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.BUILDING: frozenset({JobStatus.QUEUED}),
    JobStatus.QUEUED: frozenset({JobStatus.LAUNCHED, JobStatus.BUILDING, *_STOPPED}),
    JobStatus.LAUNCHED: frozenset({JobStatus.STARTED, *_STOPPED}),
    JobStatus.STARTED: frozenset({JobStatus.RUNNING, *_STOPPED}),
    JobStatus.RUNNING: frozenset({JobStatus.WAITING, JobStatus.COMPLETED, *_STOPPED}),
    JobStatus.WAITING: frozenset({JobStatus.RUNNING, JobStatus.COMPLETED, *_STOPPED}),
    JobStatus.COMPLETED: frozenset({JobStatus.BUILDING}),
    JobStatus.KILLED: frozenset({JobStatus.BUILDING, JobStatus.COMPLETED}),
    JobStatus.FAILED: frozenset({JobStatus.BUILDING, JobStatus.COMPLETED}),
}


def check_transition(job: str, current: JobStatus, new: JobStatus) -> None:
    """Raise :class:`StatusError` unless ``current`` may become ``new``."""
    if not current.can_become(new):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        raise StatusError(f"job {job} is {current.value} and cannot become {new.value} "
                          f"(from {current.value} it can become: {allowed})")
