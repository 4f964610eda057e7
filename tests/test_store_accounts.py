"""Accounts of the web server on each database: users, passwords, sessions, project members."""

from __future__ import annotations

import datetime as dt

import pytest

from cryoweave.api import Instance
from cryoweave.errors import NotFoundError, ParamError
from cryoweave.store import accounts
from cryoweave.store.accounts import Access


@pytest.fixture
def inst(tmp_path, database_url):
    with Instance(home=tmp_path / "home", database_url=database_url) as instance:
        yield instance


def test_users_passwords_and_roles(inst):
    store = inst.store
    ada = accounts.add_user(store, "ada", "first password", "admin")
    assert ada.is_admin and accounts.add_user(store, "bo.b-2", "second password").role == "user"
    for name, password, message in [("ada", "another password", "already a user named 'ada'"),
                                    ("-x", "long enough", "is not a user name"), ("x y", "long enough", "user name"),
                                    ("cy", "short", "at least 8"), ("cy", "long enough!", None)]:
        if message is None:
            accounts.add_user(store, name, password, "user")
            continue
        with pytest.raises(ParamError, match=message):
            accounts.add_user(store, name, password)
    with pytest.raises(ParamError, match="admin or user"):
        accounts.add_user(store, "dee", "long enough", "superuser")
    assert [u.username for u in accounts.list_users(store)] == ["ada", "bo.b-2", "cy"]
    assert accounts.verify(store, "ada", "first password") == ada
    assert accounts.verify(store, "ada", "wrong password") is None
    assert accounts.verify(store, "nobody", "first password") is None
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT password_hash FROM users WHERE username='ada'").scalar()
    assert row.startswith("$argon2id$") and "first password" not in row
    accounts.set_password(store, "ada", "new password!")
    assert accounts.verify(store, "ada", "first password") is None and accounts.verify(store, "ada", "new password!")
    assert not accounts.set_role(store, "ada", "user").is_admin
    accounts.remove_user(store, "cy")
    with pytest.raises(NotFoundError, match="no user named 'cy'"):
        accounts.get_user(store, "cy")


def test_sessions_are_stored_hashed_and_expire(inst):
    store = inst.store
    bo = accounts.add_user(store, "bo", "a password!")
    token, _session = accounts.start_session(store, bo)
    assert accounts.find_session(store, token).user == bo
    assert accounts.find_session(store, token + "x") is None and accounts.find_session(store, "") is None
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM sessions").scalars().all()
    assert token not in stored and len(stored) == 1
    old, _ = accounts.start_session(store, bo, ttl=dt.timedelta(seconds=-1))
    assert accounts.find_session(store, old) is None
    accounts.end_session(store, token)
    assert accounts.find_session(store, token) is None
    token, _ = accounts.start_session(store, bo)
    accounts.set_password(store, "bo", "another password")  # a new password ends every session
    assert accounts.find_session(store, token) is None


def test_members_and_access(inst, tmp_path):
    store = inst.store
    ada, bo = accounts.add_user(store, "ada", "a password!", "admin"), accounts.add_user(store, "bo", "a password!")
    inst.create_project("One", tmp_path / "projects")
    inst.create_project("Two", tmp_path / "projects")
    assert accounts.access_to(store, bo, "P1") is None and accounts.project_access(store, bo) == {}
    assert accounts.project_access(store, ada) == {"P1": Access.OWNER, "P2": Access.OWNER}
    accounts.set_member(store, "P2", "bo", "read")
    accounts.set_member(store, "P2", "bo", "write")  # replaces, never two rows
    assert accounts.members(store, "P2") == [("bo", Access.WRITE)]
    assert accounts.project_access(store, bo) == {"P2": Access.WRITE}
    assert Access.WRITE.allows(Access.READ) and not Access.WRITE.allows(Access.OWNER)
    with pytest.raises(ParamError, match="read, write or owner"):
        accounts.set_member(store, "P2", "bo", "admin")
    with pytest.raises(NotFoundError):
        accounts.set_member(store, "P9", "bo", "read")
    inst.project("P2").delete()  # the membership goes with the project
    assert accounts.project_access(store, bo) == {}
    accounts.set_member(store, "P1", "bo", "read")
    accounts.remove_user(store, "bo")
    assert accounts.members(store, "P1") == []
