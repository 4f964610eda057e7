"""Dataset speed: cryoweave against cryosparc-tools 5.x, measured in the same run.

    python benchmarks/bench_dataset.py [--n 1000000] [--runs 5] [--cold-runs 3] [--out bench-output]

The table is the reference's particle set (cryosparc-tools research notes §7): 1,000,000 rows,
uid + blob (6) + ctf (17) + alignments3D (6) + location (7) = 37 fields, three string fields,
1,000 micrographs, rows grouped by micrograph as extraction writes them (a shuffled copy is
used where row order matters). The data files are written by cryosparc-tools, so both readers
read the baseline's own files.

Two measurements, both reported:

- **warm** (the figures the targets are checked against): both implementations in one
  process; for each operation both are set up, called once untimed, then timed ``--runs``
  times, alternating; the median is reported.
- **cold**: each (operation, implementation, run) in a fresh process, setup untimed, median of
  ``--cold-runs``. This adds the kernel's cost of handing fresh memory to a new process, which
  on virtual machines varies a lot from run to run and is paid by both implementations.

The ratio is cryosparc-tools time / cryoweave time (higher is better), except for "vs np.load",
which is cryoweave time / bare ``np.load`` time (lower is better). Peak memory is measured in
fresh processes: the high-water mark during a full load minus the size just before, divided by
the in-memory size of the loaded table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# (name, description, target, setup, files): the operations, in report order.
OPS = [
    ("load_numpy", "load numpy .cs (all fields)", 5.0),
    ("load_numpy_ctf", "load numpy .cs, ctf fields only", 10.0),
    ("load_csdat", "load CSDAT-LZ4 .cs (all fields)", None),
    ("load_csdat_ctf", "load CSDAT-LZ4 .cs, ctf fields only", 10.0),
    ("save_numpy", "save numpy .cs", 2.0),
    ("save_csdat", "save CSDAT-LZ4 .cs", 2.0),
    ("innerjoin", "innerjoin 1M x 1M, shuffled uids (24 + 14 fields)", 3.0),
    ("split_by", "split_by micrograph uid, rows grouped (1,000 groups)", 20.0),
    ("split_by_shuffled", "split_by micrograph uid, rows shuffled", 20.0),
    ("mask", "mask(df1_A > median) -> 500,000 rows", 2.0),
    ("take", "take(100,000 sorted indices)", 2.0),
    ("query_uid", "query({uid: 1,000 uids})", 2.0),
    ("query_mic", "query({micrograph_uid: 10 values})", 2.0),
    ("query_str", "query({blob/path: one path})", 2.0),
]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives execve, so a worker started by
    # a large parent would report the parent's high-water mark as its own.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _impl(name: str):
    if name == "cryosparc-tools":
        from cryosparc.dataset import CSDAT_FORMAT, Dataset
    else:
        from cryoweave.dataset import CSDAT_FORMAT, Dataset
    return Dataset, CSDAT_FORMAT


def _build(impl: str, n: int):
    """The particle table in memory, strings as Python str (as a script would build it)."""
    from cryoweave.spec.examples import particle_dataset

    ours = particle_dataset(n, seed=0)
    if impl == "cryoweave":
        return ours
    dataset_cls, _ = _impl(impl)
    return dataset_cls([(f, np.asarray(ours[f])) for f in ours.fields()])


def make_case(impl: str, op: str, data: Path, n: int):
    """Set up one operation for one implementation; returns the call to time and its context."""
    if impl == "numpy":  # the bare np.load baseline
        return (lambda: np.load(data / "particles.cs", allow_pickle=False, max_header_size=2**30)), None
    dataset_cls, csdat_format = _impl(impl)
    rng = np.random.default_rng(7)
    if op.startswith("load"):
        path = data / ("particles_lz4.cs" if "csdat" in op else "particles.cs")
        kwargs = {"prefixes": ["ctf"]} if op.endswith("_ctf") else {}
        return (lambda: dataset_cls.load(path, **kwargs)), None
    if op.startswith("save"):
        dset = _build(impl, n)
        target = data / f"saved_{impl}.cs"
        fmt = csdat_format if op == "save_csdat" else 1
        return (lambda: dset.save(target, format=fmt)), dset
    source = "particles_shuffled.cs" if op == "split_by_shuffled" else "particles.cs"
    dset = dataset_cls.load(data / source)
    if op == "innerjoin":
        left = dset.filter_prefixes(["blob", "ctf"], copy=True)
        right = dset.filter_prefixes(["alignments3D", "location"], copy=True)
        right = right.take(rng.permutation(len(right)))
        return (lambda: left.innerjoin(right)), (left, right)
    if op.startswith("split_by"):
        return (lambda: dset.split_by("location/micrograph_uid")), dset
    if op == "mask":
        df1 = np.asarray(dset["ctf/df1_A"])
        keep = df1 > np.median(df1)
        return (lambda: dset.mask(keep)), dset
    if op == "take":
        idx = np.sort(rng.choice(len(dset), 100_000, replace=False))
        return (lambda: dset.take(idx)), dset
    field, count = {"query_uid": ("uid", 1000), "query_mic": ("location/micrograph_uid", 10),
                    "query_str": ("blob/path", 1)}[op]
    values = np.unique(np.asarray(dset[field]))
    wanted = rng.choice(values, min(count, len(values)), replace=False).tolist()
    query = {field: wanted if count > 1 else wanted[0]}
    return (lambda: dset.query(query)), dset


def _timed(call) -> float:
    gc.collect()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    del result
    return seconds


def cold_worker(impl: str, op: str, data: Path, n: int) -> dict:
    """One cold measurement in this (fresh) process: seconds and memory figures."""
    call, _context = make_case(impl, op, data, n)
    gc.collect()
    before = _rss_bytes()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "peak_delta": _peak_bytes() - before}
    if op == "load_numpy" and impl == "cryoweave":
        out["table_bytes"] = int(sum(a.nbytes for a in result._cols.values()))
    return out


def warm(ops, data: Path, n: int, runs: int) -> dict[tuple[str, str], list[float]]:
    """Both implementations in this process: set up, one untimed call, then alternating timed runs."""
    samples: dict[tuple[str, str], list[float]] = {}
    for op, text, _ in ops:
        impls = ["cryosparc-tools", "cryoweave"] + (["numpy"] if op == "load_numpy" else [])
        cases = {impl: make_case(impl, op, data, n)[0] for impl in impls}
        for impl in impls:
            _timed(cases[impl])
        for run in range(runs):
            for impl in (impls if run % 2 == 0 else impls[::-1]):
                samples.setdefault((op, impl), []).append(_timed(cases[impl]))
        del cases
        print(f"  warm: {text}", flush=True)
    return samples


def prepare(data: Path, n: int) -> None:
    """Write the data files with cryosparc-tools (the baseline's own files), once per n."""
    stamp = data / f"n={n}"
    if stamp.exists():
        return
    from cryosparc.dataset import CSDAT_FORMAT

    data.mkdir(parents=True, exist_ok=True)
    print(f"writing {n:,}-row data files to {data}/ ...", flush=True)
    dset = _build("cryosparc-tools", n)
    dset.save(data / "particles.cs")
    dset.save(data / "particles_lz4.cs", format=CSDAT_FORMAT)
    dset.take(np.random.default_rng(3).permutation(len(dset))).save(data / "particles_shuffled.cs")
    for old in data.glob("n=*"):
        old.unlink()
    stamp.touch()


def _run_worker(impl: str, op: str, data: Path, n: int) -> dict:
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, __file__, "--worker", impl, op, "--out", str(data), "--n", str(n)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {op} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cold(ops, data: Path, n: int, runs: int) -> dict[tuple[str, str], list[dict]]:
    samples: dict[tuple[str, str], list[dict]] = {}
    for run in range(runs):
        print(f"  cold: run {run + 1}/{runs}", flush=True)
        for op, _, _ in ops:
            impls = ["cryosparc-tools", "cryoweave"] + (["numpy"] if op == "load_numpy" else [])
            for impl in (impls if run % 2 == 0 else impls[::-1]):  # alternate order against drift
                samples.setdefault((op, impl), []).append(_run_worker(impl, op, data, n))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="warm timed runs per operation")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh-process runs (0: skip cold)")
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    parser.add_argument("--only", nargs="*", help="run only these operations")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "OP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(cold_worker(args.worker[0], args.worker[1], args.out, args.n)))
        return
    prepare(args.out, args.n)
    ops = [o for o in OPS if not args.only or o[0] in args.only]
    warm_samples = warm(ops, args.out, args.n, args.runs)
    peaks = [_run_worker("cryoweave", "load_numpy", args.out, args.n) for _ in range(3)]
    cold_samples = cold(ops, args.out, args.n, args.cold_runs) if args.cold_runs else {}
    report(ops, warm_samples, cold_samples, peaks, args)


def report(ops, warm_samples, cold_samples, peaks, args) -> None:
    med = {key: statistics.median(v) for key, v in warm_samples.items()}
    cold_med = {key: statistics.median(s["seconds"] for s in v) for key, v in cold_samples.items()}
    rows, results = [], []
    for op, text, target in ops:
        theirs, ours = med[(op, "cryosparc-tools")], med[(op, "cryoweave")]
        ratio = theirs / ours
        cold_ratio = cold_med[(op, "cryosparc-tools")] / cold_med[(op, "cryoweave")] if cold_med else None
        met = "" if target is None else ("yes" if ratio >= target else "NO")
        rows.append((text, f"{theirs:.3f}", f"{ours:.3f}", f"{ratio:.1f}x",
                     "" if target is None else f">= {target:g}x", met,
                     "" if cold_ratio is None else f"{cold_med[(op, 'cryosparc-tools')]:.3f} / "
                     f"{cold_med[(op, 'cryoweave')]:.3f} = {cold_ratio:.1f}x"))
        results.append({"op": op, "target": target, "warm": {
            "cryosparc_tools_s": theirs, "cryoweave_s": ours, "speedup": ratio,
            "cryoweave_runs": warm_samples[(op, "cryoweave")],
            "cryosparc_tools_runs": warm_samples[(op, "cryosparc-tools")]}})
        if cold_med:
            results[-1]["cold"] = {"cryosparc_tools_s": cold_med[(op, "cryosparc-tools")],
                                   "cryoweave_s": cold_med[(op, "cryoweave")], "speedup": cold_ratio}
        if op == "load_numpy":
            bare = med[(op, "numpy")]
            cold_bare = f"np.load {cold_med[(op, 'numpy')]:.3f}" if cold_med else ""
            rows.append(("  cryoweave load vs bare np.load", f"np.load {bare:.3f}", f"{ours:.3f}",
                         f"{ours / bare:.2f}x", "<= 1.5x", "yes" if ours / bare <= 1.5 else "NO", cold_bare))
            results.append({"op": "np_load", "warm_s": bare, "cryoweave_over_np_load": ours / bare})
    ratios = [p["peak_delta"] / p["table_bytes"] for p in peaks]
    peak = statistics.median(ratios)
    table_mb = peaks[0]["table_bytes"] / 2**20
    rows.append((f"peak memory of a full load / table ({table_mb:.0f} MiB)", "", f"{peak:.2f}x", "",
                 "<= 1.2x", "yes" if peak <= 1.2 else "NO", ", ".join(f"{r:.2f}" for r in ratios)))
    results.append({"op": "peak_memory_ratio", "median": peak, "runs": ratios, "table_mib": table_mb})
    widths = [max(len(r[i]) for r in [*rows, _HEAD]) for i in range(len(_HEAD))]
    print(f"\n{args.n:,} rows; warm: median of {args.runs} runs in one process; cold: median of "
          f"{args.cold_runs} fresh processes ({os.cpu_count()} CPUs, numpy {np.__version__})")
    for row in [_HEAD, tuple("-" * w for w in widths), *rows]:
        cells = (c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        print("  ".join(cells))
    summary = {"n": args.n, "runs": args.runs, "cold_runs": args.cold_runs, "results": results}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwritten {args.out / 'results.json'}")


_HEAD = ("operation", "cryosparc-tools s", "cryoweave s", "ratio", "target", "met", "cold: theirs / ours")

if __name__ == "__main__":
    main()
