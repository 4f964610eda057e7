"""The HTTP API from a browser's side: logging in, CSRF, who may see and change what, and the
builder through hand-written requests (the same checks and messages as the CLI)."""

from __future__ import annotations

import re

import pytest

from cryoweave.cli import main as cli_main
from server_support import PASSWORD, add_user, client_as, login, make_server

# A value for each path parameter, so that every route can be called.
PATH_VALUES = {"project": "P1", "job": "J1", "input_name": "volume", "index": "0", "slot": "map", "seq": "0",
               "group": "volume", "result": "map", "path": "job.log", "name": "bob"}


def _routes(client, prefix: str) -> list[tuple[str, str]]:
    """Every (method, concrete path) of the OpenAPI schema under ``prefix``."""
    found = []
    for path, methods in client.app.openapi()["paths"].items():
        if not path.startswith(prefix):
            continue
        concrete = re.sub(r"\{(\w+)(:path)?\}", lambda m: PATH_VALUES[m.group(1)], path)
        found += [(method.upper(), concrete) for method in methods]
    return found


@pytest.fixture
def server(tmp_path):
    inst, client = make_server(tmp_path)
    add_user(inst, "root", admin=True)
    add_user(inst, "alice")
    add_user(inst, "bob")
    login(client, "alice")
    made = client.post("/api/projects", json={"title": "Alice's project"})
    assert made.status_code == 200, made.text
    assert made.json()["uid"] == "P1"
    yield inst, client, tmp_path
    inst.close()


def test_login_logout_and_me(server):
    inst, client, _tmp_path = server
    me = client.get("/api/me").json()
    assert me["username"] == "alice" and me["role"] == "user" and len(me["csrf_token"]) > 20
    cookie = client.cookies.get("cryoweave_session")
    assert cookie and cookie not in str(inst.store.engine.url)
    assert client.post("/api/logout").status_code == 200
    assert client.get("/api/me").status_code == 401
    answer = client.post("/api/login", json={"username": "alice", "password": "wrong password"})
    assert answer.status_code == 401 and "wrong user name or password" in answer.json()["detail"]
    assert client.post("/api/login", json={"username": "nobody", "password": PASSWORD}).status_code == 401


def test_password_guessing_is_slowed_down(server):
    _inst, client, _tmp_path = server
    for _ in range(5):
        assert client.post("/api/login", json={"username": "bob", "password": "guess"}).status_code == 401
    answer = client.post("/api/login", json={"username": "bob", "password": PASSWORD})
    assert answer.status_code == 429 and "too many failed logins for 'bob'" in answer.json()["detail"]
    assert client.post("/api/login", json={"username": "alice", "password": PASSWORD}).status_code == 200


def test_the_session_cookie_is_http_only_and_strict(tmp_path):
    inst, client = make_server(tmp_path)
    add_user(inst, "alice")
    answer = client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    header = answer.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header
    inst.close()


def test_every_state_changing_route_needs_the_csrf_token(server):
    _inst, client, _tmp_path = server
    good = client.headers.pop("X-CSRF-Token")
    changing = [(m, p) for m, p in _routes(client, "/api/") if m not in ("GET", "HEAD") and p != "/api/login"]
    assert len(changing) > 20
    for method, path in changing:
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            answer = client.request(method, path, json={}, headers=headers)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "X-CSRF-Token" in answer.json()["detail"]
    client.headers["X-CSRF-Token"] = good
    assert client.post("/api/projects/P1/workspaces", json={"title": "Curation"}).status_code == 200


def test_a_user_without_access_gets_403_on_every_route_of_the_project(server):
    inst, client, tmp_path = server
    client.post("/api/projects/P1/jobs", json={"type": "generate_phantom", "params": {"box": 32}})
    bob = client_as(inst, tmp_path, "bob")
    routes = _routes(client, "/api/projects/{project}")
    assert len(routes) >= 20
    for method, path in routes:
        answer = bob.request(method, path, json={})
        assert answer.status_code == 403, (method, path, answer.text)
        assert "no access to project P1" in answer.json()["detail"]
    # a project that does not exist looks the same to him
    assert bob.get("/api/projects/P7/jobs").status_code == 403
    assert [p["uid"] for p in bob.get("/api/projects").json()] == []
    assert [p["uid"] for p in client.get("/api/projects").json()] == ["P1"]


def test_read_access_may_look_but_not_change(server):
    inst, client, tmp_path = server
    client.post("/api/projects/P1/jobs", json={"type": "generate_phantom", "params": {"box": 32}})
    assert client.put("/api/projects/P1/members/bob", json={"access": "read"}).status_code == 200
    bob = client_as(inst, tmp_path, "bob")
    assert bob.get("/api/projects/P1/jobs").json()["jobs"][0]["type"] == "generate_phantom"
    assert bob.get("/api/projects/P1/jobs/J1").status_code == 200
    for method, path in _routes(client, "/api/projects/{project}"):
        if method in ("GET", "HEAD"):
            continue
        answer = bob.request(method, path, json={})
        assert answer.status_code == 403, (method, path, answer.text)
        assert "you have read access to P1" in answer.json()["detail"]


def test_write_access_builds_but_may_not_manage_members(server):
    inst, client, tmp_path = server
    client.put("/api/projects/P1/members/bob", json={"access": "write"})
    bob = client_as(inst, tmp_path, "bob")
    made = bob.post("/api/projects/P1/jobs", json={"type": "generate_phantom", "params": {"box": 32}})
    assert made.status_code == 200 and made.json()["uid"] == "J1"
    assert bob.put("/api/projects/P1/members/bob", json={"access": "owner"}).status_code == 403
    assert client.delete("/api/projects/P1/members/alice").status_code == 400  # the only owner stays
    demoted = client.put("/api/projects/P1/members/alice", json={"access": "read"})
    assert demoted.status_code == 400 and "only owner" in demoted.json()["detail"]
    client.put("/api/projects/P1/members/bob", json={"access": "owner"})
    assert client.put("/api/projects/P1/members/alice", json={"access": "read"}).status_code == 200


def test_only_admins_manage_users_lanes_and_attach(server):
    inst, client, tmp_path = server
    for method, path, body in [("GET", "/api/users", None), ("POST", "/api/users", {"username": "eve",
                               "password": PASSWORD}), ("DELETE", "/api/users/bob", None),
                               ("POST", "/api/lanes/local", {"name": "small", "cpu": 1, "ram_gb": 1}),
                               ("POST", "/api/projects/attach", {"directory": str(tmp_path)})]:
        answer = client.request(method, path, json=body)
        assert answer.status_code == 403, (method, path)
    root = client_as(inst, tmp_path, "root")
    assert root.post("/api/users", json={"username": "eve", "password": PASSWORD}).status_code == 200
    assert root.post("/api/users", json={"username": "eve", "password": PASSWORD}).status_code == 400
    assert root.post("/api/users", json={"username": "x", "password": "short"}).status_code == 400
    assert [p["uid"] for p in root.get("/api/projects").json()] == ["P1"]  # an admin sees every project
    assert root.post("/api/lanes/local", json={"name": "small", "cpu": 1, "ram_gb": 1}).status_code == 200
    assert "small" in [lane["name"] for lane in client.get("/api/lanes").json()]
    # only an admin may say where a project's folder goes
    answer = client.post("/api/projects", json={"title": "Elsewhere", "directory": str(tmp_path / "x")})
    assert answer.status_code == 403


def test_wrong_connections_get_the_same_error_as_the_cli(server, tmp_path, monkeypatch, capsys):
    _inst, client, _ = server
    client.post("/api/projects/P1/jobs", json={"type": "generate_phantom", "params": {"box": 32}})
    client.post("/api/projects/P1/jobs", json={"type": "homo_reconstruct"})
    answer = client.post("/api/projects/P1/jobs/J2/inputs/particles/connections", json={"source": "J1.volume"})
    assert answer.status_code == 400
    monkeypatch.setenv("CRYOWEAVE_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit):
        cli_main(["job", "connect", "P1", "J2", "particles", "J1.volume"])
    assert answer.json()["detail"] in capsys.readouterr().err
    for body, where in [({"source": "J9.volume"}, "J9"), ({"source": "J1.volume.map"}, "names a result")]:
        answer = client.post("/api/projects/P1/jobs/J2/inputs/particles/connections", json=body)
        assert answer.status_code in (400, 404) and where in answer.json()["detail"], answer.text
    answer = client.put("/api/projects/P1/jobs/J1/params", json={"box": "large"})
    assert answer.status_code == 400 and "box" in answer.json()["detail"]
    answer = client.post("/api/projects/P1/jobs/J2/queue", json={})
    assert answer.status_code == 400 and "particles" in answer.json()["detail"]
    answer = client.post("/api/projects/P1/jobs", json={"type": "no_such_type"})
    assert answer.status_code == 404 and "no_such_type" in answer.json()["detail"]


def test_building_a_chain_with_overrides_through_the_api(server):
    _inst, client, _tmp_path = server
    base = "/api/projects/P1/jobs"
    client.post(base, json={"type": "generate_phantom", "params": {"box": 32}})
    client.post(base, json={"type": "simulate_data", "params": {"num_particles": 50}})
    client.post(f"{base}/J2/inputs/volume/connections", json={"source": "J1.volume"})
    client.post(base, json={"type": "simulate_data", "params": {"num_particles": 50}})
    client.post(f"{base}/J3/inputs/volume/connections", json={"source": "J1.volume"})
    client.post(base, json={"type": "homo_reconstruct"})
    detail = client.post(f"{base}/J4/inputs/particles/connections", json={"source": "J2.particles"}).json()
    slots = {s["slot"]: s for s in detail["inputs"][0]["connections"][0]["slots"]}
    assert slots["blob"]["bound"] == "J2.particles.blob.F" and not slots["blob"]["override"]
    detail = client.put(f"{base}/J4/inputs/particles/connections/0/slots/blob",
                        json={"source": "J3.particles.blob"}).json()
    slots = {s["slot"]: s for s in detail["inputs"][0]["connections"][0]["slots"]}
    assert slots["blob"]["bound"] == "J3.particles.blob.F" and slots["blob"]["override"]
    detail = client.delete(f"{base}/J4/inputs/particles/connections/0/slots/ctf").json()
    slots = {s["slot"]: s for s in detail["inputs"][0]["connections"][0]["slots"]}
    assert slots["ctf"]["cleared"] and slots["ctf"]["bound"] is None
    detail = client.post(f"{base}/J4/inputs/particles/connections/0/slots/ctf/reset").json()
    assert {s["slot"]: s for s in detail["inputs"][0]["connections"][0]["slots"]}["ctf"]["bound"] == \
        "J2.particles.ctf.F"
    jobs = client.get(base).json()["jobs"]
    assert [j["parents"] for j in jobs] == [[], ["J1"], ["J1"], ["J2", "J3"]]
    detail = client.patch(f"{base}/J4", json={"tags": ["best", " final-map "], "title": "Full size"}).json()
    assert detail["tags"] == ["best", "final-map"] and detail["title"] == "Full size"
    assert [j["uid"] for j in client.get(base, params={"tag": "best"}).json()["jobs"]] == ["J4"]
    assert [j["uid"] for j in client.get(base, params={"type": "simulate_data", "sort": "uid", "desc": 1})
            .json()["jobs"]] == ["J3", "J2"]
    assert client.get(base, params={"sort": "nonsense"}).status_code == 400
    detail = client.post(f"{base}/J4/clone", json={"title": "copy"}).json()
    assert detail["uid"] == "J5" and detail["inputs"][0]["connections"][0]["source"] == "J2.particles"
    detail = client.delete(f"{base}/J5/inputs/particles/connections/0").json()
    assert detail["inputs"][0]["connections"] == [] and detail["requirements"]


def test_a_job_runs_and_its_events_and_log_are_read(server):
    inst, client, _tmp_path = server
    base = "/api/projects/P1/jobs"
    client.post(base, json={"type": "generate_phantom", "params": {"box": 32}})
    assert client.post(f"{base}/J1/queue", json={"lane": "local"}).json()["status"] == "queued"
    inst.project("P1").job("J1").wait(timeout=120)
    detail = client.get(f"{base}/J1").json()
    assert detail["status"] == "completed" and detail["outputs"][0]["num_items"] == 1
    events = client.get(f"{base}/J1/events").json()
    assert events and all(e["seq"] > events[0]["seq"] for e in events[1:])
    later = client.get(f"{base}/J1/events", params={"after": events[-2]["seq"]}).json()
    assert later == events[-1:]
    log = client.get(f"{base}/J1/log").json()
    again = client.get(f"{base}/J1/log", params={"offset": log["offset"]}).json()
    assert log["offset"] > 0 and again == {"text": "", "offset": log["offset"]}
    with_image = [e for e in events if e["image"]]
    for e in with_image:
        image = client.get("/" + e["image"])  # relative to the page (/ here)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get(f"{base}/J1/events/9999/image").status_code == 404
    assert client.post(f"{base}/J1/clear", json={}).json()["status"] == "building"


def test_no_route_serves_files_from_outside(server):
    inst, client, tmp_path = server
    client.post("/api/projects/P1/jobs", json={"type": "generate_phantom", "params": {"box": 32}})
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    job_dir = inst.project("P1").job("J1").directory
    job_dir.mkdir(exist_ok=True)
    (job_dir / "job.log").symlink_to(secret)
    assert client.get("/api/projects/P1/jobs/J1/log").json() == {"text": "", "offset": 0}
    for path in ("/static/../../../etc/passwd", "/static/%2e%2e/%2e%2e/store/accounts.py", "/static/..%2fapp.py",
                 "/api/projects/P1/jobs/J1/files/..%2f..%2fsecret.txt"):
        answer = client.get(path)
        assert answer.status_code == 404 and b"not for the web" not in answer.content and b"root:" not in \
            answer.content, path


def test_the_page_runs_only_its_own_scripts(server):
    _inst, client, _tmp_path = server
    page = client.get("/")
    assert page.status_code == 200 and "static/app.js" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
