"""The records of a project, as they are kept in the database and written into its directory.

Every record is plain data (pydantic) that serialises to JSON; :mod:`cryoweave.model.files`
reads and writes them as versioned record files.

>>> Connection.parse("J5.particles").model_dump()
{'job': 'J5', 'group': 'particles', 'overrides': {}, 'cleared': []}
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cryoweave.errors import CryoweaveError, ParamError
from cryoweave.model.jobspec import JobTypeSpec
from cryoweave.model.status import JobStatus
from cryoweave.spec import Datatype, parse_output_address


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResultRef(Record):
    """One output result of a job, at a version (``"F"``: the final one)."""

    job: str
    group: str
    result: str
    version: int | Literal["F"] = "F"

    def __str__(self) -> str:
        return f"{self.job}.{self.group}.{self.result}.{self.version}"

    @classmethod
    def parse(cls, address: str) -> ResultRef:
        """A result from an address such as ``J3.particles.blob``, ``….blob.F`` or ``….alignments3D.3``."""
        try:
            parsed = parse_output_address(address)
        except CryoweaveError as err:
            raise ParamError(str(err)) from None
        if parsed.result is None:
            raise ParamError(f"{address!r} names an output group; name one of its results, e.g. "
                             f"{parsed.job}.{parsed.group}.blob")
        return cls(job=parsed.job, group=parsed.group, result=parsed.result, version=parsed.version)


class Connection(Record):
    """An output group connected to an input group.

    The slots of the input are bound to the group's results by name, then by type, when the
    inputs are resolved (:mod:`cryoweave.builder.bindings`); only the user's own choices are kept
    here: ``overrides`` bind single slots to a result of any job (the low-level interface), and
    ``cleared`` lists optional slots left empty on purpose.
    """

    job: str
    group: str
    overrides: dict[str, ResultRef] = Field(default_factory=dict)
    cleared: list[str] = Field(default_factory=list)

    @classmethod
    def parse(cls, address: str) -> Connection:
        """A connection from an output group address such as ``J5.particles``."""
        try:
            parsed = parse_output_address(address)
        except CryoweaveError as err:
            raise ParamError(str(err)) from None
        if parsed.result is not None:
            raise ParamError(f"{address!r} names a result; connect an output group such as "
                             f"{parsed.job}.{parsed.group}")
        return cls(job=parsed.job, group=parsed.group)

    def __str__(self) -> str:
        return f"{self.job}.{self.group}"


class ResultSource(Record):
    """Where a result's fields are kept: a ``.cs`` file (project-relative) and the fields' prefix in it.

    The prefix differs from the result's name when an input slot was bound to a result of another
    name (slot ``alignments`` bound to ``alignments_class_0``).
    """

    metafile: str
    prefix: str
    origin: str = Field("", description="the address of the result the fields were saved as, e.g. J1.particles.ctf.0")


class OutputResult(Record):
    """One result of an output group.

    A result the job created has parallel lists: each saved ``version``, the file holding it and
    its item count (``F`` is the last). A **passthrough** result was received and not used: it
    has one version (0) and ``sources``, the ancestors' files that already hold it (one per
    connection it came through), never a copy.
    """

    name: str
    dtype: str
    versions: list[int] = Field(default_factory=list)
    metafiles: list[str] = Field(default_factory=list)
    num_items: list[int] = Field(default_factory=list)
    passthrough: bool = False
    sources: list[ResultSource] = Field(default_factory=list)


class OutputTable(Record):
    """One saved version of a job's own table for an output group: ``uid`` and the results it made.

    Its uids define the group's items at that version; passthrough files are cut to them by the join.
    """

    version: int
    metafile: str
    num_items: int


class OutputGroup(Record):
    name: str
    type: Datatype
    title: str = ""
    results: dict[str, OutputResult] = Field(default_factory=dict)
    passthrough: str | None = None
    num_items: int = 0
    tables: list[OutputTable] = Field(default_factory=list)

    @property
    def versions(self) -> list[int]:
        return [t.version for t in self.tables]


class Event(Record):
    """One entry of a job's event log."""

    seq: int
    time: dt.datetime
    level: Literal["info", "warning", "error"] = "info"
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class WorkspaceRecord(Record):
    uid: str
    title: str
    description: str = ""
    created_at: dt.datetime
    updated_at: dt.datetime


class ProjectRecord(Record):
    uid: str
    title: str
    description: str = ""
    created_at: dt.datetime
    updated_at: dt.datetime
    archived: bool = False
    keep_final_only: bool = Field(False, description="when a job completes, delete the versions of its outputs "
                                  "before the final one that no other job uses")


class RunInfo(Record):
    """Where and how a queued job runs: its lane, its place in the queue and what it was given.

    ``token`` names one run: a worker acts on the job only while the record holds its token, so
    a worker left over from an earlier run (a lost node that comes back) cannot touch a new one.
    """

    lane: str
    priority: int = 0
    token: str = ""
    host: str = ""
    pid: int | None = None
    cpu: int = 0
    gpus: list[int] = Field(default_factory=list)
    ram_gb: float = 0.0
    cluster_job_id: str = ""
    cluster_state: str = ""
    script: str = Field("", description="the submitted script, relative to the project directory")
    custom_vars: dict[str, str] = Field(default_factory=dict)
    waiting: str = Field("", description="why a queued job has not started yet")
    message: str = Field("", description="how the run ended, when it did not complete")


class JobRecord(Record):
    """A job: what it is (type and the spec it was made with), how it is set up, where it stands."""

    uid: str
    type: str
    title: str = ""
    description: str = ""
    workspaces: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list, description="the user's labels, for filtering")
    status: JobStatus = JobStatus.BUILDING
    params: dict[str, Any] = Field(default_factory=dict, description="explicitly set values only")
    inputs: dict[str, list[Connection]] = Field(default_factory=dict)
    outputs: dict[str, OutputGroup] = Field(default_factory=dict)
    status_times: dict[JobStatus, dt.datetime] = Field(default_factory=dict)
    run: RunInfo | None = None
    final: bool = Field(False, description="marked final: kept by data cleanup, with every job it depends on")
    created_at: dt.datetime
    updated_at: dt.datetime
    spec: JobTypeSpec

    @property
    def number(self) -> int:
        return int(self.uid[1:])

    def param_values(self) -> dict[str, Any]:
        """Every parameter's value: the set ones, defaults for the rest."""
        return self.spec.defaults() | self.params
