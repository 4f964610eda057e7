"""The dataset demo: a million particles written, loaded, joined, summarised and exported.

Run ``python -m cryoweave.demo_dataset [--particles N] [--out DIR]``. It writes, under ``DIR``
(default ``dataset-demo/``), an output group the way a refinement job does — new results in
``J12_particles.cs``, passthrough results in ``J12_passthrough_particles.cs``, both named by
``J12_particles.csg`` — loads the group back through the ``.csg`` (an inner join on ``uid``),
summarises it per micrograph, selects the best particles and exports that subset as a ``.cs``
with its ``.csg`` (ready for Import Result Group) and as a RELION ``.star``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from cryoweave.dataset import CSDAT_FORMAT, Dataset
from cryoweave.display import human_size
from cryoweave.formats.csg import CsgResult, ResultGroupFile, load_csg, write_csg
from cryoweave.formats.star import write_star
from cryoweave.spec.examples import particle_dataset

console = Console(width=None if sys.stdout.isatty() else 120)


class Step:
    """Times one step and prints it."""

    def __init__(self, text: str):
        self.text = text

    def __enter__(self) -> Step:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            console.print(f"  {self.text:<58} [cyan]{time.perf_counter() - self.start:6.2f} s[/cyan]")


def write_job_output(dset: Dataset, job_dir: Path) -> Path:
    """Save a particle group as job J12 would: new results, passthroughs, and the .csg naming them."""
    main = dset.filter_prefixes(["blob", "alignments3D"], copy=True)
    passthrough = dset.filter_prefixes(["ctf", "location"], copy=True)
    main.save(job_dir / "J12_particles.cs")
    passthrough.save(job_dir / "J12_passthrough_particles.cs", format=CSDAT_FORMAT)
    files = {"blob": "J12_particles.cs", "alignments3D": "J12_particles.cs",
             "ctf": "J12_passthrough_particles.cs", "location": "J12_passthrough_particles.cs"}
    group = ResultGroupFile(
        name="particles", type="particle", title="Refined particles",
        description="Particles with 3D alignments from a homogeneous refinement",
        results={slot: CsgResult(f">{file}", len(dset), f"particle.{slot}") for slot, file in files.items()})
    write_csg(group, job_dir / "J12_particles.csg")
    return job_dir / "J12_particles.csg"


def summarise(dset: Dataset) -> Table:
    per_mic = dset.split_by("location/micrograph_uid")
    counts = np.array([len(d) for d in per_mic.values()])
    defocus_um = (dset["ctf/df1_A"] + dset["ctf/df2_A"]) / 2e4
    halves = np.bincount(dset["alignments3D/split"], minlength=2)
    table = Table(title="Particle set", box=None, show_header=False)
    table.add_row("particles", f"{len(dset):,}")
    table.add_row("micrographs", f"{len(per_mic):,}")
    table.add_row("particles per micrograph",
                  f"{counts.min()} – {counts.max()} (median {np.median(counts):.0f})")
    table.add_row("defocus (µm)", f"{defocus_um.min():.2f} – {defocus_um.max():.2f} "
                                   f"(mean {defocus_um.mean():.2f})")
    table.add_row("half sets A / B", f"{halves[0]:,} / {halves[1]:,}")
    table.add_row("box / pixel size", f"{dset['blob/shape'][0][0]} px / {dset['blob/psize_A'][0]:.2f} Å")
    table.add_row("fields", f"{len(dset.fields())} in {len(dset.prefixes())} results: "
                            f"{', '.join(dset.prefixes())}")
    return table


def run(n: int, out: Path) -> None:
    marker = out / ".cryoweave-demo"
    if out.exists() and any(out.iterdir()):
        if not marker.exists():
            raise SystemExit(f"{out} exists and was not made by this demo; choose another --out")
        shutil.rmtree(out)
    job_dir, export_dir = out / "J12", out / "exports" / "groups" / "P1_J12_particles_best"
    job_dir.mkdir(parents=True)
    export_dir.mkdir(parents=True)
    marker.touch()
    console.print(f"[bold]cryoweave dataset demo[/bold]: {n:,} particles in {out}/")
    with Step(f"simulate {n:,} particles on {min(1000, n):,} micrographs"):
        particles = particle_dataset(n, micrographs=min(1000, n), seed=0)
    with Step("write J12 output group (numpy .cs + CSDAT passthrough + .csg)"):
        csg = write_job_output(particles, job_dir)
    with Step("load the group through its .csg (join on uid)"):
        loaded = load_csg(csg)
    assert loaded.is_equivalent(particles), "the joined group must equal what was written"
    with Step("summarise (split by micrograph, defocus, half sets)"):
        table = summarise(loaded)
    console.print(table)
    with Step("select: defocus < 2.5 µm and pose error below the median"):
        error = loaded["alignments3D/error"]
        best = loaded.mask((loaded["ctf/df1_A"] < 25_000) & (error < np.median(error)))
    with Step(f"export {len(best):,} particles as .cs + .csg (Import Result Group)"):
        best.save(export_dir / "P1_J12_particles_best_exported.cs")
        write_csg(ResultGroupFile(
            name="particles", type="particle", title="Best particles",
            results={p: CsgResult(">P1_J12_particles_best_exported.cs", len(best), f"particle.{p}")
                     for p in best.prefixes()}), export_dir / "P1_J12_particles_best_exported.csg")
    with Step("export the same particles as a RELION 3.1 .star"):
        write_star(best, export_dir / "P1_J12_particles_best.star")
    files = Table(box=None, header_style="bold")
    files.add_column("file", no_wrap=True)
    files.add_column("size", justify="right")
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p != marker):
        files.add_row(str(path.relative_to(out)), human_size(path.stat().st_size))
    console.print(files)
    console.print(f"Inspect them with: [bold]cryoweave dataset info {csg}[/bold]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1_000_000,
                        help="number of particles (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=Path("dataset-demo"),
                        help="output folder (a previous demo's output there is replaced)")
    args = parser.parse_args()
    run(args.particles, args.out)


if __name__ == "__main__":
    main()
