"""Validation (FSC) (validation_fsc) and the FSC / mask / sharpening math; numbers checked."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from cryoweave.dataset import Dataset
from cryoweave.formats.plots import line_plot
from cryoweave.jobs.library import fsc as F
from cryoweave.spec import result_fields
from library_support import failure, library_instance, read_mrc, run, write_volume


def smooth_map(box: int = 48, seed: int = 0, width: float = 2.5) -> np.ndarray:
    """A few Gaussian blobs near the centre (positive density, band-limited)."""
    rng = np.random.default_rng(seed)
    axis = np.arange(box) - box // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    out = np.zeros((box,) * 3)
    for centre, height in zip(rng.uniform(-box / 8, box / 8, (6, 3)), rng.uniform(1, 3, 6), strict=True):
        out += height * np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / (2 * width ** 2))
    return out


def noise(box: int, seed: int, sigma: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=sigma, size=(box,) * 3)


# ------------------------------------------------------------------------------------------- FSC
def test_fsc_of_a_map_with_itself_is_one_and_of_independent_noise_is_near_zero():
    a = noise(32, 1)
    freqs, same = F.fsc(a, a, psize=2.0)
    assert len(freqs) == 17 and freqs[-1] == pytest.approx(1 / 4.0)              # Nyquist at 2 · 2 Å
    np.testing.assert_allclose(same, 1.0, atol=1e-9)
    _, other = F.fsc(a, noise(32, 2))
    assert abs(other[2:].mean()) < 0.02 and np.abs(other[4:]).max() < 0.2


def test_fsc_follows_the_signal_to_noise_ratio_of_each_shell():
    box, psize, bfactor = 64, 1.0, 60.0
    signal = F.sharpen(noise(box, 3, sigma=2.0), bfactor, psize).astype(np.float64)
    a, b = signal + noise(box, 4), signal + noise(box, 5)
    freqs, curve = F.fsc(a, b, psize=psize)
    snr = 4.0 * np.exp(-bfactor * freqs ** 2 / 2)                                  # power: amplitude squared
    expected = snr / (1 + snr)
    shells = slice(4, None)
    np.testing.assert_allclose(curve[shells], expected[shells], atol=0.05)
    assert curve[shells].max() > 0.7 and curve[shells].min() < 0.2                 # the curve really falls


def test_resolution_is_interpolated_at_the_first_crossing_or_is_nyquist():
    freqs = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    curve = np.array([1.0, 0.9, 0.5, 0.1, 0.3])                                    # rises again: first crossing
    assert F.resolution_at(curve, freqs, 0.143) == pytest.approx(1 / (0.2 + 0.1 * (0.5 - 0.143) / 0.4))
    assert F.resolution_at(curve, freqs, 0.5) == pytest.approx(1 / 0.2)
    assert F.resolution_at(np.array([1.0, 0.9, 0.8, 0.7, 0.6]), freqs) == pytest.approx(2.5)
    assert F.crossing_frequency(np.array([1.0, 0.9, 0.8, 0.7, 0.6]), freqs) is None


# ------------------------------------------------------------------------------------------ masks
def test_a_soft_sphere_has_the_volume_and_edge_it_is_asked_for():
    box, radius, edge = 64, 16.0, 6.0
    hard = F.soft_sphere_mask(box, radius, 0)
    assert hard.sum() == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.02)
    soft = F.soft_sphere_mask(box, radius, edge)
    r = F.centre_distance(box)
    between = (soft > 0) & (soft < 1)
    assert r[between].min() > radius and r[between].max() < radius + edge
    assert (soft[r <= radius] == 1).all() and (soft[r >= radius + edge] == 0).all()
    half = np.abs(r - (radius + edge / 2)) < 1e-9
    np.testing.assert_allclose(soft[half], 0.5, atol=1e-6)
    # the soft edge adds half its shell's volume (to first order)
    assert soft.sum() == pytest.approx(4 / 3 * np.pi * (radius + edge / 2) ** 3, rel=0.03)


def test_an_auto_mask_covers_the_blob_and_leaves_the_corners():
    density = smooth_map(48)
    mask = F.auto_mask(density + noise(48, 6, 0.05), 1.5)
    assert mask.shape == density.shape and mask.min() >= 0 and mask.max() == 1
    strong = density > 0.5 * density.max()
    assert (mask[strong] == 1).all()
    assert mask[:4, :4, :4].max() == 0 and 0.005 < (mask > 0).mean() < 0.5


# -------------------------------------------------------------------------------- corrected FSC
def test_the_corrected_fsc_equals_the_masked_one_before_randomisation_and_is_not_above_it_after():
    box, psize = 48, 1.5
    truth = smooth_map(box, seed=8)
    a, b = truth + noise(box, 9, 0.3), truth + noise(box, 10, 0.3)
    mask = F.auto_mask((a + b) / 2, psize, dilate_A=1.5, soft_edge_A=3.0)          # tight
    _, unmasked = F.fsc(a, b)
    _, masked = F.fsc(a, b, mask)
    result = F.corrected_fsc(a, b, mask, unmasked, masked, seed=1)
    start = result.from_shell
    assert 2 <= start < len(masked) - 2 and unmasked[start] < 0.8 <= unmasked[1:start].min()
    np.testing.assert_array_equal(result.curve[:start], masked[:start])
    assert (result.curve[start:] <= masked[start:] + 1e-12).all()
    assert result.noise[start + 3:].mean() < 0.2                                 # little correlation left
    # the shells before the randomisation are untouched
    rng = np.random.default_rng(0)
    moved = F.randomize_phases(a, start, rng)
    spectrum_a, spectrum_m = np.abs(np.fft.rfftn(a)), np.abs(np.fft.rfftn(moved))
    shells = F.shell_index(box)
    inner = (shells >= 0) & (shells < start)
    np.testing.assert_allclose(spectrum_m[inner], spectrum_a[inner], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------- sharpening
def test_sharpening_round_trips_and_the_guinier_fit_recovers_a_bfactor():
    box, psize, bfactor = 64, 1.0, 80.0
    flat = noise(box, 11)                                                          # flat amplitudes
    blurred = F.sharpen(flat, bfactor, psize)
    np.testing.assert_allclose(F.sharpen(blurred, -bfactor, psize), flat, atol=1e-4)
    assert F.guinier_bfactor(blurred, psize, 3.0) == pytest.approx(bfactor, abs=3.0)
    assert abs(F.guinier_bfactor(flat, psize, 3.0)) < 3.0
    with pytest.raises(Exception, match="needs 3"):
        F.guinier_bfactor(flat, psize, 9.5)


# ------------------------------------------------------------------------------------ files, plot
def test_the_xml_parses_with_one_point_per_shell(tmp_path):
    freqs, curve = F.fsc(noise(24, 1), noise(24, 1) + noise(24, 2), psize=1.2)
    root = ET.fromstring(F.fsc_xml(freqs, curve, 'J3 "corrected"'))
    assert root.tag == "fsc" and root.get("title") == 'J3 "corrected"'
    assert root.get("xaxis") == "Resolution (A-1)" and root.get("yaxis") == "Correlation Coefficient"
    points = root.findall("coordinate")
    assert len(points) == 13
    np.testing.assert_allclose([float(p.find("x").text) for p in points], freqs, atol=1e-6)
    np.testing.assert_allclose([float(p.find("y").text) for p in points], curve, atol=1e-6)
    image = line_plot(freqs, [curve, curve / 2], ["1", "2"])
    assert image.shape == (360, 640, 3) and (image != 255).any()


# -------------------------------------------------------------------------------------- the job
def half_maps(tmp_path: Path, box: int = 32, psize: float = 2.0, seed: int = 0) -> tuple[Path, Path]:
    truth = smooth_map(box, seed=seed, width=2.0)
    a = write_volume(tmp_path / "raw" / "half_A.mrc", truth + noise(box, seed + 1, 0.3), psize)
    b = write_volume(tmp_path / "raw" / "half_B.mrc", truth + noise(box, seed + 2, 0.3), psize)
    return a, b


def image_events(job) -> list[str]:
    return [e.data["image"] for e in job.events() if "image" in (e.data or {})]


def resolution_event(job) -> float:
    return next(e.data["resolution_A"] for e in job.events() if "resolution_A" in (e.data or {}))


def test_half_maps_of_one_job_give_curves_a_resolution_a_plot_and_files(tmp_path):
    a, b = half_maps(tmp_path)
    with library_instance(tmp_path) as project:
        imported = run(project, "import_volumes", {"map_half_A_path": str(a), "map_half_B_path": str(b)})
        job = run(project, "validation_fsc", {}, {"volume": f"{imported.uid}.imported_volume_1"})
        folder = Path(project.directory) / job.uid
        resolution = resolution_event(job)
        assert 4.0 <= resolution < 20.0                                           # Nyquist is 4 Å
        assert any(e.text.startswith("4: FSC corrected at 0.143:") for e in job.events())
        images = image_events(job)
        assert len(images) == 1 and (Path(project.directory) / images[0]).read_bytes()[:4] == b"\x89PNG"
        table = np.loadtxt(folder / "fsc.txt")
        header = (folder / "fsc.txt").read_text().splitlines()[0].split()
        assert header[1:] == ["shell", "frequency_A-1", "resolution_A", "no_mask", "spherical", "mask", "corrected"]
        assert table.shape == (17, 7)
        assert len(ET.parse(folder / "fsc.xml").getroot().findall("coordinate")) == 17
        mask_out = job.load_output("mask")
        mask = read_mrc(Path(project.directory) / mask_out["mask/path"][0])
        assert mask.shape == (32, 32, 32) and mask_out["mask/psize_A"][0] == pytest.approx(2.0)
        assert 0 < (mask == 1).sum() < mask.size


def test_half_maps_from_two_jobs_wired_with_a_result_override_give_the_same_curves(tmp_path):
    a, b = half_maps(tmp_path)
    with library_instance(tmp_path) as project:
        both = run(project, "import_volumes", {"map_half_A_path": str(a), "map_half_B_path": str(b)})
        one = run(project, "import_volumes", {"map_half_A_path": str(a), "map_half_B_path": str(a)})
        other = run(project, "import_volumes", {"map_half_A_path": str(b)})
        reference = run(project, "validation_fsc", {"generate_mask": False},
                        {"volume": f"{both.uid}.imported_volume_1"})
        job = project.create_job("validation_fsc", params={"generate_mask": False})
        job.connect("volume", f"{one.uid}.imported_volume_1")
        job.connect_result("volume", 0, "map_half_B", f"{other.uid}.imported_volume_1.map_half_A")
        job.execute()
        assert job.status == "completed", failure(job)
        same = [(Path(project.directory) / j.uid / "fsc.txt").read_text() for j in (reference, job)]
        assert same[0] == same[1]
        assert resolution_event(job) == pytest.approx(resolution_event(reference))
        assert not job.record.outputs                                             # no mask: none made


def test_a_given_mask_is_used_and_handed_on(tmp_path):
    a, b = half_maps(tmp_path)
    sphere = F.soft_sphere_mask(32, 10, 3)
    path = write_volume(tmp_path / "raw" / "mask.mrc", sphere, 2.0)
    with library_instance(tmp_path) as project:
        imported = run(project, "import_volumes", {"map_half_A_path": str(a), "map_half_B_path": str(b),
                                                   "mask_path": str(path)})
        job = run(project, "validation_fsc", {"generate_mask": False},
                  {"volume": f"{imported.uid}.imported_volume_1", "mask": f"{imported.uid}.imported_mask_1"})
        table = np.loadtxt(Path(project.directory) / job.uid / "fsc.txt")
        maps = [read_mrc(p).astype(np.float64) for p in (a, b)]
        np.testing.assert_allclose(table[:, 5], F.fsc(*maps, sphere)[1], atol=1e-5)
        handed = job.load_output("mask")
        np.testing.assert_allclose(read_mrc(Path(project.directory) / handed["mask/path"][0]), sphere, atol=1e-6)


def failed(project, inputs, params=None) -> str:
    job = run(project, "validation_fsc", params or {}, inputs, expect="failed")
    assert not job.record.outputs
    folder = Path(project.directory) / job.uid
    assert not (folder / "fsc.xml").exists() and not list(folder.glob("*.mrc"))
    return failure(job)


def test_half_maps_of_different_boxes_or_pixel_sizes_are_refused_naming_both(tmp_path):
    a, _ = half_maps(tmp_path)
    small = write_volume(tmp_path / "raw" / "small.mrc", noise(24, 3), 2.0)
    coarse = write_volume(tmp_path / "raw" / "coarse.mrc", noise(32, 3), 2.5)
    with library_instance(tmp_path) as project:
        boxes = run(project, "import_volumes", {"map_half_A_path": str(a), "map_half_B_path": str(small)},
                    expect="failed")
        assert "box" in failure(boxes)                                            # import refuses it already
        first = run(project, "import_volumes", {"map_half_A_path": str(a)})
        second = run(project, "import_volumes", {"map_half_A_path": str(small)})
        third = run(project, "import_volumes", {"map_half_A_path": str(coarse)})
        assert "input 'volume' has no half map B" in failed(project, {"volume": f"{first.uid}.imported_volume_1"})
        for source, text in ((second, "half map A half_A.mrc is 32×32×32 voxels but half map B small.mrc is "
                                      "24×24×24"),
                             (third, "half map A half_A.mrc has 2 Å pixels but half map B coarse.mrc has 2.5 Å")):
            job = project.create_job("validation_fsc")
            job.connect("volume", f"{first.uid}.imported_volume_1")
            job.connect_result("volume", 0, "map_half_B", f"{source.uid}.imported_volume_1.map_half_A")
            job.execute()
            assert job.status == "failed" and text in failure(job)
            assert not job.record.outputs


def test_a_missing_file_and_a_zero_pixel_size_are_refused(tmp_path):
    a, b = half_maps(tmp_path)
    with library_instance(tmp_path) as project:
        imported = run(project, "import_volumes", {"map_half_A_path": str(a), "map_half_B_path": str(b)})
        source = {"volume": f"{imported.uid}.imported_volume_1"}
        assert "'psize_override_A' (the pixel size in Å) must be above 0" in failed(project, source,
                                                                                   {"psize_override_A": 0.0})
        b.unlink()
        message = failed(project, source)
        assert "map_half_B file" in message and "missing or unreadable" in message
        external = project.create_external_job(title="Half maps without a pixel size")
        external.add_output("volume", "volume", slots=["map_half_A", "map_half_B"])
        group = Dataset.allocate(1, result_fields("map_half_A") + result_fields("map_half_B"))
        for slot in ("map_half_A", "map_half_B"):
            group[f"{slot}/path"] = np.array([str(a)], dtype=object)
            group[f"{slot}/shape"] = np.array([32, 32, 32], np.uint32)
            group[f"{slot}/psize_A"] = 0.0
        with external.run():
            external.save_output("volume", group)
        assert "map_half_A/psize_A is 0, not a pixel size" in failed(project, {"volume": f"{external.uid}.volume"})
        fixed = run(project, "validation_fsc", {"psize_override_A": 1.0}, {"volume": f"{external.uid}.volume"})
        assert resolution_event(fixed) == pytest.approx(2.0)                      # a map with itself: Nyquist
