"""Remove Duplicate Particles on millions of particles: the grid search, and the whole job.

    python benchmarks/bench_duplicates.py [--particles 5000000] [--micrographs 10000] [--distance 20]
                                          [--baseline-particles 200000] [--out bench-output]

The target: 5,000,000 particles over 10,000 micrographs in under 30 s on a 2-core machine.

The particles: K3-sized micrographs (5760 × 4092 px at 0.83 Å, shape [y, x] = [4092, 5760]),
about 500 picks each at random positions, plus ``--duplicates`` (10 %) picked a second time a few
Å away (a second picker, a merged set): those are the duplicates to find. Scores are
``pick_stats/ncc_score``.

- **core**: positions in Å from ``location`` and :func:`find_duplicates` (grid + greedy), in memory;
- **job**: an external job saves the particles (setup, timed apart), then a
  ``remove_duplicate_particles`` job runs to completed in the foreground: loading its input,
  the search, saving both outputs; its kept/rejected counts must equal the core's;
- **baseline**: on ``--baseline-particles`` (whole micrographs), the simple way, all pairs of each
  micrograph with numpy (an n × n distance matrix per micrograph) then the same greedy rule, against
  the core on the same particles: the results must be identical; the ratio is baseline / core.

Figures go to ``<out>/duplicates.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from cryoweave import Dataset
from cryoweave.api import Instance
from cryoweave.jobs.library.curation import positions_A
from cryoweave.jobs.library.curation_math import find_duplicates, greedy_keep, score_rank
from cryoweave.spec import result_fields

SHAPE, PSIZE = (4092, 5760), 0.83


def make_particles(n: int, micrographs: int, duplicates: float, seed: int = 0) -> Dataset:
    """``n`` particles: picks at random on ``micrographs`` micrographs, a fraction of them picked twice."""
    rng = np.random.default_rng(seed)
    first = n - int(n * duplicates)
    again = rng.integers(0, first, n - first)
    mic = np.sort(rng.integers(0, micrographs, first))
    x, y = rng.uniform(0.02, 0.98, first), rng.uniform(0.02, 0.98, first)
    jitter = rng.normal(0, 4.0, (2, len(again))) / (np.array(SHAPE[::-1])[:, None] * PSIZE)  # ~4 Å apart
    data = Dataset.allocate(n, [("uid", "<u8"), *result_fields("location"), *result_fields("pick_stats")])
    data["uid"] = rng.permutation(np.arange(1, n + 1, dtype=np.uint64) * 7919)
    data["location/micrograph_uid"] = np.concatenate([mic, mic[again]]).astype(np.uint64) + 10**12
    paths = np.array([f"J2/motioncorrected/{m:06d}_patch_aligned_doseweighted.mrc" for m in range(micrographs)],
                     dtype=object)
    data["location/micrograph_path"] = paths[np.concatenate([mic, mic[again]])]
    data["location/micrograph_shape"] = SHAPE
    data["location/micrograph_psize_A"] = PSIZE
    data["location/center_x_frac"] = np.concatenate([x, x[again] + jitter[0]])
    data["location/center_y_frac"] = np.concatenate([y, y[again] + jitter[1]])
    data["pick_stats/ncc_score"] = rng.uniform(0, 1, n)
    return data


def core(data: Dataset, distance: float) -> tuple[np.ndarray, int, float]:
    started = time.perf_counter()
    x, y = positions_A(data, None)
    keep, pairs = find_duplicates(np.asarray(data["location/micrograph_uid"]), x, y, distance,
                                  np.asarray(data["pick_stats/ncc_score"]), np.asarray(data["uid"]))
    return keep, pairs, time.perf_counter() - started


def baseline(data: Dataset, distance: float) -> tuple[np.ndarray, float]:
    """All pairs of each micrograph (numpy distance matrices), then the same greedy rule."""
    started = time.perf_counter()
    x, y = positions_A(data, None)
    mic = np.asarray(data["location/micrograph_uid"])
    order = np.argsort(mic, kind="stable")
    bounds = np.flatnonzero(np.diff(mic[order])) + 1
    found_i, found_j = [], []
    for rows in np.split(order, bounds):
        px, py = x[rows], y[rows]
        close = (px[:, None] - px[None]) ** 2 + (py[:, None] - py[None]) ** 2 < distance * distance
        a, b = np.nonzero(np.triu(close, 1))
        found_i.append(rows[a])
        found_j.append(rows[b])
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    rank = score_rank(np.asarray(data["pick_stats/ncc_score"]), np.asarray(data["uid"]), False)
    keep = greedy_keep(len(x), i, j, rank)
    return keep, time.perf_counter() - started


def run(args: argparse.Namespace, home: Path) -> dict:
    started = time.perf_counter()
    data = make_particles(args.particles, args.micrographs, args.duplicates)
    made_s = time.perf_counter() - started
    keep, pairs, core_s = core(data, args.distance)

    inst = Instance(home=home)
    project = inst.create_project("Duplicates", home / "projects")
    started = time.perf_counter()
    source = project.create_external_job(title="picks")
    source.add_output("particle", "particles", slots=["location", "pick_stats"])
    with source.run():
        source.save_output("particles", data)
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    job = project.create_job("remove_duplicate_particles", params={"min_distance_A": args.distance})
    job.connect("particles", f"{source.uid}.particles")
    job.execute()
    job_s = time.perf_counter() - started
    outputs = {n: g.num_items for n, g in job.refresh().outputs.items()}
    status = job.status
    inst.close()

    per_mic = args.particles / args.micrographs
    small = data.mask(np.asarray(data["location/micrograph_uid"]) < 10**12 + round(args.baseline_particles / per_mic))
    small_keep, _, small_core_s = core(small, args.distance)
    base_keep, base_s = baseline(small, args.distance)
    return {
        "particles": args.particles, "micrographs": args.micrographs, "distance_A": args.distance,
        "duplicates_made": int(args.particles * args.duplicates), "close_pairs": pairs,
        "kept": int(keep.sum()), "rejected": int((~keep).sum()), "make_data_s": round(made_s, 2),
        "core_s": round(core_s, 2), "setup_external_job_s": round(setup_s, 2), "job_s": round(job_s, 2),
        "job_status": status, "job_outputs": outputs,
        "job_matches_core": outputs == {"particles_kept": int(keep.sum()), "particles_rejected": int((~keep).sum())},
        "baseline_particles": len(small), "baseline_core_s": round(small_core_s, 3),
        "baseline_pairwise_s": round(base_s, 3), "baseline_identical": bool((small_keep == base_keep).all()),
        "baseline_ratio": round(base_s / max(small_core_s, 1e-9), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--particles", type=int, default=5_000_000)
    parser.add_argument("--micrographs", type=int, default=10_000)
    parser.add_argument("--distance", type=float, default=20.0, help="minimum separation (Å)")
    parser.add_argument("--duplicates", type=float, default=0.1, help="fraction of particles picked twice")
    parser.add_argument("--baseline-particles", type=int, default=200_000)
    parser.add_argument("--goal", type=float, default=30.0, help="seconds the job may take")
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-bench-dup-") as tmp:
        result = run(args, Path(tmp))
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    ok = (result["job_status"] == "completed" and result["job_matches_core"] and result["baseline_identical"]
          and result["job_s"] < args.goal)
    print(f"remove duplicate particles: {args.particles:,} particles on {args.micrographs:,} micrographs, "
          f"{args.distance:g} Å")
    for key in ("duplicates_made", "close_pairs", "kept", "rejected", "make_data_s", "core_s",
                "setup_external_job_s", "job_s", "job_status", "job_matches_core", "baseline_particles",
                "baseline_core_s", "baseline_pairwise_s", "baseline_identical", "baseline_ratio", "machine"):
        print(f"  {key:<24} {result[key]}")
    print(f"  target (job < {args.goal:g} s, same result as the core and the pairwise baseline): "
          f"{'met' if ok else 'MISSED'}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "duplicates.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
