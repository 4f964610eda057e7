"""Helpers of the web server tests: an instance with accounts and a logged-in API client."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cryoweave.api import Instance
from cryoweave.server import create_app
from cryoweave.store import accounts

PASSWORD = "a long enough password"


def make_server(tmp_path: Path) -> tuple[Instance, TestClient]:
    """A fresh instance in ``tmp_path/home`` and a test client of its app (not logged in)."""
    inst = Instance(home=tmp_path / "home")
    client = TestClient(create_app(inst, projects_dir=tmp_path / "projects"))
    return inst, client


def add_user(inst: Instance, name: str, *, admin: bool = False) -> None:
    accounts.add_user(inst.store, name, PASSWORD, "admin" if admin else "user")


def login(client: TestClient, name: str, password: str = PASSWORD) -> TestClient:
    """Log ``client`` in; later state-changing requests carry the CSRF header."""
    answer = client.post("/api/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def client_as(inst: Instance, tmp_path: Path, name: str) -> TestClient:
    """Another browser: a client of a new app on the same instance, logged in as ``name``."""
    other = TestClient(create_app(inst, projects_dir=tmp_path / "projects"))
    return login(other, name)
