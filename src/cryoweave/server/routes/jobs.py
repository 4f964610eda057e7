"""Jobs: listing (cards, tree, table), creating, building (params, connections, slots), running, events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel

from cryoweave.errors import ParamError
from cryoweave.manage import safety
from cryoweave.server import views
from cryoweave.server.deps import ProjectAccess, readable, writable

router = APIRouter(prefix="/api/projects/{project}/jobs", tags=["jobs"])
SORTS = ("uid", "type", "title", "status", "created_at", "updated_at")
LOG_CHUNK = 256 * 1024


class NewJob(BaseModel):
    type: str
    workspace: str | None = None
    title: str = ""
    description: str = ""
    params: dict[str, Any] = {}


class Labels(BaseModel):
    title: str | None = None
    description: str | None = None
    tags: list[str] | None = None


class Source(BaseModel):
    source: str


class QueueBody(BaseModel):
    lane: str | None = None
    priority: int = 0
    cluster_vars: dict[str, str] = {}


class ClearBody(BaseModel):
    descendants: bool = False


class CloneBody(BaseModel):
    title: str = ""
    workspace: str | None = None


@router.get("")
def list_jobs(access: ProjectAccess = Depends(readable), workspace: str | None = None, type: str | None = None,
              status: str | None = None, tag: str | None = None, sort: str = "uid", desc: bool = False
              ) -> dict[str, Any]:
    """The project's jobs as cards: one read of the records, filtered and sorted."""
    if sort not in SORTS:
        raise ParamError(f"sort={sort!r}: sort by one of {', '.join(SORTS)}")
    with access.project._store.project(access.project.uid, write=False) as tx:
        docs, parents = tx.documents(), tx.parents()
    cards = [views.job_card(uid, doc, parents.get(uid, [])) for uid, doc in docs.items()]
    if workspace:
        cards = [c for c in cards if workspace in c["workspaces"]]
    if type:
        cards = [c for c in cards if c["type"] == type]
    if status:
        cards = [c for c in cards if c["status"] == status]
    if tag:
        cards = [c for c in cards if tag in c["tags"]]
    key = (lambda c: int(c["uid"][1:])) if sort == "uid" else (lambda c: (c[sort], int(c["uid"][1:])))
    return {"jobs": sorted(cards, key=key, reverse=desc)}


@router.post("")
def create_job(body: NewJob, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    job = access.project.create_job(body.type, workspace=body.workspace, title=body.title,
                                    description=body.description, params=body.params or None)
    return views.job_detail(job)


@router.get("/{job}")
def get_job(job: str, access: ProjectAccess = Depends(readable)) -> dict[str, Any]:
    return views.job_detail(access.job(job))


@router.patch("/{job}")
def label_job(job: str, body: Labels, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).relabel(title=body.title, description=body.description, tags=body.tags))


@router.put("/{job}/params")
def set_params(job: str, values: dict[str, Any], access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    """Set parameters; a ``null`` value resets one to its default."""
    found = access.job(job)
    reset = [name for name, value in values.items() if value is None]
    given = {name: value for name, value in values.items() if value is not None}
    if given:
        found.set_params(given)
    for name in reset:
        found.clear_param(name)
    return views.job_detail(found)


@router.post("/{job}/inputs/{input_name}/connections")
def connect(job: str, input_name: str, body: Source, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).connect(input_name, body.source))


@router.delete("/{job}/inputs/{input_name}/connections/{index}")
def disconnect(job: str, input_name: str, index: int, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).disconnect(input_name, index))


@router.put("/{job}/inputs/{input_name}/connections/{index}/slots/{slot}")
def connect_result(job: str, input_name: str, index: int, slot: str, body: Source,
                   access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).connect_result(input_name, index, slot, body.source))


@router.delete("/{job}/inputs/{input_name}/connections/{index}/slots/{slot}")
def clear_slot(job: str, input_name: str, index: int, slot: str,
               access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).clear_slot(input_name, index, slot))


@router.post("/{job}/inputs/{input_name}/connections/{index}/slots/{slot}/reset")
def reset_slot(job: str, input_name: str, index: int, slot: str,
               access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).reset_slot(input_name, index, slot))


@router.post("/{job}/queue")
def queue(job: str, body: QueueBody | None = None, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    body = body or QueueBody()
    found = access.job(job).queue(body.lane, priority=body.priority, cluster_vars=body.cluster_vars or None)
    return views.job_detail(found)


@router.post("/{job}/kill")
def kill(job: str, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).kill())


@router.post("/{job}/clear")
def clear(job: str, body: ClearBody | None = None, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).clear(descendants=(body or ClearBody()).descendants))


@router.post("/{job}/restart")
def restart(job: str, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).restart())


@router.post("/{job}/mark-completed")
def mark_completed(job: str, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    return views.job_detail(access.job(job).mark_completed())


@router.post("/{job}/clone")
def clone(job: str, body: CloneBody | None = None, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    body = body or CloneBody()
    return views.job_detail(access.job(job).clone(workspace=body.workspace, title=body.title))


@router.get("/{job}/events")
def events(job: str, after: int = Query(-1), access: ProjectAccess = Depends(readable)) -> list[dict[str, Any]]:
    found = access.job(job)
    base = f"api/projects/{access.project.uid}/jobs/{found.uid}"  # relative: works under a proxy's prefix
    return [views.event(found.uid, ev, base) for ev in found.events() if ev.seq > after]


def inside(path: Path, folder: Path) -> Path | None:
    """``path`` when it is a regular file inside ``folder`` with links followed; else None."""
    return path if path.is_file() and safety.inside(folder, path) else None


@router.get("/{job}/events/{seq}/image")
def event_image(job: str, seq: int, access: ProjectAccess = Depends(readable)) -> FileResponse:
    found = access.job(job)
    ev = next((e for e in found.events() if e.seq == seq), None)
    name = ev.data.get("image") if ev is not None else None
    path = inside(access.project.directory / name, found.directory) if isinstance(name, str) else None
    if path is None or path.suffix != ".png":
        raise HTTPException(404, f"job {found.uid} has no image in event {seq}")
    return FileResponse(path, media_type="image/png")


@router.get("/{job}/log")
def log(job: str, offset: int = Query(0, ge=0), access: ProjectAccess = Depends(readable)) -> dict[str, Any]:
    """The job's job.log from byte ``offset`` (at most 256 KiB a call); poll with the offset returned."""
    found = access.job(job)
    path = inside(found.directory / "job.log", found.directory)  # a link leading out is not followed
    if path is None:
        return {"text": "", "offset": 0}
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(LOG_CHUNK)
    return {"text": data.decode("utf-8", errors="replace"), "offset": offset + len(data)}
