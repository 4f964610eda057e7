"""Programs the store's crash and concurrency tests run as real subprocesses.

    python tests/store_workers.py crash-writer --database-url URL --home DIR --projects DIR --seed N
    python tests/store_workers.py editor --database-url URL --home DIR --project P1 --worker I --jobs M
                                         --barrier FILE --shared J2 --source J1
    python tests/store_workers.py open-instance --database-url URL --home DIR --barrier FILE --peers N [--also URL ...]
    python tests/store_workers.py create-projects --database-url URL --home DIR --projects DIR --count N
                                                  --title T --barrier FILE

Each program prints one JSON object per line (flushed), after the change it describes has been
committed; so a line in the output is a promise that the change is in the database. Job types
are registered in-process (:func:`registry`), as a lab's plugin would register them.

The test modules import :func:`registry` and the job type names from here, so the tests and
the workers agree on the specs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from cryoweave.api import Instance
from cryoweave.builder import edits, wiring
from cryoweave.errors import CryoweaveError
from cryoweave.jobs import Registry
from cryoweave.model import JobStatus
from cryoweave.model.records import OutputGroup, OutputResult

SOURCE, SINK, SHARED = "cw_source", "cw_sink", "cw_shared"
MAX_WORKERS, MAX_JOBS_PER_WORKER = 8, 16


def shared_param(worker: int, k: int) -> str:
    """The parameter of the shared job that worker ``worker`` sets in its ``k``-th round."""
    return f"p{worker}_{k}"


def shared_value(worker: int, k: int) -> int:
    return 1000 * (worker + 1) + k


_SINK_PARAMS = [
    {"name": "x", "type": "number", "default": 0.5, "minimum": 0, "maximum": 100},
    {"name": "label", "type": "string", "default": "none"},
    {"name": "flag", "type": "boolean", "default": False},
    {"name": "mode", "type": "enum", "choices": ["fast", "slow", "exact"], "default": "fast"},
]

TYPES: list[dict[str, Any]] = [
    {"type": SOURCE, "title": "Source of particles",
     "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
     "params": [{"name": "n", "type": "integer", "default": 1, "minimum": 1},
                {"name": "label", "type": "string", "default": "none"}]},
    {"type": SINK, "title": "Particle filter",
     "inputs": [{"name": "particles", "type": "particle", "slots": ["blob"], "count_min": 0, "count_max": None}],
     "outputs": [{"name": "particles", "type": "particle", "slots": ["blob"], "passthrough": "particles"}],
     "params": _SINK_PARAMS},
    {"type": SHARED, "title": "Shared job",
     "inputs": [{"name": "particles", "type": "particle", "count_min": 0, "count_max": None}],
     "outputs": [{"name": "particles", "type": "particle", "passthrough": "particles"}],
     "params": [{"name": shared_param(w, k), "type": "integer"}
                for w in range(MAX_WORKERS) for k in range(MAX_JOBS_PER_WORKER)]},
]


def registry() -> Registry:
    """A registry holding only the test job types (no installed plugins)."""
    reg = Registry()
    reg._loaded = True  # no entry points: exactly these types
    for spec in TYPES:
        reg.register(spec, "tests/store_workers.py")
    return reg


def emit(**fields: Any) -> None:
    print(json.dumps(fields, default=str, sort_keys=True), flush=True)


def wait_for(barrier: str, timeout: float = 60.0) -> None:
    """Block until the file ``barrier`` exists: every worker then starts at the same moment."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(barrier):
        if time.monotonic() > deadline:
            sys.exit(f"barrier {barrier} never appeared")
        time.sleep(0.002)


# --------------------------------------------------------------------------- crash-writer
def _job_line(op: str, record, events: dict[str, int]) -> None:
    emit(op=op, job=record.model_dump(mode="json", exclude={"spec"}), events=events[record.uid])


def _project_line(op: str, info) -> None:
    emit(op=op, project={"uid": info.uid, "title": info.title, "description": info.description,
                         "archived": info.archived, "directory": str(info.directory)})


def output_groups(record, rng: random.Random) -> dict[str, OutputGroup]:
    """Outputs as a finished job records them: several versions, each with its file."""
    n = rng.randint(10, 10_000)
    results = {}
    for name, dtype in (("blob", "blob"), ("ctf", "ctf"), ("alignments3D", "alignments3D")):
        versions = list(range(rng.randint(1, 3)))
        results[name] = OutputResult(name=name, dtype=dtype, versions=versions,
                                     metafiles=[f"{record.uid}/particles_v{v}.cs" for v in versions],
                                     num_items=[n] * len(versions))
    return {"particles": OutputGroup(name="particles", type="particle", title="Particles", results=results,
                                     passthrough=None, num_items=n)}


def crash_writer(args: argparse.Namespace) -> None:
    """Create a project, then change it in every way the store knows, as fast as possible, forever.

    The test kills this process with SIGKILL at a random moment. Output lines (one per committed
    change) carry the state after the change: the job record (without its spec) and its number
    of events, the workspace record, or the project's fields.
    """
    rng = random.Random(args.seed)
    inst = Instance(home=args.home, database_url=args.database_url, registry=registry())
    store = inst.store
    project = inst.create_project(f"Crash test {args.seed}", args.projects, description="killed at random")
    _project_line("project", project.info())
    uid = project.uid
    jobs: dict[str, Any] = {}  # uid -> the latest JobRecord
    events: dict[str, int] = {}
    workspaces: list[str] = []
    archived = False

    def begin(action: str, target: str) -> None:
        emit(op="begin", action=action, target=target)

    def edit(op: str, job: str, change) -> None:
        begin(op, job)
        record = store.edit_job(uid, job, change)
        jobs[job] = record
        events[job] += 1
        _job_line(op, record, events)

    def building(kind: str | None = None) -> list[str]:
        return [j for j, r in jobs.items()
                if r.status == JobStatus.BUILDING and (kind is None or r.type == kind)]

    def create_job() -> None:
        kind = SOURCE if not jobs or rng.random() < 0.3 else SINK
        ws = rng.sample(workspaces, rng.randint(1, min(2, len(workspaces))))
        params = {"n": rng.randint(1, 50)} if kind == SOURCE else {"x": round(rng.uniform(0, 100), 3)}
        begin("create_job", "new-job")
        record = project.create_job(kind, workspace=ws, title=f"{kind} {len(jobs) + 1}", params=params).record
        jobs[record.uid] = record
        events[record.uid] = 1
        _job_line("create_job", record, events)

    def set_param() -> None:
        job = rng.choice(building())
        if jobs[job].type == SOURCE:
            values = {"n": rng.randint(1, 500), "label": f"L{rng.randint(0, 999)}"}
        else:
            values = rng.choice([{"x": round(rng.uniform(0, 100), 3)}, {"label": f"L{rng.randint(0, 999)}"},
                                 {"flag": rng.random() < 0.5, "mode": rng.choice(["fast", "slow", "exact"])}])
        edit("set_param", job, edits.set_params(values))

    def clear_param() -> None:
        job = rng.choice([j for j in building() if jobs[j].params])
        edit("clear_param", job, edits.clear_params([rng.choice(sorted(jobs[job].params))]))

    def connect() -> None:
        job = rng.choice(building(SINK))
        # sources only, or sinks of lower number: never a cycle
        candidates = [j for j, r in jobs.items() if r.type == SOURCE or r.number < jobs[job].number]
        source = rng.choice(candidates)
        if any(c.job == source for c in jobs[job].inputs.get("particles", [])):
            return
        edit("connect", job, wiring.connect("particles", f"{source}.particles"))

    def disconnect() -> None:
        job = rng.choice([j for j in building(SINK) if jobs[j].inputs.get("particles")])
        count = len(jobs[job].inputs["particles"])
        edit("disconnect", job, wiring.disconnect("particles", rng.choice([None, rng.randrange(count)])))

    def advance() -> None:
        """Move one job along its lifecycle (outputs recorded on completion)."""
        started = [j for j, r in jobs.items() if r.status != JobStatus.BUILDING]
        job = rng.choice(started if started and rng.random() < 0.8 else list(jobs))
        status = jobs[job].status
        if (status == JobStatus.RUNNING and rng.random() < 0.6) or status == JobStatus.WAITING:
            record = jobs[job]
            groups = output_groups(record, rng)
            begin("complete", job)  # the output files are written first, as a job would
            folder = Path(project.directory) / job
            for result in groups["particles"].results.values():
                for metafile in result.metafiles:
                    (folder.parent / metafile).write_bytes(os.urandom(rng.randint(100, 4000)))

            def finish(tx, rec):
                text = edits.transition(JobStatus.COMPLETED)(tx, rec)
                rec.outputs = groups
                return text
            record = store.edit_job(uid, job, finish)
            jobs[job] = record
            events[job] += 1
            _job_line("complete", record, events)
            return
        if status in (JobStatus.KILLED, JobStatus.FAILED) and rng.random() < 0.5:
            edit("mark_completed", job, edits.mark_completed())
            return
        if status in (JobStatus.COMPLETED, JobStatus.KILLED, JobStatus.FAILED) or (
                status == JobStatus.QUEUED and rng.random() < 0.2):
            edit("clear", job, edits.clear())
            return
        following = {JobStatus.BUILDING: [JobStatus.QUEUED],
                     JobStatus.QUEUED: [JobStatus.LAUNCHED, JobStatus.KILLED],
                     JobStatus.LAUNCHED: [JobStatus.STARTED, JobStatus.STARTED, JobStatus.FAILED],
                     JobStatus.STARTED: [JobStatus.RUNNING],
                     JobStatus.RUNNING: [JobStatus.WAITING, JobStatus.FAILED, JobStatus.KILLED]}[status]
        edit("transition", job, edits.transition(rng.choice(following), note="by the crash writer"))

    def create_workspace() -> None:
        begin("create_workspace", "new-workspace")
        record = store.create_workspace(uid, f"Workspace {len(workspaces) + 1}", description="made by the writer")
        workspaces.append(record.uid)
        emit(op="create_workspace", workspace=record.model_dump(mode="json"))

    def rename_workspace() -> None:
        workspace = rng.choice(workspaces)
        begin("rename_workspace", workspace)
        record = store.update_workspace(uid, workspace, title=f"Renamed {rng.randint(0, 9999)}")
        emit(op="rename_workspace", workspace=record.model_dump(mode="json"))

    def job_workspaces() -> None:
        job = rng.choice(list(jobs))
        current = jobs[job].workspaces
        others = [w for w in workspaces if w not in current]
        if others and (len(current) == 1 or rng.random() < 0.5):
            edit("add_to_workspace", job, edits.set_workspaces(add=[rng.choice(others)]))
        elif len(current) > 1:
            edit("remove_from_workspace", job, edits.set_workspaces(remove=[rng.choice(current)]))

    def rename_job() -> None:
        job = rng.choice(list(jobs))
        edit("rename_job", job, edits.retitle(title=f"Job title {rng.randint(0, 9999)}",
                                              description=rng.choice([None, "described"])))

    def rename_project() -> None:
        begin("update_project", "project")
        if rng.random() < 0.5:
            info = store.update_project(uid, title=f"Crash test renamed {rng.randint(0, 9999)}")
        else:
            info = store.update_project(uid, description=f"description {rng.randint(0, 9999)}")
        _project_line("update_project", info)

    def archive() -> None:
        nonlocal archived
        begin("archive", "project")
        info = store.update_project(uid, archived=True)
        archived = True
        _project_line("archive", info)

    def add_event() -> None:
        job = rng.choice(list(jobs))
        begin("event", job)
        with store.project(uid) as tx:
            job_id, _ = tx.job(job)
            tx.add_event(job_id, job, f"note {rng.randint(0, 9999)}", level=rng.choice(["info", "warning"]),
                         data={"by": "crash writer", "n": rng.randint(0, 99)})
        events[job] += 1
        emit(op="event", job_uid=job, events=events[job])

    create_workspace()
    actions = [(create_job, 6), (set_param, 6), (clear_param, 2), (connect, 5), (disconnect, 2), (advance, 8),
               (create_workspace, 1), (rename_workspace, 1), (job_workspaces, 2), (rename_job, 2),
               (rename_project, 1), (archive, 0.3), (add_event, 3)]
    functions, weights = zip(*actions)
    while True:
        if archived:
            begin("unarchive", "project")
            info = store.update_project(uid, archived=False)
            archived = False
            _project_line("unarchive", info)
            continue
        action = create_job if not jobs else rng.choices(functions, weights)[0]
        try:
            action()
        except IndexError:  # rng.choice of an empty list: nothing to do of that kind right now
            continue


# --------------------------------------------------------------------------- editor
def editor(args: argparse.Namespace) -> None:
    """One of several workers changing the same project at once (see test_store_concurrency)."""
    inst = Instance(home=args.home, database_url=args.database_url, registry=registry())
    project = inst.project(args.project)
    shared = project.job(args.shared)
    emit(op="ready", worker=args.worker, pid=os.getpid())
    wait_for(args.barrier)
    workspace = project.create_workspace(f"Worker {args.worker}").uid
    emit(op="create_workspace", workspace=workspace)
    for k in range(args.jobs):
        job = project.create_job(SINK, workspace="W1", title=f"worker {args.worker} job {k}",
                                 params={"label": f"w{args.worker}"})
        emit(op="create_job", job=job.uid)
        shared.set_param(shared_param(args.worker, k), shared_value(args.worker, k))
        emit(op="set_param", job=shared.uid, param=shared_param(args.worker, k))
        job.connect("particles", f"{args.source}.particles")
        job.connect("particles", f"{shared.uid}.particles")
        job.disconnect("particles", 0)  # leaves the shared job's output connected
        job.set_param("x", args.worker * 10 + k)
        job.add_to_workspace(workspace)
        emit(op="edited", job=job.uid)
    inst.close()
    emit(op="done", worker=args.worker)


# --------------------------------------------------------------------------- open-instance
def open_instance(args: argparse.Namespace) -> None:
    """First use of instances by several processes at once: each must open the same one, for each database."""
    emit(op="ready", pid=os.getpid())
    wait_for(args.barrier)
    for n, url in enumerate([args.database_url, *args.also]):
        # every database is a new race: the processes meet at a barrier of their own before each
        Path(f"{args.barrier}.{n}.{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while len(list(Path(args.barrier).parent.glob(f"{Path(args.barrier).name}.{n}.*"))) < args.peers:
            if time.monotonic() > deadline:
                sys.exit(f"the other processes never reached database {n}")
            time.sleep(0.001)
        with Instance(home=Path(args.home) / str(n), database_url=url, registry=registry()) as inst:
            emit(op="opened", database=n, instance_id=inst.store.instance_id)


# --------------------------------------------------------------------------- create-projects
def create_projects(args: argparse.Namespace) -> None:
    """Create projects (all with the same title) in the same folder as another process does."""
    inst = Instance(home=args.home, database_url=args.database_url, registry=registry())
    inst.projects()
    emit(op="ready", pid=os.getpid())
    wait_for(args.barrier)
    for _ in range(args.count):
        try:
            project = inst.create_project(args.title, args.projects)
        except CryoweaveError as err:
            emit(op="error", error=str(err))
            continue
        emit(op="create_project", uid=project.uid, directory=str(project.directory))
    inst.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="program", required=True)
    for name in ("crash-writer", "editor", "open-instance", "create-projects"):
        p = sub.add_parser(name)
        p.add_argument("--database-url", required=True)
        p.add_argument("--home", required=True)
        p.add_argument("--barrier")
        p.add_argument("--projects")
    sub.choices["crash-writer"].add_argument("--seed", type=int, default=0)
    ed = sub.choices["editor"]
    ed.add_argument("--project", required=True)
    ed.add_argument("--worker", type=int, required=True)
    ed.add_argument("--jobs", type=int, required=True)
    ed.add_argument("--shared", required=True)
    ed.add_argument("--source", required=True)
    sub.choices["open-instance"].add_argument("--also", nargs="*", default=[], help="more fresh databases, "
                                              "opened one after the other")
    sub.choices["open-instance"].add_argument("--peers", type=int, default=1, help="how many processes race")
    cp = sub.choices["create-projects"]
    cp.add_argument("--count", type=int, required=True)
    cp.add_argument("--title", required=True)
    args = parser.parse_args(argv)
    {"crash-writer": crash_writer, "editor": editor, "open-instance": open_instance,
     "create-projects": create_projects}[args.program](args)


if __name__ == "__main__":
    main()
