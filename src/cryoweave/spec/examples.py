"""Realistic example tables built from the standard result types.

``particle_dataset`` makes what an extraction followed by a 3D refinement would output: particles
grouped by micrograph (as extraction writes them), CryoSPARC-style project-relative paths,
defocus per micrograph with per-particle variation, random poses and shifts, and half-set
splits. It is deterministic for a seed, so tests and benchmarks see the same data.

>>> d = particle_dataset(1000, micrographs=10, seed=1)
>>> len(d), len(d.split_by("location/micrograph_uid"))
(1000, 10)
"""

from __future__ import annotations

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.spec.results import result_fields

#: The 36 fields (plus uid) of the reference benchmark's particle table
#: (cryosparc-tools research notes §7): blob 6, ctf 17, alignments3D 6, location 7.
BENCHMARK_FIELDS: dict[str, tuple[str, ...]] = {
    "blob": ("path", "idx", "shape", "psize_A", "sign", "import_sig"),
    "ctf": ("type", "exp_group_id", "accel_kv", "cs_mm", "amp_contrast", "df1_A", "df2_A", "df_angle_rad",
            "phase_shift_rad", "scale", "scale_const", "shift_A", "tilt_A", "trefoil_A", "tetra_A",
            "anisomag", "bfactor"),
    "alignments3D": ("split", "shift", "pose", "psize_A", "error", "class"),
    "location": ("micrograph_uid", "exp_group_id", "micrograph_path", "micrograph_shape", "center_x_frac",
                 "center_y_frac", "min_dist_A"),
}


def particle_fields(results: dict[str, tuple[str, ...]] | None = None) -> list[tuple]:
    """Field tuples for the given ``{result: field names}`` (default: the benchmark's 36)."""
    chosen = BENCHMARK_FIELDS if results is None else results
    fields = []
    for slot, names in chosen.items():
        known = {f[0].split("/", 1)[1]: f for f in result_fields(slot)}
        fields += [known[name] for name in names]
    return fields


def particle_dataset(n: int, *, micrographs: int = 1000, seed: int = 0, box: int = 256,
                     psize_A: float = 1.1, shuffle: bool = False) -> Dataset:
    """A particle table of ``n`` rows spread over ``micrographs`` micrographs.

    ``shuffle=True`` randomises the row order (particles no longer grouped by micrograph).
    """
    rng = np.random.default_rng(seed)
    micrographs = max(1, min(micrographs, n)) if n else 1
    mic_uids = rng.integers(1, 2**64, micrographs, dtype=np.uint64)
    stamp = rng.integers(10**15, 10**16, micrographs)
    stems = [f"FoilHole_{3_000_000 + 7 * i}_Data_{2_000_000 + 13 * i}_{i % 9}_20240612_{i % 24:02d}3000"
             f"_fractions" for i in range(micrographs)]
    mic_paths = np.array([f"J3/motioncorrected/{s}_{t}_patch_aligned_doseweighted.mrc"
                          for s, t in zip(stems, stamp)], dtype=object)
    blob_paths = np.array([f"J12/extract/{t}_{s}_patch_aligned_doseweighted_particles.mrc"
                           for s, t in zip(stems, stamp)], dtype=object)
    # Particles per micrograph vary like real picks do; rows are grouped by micrograph.
    mic = np.sort(rng.integers(0, micrographs, n))
    if shuffle:
        rng.shuffle(mic)
    idx_in_mic = np.zeros(n, dtype=np.uint32)
    order = np.argsort(mic, kind="stable")
    counts = np.bincount(mic, minlength=micrographs)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    idx_in_mic[order] = np.arange(n) - np.repeat(starts, counts)

    d = Dataset.allocate(n, particle_fields())
    d["uid"] = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    d["blob/path"] = blob_paths[mic]
    d["blob/idx"] = idx_in_mic
    d["blob/shape"] = box
    d["blob/psize_A"] = psize_A
    d["blob/sign"] = -1.0
    defocus = rng.uniform(8_000, 28_000, micrographs)[mic] + rng.normal(0, 150, n)
    astig = rng.gamma(2.0, 150.0, micrographs)[mic]
    d["ctf/type"] = "spline"
    d["ctf/exp_group_id"] = 1
    d["ctf/accel_kv"] = 300.0
    d["ctf/cs_mm"] = 2.7
    d["ctf/amp_contrast"] = 0.1
    d["ctf/df1_A"] = defocus + astig / 2
    d["ctf/df2_A"] = defocus - astig / 2
    d["ctf/df_angle_rad"] = rng.uniform(0, np.pi, micrographs)[mic]
    d["ctf/scale"] = 1.0
    d["ctf/anisomag"] = np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32)
    d["alignments3D/split"] = rng.integers(0, 2, n)
    d["alignments3D/shift"] = rng.normal(0, 2.5, (n, 2))
    d["alignments3D/pose"] = _uniform_rotvecs(rng, n)
    d["alignments3D/psize_A"] = psize_A
    d["alignments3D/error"] = rng.normal(1.2e4, 800.0, n)
    d["location/micrograph_uid"] = mic_uids[mic]
    d["location/exp_group_id"] = 1
    d["location/micrograph_path"] = mic_paths[mic]
    d["location/micrograph_shape"] = (4092, 5760)
    d["location/center_x_frac"] = rng.uniform(0.02, 0.98, n)
    d["location/center_y_frac"] = rng.uniform(0.02, 0.98, n)
    d["location/min_dist_A"] = 150.0
    return d


def _uniform_rotvecs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Axis-angle vectors of rotations drawn uniformly on SO(3) (via random unit quaternions)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1  # w >= 0 gives angles in [0, pi]
    angle = 2 * np.arccos(np.clip(q[:, 0], -1, 1))
    s = np.sqrt(np.maximum(1 - q[:, 0] ** 2, 1e-12))
    return (q[:, 1:] / s[:, None]) * angle[:, None]
