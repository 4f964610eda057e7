"""Data management: storage figures, clearing intermediate results, exporting jobs and groups.

Each route calls the Python API (:mod:`cryoweave.api.managing`) and answers plain JSON. Clearing
is a dry run unless the body says ``{"dry_run": false, "confirm": true}``.

>>> client.post("/api/projects/P1/clear-intermediate", json={"dry_run": True}).json()["bytes"]  # doctest: +SKIP
1048576
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from cryoweave.errors import ParamError
from cryoweave.server.deps import ProjectAccess, readable, writable
from cryoweave.server.outputs_files import parse_version

router = APIRouter(tags=["data"])

PROJECT = "/api/projects/{project}"
BY = ("job", "type", "workspace")
REFRESH = {"0": "auto", "auto": "auto", "1": "now", "now": "now", "never": "never"}


class ClearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = True
    confirm: bool = False
    workspace: str | None = None
    jobs: list[str] | None = None


class ExportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    copy_data: bool = False
    overwrite: bool = False


class GroupExportBody(ExportBody):
    version: int | str = "F"


@router.get(PROJECT + "/storage")
def storage(by: str = "job", refresh: str = "0", access: ProjectAccess = Depends(readable)) -> dict[str, Any]:
    """``{total_bytes, rows, stale, ...}``: sizes by job, type or workspace (cached; ``refresh=1`` walks now)."""
    if refresh not in REFRESH:
        raise ParamError(f"refresh={refresh!r}: use 0 (cached figures, refreshed in the background), 1 (now) "
                         "or never")
    if by not in BY:
        raise ParamError(f"by={by!r}: group storage by {', '.join(BY)}")
    report = access.project.storage(refresh=REFRESH[refresh])
    answer = report.to_json(by)
    return {"total_bytes": report.total.bytes, **answer}


def _clearing_json(report: Any) -> dict[str, Any]:
    return {"dry_run": report.dry_run, "action": str(report.action), "bytes": report.bytes,
            "files": [f for j in report.jobs for f in j.files],
            "jobs": [{"job": j.job, "type": j.type, "title": j.title, "files": list(j.files), "bytes": j.bytes,
                      "versions": {g: list(v) for g, v in j.versions.items()},
                      "kept": {f: list(users) for f, users in j.kept.items()}} for j in report.jobs],
            "skipped": dict(report.skipped)}


@router.post(PROJECT + "/clear-intermediate")
def clear_intermediate(body: ClearBody | None = None, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    """Intermediate results no job uses: listed (``dry_run``, the default) or deleted (``dry_run: false``
    with ``confirm: true``)."""
    body = body or ClearBody()
    if not body.dry_run and not body.confirm:
        raise ParamError("deleting needs confirm: send {\"dry_run\": false, \"confirm\": true} after checking "
                         "the dry run's list")
    report = access.project.clear_intermediate(workspace=body.workspace, jobs=body.jobs, dry_run=body.dry_run)
    return _clearing_json(report)


def _relative(path: Path | None, directory: Path) -> str | None:
    if path is None:
        return None
    return path.relative_to(directory).as_posix() if path.is_relative_to(directory) else str(path)


def _export_json(report: Any, directory: Path) -> dict[str, Any]:
    return {"path": str(report.folder), "relative": _relative(report.folder, directory),
            "csg": _relative(report.csg, directory), "cs": _relative(report.cs, directory),
            "items": report.items, "data_files": report.data_files, "copied": report.copied, "bytes": report.bytes,
            "missing_other": list(report.missing_other),
            "groups": [_export_json(g, directory) for g in report.groups]}


@router.post(PROJECT + "/jobs/{job}/export")
def export_job(job: str, body: ExportBody | None = None, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    """Export a completed job into ``exports/jobs/<P>_<J>_<type>/``; ``{path, ...}``."""
    body = body or ExportBody()
    report = access.job(job).export(copy_data=body.copy_data, overwrite=body.overwrite)
    return _export_json(report, access.project.directory)


@router.post(PROJECT + "/jobs/{job}/outputs/{group}/export")
def export_group(job: str, group: str, body: GroupExportBody | None = None,
                 access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    """Export one output group (at a version) into ``exports/groups/<P>_<J>_<group>/``; ``{path, ...}``."""
    body = body or GroupExportBody()
    report = access.job(job).export_group(group, version=parse_version(body.version), copy_data=body.copy_data,
                                          overwrite=body.overwrite)
    return _export_json(report, access.project.directory)
