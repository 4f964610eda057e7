"""Example job types (see docs/projects.md, "Jobs", and docs/builder.md).

Each entry point in ``pyproject.toml`` names a job type: a spec (plain data that cryoweave checks
when it loads the ``cryoweave.jobs`` group) and, for a job that can run, a ``run(ctx)`` function.
A job reads its inputs and saves its outputs only through ``ctx``.
"""

from types import SimpleNamespace

import numpy as np

LAB_IMPORT_PARTICLES = {
    "type": "lab_import_particles",
    "title": "Import particles",
    "description": "Import particle stacks with their CTF parameters.",
    "category": "import",
    "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
    "params": [
        {"name": "metadata_path", "type": "path", "help": "A .cs file with the particles' blob and ctf fields"},
        {"name": "psize_A", "type": "number", "default": 1.0, "minimum": 0.1, "maximum": 20,
         "help": "Pixel size in Å"},
        {"name": "voltage_kv", "type": "integer", "default": 300, "help": "Accelerating voltage in kV"},
    ],
}

def _import_particles(ctx):
    """Bring in particles from a ``.cs`` file that holds their blob and ctf, keeping their uids."""
    from cryoweave import Dataset

    particles = Dataset.load(ctx.params["metadata_path"], prefixes=["blob", "ctf"])
    ctx.log(f"read {len(particles):,} particles from {ctx.params['metadata_path']}")
    ctx.save_output("particles", particles)


def _subset_particles(ctx):
    """Keep a fraction of the input's items; only their uids are written, the rest passes through."""
    particles = ctx.load_input("particles", slots=[])
    keep = round(len(particles) * ctx.params["fraction"])
    rng = np.random.default_rng(ctx.params["seed"])
    chosen = np.sort(rng.choice(len(particles), size=keep, replace=False))
    ctx.log(f"kept {keep:,} of {len(particles):,} particles")
    ctx.save_output("particles", particles.take(chosen))


SUBSET_PARTICLES = {
    "type": "subset_particles",
    "title": "Subset particles",
    "description": "Keep a fraction of the particles; every other result passes through.",
    "category": "particle curation",
    "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"], "count_min": 1,
                "count_max": 1}],
    "outputs": [{"name": "particles", "type": "particle", "slots": [], "passthrough": "particles"}],
    "params": [
        {"name": "fraction", "type": "number", "default": 0.5, "minimum": 0, "maximum": 1,
         "help": "Fraction of the particles to keep"},
        {"name": "seed", "type": "integer", "help": "Random seed (default: a new one each run)"},
    ],
}

LAB_IMPORT_PARTICLES_JOB = SimpleNamespace(spec=LAB_IMPORT_PARTICLES, run=_import_particles)
SUBSET_PARTICLES_JOB = SimpleNamespace(spec=SUBSET_PARTICLES, run=_subset_particles)
