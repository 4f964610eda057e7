"""CTF, Fourier-slice projection, Generate Phantom Volume and Simulate Data: numbers checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryoweave.formats import symmetry
from cryoweave.formats.ctf import ctf, frequencies, wavelength_A
from cryoweave.formats.geometry import rotvec_to_matrix
from cryoweave.jobs.library import phantom
from cryoweave.jobs.library import simulation as sim
from library_support import failure, library_instance, read_mrc, run

# --------------------------------------------------------------------------------------------- CTF


def test_wavelength_at_300_kv():
    assert wavelength_A(300) == pytest.approx(0.019687, abs=2e-6)
    assert wavelength_A(200) == pytest.approx(0.025079, abs=2e-6)


def test_ctf_at_zero_frequency_is_minus_amplitude_contrast():
    for amp in (0.0, 0.07, 0.1):
        assert float(ctf(0.0, 0.0, 15000, 12000, 0.3, 300, 2.7, amp)) == pytest.approx(-amp, abs=1e-12)
    assert float(ctf(0.0, 0.0, 15000, 15000, 0, 300, 2.7, 0.1, phase_shift_rad=np.pi / 2)) == pytest.approx(
        np.sqrt(1 - 0.01), abs=1e-12)  # RELION: −sin(−shift − atan(A/√(1−A²))) = +√(1−A²)


def test_ctf_zeros_without_cs_and_astigmatism():
    df, amp, lam = 20000.0, 0.1, wavelength_A(300)
    # CTF = 0 where sqrt(1−A²) sin χ = −A cos χ: χ = nπ − atan(A / sqrt(1−A²)), χ = π λ df k²
    offset = np.arctan(amp / np.sqrt(1 - amp * amp))
    zeros = np.array([np.sqrt((n * np.pi - offset) / (np.pi * lam * df)) for n in range(1, 6)])
    values = ctf(zeros, 0.0, df, df, 0, 300, 0.0, amp)
    np.testing.assert_allclose(values, 0, atol=1e-9)
    between = ctf((zeros[:-1] + zeros[1:]) / 2, 0.0, df, df, 0, 300, 0.0, amp)
    assert (np.abs(between) > 0.5).all()
    # underfocus: negative at low frequency, then the sign alternates between zeros
    assert float(ctf(zeros[0] / 2, 0, df, df, 0, 300, 0, amp)) < -0.1
    assert (np.sign(between) == [1, -1, 1, -1]).all()


def test_ctf_astigmatism_angle_rotates_the_pattern():
    k = np.linspace(0.01, 0.2, 50)
    angle = 0.6
    along = ctf(k * np.cos(angle), k * np.sin(angle), 25000, 15000, angle, 300, 2.7, 0.1)
    across = ctf(-k * np.sin(angle), k * np.cos(angle), 25000, 15000, angle, 300, 2.7, 0.1)
    np.testing.assert_allclose(along, ctf(k, 0, 25000, 25000, 0, 300, 2.7, 0.1), atol=1e-9)   # df1 along angle
    np.testing.assert_allclose(across, ctf(k, 0, 15000, 15000, 0, 300, 2.7, 0.1), atol=1e-9)  # df2 across it
    # rotating the frequency by δ and the angle by δ gives the same value
    kx, ky = frequencies(32, 1.5)
    c, s = np.cos(0.4), np.sin(0.4)
    np.testing.assert_allclose(ctf(c * kx - s * ky, s * kx + c * ky, 25000, 15000, 0.1 + 0.4, 300, 2.7, 0.1),
                               ctf(kx, ky, 25000, 15000, 0.1, 300, 2.7, 0.1), atol=1e-9)


def test_ctf_bfactor_envelope():
    k = np.linspace(0, 0.3, 20)
    ratio = ctf(k, 0, 1e4, 1e4, 0, 300, 2.7, 0.1, bfactor=100) / ctf(k, 0, 1e4, 1e4, 0, 300, 2.7, 0.1)
    np.testing.assert_allclose(ratio, np.exp(-100 * k * k / 4), rtol=1e-9)


# -------------------------------------------------------------------------------------- projection
def grid(box: int):
    axis = np.arange(box) - box // 2
    return np.meshgrid(axis, axis, axis, indexing="ij")  # z, y, x


def blobs(box: int, centres: np.ndarray, sigma: float) -> np.ndarray:
    z, y, x = grid(box)
    out = np.zeros((box,) * 3)
    for c in centres:
        out += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * sigma ** 2))
    return out.astype(np.float32)


def analytic_projection(box: int, centres: np.ndarray, sigma: float, rotation: np.ndarray) -> np.ndarray:
    """Σ of 2D Gaussians at the (x, y) of Rᵀ·p: the exact projection of :func:`blobs`."""
    axis = np.arange(box) - box // 2
    y, x = np.meshgrid(axis, axis, indexing="ij")
    out = np.zeros((box, box))
    for q in centres @ rotation:  # rows Rᵀ·p
        out += np.exp(-((x - q[0]) ** 2 + (y - q[1]) ** 2) / (2 * sigma ** 2)) * sigma * np.sqrt(2 * np.pi)
    return out


def test_identity_projection_is_the_sum_along_z():
    rng = np.random.default_rng(0)
    volume = blobs(48, rng.uniform(-10, 10, (6, 3)), 2.5)
    image = sim.project(volume, np.eye(3)[None], gridding=False)[0]
    np.testing.assert_allclose(image, volume.sum(axis=0), atol=1e-4 * volume.sum(axis=0).max())


def test_rotation_about_z_rotates_the_image():
    rng = np.random.default_rng(1)
    volume = blobs(48, rng.uniform(-10, 10, (5, 3)), 2.0)
    quarter = symmetry.rotation((0, 0, 1), np.pi / 2)
    first, turned = sim.project(volume, np.stack([np.eye(3), quarter]))
    # image_R(x, y) = image_I(−y, x) (R·(x, y, z) = (−y, x, z)): expected[iy, ix] = first[ix, 2c − iy], c = 24
    iy, ix = np.meshgrid(np.arange(1, 48), np.arange(48), indexing="ij")
    expected = np.zeros_like(first)
    expected[1:, :] = first[ix, 48 - iy]
    np.testing.assert_allclose(turned[1:, :], expected[1:, :], atol=1e-4 * first.max())
    assert np.abs(turned - first).max() > 0.1 * first.max()  # the image did change


def test_off_centre_blob_projects_to_transposed_rotation_of_its_centre():
    box, sigma, rng = 64, 2.0, np.random.default_rng(2)
    centres = np.array([[9.0, -5.0, 12.0]])
    volume = blobs(box, centres, sigma)
    rotations = rotvec_to_matrix(sim.uniform_rotvecs(6, rng))
    images = sim.project(volume, rotations)
    axis = np.arange(box) - box // 2
    for image, r in zip(images, rotations, strict=True):
        peak = np.unravel_index(np.argmax(image), image.shape)
        expected = r.T @ centres[0]
        assert abs(axis[peak[1]] - expected[0]) <= 1 and abs(axis[peak[0]] - expected[1]) <= 1
        truth = analytic_projection(box, centres, sigma, r)
        assert np.linalg.norm(image - truth) / np.linalg.norm(truth) < 0.02


def test_projection_accuracy_against_analytic_gaussians():
    box, sigma, rng = 64, 2.0, np.random.default_rng(3)
    centres = rng.uniform(-0.3 * box, 0.3 * box, (25, 3))
    volume = blobs(box, centres, sigma)
    rotations = rotvec_to_matrix(sim.uniform_rotvecs(8, rng))
    truth = np.stack([analytic_projection(box, centres, sigma, r) for r in rotations])
    corrected = sim.project(volume, rotations)
    plain = sim.project(volume, rotations, gridding=False)
    error = np.linalg.norm(corrected - truth) / np.linalg.norm(truth)
    assert error < 0.025
    assert error < 0.5 * np.linalg.norm(plain - truth) / np.linalg.norm(truth)  # the gridding correction helps
    wrong = sim.project(volume, rotations.transpose(0, 2, 1))  # the other convention is far off
    assert np.linalg.norm(wrong - truth) / np.linalg.norm(truth) > 0.3


def test_symmetric_phantom_projects_the_same_with_symmetry_related_poses():
    rng = np.random.default_rng(4)
    rotations = rotvec_to_matrix(sim.uniform_rotvecs(3, rng))
    for sym, tolerance in (("C4", 1e-4), ("D3", 0.03)):
        volume = phantom.phantom(48, 2.0, num_atoms=600, sym=sym, seed=5)
        projector = sim.Projector(volume)
        reference = projector.project(rotations)
        for op in symmetry.operators(sym)[1:]:
            other = projector.project(op.T @ rotations)
            assert np.linalg.norm(other - reference) / np.linalg.norm(reference) < tolerance, (sym, op)


# ------------------------------------------------------------------------------------------ phantom
def test_phantom_deterministic_positive_and_symmetric():
    a = phantom.phantom(48, 2.0, num_atoms=800, sym="C4", seed=1)
    np.testing.assert_array_equal(a, phantom.phantom(48, 2.0, num_atoms=800, sym="C4", seed=1))
    b = phantom.phantom(48, 2.0, num_atoms=800, sym="C4", seed=2)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] < 0.5
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() == pytest.approx(1.0)
    # C4 about z through voxel 24: V[z, y, x] = V[z, x', −y'] about the centre; indices 1…47 map onto themselves
    inner = a[:, 1:, 1:]
    np.testing.assert_allclose(np.rot90(inner, k=1, axes=(1, 2)), inner, atol=1e-6)
    d2 = phantom.phantom(48, 2.0, num_atoms=800, sym="D2", seed=1)[1:, 1:, 1:]
    np.testing.assert_allclose(d2[::-1, ::-1, :], d2, atol=1e-6)  # the 2-fold about x: (y, z) → (−y, −z)
    # any group: the atoms are a set closed under its operators
    atoms = phantom.phantom_atoms(600, 3, 30.0, "T", 7)
    assert len(atoms) == 600
    for op in symmetry.operators("T"):
        moved = atoms @ op.T
        assert np.min(np.linalg.norm(moved[:, None] - atoms[None], axis=2), axis=1).max() < 1e-9
    chain = phantom.phantom_atoms(200, 1, 30.0, None, 3)
    np.testing.assert_allclose(np.linalg.norm(np.diff(chain, axis=0), axis=1), phantom.CA_STEP_A)
    assert np.linalg.norm(chain, axis=1).max() <= 30.0 + 1e-9


# ------------------------------------------------------------------------------------------- jobs
def make_phantom(project, **params):
    return run(project, "generate_phantom", {"box": 32, "psize_A": 3.0, "num_atoms": 400, "seed": 3, **params})


def test_generate_phantom_job(tmp_path: Path):
    with library_instance(tmp_path) as project:
        job = make_phantom(project, symmetry="C2")
        out = job.load_output("volume")
        assert len(out) == 1 and out["map/psize_A"][0] == pytest.approx(3.0)
        path = Path(project.directory) / out["map/path"][0]
        assert path.parent.name == job.uid
        volume = read_mrc(path)
        assert volume.shape == (32, 32, 32) and tuple(out["map/shape"][0]) == (32, 32, 32)
        np.testing.assert_allclose(volume, phantom.phantom(32, 3.0, 400, 4, "C2", 3), atol=1e-6)


def test_simulate_data_end_to_end(tmp_path: Path):
    with library_instance(tmp_path) as project:
        source = make_phantom(project)
        volume = read_mrc(Path(project.directory) / source.load_output("volume")["map/path"][0])
        params = {"num_particles": 400, "defocus_min_A": 8000, "defocus_max_A": 20000, "astigmatism_A": 400,
                  "snr": None, "stack_size": 150, "shift_max_px": 2.0, "seed": 11}
        job = run(project, "simulate_data", params, {"volume": f"{source.uid}.volume"})
        data = job.load_output("particles")
        assert len(data) == 400 and len(np.unique(data["uid"])) == 400
        assert 150 < data["alignments3D/split"].sum() < 250
        pose = data["alignments3D/pose"]
        assert np.isfinite(pose).all()
        axes = rotvec_to_matrix(pose)[:, :, 2]  # R·z: uniform on the sphere
        assert np.abs(axes.mean(axis=0)).max() < 0.15
        assert np.abs((axes ** 2).mean(axis=0) - 1 / 3).max() < 0.06
        mean = (data["ctf/df1_A"] + data["ctf/df2_A"]) / 2
        assert mean.min() >= 8000 and mean.max() <= 20000
        assert np.abs(data["ctf/df1_A"] - data["ctf/df2_A"]).max() <= 400 + 1e-3
        assert (data["ctf/type"] == "simulated").all() and (data["ctf/scale"] == 1).all()
        assert (data["blob/sign"] == -1).all() and (data["blob/psize_A"] == pytest.approx(3.0))
        assert np.abs(data["alignments3D/shift"]).max() <= 2.0 and data["alignments3D/shift"].std() > 0.5
        assert len(np.unique(data["blob/path"])) == 3
        for row in (0, 151, 399):
            stack = read_mrc(Path(project.directory) / data["blob/path"][row])
            image = stack[data["blob/idx"][row]]
            clean = sim.project(volume, rotvec_to_matrix(pose[row])[None])
            keys = sim.CTF_KEYS
            expected = sim.filter_images(clean, 3.0, {k: data[f"ctf/{k}"][row:row + 1] for k in keys},
                                         data["alignments3D/shift"][row:row + 1])[0]
            np.testing.assert_allclose(image, expected, atol=1e-4 * np.abs(expected).max())
            # and by hand: the CTF times the shifted projection's transform
            kx, ky = frequencies(32, 3.0)
            s = data["alignments3D/shift"][row] * 3.0
            c = ctf(kx, ky, *(data[f"ctf/{k}"][row] for k in keys))
            by_hand = np.fft.irfft2(np.fft.rfft2(clean[0]) * c * np.exp(2j * np.pi * (kx * s[0] + ky * s[1])),
                                    s=(32, 32))
            np.testing.assert_allclose(image, by_hand, atol=1e-4 * np.abs(by_hand).max())


def test_a_shift_is_the_translation_that_centres_the_particle():
    """CryoSPARC's alignments3D/shift and RELION's rlnOrigin: the particle sits at box centre − shift."""
    image = np.zeros((1, 32, 32), np.float32)
    image[0, 16, 16] = 1.0  # (y, x) at the box centre
    moved = sim.filter_images(image, 1.0, None, np.array([[3.0, -2.0]]))[0]
    assert np.unravel_index(int(moved.argmax()), moved.shape) == (18, 13)
    back = sim.filter_images(moved[None], 1.0, None, np.array([[-3.0, 2.0]]))[0]
    np.testing.assert_allclose(back, image[0], atol=1e-5)


def test_simulate_noise_level_and_float16(tmp_path: Path):
    with library_instance(tmp_path) as project:
        source = make_phantom(project)
        inputs = {"volume": f"{source.uid}.volume"}
        base = {"num_particles": 300, "seed": 5, "defocus_min_A": 10000, "defocus_max_A": 15000}
        clean = run(project, "simulate_data", {**base, "snr": None}, inputs)
        noisy = run(project, "simulate_data", {**base, "snr": 0.5, "float16": True}, inputs)

        def images(job):
            data = job.load_output("particles")
            return np.concatenate([read_mrc(Path(project.directory) / p) for p in np.unique(data["blob/path"])])

        signal, observed = images(clean), images(noisy)
        assert observed.dtype == np.float16 and signal.dtype == np.float32
        noise = observed.astype(np.float64) - signal
        ratio = signal.var(axis=(1, 2)).mean() / noise.var()
        assert ratio == pytest.approx(0.5, rel=0.1)
        assert abs(noise.mean()) < 0.05 * noise.std()
        off = run(project, "simulate_data", {**base, "snr": None, "apply_ctf": False}, inputs)
        data = off.load_output("particles")
        assert (data["blob/sign"] == 1).all()
        assert "ctf" not in data.prefixes()  # no CTF was applied, so none is handed on
        plain = images(off)[0]
        np.testing.assert_allclose(plain, sim.project(read_mrc(Path(project.directory) / source.load_output(
            "volume")["map/path"][0]), rotvec_to_matrix(data["alignments3D/pose"][0])[None])[0], atol=1e-4)


@pytest.mark.parametrize(("job_type", "params", "message"), [
    ("generate_phantom", {"psize_A": 0}, "psize_A"),
    ("generate_phantom", {"box": 33}, "even"),
    ("simulate_data", {"defocus_min_A": 30000, "defocus_max_A": 20000}, "defocus_min_A"),
    ("simulate_data", {"snr": 0}, "snr"),
    ("simulate_data", {"snr": -1}, "snr"),
    ("simulate_data", {"missing": True}, "cannot be read"),
])
def test_bad_input_fails_cleanly(tmp_path: Path, job_type: str, params: dict, message: str):
    with library_instance(tmp_path) as project:
        if job_type == "generate_phantom":
            job = run(project, job_type, {"box": 32, "num_atoms": 100, **params}, expect="failed")
            assert message in failure(job)
            assert not job.record.outputs
            return
        source = make_phantom(project)
        if params.pop("missing", False):
            (Path(project.directory) / source.load_output("volume")["map/path"][0]).unlink()
        job = run(project, job_type, {"num_particles": 10, **params}, {"volume": f"{source.uid}.volume"},
                  expect="failed")
        assert message in failure(job)
        assert not job.record.outputs
        assert not (Path(project.directory) / job.uid / "simulated").exists()


def test_simulate_at_the_poses_of_given_particles(tmp_path: Path):
    with library_instance(tmp_path) as project:
        source = make_phantom(project)
        inputs = {"volume": f"{source.uid}.volume"}
        base = {"apply_ctf": False, "snr": None}
        first = run(project, "simulate_data", {**base, "num_particles": 40, "shift_max_px": 2.0, "seed": 8}, inputs)
        again = run(project, "simulate_data", {**base, "num_particles": 7, "seed": 99},
                    {**inputs, "poses": f"{first.uid}.particles"})
        a, b = first.load_output("particles"), again.load_output("particles")
        assert np.array_equal(a["uid"], b["uid"]) and len(b) == 40  # num_particles is not used
        for field in ("alignments3D/pose", "alignments3D/shift", "alignments3D/split"):
            np.testing.assert_allclose(b[field], a[field])
        stacks = [np.concatenate([read_mrc(Path(project.directory) / path) for path in np.unique(d["blob/path"])])
                  for d in (a, b)]
        np.testing.assert_allclose(stacks[1], stacks[0], atol=1e-5)  # the same poses, the same images
        assert any("num_particles, 7, is not used" in e.text for e in again.events())
