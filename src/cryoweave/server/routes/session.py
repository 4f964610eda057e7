"""Logging in and out, the accounts (admin), the lanes and the job types."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel

from cryoweave.server.deps import SESSION_COOKIE, admin, instance, session, state, user
from cryoweave.store import accounts
from cryoweave.store.accounts import Role, Session, User

router = APIRouter(prefix="/api", tags=["session"])
FAILED_LOGINS = 5
FAILED_WINDOW_S = 300.0


class Login(BaseModel):
    username: str
    password: str


class NewUser(BaseModel):
    username: str
    password: str
    role: Role = Role.USER


class NewLocalLane(BaseModel):
    name: str
    cpu: int
    ram_gb: float
    gpus: list[int] = []
    title: str = ""


def _me(found: Session) -> dict[str, Any]:
    return {"username": found.user.username, "role": str(found.user.role), "csrf_token": found.csrf_token}


def _user_data(u: User) -> dict[str, Any]:
    return {"username": u.username, "role": str(u.role), "created_at": u.created_at.isoformat()}


@router.post("/login")
def login(body: Login, request: Request, response: Response) -> dict[str, Any]:
    """Check the name and password; the answer sets the session cookie and gives the CSRF token."""
    store = instance(request).store
    recent = state(request).failed_logins
    now = time.monotonic()
    failures = [t for t in recent.pop(body.username, []) if now - t < FAILED_WINDOW_S]
    if failures:
        recent[body.username] = failures
    if len(failures) >= FAILED_LOGINS:
        wait = int(FAILED_WINDOW_S - (now - failures[0])) + 1
        raise HTTPException(429, f"too many failed logins for {body.username!r}: try again in {wait} s")
    who = accounts.verify(store, body.username, body.password)
    if who is None:
        recent[body.username] = [*failures, now]
        raise HTTPException(401, "wrong user name or password")
    recent.pop(body.username, None)
    token, found = accounts.start_session(store, who)
    secure = state(request).secure_cookies or request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, token, max_age=int(accounts.SESSION_TTL.total_seconds()), httponly=True,
                        samesite="strict", secure=secure, path="/")
    return _me(found)


@router.post("/logout")
def logout(request: Request, response: Response, _found: Session = Depends(session)) -> dict[str, Any]:
    accounts.end_session(instance(request).store, request.cookies.get(SESSION_COOKIE, ""))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {}


@router.get("/me")
def me(found: Session = Depends(session)) -> dict[str, Any]:
    return _me(found)


@router.get("/users")
def users(request: Request, _admin: User = Depends(admin)) -> list[dict[str, Any]]:
    return [_user_data(u) for u in accounts.list_users(instance(request).store)]


@router.post("/users")
def add_user(body: NewUser, request: Request, _admin: User = Depends(admin)) -> dict[str, Any]:
    return _user_data(accounts.add_user(instance(request).store, body.username, body.password, body.role))


@router.delete("/users/{name}")
def remove_user(name: str, request: Request, who: User = Depends(admin)) -> dict[str, Any]:
    if name == who.username:
        raise HTTPException(400, "you cannot remove your own account; ask another admin")
    accounts.remove_user(instance(request).store, name)
    return {}


def _lane_data(lane) -> dict[str, Any]:
    data = {"name": lane.name, "kind": lane.kind, "title": lane.title, "describe": lane.describe()}
    if lane.kind == "local":
        data |= {"cpu": lane.cpu, "gpus": lane.gpus, "ram_gb": lane.ram_gb}
    return data


@router.get("/lanes")
def lanes(request: Request, _user: User = Depends(user)) -> list[dict[str, Any]]:
    return [_lane_data(lane) for lane in instance(request).lanes()]


@router.post("/lanes/local")
def add_local_lane(body: NewLocalLane, request: Request, _admin: User = Depends(admin)) -> dict[str, Any]:
    return _lane_data(instance(request).add_local_lane(body.name, cpu=body.cpu, ram_gb=body.ram_gb, gpus=body.gpus,
                                                       title=body.title))


@router.delete("/lanes/{name}")
def remove_lane(name: str, request: Request, _admin: User = Depends(admin)) -> dict[str, Any]:
    instance(request).remove_lane(name)
    return {}


@router.get("/job-types")
def job_types(request: Request, _user: User = Depends(user)) -> list[dict[str, Any]]:
    return [{"name": s.type, "title": s.title, "category": s.category, "description": s.description}
            for s in instance(request).job_types()]


@router.get("/job-types/{name}")
def job_type(name: str, request: Request, _user: User = Depends(user)) -> dict[str, Any]:
    return instance(request).job_spec(name).model_dump(mode="json")
