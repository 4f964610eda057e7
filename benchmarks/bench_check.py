"""Check speed: ``check_project`` of a project of ~1,000 jobs and ~200,000 files, one output group of
1,000,000 particles with passthroughs.

    python benchmarks/bench_check.py [--items 1000000] [--jobs 1000] [--micrographs 50000]
                                     [--files-per-job 100] [--runs 3] [--out bench-output/check]

The target (issue 8): the check of this project in under 15 s.

The project (SQLite instance, external jobs through the Python API):

- J1..J11: the 10-job chain of ``benchmarks/bench_builder.py`` (``--items`` particles; blob, ctf,
  location and alignments3D made by J1..J4, passed through by J5..J9; J10, J11 building). The
  particles' ``blob/path`` name ``--micrographs`` stacks in ``J1/extract/``, their
  ``location/micrograph_path`` name as many micrographs linked into ``J1/imported/`` from a raw
  data folder outside the project (as an import does): 2 x ``--micrographs`` data files and
  ``--micrographs`` links.
- J12..: small jobs up to ``--jobs`` in all, in pairs: one makes ``blob`` for ``--files-per-job``
  particles, each in its own file in its folder; the next takes it in, makes ``ctf`` and passes
  ``blob`` through.

Timed (best of ``--runs``, one untimed call first): ``check_project`` (clean, every table and file
looked at), against the baseline of loading every ``.cs`` table of the project with ``Dataset.load``
(all fields), measured in the same process. Figures go to ``<out>/check.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_builder import build_chain
from cryoweave import Dataset
from cryoweave.api import Instance
from cryoweave.jobs import Registry
from cryoweave.manage.check import check_project
from cryoweave.spec import result_fields
from cryoweave.spec.examples import particle_dataset

TARGET_S = 15.0


def touch(paths: list[Path]) -> None:
    for path in paths:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def big_table(root: Path, project_dir: Path, items: int, micrographs: int, seed: int) -> Dataset:
    """The chain's particles, with stacks in J1/extract/ and micrographs linked into J1/imported/."""
    full = particle_dataset(items, micrographs=micrographs, seed=seed)
    stems = np.array([f"mic_{i:06d}" for i in range(micrographs)], dtype=object)
    which = np.searchsorted(np.unique(np.asarray(full["location/micrograph_uid"])),
                            np.asarray(full["location/micrograph_uid"]))
    full["blob/path"] = np.array([f"J1/extract/{s}_particles.mrcs" for s in stems], dtype=object)[which]
    full["location/micrograph_path"] = np.array([f"J1/imported/{s}.mrc" for s in stems], dtype=object)[which]
    raw = root / "raw"
    raw.mkdir()
    (project_dir / "J1" / "extract").mkdir(parents=True)
    (project_dir / "J1" / "imported").mkdir()
    touch([raw / f"{s}.mrc" for s in stems])
    touch([project_dir / "J1" / "extract" / f"{s}_particles.mrcs" for s in stems])
    for s in stems:
        os.symlink(raw / f"{s}.mrc", project_dir / "J1" / "imported" / f"{s}.mrc")
    return full


def small_jobs(project, count: int, files: int, rng: np.random.Generator) -> None:
    """``count`` more jobs, in pairs (blob maker, then ctf maker passing blob through)."""
    made = 0
    while made < count:
        maker = project.create_external_job(title="small import")
        maker.add_output("particle", "particles", slots=["blob"])
        folder = project.directory / maker.uid / "extract"
        folder.mkdir(parents=True)
        names = [f"{maker.uid}/extract/p_{i:04d}.mrc" for i in range(files)]
        touch([project.directory / n for n in names])
        data = Dataset.allocate(files, [("uid", "<u8"), *result_fields("blob")])
        data["uid"] = rng.integers(1, 2**63, files, dtype=np.uint64)
        data["blob/path"] = np.array(names, dtype=object)
        with maker.run():
            maker.save_output("particles", data)
        made += 1
        if made >= count:
            break
        user = project.create_external_job(title="small ctf")
        user.add_input("particle", "particles", slots=["blob"])
        user.add_output("particle", "particles", slots=["ctf"], passthrough="particles")
        user.connect("particles", f"{maker.uid}.particles")
        ctf = Dataset.allocate(files, [("uid", "<u8"), *result_fields("ctf")])
        ctf["uid"] = data["uid"]
        with user.run():
            user.save_output("particles", ctf)
        made += 1


def count_files(folder: Path) -> tuple[int, int]:
    files = links = 0
    for _dir, _dirs, names in os.walk(folder):
        files += len(names)
        links += sum(os.path.islink(os.path.join(_dir, n)) for n in names)
    return files, links


def best(call, runs: int) -> tuple[float, list[float], Any]:
    call()  # untimed: warm caches
    times, result = [], None
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def bench(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"items": args.items}
    rng = np.random.default_rng(args.seed)
    reg = Registry()
    reg._loaded = True  # no installed plugins: external jobs only
    with Instance(home=root / "home", registry=reg) as inst:
        project = inst.create_project("Bench check", root / "projects")
        start = time.perf_counter()
        print(f"building a {args.items:,}-particle table on {args.micrographs:,} micrographs ...", flush=True)
        full = big_table(root, project.directory, args.items, args.micrographs, args.seed)
        print("making the chain J1..J11 ...", flush=True)
        build_chain(project, full, 1.0, rng)
        del full
        small = max(0, args.jobs - len(project.jobs()))
        print(f"making {small} small jobs ...", flush=True)
        small_jobs(project, small, args.files_per_job, rng)
        out["build_s"] = time.perf_counter() - start
        out["jobs"] = len(project.jobs())
        out["files"], out["links"] = count_files(project.directory)
        out["files"] += args.micrographs  # the raw micrographs outside the project
        tables = sorted(project.directory.glob("J*/*.cs"))
        out["tables"] = len(tables)
        print(f"{out['jobs']} jobs, {out['files']:,} files ({out['links']:,} links), {len(tables)} tables; "
              f"built in {out['build_s']:.0f} s", flush=True)

        stages: dict[str, float] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if done == 0:
                stages[stage] = time.perf_counter()

        def check():
            stages.clear()
            start = time.perf_counter()
            report = check_project(inst.store, project.uid, progress=progress)
            names, ends = list(stages), [*list(stages.values())[1:], start + report.seconds]
            split = {"database and project files": stages[names[0]] - start}
            return report, split | {n: e - stages[n] for n, e in zip(names, ends)}

        def load_all() -> int:
            return sum(len(Dataset.load(t)) for t in tables)

        print(f"timing check_project against loading the {len(tables)} tables, best of {args.runs} ...", flush=True)
        check_s, check_runs, (report, split) = best(check, args.runs)
        assert report.problems == [], [p.to_dict() for p in report.problems[:5]]
        load_s, load_runs, rows = best(load_all, args.runs)
        out["check"] = {"best_s": check_s, "runs": check_runs, "checked": report.checked,
                        "stages_s": split}
        out["load_all_tables"] = {"best_s": load_s, "runs": load_runs, "rows": rows,
                                  "bytes": sum(t.stat().st_size for t in tables)}
        out["ratio"] = check_s / load_s
    return out


def report(r: dict[str, Any]) -> None:
    check, load = r["check"], r["load_all_tables"]
    met = "yes" if check["best_s"] < TARGET_S else "NO"
    print(f"\n{r['jobs']} jobs, {r['files']:,} files ({r['links']:,} links), {r['tables']} tables; one output group "
          f"of {r['items']:,} particles with passthroughs ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    print(f"check_project (clean): {check['best_s']:.2f} s (target < {TARGET_S:g} s: {met}); checked "
          + ", ".join(f"{n:,} {w}" for w, n in check["checked"].items()))
    print("  stages: " + ", ".join(f"{name} {s:.2f} s" for name, s in check["stages_s"].items()))
    print(f"baseline, Dataset.load of every table ({load['bytes'] / 2**20:.0f} MiB, {load['rows']:,} rows): "
          f"{load['best_s']:.2f} s; check / load = {r['ratio']:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--micrographs", type=int, default=50_000)
    parser.add_argument("--files-per-job", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench-output/check"))
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="cryoweave-bench-check-"))
    try:
        results = bench(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"settings": vars(args) | {"out": str(args.out)}, "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "target_s": TARGET_S, "results": results}
    (args.out / "check.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.out / 'check.json'}")


if __name__ == "__main__":
    main()
