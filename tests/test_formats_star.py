"""RELION .star particle files: reading 3.0 and 3.1 files, writing 3.1, round trips, pose math."""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import starfile
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoweave.dataset import Dataset
from cryoweave.errors import FormatError
from cryoweave.formats.geometry import (
    matrix_to_relion_euler,
    matrix_to_rotvec,
    relion_euler_to_matrix,
    relion_euler_to_rotvec,
    rotvec_to_matrix,
    rotvec_to_relion_euler,
)
from cryoweave.formats.star import read_star, write_star
from cryoweave.spec.examples import particle_dataset
from cryoweave.spec.results import result_fields

DATA = Path(__file__).parent / "data" / "star"


def rz(deg: float) -> np.ndarray:
    """Active right-handed rotation about z (rotates x towards y)."""
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def ry(deg: float) -> np.ndarray:
    """Active right-handed rotation about y (rotates z towards x)."""
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def relion_matrix(rot: float, tilt: float, psi: float) -> np.ndarray:
    """RELION's A built as the ZYZ product of frame (passive) rotations: Rz(psi)·Ry(tilt)·Rz(rot)
    with passive R(θ) = active R(θ)ᵀ."""
    return rz(psi).T @ ry(tilt).T @ rz(rot).T


def standard_dtypes(dset: Dataset) -> None:
    expected = {f[0]: f for r in ("blob", "ctf", "alignments2D", "alignments3D", "location")
                for f in result_fields(r)} | {"uid": ("uid", "<u8")}
    for field in dset.descr():
        assert field == expected[field[0]]


# ------------------------------------------------------------------ geometry
def test_relion_matrix_is_transpose_of_rodrigues() -> None:
    rng = np.random.default_rng(3)
    angles = np.column_stack([rng.uniform(-180, 180, 50), rng.uniform(0, 180, 50),
                              rng.uniform(-180, 180, 50)])
    expected = np.stack([relion_matrix(*a) for a in angles])
    assert np.allclose(relion_euler_to_matrix(angles), expected, atol=1e-12)
    pose = relion_euler_to_rotvec(angles)
    assert np.allclose(np.swapaxes(rotvec_to_matrix(pose), 1, 2), expected, atol=1e-12)
    assert np.allclose(rotvec_to_matrix(pose), np.stack([rz(a) @ ry(b) @ rz(c) for a, b, c in angles]))


def test_rotvec_to_matrix_matches_rodrigues_rotation_formula() -> None:
    rng = np.random.default_rng(4)
    w, v = rng.normal(size=(100, 3)), rng.normal(size=(100, 3))
    theta = np.linalg.norm(w, axis=1, keepdims=True)
    k = w / theta
    rotated = (v * np.cos(theta) + np.cross(k, v) * np.sin(theta)
               + k * np.sum(k * v, axis=1, keepdims=True) * (1 - np.cos(theta)))
    assert np.allclose(np.einsum("nij,nj->ni", rotvec_to_matrix(w), v), rotated, atol=1e-12)
    assert np.allclose(rotvec_to_matrix(np.array([0.0, 0.0, np.pi / 2])), rz(90))
    assert np.allclose(rotvec_to_matrix(np.array([1e-9, 0.0, 0.0])), np.eye(3))


def test_known_euler_angles() -> None:
    assert np.allclose(relion_euler_to_rotvec(np.zeros((1, 3))), 0)
    assert np.allclose(relion_euler_to_rotvec(np.array([[0.0, 90.0, 0.0]])), [[0, np.pi / 2, 0]])
    assert np.allclose(relion_euler_to_rotvec(np.array([[0.0, 0.0, 30.0]])), [[0, 0, np.pi / 6]])
    assert np.allclose(relion_euler_to_rotvec(np.array([[30.0, 0.0, 0.0]])), [[0, 0, np.pi / 6]])
    assert np.allclose(rotvec_to_relion_euler(np.array([[0, np.pi / 2, 0]])), [[0, 90, 0]])
    # gimbal lock: tilt 0 and 180 put the whole in-plane angle into psi
    assert np.allclose(matrix_to_relion_euler(relion_matrix(20, 0, 30)), [0, 0, 50])
    assert np.allclose(matrix_to_relion_euler(relion_matrix(20, 180, 30)), [0, 180, 10])
    assert np.allclose(relion_matrix(0, 180, 10), relion_matrix(20, 180, 30))


def test_euler_round_trip_on_random_angles() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    angles = np.column_stack([rng.uniform(-180, 180, n), rng.uniform(0, 180, n), rng.uniform(-180, 180, n)])
    angles[:10, 1] = 0.0
    angles[10:20, 1] = 180.0
    back = rotvec_to_relion_euler(relion_euler_to_rotvec(angles))
    assert np.allclose(relion_euler_to_matrix(back), relion_euler_to_matrix(angles), atol=1e-10)
    assert np.allclose(back[20:], angles[20:], atol=1e-8)
    assert (back[:, 1] >= 0).all() and (back[:, 1] <= 180).all()


@pytest.mark.parametrize("eps", [0.0, 1e-12, 1e-7, 1e-4])
def test_near_pi_rotation_vectors_round_trip(eps: float) -> None:
    axes = np.random.default_rng(6).normal(size=(200, 3))
    w = axes / np.linalg.norm(axes, axis=1, keepdims=True) * (np.pi - eps)
    back = matrix_to_rotvec(rotvec_to_matrix(w))
    assert np.allclose(rotvec_to_matrix(back), rotvec_to_matrix(w), atol=1e-12)
    assert np.allclose(np.linalg.norm(back, axis=1), np.pi - eps, atol=1e-9)
    if eps >= 1e-7:  # away from π the vector itself is unique
        assert np.allclose(back, w, atol=1e-8)
    assert np.allclose(rotvec_to_matrix(relion_euler_to_rotvec(rotvec_to_relion_euler(w))),
                       rotvec_to_matrix(w), atol=1e-10)


vectors = st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: np.linalg.norm(v) > 1e-3)


@settings(max_examples=300, deadline=None)
@given(vectors, st.floats(0, np.pi))
def test_rotvec_property(axis: tuple[float, float, float], angle: float) -> None:
    w = np.asarray(axis) / np.linalg.norm(axis) * angle
    r = rotvec_to_matrix(w[None])
    assert np.allclose(r[0] @ r[0].T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(r[0]), 1)
    assert np.allclose(rotvec_to_matrix(matrix_to_rotvec(r)), r, atol=1e-12)
    angles = rotvec_to_relion_euler(w[None])
    assert np.allclose(relion_euler_to_matrix(angles), np.swapaxes(r, 1, 2), atol=1e-10)
    assert np.allclose(rotvec_to_matrix(relion_euler_to_rotvec(angles)), r, atol=1e-10)
    if angle < np.pi - 1e-6:
        assert np.allclose(matrix_to_rotvec(r)[0], w, atol=1e-9)


# ------------------------------------------------------------------ reading RELION files
def test_read_relion31_fixture() -> None:
    d = read_star(DATA / "relion31.star", micrograph_shape=(4000, 6000))
    standard_dtypes(d)
    assert len(d) == 3 and len(set(d["uid"].tolist())) == 3
    stacks = ["Extract/job005/Movies/mic1.mrcs"] * 2 + ["Extract/job005/Movies/mic2.mrcs"]
    assert d["blob/path"].tolist() == stacks
    assert d["blob/idx"].tolist() == [0, 1, 2]
    assert d["blob/psize_A"].tolist() == [1.25, 1.25, 2.5]
    assert d["blob/shape"].tolist() == [[200, 200], [200, 200], [100, 100]]
    assert d["blob/sign"].tolist() == [-1.0] * 3 and d["blob/import_sig"].tolist() == [0] * 3
    assert d["ctf/type"].tolist() == ["imported"] * 3
    assert d["ctf/exp_group_id"].tolist() == [1, 1, 2] == d["location/exp_group_id"].tolist()
    assert np.allclose(d["ctf/df1_A"], [15000, 21000.5, 9000])
    assert np.allclose(d["ctf/df2_A"], [14000, 20500.25, 8800])
    assert np.allclose(d["ctf/df_angle_rad"], np.deg2rad([45, -30, 120]))
    assert np.allclose(d["ctf/phase_shift_rad"], [0, 0, np.pi / 2])
    assert np.allclose(d["ctf/bfactor"], [0, 10, 50]) and np.allclose(d["ctf/scale"], [1, 0.95, 0.9])
    assert np.allclose(d["ctf/accel_kv"], [300, 300, 200]) and np.allclose(d["ctf/cs_mm"], [2.7, 2.7, 2.0])
    assert np.allclose(d["ctf/amp_contrast"], [0.1, 0.1, 0.07])
    assert not d["ctf/anisomag"].any()
    expected = [np.eye(3), ry(90), rz(30) @ ry(60) @ rz(90)]
    assert np.allclose(rotvec_to_matrix(d["alignments3D/pose"]), expected, atol=1e-6)
    assert np.allclose(d["alignments3D/pose"][1], [0, np.pi / 2, 0], atol=1e-6)
    assert np.allclose(d["alignments3D/shift"], [[2, -1], [0, 0], [2, 1]])
    assert d["alignments3D/class"].tolist() == [0, 1, 2] and d["alignments3D/split"].tolist() == [0, 1, 1]
    assert d["alignments3D/psize_A"].tolist() == [1.25, 1.25, 2.5]
    assert d["location/micrograph_path"].tolist() == ["MotionCorr/job002/Movies/mic1.mrc"] * 2 + [
        "MotionCorr/job002/Movies/mic2.mrc"]
    sha = hashlib.sha1(b"MotionCorr/job002/Movies/mic1.mrc").digest()[:8]
    assert d["location/micrograph_uid"][0] == int.from_bytes(sha, "little") == d["location/micrograph_uid"][1]
    assert d["location/micrograph_uid"][2] != d["location/micrograph_uid"][0]
    assert d["location/micrograph_shape"].tolist() == [[4000, 6000]] * 3
    assert np.allclose(d["location/center_x_frac"], [1 / 6, 2 / 6, 3 / 6])
    assert np.allclose(d["location/center_y_frac"], [500 / 4000, 1500 / 4000, 3500 / 4000])


def test_read_relion30_fixture_without_optics_block() -> None:
    with pytest.warns(UserWarning, match="micrograph_shape"):
        d = read_star(DATA / "relion30.star")
    standard_dtypes(d)
    assert d["blob/path"].tolist() == ["Particles/Micrographs/a_particles.mrcs",
                                       "Particles/Micrographs/b_particles.mrcs"]
    assert d["blob/idx"].tolist() == [9, 1]
    assert np.allclose(d["blob/psize_A"], 1.4) and d["blob/shape"].tolist() == [[0, 0], [0, 0]]
    assert np.allclose(d["ctf/df1_A"], [10863.991211, 20000]) and np.allclose(d["ctf/accel_kv"], 300)
    assert d["ctf/exp_group_id"].tolist() == [1, 1]
    expected = [ry(90), rz(-45) @ ry(30) @ rz(135)]
    assert np.allclose(rotvec_to_matrix(d["alignments3D/pose"]), expected, atol=1e-6)
    assert np.allclose(d["alignments3D/shift"], [[-3.30401, -1.30401], [2.0, 0.5]])
    assert d["alignments3D/class"].tolist() == [0, 1] and d["alignments3D/split"].tolist() == [0, 0]
    assert "location/center_x_frac" not in d and "location/micrograph_shape" not in d
    assert d["location/micrograph_path"].tolist() == ["Micrographs/a.mrc", "Micrographs/b.mrc"]


def test_read_psi_only_file_as_alignments2D(tmp_path: Path) -> None:
    path = tmp_path / "class2d.star"
    path.write_text("data_particles\n\nloop_\n_rlnImageName #1\n_rlnImagePixelSize #2\n_rlnAnglePsi #3\n"
                    "_rlnOriginX #4\n_rlnOriginY #5\n_rlnClassNumber #6\n"
                    "1@s.mrcs 2.0 90.0 1.5 -2.0 4\n2@s.mrcs 2.0 -45.0 0.0 0.0 1\n")
    d = read_star(path)
    assert "alignments3D/pose" not in d and "ctf/df1_A" not in d
    assert np.allclose(d["alignments2D/pose"], [np.pi / 2, -np.pi / 4])
    assert np.allclose(d["alignments2D/shift"], [[1.5, -2.0], [0, 0]])
    assert d["alignments2D/class"].tolist() == [3, 0]
    standard_dtypes(d)


# ------------------------------------------------------------------ writing and round trips
def test_round_trip_particle_dataset(tmp_path: Path) -> None:
    d = particle_dataset(2000, micrographs=40, seed=11)
    d["uid"][:2] = [2**64 - 1, 2**63 + 12345]
    d["ctf/phase_shift_rad"] = np.linspace(0, np.pi, len(d))
    d["ctf/bfactor"] = 25.0
    d["alignments3D/class"] = np.arange(len(d)) % 3
    path = tmp_path / "particles.star"
    write_star(d, path)
    r = read_star(path)
    standard_dtypes(r)
    assert r["uid"].tolist() == d["uid"].tolist()
    for f in ("blob/path", "blob/idx", "blob/psize_A", "blob/shape", "alignments3D/split",
              "alignments3D/class", "location/micrograph_uid", "location/micrograph_path",
              "location/micrograph_shape", "ctf/exp_group_id", "ctf/accel_kv", "ctf/cs_mm",
              "ctf/amp_contrast"):
        assert r[f].tolist() == d[f].tolist(), f
    for f in ("df1_A", "df2_A", "df_angle_rad", "phase_shift_rad", "bfactor", "scale"):
        assert np.allclose(r[f"ctf/{f}"], d[f"ctf/{f}"], rtol=1e-6, atol=1e-6), f
    matrices = rotvec_to_matrix(r["alignments3D/pose"]), rotvec_to_matrix(d["alignments3D/pose"])
    assert np.allclose(*matrices, atol=1e-4)
    assert np.abs(r["alignments3D/shift"] - d["alignments3D/shift"]).max() < 1e-3
    for f in ("center_x_frac", "center_y_frac"):
        assert np.abs(r[f"location/{f}"] - d[f"location/{f}"]).max() < 1e-4


def test_written_file_is_relion31_for_other_parsers(tmp_path: Path) -> None:
    d = particle_dataset(30, micrographs=3, seed=2)
    path = tmp_path / "p.star"
    write_star(d, path)
    blocks = starfile.read(path, always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    optics, particles = blocks["optics"], blocks["particles"]
    assert optics["rlnOpticsGroup"].tolist() == [1] and optics["rlnImageSize"].tolist() == [256]
    assert optics["rlnImagePixelSize"].tolist() == [1.1] and optics["rlnImageDimensionality"].tolist() == [2]
    names = [f"{i + 1:06d}@{p}" for i, p in zip(d["blob/idx"].tolist(), d["blob/path"].tolist())]
    assert particles["rlnImageName"].tolist() == names
    assert np.allclose(particles["rlnDefocusU"], d["ctf/df1_A"], atol=1e-3)
    assert np.allclose(particles["rlnOriginXAngst"], d["alignments3D/shift"][:, 0] * 1.1, atol=1e-5)
    assert np.allclose(particles["rlnCoordinateX"], d["location/center_x_frac"] * 5760, atol=1e-3)
    assert np.allclose(particles["rlnCoordinateY"], d["location/center_y_frac"] * 4092, atol=1e-3)
    from cryosparc import star  # cryosparc-tools: an independent parser, used as an oracle only
    other = star.read(path)
    assert [n.decode() if isinstance(n, bytes) else n for n in other["particles"]["rlnImageName"]] == names
    assert np.allclose(other["particles"]["rlnAngleTilt"], particles["rlnAngleTilt"])


def test_round_trip_alignments2D(tmp_path: Path) -> None:
    d = particle_dataset(50, seed=3).drop_fields(lambda f: f.startswith("alignments3D/"))
    d.add_fields(result_fields("alignments2D"))
    d["alignments2D/pose"] = np.linspace(-3, 3, len(d))
    d["alignments2D/shift"] = 1.5
    d["alignments2D/class"] = np.arange(len(d)) % 7
    write_star(d, tmp_path / "c.star")
    labels = starfile.read(tmp_path / "c.star")["particles"].columns
    assert "rlnAnglePsi" in labels and "rlnAngleRot" not in labels
    r = read_star(tmp_path / "c.star")
    assert "alignments3D/pose" not in r
    assert np.allclose(r["alignments2D/pose"], d["alignments2D/pose"], atol=1e-6)
    assert np.allclose(r["alignments2D/shift"], 1.5)
    assert r["alignments2D/class"].tolist() == d["alignments2D/class"].tolist()


def test_paths_with_spaces_unicode_and_empty_strings(tmp_path: Path) -> None:
    d = particle_dataset(4, micrographs=2, seed=5)
    d["blob/path"] = ["J1/ünï cödé.mrc"] * 2 + ["J1/plain.mrc"] * 2
    d["location/micrograph_path"] = ["", "", "mic b.mrc", "mic b.mrc"]
    write_star(d, tmp_path / "odd.star")
    r = read_star(tmp_path / "odd.star")
    for f in ("blob/path", "blob/idx", "location/micrograph_path"):
        assert r[f].tolist() == d[f].tolist()


def test_optics_groups_numbering_and_split(tmp_path: Path) -> None:
    d = particle_dataset(12, micrographs=2, seed=4)
    d["ctf/exp_group_id"] = [0] * 6 + [1] * 6
    write_star(d, tmp_path / "zero.star")
    assert starfile.read(tmp_path / "zero.star")["particles"]["rlnOpticsGroup"].tolist() == [1] * 6 + [2] * 6
    assert read_star(tmp_path / "zero.star")["ctf/exp_group_id"].tolist() == [0] * 6 + [1] * 6

    d["ctf/exp_group_id"] = [5] * 6 + [2] * 6  # RELION needs optics groups 1..K in order
    d["blob/psize_A"] = [1.1] * 3 + [1.3] * 3 + [1.1] * 6  # exposure group 5 mixes two pixel sizes
    with pytest.warns(UserWarning, match=r"\[5\].*split"):
        write_star(d, tmp_path / "split.star")
    blocks = starfile.read(tmp_path / "split.star")
    assert blocks["optics"]["rlnOpticsGroup"].tolist() == [1, 2, 3]
    assert blocks["optics"]["rlnImagePixelSize"].tolist() == [1.1, 1.1, 1.3]
    assert blocks["particles"]["rlnOpticsGroup"].tolist() == [2] * 3 + [3] * 3 + [1] * 6
    r = read_star(tmp_path / "split.star")
    assert r["ctf/exp_group_id"].tolist() == d["ctf/exp_group_id"].tolist()
    assert r["blob/psize_A"].tolist() == d["blob/psize_A"].tolist()


def test_micrograph_shape_argument_and_missing_shape_warning(tmp_path: Path) -> None:
    text = (DATA / "relion31.star").read_text()
    d = read_star(DATA / "relion31.star", micrograph_shape=(1000, 3000))
    assert np.allclose(d["location/center_x_frac"], [1 / 3, 2 / 3, 1])
    with pytest.warns(UserWarning, match="--micrograph-shape"):
        d = read_star(DATA / "relion31.star")
    assert "location/center_y_frac" not in d and "location/micrograph_path" in d
    assert text == (DATA / "relion31.star").read_text()


def test_write_is_atomic_and_checks_the_dataset(tmp_path: Path) -> None:
    path = tmp_path / "keep.star"
    shutil.copy(DATA / "relion31.star", path)
    with pytest.raises(FormatError, match=r"keep\.star.*blob/path"):
        write_star(particle_dataset(5, seed=1).drop_fields(["blob/path"]), path)
    assert path.read_bytes() == (DATA / "relion31.star").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.star"]
    write_star(particle_dataset(5, seed=1), path)
    assert len(read_star(path)) == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["keep.star"]


def test_empty_dataset_round_trip(tmp_path: Path) -> None:
    write_star(particle_dataset(0, seed=1), tmp_path / "e.star")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_star(tmp_path / "e.star")) == 0


# ------------------------------------------------------------------ bad input
HEAD = "data_particles\n\nloop_\n_rlnImageName #1\n_rlnImagePixelSize #2\n"
BAD = {
    "not_star.star": ("hello world\nthis is not STAR\n", "not a STAR file"),
    "ragged.star": (HEAD + "1@a.mrcs 1.0\n2@a.mrcs 1.0 7 8\n", "not a readable STAR file"),
    "no_particles.star": ("data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnVoltage #2\n1 300\n",
                          "_rlnImageName"),
    "no_at.star": (HEAD + "1@a.mrcs 1.0\nstack.mrcs 1.0\n", "row 2"),
    "bad_index.star": (HEAD + "x1@a.mrcs 1.0\n", "row 1.*integer"),
    "fraction_index.star": (HEAD + "1.5@a.mrcs 1.0\n", "row 1"),
    "zero_index.star": (HEAD + "0@a.mrcs 1.0\n", "row 1"),
    "text_number.star": (HEAD.replace("#2\n", "#2\n_rlnDefocusU #3\n")
                         + "1@a.mrcs 1.0 9000\n2@a.mrcs 1.0 abc\n",
                         "_rlnDefocusU.*row 2"),
    "missing_group.star": ("data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n1 1.0\n\n"
                           "data_particles\n\nloop_\n_rlnImageName #1\n_rlnOpticsGroup #2\n"
                           "1@a.mrcs 1\n2@a.mrcs 3\n",
                           r"optics group\(s\) \[3\]"),
    "duplicate_group.star": ("data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n"
                             "1 1.0\n1 2.0\n\ndata_particles\n\nloop_\n_rlnImageName #1\n"
                             "_rlnOpticsGroup #2\n1@a.mrcs 1\n",
                             r"optics group\(s\) \[1\] more than once"),
    "unmatched_groups.star": ("data_optics\n\nloop_\n_rlnImagePixelSize #1\n1.0\n2.0\n\n"
                              "data_particles\n\nloop_\n_rlnImageName #1\n_rlnOpticsGroup #2\n1@a.mrcs 1\n",
                              "2 groups"),
    "no_psize.star": ("data_particles\n\nloop_\n_rlnImageName #1\n_rlnDefocusU #2\n1@a.mrcs 9000\n",
                      "pixel size"),
    "bad_uid.star": (HEAD.replace("#2\n", "#2\n_cryoweaveUid #3\n") + "1@a.mrcs 1.0 18446744073709551616\n",
                     "_cryoweaveUid.*row 1"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_raises_format_error(tmp_path: Path, name: str) -> None:
    text, problem = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FormatError, match=rf"{re.escape(name)}: .*{problem}"):
        read_star(path)


def test_binary_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "noise.star"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(FormatError, match=r"noise\.star"):
        read_star(path)
    with pytest.raises(FormatError, match=r"absent\.star: no such file"):
        read_star(tmp_path / "absent.star")
