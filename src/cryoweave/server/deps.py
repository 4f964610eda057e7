"""What every route needs: the instance, the logged-in user, CSRF checks, and access to a project.

>>> @router.get("/api/projects/{project}/jobs")                       # doctest: +SKIP
... def jobs(access: ProjectAccess = Depends(readable)): ...
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, HTTPException, Request

from cryoweave.api import Instance
from cryoweave.api.objects import Job, Project
from cryoweave.errors import CryoweaveError
from cryoweave.store import accounts
from cryoweave.store.accounts import Access, Session, User

SESSION_COOKIE = "cryoweave_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass
class ServerState:
    """What the app was made with (``app.state.cryoweave``)."""

    instance: Instance
    projects_dir: Path
    secure_cookies: bool = False
    failed_logins: dict[str, list[float]] = field(default_factory=dict)
    """Recent failed logins by user name (monotonic times), to slow down password guessing."""


def state(request: Request) -> ServerState:
    return request.app.state.cryoweave


def instance(request: Request) -> Instance:
    return state(request).instance


def session(request: Request) -> Session:
    """The request's login session; a state-changing request must also carry its CSRF token."""
    found = accounts.find_session(instance(request).store, request.cookies.get(SESSION_COOKIE, ""))
    if found is None:
        raise HTTPException(401, "not logged in (or the session expired): log in again")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), found.csrf_token.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header: send the token GET /api/me gives")
    return found


def user(found: Session = Depends(session)) -> User:
    return found.user


def admin(found: User = Depends(user)) -> User:
    if not found.is_admin:
        raise HTTPException(403, "only an admin may do this")
    return found


@dataclass
class ProjectAccess:
    user: User
    access: Access
    project: Project

    def job(self, uid: str) -> Job:
        return self.project.job(uid)


def _project_access(request: Request, project: str, who: User, needed: Access) -> ProjectAccess:
    inst = instance(request)
    try:
        access = accounts.access_to(inst.store, who, project)
    except CryoweaveError:
        access = None
    if access is None:
        raise HTTPException(403, f"you have no access to project {project}; ask its owner or an admin to share it")
    if not access.allows(needed):
        raise HTTPException(403, f"you have {access} access to {project}; this needs {needed} access")
    return ProjectAccess(user=who, access=access, project=inst.project(project))


def readable(request: Request, project: str, who: User = Depends(user)) -> ProjectAccess:
    return _project_access(request, project, who, Access.READ)


def writable(request: Request, project: str, who: User = Depends(user)) -> ProjectAccess:
    return _project_access(request, project, who, Access.WRITE)


def owned(request: Request, project: str, who: User = Depends(user)) -> ProjectAccess:
    return _project_access(request, project, who, Access.OWNER)
