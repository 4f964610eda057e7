"""The records of a project, as they are kept in the database and written into its directory.

Every record is plain data (pydantic) that serialises to JSON; :mod:`cryoweave.model.files`
reads and writes them as versioned record files.

>>> Connection.parse("J5.particles").model_dump()
{'job': 'J5', 'group': 'particles', 'overrides': {}}
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


class Connection(Record):
    """An output group connected to an input group; ``overrides`` bind single slots elsewhere."""

    job: str
    group: str
    overrides: dict[str, ResultRef] = Field(default_factory=dict)

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


class OutputResult(Record):
    """One result of an output group: its versions, the file holding each, and item counts."""

    name: str
    dtype: str
    versions: list[int] = Field(default_factory=list)
    metafiles: list[str] = Field(default_factory=list)
    num_items: list[int] = Field(default_factory=list)
    passthrough: bool = False


class OutputGroup(Record):
    name: str
    type: Datatype
    title: str = ""
    results: dict[str, OutputResult] = Field(default_factory=dict)
    passthrough: str | None = None
    num_items: int = 0


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


class JobRecord(Record):
    """A job: what it is (type and the spec it was made with), how it is set up, where it stands."""

    uid: str
    type: str
    title: str = ""
    description: str = ""
    workspaces: list[str] = Field(default_factory=list)
    status: JobStatus = JobStatus.BUILDING
    params: dict[str, Any] = Field(default_factory=dict, description="explicitly set values only")
    inputs: dict[str, list[Connection]] = Field(default_factory=dict)
    outputs: dict[str, OutputGroup] = Field(default_factory=dict)
    status_times: dict[JobStatus, dt.datetime] = Field(default_factory=dict)
    created_at: dt.datetime
    updated_at: dt.datetime
    spec: JobTypeSpec

    @property
    def number(self) -> int:
        return int(self.uid[1:])

    def param_values(self) -> dict[str, Any]:
        """Every parameter's value: the set ones, defaults for the rest."""
        return self.spec.defaults() | self.params
