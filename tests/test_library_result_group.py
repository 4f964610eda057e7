"""`import_result_group`: .csg files as CryoSPARC exports them (``>`` metafiles, tables written with
cryosparc-tools), hand-edited ones, and the ones that must be refused before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from cryosparc.dataset import Dataset as CsDataset

from cryoweave.errors import FormatError
from cryoweave.formats.csg import contained_metafiles, read_csg
from library_support import failure, library_instance, random_images, read_mrc, run, write_stack, write_volume

BOX = 24
RESULTS = ("blob", "ctf", "location", "alignments3D")


def _table(n: int, blob_path: str, mic_path: str = ">J9/motioncorrected/m.mrc") -> CsDataset:
    rng = np.random.default_rng(3)
    data = CsDataset.allocate(n, [
        ("blob/path", "O"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"),
        ("blob/sign", "<f4"), ("blob/import_sig", "<u8"),
        ("ctf/type", "O"), ("ctf/exp_group_id", "<u4"), ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"),
        ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"),
        ("ctf/phase_shift_rad", "<f4"), ("ctf/scale", "<f4"), ("ctf/scale_const", "<f4"),
        ("ctf/shift_A", "<f4", (2,)), ("ctf/tilt_A", "<f4", (2,)), ("ctf/trefoil_A", "<f4", (2,)),
        ("ctf/tetra_A", "<f4", (4,)), ("ctf/anisomag", "<f4", (4,)), ("ctf/bfactor", "<f4"),
        ("location/micrograph_uid", "<u8"), ("location/exp_group_id", "<u4"), ("location/micrograph_path", "O"),
        ("location/micrograph_shape", "<u4", (2,)), ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"), ("location/min_dist_A", "<f4"), ("location/micrograph_psize_A", "<f4"),
        # an older CryoSPARC's alignments3D: only some of the fields
        ("alignments3D/split", "<u4"), ("alignments3D/shift", "<f4", (2,)), ("alignments3D/pose", "<f4", (3,)),
        ("alignments3D/psize_A", "<f4")])
    data["blob/path"], data["blob/idx"] = blob_path, (np.arange(n) * 5) % 6
    data["blob/shape"], data["blob/psize_A"], data["blob/sign"] = [BOX, BOX], 1.1, -1.0
    data["ctf/type"], data["ctf/df1_A"] = "spline", rng.uniform(9000, 15000, n)
    data["location/micrograph_path"], data["location/center_x_frac"] = mic_path, rng.uniform(size=n)
    data["alignments3D/pose"], data["alignments3D/shift"] = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    return data


def _csg(path: Path, files: dict[str, tuple[str, int]], name: str = "particles", kind: str = "particle") -> Path:
    """A .csg as CryoSPARC writes it: ``files`` maps a result to its metafile and num_items."""
    doc = {"created": "2024-03-01 10:11:12.123456",
           "group": {"description": "All particles that were processed, including alignments", "name": name,
                     "title": "All particles", "type": kind},
           "results": {slot: {"metafile": m, "num_items": n, "type": f"{kind}.{slot if kind == 'particle' else 'blob'}"}
                       for slot, (m, n) in files.items()},
           "version": "v4.4.1"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _exported(folder: Path, n: int = 6) -> tuple[Path, CsDataset, np.ndarray]:
    """An exported group: one merged .cs, the stack under the export folder, paths ``>``-relative."""
    images = random_images(6, BOX, seed=4)
    write_stack(folder / "J12" / "extract" / "a_particles.mrcs", images, pixel_size=1.1)
    table = _table(n, ">J12/extract/a_particles.mrcs")
    table.save(folder / "J12_particles_exported.cs")
    csg = _csg(folder / "J12_particles_exported.csg", dict.fromkeys(RESULTS, (">J12_particles_exported.cs", n)))
    return csg, table, images


def _nothing_written(job) -> None:
    assert job.status == "failed" and job.outputs == {} and job.record.spec.outputs == []
    assert not job.directory.exists() or not list(job.directory.glob("*.cs*"))


def test_import_an_exported_group_keeps_uids_and_values(tmp_path):
    csg, table, images = _exported(tmp_path / "exports" / "groups" / "P1_J12_particles")
    with library_instance(tmp_path) as project:
        job = run(project, "import_result_group", {"csg_path": str(csg)})
        [spec] = job.record.spec.outputs
        assert (spec.name, spec.type.value, spec.title, spec.made_at_run) == ("particles", "particle",
                                                                               "All particles", True)
        assert sorted((s.name, s.dtype) for s in spec.slots) == sorted((r, r) for r in RESULTS)
        out = job.load_output("particles")
        assert out["uid"].tolist() == table["uid"].tolist()
        stack = str(csg.parent / "J12" / "extract" / "a_particles.mrcs")  # outside the project: absolute
        assert out["blob/path"].tolist() == [stack] * 6
        read = np.stack([read_mrc(Path(p))[i] for p, i in zip(out["blob/path"], out["blob/idx"])])
        np.testing.assert_array_equal(read, images[table["blob/idx"]])
        for field in ("ctf/df1_A", "location/center_x_frac", "alignments3D/pose", "alignments3D/shift", "blob/idx"):
            np.testing.assert_array_equal(out[field], table[field])
        assert out["ctf/type"].tolist() == ["spline"] * 6
        assert out["location/micrograph_path"].tolist() == [str(csg.parent / "J9/motioncorrected/m.mrc")] * 6
        assert (out["alignments3D/error"] == 0).all()  # completed with zeros, as the log says
        texts = [e.text for e in job.events()]
        assert f"read 6 items of group 'particles' (particle) from {csg} (written by CryoSPARC v4.4.1)" in texts
        assert any(t.startswith("result 'alignments3D' lacked 14 field(s), added as zeros: ") for t in texts)
        assert (f"1 of the files named by other path fields of the tables are missing (their paths are kept): "
                f"{csg.parent / 'J9/motioncorrected/m.mrc'}") in texts

        inside, _, _ = _exported(project.directory / "exports" / "groups" / "P1_J12_particles")
        again = run(project, "import_result_group", {"csg_path": str(inside)})
        paths = again.load_output("particles")["blob/path"].tolist()
        assert paths == ["exports/groups/P1_J12_particles/J12/extract/a_particles.mrcs"] * 6  # project-relative


def test_hand_edited_in_job_group_of_another_project(tmp_path):
    """A Select 2D-style .csg in a job folder of another CryoSPARC project: new results and passthroughs in
    two files, the blob file filtered to 4 items and num_items edited; paths project-relative."""
    other = tmp_path / "CS-other"
    images = random_images(6, BOX, seed=8)
    write_stack(other / "J12" / "extract" / "a_particles.mrcs", images)
    full = _table(6, "J12/extract/a_particles.mrcs", mic_path="")
    (other / "J13").mkdir()
    full.copy().filter_prefixes(["blob"]).save(other / "J13" / "particles_selected.cs")
    full.copy().filter_prefixes(["ctf", "location"]).save(other / "J13" / "J13_passthrough_particles_selected.cs")
    kept = [1, 2, 4, 5]
    CsDataset.load(other / "J13" / "particles_selected.cs").take(kept).save(other / "J13" / "filtered.cs")
    csg = _csg(other / "J13" / "J13_particles_selected.csg",
               {"blob": (">filtered.cs", 4), "ctf": (">J13_passthrough_particles_selected.cs", 6),
                "location": (">J13_passthrough_particles_selected.cs", 6)}, name="particles_selected")
    with library_instance(tmp_path) as project:
        job = run(project, "import_result_group", {"csg_path": str(csg)})
        out = job.load_output("particles_selected")
        assert out["uid"].tolist() == full["uid"][kept].tolist()
        assert out["blob/path"].tolist() == [str(other / "J12/extract/a_particles.mrcs")] * 4
        np.testing.assert_array_equal(out["ctf/df1_A"], full["ctf/df1_A"][kept])
        assert out["location/micrograph_path"].tolist() == [""] * 4
        read = np.stack([read_mrc(Path(p))[i] for p, i in zip(out["blob/path"], out["blob/idx"])])
        np.testing.assert_array_equal(read, images[full["blob/idx"][kept]])


def test_volume_group(tmp_path):
    folder = tmp_path / "export_map"
    volume = np.random.default_rng(1).normal(size=(16, 16, 16)).astype(np.float32)
    write_volume(folder / "J20_map.mrc", volume, pixel_size=1.3)
    table = CsDataset.allocate(1, [("map/path", "O"), ("map/shape", "<u4", (3,)), ("map/psize_A", "<f4")])
    table["map/path"], table["map/shape"], table["map/psize_A"] = ">J20_map.mrc", [16, 16, 16], 1.3
    table.save(folder / "J20_volume.cs")
    csg = _csg(folder / "J20_volume.csg", {"map": (">J20_volume.cs", 1)}, name="volume", kind="volume")
    with library_instance(tmp_path) as project:
        job = run(project, "import_result_group", {"csg_path": str(csg)})
        out = job.load_output("volume")
        assert job.outputs["volume"].type.value == "volume" and out["uid"].tolist() == table["uid"].tolist()
        np.testing.assert_array_equal(read_mrc(Path(out["map/path"][0])), volume)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "missing_cs", "missing_data", "num_items"])
def test_bad_groups_are_refused_before_writing(tmp_path, case):
    folder = tmp_path / "export"
    csg, _, _ = _exported(folder)
    outside = tmp_path / "secret.cs"
    CsDataset.load(folder / "J12_particles_exported.cs").save(outside)
    files = dict.fromkeys(RESULTS, (">J12_particles_exported.cs", 6))
    if case == "dotdot":
        files["ctf"] = (">../secret.cs", 6)
    elif case == "absolute":
        files["ctf"] = (str(outside), 6)
    elif case == "symlink":
        (folder / "innocent.cs").symlink_to(outside)
        files["ctf"] = (">innocent.cs", 6)
    elif case == "missing_cs":
        files["ctf"] = (">gone.cs", 6)
    elif case == "missing_data":
        (folder / "J12" / "extract" / "a_particles.mrcs").unlink()
    elif case == "num_items":
        files["blob"] = (">J12_particles_exported.cs", 7)
    _csg(csg, files)
    rule = (f"; a .csg may only name files in its own folder ({folder}) or below it (copy the tables there, or, "
            "for a group of a job in the same project, connect its output instead)")
    expected = {
        "dotdot": f"cannot read result group {csg}: the metafile of result 'ctf', '>../secret.cs', climbs out of "
                  f"the folder with '..'{rule}",
        "absolute": f"cannot read result group {csg}: the metafile of result 'ctf', '{outside}', is an absolute "
                    f"path{rule}",
        "symlink": f"cannot read result group {csg}: the metafile of result 'ctf', '>innocent.cs', leads out of the "
                   f"folder through a symlink (to {outside}){rule}",
        "missing_cs": f"{csg}: 1 of its metafiles are missing: {folder / 'gone.cs'}",
        "missing_data": f"Unable to find data referenced by cs files: 1 of the data files named by the tables of "
                        f"{csg} are missing: {folder / 'J12/extract/a_particles.mrcs'}",
        "num_items": f"{csg}: result 'blob' says num_items 7 but its metafile '>J12_particles_exported.cs' holds 6 "
                     "items; correct num_items (or the metafile)",
    }[case]
    with library_instance(tmp_path) as project:
        job = run(project, "import_result_group", {"csg_path": str(csg)}, expect="failed")
        assert failure(job) == expected
        _nothing_written(job)


def test_contained_metafiles(tmp_path):
    folder = tmp_path / "group"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.cs").write_bytes(b"")
    os.symlink(folder / "sub" / "a.cs", folder / "link.cs")  # a symlink that stays inside is fine
    csg = _csg(folder / "g.csg", {"blob": (">sub/a.cs", 1), "ctf": (">link.cs", 1), "location": ("plain.cs", 1)})
    assert contained_metafiles(read_csg(csg)) == {">sub/a.cs": folder / "sub" / "a.cs", ">link.cs": folder / "link.cs",
                                                  "plain.cs": folder / "plain.cs"}
    _csg(csg, {"blob": (">sub/../../x.cs", 1)})
    with pytest.raises(FormatError, match="climbs out of the folder"):
        contained_metafiles(read_csg(csg))


def test_outputs_follow_parameters_and_a_clear_removes_only_those_made_at_run(tmp_path):
    """Param-derived outputs (the sets tool's splits) are declared as the parameters change and survive a
    clear; an output the running job declared (the .csg's group) goes with the clear."""
    csg, table, _ = _exported(tmp_path / "export")
    with library_instance(tmp_path) as project:
        group = run(project, "import_result_group", {"csg_path": str(csg)})
        assert [o.name for o in group.spec.outputs] == ["particles"] and group.spec.outputs[0].made_at_run
        sets = project.create_job("particle_sets", params={"num_batches": 3})
        assert [o.name for o in sets.spec.outputs] == ["split_0", "split_1", "split_2", "remainder"]
        sets.set_param("num_batches", 2)
        assert [o.name for o in sets.spec.outputs] == ["split_0", "split_1", "remainder"]
        assert project.job("J2").record.spec.outputs == sets.spec.outputs  # kept in the job's record
        sets.set_param("action", "intersect")
        assert [o.name for o in sets.spec.outputs] == ["intersect", "intersect_B", "A_minus_B", "B_minus_A"]
        assert [o.passthrough for o in sets.spec.outputs] == ["particles_A", "particles_B", "particles_A",
                                                              "particles_B"]
        sets.clear_param("action")  # back to the default, split
        sets.connect("particles_A", "J1.particles")
        sets.execute()
        assert sets.status == "completed" and len(sets.load_output("split_1")) == len(table) // 2
        for job in (sets, group):  # J2 passes J1's results through: it is cleared first
            job.clear()
        assert group.refresh().spec.outputs == [] and group.outputs == {}
        assert [o.name for o in sets.refresh().spec.outputs] == ["split_0", "split_1", "remainder"]
        assert sets.outputs == {}
