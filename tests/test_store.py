"""Projects, workspaces and jobs through the Python API, on SQLite and on PostgreSQL.

Every test runs once per database (the ``database_url`` fixture) and checks both the database's
view and the files written into the project directory.
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from cryoweave.api import Instance
from cryoweave.builder import edits
from cryoweave.errors import AttachError, NotFoundError, ParamError, StatusError
from cryoweave.jobs import Registry
from cryoweave.model import JobStatus, files
from cryoweave.store import ProjectDirectory, read_project_files

TYPES = [
    {"type": "lab_import_particles", "title": "Import particles",
     "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
     "params": [{"name": "psize_A", "type": "number", "default": 1.0, "minimum": 0.1, "help": "pixel size"},
                {"name": "path", "type": "path"}]},
    {"type": "import_volume", "title": "Import volume", "outputs": [{"name": "volume", "type": "volume"}]},
    {"type": "subset_particles", "title": "Subset particles",
     "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"]}],
     "outputs": [{"name": "particles", "type": "particle", "passthrough": "particles"}],
     "params": [{"name": "fraction", "type": "number", "default": 0.5}]},
    {"type": "join_particles", "title": "Join particles",
     "inputs": [{"name": "particles", "type": "particle", "count_min": 2, "count_max": None}],
     "outputs": [{"name": "particles", "type": "particle"}]},
]


@pytest.fixture
def registry():
    reg = Registry()
    reg._loaded = True  # only the types registered here
    for t in TYPES:
        reg.register(t, "tests")
    return reg


@pytest.fixture
def inst(tmp_path, database_url, registry):
    with Instance(home=tmp_path / "home", database_url=database_url, registry=registry) as instance:
        yield instance


def read_job(project, uid):
    return json.loads((project.directory / uid / "job.json").read_text())


def test_create_project_writes_a_self_contained_directory(inst, tmp_path):
    p = inst.create_project("Apoferritin (2024)", tmp_path / "projects", "ferritin at 1.2 Å")
    q = inst.create_project("Apoferritin (2024)", tmp_path / "projects")
    assert (p.uid, q.uid) == ("P1", "P2")
    assert p.directory == tmp_path / "projects" / "apoferritin-2024"
    assert q.directory == tmp_path / "projects" / "apoferritin-2024-2"
    assert sorted(x.name for x in p.directory.iterdir()) == ["cryoweave.lock", "project.json", "workspaces.json"]
    record = json.loads((p.directory / "project.json").read_text())
    assert (record["uid"], record["title"], record["description"]) == ("P1", "Apoferritin (2024)", "ferritin at 1.2 Å")
    lock = ProjectDirectory(p.directory).read_lock()
    assert lock.instance_id == inst.store.instance_id
    assert [x.uid for x in inst.projects()] == ["P1", "P2"]
    with pytest.raises(ParamError, match="needs a title"):
        inst.create_project("  ", tmp_path)


def test_workspaces_and_jobs_are_numbered_per_project(inst, tmp_path):
    p = inst.create_project("A", tmp_path)
    q = inst.create_project("B", tmp_path)
    j1 = p.create_job("lab_import_particles")  # no workspace yet: a default one is made
    assert j1.workspaces == ["W1"] and p.workspaces()[0].title == "Default workspace"
    w2 = p.create_workspace("Refinement")
    with pytest.raises(ParamError, match="several workspaces"):
        p.create_job("lab_import_particles")
    j2 = p.create_job("subset_particles", workspace=w2.uid, title="half")
    assert (j1.uid, j2.uid, q.create_job("import_volume").uid) == ("J1", "J2", "J1")
    assert j2.title == "half" and j2.workspaces == ["W2"]
    j2.add_to_workspace("W1")
    assert sorted(j.uid for j in p.jobs(workspace="W1")) == ["J1", "J2"]
    assert [j.uid for j in p.jobs(workspace="W2")] == ["J2"]
    with pytest.raises(ParamError, match="at least one workspace"):
        j1.remove_from_workspace("W1")
    with pytest.raises(NotFoundError, match="no workspace W9"):
        p.create_job("lab_import_particles", workspace="W9")
    assert json.loads((p.directory / "workspaces.json").read_text())["workspaces"][1]["title"] == "Refinement"
    p.workspace("W2").rename("Refine")
    assert json.loads((p.directory / "workspaces.json").read_text())["workspaces"][1]["title"] == "Refine"


def test_params_are_checked_converted_and_exported(inst, tmp_path):
    p = inst.create_project("A", tmp_path)
    job = p.create_job("lab_import_particles", params={"psize_A": "0.83"})
    assert job.params == {"psize_A": 0.83, "path": None}
    job.set_params({"psize_A": 1.06, "path": "/data/raw/*.mrcs"})
    assert read_job(p, "J1")["params"] == {"path": "/data/raw/*.mrcs", "psize_A": 1.06}
    job.clear_param("path")
    assert p.job("J1").params == {"psize_A": 1.06, "path": None}
    assert read_job(p, "J1")["params"] == {"psize_A": 1.06}
    for bad, message in [({"psize_A": 0.0}, r"must lie in \[0.1"), ({"pixel": 1}, "no parameter 'pixel'"),
                         ({"psize_A": "big"}, "takes a number")]:
        with pytest.raises(ParamError, match=message):
            job.set_params(bad)
    texts = [e.text for e in job.events()]
    assert texts[0] == "created (lab_import_particles)" and texts[-1].startswith("parameters: path cleared")
    assert [e.seq for e in job.events()] == list(range(1, len(texts) + 1))
    assert [json.loads(line)["text"] for line in (job.directory / "events.jsonl").read_text().splitlines()[1:]] \
        == texts


def test_the_event_log_file_follows_the_database_when_appended_and_after_a_rollback(inst, tmp_path):
    p = inst.create_project("A", tmp_path)
    job = p.create_job("lab_import_particles")
    log = job.directory / "events.jsonl"
    for n in range(30):  # appended one line at a time
        inst.store.add_event(p.uid, job.uid, f"step {n}", data={"progress": {"done": n, "total": 30}})
    assert files.load_events(log.read_bytes(), log) == job.events()

    def fails_after_the_event(tx, record):
        tx.add_event(tx.job(record.uid)[0], record.uid, "never committed")
        raise ParamError("refused")
    with pytest.raises(ParamError):
        inst.store.edit_job(p.uid, job.uid, fails_after_the_event)
    assert files.load_events(log.read_bytes(), log)[-1].text == "never committed"  # ahead, never behind
    inst.store.add_event(p.uid, job.uid, "next")  # the same seq again: the log is rewritten from the database
    assert files.load_events(log.read_bytes(), log) == job.events()
    assert [e.text for e in job.events()][-2:] == ["step 29", "next"]


def test_connections_follow_the_input_rules(inst, tmp_path):
    p = inst.create_project("A", tmp_path)
    imp, _vol, sub, join = (p.create_job(t) for t in ("lab_import_particles", "import_volume", "subset_particles",
                                                       "join_particles"))
    sub.connect("particles", "J1.particles")
    assert [str(c) for c in read_inputs(p, "J3")["particles"]] == ["J1.particles"]
    cases = [
        (sub, "particles", "J1.particles", "takes at most 1 group"),
        (join, "particles", "J2.volume", "holds volume items but input 'particles' of J4 takes particle"),
        (join, "particles", "J1.nothing", "job J1 .lab_import_particles. has no output 'nothing'"),
        (join, "volumes", "J1.particles", "has no input 'volumes'"),
        (join, "particles", "J4.particles", "cannot be connected to its own output"),
        (join, "particles", "J9.particles", "no job J9"),
        (imp, "particles", "J3.particles", "has no input 'particles'"),
    ]
    for job, name, source, message in cases:
        with pytest.raises((ParamError, NotFoundError), match=message):
            job.connect(name, source)
    join.connect("particles", "J1.particles").connect("particles", "J3.particles")
    with pytest.raises(ParamError, match="already connected"):
        join.connect("particles", "J1.particles")
    sub.disconnect("particles")
    with pytest.raises(ParamError, match="would make a cycle: J4 already depends on J3"):
        sub.connect("particles", "J4.particles")
    join.disconnect("particles", 0)
    assert [str(c) for c in p.job("J4").inputs["particles"]] == ["J3.particles"]
    with pytest.raises(ParamError, match=r"has 1 connection.*no connection 5"):
        join.disconnect("particles", 5)


def read_inputs(project, uid):
    from cryoweave.model.records import Connection
    return {k: [Connection.model_validate(c) for c in v] for k, v in read_job(project, uid)["inputs"].items()}


def test_status_lifecycle_and_editing_rules(inst, tmp_path):
    p = inst.create_project("A", tmp_path)
    job = p.create_job("lab_import_particles")
    store = inst.store
    for status in ("queued", "launched", "started", "running"):
        store.edit_job(p.uid, job.uid, edits.transition(JobStatus(status)))
    (job.directory / "particles.cs").write_bytes(b"data")
    (job.directory / "extract").mkdir()
    with pytest.raises(StatusError, match="J1 is running; its parameters can change only while it is building"):
        job.set_param("psize_A", 2)
    with pytest.raises(StatusError, match="cannot become queued"):
        store.edit_job(p.uid, job.uid, edits.transition(JobStatus.QUEUED))
    with pytest.raises(StatusError, match="only killed or failed jobs can be marked completed"):
        job.mark_completed()
    store.edit_job(p.uid, job.uid, edits.transition(JobStatus.FAILED, "out of memory"))
    job.mark_completed()
    record = read_job(p, "J1")
    assert record["status"] == "completed"
    assert set(record["status_times"]) == {"building", "queued", "launched", "started", "running", "failed",
                                           "completed"}
    assert job.status == "completed"
    job.clear()
    assert sorted(x.name for x in job.directory.iterdir()) == ["events.jsonl", "job.json"]
    assert job.status == "building" and list(read_job(p, "J1")["status_times"]) == ["building"]
    with pytest.raises(StatusError, match="already building"):
        job.clear()
    texts = [e.text for e in job.events()]
    assert "status running → failed: out of memory" in texts and "status failed → completed: marked completed" in texts
    assert texts[-1] == "cleared (was completed)"


def test_archived_projects_are_read_only(inst, tmp_path):
    p = inst.create_project("A", tmp_path)
    job = p.create_job("lab_import_particles")
    p.archive()
    assert json.loads((p.directory / "project.json").read_text())["archived"] is True
    for action in (lambda: p.create_job("lab_import_particles"), lambda: job.set_param("psize_A", 2),
                   lambda: p.create_workspace("x"), lambda: p.rename("B")):
        with pytest.raises(StatusError, match=r"project P1 is archived .read-only.; unarchive it first"):
            action()
    p.unarchive()
    p.rename("B")
    assert p.title == "B" and json.loads((p.directory / "project.json").read_text())["title"] == "B"
    p.set_description("ferritin, second dataset")
    assert json.loads((p.directory / "project.json").read_text())["description"] == "ferritin, second dataset"
    assert p.info().description == "ferritin, second dataset"
    assert inst.job_spec("lab_import_particles").param("psize_A").default == 1.0


def test_job_lists_filter_by_status_type_and_workspace(inst, tmp_path):
    p = inst.create_project("A", tmp_path)
    for t in ("lab_import_particles", "import_volume", "lab_import_particles"):
        p.create_job(t)
    inst.store.edit_job(p.uid, "J2", edits.transition(JobStatus.QUEUED))
    assert [j.uid for j in p.jobs()] == ["J1", "J2", "J3"]
    assert [j.uid for j in p.jobs(type="lab_import_particles")] == ["J1", "J3"]
    assert [j.uid for j in p.jobs(status="queued")] == ["J2"]
    with pytest.raises(NotFoundError, match="no project P7"):
        inst.project("P7")
    with pytest.raises(NotFoundError, match="'7' is not a project id"):
        inst.project("7")


def _populated(inst, tmp_path):
    p = inst.create_project("Apoferritin", tmp_path / "projects", "a test")
    p.create_workspace("Import")
    p.create_workspace("Refine")
    a = p.create_job("lab_import_particles", workspace="W1", params={"psize_A": 0.83})
    b = p.create_job("subset_particles", workspace=["W1", "W2"], title="quarter", params={"fraction": 0.25})
    b.connect("particles", "J1.particles")
    inst.store.edit_job(p.uid, a.uid, edits.transition(JobStatus.QUEUED))
    inst.store.edit_job(p.uid, a.uid, edits.transition(JobStatus.KILLED))
    return p


def test_detach_then_attach_on_another_instance(inst, tmp_path, registry, database_url, request):
    p = _populated(inst, tmp_path)
    before = {j.uid: p.job(j.uid).record for j in p.jobs()}
    events_before = {uid: p.job(uid).events() for uid in before}
    directory = p.detach()
    assert inst.projects() == [] and not (directory / "cryoweave.lock").exists()
    moved = shutil.move(directory, tmp_path / "elsewhere" / "renamed")  # moved and renamed: still attaches
    other_url = _second_database(database_url, request, tmp_path)
    with Instance(home=tmp_path / "home2", database_url=other_url, registry=registry) as second:
        second.create_project("Existing", tmp_path / "other")
        q = second.attach(moved)
        assert (q.uid, q.title) == ("P2", "Imported: Apoferritin")
        assert q.info().description == "a test" and q.directory == tmp_path / "elsewhere" / "renamed"
        assert [w.title for w in q.workspaces()] == ["Import", "Refine"]
        for uid, record in before.items():
            after = q.job(uid).record
            assert after.model_dump(exclude={"updated_at"}) == record.model_dump(exclude={"updated_at"})
            assert q.job(uid).events() == events_before[uid]
        assert q.job("J2").inputs["particles"][0].job == "J1"
        assert q.create_job("import_volume", workspace="W2").uid == "J3"  # numbering goes on
        assert q.create_workspace("New").uid == "W3"
        assert ProjectDirectory(moved).read_lock().instance_id == second.store.instance_id
        assert json.loads((moved / "project.json").read_text())["uid"] == "P2"
        with pytest.raises(AttachError, match="already attached to this instance as P2"):
            second.attach(moved)


def _second_database(database_url, request, tmp_path):
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'second.db'}"
    return request.getfixturevalue("postgres_server").create_database(f"second_{uuid.uuid4().hex[:12]}")


def _chain(inst, tmp_path):
    """J1 import -> J2 subset -> J3 subset -> J4 subset: J2 cannot take J4's output."""
    p = inst.create_project("Chain", tmp_path / "projects")
    p.create_job("lab_import_particles")
    for n in (1, 2, 3):
        p.create_job("subset_particles").connect("particles", f"J{n}.particles")
    p.job("J2").disconnect("particles")
    return p


def test_ancestry_is_known_after_attach(inst, tmp_path, registry, database_url, request):
    p = _chain(inst, tmp_path)
    with pytest.raises(ParamError, match="would make a cycle: J4 already depends on J2"):
        p.job("J2").connect("particles", "J4.particles")
    directory = p.detach()
    with Instance(home=tmp_path / "home2", database_url=_second_database(database_url, request, tmp_path),
                  registry=registry) as second:
        q = second.attach(directory)
        with pytest.raises(ParamError, match="would make a cycle: J4 already depends on J2"):
            q.job("J2").connect("particles", "J4.particles")
        q.job("J2").connect("particles", "J1.particles")  # not a cycle


def test_upgrading_from_the_first_schema_fills_job_ancestry(tmp_path, database_url, registry):
    from cryoweave.store import database

    with Instance(home=tmp_path / "home", database_url=database_url, registry=registry) as inst:
        _chain(inst, tmp_path)
        with inst.store.engine.begin() as conn:  # back to schema 0001, as an older cryoweave left it
            for table in ("project_members", "sessions", "users"):  # 0005
                conn.exec_driver_sql(f"DROP TABLE {table}")
            conn.exec_driver_sql("DROP TABLE job_parents")
            conn.exec_driver_sql("DROP TABLE lanes")
            conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN heartbeat_at")
            conn.exec_driver_sql("ALTER TABLE projects DROP COLUMN keep_final_only")
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    with Instance(home=tmp_path / "home", database_url=database_url, registry=registry) as inst:
        assert database.current_revision(inst.store.engine) == database.HEAD
        p = inst.project("P1")
        with pytest.raises(ParamError, match="would make a cycle: J4 already depends on J2"):
            p.job("J2").connect("particles", "J4.particles")


def test_a_locked_project_needs_take_over(inst, tmp_path, registry, database_url, request):
    p = _populated(inst, tmp_path)
    copy = shutil.copytree(p.directory, tmp_path / "copy")  # still names the first instance in its lock
    with Instance(home=tmp_path / "home2", database_url=_second_database(database_url, request, tmp_path),
                  registry=registry) as second:
        with pytest.raises(AttachError, match=r"held by instance .* since .*--take-over"):
            second.attach(copy)
        assert second.projects() == []
        q = second.attach(copy, take_over=True)
        assert [j.uid for j in q.jobs()] == ["J1", "J2"]
    # the first instance still has its own project, untouched
    assert [j.uid for j in p.jobs()] == ["J1", "J2"] and p.title == "Apoferritin"


def test_failed_attach_leaves_the_database_as_it_was(inst, tmp_path):
    p = _populated(inst, tmp_path)
    directory = p.detach()
    good = (directory / "J2" / "job.json").read_bytes()
    (directory / "J2" / "job.json").write_bytes(good[: len(good) // 2])
    with pytest.raises(AttachError, match=r"J2/job.json: not valid JSON .*damaged"):
        inst.attach(directory)
    assert inst.projects() == []
    document = json.loads(good)
    document["schema_version"] = 99
    (directory / "J2" / "job.json").write_text(json.dumps(document))
    with pytest.raises(AttachError, match="written by a newer cryoweave"):
        inst.attach(directory)
    document["schema_version"] = 1
    document["workspaces"] = ["W7"]
    (directory / "J2" / "job.json").write_text(json.dumps(document))
    with pytest.raises(AttachError, match=r"in workspace W7, which .*workspaces.json does not have"):
        inst.attach(directory)
    (directory / "J2" / "job.json").write_bytes(good)
    (directory / "project.json").unlink()
    with pytest.raises(AttachError, match=r"not a cryoweave project directory .no project.json."):
        inst.attach(directory)
    with pytest.raises(AttachError, match="no such directory"):
        inst.attach(tmp_path / "nope")
    assert inst.projects() == []


def test_the_directory_alone_rebuilds_the_view(inst, tmp_path):
    p = _populated(inst, tmp_path)
    content = read_project_files(ProjectDirectory(p.directory))
    assert [j.uid for j in content.jobs] == ["J1", "J2"]
    assert {j.uid: j for j in content.jobs} == {j.uid: p.job(j.uid).record for j in p.jobs()}
    assert content.events == {uid: p.job(uid).events() for uid in ("J1", "J2")}


def test_delete_removes_rows_and_directory(inst, tmp_path):
    p = _populated(inst, tmp_path)
    directory = p.directory
    inst.store.edit_job(p.uid, "J2", edits.transition(JobStatus.QUEUED))
    with pytest.raises(StatusError, match=r"has active jobs .J2."):
        p.delete()
    with pytest.raises(StatusError, match=r"has active jobs .J2."):
        p.detach()
    inst.store.edit_job(p.uid, "J2", edits.transition(JobStatus.KILLED))
    p.delete()
    assert not directory.exists() and inst.projects() == []


def test_instance_info(inst, tmp_path):
    _populated(inst, tmp_path)
    info = inst.info()
    assert info["projects"] == 1 and info["jobs"] == 2
    ours = ["import_volume", "join_particles", "lab_import_particles", "subset_particles"]  # and the built-in ones
    assert [t for t in info["job_types"] if t in ours] == ours and info["job_types"] == sorted(info["job_types"])
    assert len(info["instance_id"]) == 32 and "password" not in info["database"]


def test_schema_head_constant_matches_the_migrations(database_url, tmp_path):
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cryoweave.store import database

    config = Config()
    config.set_main_option("script_location", str(database.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == database.HEAD
    engine = database.connect(database_url)
    assert database.current_revision(engine) is None
    database.upgrade(engine)
    assert database.current_revision(engine) == database.HEAD
    first = database.instance_id(engine)
    assert database.instance_id(engine) == first  # made once, then read
    engine.dispose()


def test_a_taken_over_project_is_read_only_for_its_old_holder(inst, tmp_path, registry, database_url, request):
    p = _populated(inst, tmp_path)
    with Instance(home=tmp_path / "home2", database_url=_second_database(database_url, request, tmp_path),
                  registry=registry) as second:
        q = second.attach(p.directory, take_over=True)
        for action in (lambda: p.rename("X"), lambda: p.create_job("lab_import_particles", workspace="W1"),
                       lambda: p.job("J2").set_param("fraction", 0.1), lambda: p.create_workspace("W")):
            with pytest.raises(AttachError, match=r"is now held by instance .*can only detach it"):
                action()
        with pytest.raises(AttachError, match="held by another instance; it is not deleted"):
            p.delete()
        p.detach()  # drops it from the first instance, leaves the directory and the new lock alone
        assert ProjectDirectory(q.directory).read_lock().instance_id == second.store.instance_id
        assert q.title == "Imported: Apoferritin"
        q.rename("Mine now")
    assert inst.projects() == []


def test_bad_homes_and_folders_are_one_line_errors(tmp_path, database_url, registry):
    (tmp_path / "file").write_text("x")
    from cryoweave.errors import StoreError
    with pytest.raises(StoreError, match=r"cannot use .*file/home as the cryoweave home"):
        Instance(home=tmp_path / "file" / "home", database_url=database_url, registry=registry)
    with Instance(home=tmp_path / "home", database_url=database_url, registry=registry) as inst:
        with pytest.raises(ParamError, match=r"cannot make the project folder in .*file/sub"):
            inst.create_project("X", tmp_path / "file" / "sub")
        with pytest.raises(ParamError, match="is not a directory"):
            inst.create_project("X", tmp_path / "file")
        p = inst.create_project("X", tmp_path / "ok")
        with pytest.raises(ParamError, match="needs a title"):
            p.create_workspace(" ")
