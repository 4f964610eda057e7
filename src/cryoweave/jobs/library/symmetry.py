"""Symmetry Expansion (``sym_expand``): N copies of each particle, one per symmetry operator.

The copies are new items (new uids) that share the original's image; each carries every result
of its original (blob, ctf, location …, copied) with ``alignments3D/pose`` composed with one
operator and a ``sym_expand`` result that names the original (``src_uid``) and the operator
(``idx``). New items cannot pass results through by uid, so the job saves all of them.

Pose convention
---------------
A CryoSPARC pose ``w`` (rotation vector) has the matrix ``R = rotvec_to_matrix(w)``
(:mod:`cryoweave.formats.geometry`), which takes a point ``q = (x, y, z)`` of the particle's view
(x, y in the image, z along the beam) to the point ``p = R·q`` of the map's frame. The image is
the projection ``image(x, y) = ∫ V(R·(x, y, z)) dz``; in Fourier space, the central slice of the
map's transform at ``R·(kx, ky, 0)``. This is how the two community readers of CryoSPARC poses
project them: pyem converts ``R`` to RELION's ``A = Rᵀ`` and samples the map at ``Aᵀ·(kx, ky, 0)``
(RELION's projector, where ``view = A·map``), and cryoDRGN's ``parse_pose_csparc`` transposes
``expmap(w)`` and rotates its lattice as rows (``coords · Rᵀ``, i.e. ``R·q``). (So ``R`` maps the
view to the map; its transpose maps the map's frame to the view.)

A map with point-group symmetry ``G`` has ``V(S·p) = V(p)`` for every operator ``S`` of ``G``
(:func:`cryoweave.formats.symmetry.operators`), hence also for ``S⁻¹ = Sᵀ``. Copy ``k`` gets

    ``R_k = S_kᵀ · R``   (that is ``S_k⁻¹·R``; in RELION's terms ``A_k = A·S_k``, the operator on the
    right of RELION's matrix as in relion_particle_symmetry_expand)

because then ``V(R_k·q) = V(S_k⁻¹·R·q) = V(R·q)`` for every ``q``: projecting the symmetric map
with ``R_k`` gives exactly the image that ``R`` gives, so every copy is the same image read as a
symmetry-related view. Composing on the other side (``R·S_k``) would not: it rotates the view
frame, changing the projection (unless ``S_k`` turns about the beam). Under ``R_k`` the map's
point ``p`` is seen where ``R`` showed ``S_k·p``, so copy k brings the particle's k-th symmetry
mate (the subunit at ``S_k·p``) onto the reference subunit at ``p``: a mask around one subunit of
the map then selects, over the copies, every subunit of every particle. (``S_k·R`` makes the same
set of copies, numbered the other way round.) Shifts are unchanged: the symmetry axes pass
through the map's centre, which the shift already places on the image centre.

Items are ordered by operator, then by input order: copy k of input particle i is row
``k·M + i`` for M particles. Only ``alignments3D`` is rotated (``alignments_class_*`` and other
pose results are copied as they are). Input particles that were expanded before get a new
``sym_expand`` (the old one is dropped, with a warning). Helical symmetry is not supported
(``is_helix`` is 0, the helical fields 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import CryoweaveError, DataError, ParamError
from cryoweave.formats import symmetry
from cryoweave.formats.geometry import matrix_to_rotvec, rotvec_to_matrix
from cryoweave.jobs.library.common import LibraryJob, listing, param
from cryoweave.spec import infer_result_dtype, result_fields

SPLIT_PREFIX = "particles_expanded_"
"""Outputs of the split option: ``particles_expanded_<k>`` holds the copies made by operator k."""

SPEC: dict[str, Any] = {
    "type": "sym_expand",
    "title": "Symmetry Expansion",
    "description": "Duplicate each particle once per operator of a point group, with its 3D pose rotated "
                   "into the symmetry-related view; the copies get new uids and share the original image. "
                   "Follow with local refinement, 3D classification or 3D variability, not a global search.",
    "category": "utilities",
    "inputs": [{"name": "particles", "type": "particle", "title": "Particles",
                "slots": ["alignments3D", "?blob", "?ctf"], "count_min": 1, "count_max": 1}],
    "outputs": [{"name": "particles", "type": "particle", "title": "Expanded particles",
                 "slots": ["alignments3D", "sym_expand"]}],
    "run_outputs": f"{SPLIT_PREFIX}0 … {SPLIT_PREFIX}<N-1> (the copies of each operator) when sym_split_outputs "
                   "is set, declared as the parameters are set",
    "params": [
        param("sym_symmetry", "string", "Point group: C<n>, D<n>, T, O or I (I2, RELION's orientation; I1 is "
              "I turned 90° about z); C_n about z, D_n with a 2-fold along x.", title="Symmetry group"),
        param("sym_split_outputs", "boolean", "Also save the copies of each operator k as an output of its own, "
              f"{SPLIT_PREFIX}<k>.", default=False, title="Split outputs by symmetry operator"),
    ],
}


def expand_poses(poses: np.ndarray, operators: np.ndarray) -> np.ndarray:
    """The rotation vectors ``(N, M, 3)`` of ``S_kᵀ · R_i`` for poses ``(M, 3)`` and operators ``(N, 3, 3)``
    (operator-major: ``[k, i]`` is copy k of particle i; see the module's docstring).

    >>> quarter = symmetry.operators("C4")[1]                     # 90° about z
    >>> (expand_poses(np.zeros((1, 3)), quarter[None]).round(6) + 0.0).tolist()
    [[[0.0, 0.0, -1.570796]]]
    """
    matrices = rotvec_to_matrix(np.asarray(poses, dtype=np.float64))
    return matrix_to_rotvec(np.einsum("nji,mjk->nmik", operators, matrices))


def expand(particles: Dataset, symbol: str) -> Dataset:
    """Every copy of every particle: new uids, all results copied, poses composed, ``sym_expand`` set."""
    ops = symmetry.operators(symbol)
    count, n = len(particles), len(ops)
    rows = np.tile(np.arange(count), n)
    out = particles.take(rows)
    out["uid"] = _unique_uids(count * n)
    out["alignments3D/pose"] = expand_poses(particles["alignments3D/pose"], ops).reshape(-1, 3)
    out.add_fields(result_fields("sym_expand"))
    out["sym_expand/src_uid"] = particles["uid"][rows]
    out["sym_expand/idx"] = np.repeat(np.arange(n, dtype=np.uint32), count)
    out["sym_expand/symmetry"] = symmetry.canonical(symbol)
    return out


def _unique_uids(n: int) -> np.ndarray:
    uids = generate_uids(n)
    while len(np.unique(uids)) < n:  # 64 random bits: practically never
        uids = generate_uids(n)
    return uids


def _savable(ctx: Any, particles: Dataset) -> Dataset:
    """The input without results whose type cannot be told from their name (a plugin's own), which a
    job making new items cannot save, and without an earlier expansion's ``sym_expand``."""
    unknown = []
    for prefix in particles.prefixes():
        try:
            infer_result_dtype(prefix)
        except CryoweaveError:
            unknown.append(prefix)
    if unknown:
        ctx.warning(f"results {listing(unknown)} are left out of the copies: their type cannot be told from "
                    "their name")
    if "sym_expand" in particles.prefixes():
        ctx.warning("the particles were expanded before; their sym_expand result is replaced by this expansion's "
                    "(src_uid names the input particles)")
        unknown.append("sym_expand")
    return particles.drop_fields(lambda f: f.split("/", 1)[0] in unknown) if unknown else particles


def _run(ctx: Any) -> None:
    params = ctx.params
    symbol = params.get("sym_symmetry")
    if not symbol:
        raise ParamError("parameter 'sym_symmetry' (the point group) is not set; e.g. C4, D7, T, O or I")
    ops = symmetry.operators(symbol)  # a bad symbol fails here, before anything is read
    name = symmetry.canonical(symbol)
    particles = ctx.load_input("particles")
    if "alignments3D/pose" not in particles:
        have = ", ".join(particles.prefixes()) or "no results"
        raise DataError(f"input 'particles' has no alignments3D (3D poses), which symmetry expansion rotates; it "
                        f"holds {have}. Connect particles from a 3D refinement")
    poses = np.asarray(particles["alignments3D/pose"], dtype=np.float64)
    bad = ~np.isfinite(poses).all(axis=1)
    if bad.any():
        raise DataError(f"{int(bad.sum()):,} input particles have a pose that is not a number (e.g. uid "
                        f"{int(particles['uid'][bad][0])}); remove them first")
    expanded = expand(_savable(ctx, particles), name)
    ctx.log(f"{len(particles):,} particles expanded by {name} ({len(ops)} operators) into {len(expanded):,} copies")
    split = bool(params.get("sym_split_outputs"))
    if split:
        slots = list(expanded.prefixes())
        for k in range(len(ops)):
            ctx.add_output(f"{SPLIT_PREFIX}{k}", "particle", slots=slots, title=f"Particles expanded by operator {k}")
    ctx.save_output("particles", expanded)
    if split:
        count = len(particles)
        for k in range(len(ops)):
            ctx.save_output(f"{SPLIT_PREFIX}{k}", expanded.slice(k * count, (k + 1) * count))


def _outputs(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``particles``, and with the split option one output per operator (an unknown symmetry is refused
    as soon as it is set)."""
    outputs = list(SPEC["outputs"])
    symbol = params.get("sym_symmetry")
    if symbol and params.get("sym_split_outputs"):
        count = len(symmetry.operators(symbol))
        outputs += [{"name": f"{SPLIT_PREFIX}{k}", "type": "particle", "slots": ["alignments3D", "sym_expand"],
                     "title": f"Particles expanded by operator {k}"} for k in range(count)]
    elif symbol:
        symmetry.operators(symbol)
    return outputs


JOBS = [LibraryJob(SPEC, _run, _outputs)]
