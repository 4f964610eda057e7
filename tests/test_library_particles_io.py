"""`import_particles` and `export_relion`: real stacks (mrcfile), .star files (starfile) and .cs files
(cryosparc-tools), values checked against what was written, images read back through the imported paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from cryosparc.dataset import Dataset as CsDataset

from cryoweave.formats.geometry import relion_euler_to_matrix, rotvec_to_matrix
from cryoweave.jobs.library.common import import_sig
from library_support import failure, library_instance, random_images, read_mrc, run, write_stack
from test_cli_projects import Cryoweave

BOX, PSIZE = 32, 1.5


def _stacks(folder: Path, box: int = BOX) -> dict[str, np.ndarray]:
    images = {"a.mrcs": random_images(6, box, seed=1), "b.mrcs": random_images(4, box, seed=2)}
    for name, data in images.items():
        write_stack(folder / name, data, pixel_size=PSIZE)
    return images


def _table(n: int = 8, seed: int = 0) -> pd.DataFrame:
    """RELION particle columns with distinct values (image names are set by the caller)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "rlnCoordinateX": rng.uniform(100, 4000, n).round(2), "rlnCoordinateY": rng.uniform(100, 3000, n).round(2),
        "rlnMicrographName": [f"MotionCorr/job002/mic{i % 3}.mrc" for i in range(n)],
        "rlnDefocusU": rng.uniform(8000, 20000, n).round(2), "rlnDefocusV": rng.uniform(8000, 20000, n).round(2),
        "rlnDefocusAngle": rng.uniform(-180, 180, n).round(3),
        "rlnAngleRot": rng.uniform(-180, 180, n).round(3), "rlnAngleTilt": rng.uniform(1, 179, n).round(3),
        "rlnAnglePsi": rng.uniform(-180, 180, n).round(3),
        "rlnOriginXAngst": rng.uniform(-6, 6, n).round(3), "rlnOriginYAngst": rng.uniform(-6, 6, n).round(3),
        "rlnRandomSubset": (np.arange(n) % 2) + 1, "rlnOpticsGroup": np.ones(n, int)})


# (stack, index) of the 8 particles: out of order, both stacks
ROWS = [("a.mrcs", 5), ("b.mrcs", 0), ("a.mrcs", 0), ("b.mrcs", 3), ("a.mrcs", 2), ("a.mrcs", 4), ("b.mrcs", 1),
        ("a.mrcs", 1)]
OPTICS = {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnVoltage": [300.0],
          "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1], "rlnImagePixelSize": [PSIZE],
          "rlnImageSize": [BOX], "rlnImageDimensionality": [2]}


def _star(path: Path, names: list[str], table: pd.DataFrame | None = None, optics: dict | None = None) -> Path:
    table = (_table() if table is None else table).copy()
    table.insert(0, "rlnImageName", names)
    blocks = {"particles": table} if optics is None else {"optics": pd.DataFrame(optics), "particles": table}
    path.parent.mkdir(parents=True, exist_ok=True)
    starfile.write(blocks, path, overwrite=True)
    return path


def _images_of(job, particles) -> np.ndarray:
    """The images the imported particles name, read through their (project-relative) paths."""
    return np.stack([read_mrc(job.project.directory / p)[i] for p, i in
                     zip(particles["blob/path"], particles["blob/idx"])])


def _outputs_empty(job) -> None:
    assert job.outputs == {} or not any(g.tables for g in job.outputs.values())
    assert not (job.directory / "imported").exists()
    assert not list(job.directory.glob("*.cs")) if job.directory.exists() else True


def test_star31_import_values_and_images(tmp_path):
    raw = tmp_path / "relion"
    images = _stacks(raw / "Extract" / "job007")
    # relative to the .star (RELION project root), and one stack named by its absolute path
    names = [f"{i + 1:06d}@" + (f"Extract/job007/{s}" if s == "a.mrcs" else str(raw / "Extract/job007" / s))
             for s, i in ROWS]
    table = _table()
    star = _star(raw / "particles.star", names, table, OPTICS)
    with library_instance(tmp_path) as project:
        job = run(project, "import_particles", {"particle_meta_path": str(star), "micrograph_shape": "3000x4096"})
        out = job.load_output("imported_particles")
        assert len(out) == 8 and len(set(out["uid"].tolist())) == 8
        assert set(out.prefixes()) == {"blob", "ctf", "location", "alignments3D"}
        expected = np.stack([images[s][i] for s, i in ROWS])
        np.testing.assert_array_equal(_images_of(job, out), expected)
        assert all(p.startswith("J1/imported/") for p in out["blob/path"])
        assert os.path.realpath(job.directory / "imported" / "a.mrcs") == str(raw / "Extract/job007/a.mrcs")
        assert out["blob/idx"].tolist() == [i for _, i in ROWS]
        assert out["blob/shape"].tolist() == [[BOX, BOX]] * 8 and np.allclose(out["blob/psize_A"], PSIZE)
        assert out["blob/import_sig"].tolist() == [import_sig(raw / "Extract/job007" / s) for s, _ in ROWS]
        assert (out["blob/sign"] == -1).all()
        np.testing.assert_allclose(out["ctf/df1_A"], table["rlnDefocusU"], rtol=1e-6)
        np.testing.assert_allclose(out["ctf/df2_A"], table["rlnDefocusV"], rtol=1e-6)
        np.testing.assert_allclose(out["ctf/df_angle_rad"], np.deg2rad(table["rlnDefocusAngle"]), rtol=1e-6)
        assert np.allclose(out["ctf/accel_kv"], 300) and np.allclose(out["ctf/cs_mm"], 2.7)
        assert np.allclose(out["ctf/amp_contrast"], 0.1)
        angles = table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy()
        np.testing.assert_allclose(rotvec_to_matrix(out["alignments3D/pose"]),
                                   np.swapaxes(relion_euler_to_matrix(angles), -1, -2), atol=1e-5)
        shifts = table[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy() / PSIZE
        np.testing.assert_allclose(out["alignments3D/shift"], shifts, rtol=1e-5)
        assert out["alignments3D/split"].tolist() == [i % 2 for i in range(8)]
        np.testing.assert_allclose(out["location/center_x_frac"], table["rlnCoordinateX"] / 4096, rtol=1e-6)
        np.testing.assert_allclose(out["location/center_y_frac"], table["rlnCoordinateY"] / 3000, rtol=1e-6)
        assert out["location/micrograph_shape"].tolist() == [[3000, 4096]] * 8
        # micrographs that do not exist keep the name the .star gives
        assert out["location/micrograph_path"].tolist() == table["rlnMicrographName"].tolist()


def test_star_uids_pixel_override_optics_params_and_no_location(tmp_path):
    images = _stacks(tmp_path / "stacks")
    table = _table().drop(columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst",
                                   "rlnOriginYAngst", "rlnOpticsGroup"])
    table["cryoweaveUid"] = [str(2**63 + 17 * k) for k in range(8)]
    names = [f"{i + 1}@stacks/{s}" for s, i in ROWS]
    # RELION 3.0 style: pixel size from detector pixel and magnification, no voltage, Cs or amplitude contrast
    table["rlnDetectorPixelSize"], table["rlnMagnification"] = 5.0, 50000.0
    star = _star(tmp_path / "old.star", names, table)
    with library_instance(tmp_path) as project:
        refused = run(project, "import_particles", {"particle_meta_path": str(star)}, expect="failed")
        assert failure(refused) == (f"{star} has no _rlnVoltage, _rlnSphericalAberration, _rlnAmplitudeContrast "
                                    "(optics values the CTF needs); set parameter(s) accel_kv, cs_mm, amp_contrast")
        _outputs_empty(refused)
        job = run(project, "import_particles", {"particle_meta_path": str(star), "accel_kv": 200, "cs_mm": 0.01,
                                                "amp_contrast": 0.07, "psize_A": 1.23, "ignore_poses": True})
        out = job.load_output("imported_particles")
        assert out["uid"].tolist() == [2**63 + 17 * k for k in range(8)]
        assert np.allclose(out["ctf/accel_kv"], 200) and np.allclose(out["ctf/cs_mm"], 0.01)
        assert np.allclose(out["ctf/amp_contrast"], 0.07) and np.allclose(out["blob/psize_A"], 1.23)
        # coordinates without a micrograph size: no location (and the log says why)
        assert set(out.prefixes()) == {"blob", "ctf"}
        assert any("location not imported" in e.text for e in job.events())
        np.testing.assert_array_equal(_images_of(job, out), np.stack([images[s][i] for s, i in ROWS]))
        # without the override, the .star's pixel size (5 µm / 50,000 = 1 Å)
        plain = run(project, "import_particles", {"particle_meta_path": str(star), "accel_kv": 200, "cs_mm": 0.01,
                                                  "amp_contrast": 0.07})
        assert np.allclose(plain.load_output("imported_particles")["blob/psize_A"], 1.0)


def _cs_particles(n: int, paths: list[str], idx: list[int]) -> CsDataset:
    rng = np.random.default_rng(5)
    data = CsDataset.allocate(n, [
        ("blob/path", "O"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"),
        ("blob/sign", "<f4"), ("blob/import_sig", "<u8"),
        ("ctf/type", "O"), ("ctf/exp_group_id", "<u4"), ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"),
        ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"),
        ("ctf/phase_shift_rad", "<f4"), ("ctf/scale", "<f4"), ("ctf/scale_const", "<f4"), ("ctf/shift_A", "<f4", (2,)),
        ("ctf/tilt_A", "<f4", (2,)), ("ctf/trefoil_A", "<f4", (2,)), ("ctf/tetra_A", "<f4", (4,)),
        ("ctf/anisomag", "<f4", (4,)), ("ctf/bfactor", "<f4"),
        ("alignments3D/pose", "<f4", (3,)), ("alignments3D/shift", "<f4", (2,)), ("alignments3D/split", "<u4"),
        ("pick_stats/ncc_score", "<f4"), ("alignments_class_0/pose", "<f4", (3,))])
    data["blob/path"], data["blob/idx"] = paths, idx
    data["blob/psize_A"], data["blob/sign"] = 0.0, -1.0  # no pixel size in the table: the header's is used
    data["ctf/type"], data["ctf/accel_kv"], data["ctf/df1_A"] = "spline", 300.0, rng.uniform(5000, 9000, n)
    data["alignments3D/pose"] = rng.normal(size=(n, 3))
    data["alignments3D/shift"] = rng.normal(size=(n, 2))
    data["pick_stats/ncc_score"] = rng.uniform(size=n)
    return data


def test_cs_import_keeps_uids_and_resolves_project_relative_paths(tmp_path):
    cs_project = tmp_path / "CS-lab" / "CS-P12"
    images = _stacks(cs_project / "J3" / "extract")
    beside = write_stack(tmp_path / "exported" / "extra.mrcs", random_images(3, BOX, seed=9), pixel_size=PSIZE)
    paths = ["J3/extract/a.mrcs", "J3/extract/b.mrcs", "J3/extract/a.mrcs", ">extra.mrcs"]
    cs = _cs_particles(4, paths, [2, 3, 5, 1])
    cs.save(tmp_path / "exported" / "particles.cs")
    params = {"particle_meta_path": str(tmp_path / "exported" / "particles.cs")}
    with library_instance(tmp_path) as project:
        lost = run(project, "import_particles", params, expect="failed")
        assert failure(lost) == (
            f"2 of the 3 particle stacks named by {params['particle_meta_path']} are missing: J3/extract/a.mrcs, "
            "J3/extract/b.mrcs (looked beside it, in the project; parameter 'particle_blob_path' says where else "
            "to look)")
        _outputs_empty(lost)
        job = run(project, "import_particles", params | {"particle_blob_path": str(cs_project)})
        out = job.load_output("imported_particles")
        assert out["uid"].tolist() == cs["uid"].tolist()
        assert set(out.prefixes()) == {"blob", "ctf", "alignments3D", "pick_stats"}  # alignments_class_0 left out
        expected = [images["a.mrcs"][2], images["b.mrcs"][3], images["a.mrcs"][5], read_mrc(beside)[1]]
        np.testing.assert_array_equal(_images_of(job, out), np.stack(expected))
        assert np.allclose(out["blob/psize_A"], PSIZE) and out["blob/shape"].tolist() == [[BOX, BOX]] * 4
        for field in ("ctf/df1_A", "alignments3D/pose", "alignments3D/shift", "pick_stats/ncc_score"):
            np.testing.assert_array_equal(out[field], cs[field])
        assert out["ctf/type"].tolist() == ["spline"] * 4


@pytest.mark.parametrize("case", ["missing", "garbage", "no_image_name", "lost_stacks", "past_end", "mixed_box",
                                  "zero_psize", "zero_header"])
def test_bad_imports_fail_before_writing(tmp_path, case):
    _stacks(tmp_path / "stacks")
    write_stack(tmp_path / "stacks" / "big.mrcs", random_images(2, 48), pixel_size=PSIZE)
    write_stack(tmp_path / "stacks" / "nopix.mrcs", random_images(2, BOX), pixel_size=0.0)
    names = [f"{i + 1}@stacks/{s}" for s, i in ROWS]
    star = tmp_path / "p.star"
    params = {"particle_meta_path": str(star)}
    if case == "garbage":
        star.write_bytes(b"\x00\x01 not a star file \xff" * 10)
    elif case == "no_image_name":
        starfile.write({"optics": pd.DataFrame(OPTICS), "particles": _table()}, star)
    elif case == "lost_stacks":
        names = [f"1@stacks/gone{k}.mrcs" for k in range(8)]
    elif case == "past_end":
        names[3] = "5@stacks/b.mrcs"
    elif case == "mixed_box":
        names[0] = "1@stacks/big.mrcs"
    elif case == "zero_psize":
        params["psize_A"] = 0
    if case in ("lost_stacks", "past_end", "mixed_box", "zero_psize"):
        _star(star, names, optics=OPTICS)
    if case == "zero_header":
        cs = _cs_particles(2, ["stacks/nopix.mrcs"] * 2, [0, 1])
        cs.save(tmp_path / "p.cs")
        params = {"particle_meta_path": str(tmp_path / "p.cs")}
    expected = {
        "missing": f"{star}: no such file",
        "garbage": f"{star}: not a STAR file (no data_ block)",
        "no_image_name": f"{star}: no particle block: none of data_optics, data_particles has an _rlnImageName column",
        "lost_stacks": f"8 of the 8 particle stacks named by {star} are missing: stacks/gone0.mrcs, stacks/gone1.mrcs,"
                       " stacks/gone2.mrcs, stacks/gone3.mrcs, stacks/gone4.mrcs and 3 more (looked beside it",
        "past_end": f"particles of {star}: image 4 of {tmp_path / 'stacks/b.mrcs'} is asked for, but it holds 4 "
                    "images (0–3)",
        "mixed_box": f"the particle stacks of {star} have different box sizes (32×32: {tmp_path / 'stacks/a.mrcs'}, "
                     f"{tmp_path / 'stacks/b.mrcs'}; 48×48: {tmp_path / 'stacks/big.mrcs'})",
        "zero_psize": "parameter 'psize_A' (pixel size of the particle images) must be above 0, not 0",
        "zero_header": f"2 particles have a pixel size of zero (in p.cs and in the headers of "
                       f"{tmp_path / 'stacks/nopix.mrcs'}); set parameter 'psize_A'",
    }[case]
    with library_instance(tmp_path) as project:
        job = run(project, "import_particles", params, expect="failed")
        assert failure(job).startswith(expected), failure(job)
        _outputs_empty(job)


def test_export_then_import_round_trip_with_passthroughs(tmp_path):
    raw = tmp_path / "relion"
    _stacks(raw / "Extract")
    table = _table()
    table["rlnClassNumber"] = np.arange(8) % 3 + 1
    star = _star(raw / "particles.star", [f"{i + 1:06d}@Extract/{s}" for s, i in ROWS], table, OPTICS)
    elsewhere = tmp_path / "for_relion"
    elsewhere.mkdir()
    micrograph = write_stack(raw / "MotionCorr/job002/mic1.mrc", random_images(1, 64))  # the others do not exist
    with library_instance(tmp_path) as project:
        first = run(project, "import_particles", {"particle_meta_path": str(star), "micrograph_shape": "3000x4096"})
        original = first.load_output("imported_particles")
        assert original["location/micrograph_path"].tolist() == [
            str(micrograph) if name.endswith("mic1.mrc") else name for name in table["rlnMicrographName"]]
        # a job that keeps 5 particles and passes every result through by uid
        subset = project.create_external_job(title="subset")
        subset.add_input("particle", "particles", slots=["blob"])
        subset.add_output("particle", "particles", passthrough="particles")
        subset.connect("particles", "J1.imported_particles")
        with subset.run():
            subset.save_output("particles", subset.load_input("particles", slots=[]).take([0, 2, 3, 6, 7]))
        target = elsewhere / "subset.star"
        export = run(project, "export_relion", {"output_path": str(target)}, {"particles": "J2.particles"})
        written = export.directory / "particles.star"
        assert any(e.text == f"wrote 5 particles to {written} (results blob, ctf, alignments3D, location)"
                   for e in export.events())
        blocks = starfile.read(written)
        assert blocks["particles"]["rlnImageName"].tolist()[0] == "000006@../J1/imported/a.mrcs"
        outside = starfile.read(target)["particles"]["rlnImageName"].tolist()
        name = os.path.relpath(project.directory / "J1/imported/a.mrcs", elsewhere)
        assert outside[0] == f"000006@{name}" and (elsewhere / name).exists()
        assert starfile.read(target)["particles"]["rlnMicrographName"].tolist()[4] == os.path.relpath(micrograph,
                                                                                                       elsewhere)

        again = run(project, "import_particles", {"particle_meta_path": str(written)})
        back = again.load_output("imported_particles")
        keep = original.take([0, 2, 3, 6, 7])
        assert back["uid"].tolist() == keep["uid"].tolist()
        assert set(back.prefixes()) == set(keep.prefixes())
        np.testing.assert_array_equal(_images_of(again, back), _images_of(first, keep))
        for field in back.fields():
            if field in ("uid", "blob/path", "blob/import_sig", "alignments3D/pose"):
                continue
            if back[field].dtype.kind == "O":
                assert back[field].tolist() == keep[field].tolist(), field
            else:
                np.testing.assert_allclose(back[field], keep[field], rtol=2e-6, atol=1e-5, err_msg=field)
        np.testing.assert_allclose(rotvec_to_matrix(back["alignments3D/pose"]),
                                   rotvec_to_matrix(keep["alignments3D/pose"]), atol=1e-5)
        # the .star outside the project is not replaced unless asked
        refused = run(project, "export_relion", {"output_path": str(target)}, {"particles": "J2.particles"},
                      expect="failed")
        assert failure(refused) == f"{target} exists; choose another path or set parameter 'overwrite'"
        assert not (refused.directory / "particles.star").exists()
        run(project, "export_relion", {"output_path": str(target), "overwrite": True},
            {"particles": "J1.imported_particles"})
        assert len(starfile.read(target)["particles"]) == 8


def test_cli_import_run_and_outputs(tmp_path):
    _stacks(tmp_path / "stacks")
    star = _star(tmp_path / "p.star", [f"{i + 1}@stacks/{s}" for s, i in ROWS], optics=OPTICS)
    cw = Cryoweave(tmp_path / "home", None)
    cw.ok("project", "create", "CLI", "--dir", tmp_path / "projects")
    cw.ok("job", "create", "P1", "import_particles", "-p", f"particle_meta_path={star}", "-p", "ignore_poses=yes")
    assert cw.ok("job", "run", "P1", "J1").endswith("outputs: imported_particles (8 items)\n")
    [group] = cw.json("job", "outputs", "P1", "J1")
    assert (group["name"], group["type"], group["num_items"]) == ("imported_particles", "particle", 8)
    assert [r["name"] for r in group["results"]] == ["blob", "ctf"]
    assert group["tables"][0]["metafile"] == "J1/J1_imported_particles.cs"
