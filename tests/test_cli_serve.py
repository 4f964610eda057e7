"""``cryoweave user``, ``project share`` and ``cryoweave serve`` as a user runs them: a real server process."""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from cryoweave.server.serve import free_port

PASSWORD = "serve test password"


def _cli(env, *args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryoweave", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "CRYOWEAVE_HOME": str(tmp_path / "home")}


def test_user_and_share_verbs(env, tmp_path):
    assert _cli(env, "user", "add", "ada", "--admin", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert _cli(env, "user", "add", "bo", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    again = _cli(env, "user", "add", "bo", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "already a user named 'bo'" in again.stderr
    short = _cli(env, "user", "add", "cy", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    no_tty = _cli(env, "user", "add", "cy")
    assert no_tty.returncode == 1 and "--password-stdin" in no_tty.stderr and "Traceback" not in no_tty.stderr
    listed = json.loads(_cli(env, "user", "list", "--json").stdout)
    assert [(u["username"], u["role"]) for u in listed] == [("ada", "admin"), ("bo", "user")]
    assert _cli(env, "project", "create", "Shared", "--dir", str(tmp_path / "projects")).returncode == 0
    assert _cli(env, "project", "share", "P1", "bo", "--access", "write").returncode == 0
    bad = _cli(env, "project", "share", "P1", "bo", "--access", "everything")
    assert bad.returncode == 1 and "read, write or owner" in bad.stderr
    assert json.loads(_cli(env, "project", "members", "P1", "--json").stdout) == [{"username": "bo",
                                                                                 "access": "write"}]
    assert _cli(env, "project", "unshare", "P1", "bo").returncode == 0
    assert json.loads(_cli(env, "project", "members", "P1", "--json").stdout) == []
    refused = _cli(env, "user", "remove", "bo")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert _cli(env, "user", "remove", "bo", "--yes").returncode == 0


def test_serve_answers_logs_in_and_schedules(env, tmp_path):
    _cli(env, "user", "add", "ada", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cryoweave", "serve", "--port", str(port), "--projects-dir",
                               str(tmp_path / "projects")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        deadline = time.monotonic() + 60
        while True:
            try:
                page = opener.open(base + "/", timeout=5).read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        assert "<html" in page.lower()
        assert opener.open(base + "/docs", timeout=5).status == 200
        assert "/api/projects/{project}/jobs" in json.loads(opener.open(base + "/openapi.json").read())["paths"]

        def call(method, path, body=None, token=""):
            request = urllib.request.Request(base + path, method=method, data=json.dumps(body or {}).encode(),
                                             headers={"Content-Type": "application/json", "X-CSRF-Token": token})
            return json.loads(opener.open(request, timeout=30).read())

        token = call("POST", "/api/login", {"username": "ada", "password": PASSWORD})["csrf_token"]
        call("POST", "/api/projects", {"title": "Served"}, token)
        call("POST", "/api/projects/P1/jobs", {"type": "generate_phantom", "params": {"box": 32}}, token)
        call("POST", "/api/projects/P1/jobs/J1/queue", {}, token)
        deadline = time.monotonic() + 120
        while (status := call("GET", "/api/projects/P1/jobs/J1")["status"]) not in ("completed", "failed"):
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert status == "completed"  # the server's own scheduler ran it
        with pytest.raises(urllib.error.HTTPError) as refused:
            call("POST", "/api/projects/P1/jobs/J1/clear", {}, "not the token")
        assert refused.value.code == 403
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out
    assert f"serves http://127.0.0.1:{port}/ (API schema at /docs)" in out and "Traceback" not in out


def test_serve_refuses_a_port_in_use(env, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "cryoweave", "serve", "--port", str(port)], env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "could not start" in result.stderr and "Traceback" not in result.stderr
