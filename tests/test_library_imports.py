"""import_movies, import_micrographs and import_volumes on real MRC and TIFF files written here.

Every value of the outputs is checked against the files; every bad input fails before anything
is written (no outputs, no ``imported/`` links) with a message naming the files.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from cryoweave.jobs.library.common import import_sig
from library_support import failure, library_instance, random_images, run, write_stack, write_volume
from test_cli_projects import Cryoweave

SCOPE = {"accel_kv": 200, "cs_mm": 2.0, "total_dose_e_per_A2": 52.5, "exp_group_id": 3}


def micrograph(path: Path, shape: tuple[int, int] = (48, 64), pixel_size: float = 1.0, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.random.default_rng(seed).normal(size=shape).astype(np.float32))
        mrc.voxel_size = pixel_size
    return path


def tiff_movie(path: Path, frames: int = 7, shape: tuple[int, int] = (40, 56), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.random.default_rng(seed).integers(0, 4, size=(frames, *shape), dtype=np.uint8))
    return path


def mrc_movie(path: Path, frames: int = 5, shape: tuple[int, int] = (40, 56)) -> Path:
    return write_stack(path, np.random.default_rng(0).normal(size=(frames, *shape)).astype(np.float32))


def links_ok(project, paths: np.ndarray, originals: list[Path]) -> None:
    """Each path is ``J1/imported/<name>``, a link in the project to the original file."""
    assert list(paths) == [f"J1/imported/{p.name}" for p in originals]
    for path, original in zip(paths, originals, strict=True):
        link = project.directory / path
        assert link.is_symlink() and link.resolve() == original.resolve()


def failed(project, job_type: str, params: dict) -> tuple[str, object]:
    """Run a job that must fail: its message; it has no outputs and no imported/ folder."""
    job = run(project, job_type, params, expect="failed")
    assert job.outputs == {}
    assert not (job.directory / "imported").exists()
    return failure(job), job


# ----------------------------------------------------------------------------------- micrographs
def test_import_micrographs_mrc(tmp_path):
    files = [micrograph(tmp_path / "raw" / f"mic_{i:03d}.mrc", seed=i) for i in range(5)]
    with library_instance(tmp_path) as project:
        job = run(project, "import_micrographs", {"blob_paths": str(tmp_path / "raw" / "mic_*.mrc"),
                                                  "psize_A": 0.83, **SCOPE})
        mics = job.load_output("imported_micrographs")
        assert len(mics) == 5 and len(np.unique(mics["uid"])) == 5 and mics["uid"].dtype == np.uint64
        links_ok(project, mics["micrograph_blob/path"], files)
        assert mics["micrograph_blob/idx"].tolist() == [0] * 5
        assert mics["micrograph_blob/shape"].tolist() == [[48, 64]] * 5
        assert mics["micrograph_blob/psize_A"].tolist() == [np.float32(0.83)] * 5
        assert list(mics["micrograph_blob/format"]) == ["MRC"] * 5
        assert mics["micrograph_blob/is_background_subtracted"].tolist() == [0] * 5
        assert mics["micrograph_blob/vmin"].tolist() == mics["micrograph_blob/vmax"].tolist() == [0.0] * 5
        assert mics["micrograph_blob/import_sig"].tolist() == [import_sig(f) for f in files]
        assert mics["mscope_params/accel_kv"].tolist() == [200.0] * 5
        assert mics["mscope_params/cs_mm"].tolist() == [2.0] * 5
        assert mics["mscope_params/total_dose_e_per_A2"].tolist() == [52.5] * 5
        assert mics["mscope_params/exp_group_id"].tolist() == [3] * 5
        assert mics["mscope_params/phase_plate"].tolist() == mics["mscope_params/neg_stain"].tolist() == [0] * 5
        assert list(mics["mscope_params/defect_path"]) == [""] * 5
        texts = [e.text for e in job.events()]
        assert any(t.startswith("importing 5 micrographs (MRC, 48×64 px, 0.83 Å/px); headers read in ")
                   for t in texts)


def test_import_micrographs_tiff_and_header_pixel_size_warning(tmp_path):
    files = [tmp_path / f"m{i}.tif" for i in range(3)]
    for i, f in enumerate(files):
        tifffile.imwrite(f, np.full((30, 20), i, np.float32))
    other = micrograph(tmp_path / "m3.mrc", shape=(30, 20), pixel_size=1.5)
    with library_instance(tmp_path) as project:
        job = run(project, "import_micrographs", {"blob_paths": str(tmp_path / "m*"), "psize_A": 1.2,
                                                  "phase_plate_data": True, "negative_stain_data": True})
        mics = job.load_output("imported_micrographs")
        assert list(mics["micrograph_blob/format"]) == ["TIFF", "TIFF", "TIFF", "MRC"]
        assert mics["micrograph_blob/shape"].tolist() == [[30, 20]] * 4
        links_ok(project, mics["micrograph_blob/path"], [*files, other])
        assert mics["mscope_params/total_dose_e_per_A2"].tolist() == [0.0] * 4
        assert mics["mscope_params/phase_plate"].tolist() == mics["mscope_params/neg_stain"].tolist() == [1] * 4
        warnings = [e.text for e in job.events() if e.level == "warning"]
        assert warnings == ["the pixel size is set to 1.2 Å but some MRC headers say 1.5 Å; the parameter is used"]


def test_many_micrographs_report_progress(tmp_path):
    first = micrograph(tmp_path / "raw" / "mic_0000.mrc", shape=(16, 16))
    data = first.read_bytes()
    for i in range(1, 1200):
        (tmp_path / "raw" / f"mic_{i:04d}.mrc").write_bytes(data)
    with library_instance(tmp_path) as project:
        job = run(project, "import_micrographs", {"blob_paths": str(tmp_path / "raw" / "*.mrc"), "psize_A": 1})
        mics = job.load_output("imported_micrographs")
        assert len(mics) == 1200 and len(np.unique(mics["uid"])) == 1200
        assert len(set(mics["micrograph_blob/import_sig"].tolist())) == 1200
        progress = [e.data["progress"] for e in job.events() if "progress" in e.data]
        assert progress[-1] == {"done": 1200, "total": 1200}


# ---------------------------------------------------------------------------------------- movies
def test_import_tiff_movies_with_gain_and_defects(tmp_path, monkeypatch):
    def no_pixels(*args, **kwargs):
        raise AssertionError("an import reads headers only")

    for cls in (tifffile.TiffFile, tifffile.TiffPage, tifffile.TiffFrame):
        monkeypatch.setattr(cls, "asarray", no_pixels)
    movies = [tiff_movie(tmp_path / "movies" / f"mov_{i}.tif", seed=i) for i in range(3)]
    gain = micrograph(tmp_path / "gain" / "gain.mrc", shape=(56, 40))  # turned once, it fits 40×56 frames
    defects = tmp_path / "gain" / "defects.txt"
    defects.write_text("0 0 1 1\n")
    with library_instance(tmp_path) as project:
        job = run(project, "import_movies", {
            "blob_paths": str(tmp_path / "movies" / "*.tif"), "psize_A": 0.5, **SCOPE, "gainref_path": str(gain),
            "gainref_flip_x": True, "gainref_rotate_num": 1, "defect_path": str(defects)})
        out = job.load_output("imported_movies")
        assert len(out) == 3 and len(np.unique(out["uid"])) == 3
        links_ok(project, out["movie_blob/path"], movies)
        assert out["movie_blob/shape"].tolist() == [[7, 40, 56]] * 3
        assert out["movie_blob/psize_A"].tolist() == [0.5] * 3
        assert list(out["movie_blob/format"]) == ["TIFF"] * 3
        assert out["movie_blob/is_gain_corrected"].tolist() == [0] * 3
        assert out["movie_blob/has_defect_file"].tolist() == [1] * 3
        assert out["movie_blob/import_sig"].tolist() == [import_sig(m) for m in movies]
        links_ok(project, out["gain_ref_blob/path"], [gain] * 3)
        assert out["gain_ref_blob/idx"].tolist() == [0] * 3
        assert out["gain_ref_blob/shape"].tolist() == [[56, 40]] * 3
        assert out["gain_ref_blob/flip_x"].tolist() == [1] * 3
        assert out["gain_ref_blob/flip_y"].tolist() == [0] * 3
        assert out["gain_ref_blob/rotate_num"].tolist() == [1] * 3
        links_ok(project, out["mscope_params/defect_path"], [defects] * 3)
        assert out["mscope_params/total_dose_e_per_A2"].tolist() == [52.5] * 3
        assert sorted(p.name for p in (job.directory / "imported").iterdir()) == [
            "defects.txt", "gain.mrc", "mov_0.tif", "mov_1.tif", "mov_2.tif"]


def test_import_mrc_movies_without_gain(tmp_path):
    movies = [mrc_movie(tmp_path / "a" / "m.mrcs"), mrc_movie(tmp_path / "b" / "m.mrcs")]  # same name, 2 folders
    with library_instance(tmp_path) as project:
        job = run(project, "import_movies", {"blob_paths": str(tmp_path / "*" / "m.mrcs"), "psize_A": 1.1,
                                             "total_dose_e_per_A2": 40})
        out = job.load_output("imported_movies")
        assert "gain_ref_blob/path" not in out.fields()
        assert out["movie_blob/shape"].tolist() == [[5, 40, 56]] * 2
        assert list(out["movie_blob/format"]) == ["MRC"] * 2
        assert out["movie_blob/is_gain_corrected"].tolist() == [1, 1]
        assert out["movie_blob/has_defect_file"].tolist() == [0, 0]
        assert out["mscope_params/accel_kv"].tolist() == [300.0] * 2
        paths = list(out["movie_blob/path"])
        assert paths[0] == "J1/imported/m.mrcs" and paths[1] == f"J1/imported/{import_sig(movies[1]):016x}_m.mrcs"
        assert [(project.directory / p).resolve() for p in paths] == [m.resolve() for m in movies]


def test_tiff_gain_reference_of_mrc_movies(tmp_path):
    for i in range(2):
        mrc_movie(tmp_path / f"m{i}.mrc")
    gain = tmp_path / "falcon.gain"
    tifffile.imwrite(gain, np.ones((40, 56), np.float32))
    with library_instance(tmp_path) as project:
        job = run(project, "import_movies", {"blob_paths": str(tmp_path / "m*.mrc"), "psize_A": 1.1,
                                             "total_dose_e_per_A2": 40, "gainref_path": str(gain),
                                             "gainref_flip_y": True, "gainref_rotate_num": 2})
        out = job.load_output("imported_movies")
        links_ok(project, out["gain_ref_blob/path"], [gain] * 2)
        assert out["gain_ref_blob/shape"].tolist() == [[40, 56]] * 2
        assert [out[f"gain_ref_blob/{k}"].tolist() for k in ("flip_x", "flip_y", "rotate_num")] == [[0, 0], [1, 1],
                                                                                                   [2, 2]]
        assert out["movie_blob/is_gain_corrected"].tolist() == [0, 0]
        assert "imported 2 movies with gain reference falcon.gain" in [e.text for e in job.events()]


# --------------------------------------------------------------------------------------- volumes
def test_import_volumes_with_half_maps_and_mask(tmp_path):
    rng = np.random.default_rng(1)
    files = {slot: write_volume(tmp_path / f"{slot}.mrc", rng.normal(size=(24, 24, 24)), pixel_size=1.3)
             for slot in ("map", "map_half_A", "map_half_B", "mask")}
    with library_instance(tmp_path) as project:
        job = run(project, "import_volumes", {f"{slot}_path": str(f) for slot, f in files.items()})
        assert set(job.outputs) == {"imported_volume_1", "imported_mask_1"}
        assert job.outputs["imported_volume_1"].type == "volume" and job.outputs["imported_mask_1"].type == "mask"
        volume = job.load_output("imported_volume_1")
        mask = job.load_output("imported_mask_1")
        assert len(volume) == len(mask) == 1 and volume["uid"][0] != mask["uid"][0]
        assert sorted(volume.prefixes()) == ["map", "map_half_A", "map_half_B"] and mask.prefixes() == ["mask"]
        for slot, data in [("map", volume), ("map_half_A", volume), ("map_half_B", volume), ("mask", mask)]:
            assert data[f"{slot}/path"][0] == f"J1/imported/{slot}.mrc"
            assert (project.directory / data[f"{slot}/path"][0]).resolve() == files[slot].resolve()
            assert data[f"{slot}/shape"].tolist() == [[24, 24, 24]]
            assert data[f"{slot}/psize_A"].tolist() == [np.float32(1.3)]


def test_import_one_map_with_pixel_size_override(tmp_path):
    path = write_volume(tmp_path / "only.mrc", np.zeros((16, 16, 16)), pixel_size=0.0)
    with library_instance(tmp_path) as project:
        job = run(project, "import_volumes", {"map_path": str(path), "psize_A": 0.9})
        assert set(job.outputs) == {"imported_volume_1"}
        volume = job.load_output("imported_volume_1")
        assert volume.prefixes() == ["map"] and volume["map/psize_A"].tolist() == [np.float32(0.9)]
        mask_job = run(project, "import_volumes", {"mask_path": str(path), "psize_A": 2})
        assert set(mask_job.outputs) == {"imported_mask_1"}
        assert mask_job.load_output("imported_mask_1")["mask/path"][0] == "J2/imported/only.mrc"


# ------------------------------------------------------------------------------------- bad input
def test_bad_micrograph_imports_fail_before_writing(tmp_path):
    raw = tmp_path / "raw"
    good = [micrograph(raw / f"g{i}.mrc") for i in range(4)]
    small = micrograph(raw / "small.mrc", shape=(32, 32))
    notes = raw / "notes.txt"
    notes.write_text("not an image")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "fake.mrc").write_bytes(b"\0" * 2000)
    (tmp_path / "gone").mkdir()
    os.symlink(tmp_path / "nowhere.mrc", tmp_path / "gone" / "lost.mrc")
    movie = write_stack(tmp_path / "stack" / "movie.mrc", random_images(6, 16))
    with library_instance(tmp_path) as project:
        def fails(pattern: str, psize: float = 1.0) -> str:
            return failed(project, "import_micrographs", {"blob_paths": pattern, "psize_A": psize})[0]

        assert fails(str(raw / "*.mrcx")) == f"no micrographs match {str(raw / '*.mrcx')!r}"
        assert fails(str(raw / "g*.mrc"), 0) == ("parameter 'psize_A' (pixel size of the micrographs in Å) "
                                                 "must be above 0, not 0.0")
        assert fails(str(raw / "*")) == f"1 of the micrographs are neither MRC (.mrc, .mrcs) nor TIFF (.tif, .tiff) " \
                                         f"files: {notes}"
        assert fails(str(raw / "*.mrc")) == (
            f"the micrographs are not all the same size (48×64 px: 4 (e.g. {good[0]}, {good[1]} and 2 more); "
            f"32×32 px: 1 (e.g. {small})); import each size in a job of its own")
        assert fails(str(tmp_path / "gone" / "*.mrc")) == f"1 micrographs are missing or unreadable: " \
                                                          f"{tmp_path / 'gone' / 'lost.mrc'}"
        assert fails(str(tmp_path / "fake" / "*.mrc")) == (
            f"1 of the micrographs cannot be read as MRC: {tmp_path / 'fake' / 'fake.mrc'} (not an MRC file (no "
            "'MAP ' mark at byte 208, as MRC2014 requires))")
        assert fails(str(movie)) == (f"1 of the micrographs hold more than one image: {movie} (6 sections); a "
                                     "micrograph is one image (import movies with import_movies)")
        assert fails(str(tmp_path / "missing.mrc")) == f"micrographs: {tmp_path / 'missing.mrc'} does not exist"


def test_bad_movie_imports_fail_before_writing(tmp_path):
    movies = [tiff_movie(tmp_path / "m" / f"{i}.tiff", frames=7) for i in range(3)]
    short = tiff_movie(tmp_path / "m" / "short.tiff", frames=5)
    (tmp_path / "eer").mkdir()
    for i in range(2):
        (tmp_path / "eer" / f"e{i}.eer").write_bytes(b"II*\0")
    wrong_gain = micrograph(tmp_path / "gain.mrc", shape=(40, 56))
    base = {"psize_A": 1.0, "total_dose_e_per_A2": 50}
    with library_instance(tmp_path) as project:
        message, _ = failed(project, "import_movies", base | {"blob_paths": str(tmp_path / "m" / "*.tiff")})
        assert message == (f"the movies are not all the same size (7 frames of 40×56 px: 3 (e.g. {movies[0]}, "
                           f"{movies[1]} and 1 more); 5 frames of 40×56 px: 1 (e.g. {short})); import each size in a "
                           "job of its own")
        message, _ = failed(project, "import_movies", base | {"blob_paths": str(tmp_path / "eer" / "*.eer")})
        assert message.startswith(f"2 of the movies are EER files ({tmp_path / 'eer' / 'e0.eer'}, "
                                  f"{tmp_path / 'eer' / 'e1.eer'}): cryoweave does not import EER movies;")
        message, _ = failed(project, "import_movies", base | {"blob_paths": str(movies[0]),
                                                              "gainref_path": str(wrong_gain), "gainref_rotate_num": 3})
        assert message == (f"gain reference {wrong_gain} is 40×56 px (56×40 px once turned 3 quarter turns), but the "
                           "movies' frames are 40×56 px; give the gain reference of these movies (or set "
                           "gainref_rotate_num)")
        message, _ = failed(project, "import_movies", {"blob_paths": str(movies[0]), "psize_A": 1.0})
        assert message == "parameter 'total_dose_e_per_A2' (total exposure dose in e⁻/Å²) must be above 0, not None"
        message, _ = failed(project, "import_movies", base | {"blob_paths": str(movies[0]),
                                                              "gainref_path": str(tmp_path / "nogain.mrc")})
        assert message == f"gain reference: {tmp_path / 'nogain.mrc'} does not exist"


def test_bad_volume_imports_fail_before_writing(tmp_path):
    vol = write_volume(tmp_path / "map.mrc", np.zeros((24, 24, 24)), pixel_size=1.0)
    mask = write_volume(tmp_path / "mask.mrc", np.zeros((32, 32, 32)), pixel_size=1.0)
    nopix = write_volume(tmp_path / "nopix.mrc", np.zeros((24, 24, 24)), pixel_size=0.0)
    other = write_volume(tmp_path / "other.mrc", np.zeros((24, 24, 24)), pixel_size=1.2)
    stack = write_stack(tmp_path / "stack.mrcs", random_images(10, 24))
    image = micrograph(tmp_path / "image.mrc", shape=(24, 24))
    with library_instance(tmp_path) as project:
        def fails(**params) -> str:
            return failed(project, "import_volumes", {f"{k}_path" if k != "psize_A" else k: str(v)
                                                      for k, v in params.items()})[0]

        assert fails(map=vol, mask=mask) == (f"the volumes must share one box, but map {vol} is 24×24×24, mask "
                                             f"{mask} is 32×32×32 (x×y×z voxels)")
        assert fails(map=stack) == (f"map {stack} is a stack of 10 2D images of 24×24 px (so its header says), "
                                    "not a 3D map")
        assert fails(map_half_A=image) == f"half map A {image} is one 2D image of 24×24 px, not a 3D map"
        assert fails(map=nopix) == f"map {nopix} gives no pixel size in its header; set psize_A"
        assert fails(map=vol, map_half_B=other) == ("the volumes' headers give different pixel sizes (map 1 Å, "
                                                    "half map B 1.2 Å); set psize_A to the right one")
        assert fails(map=vol, psize_A=0) == "parameter 'psize_A' (pixel size override in Å) must be above 0, not 0.0"
        assert fails(mask=tmp_path / "none.mrc") == f"mask: {tmp_path / 'none.mrc'} does not exist"
        assert fails().startswith("give at least one file to import: map_path (map), map_half_A_path")
        job = run(project, "import_volumes", {"map_path": str(nopix), "mask_path": str(vol), "psize_A": 1.5})
        assert set(job.outputs) == {"imported_volume_1", "imported_mask_1"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_micrographs_are_named(tmp_path):
    files = [micrograph(tmp_path / f"u{i}.mrc") for i in range(7)]
    for f in files[:6]:
        f.chmod(0)
    with library_instance(tmp_path) as project:
        message, _ = failed(project, "import_micrographs", {"blob_paths": str(tmp_path / "u*.mrc"), "psize_A": 1})
        assert message == (f"6 micrographs are missing or unreadable: {', '.join(map(str, files[:5]))} "
                           "and 1 more")


# ------------------------------------------------------------------------------------------- CLI
def test_import_micrographs_with_the_command_line(tmp_path):
    for i in range(4):
        micrograph(tmp_path / "raw" / f"mic_{i}.mrc", shape=(20, 30))
    cw = Cryoweave(tmp_path / "home", None)
    cw.ok("project", "create", "Imports", "--dir", tmp_path / "projects")
    cw.ok("job", "create", "P1", "import_micrographs", "-p", f"blob_paths={tmp_path / 'raw' / '*.mrc'}",
          "-p", "psize_A=1.25", "-p", "accel_kv=200")
    assert cw.ok("job", "run", "P1", "J1").endswith("; outputs: imported_micrographs (4 items)\n")
    outputs = cw.ok("job", "outputs", "P1", "J1")
    assert "imported_micrographs" in outputs and "micrograph_blob" in outputs and "mscope_params" in outputs
    cw.ok("job", "create", "P1", "import_micrographs", "-p", f"blob_paths={tmp_path / 'raw' / 'x*.mrc'}",
          "-p", "psize_A=1.25")
    assert cw.fails("job", "run", "P1", "J2") == (f"job J2 failed: no micrographs match "
                                                  f"{str(tmp_path / 'raw' / 'x*.mrc')!r} (cryoweave job events P1 J2 "
                                                  "shows its log)")
    spec = cw.ok("job", "spec", "import_volumes")
    assert all(name in spec for name in ("map_path", "map_half_A_path", "map_half_B_path", "mask_path", "psize_A"))
