"""`cryoweave instance|project|workspace|job ...`, run as a user runs them: real processes, on both databases.

Every instance is its own ``CRYOWEAVE_HOME`` with its own fresh database (SQLite or PostgreSQL,
from the ``database_url`` fixture). The job types come from a fake lab plugin in
``tests/labjobs``, made visible the way ``pip install`` would (a ``.dist-info`` with entry
points) by putting that folder on ``PYTHONPATH``.

Each call costs a Python start (~0.5 s of CPU), so the file groups many checks per scenario and
runs calls that do not depend on each other concurrently: reads, refusals, and edits of
different jobs (which the store serialises per project without losing any).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cryoweave.jobs.library import library_jobs

LAB = Path(__file__).parent / "labjobs"
LAB_TYPES = ["join_particles", "lab_import_micrographs", "lab_import_particles", "subset_particles"]
ALL_TYPES = sorted(LAB_TYPES + [job.spec["type"] for job in library_jobs()])  # the lab's and the built-in ones
ERROR = "cryoweave: error: "
_second_databases = itertools.count()


def _env(home: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYOWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(LAB), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["CRYOWEAVE_HOME"] = str(home)
    env["CRYOWEAVE_JOB_PACKAGES"] = "labjobs"  # only the fixture's job types, whatever else is installed
    if database_url is not None:
        env["CRYOWEAVE_DATABASE_URL"] = database_url
    return env


def run(args: Sequence[Any], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryoweave", *map(str, args)], capture_output=True, text=True,
                          env=env, check=False, timeout=120)


def at_once(*tasks: Callable[[], Any]) -> list[Any]:
    """Run independent tasks concurrently (none may depend on another's effect); their results in order."""
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
        return [f.result() for f in [pool.submit(task) for task in tasks]]


def one_line_error(proc: subprocess.CompletedProcess, args: Sequence[Any] = ()) -> str:
    """The message of a user error: exit status 1, exactly one line on stderr, no traceback."""
    where = " ".join(map(str, args))
    assert proc.returncode == 1, f"{where}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), f"{where}: {proc.stderr!r}"
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0].removeprefix(ERROR)


class Cryoweave:
    """The ``cryoweave`` command of one instance (a home and a database).

    ``ok``, ``json`` and ``fails`` run one call; ``later`` wraps any of them for :func:`at_once`.
    """

    def __init__(self, home: Path, database_url: str | None):
        self.home, self.database_url = home, database_url
        self.env = _env(home, database_url)

    def ok(self, *args: Any) -> str:
        proc = run(args, self.env)
        assert proc.returncode == 0, f"cryoweave {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        return proc.stdout

    def json(self, *args: Any) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: Any) -> str:
        return one_line_error(run(args, self.env), args)

    def later(self, method: str, *args: Any) -> Callable[[], Any]:
        return lambda: getattr(self, method)(*args)

    def worker_moves(self, project: str, job: str, *statuses: str) -> None:
        """Move a job through statuses as a worker would (no verb runs jobs yet), through the Python API."""
        from cryoweave.api import Instance
        from cryoweave.builder import edits
        from cryoweave.model.status import JobStatus

        with Instance(home=self.home, database_url=self.database_url) as inst:
            for status in statuses:
                inst.store.edit_job(project, job, edits.transition(JobStatus(status)))


@pytest.fixture
def instances(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str],
                                                                                                      Cryoweave]]:
    """Make instances: the first on ``database_url``, later ones each on a fresh database of the same kind
    (on SQLite: the default database in the new home)."""
    dropped: list[Callable[[], None]] = []
    made: list[Cryoweave] = []

    def make(name: str) -> Cryoweave:
        if not made:
            url: str | None = database_url
        elif database_url.startswith("sqlite"):
            url = None
        else:
            server = request.getfixturevalue("postgres_server")
            db = f"cli_instance_{os.getpid()}_{next(_second_databases)}"
            url = server.create_database(db)
            dropped.append(lambda: server.drop_database(db))
        made.append(Cryoweave(tmp_path / name, url))
        return made[-1]

    yield make
    for drop in dropped:
        drop()


def _reads(cli: Cryoweave, project: str, jobs: list[str]) -> list[Callable[[], Any]]:
    """Tasks reading everything the CLI shows about a project with --json (see :func:`_collect`)."""
    calls = [("project", "info", project), ("workspace", "list", project), ("job", "list", project)]
    calls += [("job", "info", project, j) for j in jobs] + [("job", "events", project, j) for j in jobs]
    return [cli.later("json", *c) for c in calls]


def _collect(out: list[Any], jobs: list[str]) -> dict[str, Any]:
    n = len(jobs)
    return {"project": out[0], "workspaces": out[1], "jobs": out[2], "info": dict(zip(jobs, out[3:3 + n])),
            "events": dict(zip(jobs, out[3 + n:3 + 2 * n]))}


# ------------------------------------------------------------------------------------------- done when
def _bad_input(directory: Path) -> dict[tuple[Any, ...], str]:
    """Calls on the scenario's project P1 that must fail, with their exact one-line messages."""
    return {
        ("project", "info", "P7"): "there is no project P7 on this instance (cryoweave project list shows them)",
        ("job", "info", "P1", "J9"): "project P1 has no job J9",
        ("job", "events", "P1", "W1"): "'W1' is not a job id; write it as J1, J2 ...",
        ("job", "list", "P1", "--status", "done"): "--status 'done' is not a job status (statuses: building, queued, "
                                                   "launched, started, running, waiting, completed, killed, failed)",
        ("workspace", "rename", "P1", "W4", "x"): "project P1 has no workspace W4",
        ("job", "create", "P1", "lab_import_particles"): "project P1 has several workspaces (W1, W2); say which "
                                                         "the job goes in",
        ("job", "create", "P1", "refine3d", "-w", "W1"): "there is no job type 'refine3d'; `cryoweave job types` "
                                                          f"lists the {len(library_jobs()) + 4} installed",
        ("job", "create", "P1", "exploding", "-w", "W1"): "job type 'exploding' is installed but broken: labjobs "
                                                          "(labjobs.exploding:JOB) cannot be loaded: RuntimeError: "
                                                          "labjobs.exploding needs a GPU driver that is not installed",
        ("job", "create", "P1", "lab_import_particles", "-p", "psize_A"): "-p 'psize_A': write a parameter as "
                                                                          "name=value, e.g. -p psize_A=0.83",
        ("job", "create", "P1", "lab_import_particles", "-w", "W1", "-p", "voltage_kv=high"): (
            "parameter 'voltage_kv' takes a whole number, not 'high'"),
        ("job", "set-param", "P1", "J2", "fraction", "2"): "parameter 'fraction' must lie in [0.0, 1.0], not 2.0",
        ("job", "set-param", "P1", "J2", "order", "middle"): "parameter 'order' must be one of random, first, "
                                                             "not 'middle'",
        ("job", "set-param", "P1", "J2", "sharpness", "3"): "job type 'subset_particles' has no parameter "
                                                            "'sharpness' (parameters: fraction, order, seed)",
        ("job", "connect", "P1", "J2", "particles", "J3.micrographs"): "J3.micrographs holds exposure items but "
                                                                       "input 'particles' of J2 takes particle",
        ("job", "connect", "P1", "J2", "particles", "J4.particles"): "input 'particles' of J2 takes at most 1 "
                                                                     "group(s) and has 1; disconnect one first",
        ("job", "connect", "P1", "J4", "particles", "J1.micrographs"): "job J1 (lab_import_particles) has no output "
                                                                       "'micrographs' (outputs: particles)",
        ("job", "disconnect", "P1", "J2", "particles", "--index", "3"): "input 'particles' of J2 has 1 "
                                                                        "connection(s); there is no connection 3",
        ("job", "set-param", "P1", "J3", "psize_A", "1.2"): "job J3 is completed; its parameters can change only "
                                                            "while it is building (clear the job first)",
        ("job", "mark-completed", "P1", "J2"): "job J2 is building; only killed or failed jobs can be marked "
                                               "completed",
        ("project", "attach", directory): f"cannot attach {directory}: it is already attached to this instance as P1",
    }


def test_build_a_project_copy_it_and_attach_it_to_a_second_instance(instances, tmp_path):
    """The issue's "done when", on one database kind; bad input and locks are checked on the way."""
    a, b = instances("A"), instances("B")
    made = a.json("project", "create", "Apoferritin", "--dir", tmp_path / "projects", "--description", "EMPIAR-10200")
    assert (made["uid"], made["title"], made["description"]) == ("P1", "Apoferritin", "EMPIAR-10200")
    source = Path(made["directory"])
    assert source == tmp_path / "projects" / "apoferritin" and (source / "project.json").is_file()
    assert a.ok("workspace", "create", "P1", "Import") == "W1 created in P1: 'Import'\n"
    assert a.json("workspace", "create", "P1", "Curation", "--description", "subsets and joins")["uid"] == "W2"
    j1 = a.json("job", "create", "P1", "lab_import_particles", "-w", "W1", "-p", "psize_A=0.83", "-p", "voltage_kv=200",
                "-p", "phase_plate=yes", "-p", "stack_path=data/*.mrcs")
    assert j1["uid"] == "J1" and j1["status"] == "building" and j1["workspaces"] == ["W1"]
    assert j1["params"]["psize_A"] == {"value": 0.83, "default": 1.0, "set": True, "type": "number"}
    assert (j1["params"]["voltage_kv"]["value"], j1["params"]["phase_plate"]["value"]) == (200, True)
    assert j1["outputs"]["particles"] == {"type": "particle", "slots": ["blob", "ctf"], "passthrough": None,
                                          "num_items": 0, "results": {}}
    assert a.ok("job", "create", "P1", "subset_particles", "-w", "W1", "-w", "W2", "--title", "Quarter",
                "-p", "fraction=0.25", "-p", "order=first") == "P1 J2: created (subset_particles) in W1, W2\n"
    assert a.json("job", "create", "P1", "lab_import_micrographs", "-w", "W1")["uid"] == "J3"
    assert a.json("job", "create", "P1", "join_particles", "-w", "W2")["uid"] == "J4"

    # Edits of different jobs run concurrently: the store serialises them per project, none is lost.
    def j3_fails_then_marked_completed() -> list[str]:
        a.worker_moves("P1", "J3", "queued", "launched", "started", "running", "failed")
        return [a.ok("job", "mark-completed", "P1", "J3")]

    def edit(*calls: tuple[Any, ...]) -> Callable[[], list[str]]:
        return lambda: [a.ok(*c) for c in calls]

    j2_out, j4_out, j1_out, j3_out = at_once(
        edit(("job", "connect", "P1", "J2", "particles", "J1.particles"),
             ("job", "set-param", "P1", "J2", "seed", "-5")),
        edit(("job", "connect", "P1", "J4", "particles", "J1.particles"),
             ("job", "connect", "P1", "J4", "particles", "J2.particles"),
             ("job", "disconnect", "P1", "J4", "particles", "--index", "0")),
        edit(("job", "clear-param", "P1", "J1", "voltage_kv")),
        j3_fails_then_marked_completed)
    assert j2_out == ["P1 J2: input particles[0] connected to J1.particles\n", "P1 J2: seed = -5\n"]
    assert j4_out[1:] == ["P1 J4: input particles[1] connected to J2.particles\n",
                          "P1 J4: input particles disconnected from J1.particles\n"]
    assert j1_out == ["P1 J1: voltage_kv cleared (default 300)\n"]
    assert j3_out == ["P1 J3: marked completed (was failed)\n"]

    # Read everything back; at the same time, bad input on A and a first project on B.
    copy = tmp_path / "elsewhere" / "apoferritin-copy"
    corrupt, newer = tmp_path / "copies" / "corrupt", tmp_path / "copies" / "newer"
    for target in (copy, corrupt, newer):
        shutil.copytree(source, target)
    job2 = corrupt / "J2" / "job.json"
    job2.write_text(job2.read_text()[:200])  # cut short
    job1 = newer / "J1" / "job.json"
    document = json.loads(job1.read_text())
    document["schema_version"] += 1
    job1.write_text(json.dumps(document))
    (tmp_path / "not-a-project").mkdir()
    (tmp_path / "not-a-project" / "notes.txt").write_text("hello")
    jobs = ["J1", "J2", "J3", "J4"]
    bad = _bad_input(source)
    out = at_once(*_reads(a, "P1", jobs), a.later("json", "instance", "info"),
                  b.later("json", "project", "create", "Scratch", "--dir", tmp_path / "b-projects"),
                  *(a.later("fails", *args) for args in bad),
                  b.later("fails", "project", "attach", corrupt, "--take-over"),
                  b.later("fails", "project", "attach", newer, "--take-over"),
                  b.later("fails", "project", "attach", tmp_path / "not-a-project"),
                  b.later("fails", "project", "attach", tmp_path / "missing"),
                  b.later("fails", "project", "attach", copy),
                  a.later("json", "job", "list", "P1", "-w", "W2", "--status", "building"),
                  a.later("json", "job", "list", "P1", "--type", "lab_import_micrographs", "--status", "completed"))
    before = _collect(out, jobs)
    info_a, scratch = out[11:13]
    for args, message in zip(bad, out[13:13 + len(bad)]):
        assert message == bad[args], args
    damaged, too_new, not_project, missing, held, in_w2, j3_listed = out[13 + len(bad):]
    assert [j["uid"] for j in in_w2] == ["J2", "J4"] and [j["uid"] for j in j3_listed] == ["J3"]

    project = before["project"]
    assert (project["num_jobs"], project["num_workspaces"], project["jobs_by_status"]) == \
        (4, 2, {"building": 3, "completed": 1})
    assert [(w["uid"], w["title"], w["description"], w["jobs"]) for w in before["workspaces"]] == [
        ("W1", "Import", "", 3), ("W2", "Curation", "subsets and joins", 2)]
    assert project["workspaces"] == before["workspaces"]
    assert [(j["uid"], j["type"], j["status"]) for j in before["jobs"]] == [
        ("J1", "lab_import_particles", "building"), ("J2", "subset_particles", "building"),
        ("J3", "lab_import_micrographs", "completed"), ("J4", "join_particles", "building")]
    assert before["info"]["J1"]["params"]["voltage_kv"] == {"value": 300, "default": 300, "set": False,
                                                            "type": "integer"}
    j2 = before["info"]["J2"]
    assert (j2["title"], j2["workspaces"]) == ("Quarter", ["W1", "W2"])
    assert {n: (p["value"], p["set"]) for n, p in j2["params"].items()} == {
        "fraction": (0.25, True), "order": ("first", True), "seed": (-5, True)}
    assert j2["inputs"]["particles"] == {"type": "particle", "slots": ["blob", "?ctf"], "count_min": 1,
                                         "count_max": 1,
                                         "connections": [{"index": 0, "source": "J1.particles", "overrides": {}}]}
    assert j2["outputs"]["particles"]["passthrough"] == "particles"
    assert [c["source"] for c in before["info"]["J4"]["inputs"]["particles"]["connections"]] == ["J2.particles"]
    assert list(before["info"]["J3"]["status_times"]) == ["building", "queued", "launched", "started", "running",
                                                          "failed", "completed"]
    assert [e["text"] for e in before["events"]["J2"]] == [
        "created (subset_particles)",
        "input particles[0] connected to J1.particles (blob←J1.particles.blob.F, ctf←J1.particles.ctf.F)",
        "parameters: seed = -5"]
    assert [e["text"] for e in before["events"]["J4"]][1:] == [
        "input particles[0] connected to J1.particles (blob←J1.particles.blob.F)",
        "input particles[1] connected to J2.particles (blob←J2.particles.blob.F)",
        "input particles disconnected from J1.particles"]
    assert before["events"]["J3"][-1]["text"] == "status failed → completed: marked completed"
    assert (info_a["home"], info_a["projects"], info_a["jobs"], info_a["job_types"]) == (
        str(a.home), 1, 4, ALL_TYPES)
    assert {x["type"] for x in info_a["broken_job_types"]} == {"bad_spec", "exploding"}
    assert info_a["job_packages"] == ["labjobs"]  # CRYOWEAVE_JOB_PACKAGES, set by _env
    assert scratch["uid"] == "P1"

    # Attaching to B: damaged, too new or foreign directories are refused, naming the file or the holder.
    assert damaged.startswith(f"cannot attach {corrupt}: {job2}: not valid JSON (") and "damaged" in damaged
    assert too_new == (f"cannot attach {newer}: {job1}: written by a newer cryoweave (schema "
                       f"{document['schema_version']}; this one reads up to {document['schema_version'] - 1}); "
                       "upgrade cryoweave to open it")
    assert not_project == f"cannot attach {tmp_path / 'not-a-project'}: not a cryoweave project directory " \
                          "(no project.json)"
    assert missing == f"cannot attach {tmp_path / 'missing'}: no such directory"
    # The copy carries A's lock (as CryoSPARC's cs.lock does): B must be told to take it over.
    assert held.startswith(f"cannot attach {copy}: it is held by instance {info_a['instance_id'][:12]} on ")
    assert f"(home {a.home}, database " in held
    assert held.endswith("take it over (--take-over) if this directory is a copy or that instance is gone")
    attached = b.json("project", "attach", copy, "--take-over")
    assert (attached["uid"], attached["title"], attached["description"], attached["directory"]) == \
        ("P2", "Imported: Apoferritin", "EMPIAR-10200", str(copy))
    assert (attached["num_jobs"], attached["num_workspaces"]) == (4, 2)

    out = at_once(*_reads(b, "P2", jobs), b.later("json", "instance", "info"),
                  a.later("json", "job", "info", "P1", "J2"), a.later("json", "job", "info", "P1", "J3"))
    after = _collect(out, jobs)
    info_b = out[11]
    assert out[12:] == [before["info"]["J2"], before["info"]["J3"]]  # the bad input changed nothing
    same = ("description", "num_jobs", "num_workspaces", "jobs_by_status", "workspaces", "archived")
    assert {k: after["project"][k] for k in same} == {k: project[k] for k in same}
    assert after["workspaces"] == before["workspaces"] and after["jobs"] == before["jobs"]
    for job in jobs:
        assert after["info"][job] == before["info"][job] | {"project": "P2"}
        assert after["events"][job] == before["events"][job]
    assert info_b["instance_id"] != info_a["instance_id"]
    assert (info_b["projects"], info_b["jobs"]) == (2, 4)  # Scratch and the copy: the refusals left nothing behind
    if b.database_url is None:
        assert info_b["database"] == f"sqlite:///{b.home / 'cryoweave.db'}"

    # The copy lives on in B: numbering continues, files go into the copy only. Meanwhile the original
    # is detached from A; it then attaches to B without --take-over, and A takes it back.
    j5, detached = at_once(b.later("json", "job", "create", "P2", "join_particles", "-w", "W2", "-w", "W1"),
                           a.later("ok", "project", "detach", "P1"))
    assert (j5["uid"], j5["workspaces"]) == ("J5", ["W2", "W1"])
    assert (copy / "J5" / "job.json").is_file() and not (source / "J5").exists()
    assert detached == ("P1 ('Apoferritin') detached; attach it to any instance with: "
                        f"cryoweave project attach {source}\n")
    lock = source / "cryoweave.lock"
    assert not lock.exists()
    listed_a, attached_b = at_once(a.later("json", "project", "list"), b.later("json", "project", "attach", source))
    assert listed_a == [] and (attached_b["uid"], attached_b["title"]) == ("P3", "Imported: Apoferritin")
    assert json.loads(lock.read_text())["instance_id"] == info_b["instance_id"]
    refused = a.fails("project", "attach", source)
    assert f"held by instance {info_b['instance_id'][:12]} on " in refused and f"(home {b.home}, " in refused
    taken = a.json("project", "attach", source, "--take-over")
    assert (taken["uid"], taken["title"], taken["num_jobs"]) == ("P2", "Imported: Apoferritin", 4)  # not doubled
    assert json.loads(lock.read_text())["instance_id"] == info_a["instance_id"]


# ------------------------------------------------------------------------------------------- instance, types
def test_instance_info_hides_the_database_password(instances):
    a = instances("A")
    info = a.json("instance", "info")
    assert (info["home"], info["projects"], info["jobs"], info["job_types"]) == (str(a.home), 0, 0, ALL_TYPES)
    assert info["database"] == a.database_url and len(info["instance_id"]) == 32
    if a.database_url.startswith("sqlite:///"):
        assert Path(a.database_url.removeprefix("sqlite:///")).is_file()
        return
    secret = Cryoweave(a.home, a.database_url.replace("postgres@", "postgres:s3cret-pw@"))  # the server trusts all
    shown, text = at_once(secret.later("json", "instance", "info"), secret.later("ok", "instance", "info"))
    assert shown["database"] == a.database_url.replace("postgres@", "postgres:***@")
    assert shown["instance_id"] == info["instance_id"]  # the instance is its database
    assert "s3cret" not in text and ["database", shown["database"]] in [line.split() for line in text.splitlines()]
    assert ["job", "packages", "labjobs"] in [line.split() for line in text.splitlines()]


def test_job_types_and_spec_from_a_lab_plugin_need_no_database(tmp_path):
    cli = Cryoweave(tmp_path / "never-made", None)
    types, table, spec_json, spec_text, join_text = at_once(
        cli.later("json", "job", "types"), cli.later("ok", "job", "types"),
        cli.later("json", "job", "spec", "subset_particles"), cli.later("ok", "job", "spec", "lab_import_particles"),
        cli.later("ok", "job", "spec", "join_particles"))
    assert [t["type"] for t in types["types"]] == ALL_TYPES
    assert next(t for t in types["types"] if t["type"] == "subset_particles") == {
        "type": "subset_particles", "title": "Subset particles", "category": "particle curation", "version": "1",
        "description": "", "inputs": ["particles (particle ×1..1)"], "outputs": ["particles (particle)"],
        "source": "labjobs (labjobs:SUBSET_PARTICLES)"}
    broken = {b["type"]: b["reason"] for b in types["broken"]}
    assert broken["bad_spec"] == ("job type 'bad_spec' from labjobs (labjobs:BAD_SPEC) is not valid: parameter "
                                  "'mode': an enum needs choices, and only an enum has them (at params.0)")
    assert broken["exploding"].endswith("RuntimeError: labjobs.exploding needs a GPU driver that is not installed")
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert set(LAB_TYPES) | {"bad_spec", "exploding", "type"} <= set(rows)
    assert "particles (particle ×1..1)" in rows["subset_particles"] and "labjobs" in rows["subset_particles"]
    assert "Broken job type plugins (not loaded)" in table and "an enum needs choices" in rows["bad_spec"]

    from cryoweave.model.jobspec import JobTypeSpec

    spec = JobTypeSpec.model_validate(spec_json)  # --json gives the spec as data
    assert spec.input("particles").count_max == 1 and [s.required for s in spec.input("particles").slots] == [
        True, False]
    assert spec.outputs[0].passthrough == "particles" and spec.param("order").choices == ["random", "first"]
    lines = [line.rstrip() for line in spec_text.splitlines()]
    assert "source       labjobs (labjobs:LAB_IMPORT_PARTICLES)" in lines
    params = {line.split()[0]: line for line in lines[lines.index("Parameters") + 2:] if line.strip()}
    assert params["psize_A"].split()[:4] == ["psize_A", "number", "1.0", "[0.1,"]
    assert params["psize_A"].endswith("Pixel size in Å") and params["stack_path"].split()[:3] == [
        "stack_path", "path", "—"]
    assert any(line.split()[:5] == ["particles", "particle", "blob", "1..∞", "no"] for line in join_text.splitlines())
    assert not (tmp_path / "never-made").exists()
    assert cli.fails("job", "spec", "bad_spec").startswith("job type 'bad_spec' is installed but broken: job type")


# ------------------------------------------------------------------------------------------- lifecycle
def test_archive_rename_and_delete(instances, tmp_path):
    a = instances("A")
    directory = Path(a.json("project", "create", "Beta-gal", "--dir", tmp_path)["directory"])
    assert a.json("job", "create", "P1", "lab_import_particles")["workspaces"] == ["W1"]  # a first workspace is made
    assert a.ok("project", "archive", "P1") == f"P1 archived (read-only): 'Beta-gal' in {directory}\n"
    *errors, info, jobs = at_once(
        *(a.later("fails", *c) for c in [("job", "create", "P1", "lab_import_particles"),
                                         ("job", "set-param", "P1", "J1", "psize_A", "2"),
                                         ("workspace", "create", "P1", "More"), ("project", "rename", "P1", "X")]),
        a.later("json", "project", "info", "P1"), a.later("json", "job", "list", "P1"))
    assert set(errors) == {"project P1 is archived (read-only); unarchive it first"}
    assert info["archived"] is True and info["num_jobs"] == 1 and len(jobs) == 1
    assert json.loads((directory / "project.json").read_text())["archived"] is True

    assert a.json("project", "unarchive", "P1")["archived"] is False
    job, renamed, workspace = at_once(a.later("json", "job", "create", "P1", "lab_import_particles"),
                                      a.later("json", "project", "rename", "P1", "Beta-galactosidase"),
                                      a.later("json", "workspace", "rename", "P1", "W1", "Everything"))
    assert (job["uid"], renamed["title"], workspace["title"]) == ("J2", "Beta-galactosidase", "Everything")
    assert json.loads((directory / "project.json").read_text())["title"] == "Beta-galactosidase"
    assert json.loads((directory / "workspaces.json").read_text())["workspaces"][0]["title"] == "Everything"
    (tmp_path / "a-file").write_text("not a folder")
    listed, spaces, refused, not_a_folder = at_once(
        a.later("json", "project", "list"), a.later("json", "workspace", "list", "P1"),
        a.later("fails", "project", "delete", "P1"), a.later("fails", "project", "create", "X", "--dir",
                                                             tmp_path / "a-file"))
    assert str(tmp_path / "a-file") in not_a_folder
    assert [(p["uid"], p["title"], p["archived"], p["num_jobs"]) for p in listed] == [
        ("P1", "Beta-galactosidase", False, 2)]
    assert [(w["uid"], w["title"], w["jobs"]) for w in spaces] == [("W1", "Everything", 2)]
    assert refused == (f"project P1 ('Beta-galactosidase') was not deleted: this would delete its 2 job(s), "
                       f"1 workspace(s) and the directory {directory} with all its files; pass --yes to do it "
                       "(cryoweave project detach keeps the files)")
    assert (directory / "J2" / "job.json").is_file()
    assert a.ok("project", "delete", "P1", "--yes") == \
        f"P1 ('Beta-galactosidase') deleted, with its directory {directory}\n"
    assert not directory.exists() and a.json("project", "list") == []


# ------------------------------------------------------------------------------------------- help
VERBS = {
    "instance": ["info"],
    "project": ["create", "list", "info", "rename", "archive", "unarchive", "delete", "detach", "attach",
                # data management (cryoweave.cli.cleaning and checking; tests in test_manage_*.py)
                "clear-intermediate", "cleanup", "policy", "check", "relink",
                # who may use it on the web server (cryoweave.cli.accounts, tested in test_cli_serve.py)
                "share", "unshare", "members"],
    "workspace": ["create", "list", "rename"],
    "job": ["types", "spec", "create", "list", "info", "set-param", "clear-param", "connect", "disconnect",
            "mark-completed", "clear", "events",
            # the job builder's verbs (cryoweave.cli.builder, tested in test_cli_builder.py)
            "inputs", "connect-result", "clear-slot", "outputs", "export-output",
            # running jobs (cryoweave.cli.running, tested in test_cli_running.py)
            "queue", "run", "wait", "kill", "restart", "clone", "log", "show",
            # data management (cryoweave.cli.cleaning, tested in test_manage_clearing.py)
            "mark-final", "clear-intermediate"],
    "export": ["job", "group"],
    "import": ["job"],
    "lane": ["list", "add-cluster", "add-local", "remove", "info", "render"],
    "user": ["add", "list", "password", "role", "remove"],
}


def test_every_verb_has_help_with_an_example(tmp_path):
    """Help is read in this process (the same app the command runs); one real call checks the top level."""
    import typer.main
    from typer.testing import CliRunner

    from cryoweave.cli import app

    registered = {noun: sorted(typer.main.get_command(app).commands[noun].commands) for noun in VERBS}
    assert registered == {noun: sorted(verbs) for noun, verbs in VERBS.items()}
    runner = CliRunner()
    for noun, verbs in VERBS.items():
        for verb in verbs:
            result = runner.invoke(app, [noun, verb, "--help"], env={"COLUMNS": "160"})
            assert result.exit_code == 0, result.output
            assert f"Example: cryoweave {noun} {verb} " in result.output, (noun, verb)
    top = Cryoweave(tmp_path / "home", None).ok("--help")
    assert all(f" {noun} " in top for noun in VERBS) and not (tmp_path / "home").exists()
