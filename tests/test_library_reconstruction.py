"""Homogeneous Reconstruction Only: maps checked against the phantom the particles were simulated from.

Every number comes from data the tests simulate with the job library (Generate Phantom Volume,
Simulate Data) and reconstruct as queued jobs; the ground truth is the phantom map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryoweave.errors import ParamError
from cryoweave.formats.ctf import ctf
from cryoweave.jobs.library import backproject as bp
from cryoweave.jobs.library import fsc as F
from library_support import failure, library_instance, read_mrc, run

PHANTOM = {"box": 64, "psize_A": 2.0, "num_atoms": 3000, "num_chains": 6, "seed": 1}
CTF_FREE = {"apply_ctf": False, "snr": None, "seed": 2}
NOISY = {"snr": 0.1, "shift_max_px": 3.0, "seed": 4}


def maps_of(job) -> dict[str, np.ndarray]:
    item = job.load_output("volume")
    project_dir = Path(job.project.directory)
    return {slot: read_mrc(project_dir / str(item[f"{slot}/path"][0]))
            for slot in ("map", "map_half_A", "map_half_B", "mask_fsc", "map_sharp")}


def truth_of(job) -> np.ndarray:
    return read_mrc(Path(job.project.directory) / str(job.load_output("volume")["map/path"][0]))


def logged_resolution(job) -> float:
    values = [e.data["resolution_A"] for e in job.events() if e.data and "resolution_A" in e.data]
    assert len(values) == 1, values
    return float(values[0])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A phantom and 3,000 CTF-free, noise-free particles of it (box 64), reconstructed."""
    tmp = tmp_path_factory.mktemp("clean")
    with library_instance(tmp) as project:
        phantom = run(project, "generate_phantom", PHANTOM)
        particles = run(project, "simulate_data", {"num_particles": 3000, **CTF_FREE},
                        {"volume": f"{phantom.uid}.volume"})
        recon = run(project, "homo_reconstruct", {"ctf_correction": False}, {"particles": f"{particles.uid}.particles"})
        yield project, phantom, particles, recon


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """20,000 particles with CTF, shifts and noise at SNR 0.1, and 5,000 of them, each reconstructed."""
    tmp = tmp_path_factory.mktemp("noisy")
    with library_instance(tmp) as project:
        phantom = run(project, "generate_phantom", PHANTOM)
        particles = run(project, "simulate_data", {"num_particles": 20_000, **NOISY},
                        {"volume": f"{phantom.uid}.volume"})
        sets = run(project, "particle_sets", {"num_batches": 4}, {"particles_A": f"{particles.uid}.particles"})
        few = run(project, "homo_reconstruct", {}, {"particles": f"{sets.uid}.split_0"})
        all_ = run(project, "homo_reconstruct", {}, {"particles": f"{particles.uid}.particles"})
        yield project, truth_of(phantom), {5_000: few, 20_000: all_}


# -------------------------------------------------------------------------------------------- math
def test_the_fast_ctf_at_the_samples_is_the_ctf_of_the_formula():
    acc = bp.Backprojector(32, 1.7, pad=2)
    params = {"df1_A": np.array([12000.0, 25000.0]), "df2_A": np.array([11000.0, 24000.0]),
              "df_angle_rad": np.array([0.3, 2.0]), "accel_kv": np.array([300.0, 200.0]),
              "cs_mm": np.array([2.7, 0.01]), "amp_contrast": np.array([0.1, 0.07]),
              "phase_shift_rad": np.array([0.0, 0.5]), "bfactor": np.array([0.0, 80.0])}
    kx, ky = acc.kx / (acc.size * 1.7), acc.ky / (acc.size * 1.7)
    expected = ctf(kx, ky, *(params[k][:, None] for k in bp.CTF_KEYS))
    np.testing.assert_allclose(acc.ctf(params), expected, atol=2e-6)


def test_the_samples_hold_one_of_each_hermitian_pair_within_nyquist():
    acc = bp.Backprojector(16, 1.0, pad=2)
    pairs = {(float(x), float(y)) for x, y in zip(acc.kx, acc.ky, strict=True)}
    assert len(pairs) == len(acc.kx)
    assert not any((-x, -y) in pairs for x, y in pairs if (x, y) != (0.0, 0.0))
    assert np.hypot(acc.kx, acc.ky).max() <= acc.size // 2 - 1
    assert (0.0, 0.0) in pairs


# ----------------------------------------------------------------------------------- correctness
def test_noise_free_particles_reconstruct_the_phantom_to_beyond_0_8_nyquist(clean):
    _project, phantom, _particles, recon = clean
    truth, maps = truth_of(phantom), maps_of(recon)
    _freqs, curve = F.fsc(maps["map"], truth)
    shell = int(0.8 * 64 / 2)
    assert curve[1:shell + 1].min() > 0.9, np.round(curve, 3)
    for half in ("map_half_A", "map_half_B"):
        assert F.fsc(maps[half], truth)[1][1:shell + 1].min() > 0.9
    assert correlation(maps["map"], truth) > 0.95
    # the gold-standard curve of two noise-free halves stays near 1: the resolution is about Nyquist
    assert logged_resolution(recon) < 2.0 * 2.0 * 1.1
    assert maps["mask_fsc"].min() >= 0 and maps["mask_fsc"].max() == pytest.approx(1.0)
    density = np.maximum(truth, 0)
    assert (maps["mask_fsc"] * density).sum() > 0.98 * density.sum()  # the mask covers the density
    assert (maps["mask_fsc"] > 0).mean() < 0.5  # and not the whole box


def test_the_job_writes_its_files_and_hands_on_the_split(clean):
    project, _phantom, particles, recon = clean
    directory = Path(project.directory) / recon.uid
    table = (directory / "fsc.txt").read_text().splitlines()
    assert table[0].split()[4:] == ["no_mask", "spherical", "mask", "corrected"] and len(table) == 1 + 33
    assert (directory / "fsc.xml").read_text().count("<coordinate>") == 33
    assert (directory / "images" / "fsc.png").read_bytes().startswith(b"\x89PNG")
    out = recon.load_output("particles")
    source = particles.load_output("particles")
    assert np.array_equal(out["uid"], source["uid"])
    assert np.array_equal(out["alignments3D/split"], source["alignments3D/split"])
    assert np.array_equal(out["blob/path"], source["blob/path"])  # passed through


def test_a_random_split_is_balanced_and_written_back(clean):
    project, _phantom, particles, recon = clean
    again = run(project, "homo_reconstruct", {"ctf_correction": False, "random_split": True, "seed": 9},
                {"particles": f"{particles.uid}.particles"})
    split = again.load_output("particles")["alignments3D/split"]
    assert int(split.sum()) == 1500
    assert not np.array_equal(split, particles.load_output("particles")["alignments3D/split"])
    assert any("drawn at random" in e.text for e in again.events())
    assert correlation(maps_of(again)["map"], maps_of(recon)["map"]) > 0.999  # the same particles, the same map


def test_without_padding_the_map_is_less_exact_but_still_right_to_0_8_nyquist(clean):
    project, phantom, particles, recon = clean
    job = run(project, "homo_reconstruct", {"ctf_correction": False, "padding_factor": 1},
              {"particles": f"{particles.uid}.particles"})
    truth = truth_of(phantom)
    unpadded, padded = F.fsc(maps_of(job)["map"], truth)[1], F.fsc(maps_of(recon)["map"], truth)[1]
    shell = int(0.8 * 64 / 2)
    assert unpadded[1:shell + 1].min() > 0.9
    assert unpadded[1:shell + 1].mean() < padded[1:shell + 1].mean()


def test_with_ctf_and_noise_the_half_map_resolution_tracks_the_true_one_and_improves_with_particles(noisy):
    _project, truth, jobs = noisy
    half_res, true_res = {}, {}
    for count, job in jobs.items():
        maps = maps_of(job)
        freqs, curve = F.fsc(maps["map"].astype(np.float64), truth, maps["mask_fsc"], psize=2.0)
        true_res[count] = F.resolution_at(curve, freqs, 0.5)
        half_res[count] = logged_resolution(job)
        assert 1 / 1.5 < half_res[count] / true_res[count] < 1.5, (count, half_res[count], true_res[count])
        assert half_res[count] > 2 * 2.0 * 1.02  # not at Nyquist: the comparison means something
    # more particles, better maps, measured both ways; fewer particles, worse
    assert half_res[20_000] < half_res[5_000] * 0.95
    assert true_res[20_000] < true_res[5_000] * 0.95


def test_the_sharpened_map_is_sharper_than_the_map_and_still_the_molecule(noisy):
    _project, truth, jobs = noisy
    maps = maps_of(jobs[20_000])
    shells = F.shell_index(64)
    band, low = (shells >= 16) & (shells < 22), (shells >= 2) & (shells < 6)
    sharp, plain = (np.abs(np.fft.rfftn(maps[k])) for k in ("map_sharp", "map"))
    assert sharp[band].mean() / sharp[low].mean() > 1.5 * plain[band].mean() / plain[low].mean()
    # the same molecule: shell by shell (FSC ignores the amplitude scaling) it agrees with the truth as well as
    # the map does, up to the resolution
    cut = int(64 * 2.0 / logged_resolution(jobs[20_000]))
    np.testing.assert_allclose(F.fsc(maps["map_sharp"], truth)[1][1:cut - 2], F.fsc(maps["map"], truth)[1][1:cut - 2],
                               atol=0.02)


class Log:
    def __init__(self):
        self.lines = []

    def log(self, text, **_):
        self.lines.append(text)


def test_sharpening_removes_the_bfactor_and_low_passes_at_the_resolution():
    from cryoweave.jobs.library.reconstruction import _sharpen

    rng = np.random.default_rng(0)
    volume = F.sharpen(rng.normal(size=(48, 48, 48)), 200.0, 1.5)  # white noise with a B-factor of 200 Å²
    log = Log()
    out = _sharpen(log, volume, 1.5, 6.0, None)
    assert any("B-factor" in line for line in log.lines)
    spectrum = np.abs(np.fft.rfftn(out))
    shells = F.shell_index(48)
    cut = int(np.ceil(48 * 1.5 / 6.0))  # shell 12
    assert spectrum[shells >= cut + 5].max() < 1e-3 * spectrum.max()
    means = [spectrum[shells == s].mean() for s in range(2, cut - 1)]
    assert max(means) / min(means) < 1.6  # flat again up to the resolution: the B-factor is gone
    given = _sharpen(log, volume, 1.5, 6.0, 200.0)
    assert correlation(given, out) > 0.99


def test_particles_exported_to_star_and_imported_again_reconstruct_the_same_map(clean, tmp_path):
    project, _phantom, particles, recon = clean
    export = run(project, "export_relion", {}, {"particles": f"{particles.uid}.particles"})
    star = Path(project.directory) / export.uid / "particles.star"
    imported = run(project, "import_particles", {"particle_meta_path": str(star), "psize_A": 2.0})
    again = run(project, "homo_reconstruct", {"ctf_correction": False},
                {"particles": f"{imported.uid}.imported_particles"})
    before, after = maps_of(recon), maps_of(again)
    for slot in ("map", "map_half_A", "map_half_B"):
        assert correlation(before[slot], after[slot]) > 0.999, slot


def test_symmetry_is_imposed(tmp_path):
    with library_instance(tmp_path) as project:
        phantom = run(project, "generate_phantom", {"box": 32, "psize_A": 3.0, "num_atoms": 800, "symmetry": "D2",
                                                    "seed": 5})
        particles = run(project, "simulate_data", {"num_particles": 200, "snr": 0.5, "seed": 6},
                        {"volume": f"{phantom.uid}.volume"})
        truth = truth_of(phantom)
        scores = {}
        for sym in ("C1", "D2"):
            job = run(project, "homo_reconstruct", {"symmetry": sym}, {"particles": f"{particles.uid}.particles"})
            scores[sym] = correlation(maps_of(job)["map"], truth)
        assert scores["D2"] > scores["C1"] + 0.02, scores
        with pytest.raises(ParamError, match="Q7"):
            project.create_job("homo_reconstruct", params={"symmetry": "Q7"})


# ------------------------------------------------------------------------------------- bad input
def test_particles_without_poses_or_ctf_are_refused_with_what_to_do(clean, tmp_path):
    project, _phantom, particles, _recon = clean
    export = run(project, "export_relion", {}, {"particles": f"{particles.uid}.particles"})
    star = Path(project.directory) / export.uid / "particles.star"
    no_poses = run(project, "import_particles", {"particle_meta_path": str(star), "psize_A": 2.0,
                                                 "ignore_poses": True})
    job = project.create_job("homo_reconstruct")
    with pytest.raises(ParamError, match="no result for the required slot 'alignments3D'"):
        job.connect("particles", f"{no_poses.uid}.imported_particles")  # refused while building
    job = run(project, "homo_reconstruct", {}, {"particles": f"{particles.uid}.particles"}, expect="failed")
    assert "ctf" in failure(job) and "ctf_correction off" in failure(job)
    assert not job.record.outputs
