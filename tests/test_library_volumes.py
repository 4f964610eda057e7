"""Volume Tools (volume_tools): resampling, low-pass, hand flip, masks; numbers checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryoweave.dataset import Dataset
from cryoweave.jobs.library.fourier import fourier_resize, lowpass
from cryoweave.jobs.library.volumes import distance_within, threshold_mask
from cryoweave.spec import result_fields
from library_support import failure, library_instance, read_mrc, run, write_volume


def import_map(project, path: Path, data: np.ndarray, psize: float, *, kind: str = "volume", slot: str = "map",
               recorded_psize: float | None = None) -> str:
    """Write ``data`` as an MRC map and make it an output of an external job; its address."""
    write_volume(path, data, psize)
    job = project.create_external_job(title=f"Imported {path.name}")
    job.add_output(kind, kind, slots=[slot])
    group = Dataset.allocate(1, result_fields(slot))
    group[f"{slot}/path"] = np.array([str(path)], dtype=object)
    group[f"{slot}/shape"] = np.array(data.shape, np.uint32)
    group[f"{slot}/psize_A"] = psize if recorded_psize is None else recorded_psize
    with job.run():
        job.save_output(kind, group)
    return f"{job.uid}.{kind}"


def radius(box: int) -> np.ndarray:
    """Distance of each voxel from the box centre (voxels)."""
    axis = np.arange(box) - box / 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.sqrt(x * x + y * y + z * z)


def smooth_map(box: int = 64, seed: int = 0) -> np.ndarray:
    """A few Gaussian blobs, a few voxels wide: band-limited well below Nyquist of half the box."""
    rng = np.random.default_rng(seed)
    axis = np.arange(box) - box / 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    out = np.zeros((box,) * 3)
    for centre, height in zip(rng.uniform(-box / 5, box / 5, (4, 3)), rng.uniform(1, 3, 4), strict=True):
        out += height * np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / (2 * 4.0 ** 2))
    return out.astype(np.float32)


def output_map(project, job, group: str, slot: str) -> tuple[np.ndarray, Dataset]:
    data = job.load_output(group)
    assert len(data) == 1
    path = Path(project.directory) / data[f"{slot}/path"][0]
    assert path.parent.name == job.uid                                        # a new file in J<n>/
    volume = read_mrc(path)
    np.testing.assert_array_equal(data[f"{slot}/shape"][0], volume.shape)
    return volume, data


def shell_power(volume: np.ndarray, psize: float) -> tuple[np.ndarray, np.ndarray]:
    """Power of each Fourier component and its spatial frequency (Å⁻¹)."""
    spectrum = np.abs(np.fft.fftn(volume)) ** 2
    f = np.fft.fftfreq(volume.shape[0], d=psize)
    fz, fy, fx = np.meshgrid(f, f, f, indexing="ij")
    return spectrum, np.sqrt(fx * fx + fy * fy + fz * fz)


# --------------------------------------------------------------------------------------- resample
def test_resampling_down_and_back_stays_close(tmp_path):
    original = smooth_map(64)
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", original, 1.0)
        down = run(project, "volume_tools", {"resample_box": 32}, {"volume": source})
        small, data = output_map(project, down, "volume", "map")
        assert small.shape == (32, 32, 32)
        assert data["map/psize_A"][0] == pytest.approx(2.0)
        assert small.mean() == pytest.approx(original.mean(), rel=1e-5)      # the mean is kept
        np.testing.assert_allclose(small, fourier_resize(original, 32, ndim=3), atol=1e-6)
        back = run(project, "volume_tools", {"resample_psize_A": 1.0}, {"volume": f"{down.uid}.volume"})
        restored, data = output_map(project, back, "volume", "map")
        assert restored.shape == (64, 64, 64) and data["map/psize_A"][0] == pytest.approx(1.0)
        assert np.abs(restored - original).max() < 1e-3 * original.max()
        assert [o.name for o in down.record.spec.outputs] == ["volume"]     # no mask asked for, none made


def test_a_pixel_size_goes_to_the_closest_even_box(tmp_path):
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", smooth_map(64), 1.0)
        job = run(project, "volume_tools", {"resample_psize_A": 1.5}, {"volume": source})
        volume, data = output_map(project, job, "volume", "map")
        assert volume.shape == (42, 42, 42)                                   # 64 / 1.5 = 42.7 → 42
        assert data["map/psize_A"][0] == pytest.approx(64 / 42, rel=1e-6)


# ---------------------------------------------------------------------------------------- lowpass
def test_lowpass_removes_the_power_above_the_cutoff_and_keeps_it_below(tmp_path):
    box, psize, resolution, edge = 48, 1.5, 8.0, 4.0
    noise = np.random.default_rng(1).normal(size=(box,) * 3).astype(np.float32) + 3.0
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "noise.mrc", noise, psize)
        job = run(project, "volume_tools", {"lowpass_A": resolution, "lowpass_edge": edge}, {"volume": source})
        filtered, data = output_map(project, job, "volume", "map")
    assert data["map/psize_A"][0] == pytest.approx(psize) and filtered.shape == noise.shape
    before, frequency = shell_power(noise.astype(np.float64), psize)
    after, _ = shell_power(filtered.astype(np.float64), psize)
    shell = 1 / (box * psize)                                                # one Fourier shell in Å⁻¹
    cutoff = 1 / resolution
    above = frequency >= cutoff + edge / 2 * shell
    below = frequency <= cutoff - edge / 2 * shell
    assert above.sum() > 1000 and below.sum() > 1000
    assert after[above].sum() < 1e-8 * before[above].sum()                  # nothing left above the edge
    np.testing.assert_allclose(after[below], before[below], rtol=1e-3, atol=1e-3 * before[below].mean())
    # the edge falls through ½ at the cutoff: half the amplitude, a quarter of the power
    at = np.abs(frequency - cutoff) < 0.05 * shell
    if at.any():
        np.testing.assert_allclose(after[at] / before[at], 0.25, atol=0.05)
    assert filtered.mean() == pytest.approx(noise.mean(), rel=1e-5)


# ------------------------------------------------------------------------------------------- flip
def test_flip_hand_mirrors_along_z(tmp_path):
    original = np.random.default_rng(2).normal(size=(20, 20, 20)).astype(np.float32)
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", original, 2.0)
        job = run(project, "volume_tools", {"flip_hand": True}, {"volume": source})
        flipped, data = output_map(project, job, "volume", "map")
    np.testing.assert_array_equal(flipped, original[::-1])
    assert data["map/psize_A"][0] == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------- mask
def test_a_threshold_dilation_and_soft_edge_make_a_sphere_of_the_right_size(tmp_path):
    box, psize, r0, dilate, soft = 64, 2.0, 10.0, 6.0, 8.0                 # radius in voxels, widths in Å
    sphere = (r0 - radius(box)).astype(np.float32)                           # ≥ 0 inside radius r0
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "sphere.mrc", sphere, psize)
        job = run(project, "volume_tools", {"threshold": 0.0, "dilate_A": dilate, "soft_edge_A": soft},
                  {"volume": source})
        mask, data = output_map(project, job, "mask", "mask")
        assert [o.name for o in job.record.spec.outputs] == ["mask"]         # the map itself is unchanged
        assert job.record.outputs["mask"].type.value == "mask"
    assert data["mask/psize_A"][0] == pytest.approx(psize)
    assert mask.min() >= 0 and mask.max() == 1
    inner = r0 + dilate / psize                                              # 13 voxels
    outer = inner + soft / psize                                             # 17 voxels
    assert (mask == 1).sum() == pytest.approx(4 / 3 * np.pi * inner ** 3, rel=0.05)
    r = radius(box)
    soft_voxels = (mask > 0) & (mask < 1)
    assert r[soft_voxels].min() > inner - 1 and r[soft_voxels].max() < outer + 1
    assert (mask[r < inner - 1] == 1).all() and (mask[r > outer + 1] == 0).all()
    # in the edge, a raised cosine of the exact distance to the thresholded voxels (its surface voxels)
    inside = sphere >= 0
    surface = inside & ~(np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1)
                         & np.roll(inside, -1, 1) & np.roll(inside, 1, 2) & np.roll(inside, -1, 2))
    band = np.argwhere((r > inner - 1) & (r < outer + 1))
    exact = np.sqrt(((band[:, None, :] - np.argwhere(surface)[None]) ** 2).sum(-1)).min(1) * psize
    expected = 0.5 + 0.5 * np.cos(np.pi * np.clip((exact - dilate) / soft, 0, 1))
    np.testing.assert_allclose(mask[tuple(band.T)], expected, atol=1e-5)
    # the half-way level sits at the middle of the edge (within half a voxel: distances are to voxel centres)
    assert (3 * (mask >= 0.5).sum() / (4 * np.pi)) ** (1 / 3) == pytest.approx((inner + outer) / 2, abs=0.5)


def test_a_binary_mask_without_dilation_is_the_thresholded_voxels(tmp_path):
    values = np.random.default_rng(4).normal(size=(16, 16, 16)).astype(np.float32)
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", values, 1.0)
        job = run(project, "volume_tools", {"threshold": 0.5}, {"volume": source})
        mask, _ = output_map(project, job, "mask", "mask")
    np.testing.assert_array_equal(mask, (values >= 0.5).astype(np.float32))


def test_the_distance_transform_is_exact_within_its_reach():
    rng = np.random.default_rng(5)
    binary = rng.uniform(size=(14, 15, 16)) > 0.995
    binary[3, 4, 5] = True
    distance = distance_within(binary, 4.0)
    points = np.argwhere(binary)
    grid = np.indices(binary.shape).reshape(3, -1).T
    exact = np.sqrt(((grid[:, None, :] - points[None]) ** 2).sum(-1)).min(1).reshape(binary.shape)
    near = exact <= 4.0
    np.testing.assert_allclose(distance[near], exact[near], rtol=1e-6)
    assert (distance[~near] > 4.0).all()


def test_steps_run_in_order_mask_resample_lowpass_flip_then_threshold(tmp_path):
    original = smooth_map(48, seed=7)
    weights = np.zeros_like(original)
    weights[:, :, :30] = 1.0                                                 # keeps one side of the map
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", original, 1.0)
        mask_in = import_map(project, tmp_path / "raw" / "half.mrc", weights, 1.0, kind="mask", slot="mask")
        params = {"resample_box": 32, "lowpass_A": 9.0, "flip_hand": True, "threshold": 0.5, "dilate_A": 3.0,
                  "soft_edge_A": 4.5}
        job = run(project, "volume_tools", params, {"volume": source, "mask": mask_in})
        volume, data = output_map(project, job, "volume", "map")
        mask, mask_data = output_map(project, job, "mask", "mask")
    expected = fourier_resize(original * weights, 32, ndim=3)
    expected = lowpass(expected, 9.0, ndim=3, pixel_size=1.5, width=4 / 32)[::-1]
    np.testing.assert_allclose(volume, expected, atol=1e-5 * np.abs(expected).max())
    assert data["map/psize_A"][0] == pytest.approx(1.5) and mask_data["mask/psize_A"][0] == pytest.approx(1.5)
    np.testing.assert_allclose(mask, threshold_mask(volume, 0.5, 3.0, 4.5, 1.5), atol=1e-6)
    assert mask.shape == (32, 32, 32) and 0 < (mask == 1).sum() < mask.size


# -------------------------------------------------------------------------------------- bad input
def failed(project, params, inputs) -> str:
    job = run(project, "volume_tools", params, inputs, expect="failed")
    assert not job.record.outputs
    assert not [o for o in job.record.spec.outputs if o.made_at_run]  # none declared when it ran
    assert not list(Path(project.directory, job.uid).glob("*.mrc"))
    return failure(job)


def test_a_map_without_a_pixel_size_is_refused(tmp_path):
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", smooth_map(16), 1.0, recorded_psize=0.0)
        message = failed(project, {"flip_hand": True}, {"volume": source})
    assert "map/psize_A is 0, not a pixel size" in message


def test_a_mask_of_another_box_is_refused_naming_both_boxes(tmp_path):
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", smooth_map(32), 1.0)
        mask_in = import_map(project, tmp_path / "raw" / "mask.mrc", np.ones((24, 24, 24), np.float32), 1.0,
                             kind="mask", slot="mask")
        message = failed(project, {"lowpass_A": 6.0}, {"volume": source, "mask": mask_in})
    assert "the mask mask.mrc is 24×24×24 voxels but the map map.mrc is 32×32×32" in message


def test_a_missing_map_file_is_named(tmp_path):
    path = tmp_path / "raw" / "gone.mrc"
    with library_instance(tmp_path) as project:
        source = import_map(project, path, smooth_map(16), 1.0)
        path.unlink()
        message = failed(project, {"flip_hand": True}, {"volume": source})
    assert "missing or unreadable" in message and str(path) in message


@pytest.mark.parametrize("params,text", [
    ({}, "nothing to do: set resample_box or resample_psize_A, lowpass_A, flip_hand or threshold"),
    ({"resample_box": 16, "resample_psize_A": 2.0}, "set resample_box (16) or resample_psize_A (2.0), not both"),
    ({"resample_psize_A": 0.0}, "'resample_psize_A' (the new pixel size in Å) must be above 0"),
    ({"resample_psize_A": 0.01}, "is out of range (2–1024 px)"),
    ({"lowpass_A": -3.0}, "'lowpass_A' (the low-pass resolution in Å) must be above 0"),
    ({"threshold": 100.0}, "no voxel of the map reaches the threshold 100"),
])
def test_bad_parameters_fail_before_any_output(tmp_path, params, text):
    with library_instance(tmp_path) as project:
        source = import_map(project, tmp_path / "raw" / "map.mrc", smooth_map(16), 1.0)
        assert text in failed(project, params, {"volume": source})
