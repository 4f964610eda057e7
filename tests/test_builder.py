"""The job builder through the Python API, on real files: connections and slot bindings,
requirements, overrides, versions, input assembly on uid, passthroughs by reference, loading."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from builder_helpers import instance, particles, volume
from cryoweave import Dataset
from cryoweave.errors import NotFoundError, ParamError, ResultError, StatusError
from cryoweave.formats.csg import load_csg, read_csg


@pytest.fixture
def project(tmp_path):
    with instance(tmp_path) as inst:
        yield inst.create_project("Builder", tmp_path / "projects")


def imported(project, n=100, first=1000):
    job = project.create_job("lab_import_particles", params={"n": n, "first_uid": first})
    return job.execute()


def slot_map(job, name="particles", index=0):
    binding = next(b for b in job.input_bindings() if b.name == name)
    c = binding.connections[index]
    return {b.name: (b.address, b.how) for b in c.slots}, {b.name: b.address for b in c.passthroughs}


def test_group_connection_binds_slots_by_name_and_carries_the_rest(project):
    imp = imported(project)
    sub = project.create_job("subset_particles")
    sub.connect("particles", imp.uid + ".particles")
    slots, passed = slot_map(sub)
    assert slots == {"blob": ("J1.particles.blob.F", "name"), "ctf": ("J1.particles.ctf.F", "name")}
    assert passed == {"location": "J1.particles.location.F"}
    # a job that has not run yet: its results are known from its spec and its inputs
    ref = project.create_job("refine")
    ref.connect("particles", "J2.particles")
    slots, passed = slot_map(ref)
    assert slots == {"blob": ("J2.particles.blob.F", "name"), "ctf": ("J2.particles.ctf.F", "name")}
    assert passed == {"location": "J2.particles.location.F"}
    assert "connected to J2.particles (blob←J2.particles.blob.F, ctf←J2.particles.ctf.F)" in ref.events()[-1].text


def test_binding_by_type_when_names_differ(project):
    ext = project.create_external_job(title="classes")
    ext.add_output("particle", "particles", slots=["blob", {"name": "alignments_class_0", "dtype": "alignments3D"},
                                                   {"name": "alignments_class_1", "dtype": "alignments3D"}])
    job = project.create_external_job(title="reader")
    job.add_input("particle", "particles", slots=["blob", {"name": "poses", "dtype": "alignments3D"}])
    job.connect("particles", "J1.particles")
    binding = job.input_bindings()[0].connections[0]
    poses = next(b for b in binding.slots if b.name == "poses")
    assert (poses.address, poses.how, poses.candidates) == ("J1.particles.alignments_class_0.F", "type",
                                                            ("alignments_class_1",))
    assert [b.name for b in binding.passthroughs] == ["alignments_class_1"]


def test_requirements_refuse_queueing_and_say_which_input_and_why(project):
    imported(project)
    join = project.create_job("join_particles")
    assert join.requirements() == ["input 'particles' needs at least 2 connected particle group(s) and has 0"]
    with pytest.raises(ParamError, match=r"cannot queue J2: input 'particles' needs at least 2"):
        join.queue()
    join.connect("particles", "J1.particles")
    with pytest.raises(ParamError, match="already connected"):
        join.connect("particles", "J1.particles")  # repeats not allowed
    unrun = project.create_job("lab_import_particles")
    join.connect("particles", unrun.uid + ".particles")
    with pytest.raises(ParamError, match=r"J3, which J2 takes input from, is building: queue it first"):
        join.queue()
    unrun.execute()
    join.queue()
    assert join.status == "queued"
    with pytest.raises(StatusError, match="clear the job first"):
        join.disconnect("particles", 0)


def test_wrong_inputs_are_clear_errors(project):
    imported(project)
    vol = project.create_external_job(title="vol")
    vol.add_output("volume", "volume", slots=["map"])
    sub = project.create_job("subset_particles")
    cases = [
        (lambda: sub.connect("particles", "J2.volume"), ParamError, "holds volume items but input 'particles'"),
        (lambda: sub.connect("particles", "J1.nothing"), NotFoundError,
         r"has no output 'nothing' \(outputs: particles"),
        (lambda: sub.connect("particles", "J9.particles"), NotFoundError, "has no job J9"),
        (lambda: sub.connect("particles", "P2.J1.particles"), ParamError, "is in project P2, not P1"),
        (lambda: sub.connect("particles", "J1.particles.blob"), ParamError, "names a result"),
        (lambda: sub.connect_result("particles", 0, "blob", "J1.particles.blob"), ParamError, "has 0 connection"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    sub.connect("particles", "P1.J1.particles")  # the project's own prefix is accepted
    cases = [
        (lambda: sub.connect_result("particles", 0, "blob", "J1.particles.ctf"), ParamError,
         r"J1.particles.ctf is a ctf result; slot particles.0.blob takes blob"),
        (lambda: sub.connect_result("particles", 0, "blob", "J1.particles.nope"), NotFoundError,
         "has no result 'nope'"),
        (lambda: sub.connect_result("particles", 0, "blob", "J1.particles.blob.3"), ParamError,
         "has no version 3; saved versions: 0"),
        (lambda: sub.connect_result("particles", 0, "stack", "J1.particles.blob"), ParamError,
         r"has no slot 'stack' \(slots: blob, ctf\)"),
        (lambda: sub.connect_result("particles", 0, "blob", "J1.particles"), ParamError, "names an output group"),
        (lambda: sub.clear_slot("particles", 0, "blob"), ParamError, "is required"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    # a cycle through an override is refused like one through a group
    later = project.create_job("refine")
    later.connect("particles", f"{sub.uid}.particles")
    with pytest.raises(ParamError, match="would make a cycle"):
        sub.connect_result("particles", 0, "blob", f"{later.uid}.particles.blob")


def test_required_slot_must_be_found_when_connecting(project):
    ext = project.create_external_job(title="locations only")
    ext.add_output("particle", "particles", slots=["location"])
    sub = project.create_job("subset_particles")
    with pytest.raises(ParamError, match=r"no result for the required slot 'blob' \(blob\).*holds location"):
        sub.connect("particles", "J1.particles")
    assert sub.refresh().inputs == {}


def test_versions_overrides_and_loading_follow_the_binding(project):
    imported(project, n=10)
    ref = project.create_job("refine", params={"iterations": 4})
    ref.connect("particles", "J1.particles")
    ref.execute()
    group = ref.outputs["particles"]
    assert group.versions == [0, 1, 2, 3]
    assert group.results["alignments3D"].metafiles == [f"J2/J2_00{v}_particles.cs" for v in range(4)]
    assert [(r.name, r.passthrough) for r in group.results.values()] == [
        ("alignments3D", False), ("blob", True), ("ctf", True), ("location", True)]
    assert ref.load_output("particles")["alignments3D/error"].tolist() == [3.0] * 10
    assert ref.load_output("particles", version=1)["alignments3D/error"].tolist() == [1.0] * 10
    with pytest.raises(ResultError, match=r"J2.particles has no version 7; saved versions: 0, 1, 2, 3 \(F is 3\)"):
        ref.load_output("particles", version=7)
    # a later job bound to version 2 of the poses, the rest from the final group
    sub = project.create_external_job(title="uses iteration 2")
    sub.add_input("particle", "particles", slots=["blob", "alignments3D"])
    sub.connect("particles", "J2.particles")
    sub.connect_result("particles", 0, "alignments3D", "J2.particles.alignments3D.2")
    assert slot_map(sub)[0]["alignments3D"] == ("J2.particles.alignments3D.2", "override")
    data = sub.load_input("particles")
    assert data["alignments3D/error"].tolist() == [2.0] * 10
    assert sorted(data.prefixes()) == ["alignments3D", "blob", "ctf", "location"]
    sub.reset_slot("particles", 0, "alignments3D")
    assert sub.load_input("particles", slots="default")["alignments3D/error"].tolist() == [3.0] * 10
    assert sorted(sub.load_input("particles", slots="passthrough").prefixes()) == ["ctf", "location"]
    with pytest.raises(NotFoundError, match="has no result 'pose'"):
        sub.load_input("particles", slots=["pose"])


def test_passthroughs_are_references_resolved_in_one_hop_and_cut_to_the_items(project):
    imported(project, n=100)
    a = project.create_job("subset_particles", params={"fraction": 0.5})
    a.connect("particles", "J1.particles")
    a.execute()
    b = project.create_job("subset_particles", params={"fraction": 0.5})
    b.connect("particles", "J2.particles")
    b.execute()
    group = b.outputs["particles"]
    assert group.num_items == 25 and [t.metafile for t in group.tables] == ["J3/J3_particles.cs"]
    for name in ("blob", "ctf", "location"):  # one hop: straight to J1's file, not through J2
        result = group.results[name]
        assert result.passthrough and result.metafiles == []
        assert [(s.metafile, s.origin) for s in result.sources] == [("J1/J1_particles.cs", f"J1.particles.{name}.0")]
    # the job wrote its uids only
    own = Dataset.load(b.directory / "J3_particles.cs")
    assert own.fields() == ["uid"] and len(own) == 25
    assert sorted(p.name for p in b.directory.glob("*.cs")) == ["J3_particles.cs"]
    data = b.load_output("particles")
    assert len(data) == 25 and data["uid"].tolist() == list(range(1000, 1025))
    assert data["ctf/df1_A"].tolist() == [10000.0 + i for i in range(25)]
    assert b.load_output("particles", slots="default").fields() == ["uid"]
    # the .csg in the job folder reads the same with any loader that follows it
    csg = read_csg(b.directory / "J3_particles.csg")
    assert csg.results["ctf"].metafile == ">../J1/J1_particles.cs" and csg.items.metafile == ">J3_particles.cs"
    assert load_csg(b.directory / "J3_particles.csg") == data.take(np.arange(25))


def test_appended_connections_and_the_join_intersection(project):
    imported(project, n=6, first=100)
    imported(project, n=4, first=200)
    join = project.create_job("join_particles")
    join.connect("particles", "J1.particles")
    join.connect("particles", "J2.particles")
    data = join.load_input("particles")
    assert data["uid"].tolist() == [100, 101, 102, 103, 104, 105, 200, 201, 202, 203]
    assert sorted(data.prefixes()) == ["blob", "ctf", "location"]
    join.execute()
    ctf = join.outputs["particles"].results["ctf"]
    assert [s.metafile for s in ctf.sources] == ["J1/J1_particles.cs", "J2/J2_particles.cs"]
    assert join.load_output("particles")["ctf/df1_A"].tolist() == [10000.0 + i for i in (*range(6), *range(4))]
    # an override from a table holding only some of the items: only items in every table stay
    part = project.create_external_job(title="some blobs")
    part.add_input("particle", "particles", slots=["blob"])
    part.add_output("particle", "particles", slots=["blob"])
    part.connect("particles", "J1.particles")
    with part.run():
        part.save_output("particles", particles([101, 103, 105], "blob", blob__idx=[7, 8, 9]))
    sub = project.create_job("subset_particles")
    sub.connect("particles", "J1.particles")
    sub.connect_result("particles", 0, "blob", f"{part.uid}.particles.blob")
    data = sub.load_input("particles")
    assert data["uid"].tolist() == [101, 103, 105] and data["blob/idx"].tolist() == [7, 8, 9]


def test_saving_checks_the_dataset_and_keeps_every_version(project):
    imported(project, n=5)
    ext = project.create_external_job(title="script")
    ext.add_input("particle", "particles", slots=["blob"])
    ext.add_output("particle", "particles", slots=["ctf"], passthrough="particles")
    ext.connect("particles", "J1.particles")
    with pytest.raises(StatusError, match="outputs are saved while it runs"):
        ext.save_output("particles", particles(range(1000, 1005), "ctf"))
    ext.start()
    bad = [
        (particles([1000, 1000], "ctf"), "uid 1000 is in the dataset more than once"),
        (particles([1000], "blob").filter_fields(["uid", "blob/path"]).add_fields([("ctf/df1_A", "<f4")]),
         r"result 'ctf' \(ctf\) lacks fields ctf/type"),
        (particles([1, 2], "ctf"), r"2 items \(e.g. uid 1\) are not in input 'particles'"),
    ]
    for dataset, message in bad:
        with pytest.raises(ResultError, match=message):
            ext.save_output("particles", dataset)
    assert not list(ext.directory.glob("*.cs"))  # nothing half-written
    ext.save_output("particles", particles(range(1000, 1005), "ctf", ctf__df1_A=1.0), version=5)
    with pytest.raises(ResultError, match="version 5 cannot be saved after version 5"):
        ext.save_output("particles", particles(range(1000, 1005), "ctf"), version=5)
    ext.save_output("particles", particles(range(1000, 1003), "ctf", ctf__df1_A=2.0))  # next: 6
    ext.stop()
    group = ext.refresh().outputs["particles"]
    assert group.versions == [5, 6] and group.results["ctf"].num_items == [5, 3]
    assert len(ext.load_output("particles")) == 3 and len(ext.load_output("particles", version=5)) == 5
    with pytest.raises(StatusError, match="clear the job first"):
        ext.connect("particles", "J1.particles")


def test_missing_or_damaged_metafiles_name_job_result_version_and_path(project):
    imported(project, n=5)
    sub = project.create_job("subset_particles")
    sub.connect("particles", "J1.particles")
    sub.execute()
    path = project.directory / "J1" / "J1_particles.cs"
    path.write_bytes(path.read_bytes()[:100])
    passed = r"J2.particles.blob \(passed through from J1.particles.blob.0\): its metafile"
    with pytest.raises(ResultError, match=passed + r" cannot be read: .*J1_particles.cs"):
        sub.load_output("particles")
    path.unlink()
    with pytest.raises(ResultError, match=passed + r" .*J1/J1_particles.cs is missing"):
        sub.load_output("particles")


def test_export_output_writes_one_self_contained_file(project, tmp_path):
    imported(project, n=8)
    sub = project.create_job("subset_particles")
    sub.connect("particles", "J1.particles")
    sub.execute()
    target = sub.export_output("particles", tmp_path / "out.cs")
    data = Dataset.load(target)
    assert len(data) == 4 and sorted(data.prefixes()) == ["blob", "ctf", "location"]
    with pytest.raises(ParamError, match="exists"):
        sub.export_output("particles", target)


def test_seed_use_case_half_maps_from_two_jobs(project):
    jobs = []
    for k in range(2):
        ext = project.create_external_job(title=f"refinement {k}")
        ext.add_output("volume", "volume", slots=["map", "map_half_A", "map_half_B"])
        with ext.run():
            ext.save_output("volume", volume(50 + k, "map", "map_half_A", "map_half_B", path=f"J{k + 1}/map"))
        jobs.append(ext)
    loc = project.create_job("local_resolution")
    loc.connect("volume", "J1.volume")
    loc.connect_result("volume", 0, "map_half_B", "J2.volume.map_half_A")
    slots, _ = slot_map(loc, "volume")
    assert slots["map_half_A"] == ("J1.volume.map_half_A.F", "name")
    assert slots["map_half_B"] == ("J2.volume.map_half_A.F", "override")
    assert slots["mask"] == ("—", "empty")
    data = loc.load_input("volume")
    assert data["uid"].tolist() == [50]  # one volume is one item, whichever job made each half
    assert (data["map_half_A/path"][0], data["map_half_B/path"][0]) == ("J1/map:map_half_A", "J2/map:map_half_A")
    assert loc.requirements() == []


def test_seed_use_case_full_size_blob_swapped_into_a_curated_set(project):
    # extraction: full-size particles, and a downsampled copy of the same items
    full = project.create_external_job(title="extract")
    full.add_output("particle", "particles", slots=["blob", "ctf", "location"])
    full.add_output("particle", "particles_small", slots=["blob", "ctf", "location"])
    uids = np.arange(1, 201, dtype=np.uint64)
    with full.run():
        full.save_output("particles", particles(uids, "blob", "ctf", "location", blob__psize_A=1.0,
                                                blob__shape=[[452, 452]] * 200, ctf__df1_A=uids.astype(float)))
        full.save_output("particles_small", particles(uids, "blob", "ctf", "location", blob__psize_A=4.7,
                                                      blob__shape=[[96, 96]] * 200, ctf__df1_A=uids.astype(float)))
    curate = project.create_job("subset_particles", params={"fraction": 0.3})
    curate.connect("particles", "J1.particles_small")
    curate.execute()
    refine = project.create_job("refine", params={"iterations": 1})
    refine.connect("particles", "J2.particles")
    refine.execute()
    local = project.create_job("refine", params={"iterations": 1})
    local.connect("particles", "J3.particles")
    local.connect_result("particles", 0, "blob", "J1.particles.blob")
    data = local.load_input("particles")
    assert len(data) == 60 and data["uid"].tolist() == list(range(1, 61))
    assert set(data["blob/psize_A"]) == {1.0} and data["blob/shape"][0].tolist() == [452, 452]
    assert data["ctf/df1_A"].tolist() == list(range(1, 61))  # the curated set's CTF kept
    assert "alignments3D" in data.prefixes()                  # and its poses
    local.execute()
    out = local.load_output("particles")
    assert out["blob/psize_A"][0] == 1.0 and len(out) == 60


def test_a_failing_job_and_a_job_without_run(project):
    broken = project.create_job("broken")
    broken.execute()
    assert broken.status == "failed"
    assert broken.events()[-1].text == "status running → failed: RuntimeError: the job's own bug"
    assert "traceback" in broken.events()[-2].data
    local = project.create_job("local_resolution")
    with pytest.raises(Exception, match="declares no run function"):
        local.execute()


def test_job_records_and_files_hold_the_bindings(project):
    imported(project, n=3)
    sub = project.create_job("subset_particles")
    sub.connect("particles", "J1.particles")
    sub.connect_result("particles", 0, "blob", "J1.particles.blob.0")
    sub.clear_slot("particles", 0, "ctf")
    record = json.loads((sub.directory / "job.json").read_text())
    assert record["inputs"]["particles"] == [{"job": "J1", "group": "particles", "cleared": ["ctf"], "overrides": {
        "blob": {"job": "J1", "group": "particles", "result": "blob", "version": 0}}}]
    slots, passed = slot_map(sub)
    assert slots["ctf"] == ("—", "cleared") and "ctf" not in passed
    assert os.path.exists(project.directory / "J1" / "J1_particles.csg")


def test_a_chain_on_each_database(tmp_path, database_url):
    with instance(tmp_path, database_url) as inst:
        project = inst.create_project("Chain", tmp_path / "projects")
        imported(project, n=40)
        sub = project.create_job("subset_particles", params={"fraction": 0.25})
        sub.connect("particles", "J1.particles")
        sub.queue()
        sub.execute()
        ref = project.create_job("refine", params={"iterations": 2})
        ref.connect("particles", "J2.particles")
        ref.connect_result("particles", 0, "ctf", "J1.particles.ctf.F")
        ref.execute()
        assert (sub.status, ref.status) == ("completed", "completed")
        data = ref.load_output("particles")
        assert len(data) == 10 and sorted(data.prefixes()) == ["alignments3D", "blob", "ctf", "location"]
        ctf = ref.outputs["particles"].results["ctf"]  # the overridden slot passes through from where it was bound
        assert ctf.passthrough and [(s.metafile, s.origin) for s in ctf.sources] == [
            ("J1/J1_particles.cs", "J1.particles.ctf.0")]


def test_appending_groups_that_share_items_is_refused_in_input_terms(project):
    imported(project, n=5, first=10)
    copy = project.create_external_job(title="same items")
    copy.add_output("particle", "particles", slots=["blob"])
    with copy.run():
        copy.save_output("particles", particles(range(12, 20), "blob"))
    join = project.create_job("join_particles")
    join.connect("particles", "J1.particles")
    join.connect("particles", "J2.particles")
    with pytest.raises(ResultError, match=r"particles\[0\] \(J1.particles\) and particles\[1\] \(J2.particles\) hold "
                                          r"the same item \(uid 12, 3 in all\).*disconnect one"):
        join.load_input("particles")
