"""Symmetry Expansion (sym_expand): copies, new uids, composed poses, every result saved."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cryoweave.dataset import Dataset
from cryoweave.errors import ParamError
from cryoweave.formats import symmetry
from cryoweave.formats.geometry import (
    matrix_to_rotvec,
    relion_euler_to_matrix,
    rotvec_to_matrix,
    rotvec_to_relion_euler,
)
from cryoweave.spec import result_fields
from library_support import failure, library_instance, run

SLOTS = ["blob", "ctf", "alignments3D", "location", "alignments_class_0"]


def random_rotvecs(n: int, rng: np.random.Generator) -> np.ndarray:
    """Poses spread over the whole rotation group (angles up to π)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.sign(q[:, 3:])
    half = np.arccos(np.clip(q[:, 3], -1, 1))
    axis = q[:, :3] / np.maximum(np.linalg.norm(q[:, :3], axis=1, keepdims=True), 1e-12)
    return axis * (2 * half)[:, None]


def aligned_particles(project, n: int = 20, seed: int = 0, slots=SLOTS, poses: np.ndarray | None = None):
    """An external job whose ``particles`` output holds ``n`` particles with 3D poses; (job, dataset)."""
    rng = np.random.default_rng(seed)
    job = project.create_external_job(title="Aligned particles")
    job.add_output("particle", "particles", slots=list(slots))
    data = Dataset.allocate(n, [f for slot in slots for f in result_fields(slot)])
    if "blob" in slots:
        data["blob/path"] = np.array([f"J9/stack_{i % 3}.mrcs" for i in range(n)], dtype=object)
        data["blob/idx"] = np.arange(n)
        data["blob/shape"] = 64
        data["blob/psize_A"] = 1.3
    if "ctf" in slots:
        data["ctf/df1_A"] = rng.uniform(8000, 20000, n)
        data["ctf/type"] = "imported"
    if "location" in slots:
        data["location/center_x_frac"] = rng.uniform(0, 1, n)
    if "alignments_class_0" in slots:
        data["alignments_class_0/pose"] = random_rotvecs(n, rng)
    if "alignments3D" in slots:
        data["alignments3D/pose"] = random_rotvecs(n, rng) if poses is None else poses
        data["alignments3D/shift"] = rng.uniform(-5, 5, (n, 2))
        data["alignments3D/split"] = rng.integers(0, 2, n)
        data["alignments3D/error"] = rng.uniform(0, 1, n)
    with job.run():
        job.save_output("particles", data)
    return job, job.load_output("particles")


def expand(project, source: str, symbol: str, **params):
    return run(project, "sym_expand", {"sym_symmetry": symbol, **params}, {"particles": source})


def check_copies(original: Dataset, expanded: Dataset, symbol: str) -> None:
    """Every particle once per operator, with its pose composed as S_kᵀ·R and everything else copied."""
    ops = symmetry.operators(symbol)
    n, count = len(ops), len(original)
    assert len(expanded) == n * count
    assert len(np.unique(expanded["uid"])) == n * count
    assert not np.isin(expanded["uid"], original["uid"]).any()
    src = expanded["sym_expand/src_uid"]
    idx = expanded["sym_expand/idx"].astype(int)
    assert set(zip(src.tolist(), idx.tolist(), strict=True)) == {(int(u), k) for u in original["uid"] for k in range(n)}
    assert set(expanded["sym_expand/symmetry"]) == {symmetry.canonical(symbol)}
    for field in ("is_helix", "helix_num_rises", "helix_rise_A", "helix_twist_rad"):
        assert not expanded[f"sym_expand/{field}"].any()
    row = {int(u): i for i, u in enumerate(original["uid"])}
    rows = np.array([row[int(u)] for u in src])
    before = rotvec_to_matrix(original["alignments3D/pose"][rows])
    after = rotvec_to_matrix(expanded["alignments3D/pose"])
    # R·R_kᵀ is the k-th operator, for every copy (R_k = S_kᵀ·R)
    np.testing.assert_allclose(before @ after.transpose(0, 2, 1), ops[idx], atol=1e-5)
    for field in original.fields():
        if field not in ("uid", "alignments3D/pose") and not field.startswith("sym_expand/"):
            np.testing.assert_array_equal(np.asarray(expanded[field]), np.asarray(original[field][rows]), err_msg=field)


# ------------------------------------------------------------------------------------------ copies
def test_each_particle_is_copied_once_per_operator_with_the_pose_composed(tmp_path):
    with library_instance(tmp_path) as project:
        source, original = aligned_particles(project, n=25)
        job = expand(project, f"{source.uid}.particles", "D7")
        expanded = job.load_output("particles")
        check_copies(original, expanded, "D7")
        # operator-major order: copy k of particle i is row k·M + i
        np.testing.assert_array_equal(expanded["sym_expand/idx"], np.repeat(np.arange(14), 25))
        np.testing.assert_array_equal(expanded["sym_expand/src_uid"], np.tile(original["uid"], 14))
        group = job.record.outputs["particles"]
        assert group.num_items == 350
        assert not any(r.passthrough for r in group.results.values())       # new items: every result saved
        assert set(group.results) == {*SLOTS, "sym_expand"}
        # the class poses are copied, not rotated; only alignments3D is
        np.testing.assert_array_equal(expanded["alignments_class_0/pose"][25:50], original["alignments_class_0/pose"])


@pytest.mark.parametrize("symbol", ["C1", "c4", "T", "O", "I"])
def test_every_point_group_expands(tmp_path, symbol):
    with library_instance(tmp_path) as project:
        source, original = aligned_particles(project, n=6, slots=["blob", "alignments3D"])
        expanded = expand(project, f"{source.uid}.particles", symbol).load_output("particles")
        check_copies(original, expanded, symbol)


def test_poses_near_the_identity_and_near_a_half_turn_compose_accurately(tmp_path):
    poses = np.array([[0, 0, 0], [1e-7, 0, 0], [0, 0, np.pi], [np.pi - 1e-6, 0, 0], [0, 2.0, -1.0]])
    with library_instance(tmp_path) as project:
        source, original = aligned_particles(project, n=len(poses), poses=poses, slots=["alignments3D"])
        expanded = expand(project, f"{source.uid}.particles", "O").load_output("particles")
        check_copies(original, expanded, "O")


# ---------------------------------------------------------------------------------- projections
def orbit_volume(symbol: str, seed: int = 3):
    """A map that has the symmetry exactly: Gaussian blobs at the orbit of a generic point (and one
    brighter blob orbit), as a function of points (N, 3) in voxels about the centre."""
    rng = np.random.default_rng(seed)
    ops = symmetry.operators(symbol)
    centres = np.concatenate([ops @ rng.uniform(-6, 6, 3), ops @ rng.uniform(-6, 6, 3)])
    weights = np.repeat([1.0, 2.5], len(ops))

    def density(points: np.ndarray) -> np.ndarray:
        d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
        return (weights * np.exp(-d2 / (2 * 1.5 ** 2))).sum(-1)

    return density


def project_map(density, pose_matrix: np.ndarray, box: int = 24) -> np.ndarray:
    """image(x, y) = Σ_z V(R·(x, y, z)): CryoSPARC's pose matrix takes the view's frame to the map's
    (as pyem and cryoDRGN project CryoSPARC poses)."""
    axis = np.arange(box) - box / 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    view = np.stack([x, y, z], -1).reshape(-1, 3)
    return density(view @ pose_matrix.T).reshape(box, box, box).sum(axis=0)   # rows of R·q are qᵀ·Rᵀ


def test_expanded_poses_project_the_symmetric_map_to_the_same_image(tmp_path):
    symbol = "T"
    density = orbit_volume(symbol)
    with library_instance(tmp_path) as project:
        source, original = aligned_particles(project, n=2, seed=5, slots=["alignments3D"])
        expanded = expand(project, f"{source.uid}.particles", symbol).load_output("particles")
    ops = symmetry.operators(symbol)
    for i in range(len(original)):
        pose = original["alignments3D/pose"][i].astype(np.float64)
        r = rotvec_to_matrix(pose)
        # the projection model is RELION's (map sampled at Aᵀ·q) with A = Rᵀ, pyem's conversion
        np.testing.assert_allclose(relion_euler_to_matrix(rotvec_to_relion_euler(pose)).T, r, atol=1e-9)
        image = project_map(density, r)
        assert image.std() > 0.1 * image.max()
        mine = expanded["sym_expand/src_uid"] == original["uid"][i]
        for copy_pose, k in zip(expanded["alignments3D/pose"][mine], expanded["sym_expand/idx"][mine], strict=True):
            copy = project_map(density, rotvec_to_matrix(copy_pose.astype(np.float64)))
            np.testing.assert_allclose(copy, image, atol=2e-4 * image.max())
            if k:  # composing on the other side turns the view: another image
                wrong = project_map(density, r @ ops[k])
                assert np.abs(wrong - image).max() > 0.05 * image.max()


def test_a_map_without_the_symmetry_projects_differently(tmp_path):
    """The check above has teeth: a C1 map gives other images under the C3 copies' poses."""
    density = orbit_volume("C1")
    r = rotvec_to_matrix(np.array([0.3, -1.1, 0.7]))
    ops = symmetry.operators("C3")
    copies = matrix_to_rotvec(ops.transpose(0, 2, 1) @ r)
    image = project_map(density, r)
    assert np.abs(project_map(density, rotvec_to_matrix(copies[1])) - image).max() > 0.05 * image.max()


# ------------------------------------------------------------------------------------------- split
def test_split_outputs_hold_the_copies_of_one_operator_each(tmp_path):
    with library_instance(tmp_path) as project:
        source, original = aligned_particles(project, n=10)
        job = expand(project, f"{source.uid}.particles", "C4", sym_split_outputs=True)
        everything = job.load_output("particles")
        assert len(everything) == 40
        names = sorted(o.name for o in job.record.spec.outputs)
        assert names == ["particles", *[f"particles_expanded_{k}" for k in range(4)]]
        for k in range(4):
            part = job.load_output(f"particles_expanded_{k}")
            assert len(part) == 10
            assert set(part["sym_expand/idx"].tolist()) == {k}
            np.testing.assert_array_equal(part["sym_expand/src_uid"], original["uid"])
            np.testing.assert_array_equal(part["uid"], everything["uid"][k * 10:(k + 1) * 10])
            np.testing.assert_array_equal(part["ctf/df1_A"], original["ctf/df1_A"])


def test_expanding_twice_names_the_first_copies_as_sources(tmp_path):
    with library_instance(tmp_path) as project:
        source, _ = aligned_particles(project, n=5)
        first = expand(project, f"{source.uid}.particles", "C2")
        once = first.load_output("particles")
        second = expand(project, f"{first.uid}.particles", "C3")
        twice = second.load_output("particles")
        assert len(twice) == 30
        assert set(twice["sym_expand/src_uid"].tolist()) == set(once["uid"].tolist())
        assert set(twice["sym_expand/symmetry"]) == {"C3"}
        warnings = [e.text for e in second.events() if e.level == "warning"]
        assert any("expanded before" in w for w in warnings)
        # the two operators compose: the twice-expanded poses are R·S2_a·S3_b
        check_copies(once, twice, "C3")


# --------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("symbol,message", [
    ("X5", "symmetry 'X5' is not a point group; write C<n> or D<n>"),
    ("C0", "order n of C<n> must lie in 1"),
    ("I7", "symmetry 'I7' is not a point group"),
    ("", "parameter 'sym_symmetry' (the point group) is not set"),
])
def test_a_bad_symmetry_fails_before_any_output(tmp_path, symbol, message):
    """Refused as soon as it is set (the outputs follow from it); a job left without one fails at once."""
    with library_instance(tmp_path) as project:
        source, _ = aligned_particles(project, n=3)
        if symbol:
            with pytest.raises(ParamError, match=re.escape(message)):
                project.create_job("sym_expand", params={"sym_symmetry": symbol})
            job = project.create_job("sym_expand", params={"sym_symmetry": "C2"})
            with pytest.raises(ParamError, match=re.escape(message)):
                job.set_params({"sym_symmetry": symbol, "sym_split_outputs": True})
            assert job.refresh().params["sym_symmetry"] == "C2"  # the refused change left nothing behind
            return
        job = run(project, "sym_expand", {}, {"particles": f"{source.uid}.particles"}, expect="failed")
        assert message in failure(job)
        assert not job.record.outputs


def test_particles_without_3d_poses_are_refused_naming_alignments3d(tmp_path):
    with library_instance(tmp_path) as project:
        source, _ = aligned_particles(project, n=3, slots=["blob", "ctf"])
        job = project.create_job("sym_expand", params={"sym_symmetry": "C2"})
        with pytest.raises(ParamError, match="required slot 'alignments3D'"):
            job.connect("particles", f"{source.uid}.particles")
