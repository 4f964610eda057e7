"""HTTP API speed: the job list of a 1,000-job project and the outputs of a 1,000,000-particle group.

    python benchmarks/bench_server.py [--jobs 1000] [--items 1000000] [--runs 7] [--out bench-output/server]

The targets (issue "web application"), each timed server-side through FastAPI's test client (the
app in this process, a logged-in admin; the HTTP round trip in memory is included):

- ``GET /api/projects/P1/jobs`` (the cards, the tree's edges and the table) of a project of
  ``--jobs`` completed jobs, each with two output groups of several results and versions, one or
  two input connections: under 1 s. The project directory is written from records (as
  ``bench_store.py`` writes its 10,000-job project) and attached. Baseline: ``project.jobs()``
  plus every record read with ``store.job_records``.
- ``GET .../jobs/J9/outputs`` of a group of ``--items`` particles whose four results all come
  through passthroughs (the chain of ``bench_builder.py``): under 200 ms, since only the record is
  read. Baseline: ``job.load_output("particles")`` (the whole group loaded, passthroughs joined).
  Reported, no target: a 50-bin histogram of ``ctf/df1_A`` of that group.

Medians of ``--runs`` runs after one untimed call each, the route and its baseline alternating.
The table is printed; figures go to ``<out>/server.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_builder import build_chain
from bench_store import registry, write_directory
from cryoweave.api import Instance
from cryoweave.spec.examples import particle_dataset
from server_support import PASSWORD, login

TARGETS = {"jobs": 1.0, "outputs": 0.200}


def alternate(runs: int, **functions: Callable[[], Any]) -> dict[str, list[float]]:
    """Each function once untimed, then ``runs`` timed rounds in turn."""
    for function in functions.values():
        function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return samples


def get(client, url: str) -> Callable[[], Any]:
    def call() -> Any:
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
        return answer
    return call


def bench(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from cryoweave.server import create_app
    from cryoweave.store import accounts

    out: dict[str, Any] = {}
    with Instance(home=root / "home", registry=registry()) as inst:
        accounts.add_user(inst.store, "bench", PASSWORD, "admin")
        client = login(TestClient(create_app(inst, projects_dir=root / "projects")), "bench")

        print(f"writing and attaching a project of {args.jobs:,} jobs ...", flush=True)
        write_directory(root / "projects" / "bench-jobs", args.jobs, random.Random(args.seed), completed=True,
                        title="Bench server")
        start = time.perf_counter()
        project = inst.attach(root / "projects" / "bench-jobs")
        out["attach_s"] = time.perf_counter() - start
        listing = client.get(f"/api/projects/{project.uid}/jobs")
        assert len(listing.json()["jobs"]) == args.jobs
        out["jobs_bytes"] = len(listing.content)

        def baseline_jobs() -> None:
            project.jobs()
            inst.store.job_records(project.uid)

        samples = alternate(args.runs, route=get(client, f"/api/projects/{project.uid}/jobs"), baseline=baseline_jobs)
        out["jobs"] = {k: statistics.median(v) for k, v in samples.items()} | {"runs": samples, "n": args.jobs}

        print(f"building a chain of jobs over {args.items:,} particles ...", flush=True)
        chain_project = inst.create_project("Bench outputs", root / "projects")
        chain = build_chain(chain_project, particle_dataset(args.items, seed=args.seed),
                            1.0, np.random.default_rng(args.seed))
        last = chain["jobs"]["last"]
        base = f"/api/projects/{chain_project.uid}/jobs/{last.uid}"
        groups = client.get(base + "/outputs").json()
        group = next(g for g in groups if g["name"] == "particles")
        assert group["num_items"] == args.items and all(r["passthrough"] for r in group["results"])
        out["group"] = {"job": last.uid, "items": group["num_items"],
                        "passthroughs": [r["name"] for r in group["results"]]}
        samples = alternate(args.runs, route=get(client, base + "/outputs"),
                            baseline=lambda: last.load_output("particles"),
                            histogram=get(client, base + "/outputs/particles/histogram?field=ctf/df1_A&bins=50"))
        out["outputs"] = {k: statistics.median(v) for k, v in samples.items()} | {"runs": samples}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-output/server"))
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cryoweave-bench-server-"))
    try:
        r = bench(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    jobs, outs = r["jobs"], r["outputs"]

    def row(name: str, seconds: float, baseline: float | None, target: float | None) -> str:
        ratio = f"{seconds / baseline:8.3f}x" if baseline else " " * 9
        met = "" if target is None else f"< {target * 1000:,.0f} ms: {'yes' if seconds < target else 'NO'}"
        return f"{name:<52} {seconds * 1000:10.1f} ms {ratio}  {met}"

    print(f"\nmedians of {args.runs} runs ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}); "
          f"ratio: route / baseline")
    print(f"{'':<52} {'median':>13} {'ratio':>9}  target")
    print(row(f"GET jobs ({jobs['n']:,} jobs, {r['jobs_bytes'] / 1024:,.0f} KiB)", jobs["route"], jobs["baseline"],
              TARGETS["jobs"]))
    print(row("  baseline project.jobs() + store.job_records", jobs["baseline"], None, None))
    print(row(f"GET outputs ({r['group']['items']:,} particles, "
              f"{len(r['group']['passthroughs'])} passthroughs)", outs["route"], outs["baseline"], TARGETS["outputs"]))
    print(row("  baseline job.load_output (full load)", outs["baseline"], None, None))
    print(row("GET histogram ctf/df1_A, 50 bins (no target)", outs["histogram"], outs["baseline"], None))
    print(f"(attaching the {jobs['n']:,}-job project: {r['attach_s']:.2f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"settings": vars(args) | {"out": str(args.out)}, "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "targets_s": TARGETS, "results": r, "time": time.time()}
    (args.out / "server.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.out / 'server.json'}")


if __name__ == "__main__":
    main()
