"""Projects, their workspaces and their members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from cryoweave.api.objects import Project
from cryoweave.server.deps import ProjectAccess, admin, instance, owned, readable, state, user, writable
from cryoweave.store import accounts
from cryoweave.store.accounts import Access, User

router = APIRouter(prefix="/api/projects", tags=["projects"])


class NewProject(BaseModel):
    title: str
    description: str = ""
    directory: str | None = None


class AttachBody(BaseModel):
    directory: str
    take_over: bool = False


class NewWorkspace(BaseModel):
    title: str
    description: str = ""


class MemberBody(BaseModel):
    access: Access


def _summary(info, access: Access) -> dict[str, Any]:
    return {"uid": info.uid, "title": info.title, "description": info.description, "jobs": info.jobs,
            "workspaces": info.workspaces, "archived": info.archived, "access": str(access),
            "updated_at": info.updated_at.isoformat()}


def _members(request: Request, project: str) -> list[dict[str, str]]:
    return [{"username": name, "access": str(a)} for name, a in accounts.members(instance(request).store, project)]


def _detail(request: Request, project: Project, access: Access) -> dict[str, Any]:
    info = project.info()
    return _summary(info, access) | {
        "directory": str(info.directory), "keep_final_only": info.keep_final_only,
        "workspaces": [{"uid": w.uid, "title": w.title, "description": w.description}
                       for w in project._store.workspaces(project.uid)],
        "members": _members(request, project.uid)}


def _keep_an_owner(request: Request, project: str, name: str) -> None:
    """Refuse to leave a project without an owner (only an admin could manage it then)."""
    owners = [n for n, a in accounts.members(instance(request).store, project) if a == Access.OWNER]
    if owners == [name]:
        raise HTTPException(400, f"{name} is the only owner of {project}; make someone else owner first")


@router.get("")
def list_projects(request: Request, who: User = Depends(user)) -> list[dict[str, Any]]:
    """The projects this user may read."""
    inst = instance(request)
    allowed = accounts.project_access(inst.store, who)
    return [_summary(info, allowed[info.uid]) for info in inst.store.projects() if info.uid in allowed]


@router.post("")
def create_project(body: NewProject, request: Request, who: User = Depends(user)) -> dict[str, Any]:
    """A new project owned by its maker, in the server's projects folder (an admin may name another)."""
    if body.directory is not None and not who.is_admin:
        raise HTTPException(403, "only an admin may choose where a project's folder goes")
    inst = instance(request)
    project = inst.create_project(body.title, body.directory or state(request).projects_dir, body.description)
    accounts.set_member(inst.store, project.uid, who.username, Access.OWNER)
    return _detail(request, project, Access.OWNER)


@router.post("/attach")
def attach_project(body: AttachBody, request: Request, _admin: User = Depends(admin)) -> dict[str, Any]:
    """Attach a project directory that lies on the server (``take_over``: one another instance's lock names)."""
    project = instance(request).attach(body.directory, take_over=body.take_over)
    return _detail(request, project, Access.OWNER)


@router.get("/{project}")
def get_project(request: Request, access: ProjectAccess = Depends(readable)) -> dict[str, Any]:
    return _detail(request, access.project, access.access)


@router.post("/{project}/workspaces")
def create_workspace(body: NewWorkspace, access: ProjectAccess = Depends(writable)) -> dict[str, Any]:
    ws = access.project.create_workspace(body.title, body.description)
    return {"uid": ws.uid, "title": ws.title}


@router.put("/{project}/members/{name}")
def set_member(name: str, body: MemberBody, request: Request,
               access: ProjectAccess = Depends(owned)) -> list[dict[str, str]]:
    if body.access != Access.OWNER:
        _keep_an_owner(request, access.project.uid, name)
    accounts.set_member(instance(request).store, access.project.uid, name, body.access)
    return _members(request, access.project.uid)


@router.delete("/{project}/members/{name}")
def remove_member(name: str, request: Request, access: ProjectAccess = Depends(owned)) -> list[dict[str, str]]:
    _keep_an_owner(request, access.project.uid, name)
    accounts.remove_member(instance(request).store, access.project.uid, name)
    return _members(request, access.project.uid)
