"""Layer 4: plain records (pydantic): job types, projects, workspaces, jobs, events, status."""

from cryoweave.model.jobspec import (
    InputSpec,
    JobTypeSpec,
    OutputSpec,
    ParamSpec,
    ParamType,
    ResourceSpec,
    SlotSpec,
)
from cryoweave.model.records import (
    Connection,
    Event,
    JobRecord,
    OutputGroup,
    OutputResult,
    OutputTable,
    ProjectRecord,
    ResultRef,
    ResultSource,
    WorkspaceRecord,
    utc_now,
)
from cryoweave.model.status import JobStatus, check_transition

__all__ = [
    "Connection",
    "Event",
    "InputSpec",
    "JobRecord",
    "JobStatus",
    "JobTypeSpec",
    "OutputGroup",
    "OutputResult",
    "OutputSpec",
    "OutputTable",
    "ParamSpec",
    "ParamType",
    "ProjectRecord",
    "ResourceSpec",
    "ResultRef",
    "ResultSource",
    "SlotSpec",
    "WorkspaceRecord",
    "check_transition",
    "utc_now",
]
