"""Downsample Particles: 100,000 particles of box 256 Fourier cropped to 128.

    python benchmarks/bench_downsample.py [--particles 100000] [--unique 10000] [--stacks 10]
                                          [--box 256] [--new-box 128] [--core 3000] [--dir /tmp] [--out bench-output]

Input: ``--stacks`` float32 stacks holding ``--unique`` distinct images of noise (10,000 images of
256² are 2.6 GB). 100,000 distinct images would be 26 GB of input, more than this machine's
page cache and more disk than is polite to take on a shared machine, so the particles reference
the same images ``particles / unique`` times (row ``i`` is image ``i mod unique``): every particle
is still read, transformed and written on its own, but the input is read from the page cache,
not from disk.

(a) **core**, the images already in memory (``--core`` of them), each way on the same images:

- **numpy.fft baseline**: per image ``np.fft.fft2`` → ``fftshift`` → crop → ``ifftshift`` →
  ``ifft2`` → real part (the straightforward way);
- **ours, numpy.fft**: :func:`~cryoweave.jobs.library.fourier.fourier_resize`'s algorithm (batched
  real FFTs, one axis at a time, each axis cropped as soon as it is transformed) run through
  ``numpy.fft``, to show what the algorithm gives without scipy;
- **ours, scipy.fft 1 thread** and **ours, scipy.fft N threads**: ``fourier_resize`` as the job runs it.

The results agree below the new Nyquist frequency (max relative difference of the spectra
printed); at Nyquist ours sums the ±64 components where the baseline keeps one (see fourier.py).

(b) **end to end**: the Downsample Particles job in the foreground (``job.execute()``): load the
input, check the stacks, read, crop, write 10 new stacks, save the output; once writing float32,
once float16. Memory: the peak of this process's anonymous resident memory (``RssAnon``, sampled
every 50 ms while the jobs run; the pages of the mapped output stack are file-backed and not
counted), and the peak resident set (``ru_maxrss``, which counts them). **Disk floor**: the same
bytes written with the same stack writer and no computing, for the share of the job that is disk.

Figures go to ``<out>/downsample.json``. The goal: ours ≥ 2× the baseline in (a).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import threading
import time
import types
from pathlib import Path

import numpy as np

import cryoweave.jobs.library.fourier as fourier
from cryoweave import Dataset
from cryoweave.api import Instance
from cryoweave.formats.mrc import StackWriter
from cryoweave.spec import result_fields


def write_input(folder: Path, unique: int, stacks: int, box: int) -> list[Path]:
    """``stacks`` stacks of noise holding ``unique`` images in all, written a piece at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths, per = [], -(-unique // stacks)
    for s in range(stacks):
        count = min(per, unique - s * per)
        path = folder / f"stack_{s:03d}.mrcs"
        with StackWriter(path, count, box, box, pixel_size=1.0) as out:
            for start in range(0, count, 500):
                out.write(rng.standard_normal((min(500, count - start), box, box), dtype=np.float32))
        paths.append(path)
    return paths


def import_particles(project, paths: list[Path], particles: int, unique: int, box: int) -> str:
    per = -(-unique // len(paths))
    image = np.arange(particles) % unique
    data = Dataset.allocate(particles, [("uid", "<u8"), *result_fields("blob")])
    data["uid"] = np.arange(1, particles + 1, dtype=np.uint64)
    data["blob/path"] = np.array([str(p) for p in paths], dtype=object)[image // per]
    data["blob/idx"] = image % per
    data["blob/shape"] = box
    data["blob/psize_A"] = 1.0
    data["blob/sign"] = -1.0
    job = project.create_external_job(title=f"{particles:,} particles")
    job.add_output("particle", "particles", slots=["blob"])
    with job.run():
        job.save_output("particles", data)
    return f"{job.uid}.particles"


class AnonPeak:
    """The largest ``RssAnon`` of this process seen while the block runs (Linux)."""

    def __enter__(self) -> AnonPeak:
        self.peak_kb, self._stop = 0, threading.Event()
        self._watch_once()
        self.start_kb = self.peak_kb
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self._watch_once()

    def _watch_once(self) -> None:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def disk_floor(folder: Path, particles: int, box: int, per_stack: int, dtype: str) -> float:
    """Seconds to write ``particles`` images of ``box`` with StackWriter, nothing computed."""
    block = np.random.default_rng(2).standard_normal((1024, box, box), dtype=np.float32)
    started = time.perf_counter()
    for s, first in enumerate(range(0, particles, per_stack)):
        count = min(per_stack, particles - first)
        with StackWriter(folder / f"floor_{s}.mrcs", count, box, box, pixel_size=2.0, dtype=dtype) as out:
            for start in range(0, count, len(block)):
                out.write(block[:min(len(block), count - start)])
    seconds = time.perf_counter() - started
    for path in folder.glob("floor_*.mrcs"):
        path.unlink()
    return seconds


def end_to_end(args: argparse.Namespace, home: Path) -> dict:
    paths = write_input(home / "raw", args.unique, args.stacks, args.box)
    result: dict = {}
    with Instance(home=home / "home") as inst:
        project = inst.create_project("Downsample bench", home / "projects")
        source = import_particles(project, paths, args.particles, args.unique, args.box)
        for half in (False, True):
            job = project.create_job("downsample_particles", params={
                "fourier_box": args.new_box, "float16": half, "stack_size": args.particles // args.stacks})
            job.connect("particles", source)
            with AnonPeak() as memory:
                started = time.perf_counter()
                job.execute()
                wall = time.perf_counter() - started
            if job.status != "completed":
                raise RuntimeError(f"{job.uid} {job.status}: {job.record.run.message}")
            size = sum(p.stat().st_size for p in job.directory.rglob("*.mrcs"))
            name = "float16" if half else "float32"
            result[f"job_{name}_s"] = round(wall, 2)
            result[f"job_{name}_particles_per_s"] = round(args.particles / wall)
            result[f"job_{name}_output_GB"] = round(size / 1e9, 2)
            result[f"job_{name}_peak_anon_MB"] = round(memory.peak_kb / 1024)
            result[f"job_{name}_anon_before_MB"] = round(memory.start_kb / 1024)
            for p in job.directory.rglob("*.mrcs"):  # keep the disk free for the next run
                p.unlink()
            per_stack = args.particles // args.stacks
            result[f"disk_floor_{name}_s"] = round(disk_floor(home, args.particles, args.new_box, per_stack, name), 2)
    result["peak_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def baseline(images: np.ndarray, m: int) -> np.ndarray:
    """The straightforward numpy way, one image at a time."""
    n = images.shape[-1]
    a = n // 2 - m // 2
    out = np.empty((len(images), m, m), np.float32)
    for i, image in enumerate(images):
        spectrum = np.fft.fftshift(np.fft.fft2(image))
        out[i] = np.fft.ifft2(np.fft.ifftshift(spectrum[a:a + m, a:a + m])).real * (m * m / (n * n))
    return out


def through_numpy() -> types.SimpleNamespace:
    """numpy.fft with scipy.fft's signature (no threads)."""
    def wrap(function):
        return lambda a, *args, workers=None, overwrite_x=False, **kw: function(a, *args, **kw)
    return types.SimpleNamespace(**{k: wrap(getattr(np.fft, k)) for k in ("rfft", "irfft", "fft", "ifft")})


def timed(function, images: np.ndarray, repeat: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = function(images)
        best = min(best, time.perf_counter() - started)
    return best, out


def core(args: argparse.Namespace) -> dict:
    images = np.random.default_rng(1).standard_normal((args.core, args.box, args.box), dtype=np.float32)
    m, threads = args.new_box, fourier.default_workers()
    base_s, base = timed(lambda x: baseline(x, m), images, 1)
    rows = {"numpy.fft baseline (per image, complex)": base_s}
    scipy_fft = fourier.sfft
    try:
        fourier.sfft = through_numpy()
        rows["ours, numpy.fft"], _ = timed(lambda x: fourier.fourier_resize(x, m, workers=1), images, 3)
    finally:
        fourier.sfft = scipy_fft
    rows["ours, scipy.fft 1 thread"], _ = timed(lambda x: fourier.fourier_resize(x, m, workers=1), images, 3)
    label = f"ours, scipy.fft {threads} threads"
    rows[label], ours = timed(lambda x: fourier.fourier_resize(x, m, workers=threads), images, 3)
    below = np.ones((m, m), bool)
    below[m // 2, :] = below[:, m // 2] = False
    a, b = np.fft.fft2(ours[:200])[:, below], np.fft.fft2(base[:200])[:, below]
    return {"core_images": args.core, "core_s": {k: round(v, 3) for k, v in rows.items()},
            "core_particles_per_s": {k: round(args.core / v) for k, v in rows.items()},
            "core_ratio_vs_baseline": {k: round(base_s / v, 2) for k, v in rows.items()},
            "ours_threads": threads, "max_rel_diff_below_nyquist": float(np.abs(a - b).max() / np.abs(b).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--particles", type=int, default=100_000)
    parser.add_argument("--unique", type=int, default=10_000, help="distinct images on disk (2.6 GB at 256²)")
    parser.add_argument("--stacks", type=int, default=10)
    parser.add_argument("--box", type=int, default=256)
    parser.add_argument("--new-box", type=int, default=128)
    parser.add_argument("--core", type=int, default=3000, help="images for the in-memory comparison")
    parser.add_argument("--dir", default=None, help="where the stacks go (default: the temporary folder)")
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-bench-downsample-", dir=args.dir) as tmp:
        result = end_to_end(args, Path(tmp))  # first, so the peak memory is the job's
    result.update(core(args))
    result.update(particles=args.particles, unique_images=args.unique, box=args.box, new_box=args.new_box,
                  machine=f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
                          f"Python {platform.python_version()}, numpy {np.__version__}")
    print(f"downsample {args.particles:,} particles {args.box} → {args.new_box} ({result['machine']})")
    print(f"(a) core, {args.core:,} images in memory{'':<12}{'s':>8}{'particles/s':>14}{'× baseline':>12}")
    for key, seconds in result["core_s"].items():
        print(f"  {key:<44}{seconds:>8.2f}{result['core_particles_per_s'][key]:>14,}"
              f"{result['core_ratio_vs_baseline'][key]:>12.2f}")
    print(f"  agreement below Nyquist (max relative difference of spectra): {result['max_rel_diff_below_nyquist']:.1e}")
    print(f"(b) end to end, {args.particles:,} particles ({args.unique:,} distinct images on disk)")
    for name in ("float32", "float16"):
        print(f"  job writing {name:<33}{result[f'job_{name}_s']:>8.2f}{result[f'job_{name}_particles_per_s']:>14,}"
              f"   ({result[f'job_{name}_output_GB']} GB written; peak anonymous memory "
              f"{result[f'job_{name}_peak_anon_MB']:,} MB, {result[f'job_{name}_anon_before_MB']:,} before)")
        floor = result[f"disk_floor_{name}_s"]
        print(f"  disk floor: the same {name} stacks, nothing computed{floor:>12.2f}"
              f"{round(args.particles / floor):>14,}")
    print(f"  peak resident set (counts the mapped output stack's pages): {result['peak_rss_MB']:,} MB")
    best = max(v for k, v in result["core_ratio_vs_baseline"].items() if k.startswith("ours, scipy"))
    print(f"  goal (core ≥ 2× the numpy.fft baseline): {'met' if best >= 2 else 'MISSED'} ({best:.1f}×)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "downsample.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
