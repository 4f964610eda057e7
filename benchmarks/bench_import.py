"""Import speed: ``import_micrographs`` of 10,000 small MRC micrographs, end to end.

    python benchmarks/bench_import.py [--files 10000] [--box 64] [--repeat 3] [--out bench-output]

The target: 10,000 micrographs imported (job created, run in the foreground, completed, its
output saved) in under 10 s. Only headers are read, so the figures do not depend on the size of
the images much; the files are written first (setup, not timed) from one mrcfile-made header
and random float32 data, and are in the page cache when the import reads them.

- **glob**: expanding ``<data>/*.mrc``;
- **headers**: the same check the job does (file exists and is readable, 1,024-byte header read
  and checked against the file size) for every file, on its own;
- **import**: ``create_job`` → ``execute()`` → completed, then files per second;
  ``--repeat`` runs, each a new job (new links), best and median reported.

Figures go to ``<out>/import.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

from cryoweave.api import Instance
from cryoweave.jobs.library.imports import read_exposures


def write_micrographs(folder: Path, count: int, box: int) -> None:
    """``count`` MRC micrographs of ``box``×``box`` float32: one header made by mrcfile, new data per file."""
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "template.mrc.tmp"
    with mrcfile.new(template, overwrite=True) as mrc:
        mrc.set_data(np.zeros((box, box), np.float32))
        mrc.voxel_size = 1.0
    header = template.read_bytes()[:1024]
    template.unlink()
    rng = np.random.default_rng(0)
    for i in range(count):
        with open(folder / f"mic_{i:06d}.mrc", "wb") as f:
            f.write(header)
            f.write(rng.standard_normal(box * box, np.float32).tobytes())


def run(args: argparse.Namespace, tmp: Path) -> dict:
    data = Path(args.data) if args.data else tmp / "data"
    started = time.perf_counter()
    if not (data.is_dir() and len(glob.glob(str(data / "*.mrc"))) == args.files):
        write_micrographs(data, args.files, args.box)
    setup = time.perf_counter() - started
    pattern = str(data / "*.mrc")

    started = time.perf_counter()
    paths = sorted(Path(p) for p in glob.glob(pattern))
    glob_s = time.perf_counter() - started
    started = time.perf_counter()
    exposures = read_exposures(paths, "micrographs")
    headers_s = time.perf_counter() - started
    assert len(exposures) == args.files and exposures[0].shape == (1, args.box, args.box)

    times = []
    with Instance(home=tmp / "home") as inst:
        project = inst.create_project("Import speed", tmp / "projects")
        for _ in range(args.repeat):
            started = time.perf_counter()
            job = project.create_job("import_micrographs", params={"blob_paths": pattern, "psize_A": 1.0})
            job.execute()
            times.append(time.perf_counter() - started)
            if job.status != "completed":
                raise RuntimeError(f"{job.uid} is {job.status}: {job.record.run.message if job.record.run else ''}")
            assert job.outputs["imported_micrographs"].num_items == args.files
    best, median = min(times), statistics.median(times)
    return {"files": args.files, "box": args.box, "setup_write_s": round(setup, 2), "glob_s": round(glob_s, 3),
            "headers_s": round(headers_s, 3), "headers_files_per_s": round(args.files / headers_s),
            "import_runs_s": [round(t, 3) for t in times], "import_best_s": round(best, 3),
            "import_median_s": round(median, 3), "import_files_per_s": round(args.files / median)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target", type=float, default=10.0, help="seconds the median import must stay under")
    parser.add_argument("--data", help="folder for the micrographs (kept, reused when it holds --files of them)")
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-bench-import-") as tmp:
        result = run(args, Path(tmp))
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    ok = result["import_median_s"] < args.target
    print(f"import_micrographs: {args.files:,} MRC micrographs of {args.box}×{args.box} float32")
    for key in ("setup_write_s", "glob_s", "headers_s", "headers_files_per_s", "import_runs_s", "import_best_s",
                "import_median_s", "import_files_per_s"):
        print(f"  {key:<22} {result[key]}")
    print(f"  target (median import < {args.target:g} s): {'met' if ok else 'MISSED'}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "import.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
