"""``make demo``: from a phantom to a validated map, every step a queued job on the local lane.

Run ``python -m cryoweave.demo [--particles N] [--box PX] [--out DIR]``. On a fresh instance
(SQLite, under ``DIR/home``; default ``demo-output/``) it creates a project in ``DIR/projects`` and
queues:

=====  =========================  ================================================================
J1     Generate Phantom Volume    a molecule of Gaussian atoms (the ground truth)
J2     Simulate Data              N particles: random poses, CTF, shifts, noise at SNR 0.1
J3     Particle Sets Tool         the particles split at random into two halves
J4/J5  Homogeneous Reconstruction each split on its own
J6     Homogeneous Reconstruction every particle: half maps, FSC, resolution, sharpened map
J7     Validation (FSC)           J4's map against J5's map, wired with result overrides
J8     Export to RELION           J6's particles as a .star
=====  =========================  ================================================================

It waits for them (this process schedules the queue while no ``cryoweave scheduler`` runs), then
prints a table of the jobs (status, items, resolution, time) and where the FSC plot is. The project
directory can be attached to any other instance (``cryoweave project attach DIR/projects/...``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cryoweave.api import Instance
from cryoweave.model import JobStatus

console = Console(width=None if sys.stdout.isatty() else 120)
MARKER = ".cryoweave-demo"


def _resolution(job: Any) -> float | None:
    values = [e.data["resolution_A"] for e in job.events() if e.data and "resolution_A" in e.data]
    return float(values[-1]) if values else None


def _items(job: Any) -> str:
    counts = []
    for name, group in job.outputs.items():
        if group.versions:
            counts.append(f"{name} {len(job.load_output(name, slots=[])):,}")
    return ", ".join(counts) or "—"


def build(project: Any, particles: int, box: int, snr: float) -> dict[str, Any]:
    """Create and connect the jobs (building); nothing runs yet."""
    jobs: dict[str, Any] = {}
    jobs["phantom"] = project.create_job("generate_phantom", title="Ground truth", params={
        "box": box, "psize_A": 2.0 * 64 / box, "num_atoms": 3000, "num_chains": 6, "seed": 1})
    jobs["simulate"] = project.create_job("simulate_data", title="Particles with CTF and noise", params={
        "num_particles": particles, "snr": snr, "shift_max_px": 2.0, "seed": 2})
    jobs["simulate"].connect("volume", f"{jobs['phantom'].uid}.volume")
    jobs["split"] = project.create_job("particle_sets", title="Two random halves", params={
        "num_batches": 2, "randomize": True, "seed": 3})
    jobs["split"].connect("particles_A", f"{jobs['simulate'].uid}.particles")
    for k in (0, 1):
        job = project.create_job("homo_reconstruct", title=f"Reconstruct split {k}")
        job.connect("particles", f"{jobs['split'].uid}.split_{k}")
        jobs[f"split_{k}"] = job
    jobs["all"] = project.create_job("homo_reconstruct", title="Reconstruct all particles")
    jobs["all"].connect("particles", f"{jobs['simulate'].uid}.particles")
    first, second = jobs["split_0"].uid, jobs["split_1"].uid
    validate = project.create_job("validation_fsc", title="Split 0 against split 1")
    validate.connect("volume", f"{first}.volume")
    validate.connect_result("volume", 0, "map_half_A", f"{first}.volume.map")
    validate.connect_result("volume", 0, "map_half_B", f"{second}.volume.map")
    jobs["validate"] = validate
    jobs["export"] = project.create_job("export_relion", title="Final particles for RELION")
    jobs["export"].connect("particles", f"{jobs['all'].uid}.particles")
    return jobs


def run(out: Path, particles: int, box: int, snr: float) -> int:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise SystemExit(f"{out} exists and was not made by this demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()
    started = time.monotonic()
    console.print(f"[bold]cryoweave demo[/bold]: a phantom, {particles:,} simulated particles of {box} px, "
                  f"reconstructed and validated; instance in {out / 'home'}")
    with Instance(home=out / "home") as instance:
        project = instance.create_project("Demo: phantom to map", out / "projects")
        jobs = build(project, particles, box, snr)
        for job in jobs.values():
            job.queue()
        console.print(f"queued {len(jobs)} jobs on the local lane in {project.uid} ({project.directory})")
        for job in jobs.values():
            job.wait(timeout=1800)
            job.refresh()
            console.print(f"  {job.uid:<4} {job.title:<32} {job.status}")
        table = Table(title=f"Project {project.uid}: {project.title}", header_style="bold")
        for column in ("job", "type", "title", "status", "items", "resolution", "time"):
            table.add_column(column, justify="right" if column in ("resolution", "time") else "left")
        for job in jobs.values():
            times = job.refresh().record.status_times
            begun, ended = times.get(JobStatus.RUNNING), times.get(JobStatus.COMPLETED)
            seconds = (ended - begun).total_seconds() if begun and ended else None
            resolution = _resolution(job)
            table.add_row(job.uid, job.type, job.title, job.status, _items(job),
                          f"{resolution:.2f} Å" if resolution else "—",
                          f"{seconds:.1f} s" if seconds is not None else "—")
        console.print(table)
        failed = [job.uid for job in jobs.values() if job.status != "completed"]
        final = jobs["all"]
        plot = Path(project.directory) / final.uid / "images" / "fsc.png"
        star = Path(project.directory) / jobs["export"].uid / "particles.star"
        resolution = _resolution(final)
        if resolution:
            nyquist = 2 * 2.0 * 64 / box
            console.print(f"[bold]resolution {resolution:.2f} Å[/bold] (gold-standard FSC at 0.143 of "
                          f"{final.uid}; Nyquist {nyquist:.2f} Å); FSC plot: {plot}")
        console.print(f"RELION particles: {star}")
        console.print(f"attach the project elsewhere: cryoweave project attach {project.directory}")
        console.print(f"done in {time.monotonic() - started:.0f} s")
        if failed:
            console.print(f"[red]failed: {', '.join(failed)}[/red] (see cryoweave job log {project.uid} JOB)")
            return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=20_000, help="particles to simulate (default 20,000)")
    parser.add_argument("--box", type=int, default=64, help="box of the phantom and particles (even; default 64)")
    parser.add_argument("--snr", type=float, default=0.1, help="signal-to-noise ratio of the images (default 0.1)")
    parser.add_argument("--out", type=Path, default=Path("demo-output"),
                        help="folder of the instance and the project (a previous demo's output there is replaced)")
    args = parser.parse_args()
    if args.box < 16 or args.box % 2 or args.particles < 100 or not args.snr > 0:
        parser.error("--box must be even and at least 16, --particles at least 100, --snr above 0")
    raise SystemExit(run(args.out, args.particles, args.box, args.snr))


if __name__ == "__main__":
    main()
