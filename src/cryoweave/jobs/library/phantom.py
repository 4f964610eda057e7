"""Generate Phantom Volume (``generate_phantom``): a synthetic molecule, the ground truth of Simulate Data.

A molecule-like map: ``num_atoms`` Gaussian "atoms" (σ = ``atom_sigma_A``) along ``num_chains`` random-walk
chains per asymmetric unit (step 3.8 Å, the Cα–Cα distance; each step turns from the last by a random angle,
and steps that would leave the sphere of radius ``0.35 · box · psize`` are turned back towards its centre).
With a ``symmetry`` group the atoms of one asymmetric unit (``num_atoms / order``) are replicated by
:func:`cryoweave.formats.symmetry.operators`, so the map has ``V(S·p) = V(p)`` (about the box centre, voxel
``box // 2``). The map is the sum of the atoms sampled on the grid (each over ±4σ), scaled to a maximum of 1;
the same parameters and ``seed`` give the same map. Output ``volume`` (slot ``map``, ``J<n>/J<n>_map.mrc``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from cryoweave.errors import ParamError
from cryoweave.formats import symmetry
from cryoweave.jobs.library.common import LibraryJob, count_param, param, positive
from cryoweave.jobs.library.maps import save_map

CA_STEP_A = 3.8
"""Distance between consecutive atoms of a chain (Å): the Cα–Cα distance of a protein."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def phantom_atoms(num_atoms: int, num_chains: int, radius_A: float, sym: str | None, seed: int) -> np.ndarray:
    """Atom centres ``(num_atoms rounded down to the group's order, 3)`` in Å about the centre (x, y, z)."""
    ops = symmetry.operators(sym) if sym else np.eye(3)[None]
    per_unit = num_atoms // len(ops)
    if per_unit < 1:
        raise ParamError(f"{num_atoms} atoms cannot fill the {len(ops)} asymmetric units of {sym}")
    chains = max(1, min(num_chains, per_unit))
    rng = np.random.default_rng(seed)
    atoms = np.empty((per_unit, 3))
    bounds = np.linspace(0, per_unit, chains + 1).astype(int)
    for begin, end in itertools.pairwise(bounds):
        point = _unit(rng.normal(size=3)) * radius_A * 0.8 * rng.uniform() ** (1 / 3)
        direction = _unit(rng.normal(size=3))
        for i in range(begin, end):
            atoms[i] = point
            for _ in range(20):  # a random turn; steps that would leave the sphere turn towards its centre
                trial = _unit(direction + 0.9 * rng.normal(size=3))
                if np.linalg.norm(point + CA_STEP_A * trial) <= radius_A:
                    break
                direction = _unit(direction - 0.5 * _unit(point))
            else:
                trial = -_unit(point)
            direction, point = trial, point + CA_STEP_A * trial
    return np.concatenate([atoms @ op.T for op in ops])


def render_atoms(atoms_A: np.ndarray, box: int, psize_A: float, sigma_A: float) -> np.ndarray:
    """The sum of isotropic Gaussians (peak 1) at ``atoms_A`` (Å about voxel ``box // 2``), ``(box,)*3`` float32."""
    reach = max(1, math.ceil(4 * sigma_A / psize_A))
    offsets = np.arange(-reach, reach + 1)
    out = np.zeros(box ** 3, np.float64)
    for batch in np.array_split(atoms_A, max(1, len(atoms_A) // 2048)):
        pos = batch / psize_A + box // 2  # voxel coordinates x, y, z
        near = np.round(pos).astype(np.int64)
        idx = near[:, :, None] + offsets  # (a, 3, w)
        prof = np.exp(-((idx - pos[:, :, None]) * psize_A) ** 2 / (2 * sigma_A ** 2))
        prof[(idx < 0) | (idx >= box)] = 0.0
        idx = np.clip(idx, 0, box - 1)
        values = prof[:, 2, :, None, None] * prof[:, 1, None, :, None] * prof[:, 0, None, None, :]
        flat = (idx[:, 2, :, None, None] * box + idx[:, 1, None, :, None]) * box + idx[:, 0, None, None, :]
        out += np.bincount(flat.ravel(), values.ravel(), minlength=box ** 3)
    return out.reshape((box,) * 3).astype(np.float32)


def phantom(box: int, psize_A: float, num_atoms: int = 2000, num_chains: int = 4, sym: str | None = None,
            seed: int = 0, sigma_A: float = 1.5) -> np.ndarray:
    """A phantom map (see the module's docstring), maximum 1."""
    atoms = phantom_atoms(num_atoms, num_chains, 0.35 * box * psize_A, sym, seed)
    volume = render_atoms(atoms, box, psize_A, sigma_A)
    return volume / volume.max()



def _generate_phantom(ctx: Any) -> None:
    params = ctx.params
    box = count_param(params, "box", 8)
    if box % 2:
        raise ParamError(f"the box must be even, not {box}")
    psize = positive(params, "psize_A", "the pixel size in Å")
    sigma = positive(params, "atom_sigma_A", "the atoms' Gaussian σ in Å")
    sym = params.get("symmetry") or None
    volume = phantom(box, psize, count_param(params, "num_atoms"), count_param(params, "num_chains"), sym,
                     int(params.get("seed") or 0), sigma)
    ctx.log(f"phantom: {box}³ px at {psize:g} Å/px, {params['num_atoms']:,} atoms on {params['num_chains']} chains"
            + (f" per asymmetric unit of {symmetry.canonical(sym)}" if sym else ""))
    save_map(ctx, "volume", "map", volume, psize)


PHANTOM = {
    "type": "generate_phantom",
    "title": "Generate Phantom Volume",
    "description": "A synthetic molecule: Gaussian atoms along random-walk chains, optionally with point-group "
                   "symmetry, at a chosen box and pixel size; the same seed gives the same map.",
    "category": "utilities",
    "inputs": [],
    "outputs": [{"name": "volume", "type": "volume", "title": "Phantom volume", "slots": ["map"]}],
    "params": [
        param("box", "integer", "Box size of the map (px, even)", default=64, minimum=8),
        param("psize_A", "number", "Pixel size (Å)", default=2.0),
        param("num_atoms", "integer", "Number of atoms in the whole map (rounded down to a multiple of the "
              "symmetry's order)", default=2000, minimum=1),
        param("num_chains", "integer", "Chains per asymmetric unit", default=4, minimum=1),
        param("atom_sigma_A", "number", "Each atom's Gaussian σ (Å)", default=1.5),
        param("symmetry", "string", "Point group of the phantom (C<n>, D<n>, T, O, I), RELION's orientation; "
              "empty for none"),
        param("seed", "integer", "Random seed", default=0),
    ],
    "resources": {"cpu": 1, "ram_gb": 1.0},
}



JOBS = [LibraryJob(PHANTOM, _generate_phantom)]
