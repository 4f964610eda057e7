"""Accounts of an instance's web server: users, login sessions, and who may use each project.

Passwords are kept as Argon2id hashes (argon2-cffi); a session is a random token given to the
browser as a cookie, of which only the SHA-256 is stored, with its own CSRF token. Access to a
project is ``read``, ``write`` or ``owner``; an ``admin`` may do everything everywhere.

>>> add_user(store, "alice", "correct horse battery")              # doctest: +SKIP
>>> set_member(store, "P1", "alice", Access.WRITE)                 # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update

from cryoweave.errors import NotFoundError, ParamError
from cryoweave.model.records import utc_now
from cryoweave.store import database
from cryoweave.store.schema import project_members, projects, sessions, users
from cryoweave.store.store import Store
from cryoweave.store.transaction import aware, parse_uid

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSWORD = 8
SESSION_TTL = dt.timedelta(days=7)
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class Access(StrEnum):
    """What a user may do in a project; each level includes those before it."""

    READ = "read"
    WRITE = "write"
    OWNER = "owner"

    def allows(self, needed: Access) -> bool:
        order = [Access.READ, Access.WRITE, Access.OWNER]
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    created_at: dt.datetime

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: dt.datetime


def _user(row) -> User:
    return User(id=row.id, username=row.username, role=Role(row.role), created_at=aware(row.created_at))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ParamError(f"a password needs at least {MIN_PASSWORD} characters")


# ---------------------------------------------------------------------- users
def add_user(store: Store, username: str, password: str, role: Role | str = Role.USER) -> User:
    """A new account; the name is letters, digits, ``_ . -`` (up to 64), the password 8 characters or more."""
    if not USERNAME.match(username or ""):
        raise ParamError(f"{username!r} is not a user name: use letters, digits, '_', '.' or '-' (up to 64), "
                         "starting with a letter or digit")
    try:
        role = Role(role)
    except ValueError:
        raise ParamError(f"{role!r} is not a role; choose admin or user") from None
    _check_password(password)
    with database.transaction(store.engine) as conn:
        if conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None:
            raise ParamError(f"there is already a user named {username!r}")
        conn.execute(insert(users).values(username=username, password_hash=_HASHER.hash(password),
                                          role=str(role), created_at=utc_now()))
        row = conn.execute(select(users).where(users.c.username == username)).one()
    return _user(row)


def list_users(store: Store) -> list[User]:
    with database.transaction(store.engine, write=False) as conn:
        return [_user(r) for r in conn.execute(select(users).order_by(users.c.username))]


def get_user(store: Store, username: str) -> User:
    with database.transaction(store.engine, write=False) as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        raise NotFoundError(f"there is no user named {username!r} (cryoweave user list shows them)")
    return _user(row)


def set_password(store: Store, username: str, password: str) -> None:
    """A new password; every session of the user ends."""
    _check_password(password)
    user = get_user(store, username)
    with database.transaction(store.engine) as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(password_hash=_HASHER.hash(password)))
        conn.execute(delete(sessions).where(sessions.c.user_id == user.id))


def set_role(store: Store, username: str, role: Role | str) -> User:
    user = get_user(store, username)
    with database.transaction(store.engine) as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(role=str(Role(role))))
    return get_user(store, username)


def remove_user(store: Store, username: str) -> None:
    user = get_user(store, username)
    with database.transaction(store.engine) as conn:
        conn.execute(delete(sessions).where(sessions.c.user_id == user.id))
        conn.execute(delete(project_members).where(project_members.c.user_id == user.id))
        conn.execute(delete(users).where(users.c.id == user.id))


def verify(store: Store, username: str, password: str) -> User | None:
    """The user, when the password is theirs (the same work is done for unknown names)."""
    with database.transaction(store.engine, write=False) as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
    try:
        _HASHER.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return _user(row) if row is not None else None


# ---------------------------------------------------------------------- sessions
def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(store: Store, user: User, ttl: dt.timedelta = SESSION_TTL) -> tuple[str, Session]:
    """A new session: the token for the cookie (kept nowhere else) and the session."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utc_now()
    with database.transaction(store.engine) as conn:
        conn.execute(delete(sessions).where(sessions.c.expires_at < now))
        conn.execute(insert(sessions).values(token_hash=_digest(token), user_id=user.id, csrf_token=csrf,
                                             created_at=now, expires_at=now + ttl))
    return token, Session(user=user, csrf_token=csrf, expires_at=now + ttl)


def find_session(store: Store, token: str) -> Session | None:
    if not token:
        return None
    query = (select(sessions.c.csrf_token, sessions.c.expires_at, users)
             .join(users, users.c.id == sessions.c.user_id).where(sessions.c.token_hash == _digest(token)))
    with database.transaction(store.engine, write=False) as conn:
        row = conn.execute(query).first()
    if row is None or aware(row.expires_at) <= utc_now():
        return None
    return Session(user=_user(row), csrf_token=row.csrf_token, expires_at=aware(row.expires_at))


def end_session(store: Store, token: str) -> None:
    with database.transaction(store.engine) as conn:
        conn.execute(delete(sessions).where(sessions.c.token_hash == _digest(token)))


# ---------------------------------------------------------------------- project members
def _project_id(conn, project: str) -> int:
    number = parse_uid(project, "P", "project")
    found = conn.execute(select(projects.c.id).where(projects.c.number == number)).scalar()
    if found is None:
        raise NotFoundError(f"there is no project P{number} on this instance")
    return found


def set_member(store: Store, project: str, username: str, access: Access | str) -> None:
    """Give a user read, write or owner access to a project (replacing what they had)."""
    try:
        access = Access(access)
    except ValueError:
        raise ParamError(f"{access!r} is not an access level; choose read, write or owner") from None
    user = get_user(store, username)
    with database.transaction(store.engine) as conn:
        pid = _project_id(conn, project)
        conn.execute(delete(project_members).where(project_members.c.project_id == pid,
                                                   project_members.c.user_id == user.id))
        conn.execute(insert(project_members).values(project_id=pid, user_id=user.id, access=str(access)))


def remove_member(store: Store, project: str, username: str) -> None:
    user = get_user(store, username)
    with database.transaction(store.engine) as conn:
        pid = _project_id(conn, project)
        conn.execute(delete(project_members).where(project_members.c.project_id == pid,
                                                   project_members.c.user_id == user.id))


def members(store: Store, project: str) -> list[tuple[str, Access]]:
    """The project's members and their access, owners first."""
    with database.transaction(store.engine, write=False) as conn:
        pid = _project_id(conn, project)
        rows = conn.execute(select(users.c.username, project_members.c.access)
                            .join(users, users.c.id == project_members.c.user_id)
                            .where(project_members.c.project_id == pid)).all()
    order = {Access.OWNER: 0, Access.WRITE: 1, Access.READ: 2}
    return sorted(((name, Access(a)) for name, a in rows), key=lambda m: (order[m[1]], m[0]))


def project_access(store: Store, user: User) -> dict[str, Access]:
    """Every project the user may open, with their access (an admin: every project, as owner)."""
    with database.transaction(store.engine, write=False) as conn:
        if user.is_admin:
            return {f"P{n}": Access.OWNER for n in conn.execute(select(projects.c.number)).scalars()}
        rows = conn.execute(select(projects.c.number, project_members.c.access)
                            .join(projects, projects.c.id == project_members.c.project_id)
                            .where(project_members.c.user_id == user.id)).all()
    return {f"P{n}": Access(a) for n, a in rows}


def access_to(store: Store, user: User, project: str) -> Access | None:
    """The user's access to one project, or None."""
    if user.is_admin:
        return Access.OWNER
    number = parse_uid(project, "P", "project")
    query = (select(project_members.c.access).join(projects, projects.c.id == project_members.c.project_id)
             .where(projects.c.number == number, project_members.c.user_id == user.id))
    with database.transaction(store.engine, write=False) as conn:
        found = conn.execute(query).scalar()
    return None if found is None else Access(found)
