"""Several processes changing the same project (or instance) at once lose no update.

Real processes (``tests/store_workers.py`` and the ``cryoweave`` command) share one instance:
the same home and database (SQLite file or PostgreSQL database). They wait for a barrier file
so that they all start changing things at the same moment, and the test then checks, in the
database and in the project directory's record files, that every change each of them reported
is there: no job, workspace, parameter, connection or event lost, and the numbers handed out
(``P``, ``W``, ``J``, event ``seq``) unique and contiguous.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cryoweave.api import Instance
from cryoweave.store import ProjectDirectory, read_project_files
from store_workers import SHARED, SOURCE, registry, shared_param, shared_value

WORKERS = Path(__file__).with_name("store_workers.py")
CRYOWEAVE = Path(sys.executable).with_name("cryoweave")
TIMEOUT_S = 120
FRESH_DATABASES, PEERS = 4, 3  # the first-use race is short: 3 processes race on each of 4 fresh databases


def start_together(commands: list[list[str]], tmp_path: Path, env: dict[str, str] | None = None) -> list[list[dict]]:
    """Run the commands at once: each prints a first line when ready, then waits for the barrier
    file; the barrier appears when all are ready. Returns each one's JSON output lines."""
    barrier = tmp_path / "barrier"
    procs = []
    for n, command in enumerate(commands):
        with open(tmp_path / f"out{n}", "wb") as out, open(tmp_path / f"err{n}", "wb") as err:
            command = [c.replace("{barrier}", str(barrier)) for c in command]
            procs.append(subprocess.Popen(command, stdout=out, stderr=err, env=env, start_new_session=True))
    try:
        deadline = time.monotonic() + TIMEOUT_S
        for n, proc in enumerate(procs):
            while not (tmp_path / f"out{n}").read_bytes().startswith(b"{"):
                assert proc.poll() is None, f"{commands[n]} died: {(tmp_path / f'err{n}').read_text()}"
                assert time.monotonic() < deadline, f"{commands[n]} never got ready"
                time.sleep(0.01)
        barrier.touch()
        while any(proc.poll() is None for proc in procs):  # the first to fail ends the run: no waiting on it
            if any(proc.returncode for proc in procs) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # its own process group: a CLI loop's children too
                proc.wait()
    outputs = []
    for n, proc in enumerate(procs):
        err = (tmp_path / f"err{n}").read_text()
        if proc.returncode == -signal.SIGKILL and any(p.returncode not in (0, -signal.SIGKILL) for p in procs):
            continue  # stopped because another one failed: that one is reported
        assert proc.returncode == 0, f"{commands[n]} failed ({proc.returncode}):\n{err[-3000:]}"
        outputs.append([json.loads(line) for line in (tmp_path / f"out{n}").read_text().splitlines()
                        if line.startswith("{")])
    return outputs


def worker(program: str, database_url: str, home: Path, *args: object) -> list[str]:
    return [sys.executable, str(WORKERS), program, "--database-url", database_url, "--home", str(home),
            "--barrier", "{barrier}", *map(str, args)]


def assert_files_match_database(inst: Instance, uid: str) -> None:
    """The project directory holds exactly what the database holds: every job, event, workspace."""
    project = inst.project(uid)
    content = read_project_files(ProjectDirectory(project.directory))
    assert [w.model_dump() for w in content.workspaces] == [w.model_dump() for w in inst.store.workspaces(uid)]
    assert [r.uid for r in content.jobs] == [j.uid for j in project.jobs()]
    for record in content.jobs:
        assert record == inst.store.get_job(uid, record.uid), record.uid
        assert content.events[record.uid] == inst.store.job_events(uid, record.uid), record.uid


def assert_contiguous(uids: list[str], letter: str) -> None:
    numbers = [int(u[1:]) for u in uids]
    assert all(u[0] == letter for u in uids) and sorted(numbers) == list(range(1, len(numbers) + 1)), uids


def make_project(inst: Instance, tmp_path: Path) -> tuple[str, str, str]:
    """A project with workspace W1, a source job J1 and the job all workers change, J2."""
    project = inst.create_project("Shared by many", tmp_path / "projects")
    project.create_workspace("Shared")
    source = project.create_job(SOURCE, workspace="W1")
    shared = project.create_job(SHARED, workspace="W1")
    return project.uid, source.uid, shared.uid


def check_shared_job(inst: Instance, uid: str, shared: str, expected: dict[str, int]) -> None:
    """Every parameter every process set on the shared job is there, each with its event."""
    record = inst.store.get_job(uid, shared)
    assert record.params == expected, sorted(set(expected) ^ set(record.params))
    events = inst.store.job_events(uid, shared)
    assert [e.seq for e in events] == list(range(1, len(expected) + 2))
    assert sorted(e.text for e in events[1:]) == sorted(f"parameters: {name} = {value!r}"
                                                        for name, value in expected.items())


@pytest.mark.parametrize("n_workers, n_jobs", [(4, 5)])
def test_workers_changing_one_project_at_once_lose_no_update(database_url, tmp_path, n_workers, n_jobs):
    home = tmp_path / "home"
    with Instance(home=home, database_url=database_url, registry=registry()) as inst:
        uid, source, shared = make_project(inst, tmp_path)
    outputs = start_together([worker("editor", database_url, home, "--project", uid, "--worker", i,
                                     "--jobs", n_jobs, "--shared", shared, "--source", source)
                              for i in range(n_workers)], tmp_path)

    with Instance(home=home, database_url=database_url, registry=registry()) as inst:
        project = inst.project(uid)
        made = {i: [e["job"] for e in out if e["op"] == "create_job"] for i, out in enumerate(outputs)}
        spaces = {i: next(e["workspace"] for e in out if e["op"] == "create_workspace")
                  for i, out in enumerate(outputs)}
        assert all(len(jobs) == n_jobs for jobs in made.values()), made
        assert all(out[-1]["op"] == "done" for out in outputs)
        every_job = [source, shared] + [j for jobs in made.values() for j in jobs]
        listed = [j.uid for j in project.jobs()]
        assert len(listed) == n_workers * n_jobs + 2 and sorted(every_job) == sorted(listed)
        assert_contiguous(listed, "J")
        workspaces = inst.store.workspaces(uid)
        assert_contiguous([w.uid for w in workspaces], "W")
        assert sorted(w.title for w in workspaces) == sorted(["Shared", *(f"Worker {i}" for i in range(n_workers))])
        assert sorted(spaces.values()) == [w.uid for w in workspaces[1:]]

        check_shared_job(inst, uid, shared, {shared_param(i, k): shared_value(i, k)
                                             for i in range(n_workers) for k in range(n_jobs)})
        for i, jobs in made.items():
            assert [j.uid for j in project.jobs(workspace=spaces[i])] == sorted(jobs, key=lambda u: int(u[1:]))
            for k, job_uid in enumerate(jobs):
                record = inst.store.get_job(uid, job_uid)
                assert record.title == f"worker {i} job {k}" and record.workspaces == ["W1", spaces[i]]
                assert record.params == {"label": f"w{i}", "x": float(i * 10 + k)}
                assert [str(c) for c in record.inputs["particles"]] == [f"{shared}.particles"]
                texts = [e.text for e in inst.store.job_events(uid, job_uid)]
                assert texts == ["created (cw_sink)",
                                 f"input particles[0] connected to {source}.particles (blob←{source}.particles.blob.F)",
                                 f"input particles[1] connected to {shared}.particles",  # its results: not known yet
                                 f"input particles disconnected from {source}.particles",
                                 f"parameters: x = {float(i * 10 + k)!r}", f"workspaces: W1, {spaces[i]}"]
        assert_files_match_database(inst, uid)


def test_cli_processes_and_a_worker_at_once_lose_no_update(database_url, tmp_path):
    """Two ``cryoweave`` command loops (workspaces, params) and a Python worker, at the same time."""
    home = tmp_path / "home"
    with Instance(home=home, database_url=database_url, registry=registry()) as inst:
        uid, source, shared = make_project(inst, tmp_path)
    env = {**os.environ, "CRYOWEAVE_HOME": str(home), "CRYOWEAVE_DATABASE_URL": database_url}
    loops, rounds = {"A": 6, "B": 7}, 2  # CLI loop name -> the worker number of its shared params

    def loop(name: str, who: int) -> list[str]:
        steps = []
        for k in range(rounds):
            steps.append(f'"{CRYOWEAVE}" workspace create {uid} "CLI {name}{k}" --json | tr -d "\\n"; echo')
            if k < 1:
                steps.append(f'"{CRYOWEAVE}" job set-param {uid} {shared} {shared_param(who, k)} '
                             f'{shared_value(who, k)} --json >/dev/null')
        wait = "echo '{\"op\": \"ready\"}'; while [ ! -e \"$1\" ]; do sleep 0.005; done; set -eo pipefail; "
        script = wait + "; ".join(steps)
        return ["bash", "-c", script, "loop", "{barrier}"]

    outputs = start_together([loop(name, who) for name, who in loops.items()]
                             + [worker("editor", database_url, home, "--project", uid, "--worker", 0, "--jobs", 4,
                                       "--shared", shared, "--source", source)], tmp_path, env)

    with Instance(home=home, database_url=database_url, registry=registry()) as inst:
        workspaces = inst.store.workspaces(uid)
        assert_contiguous([w.uid for w in workspaces], "W")
        made = {e["uid"]: e["title"] for out in outputs[:2] for e in out if "uid" in e}
        assert len(made) == 2 * rounds, made  # each CLI call got its own W number
        titles = {w.uid: w.title for w in workspaces}
        assert {u: titles[u] for u in made} == made
        assert sorted(titles.values()) == sorted(["Shared", "Worker 0", *made.values()])
        expected = {shared_param(who, k): shared_value(who, k) for who in loops.values() for k in range(1)}
        expected |= {shared_param(0, k): shared_value(0, k) for k in range(4)}
        check_shared_job(inst, uid, shared, expected)
        assert_contiguous([j.uid for j in inst.project(uid).jobs()], "J")
        assert len(inst.project(uid).jobs()) == 2 + 4
        assert_files_match_database(inst, uid)


def test_first_use_by_several_processes_at_once_opens_one_instance(database_url, tmp_path, request):
    """Processes opening brand-new (empty) databases at the same moment: all succeed, one instance each."""
    if database_url.startswith("sqlite"):
        more = [f"sqlite:///{tmp_path / f'more{n}.db'}" for n in range(FRESH_DATABASES - 1)]
    else:
        server = request.getfixturevalue("postgres_server")
        names = [f"fresh_{uuid.uuid4().hex[:12]}" for _ in range(FRESH_DATABASES - 1)]
        more = [server.create_database(name) for name in names]
        request.addfinalizer(lambda: [server.drop_database(name) for name in names])
    outputs = start_together([worker("open-instance", database_url, tmp_path / f"home{n}", "--peers", PEERS,
                                     "--also", *more) for n in range(PEERS)], tmp_path)
    for database in range(FRESH_DATABASES):
        opened = [e for out in outputs for e in out if e.get("database") == database]
        assert len(opened) == PEERS and len({e["instance_id"] for e in opened}) == 1, (database, opened)


@pytest.mark.parametrize("titles", ["distinct", "same"])
def test_projects_created_at_once_get_their_own_numbers_and_folders(database_url, tmp_path, titles):
    """Two processes creating projects at once (titles distinct, or all the same: one folder each)."""
    home, count = tmp_path / "home", 4
    with Instance(home=home, database_url=database_url, registry=registry()) as inst:
        inst.info()  # the instance exists before the race: only project creation races here
    outputs = start_together([worker("create-projects", database_url, home, "--projects", tmp_path / "projects",
                                     "--count", count, "--title", "Same" if titles == "same" else f"Title {n}")
                              for n in range(2)], tmp_path)
    errors = [e["error"] for out in outputs for e in out if e["op"] == "error"]
    assert errors == [], errors
    made = {e["uid"]: Path(e["directory"]) for out in outputs for e in out if e["op"] == "create_project"}
    assert len(made) == 2 * count
    assert_contiguous(list(made), "P")
    assert len(set(made.values())) == 2 * count
    with Instance(home=home, database_url=database_url, registry=registry()) as inst:
        assert {p.uid: p.directory for p in inst.projects()} == made
        for uid, directory in made.items():
            assert ProjectDirectory(directory).read_project().uid == uid
            assert ProjectDirectory(directory).read_lock().instance_id == inst.store.instance_id
