"""A lab's own job types: the fake plugin the CLI tests install.

``tests/labjobs`` is put on ``PYTHONPATH``; ``labjobs-1.0.dist-info/entry_points.txt`` declares
these in the ``cryoweave.jobs`` group, as ``pip install`` of a real package would.

The runnable types are objects with a ``spec`` (declared as data) and a ``run(ctx)`` that works
only through the job's context: ``lab_import_particles`` makes (or reads) particles with blob and
CTF, ``subset_particles`` keeps some of its input's particles, ``join_particles`` appends its
inputs. ``lab_import_micrographs`` is declared as data only: it has no run function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cryoweave import Dataset
from cryoweave.errors import ParamError
from cryoweave.spec import result_fields


class LabJob:
    """A job type: its spec (a dict, as a plugin declares it) and the function that runs it."""

    def __init__(self, spec: dict[str, Any], run: Callable[[Any], None]):
        self.spec, self.run = spec, run


# ------------------------------------------------------------------------------------------ import
def _synthetic(n: int, seed: int, psize_A: float, voltage_kv: int) -> Dataset:
    """``n`` particles with complete blob and ctf results, the same for the same seed."""
    rng = np.random.default_rng(seed)
    uids = np.unique(rng.integers(1, 2**63, size=2 * n + 16, dtype=np.uint64))
    uids = rng.permutation(uids)[:n]
    data = Dataset.allocate(n, [*result_fields("blob"), *result_fields("ctf")])
    data["uid"] = uids
    index = np.arange(n)
    data["blob/path"] = np.array([f"stacks/batch_{i // 100:03d}.mrcs" for i in index], dtype=object)
    data["blob/idx"] = index % 100
    data["blob/shape"] = 64
    data["blob/psize_A"] = psize_A
    data["blob/sign"] = -1.0
    data["blob/import_sig"] = seed + 1
    data["ctf/type"] = np.array(["spline"] * n, dtype=object)
    data["ctf/accel_kv"] = voltage_kv
    data["ctf/cs_mm"] = 2.7
    data["ctf/amp_contrast"] = 0.1
    df1 = rng.uniform(10_000, 25_000, n).astype(np.float32)
    data["ctf/df1_A"] = df1
    data["ctf/df2_A"] = df1 - rng.uniform(0, 500, n).astype(np.float32)
    data["ctf/df_angle_rad"] = rng.uniform(0, np.pi, n).astype(np.float32)
    data["ctf/scale"] = 1.0
    data["ctf/scale_const"] = 1.0
    data["ctf/anisomag"] = [1.0, 0.0, 0.0, 1.0]
    return data


def _read_source(path: str) -> Dataset:
    data = Dataset.load(path)
    if not {"blob", "ctf"} & set(data.prefixes()):
        raise ParamError(f"source_path {path}: the file has no blob or ctf fields (fields: "
                         f"{', '.join(data.fields())})")
    return data.filter_prefixes(["blob", "ctf"])


def run_import_particles(ctx) -> None:
    """Read particles from ``source_path`` (a .cs file) or make ``num_particles`` synthetic ones; save them
    ``iterations`` times, as an iterative job saves versions, the defocus refined a little each time."""
    p = ctx.params
    if p["source_path"]:
        data = _read_source(p["source_path"])
        ctx.log(f"read {len(data):,} particles from {p['source_path']}")
    else:
        data = _synthetic(p["num_particles"], p["seed"], p["psize_A"], p["voltage_kv"])
        ctx.log(f"made {len(data):,} synthetic particles (seed {p['seed']})")
    for iteration in range(p["iterations"]):
        if iteration and "ctf/df1_A" in data:
            data["ctf/df1_A"] = data["ctf/df1_A"] + np.float32(10)
        ctx.save_output("particles", data)


LAB_IMPORT_PARTICLES = LabJob({
    "type": "lab_import_particles",
    "title": "Import particles",
    "description": "Import particle stacks with their CTF.",
    "category": "import",
    "outputs": [{"name": "particles", "type": "particle", "slots": ["blob", "ctf"]}],
    "params": [
        {"name": "psize_A", "type": "number", "default": 1.0, "minimum": 0.1, "maximum": 20,
         "help": "Pixel size in Å"},
        {"name": "voltage_kv", "type": "integer", "default": 300, "help": "Accelerating voltage in kV"},
        {"name": "phase_plate", "type": "boolean", "default": False, "help": "Data taken with a phase plate"},
        {"name": "stack_path", "type": "path", "help": "Particle stacks (.mrcs), a glob"},
        {"name": "source_path", "type": "path", "help": "A .cs file to import (default: synthetic particles)"},
        {"name": "num_particles", "type": "integer", "default": 100, "minimum": 1,
         "help": "How many synthetic particles to make"},
        {"name": "seed", "type": "integer", "default": 0, "help": "Seed of the synthetic particles"},
        {"name": "iterations", "type": "integer", "default": 1, "minimum": 1, "maximum": 100,
         "help": "How many versions of the output to save (0, 1, ...; the defocus grows 10 Å each)"},
    ],
}, run_import_particles)

LAB_IMPORT_MICROGRAPHS = {  # declared as data only: a job of this type cannot run
    "type": "lab_import_micrographs",
    "title": "Import micrographs",
    "category": "import",
    "outputs": [{"name": "micrographs", "type": "exposure", "slots": ["micrograph_blob"]}],
    "params": [{"name": "psize_A", "type": "number", "default": 1.0, "help": "Pixel size in Å"}],
}


# ------------------------------------------------------------------------------------------ curation
def run_subset_particles(ctx) -> None:
    """Keep ``fraction`` of the input's particles (the first ones, or chosen at random); save their uids only:
    every result of the input passes through."""
    p = ctx.params
    uids = ctx.load_input("particles", slots=[])["uid"]
    keep = round(p["fraction"] * len(uids))
    if p["order"] == "first":
        chosen = uids[:keep]
    else:
        rng = np.random.default_rng(p["seed"])
        chosen = uids[np.sort(rng.choice(len(uids), size=keep, replace=False))]
    ctx.log(f"kept {keep:,} of {len(uids):,} particles ({p['order']})")
    ctx.save_output("particles", Dataset({"uid": chosen}))


SUBSET_PARTICLES = LabJob({
    "type": "subset_particles",
    "title": "Subset particles",
    "category": "particle curation",
    "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf"], "count_min": 1,
                "count_max": 1}],
    "outputs": [{"name": "particles", "type": "particle", "slots": [], "passthrough": "particles"}],
    "params": [
        {"name": "fraction", "type": "number", "default": 0.5, "minimum": 0, "maximum": 1,
         "help": "Fraction of the particles to keep"},
        {"name": "order", "type": "enum", "choices": ["random", "first"], "default": "random",
         "help": "Which particles to keep"},
        {"name": "seed", "type": "integer", "help": "Random seed (default: a new one each run)"},
    ],
}, run_subset_particles)


def run_join_particles(ctx) -> None:
    """Append the connected groups; every result they share passes through."""
    ctx.save_output("particles", Dataset({"uid": ctx.load_input("particles", slots=[])["uid"]}))


JOIN_PARTICLES = LabJob({
    "type": "join_particles",
    "title": "Join particles",
    "category": "particle curation",
    "inputs": [{"name": "particles", "type": "particle", "slots": ["blob"], "count_min": 1, "count_max": None}],
    "outputs": [{"name": "particles", "type": "particle", "slots": [], "passthrough": "particles"}],
}, run_join_particles)

BAD_SPEC = {  # an enum without choices: reported as broken, the others still load
    "type": "bad_spec",
    "title": "Bad spec",
    "params": [{"name": "mode", "type": "enum"}],
}
