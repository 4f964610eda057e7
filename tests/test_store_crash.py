"""kill -9 in the middle of writes: every record file stays whole, and the directory is never behind.

A worker process (``tests/store_workers.py crash-writer``) creates a project and changes it in
every way the store knows, as fast as it can: jobs created, params set and cleared, inputs
connected and disconnected, workspaces made and renamed, jobs moved between workspaces,
renamed, moved through their lifecycle (with outputs and their files on completion), cleared,
marked completed, events logged, the project renamed, archived and unarchived. Before each
change it prints what it is about to do (``begin``), and after each commit the new state. The
test kills it with SIGKILL at a random moment, then checks three views of the project:

- **L**, the log: the state after the last change the worker reported committed;
- **D**, the first instance's database, reopened after the crash;
- **F**, the project directory's record files (and **A**, a fresh second instance that
  attached a copy of the directory).

What is allowed, precisely: the store writes a change's record files before it commits, so
the one change in flight (the last ``begin`` without its report) may be committed or not, and
its files may be written in full, in part or not at all. Hence:

1. every reported change is in D; D may hold the in-flight change on top (then F equals D);
2. F equals D except for the in-flight change's own entity (that job, that workspace list entry
   or the project), which may be *ahead* of D: for a job, ``job.json`` newer (later
   ``updated_at``) and its event log equal to D's or D's plus the one new event; a job or
   workspace the change creates may exist in F only; nothing in D may be missing from F or be
   newer in D than in F;
3. every record file parses; a temporary file the kill left is never taken for a record, and
   there is at most one;
4. A shows exactly what F holds (title "Imported: …"); and
5. the first instance opens again and keeps working on the project, after which its
   directory and its database agree exactly.

Set ``CRYOWEAVE_CRASH_SEED`` to replay a run's random choices (the kill moment is not
reproducible: it depends on the machine's speed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import store_workers
from cryoweave.api import Instance
from cryoweave.builder import edits
from cryoweave.errors import AttachError
from cryoweave.model import JobStatus
from cryoweave.store import ProjectDirectory, read_project_files
from store_workers import SINK, SOURCE

WORKERS = Path(__file__).with_name("store_workers.py")
TRIALS = 5
KILL_AFTER_S = (0.05, 1.0)  # after the worker reported its first change
SEED = int(os.environ.get("CRYOWEAVE_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))

RECORD_NAMES = {"project.json", "workspaces.json", "cryoweave.lock"}
JOB_RECORD_NAMES = {"job.json", "events.jsonl"}
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[^.]+\.tmp$")  # atomic_write: .<name>.<random>.tmp
OUTPUT_NAME = re.compile(r"^particles_v\d+\.cs$")  # the job's data files the worker writes


# --------------------------------------------------------------------------- the three views
@dataclass
class View:
    """A project as one source sees it: project fields, workspaces, jobs and their events."""

    project: dict[str, Any]
    workspaces: dict[str, dict[str, Any]]
    jobs: dict[str, dict[str, Any]]  # uid -> record as JSON data
    events: dict[str, Any]  # uid -> list of events as JSON data, or their number (the log knows only that)
    summaries: dict[str, tuple] = field(default_factory=dict)


def _project_fields(title: str, description: str, archived: bool) -> dict[str, Any]:
    return {"title": title, "description": description, "archived": bool(archived)}


def database_view(inst: Instance, uid: str) -> View:
    project = inst.project(uid)
    info = project.info()
    jobs, events = {}, {}
    for summary in project.jobs():
        jobs[summary.uid] = inst.store.get_job(uid, summary.uid).model_dump(mode="json")
        events[summary.uid] = [e.model_dump(mode="json") for e in inst.store.job_events(uid, summary.uid)]
    return View(project=_project_fields(info.title, info.description, info.archived),
                workspaces={w.uid: w.model_dump(mode="json") for w in inst.store.workspaces(uid)},
                jobs=jobs, events=events,
                summaries={s.uid: (s.type, s.title, s.status) for s in project.jobs()})


def files_view(directory: Path) -> View:
    content = read_project_files(ProjectDirectory(directory))
    return View(project=_project_fields(content.project.title, content.project.description,
                                        content.project.archived),
                workspaces={w.uid: w.model_dump(mode="json") for w in content.workspaces},
                jobs={r.uid: r.model_dump(mode="json") for r in content.jobs},
                events={uid: [e.model_dump(mode="json") for e in log] for uid, log in content.events.items()})


@dataclass
class WorkerLog:
    view: View  # the state after the last reported change (records without their spec)
    in_flight: tuple[str, str] | None  # (action, target) begun but not reported
    changes: int
    project_uid: str
    directory: Path


def read_log(path: Path) -> WorkerLog:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1]:  # an unfinished last line: that report never happened
        lines = lines[:-1]
    view = View(project={}, workspaces={}, jobs={}, events={})
    in_flight, changes, project_uid, directory = None, 0, "", Path()
    for line in filter(None, lines):
        entry = json.loads(line)
        op = entry["op"]
        if op == "begin":
            assert in_flight is None, f"two changes begun at once in the log: {in_flight}, {entry}"
            in_flight = (entry["action"], entry["target"])
            continue
        if op != "project":
            assert in_flight is not None, f"a change reported without its begin line: {entry}"
            changes += 1
        in_flight = None
        if "project" in entry:
            p = entry["project"]
            view.project = _project_fields(p["title"], p["description"], p["archived"])
            project_uid, directory = p["uid"], Path(p["directory"])
        elif "workspace" in entry:
            view.workspaces[entry["workspace"]["uid"]] = entry["workspace"]
        elif "job" in entry:
            view.jobs[entry["job"]["uid"]] = entry["job"]
            view.events[entry["job"]["uid"]] = entry["events"]
        else:
            view.events[entry["job_uid"]] = entry["events"]
    return WorkerLog(view, in_flight, changes, project_uid, directory)


# --------------------------------------------------------------------------- the comparisons
def _without_spec(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "spec"}


def _time(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(record["updated_at"])


def _count(events: Any) -> int:
    return events if isinstance(events, int) else len(events)


def differing(a: View, b: View, *, compare_spec: bool) -> dict[str, str]:
    """The entities (``project``, ``W3``, ``J5``) on which two views differ, each with a reason."""
    out = {}
    if a.project != b.project:
        out["project"] = f"{a.project} != {b.project}"
    for uid in sorted(set(a.workspaces) | set(b.workspaces)):
        if a.workspaces.get(uid) != b.workspaces.get(uid):
            out[uid] = f"workspace {a.workspaces.get(uid)} != {b.workspaces.get(uid)}"
    for uid in sorted(set(a.jobs) | set(b.jobs)):
        ra, rb = a.jobs.get(uid), b.jobs.get(uid)
        if ra is None or rb is None:
            out[uid] = f"job only in {'the second' if ra is None else 'the first'} view"
            continue
        if not compare_spec:
            ra, rb = _without_spec(ra), _without_spec(rb)
        ea, eb = a.events.get(uid, []), b.events.get(uid, [])
        if isinstance(ea, int) or isinstance(eb, int):
            ea, eb = _count(ea), _count(eb)
        if ra != rb or ea != eb:
            changed = sorted(k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k))
            out[uid] = f"job fields {changed} differ, events {_count(ea)} vs {_count(eb)}"
    return out


def in_flight_entity(log: WorkerLog) -> str | None:
    """The entity the change in flight touches (what a create would be numbered, for creations)."""
    if log.in_flight is None:
        return None
    target = log.in_flight[1]
    if target == "new-job":
        return f"J{len(log.view.jobs) + 1}"
    if target == "new-workspace":
        return f"W{len(log.view.workspaces) + 1}"
    return target


def check_one_change_ahead(older: View, newer: View, entity: str, action: str, what: str) -> None:
    """``newer`` holds ``older`` plus (part of) the in-flight change ``action`` on ``entity``."""
    if entity == "project":
        return  # title, description or archived: any of them may be the change
    if entity.startswith("W"):
        before, after = older.workspaces.get(entity), newer.workspaces.get(entity)
        assert after is not None, f"{what}: workspace {entity} is missing from the newer view (behind)"
        if before is None:
            assert action == "create_workspace", f"{what}: workspace {entity} appeared by {action}"
        else:
            assert _time(after) > _time(before), f"{what}: workspace {entity} is not newer in the newer view"
        return
    before, after = older.jobs.get(entity), newer.jobs.get(entity)
    if before is not None and after is not None and ("spec" in before) != ("spec" in after):
        before, after = _without_spec(before), _without_spec(after)  # the log leaves specs out
    assert after is not None, f"{what}: job {entity} is missing from the newer view (behind)"
    new_events = newer.events.get(entity, [])
    if before is None:
        assert action == "create_job", f"{what}: job {entity} appeared by {action}"
        assert after["status"] == "building" and _count(new_events) <= 1, (what, after, new_events)
        if not isinstance(new_events, int) and new_events:
            assert new_events[0]["text"].startswith("created"), new_events
        return
    old_events = older.events.get(entity, [])
    extra = _count(new_events) - _count(old_events)
    assert extra in (0, 1), f"{what}: job {entity} has {extra} more events in the newer view"
    if not isinstance(old_events, int) and not isinstance(new_events, int):
        assert new_events[: len(old_events)] == old_events, f"{what}: job {entity}'s older events were changed"
    if action == "event":  # an event alone: the record does not change
        assert after == before and extra == 1, f"{what}: event on {entity}: record changed or no new event"
    else:
        assert _time(after) > _time(before), (
            f"{what}: job {entity} differs but is not newer ({before['updated_at']} vs {after['updated_at']})")


# --------------------------------------------------------------------------- the files
def check_files(directory: Path, in_flight: str | None, db: View) -> list[Path]:
    """Every file is a whole record, a job's data file, or a leftover temporary file; returns those."""
    temps, problems = [], []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_dir():
            if len(relative.parts) != 1 or not re.fullmatch(r"J[1-9][0-9]*", path.name):
                problems.append(f"unexpected folder {relative}")
            continue
        name, parent = path.name, relative.parent
        temp = TEMP_NAME.match(name)
        if temp:
            expected = JOB_RECORD_NAMES if parent != Path(".") else RECORD_NAMES
            if temp["target"] not in expected:
                problems.append(f"temporary file {relative} of an unknown record")
            temps.append(relative)
        elif parent == Path("."):
            if name not in RECORD_NAMES:
                problems.append(f"unexpected file {relative}")
            elif name == "cryoweave.lock":
                assert ProjectDirectory(directory).read_lock() is not None
            else:
                json.loads(path.read_bytes())  # whole JSON, never truncated
        elif name == "job.json":
            assert json.loads(path.read_bytes())["uid"] == str(parent)
        elif name == "events.jsonl":
            lines = path.read_bytes().decode().split("\n")
            assert lines[-1] == "" and all(json.loads(line) for line in lines[:-1]), f"{relative} is cut"
        elif not OUTPUT_NAME.match(name):
            problems.append(f"unexpected file {relative}")
    assert not problems, problems
    assert len(temps) <= 1, f"only the write in flight can leave a temporary file, found {temps}"
    # A job folder without job.json (a creation killed before its record was renamed into place)
    # holds nothing but temporary files, belongs to the job in flight, and is no job.
    jobs_on_disk = set(ProjectDirectory(directory).job_numbers())
    for folder in directory.glob("J*"):
        if int(folder.name[1:]) not in jobs_on_disk:
            assert folder.name not in db.jobs, f"{folder.name} has no job.json but is in the database: behind"
            assert folder.name == in_flight, f"{folder.name} has no job.json, and its creation was not in flight"
            assert all(TEMP_NAME.match(p.name) for p in folder.iterdir()), list(folder.iterdir())
    return temps


def check_output_files(directory: Path, db: View, in_flight: str | None) -> None:
    """A job's data files are there exactly when its record lists them (the in-flight job aside:
    completing writes the files before the commit, clearing deletes them before it)."""
    for uid, record in db.jobs.items():
        if uid == in_flight:
            continue
        listed = {m for group in record["outputs"].values() for result in group["results"].values()
                  for m in result["metafiles"]}
        present = {f"{uid}/{p.name}" for p in (directory / uid).glob("particles_v*.cs")}
        assert present == listed, f"{uid} ({record['status']}): files {sorted(present)} vs outputs {sorted(listed)}"


# --------------------------------------------------------------------------- the test
def _second_database(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'second.db'}", None
    server = request.getfixturevalue("postgres_server")
    name = f"crash_second_{uuid.uuid4().hex[:12]}"
    return server.create_database(name), lambda: server.drop_database(name)


def run_and_kill(database_url: str, tmp_path: Path, seed: int, delay: float) -> WorkerLog:
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as out, open(tmp_path / "worker.err", "wb") as err:
        worker = subprocess.Popen(
            [sys.executable, str(WORKERS), "crash-writer", "--database-url", database_url,
             "--home", str(tmp_path / "home"), "--projects", str(tmp_path / "projects"), "--seed", str(seed)],
            stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while log_path.read_bytes().count(b"\n") < 3:  # the project and a first change exist: writes go on
            assert worker.poll() is None, f"the worker died: {(tmp_path / 'worker.err').read_text()}"
            assert time.monotonic() < deadline, "the worker did not create its project within 60 s"
            time.sleep(0.005)
        time.sleep(delay)
        assert worker.poll() is None, f"the worker died on its own: {(tmp_path / 'worker.err').read_text()}"
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    return read_log(log_path)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_9_mid_write_leaves_whole_files_and_a_directory_never_behind(
        trial, database_url, tmp_path, request):
    seed = SEED + trial
    delay = random.Random(seed).uniform(*KILL_AFTER_S)
    context = f"(CRYOWEAVE_CRASH_SEED={SEED}, trial {trial}, killed {delay * 1000:.0f} ms after the first change)"
    log = run_and_kill(database_url, tmp_path, seed, delay)
    assert log.changes >= 1, f"the worker committed nothing before the kill {context}"
    directory, uid = log.directory, log.project_uid
    entity = in_flight_entity(log)
    action = log.in_flight[0] if log.in_flight else ""
    registry = store_workers.registry()

    # D: the first instance opens again after the crash
    with Instance(home=tmp_path / "home", database_url=database_url, registry=registry) as first:
        db = database_view(first, uid)

        # 3. every record file is whole; at most one temporary file, never read as a record
        check_files(directory, entity, db)
        files = files_view(directory)
        check_output_files(directory, db, entity)

        # 1. every reported change is in the database; at most the one in flight on top
        behind = differing(log.view, db, compare_spec=False)
        assert set(behind) <= {entity} - {None}, f"database vs reported changes {context}: {behind}"
        # 2. the directory equals the database but for the in-flight change, and is never behind
        ahead = differing(db, files, compare_spec=True)
        assert set(ahead) <= {entity} - {None}, f"directory vs database {context}: {ahead}"
        if behind:
            check_one_change_ahead(log.view, db, entity, action, f"database vs log {context}")
        if ahead:
            check_one_change_ahead(db, files, entity, action, f"directory vs database {context}")
        assert not (behind and ahead), f"two changes past the log {context}: {behind} {ahead}"

        # 4. a second instance attaches a copy of the directory (its lock names the first: take over)
        copy = Path(shutil.copytree(directory, tmp_path / "copied" / directory.name, symlinks=True))
        url, drop = _second_database(database_url, request, tmp_path)
        try:
            with Instance(home=tmp_path / "home2", database_url=url, registry=registry) as second:
                with pytest.raises(AttachError, match="held by instance"):
                    second.attach(copy)
                attached = second.attach(copy, take_over=True)
                seen = database_view(second, attached.uid)
                assert seen.project["title"] == (files.project["title"] if files.project["title"].startswith(
                    "Imported: ") else "Imported: " + files.project["title"])
                seen.project["title"] = files.project["title"]
                assert differing(files, seen, compare_spec=True) == {}, context
                assert seen.summaries == {uid_: (r["type"], r["title"], r["status"])
                                          for uid_, r in files.jobs.items()}
                numbers = sorted(int(j[1:]) for j in files.jobs)
                assert numbers == list(range(1, len(numbers) + 1)), numbers
                if attached.archived:
                    attached.unarchive()
                assert attached.create_job(SOURCE, workspace=None if len(files.workspaces) < 2 else "W1").uid == (
                    f"J{len(numbers) + 1}")
        finally:
            if drop:
                drop()

        # 5. the first instance keeps working on the project, jobs the worker made included
        project = first.project(uid)
        if project.archived:
            project.unarchive()
        project.rename("After the crash")
        assert project.create_workspace("After the crash").uid == f"W{len(db.workspaces) + 1}"
        where = "W1" if db.workspaces else None
        source = project.create_job(SOURCE, workspace=where, params={"n": 7})
        assert source.uid == f"J{len(db.jobs) + 1}"
        sink = project.create_job(SINK, workspace=where)
        sink.connect("particles", f"{source.uid}.particles").set_param("x", 42)
        source.set_param("label", "continued")
        first.store.edit_job(uid, source.uid, edits.transition(JobStatus.QUEUED))
        if entity in db.jobs:  # the job the worker was changing when it died
            project.job(entity).rename("continued")
        worker_sinks = [u for u, r in db.jobs.items() if r["status"] == "building" and r["type"] == SINK]
        for uid_ in worker_sinks[-3:]:
            project.job(uid_).connect("particles", f"{source.uid}.particles").set_param("label", "continued")
        after = database_view(first, uid)
        assert after.jobs[sink.uid]["inputs"]["particles"] == [{"job": source.uid, "group": "particles",
                                                                 "overrides": {}, "cleared": []}]
        assert after.jobs[sink.uid]["params"] == {"x": 42.0} and after.jobs[source.uid]["status"] == "queued"
        # every residue of the change in flight is overwritten: files and database agree exactly
        assert differing(after, files_view(directory), compare_spec=True) == {}, context
        assert ProjectDirectory(directory).read_lock().instance_id == first.store.instance_id
