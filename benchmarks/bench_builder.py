"""Builder speed: assembling a job's input at the end of a chain, and saving an output with passthroughs.

    python benchmarks/bench_builder.py [--items 1000000] [--runs 5] [--save-runs 3] [--keep 1.0] [--out bench-output]

The targets (issue 4):

- **load the input of a job at the end of a 10-job chain** (``--items`` particles; ``blob``,
  ``ctf``, ``location`` and ``alignments3D`` made by four different ancestors and reaching the
  job through passthroughs; one result override) in no more than 1.5x the time of loading those
  four ``.cs`` files on their own (``Dataset.load`` of each, all fields), measured in the same
  process: one untimed call each, then ``--runs`` timed runs, alternating; the best is reported.
- **saving an output with passthroughs writes only the new results' bytes**: a job that makes
  ``alignments3D`` and passes everything else through writes a ``.cs`` of about ``uid`` +
  ``alignments3D`` (rows x record size, plus the header), not a full copy of the table (measured
  by saving the assembled table to a scratch file). The save is timed too, against a bare
  ``Dataset.save`` of the same table.

The chain, made through the Python API with external jobs in one project (SQLite instance):

    J1 import   makes blob (and the uids)                      all items
    J2          makes ctf           (reads blob, passthrough)  all items
    J3          makes location      (reads blob, passthrough)  all items
    J4          makes alignments3D  (reads blob, passthrough)  all items
    J5          uid only (a selection keeping --keep of the items, in order)
    J6 .. J9    uid only (pass everything through)
    J10         input slots blob, ctf, location, alignments3D from J9.particles; blob overridden
                to J1.particles.blob                           <- its input load is timed
    J11         like J10, output alignments3D with passthrough  <- its save is measured

With ``--keep 1.0`` (the default, the issue's scenario) every table holds the same items in the
same order; with ``--keep 0.9`` the assembled input joins J9's table of items with four ancestor
tables bigger than it (the selection cut them), which costs one uid match and a gather of every
field. ``make bench`` runs both. Each file is read once. All figures go to ``<out>/builder.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cryoweave import Dataset
from cryoweave.api import Instance
from cryoweave.jobs import Registry
from cryoweave.spec import result_fields
from cryoweave.spec.examples import particle_dataset

SLOTS = ["blob", "ctf", "location", "alignments3D"]
TARGET_LOAD_RATIO = 1.5
HEADER_ALLOWANCE = 64 * 1024  # bytes a .cs may add to its records (the .npy header)


def result_table(full: Dataset, slot: str, rows: np.ndarray | None = None) -> Dataset:
    """uid + every field of one result, values from the example particle table where it has them."""
    n = len(full) if rows is None else len(rows)
    d = Dataset.allocate(n, [("uid", "<u8"), *result_fields(slot)])
    for field in d.fields():
        if field in full:
            values = np.asarray(full[field])
            d[field] = values if rows is None else values[rows]
    return d


def uid_table(uids: np.ndarray) -> Dataset:
    d = Dataset.allocate(len(uids), [("uid", "<u8")])
    d["uid"] = uids
    return d


def build_chain(project, full: Dataset, keep: float, rng: np.random.Generator) -> dict[str, Any]:
    """J1..J11 as in the module docstring; J1..J9 completed. Returns the jobs and the kept rows."""
    timings: dict[str, float] = {}
    jobs = {}

    def timed_save(job, dataset: Dataset) -> None:
        start = time.perf_counter()
        job.save_output("particles", dataset)
        timings[job.uid] = time.perf_counter() - start

    j1 = project.create_external_job(title="import")
    j1.add_output("particle", "particles", slots=["blob"])
    with j1.run():
        timed_save(j1, result_table(full, "blob"))
    jobs["import"] = j1

    previous = j1
    for slot in ["ctf", "location", "alignments3D"]:
        job = project.create_external_job(title=f"make {slot}")
        job.add_input("particle", "particles", slots=["blob"])
        job.add_output("particle", "particles", slots=[slot], passthrough="particles")
        job.connect("particles", f"{previous.uid}.particles")
        with job.run():
            uids = job.load_input("particles", slots=[])["uid"]
            assert np.array_equal(uids, full["uid"]), f"{job.uid}: input uids differ from the imported ones"
            timed_save(job, result_table(full, slot))
        jobs[slot] = job
        previous = job

    rows = np.arange(len(full))
    for i in range(5):  # J5 (the selection) .. J9
        job = project.create_external_job(title="select" if i == 0 else f"pass {i}")
        job.add_input("particle", "particles", slots=[])
        job.add_output("particle", "particles", slots=[], passthrough="particles")
        job.connect("particles", f"{previous.uid}.particles")
        with job.run():
            uids = np.asarray(job.load_input("particles", slots=[])["uid"])
            if i == 0:
                rows = np.flatnonzero(rng.random(len(uids)) < keep)
            timed_save(job, uid_table(uids[rows] if i == 0 else uids))
        previous = job
    jobs["last"] = previous

    j10 = project.create_external_job(title="final")
    j10.add_input("particle", "particles", slots=SLOTS)
    j10.connect("particles", f"{previous.uid}.particles")
    j10.connect_result("particles", 0, "blob", f"{j1.uid}.particles.blob")
    jobs["final"] = j10

    j11 = project.create_external_job(title="refine")
    j11.add_input("particle", "particles", slots=SLOTS)
    j11.add_output("particle", "particles", slots=["alignments3D"], passthrough="particles")
    j11.connect("particles", f"{previous.uid}.particles")
    jobs["saver"] = j11
    return {"jobs": jobs, "rows": rows, "save_s": timings}


def _timed(call) -> float:
    gc.collect()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    del result
    return seconds


def alternate(cases: dict[str, Any], runs: int) -> dict[str, list[float]]:
    """One untimed call each, then ``runs`` timed runs of each, alternating the order."""
    for call in cases.values():
        _timed(call)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for run in range(runs):
        for name in (names if run % 2 == 0 else names[::-1]):
            samples[name].append(_timed(cases[name]))
    return samples


def check_input(data: Dataset, full: Dataset, rows: np.ndarray) -> None:
    """The assembled input: the selected items, in order, with every field of the four results."""
    assert len(data) == len(rows), f"input has {len(data):,} items, expected {len(rows):,}"
    expected = {"uid", *(f for slot in SLOTS for f, *_ in result_fields(slot))}
    assert set(data.fields()) == expected, f"input fields differ: {sorted(set(data.fields()) ^ expected)}"
    assert np.array_equal(np.asarray(data["uid"]), np.asarray(full["uid"])[rows]), "input uids differ"
    for field in ["blob/path", "blob/idx", "ctf/df1_A", "location/micrograph_uid", "location/micrograph_path",
                  "alignments3D/pose"]:
        got, want = np.asarray(data[field]), np.asarray(full[field])[rows]
        if want.dtype == object:
            want = want.astype(str)
            got = got.astype(str)
        else:
            want = want.astype(got.dtype)
        assert np.array_equal(got, want), f"input field {field} differs from what the ancestors saved"


def bench(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    out: dict[str, Any] = {"items": args.items}
    print(f"building a {args.items:,}-particle table ...", flush=True)
    full = particle_dataset(args.items, seed=args.seed)
    reg = Registry()
    reg._loaded = True  # no installed plugins: external jobs only
    with Instance(home=root / "home", registry=reg) as inst:
        project = inst.create_project("Bench builder", root / "projects")
        print("making the chain J1..J11 (saving each job's output) ...", flush=True)
        start = time.perf_counter()
        chain = build_chain(project, full, args.keep, rng)
        out["build_chain_s"] = time.perf_counter() - start
        out["chain_save_s"] = chain["save_s"]
        jobs, rows = chain["jobs"], chain["rows"]
        directory = project.directory
        j10, j11 = jobs["final"], jobs["saver"]
        files = [directory / jobs[s].record.outputs["particles"].tables[-1].metafile
                 for s in ["import", "ctf", "location", "alignments3D"]]
        out["kept_items"] = len(rows)

        # ---- loading J10's input against loading the four files on their own
        print(f"loading J10's input ({len(rows):,} items) against the four files, {args.runs} runs each ...",
              flush=True)
        check_input(j10.load_input("particles"), full, rows)

        def four_files() -> list[Dataset]:
            return [Dataset.load(f) for f in files]

        samples = alternate({"builder": lambda: j10.load_input("particles"), "files": four_files}, args.runs)
        load = {"builder_s": min(samples["builder"]), "files_s": min(samples["files"]),
                "builder_runs": samples["builder"], "files_runs": samples["files"],
                "files": [str(f.relative_to(directory)) for f in files],
                "file_bytes": [f.stat().st_size for f in files]}
        load["ratio"] = load["builder_s"] / load["files_s"]
        load["median_ratio"] = statistics.median(samples["builder"]) / statistics.median(samples["files"])
        out["load_input"] = load

        # ---- saving J11's output: only uid + alignments3D is written
        print("saving J11's output (alignments3D, the rest passed through) ...", flush=True)
        assembled = j11.load_input("particles")
        made = result_table(full, "alignments3D", rows)
        made["alignments3D/error"] = np.asarray(made["alignments3D/error"]) * 0.5  # new values
        folder = directory / j11.uid
        scratch = root / "scratch"
        scratch.mkdir()
        saves, bare, written = [], [], []
        with j11.run():
            for version in range(args.save_runs):
                before = {p: p.stat().st_size for p in folder.glob("*")} if folder.exists() else {}
                gc.collect()
                start = time.perf_counter()
                j11.save_output("particles", made)
                saves.append(time.perf_counter() - start)
                after = {p: p.stat().st_size for p in folder.glob("*")}
                table = directory / j11.record.outputs["particles"].tables[-1].metafile
                written.append({"cs": str(table.relative_to(directory)), "cs_bytes": table.stat().st_size,
                                "new_or_changed": {p.name: s for p, s in after.items() if before.get(p) != s}})
                bare.append(_timed(lambda version=version: made.save(scratch / f"bare_{version}.cs")))
        full_copy = scratch / "full_copy.cs"
        whole = j11.load_output("particles", slots="all")
        assert len(whole) == len(rows) and set(whole.fields()) == set(assembled.fields())
        assert np.array_equal(np.asarray(whole["alignments3D/error"]), np.asarray(made["alignments3D/error"]))
        whole.save(full_copy)
        record_bytes = sum(np.dtype([f]).itemsize for f in [("uid", "<u8"), *result_fields("alignments3D")])
        out["save_output"] = {
            "builder_s": min(saves), "bare_save_s": min(bare), "ratio": min(saves) / min(bare),
            "builder_runs": saves, "bare_runs": bare, "written": written,
            "cs_bytes": written[0]["cs_bytes"], "new_results_bytes": record_bytes * len(rows),
            "record_bytes": record_bytes, "full_copy_bytes": full_copy.stat().st_size,
            "full_copy_fields": len(whole.fields())}
    return out


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    load, save = r["load_input"], r["save_output"]
    mib = 2**20
    met = "yes" if load["ratio"] <= TARGET_LOAD_RATIO else "NO"
    print(f"\n{r['items']:,} particles, {r['kept_items']:,} kept by the selection (J5); best of {args.runs} "
          f"runs, alternating, in one process ({os.cpu_count()} CPUs, numpy {np.__version__}); "
          f"chain built in {r['build_chain_s']:.1f} s")
    print(f"load J10's input (4 results via passthroughs, 1 override): {load['builder_s']:.3f} s")
    print(f"load the four .cs files on their own ({sum(load['file_bytes']) / mib:.0f} MiB):  {load['files_s']:.3f} s")
    print(f"  ratio input / files: {load['ratio']:.2f}x (target <= {TARGET_LOAD_RATIO:g}x: {met}); "
          f"medians: {load['median_ratio']:.2f}x")
    print(f"save J11's output (alignments3D made, 4 results passed through): {save['builder_s']:.3f} s; "
          f"bare Dataset.save of the same table {save['bare_save_s']:.3f} s ({save['ratio']:.2f}x)")
    header = save["cs_bytes"] - save["new_results_bytes"]
    only_new = "yes" if 0 <= header <= HEADER_ALLOWANCE else "NO"
    print(f"  written {save['written'][0]['cs']}: {save['cs_bytes']:,} bytes; uid + alignments3D = "
          f"{save['record_bytes']} B x {r['kept_items']:,} rows = {save['new_results_bytes']:,} bytes "
          f"({save['cs_bytes'] / save['new_results_bytes']:.4f}x, header {header:,} bytes; "
          f"only the new results' bytes: {only_new})")
    print(f"  a full copy ({save['full_copy_fields']} fields) would be {save['full_copy_bytes']:,} bytes: the save "
          f"wrote {save['cs_bytes'] / save['full_copy_bytes']:.1%} of it")
    print(f"  other files the save wrote or changed in {save['written'][0]['cs'].split('/')[0]}/: "
          + ", ".join(f"{name} ({size:,} B)" for name, size in save["written"][0]["new_or_changed"].items()
                      if not name.endswith(".cs")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--keep", type=float, default=1.0, help="fraction of the items the selection (J5) keeps")
    parser.add_argument("--runs", type=int, default=5, help="timed loads of each kind")
    parser.add_argument("--save-runs", type=int, default=3, help="timed saves (each a new version)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="cryoweave-bench-builder-"))
    try:
        results = bench(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results, args)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"settings": vars(args) | {"out": str(args.out)}, "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "target_load_ratio": TARGET_LOAD_RATIO, "results": results}
    (args.out / "builder.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.out / 'builder.json'}")


if __name__ == "__main__":
    main()
