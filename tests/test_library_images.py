"""Downsample Particles, Restack Particles and the Fourier resizing they share: numbers checked.

Stacks are written with mrcfile; the particles that point at them come from an external job.
Expected images are computed here with ``numpy.fft`` on the centred spectrum, independently of
:mod:`cryoweave.jobs.library.fourier` (which works one axis at a time on real FFTs).
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

import cryoweave.jobs.library.images as images_module
from builder_helpers import particles
from cryoweave.jobs.library.fourier import fourier_resize, lowpass
from library_support import failure, library_instance, random_images, read_mrc, run, write_stack

PSIZE = 1.5


# ---------------------------------------------------------------------------------- references
def centred_crop(image: np.ndarray, m: int) -> np.ndarray:
    """Fourier crop of one image with numpy: centred spectrum, keep -m/2 … +m/2, the ±m/2 rows (and
    columns) summed onto the new Nyquist, back, scaled so the mean is kept."""
    n = image.shape[-1]
    f = np.fft.fftshift(np.fft.fft2(image.astype(np.float64)))
    c, h = n // 2, m // 2
    window = f[c - h:c + h + 1, c - h:c + h + 1].copy()  # frequencies -h … +h
    if m % 2 == 0:
        window[0, :] += window[-1, :]
        window = window[:-1]
        window[:, 0] += window[:, -1]
        window = window[:, :-1]
    return np.fft.ifft2(np.fft.ifftshift(window)).real * (m * m) / (n * n)


def plain_crop(image: np.ndarray, m: int) -> np.ndarray:
    """The textbook way: fft2, fftshift, crop -m/2 … m/2-1, ifftshift, ifft2, real part, scale."""
    n = image.shape[-1]
    f = np.fft.fftshift(np.fft.fft2(image.astype(np.float64)))
    a = n // 2 - m // 2
    return np.fft.ifft2(np.fft.ifftshift(f[a:a + m, a:a + m])).real * (m * m) / (n * n)


def close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-5) -> bool:
    return float(np.abs(a - b).max()) <= rtol * float(np.abs(b).max())


# -------------------------------------------------------------------------------------- fourier
@pytest.mark.parametrize(("n", "m"), [(64, 32), (64, 48), (50, 22), (63, 32), (64, 31), (8, 2)])
def test_fourier_resize_equals_numpy_crop_of_the_centred_spectrum(n, m):
    batch = random_images(5, n, seed=n + m)
    out = fourier_resize(batch, m)
    assert out.shape == (5, m, m) and out.dtype == np.float32
    for image, got in zip(batch, out, strict=True):
        assert close(got, centred_crop(image, m))


def test_fourier_resize_differs_from_a_plain_centred_crop_only_at_nyquist():
    image = random_images(1, 64, seed=3)[0]
    ours, plain = np.fft.fft2(fourier_resize(image, 32)), np.fft.fft2(plain_crop(image, 32))
    below = np.ones((32, 32), bool)
    below[16, :] = below[:, 16] = False  # the new Nyquist row and column
    assert np.allclose(ours[below], plain[below], rtol=1e-5, atol=1e-3)
    assert not np.allclose(ours[~below], plain[~below], atol=1e-3)  # plain keeps half of a Nyquist cosine
    k = np.arange(32)
    nyquist_cosine = np.cos(np.pi * k)[None, :] * np.ones((32, 1))  # samples of a cosine at ±16 cycles per box
    fine = np.cos(np.pi * np.arange(64) / 2)[None, :] * np.ones((64, 1))
    assert close(fourier_resize(fine, 32, ndim=2), nyquist_cosine)
    assert close(fourier_resize(fine[None], 32)[0], nyquist_cosine)


def test_fourier_resize_keeps_the_mean_in_2d_and_3d_and_padding_interpolates():
    rng = np.random.default_rng(7)
    volume = rng.normal(3.0, 1.0, (40, 36, 44)).astype(np.float32)
    for box in (24, (20, 18, 30), 64):
        out = fourier_resize(volume, box, ndim=3)
        assert out.shape == ((box,) * 3 if np.isscalar(box) else box)
        assert abs(float(out.mean(dtype=np.float64)) - float(volume.mean(dtype=np.float64))) < 1e-5
    images = rng.normal(-2.0, 5.0, (3, 30, 30))  # float64 stays float64
    smaller = fourier_resize(images, 12)
    assert smaller.dtype == np.float64 and np.allclose(smaller.mean(axis=(1, 2)), images.mean(axis=(1, 2)))
    assert np.allclose(fourier_resize(np.full((2, 16, 16), 7.25, np.float32), 6), 7.25)
    for n in (32, 31):  # padding is trigonometric interpolation: the old samples are kept; cropping undoes it
        image = rng.normal(size=(n, n)).astype(np.float32)
        assert close(fourier_resize(image, 2 * n)[::2, ::2], image)
        assert close(fourier_resize(fourier_resize(image, 2 * n), n), image)
    volume32 = volume[:32, :32, :32]
    assert close(fourier_resize(fourier_resize(volume32, 48, ndim=3), 32, ndim=3), volume32)


def test_lowpass_keeps_the_mean_passes_low_and_removes_high_frequencies():
    y, x = np.mgrid[:64, :64]
    low = np.cos(2 * np.pi * 4 * x / 64)  # 4 cycles per box: 32 Å at 2 Å/px
    high = np.cos(2 * np.pi * 20 * y / 64)  # 20 cycles: 6.4 Å
    image = (5 + low + high).astype(np.float32)
    out = lowpass(image, 10.0, pixel_size=2.0)  # half at 0.2 cycles/px = 12.8 cycles per box
    assert close(out, 5 + low, rtol=1e-5)
    volume = np.random.default_rng(1).normal(2.0, 1.0, (24, 24, 24)).astype(np.float32)
    smooth = lowpass(volume, 0.1, ndim=3, width=0)
    assert abs(float(smooth.mean()) - float(volume.mean())) < 1e-5
    spectrum = np.abs(np.fft.fftn(smooth))
    radius = np.sqrt(sum(np.square(np.fft.fftfreq(24))[tuple(slice(None) if a == i else None for a in range(3))]
                         for i in range(3)))
    assert spectrum[radius > 0.1].max() < 1e-3 and spectrum[(radius > 0) & (radius < 0.08)].min() > 1e-3


# ---------------------------------------------------------------------------------------- jobs
def source(project, stacks: list[tuple[str, int, int]], results=("blob", "ctf", "alignments2D", "alignments3D"),
           seed: int = 0, align_psize: float | np.ndarray = PSIZE):
    """An external job whose particles point at ``stacks`` (path as stored, images used, box)."""
    rng = np.random.default_rng(seed)
    paths = [path for path, count, _ in stacks for _ in range(count)]
    n = len(paths)
    data = particles(rng.choice(2**62, n, replace=False), *results)
    data["blob/path"] = np.array(paths, dtype=object)
    data["blob/idx"] = np.concatenate([np.arange(count) for _, count, _ in stacks])
    data["blob/shape"] = np.array([[box, box] for _, count, box in stacks for _ in range(count)])
    data["blob/psize_A"] = PSIZE
    data["blob/sign"] = -1.0
    if "ctf" in results:
        data["ctf/df1_A"] = rng.uniform(1e4, 3e4, n)
    for name in ("alignments2D", "alignments3D"):
        if name in results:
            data[f"{name}/shift"] = rng.uniform(-6, 6, (n, 2))
            data[f"{name}/psize_A"] = align_psize
            data[f"{name}/class"] = rng.integers(0, 5, n)
    job = project.create_external_job(title=f"{n} particles")
    job.add_output("particle", "particles", slots=list(results))
    with job.run():
        job.save_output("particles", data)
    return f"{job.uid}.particles", data


def images_of(project, out) -> np.ndarray:
    cache: dict[str, np.ndarray] = {}
    rows = []
    for path, idx in zip(out["blob/path"], out["blob/idx"], strict=True):
        if path not in cache:
            data = read_mrc(project.directory / path)
            cache[path] = data.reshape(-1, *data.shape[-2:])  # mrcfile gives a 1-image stack as 2D
        rows.append(cache[path][idx])
    return np.stack(rows)


def three_stacks(tmp_path: Path, project, box: int = 64) -> tuple[list[tuple[str, int, int]], np.ndarray]:
    """Stacks of 7, 5 and 9 images: two outside the project (absolute paths, one with more images
    than are used), one inside it (a project-relative path); and the 20 images in particle order."""
    a = random_images(7, box, seed=1)
    b = random_images(8, box, seed=2)
    c = random_images(9, box, seed=3)
    write_stack(tmp_path / "raw" / "a.mrcs", a, PSIZE)
    write_stack(tmp_path / "raw" / "b.mrcs", b, PSIZE)
    write_stack(project.directory / "data" / "c.mrcs", c, PSIZE)
    raw = tmp_path / "raw"
    stacks = [(str(raw / "a.mrcs"), 7, box), ("data/c.mrcs", 9, box), (str(raw / "b.mrcs"), 5, box)]
    return stacks, np.concatenate([a, c, b[:5]])


def stack_files(job) -> list[Path]:
    return sorted(p for p in job.directory.rglob("*") if p.is_file() and ".mrcs" in p.name)


def test_downsample_to_a_fourier_box_rescales_shifts_and_passes_the_rest_through(tmp_path):
    with library_instance(tmp_path) as project:
        stacks, originals = three_stacks(tmp_path, project)
        address, data = source(project, stacks)
        job = run(project, "downsample_particles", {"fourier_box": 32, "stack_size": 6}, {"particles": address})
        out = job.load_output("particles")
        assert out["uid"].tolist() == data["uid"].tolist()
        assert out["blob/path"].tolist() == [f"{job.uid}/downsampled/batch_{i // 6:06d}.mrcs" for i in range(21)]
        assert out["blob/idx"].tolist() == [i % 6 for i in range(21)]
        assert (out["blob/shape"] == 32).all() and (out["blob/psize_A"] == np.float32(3.0)).all()
        assert (out["blob/sign"] == -1).all()
        assert [read_mrc(p).shape[0] for p in stack_files(job)] == [6, 6, 6, 3]
        got = images_of(project, out)
        assert got.dtype == np.float32
        for image, original in zip(got, originals, strict=True):
            assert close(image, centred_crop(original, 32))
        for name in ("alignments2D", "alignments3D"):
            assert np.allclose(out[f"{name}/shift"], data[f"{name}/shift"] / 2, rtol=1e-6)
            assert (out[f"{name}/psize_A"] == np.float32(3.0)).all()
            assert (out[f"{name}/class"] == data[f"{name}/class"]).all()
        assert (out["ctf/df1_A"] == data["ctf/df1_A"]).all()
        results = job.outputs["particles"].results
        assert results["ctf"].passthrough and not results["blob"].passthrough
        assert not results["alignments3D"].passthrough
        with mrcfile.open(stack_files(job)[0], header_only=True) as mrc:
            assert float(mrc.voxel_size.x) == pytest.approx(3.0)
        filtered = run(project, "downsample_particles", {"fourier_box": 32, "lowpass_A": 12.0}, {"particles": address})
        got = images_of(project, filtered.load_output("particles"))
        for image, original in zip(got, originals, strict=True):
            assert close(image, lowpass(centred_crop(original, 32), 12.0, pixel_size=3.0), rtol=2e-5)


def test_downsample_crop_then_pixel_size_and_float16_within_half_precision(tmp_path):
    with library_instance(tmp_path) as project:
        stacks, originals = three_stacks(tmp_path, project)
        align_psize = np.where(np.arange(21) % 2, 3.0, 0.0)  # 3 Å pixels, or not set (the blob's then)
        address, data = source(project, stacks, results=("blob", "ctf", "alignments2D"), align_psize=align_psize)
        params = {"crop_box": 48, "psize_A": 4.0}  # 48 px at 1.5 Å: 18 px would be exactly 4 Å
        single = run(project, "downsample_particles", params, {"particles": address})
        half = run(project, "downsample_particles", {**params, "float16": True}, {"particles": address})
        out, out16 = single.load_output("particles"), half.load_output("particles")
        assert (out["blob/shape"] == 18).all() and (out["blob/psize_A"] == np.float32(4.0)).all()
        got, got16 = images_of(project, out), images_of(project, out16)
        assert got16.dtype == np.float16 and got.dtype == np.float32
        for image, original in zip(got, originals, strict=True):
            assert close(image, centred_crop(original[8:56, 8:56], 18))
        assert np.allclose(got16, got, rtol=2**-10, atol=2**-10 * np.abs(got).max())
        expected = data["alignments2D/shift"] * np.where(align_psize > 0, 3.0 / 4.0, 18 / 48)[:, None]
        assert np.allclose(out["alignments2D/shift"], expected, rtol=1e-6)
        assert (out["alignments2D/psize_A"] == np.float32(4.0)).all()
        assert "alignments3D" not in out.prefixes()
        odd = run(project, "downsample_particles", {"psize_A": 2.2}, {"particles": address})  # 64·1.5/2.2 = 43.6
        assert (odd.load_output("particles")["blob/shape"] == 42).all()
        assert odd.load_output("particles")["blob/psize_A"][0] == np.float32(1.5 * 64 / 42)


def test_downsample_pads_with_the_image_mean_keeping_the_centre(tmp_path):
    with library_instance(tmp_path) as project:
        stacks, originals = three_stacks(tmp_path, project, box=32)
        address, _ = source(project, stacks, results=("blob",))
        job = run(project, "downsample_particles", {"crop_box": 40, "fourier_box": 40}, {"particles": address})
        got = images_of(project, job.load_output("particles"))
        assert (job.load_output("particles")["blob/psize_A"] == np.float32(PSIZE)).all()
        assert np.array_equal(got[:, 4:36, 4:36], originals)
        means = originals.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
        assert np.array_equal(got[:, 0, :], np.repeat(means[:, None], 40, axis=1))
        assert np.array_equal(got[:, 20, :4], np.repeat(means[:, None], 4, axis=1))


def test_downsample_and_restack_give_the_same_results_whatever_the_chunk(tmp_path, monkeypatch):
    with library_instance(tmp_path) as project:
        stacks, _ = three_stacks(tmp_path, project)
        address, _ = source(project, stacks)
        params = {"fourier_box": 24, "stack_size": 4}
        whole = images_of(project, run(project, "downsample_particles", params, {"particles": address})
                          .load_output("particles"))
        restacked = images_of(project, run(project, "restack_particles", {"stack_size": 4}, {"particles": address})
                              .load_output("particles"))
        monkeypatch.setattr(images_module, "CHUNK_BYTES", 3 * 64 * 64 * 4)  # 3 images a chunk: < 4 per stack, < 21
        assert images_module._chunk((64, 64)) == 3
        pieces = images_of(project, run(project, "downsample_particles", params, {"particles": address})
                           .load_output("particles"))
        assert np.array_equal(pieces, whole)
        again = images_of(project, run(project, "restack_particles", {"stack_size": 4}, {"particles": address})
                          .load_output("particles"))
        assert np.array_equal(again, restacked)


def test_restack_copies_images_bit_for_bit_into_stacks_of_the_batch_size(tmp_path):
    with library_instance(tmp_path) as project:
        stacks, originals = three_stacks(tmp_path, project)
        address, data = source(project, stacks)
        job = run(project, "restack_particles", {"stack_size": 8}, {"particles": address})
        out = job.load_output("particles")
        assert out["uid"].tolist() == data["uid"].tolist()
        assert [read_mrc(p).shape[0] for p in stack_files(job)] == [8, 8, 5]
        assert all(p.parent.name == "restack" for p in stack_files(job))
        got = images_of(project, out)
        assert got.dtype == np.float32 and np.array_equal(got, originals)
        assert (out["blob/psize_A"] == np.float32(PSIZE)).all() and (out["blob/shape"] == 64).all()
        for field in ("ctf/df1_A", "alignments2D/shift", "alignments3D/shift", "alignments3D/psize_A"):
            assert np.array_equal(out[field], data[field])
        assert [n for n, r in job.outputs["particles"].results.items() if not r.passthrough] == ["blob"]
        half = run(project, "restack_particles", {"float16": True}, {"particles": address})
        got16 = images_of(project, half.load_output("particles"))
        assert got16.dtype == np.float16 and np.array_equal(got16, originals.astype(np.float16))
        assert [read_mrc(p).shape[0] for p in stack_files(half)] == [21]


@pytest.mark.parametrize(("params", "message"), [
    ({"fourier_box": 32, "psize_A": 3.0}, "set exactly one of 'fourier_box'"),
    ({}, "not neither"),
    ({"fourier_box": 80}, "larger than the particles' box of 64"),
    ({"crop_box": 40, "fourier_box": 48}, "larger than the particles' box of 40"),
    ({"psize_A": 1.0}, "needs a box of 96"),
    ({"fourier_box": 31}, "must be an even number"),
    ({"crop_box": 33, "fourier_box": 32}, "must be an even number"),
    ({"psize_A": 200.0}, "fewer than 2 pixels"),
    ({"fourier_box": 32, "stack_size": 0}, "must lie in"),
])
def test_downsample_refuses_bad_parameters(tmp_path, params, message):
    with library_instance(tmp_path) as project:
        stacks, _ = three_stacks(tmp_path, project)
        address, _ = source(project, stacks)
        try:
            job = run(project, "downsample_particles", params, {"particles": address}, expect="failed")
        except Exception as err:  # a parameter refused when the job is made
            assert message in str(err)
            return
        assert message in failure(job)
        assert not (job.directory / "downsampled").exists() and not job.outputs.get("particles")


def test_downsample_refuses_missing_stacks_mixed_boxes_and_images_past_the_end(tmp_path):
    with library_instance(tmp_path) as project:
        stacks, _ = three_stacks(tmp_path, project)
        write_stack(tmp_path / "raw" / "small.mrcs", random_images(4, 32), PSIZE)
        cases = [
            ([*stacks, (str(tmp_path / "raw" / "gone.mrcs"), 2, 64)], "1 particle stacks are missing or unreadable"),
            ([*stacks, (str(tmp_path / "raw" / "small.mrcs"), 4, 32)], "different box sizes (32×32"),
            ([*stacks[:2], (str(tmp_path / "raw" / "b.mrcs"), 9, 64)], "image 8 of"),
        ]
        for layout, message in cases:
            address, _ = source(project, layout)
            for job_type in ("downsample_particles", "restack_particles"):
                job = run(project, job_type, {"fourier_box": 32} if job_type.startswith("down") else {},
                          {"particles": address}, expect="failed")
                assert message in failure(job), failure(job)
                assert stack_files(job) == [] and not job.outputs.get("particles")


def test_a_failure_midway_removes_the_stacks_already_written(tmp_path, monkeypatch):
    with library_instance(tmp_path) as project:
        stacks, originals = three_stacks(tmp_path, project)
        loud = originals[-5:] * 1e5  # b.mrcs: the last 5 particles are beyond float16
        write_stack(tmp_path / "raw" / "b.mrcs", np.concatenate([loud, loud[:3]]), PSIZE)
        address, data = source(project, stacks)
        monkeypatch.setattr(images_module, "CHUNK_BYTES", 2 * 64 * 64 * 4)
        for job_type, params in (("downsample_particles", {"fourier_box": 32}), ("restack_particles", {})):
            job = run(project, job_type, {**params, "float16": True, "stack_size": 3}, {"particles": address},
                      expect="failed")
            assert f"particle 16 (uid {int(data['uid'][16])}) has values beyond" in failure(job)
            assert stack_files(job) == [] and not job.outputs.get("particles")
            assert not any(job.directory.glob("*/*.mrcs*"))
