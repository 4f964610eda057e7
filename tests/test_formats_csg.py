"""`.csg` result-group files: read, write, load the joined group, and what bad files get."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cryoweave import CSDAT_FORMAT, Dataset, FormatError
from cryoweave.formats.csg import CsgResult, ResultGroupFile, load_csg, metafile_ref, read_csg, write_csg
from cryoweave.spec.examples import particle_dataset

# The example of seed 004 (CryoSPARC's data-management guide), with its indentation restored.
SEED_MASK_CSG = """\
created: 2019-09-09 18:38:02.835041
group:
  description: Refinement mask that was used.
  name: mask
  title: Mask
  type: mask
results:
  mask:
    metafile: '>P11_J87_mask_exported.cs'
    num_items: 1
    type: volume.blob
version: develop
"""


def _job_outputs(tmp_path, n=500):
    """A group written the way a job writes it: new results in one file, passthroughs in another."""
    d = particle_dataset(n, micrographs=5, seed=3)
    main = d.filter_prefixes(["blob", "alignments3D"], copy=True)
    passthrough = d.filter_prefixes(["ctf", "location"], copy=True)
    main.save(tmp_path / "J12_particles.cs")
    passthrough.save(tmp_path / "J12_passthrough_particles.cs", format=CSDAT_FORMAT)
    results = {slot: CsgResult(f">{file}", n, f"particle.{slot}") for slot, file in [
        ("blob", "J12_particles.cs"), ("alignments3D", "J12_particles.cs"),
        ("ctf", "J12_passthrough_particles.cs"), ("location", "J12_passthrough_particles.cs")]}
    group = ResultGroupFile(name="particles", type="particle", title="Particles", results=results,
                            description="All particles")
    write_csg(group, tmp_path / "J12_particles.csg")
    return d


def test_seed_example_reads_and_loads(tmp_path):
    (tmp_path / "P11_J87_mask_exported.csg").write_text(SEED_MASK_CSG)
    mask = Dataset.allocate(1, [("mask/path", "O"), ("mask/shape", "3u4"), ("mask/psize_A", "f4")])
    mask["mask/path"] = "J87/J87_006_volume_mask_refine.mrc"
    mask.save(tmp_path / "P11_J87_mask_exported.cs")
    group = read_csg(tmp_path / "P11_J87_mask_exported.csg")
    assert (group.name, group.type, group.title, group.version) == ("mask", "mask", "Mask", "develop")
    assert group.created == dt.datetime(2019, 9, 9, 18, 38, 2, 835041)
    assert group.results == {"mask": CsgResult(">P11_J87_mask_exported.cs", 1, "volume.blob")}
    loaded = group.load()
    assert loaded["mask/path"].tolist() == ["J87/J87_006_volume_mask_refine.mrc"]
    assert loaded["uid"].tolist() == mask["uid"].tolist()


def test_group_across_two_metafiles_joins_on_uid(tmp_path):
    d = _job_outputs(tmp_path)
    loaded = load_csg(tmp_path / "J12_particles.csg")
    assert len(loaded) == len(d)
    assert set(loaded.fields()) == set(d.fields())
    assert loaded.is_equivalent(d)
    only_ctf = load_csg(tmp_path / "J12_particles.csg", slots=["ctf"])
    assert only_ctf.prefixes() == ["ctf"]


def test_hand_edited_subset_keeps_only_common_items(tmp_path):
    """The users' workflow: filter the main .cs, point the .csg at it; passthroughs still join."""
    d = _job_outputs(tmp_path)
    main = Dataset.load(tmp_path / "J12_particles.cs")
    keep = main.query({"alignments3D/split": 0})
    keep.save(tmp_path / "subset.cs")
    text = (tmp_path / "J12_particles.csg").read_text().replace(">J12_particles.cs", ">subset.cs")
    (tmp_path / "subset.csg").write_text(text)
    with pytest.warns(UserWarning, match="num_items"):
        loaded = load_csg(tmp_path / "subset.csg")
    assert sorted(loaded["uid"].tolist()) == sorted(keep["uid"].tolist())
    assert np.all(loaded["alignments3D/split"] == 0)
    expected_ctf = d.query({"uid": keep["uid"]})
    by_uid = dict(zip(expected_ctf["uid"].tolist(), expected_ctf["ctf/df1_A"].tolist()))
    assert [by_uid[u] for u in loaded["uid"].tolist()] == loaded["ctf/df1_A"].tolist()


def test_write_then_read_round_trip(tmp_path):
    _job_outputs(tmp_path)
    group = read_csg(tmp_path / "J12_particles.csg")
    assert group.name == "particles" and group.type == "particle" and group.description == "All particles"
    assert group.results["ctf"] == CsgResult(">J12_passthrough_particles.cs", 500, "particle.ctf")
    assert group.version.startswith("cryoweave-")
    assert isinstance(group.created, dt.datetime)
    write_csg(group, tmp_path / "again.csg")
    assert read_csg(tmp_path / "again.csg") == group


def test_metafile_paths_resolve(tmp_path):
    (tmp_path / "exports").mkdir()
    group = ResultGroupFile(name="particles", type="particle", path=tmp_path / "exports" / "g.csg", results={
        "blob": CsgResult(">sub/a.cs", 1, "particle.blob"),
        "ctf": CsgResult("J3/b.cs", 1, "particle.ctf"),
        "location": CsgResult("/data/c.cs", 1, "particle.location")})
    assert group.metafile_path("blob") == tmp_path / "exports" / "sub" / "a.cs"
    assert group.metafile_path("ctf") == tmp_path / "exports" / "J3" / "b.cs"
    assert group.metafile_path("ctf", project_dir=tmp_path) == tmp_path / "J3" / "b.cs"
    assert str(group.metafile_path("location")) == "/data/c.cs"
    assert metafile_ref(tmp_path / "exports" / "sub" / "a.cs", tmp_path / "exports" / "g.csg") == ">sub/a.cs"
    assert metafile_ref(tmp_path / "x.cs", tmp_path / "exports" / "g.csg") == str(tmp_path / "x.cs")


@pytest.mark.parametrize(("text", "problem"), [
    ("group: [unclosed", "not valid YAML"),
    ("- a list\n", "'group' and 'results'"),
    ("group: {name: particles, type: particle}\n", "'group' and 'results'"),
    ("group: {name: particles, type: particles}\nresults: {}\n", "group type"),
    ("group: {name: 2bad, type: particle}\nresults: {}\n", "group name"),
    ("group: {name: p, type: particle}\nresults: {blob: {num_items: 1, type: particle.blob}}\n",
     "has no metafile"),
    ("group: {name: p, type: particle}\nresults: {blob: {metafile: '>a.cs', num_items: -1, "
     "type: particle.blob}}\n", "num_items"),
    ("group: {name: p, type: particle}\nresults: {blob: {metafile: '>a.cs', num_items: 1, type: blob}}\n",
     "type"),
])
def test_bad_csg_files_name_the_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "bad.csg"
    path.write_text(text)
    with pytest.raises(FormatError, match=problem) as err:
        read_csg(path)
    assert str(path) in str(err.value)


def test_missing_metafile_names_result_and_path(tmp_path):
    _job_outputs(tmp_path)
    (tmp_path / "J12_passthrough_particles.cs").unlink()
    with pytest.raises(FormatError, match="metafile of result 'ctf' not found") as err:
        load_csg(tmp_path / "J12_particles.csg")
    assert "J12_passthrough_particles.cs" in str(err.value)
    assert "J12_particles.csg" in str(err.value)


def test_metafile_without_the_result_fields(tmp_path):
    _job_outputs(tmp_path)
    text = (tmp_path / "J12_particles.csg").read_text().replace(">J12_passthrough_particles.cs",
                                                                ">J12_particles.cs")
    (tmp_path / "wrong.csg").write_text(text)
    with pytest.raises(FormatError, match=r"'ctf' points to .*J12_particles.cs, which has no 'ctf/\.\.\.'"):
        load_csg(tmp_path / "wrong.csg")


def test_unreadable_metafile_is_a_format_error(tmp_path):
    _job_outputs(tmp_path)
    (tmp_path / "J12_particles.cs").write_bytes(b"not a dataset at all")
    with pytest.raises(FormatError, match=r"results 'alignments3D', 'blob': cannot load.*neither a numpy"):
        load_csg(tmp_path / "J12_particles.csg")


def test_missing_csg_and_missing_directory(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        read_csg(tmp_path / "nope.csg")
    group = ResultGroupFile(name="p", type="particle", results={})
    with pytest.raises(FormatError, match="does not exist"):
        write_csg(group, tmp_path / "missing" / "g.csg")
    assert not (tmp_path / "missing").exists()


def test_written_files_get_ordinary_permissions(tmp_path):
    """Atomic writes must not leave files readable by their owner only (shared facility disks)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        Dataset.allocate(2, [("ctf/df1_A", "f4")]).save(tmp_path / "a.cs")
        write_csg(ResultGroupFile(name="p", type="particle", results={}), tmp_path / "a.csg")
        assert stat.S_IMODE(os.stat(tmp_path / "a.cs").st_mode) == 0o644
        assert stat.S_IMODE(os.stat(tmp_path / "a.csg").st_mode) == 0o644
        os.chmod(tmp_path / "a.cs", 0o640)  # replacing a file keeps its mode
        Dataset.allocate(3, [("ctf/df1_A", "f4")]).save(tmp_path / "a.cs")
        assert stat.S_IMODE(os.stat(tmp_path / "a.cs").st_mode) == 0o640
    finally:
        os.umask(old)
