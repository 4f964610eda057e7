"""The record of an exported job (``job.json`` of ``exports/jobs/<P>_<J>_<type>/``) and the names in an export.

An exported job keeps what the job *is* (type, title, description, parameters, the spec it was made
with, when it ran) and drops what belonged to its instance: how it ran (lane, host, pid, token,
script, cluster id, custom variables), the workspaces it was in, its connections (kept only as
provenance, the addresses it took inputs from, which an import ignores) and its outputs (each group
folder describes its own). The file is JSON with a kind and a schema version of its own::

    {"kind": "exported_job", "schema_version": 1, "source": {"project": "P1", "job": "J7", ...},
     "type": "homo_reconstruct", "title": ..., "params": {...}, "spec": {...},
     "groups": [{"name": "particles", "folder": "P1_J7_particles"}], "provenance_inputs": ["P1 J3.particles"]}

>>> group_folder_name("P1", "J7", "particles")
'P1_J7_particles'
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cryoweave.errors import RecordError
from cryoweave.model import files
from cryoweave.model.jobspec import JobTypeSpec

KIND = "exported_job"
RECORD_NAME = "job.json"
EVENTS_NAME = "events.jsonl"
LOG_NAME = "job.log"
IMAGES = "images"


def group_folder_name(project: str, job: str, group: str) -> str:
    """The folder (and file stem) of an exported group: ``<P>_<J>_<group>``."""
    return f"{project}_{job}_{group}"


def table_name(project: str, job: str, group: str) -> str:
    return f"{group_folder_name(project, job, group)}_exported.cs"


def csg_name(project: str, job: str, group: str) -> str:
    return f"{group_folder_name(project, job, group)}_exported.csg"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExportSource(_Model):
    """Where an exported job came from."""

    project: str
    job: str
    project_title: str = ""
    instance_id: str = ""
    exported_at: dt.datetime
    cryoweave_version: str = ""


class ExportedGroup(_Model):
    """One output group of an exported job and the folder holding it."""

    name: str
    folder: str


class ExportedJob(_Model):
    """The content of an exported job's ``job.json``."""

    source: ExportSource
    type: str
    title: str = ""
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    spec: JobTypeSpec
    status_times: dict[str, dt.datetime] = Field(default_factory=dict)
    created_at: dt.datetime
    groups: list[ExportedGroup] = Field(default_factory=list)
    provenance_inputs: list[str] = Field(default_factory=list, description="ignored by an import")


def dump_exported(job: ExportedJob) -> bytes:
    return files.dump_record(KIND, job)


def load_exported(path: Path) -> ExportedJob:
    """Read and check an exported job's ``job.json`` (kind, schema version, fields)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(f"{path.parent} is not an exported job: it has no {RECORD_NAME} (export one with "
                          "cryoweave export job P J)") from None
    except OSError as err:
        raise RecordError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        document = files.parse_record(KIND, raw, path)
    except RecordError as err:
        raise RecordError(f"{err}; give the folder that cryoweave export job made (not an exported job "
                          "record otherwise)") from None
    try:
        return ExportedJob.model_validate(document)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the record"
        raise RecordError(f"{path}: field {where}: {first['msg']} ({err.error_count()} problem(s)); the file "
                          "is damaged or was edited") from None
