"""Store speed: attaching, creating and connecting, listing; on SQLite and on PostgreSQL.

    python benchmarks/bench_store.py [--attach-jobs 1000] [--create-runs 200] [--chain 300] [--list-jobs 10000]
                                     [--databases sqlite,postgresql] [--out bench-output]

The targets (issue 3, "Speed"), each checked on both databases:

- **attach** a project of 1,000 jobs, each with outputs (two output groups, several results,
  each with several versions and their metafiles), one or two input connections and a few
  events: under 3 s. The project is made through the store (the Python API: create, connect,
  complete with outputs), detached, then attached to a second instance; median of
  ``--attach-runs`` attaches (detached again in between).
- **create a job and connect it** (one ``create_job`` plus one ``connect`` to an output of a
  random earlier job of that attached project, both committed with their files): under 20 ms,
  median of ``--create-runs``. Not a target, reported: connecting to the end of a chain of
  ``--chain`` jobs (connect reads the source's ancestors, one recursive query over the
  ``job_parents`` edges, to refuse cycles).
- **list 10,000 jobs** of a project (``Project.jobs()``): under 200 ms, median of
  ``--list-runs``. The 10,000-job project is written as a project directory (the records
  serialised by cryoweave's own record-file code) and attached; that attach is reported too.

PostgreSQL is a throwaway server started here from the installed binaries (the tests' own
``tests/support/postgres.py``), tuned like the test server: ``fsync=off``,
``synchronous_commit=off``. SQLite runs as an instance would (WAL, a file in a temporary
folder). Every record file is written as the store always writes it (atomically, fsync'ed).
The table is printed; all figures go to ``<out>/store.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cryoweave.api import Instance
from cryoweave.builder import edits
from cryoweave.jobs import Registry
from cryoweave.model import JobStatus, files
from cryoweave.model.records import (
    Connection,
    Event,
    JobRecord,
    OutputGroup,
    OutputResult,
    ProjectRecord,
    WorkspaceRecord,
)
from support.postgres import PostgresServer

TARGETS = {"attach": 3.0, "create_connect": 0.020, "list": 0.200}
PIPELINE = 10  # an import job, then nine refinements each fed by the one before

TYPES: list[dict[str, Any]] = [
    {"type": "bench_import", "title": "Import particles",
     "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
     "params": [{"name": "psize_A", "type": "number", "default": 1.0},
                {"name": "path", "type": "path"}]},
    {"type": "bench_refine", "title": "Refinement",
     "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"]},
                {"name": "volume", "type": "volume", "count_min": 0}],
     "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf", "alignments3D"],
                  "passthrough": "particles"},
                 {"name": "volume", "type": "volume", "slots": ["map", "map_half_A", "map_half_B", "mask"]}],
     "params": [{"name": "resolution_A", "type": "number", "default": 4.0},
                {"name": "iterations", "type": "integer", "default": 10},
                {"name": "symmetry", "type": "string", "default": "C1"}]},
]


def registry() -> Registry:
    reg = Registry()
    reg._loaded = True  # only these types, no installed plugins
    for spec in TYPES:
        reg.register(spec, "benchmarks/bench_store.py")
    return reg


def outputs_for(record: JobRecord, rng: random.Random) -> dict[str, OutputGroup]:
    """Outputs as a finished job records them: several results, versions and metafiles each."""
    groups = {}
    for out in record.spec.outputs:
        n = rng.randint(1_000, 500_000)
        results = {}
        for slot in out.slots:
            versions = list(range(rng.randint(2, 4)))
            results[slot.name] = OutputResult(
                name=slot.name, dtype=slot.dtype, versions=versions, num_items=[n] * len(versions),
                metafiles=[f"{record.uid}/{out.name}_{slot.name}_v{v:03d}.cs" for v in versions])
        groups[out.name] = OutputGroup(name=out.name, type=out.type, title=out.name.title(), results=results,
                                       passthrough=out.passthrough, num_items=n)
    return groups


def finish(rng: random.Random) -> edits.Change:
    """Run a job through its lifecycle to completed, with outputs, in one change."""
    def change(tx, record: JobRecord) -> str:
        for status in (JobStatus.QUEUED, JobStatus.LAUNCHED, JobStatus.STARTED, JobStatus.RUNNING,
                       JobStatus.COMPLETED):
            edits.transition(status)(tx, record)
        record.outputs = outputs_for(record, rng)
        return "completed with outputs"
    return change


def build_with_store(inst: Instance, parent: Path, n_jobs: int, rng: random.Random) -> Path:
    """A project of ``n_jobs`` completed jobs, made change by change through the store; detached."""
    project = inst.create_project("Bench attach", parent, description=f"{n_jobs} jobs")
    project.create_workspace("Main")
    project.create_workspace("Refinements")
    previous = ""
    for i in range(n_jobs):
        if i % PIPELINE == 0:
            job = project.create_job("bench_import", workspace="W1", params={"psize_A": 0.83,
                                                                             "path": f"data/set{i}/*.mrc"})
        else:
            job = project.create_job("bench_refine", workspace=["W1", "W2"],
                                     params={"resolution_A": 3 + rng.random(), "iterations": rng.randint(5, 20)})
            job.connect("particles", f"{previous}.particles")
            if i % PIPELINE > 1:
                job.connect("volume", f"{previous}.volume")
        inst.store.edit_job(project.uid, job.uid, finish(rng))
        previous = job.uid
    return project.detach()


def write_directory(directory: Path, n_jobs: int, rng: random.Random, *, completed: bool = False,
                    title: str = "Bench list") -> None:
    """A project directory of ``n_jobs`` jobs, written straight from records (no database).

    ``completed``: every job completed with outputs (``outputs_for``), refinements also taking the
    previous job's volume; otherwise building jobs with only their particle connections.
    """
    reg = registry()
    specs = {t.name: t.spec for t in reg.types()}
    now = dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True)
    (directory / "project.json").write_bytes(files.dump_record(
        "project", ProjectRecord(uid="P1", title=title, created_at=now, updated_at=now)))
    (directory / "workspaces.json").write_bytes(files.dump_workspaces(
        [WorkspaceRecord(uid="W1", title="Main", created_at=now, updated_at=now)]))
    statuses = (JobStatus.BUILDING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED) if completed \
        else (JobStatus.BUILDING,)
    previous = ""
    for n in range(1, n_jobs + 1):
        kind = "bench_import" if n % PIPELINE == 1 else "bench_refine"
        uid = f"J{n}"
        inputs = {} if kind == "bench_import" else {"particles": [Connection(job=previous, group="particles")]}
        if completed and kind == "bench_refine" and n % PIPELINE != 2:
            inputs["volume"] = [Connection(job=previous, group="volume")]
        record = JobRecord(uid=uid, type=kind, title=f"{kind} {n}", workspaces=["W1"], status=statuses[-1],
                           params={}, inputs=inputs, status_times=dict.fromkeys(statuses, now), created_at=now,
                           updated_at=now, spec=specs[kind])
        events = [Event(seq=1, time=now, text=f"created ({kind})")]
        if completed:
            record.outputs = outputs_for(record, rng)
            events.append(Event(seq=2, time=now, text="completed"))
        (directory / uid).mkdir()
        (directory / uid / "job.json").write_bytes(files.dump_record("job", record))
        (directory / uid / "events.jsonl").write_bytes(files.dump_events(events))
        previous = uid


def timed(function) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"median_s": statistics.median(ordered), "min_s": ordered[0], "max_s": ordered[-1],
            "p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], "runs": len(ordered)}


def bench_database(kind: str, url_for, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    reg = registry()
    out: dict[str, Any] = {}
    print(f"[{kind}] building a project of {args.attach_jobs} jobs through the store ...", flush=True)
    with Instance(home=root / "home-a", database_url=url_for("a"), registry=reg) as first:
        build_s, directory = timed(lambda: build_with_store(first, root / "projects", args.attach_jobs, rng))
    out["build_attach_project_s"] = build_s
    with Instance(home=root / "home-b", database_url=url_for("b"), registry=reg) as second:
        attach_samples = []
        for run in range(args.attach_runs):
            seconds, project = timed(lambda: second.attach(directory))
            attach_samples.append(seconds)
            assert len(project.jobs()) == args.attach_jobs
            if run < args.attach_runs - 1:
                project.detach()
        out["attach"] = summary(attach_samples) | {"jobs": args.attach_jobs}
        job = project.job(f"J{args.attach_jobs}")
        out["attach"]["per_job"] = {"outputs": len(job.outputs), "events": len(job.events()),
                                    "connections": sum(len(c) for c in job.inputs.values()),
                                    "metafiles": sum(len(r.metafiles) for g in job.outputs.values()
                                                     for r in g.results.values())}

        print(f"[{kind}] creating and connecting {args.create_runs} jobs ...", flush=True)
        samples = []
        for _ in range(args.create_runs):
            source = f"J{rng.randint(1, args.attach_jobs)}"
            start = time.perf_counter()
            new = project.create_job("bench_refine", workspace="W2")
            new.connect("particles", f"{source}.particles")
            samples.append(time.perf_counter() - start)
        out["create_connect"] = summary(samples)

        # Not a target: connecting checks for cycles by reading every ancestor of the source job
        # (one recursive query), so its cost grows with the source's ancestry. A chain shows how much.
        print(f"[{kind}] connecting below a chain of {args.chain} jobs ...", flush=True)
        previous = f"J{args.attach_jobs}"
        for _ in range(args.chain):
            new = project.create_job("bench_refine", workspace="W2")
            new.connect("particles", f"{previous}.particles")
            previous = new.uid
        samples = []
        for _ in range(9):
            new = project.create_job("bench_refine", workspace="W2")
            start = time.perf_counter()
            new.connect("particles", f"{previous}.particles")
            samples.append(time.perf_counter() - start)
        out["connect_deep"] = summary(samples) | {"ancestors": args.chain + PIPELINE - 1}

    print(f"[{kind}] writing and attaching a project of {args.list_jobs} jobs ...", flush=True)
    big = root / "projects" / "bench-list"
    write_directory(big, args.list_jobs, rng)
    with Instance(home=root / "home-c", database_url=url_for("c"), registry=reg) as third:
        seconds, project = timed(lambda: third.attach(big))
        out["attach_list_project_s"] = seconds
        project.jobs()  # once untimed
        samples = []
        for _ in range(args.list_runs):
            seconds, jobs = timed(project.jobs)
            assert len(jobs) == args.list_jobs
            samples.append(seconds)
        out["list"] = summary(samples) | {"jobs": args.list_jobs}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attach-jobs", type=int, default=1000)
    parser.add_argument("--attach-runs", type=int, default=3)
    parser.add_argument("--create-runs", type=int, default=200)
    parser.add_argument("--chain", type=int, default=300)
    parser.add_argument("--list-jobs", type=int, default=10_000)
    parser.add_argument("--list-runs", type=int, default=7)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    args = parser.parse_args(argv)

    load_at_start = os.getloadavg()
    results: dict[str, Any] = {}
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        root = Path(tempfile.mkdtemp(prefix=f"cryoweave-bench-{kind}-"))
        server = None
        try:
            if kind == "sqlite":
                def url_for(name: str, root: Path = root) -> str:
                    return f"sqlite:///{root / f'{name}.db'}"
            elif kind == "postgresql":
                server = PostgresServer().start()

                def url_for(name: str, server: PostgresServer = server) -> str:
                    return server.create_database(f"bench_{name}")
            else:
                raise SystemExit(f"unknown database {kind!r}: sqlite or postgresql")
            results[kind] = bench_database(kind, url_for, root, args)
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(root, ignore_errors=True)

    rows = []
    for kind, r in results.items():
        rows += [
            (kind, f"attach a project of {r['attach']['jobs']:,} jobs", r["attach"]["median_s"], TARGETS["attach"]),
            (kind, "create a job and connect it", r["create_connect"]["median_s"], TARGETS["create_connect"]),
            (kind, "  (same, 90th percentile)", r["create_connect"]["p90_s"], None),
            (kind, f"  (connect only, {r['connect_deep']['ancestors']} ancestors)", r["connect_deep"]["median_s"],
             None),
            (kind, f"list {r['list']['jobs']:,} jobs", r["list"]["median_s"], TARGETS["list"]),
            (kind, f"  (attach those {r['list']['jobs']:,} jobs)", r["attach_list_project_s"], None),
        ]
    print()
    print(f"{'database':<11} {'measurement':<40} {'median':>10} {'target':>9}  met")
    for kind, what, seconds, target in rows:
        figure = f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
        goal = "" if target is None else (f"{target * 1000:.0f} ms" if target < 1 else f"{target:.0f} s")
        met = "" if target is None else ("yes" if seconds < target else "NO")
        print(f"{kind:<11} {what:<40} {figure:>10} {goal:>9}  {met}")
    for kind, r in results.items():
        per = r["attach"]["per_job"]
        print(f"{kind}: each attached job has {per['outputs']} output groups ({per['metafiles']} metafiles), "
              f"{per['connections']} connections, {per['events']} events; building it took "
              f"{r['build_attach_project_s']:.1f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                          "load_average_at_end": os.getloadavg()},
              "targets_s": TARGETS, "settings": vars(args) | {"out": str(args.out)},
              "results": results,
              "met": {kind: {name: r[name]["median_s"] < TARGETS[name] for name in TARGETS}
                      for kind, r in results.items()}}
    (args.out / "store.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_at_start)} at the start, "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end, on {os.cpu_count()} CPUs (figures "
          "taken while other processes load the machine are slower: compare the load)")
    print(f"\nwritten: {args.out / 'store.json'}")


if __name__ == "__main__":
    main()
