"""Clearing intermediate results and cleaning up jobs, on a project with passthrough chains, a result override
at an intermediate version, data files named by the tables, final jobs, and killed/failed ones.

The safety rule under test: nothing any job that stays uses is ever deleted; every assertion about what
goes is paired with one about what stays (files on disk, and loads that still work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cryoweave.api import Instance
from cryoweave.dataset import Dataset
from cryoweave.errors import ResultError, StatusError
from cryoweave.manage.clearing import Action
from cryoweave.spec import result_fields

N = 200


def _particles(uids, *results: str) -> Dataset:
    d = Dataset.allocate(len(uids), [("uid", "<u8")] + [f for r in results for f in result_fields(r)])
    d["uid"] = np.asarray(uids, dtype=np.uint64)
    return d


def _write(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path.name


def _external(project, title, inputs=(), outputs=()):
    job = project.create_external_job(title=title)
    for kind, name, slots in inputs:
        job.add_input(kind, name, slots=slots)
    for kind, name, slots, through in outputs:
        job.add_output(kind, name, slots=slots, passthrough=through)
    return job


def build(tmp_path: Path, home: str = "home"):
    """J1 imports particles (a stack in its folder); J2 refines them over 4 versions, each with a map file;
    J3 takes J2's particles with alignments3D overridden to version 1; J4 failed, J5 (building) connected to
    it; J6 failed alone; J7 completed, J8 passes J7's results through; J3 final."""
    inst = Instance(home=tmp_path / home)
    project = inst.create_project("Clearing", tmp_path / "projects")
    pdir = project.directory
    j1 = _external(project, "import", outputs=[("particle", "particles", ["blob", "ctf"], None)])
    with j1.run():
        _write(pdir / "J1" / "stack.mrcs", 50_000)
        data = _particles(np.arange(1, N + 1), "blob", "ctf")
        data["blob/path"] = np.array(["J1/stack.mrcs"] * N, dtype=object)
        j1.save_output("particles", data)
    j2 = _external(project, "refine", inputs=[("particle", "particles", ["blob"])],
                   outputs=[("particle", "particles", ["alignments3D"], "particles"),
                            ("volume", "volume", ["map"], None)])
    j2.connect("particles", "J1.particles")
    with j2.run():
        for v in range(4):
            out = _particles(np.arange(1, N + 1), "alignments3D")
            out["alignments3D/error"] = float(v)
            j2.save_output("particles", out, version=v)
            _write(pdir / "J2" / f"J2_{v:03d}_map.mrc", 100_000)
            vol = Dataset.allocate(1, [("uid", "<u8"), *result_fields("map", "blob", "volume")])
            vol["uid"] = np.array([7], dtype=np.uint64)
            vol["map/path"] = [f"J2/J2_{v:03d}_map.mrc"]
            j2.save_output("volume", vol, version=v)
    j3 = _external(project, "use version 1", inputs=[("particle", "particles", ["alignments3D", "blob"])],
                   outputs=[("particle", "particles", ["ctf"], "particles")])
    j3.connect("particles", "J2.particles")
    j3.connect_result("particles", 0, "alignments3D", "J2.particles.alignments3D.1")
    with j3.run():
        j3.save_output("particles", _particles(np.arange(1, N + 1), "ctf"))
    j4 = _external(project, "failed, used", outputs=[("particle", "particles", ["blob"], None)])
    with pytest.raises(RuntimeError), j4.run():
        _write(pdir / "J4" / "partial.mrcs", 30_000)
        j4.save_output("particles", _particles(np.arange(1, N + 1), "blob"))
        raise RuntimeError("crashed")
    j5 = project.create_external_job(title="building, on J4")
    j5.add_input("particle", "particles", slots=["blob"])
    j5.connect("particles", "J4.particles")
    j6 = _external(project, "failed alone", outputs=[("particle", "particles", ["blob"], None)])
    with pytest.raises(RuntimeError), j6.run():
        _write(pdir / "J6" / "partial.mrcs", 20_000)
        j6.save_output("particles", _particles(np.arange(1, N + 1), "blob"))
        raise RuntimeError("crashed")
    j7 = _external(project, "side branch", outputs=[("particle", "particles", ["ctf"], None)])
    with j7.run():
        j7.save_output("particles", _particles(np.arange(1, N + 1), "ctf"))
    j8 = _external(project, "through J7", inputs=[("particle", "particles", ["ctf"])],
                   outputs=[("particle", "particles", ["alignments2D"], "particles")])
    j8.connect("particles", "J7.particles")
    with j8.run():
        j8.save_output("particles", _particles(np.arange(1, N + 1), "alignments2D"))
    j3.mark_final()
    return inst, project


def test_clear_intermediate_keeps_what_is_used(tmp_path):
    _, project = build(tmp_path)
    pdir = project.directory
    before = {p.relative_to(pdir).as_posix(): p.stat().st_size for p in pdir.rglob("*") if p.is_file()}
    plan = project.clear_intermediate(dry_run=True)
    assert [j.job for j in plan.jobs] == ["J2"]
    entry = plan.jobs[0]
    # particles v0 and v2 go; v1 stays (J3's override uses it) and v3 is final; the volume keeps only v3
    assert entry.versions == {"particles": [0, 2], "volume": [0, 1, 2]}
    gone = {"J2/J2_000_particles.cs", "J2/J2_002_particles.cs", "J2/J2_000_volume.cs", "J2/J2_001_volume.cs",
            "J2/J2_002_volume.cs", "J2/J2_000_map.mrc", "J2/J2_001_map.mrc", "J2/J2_002_map.mrc"}
    assert set(entry.files) == gone
    assert entry.kept == {"J2/J2_001_particles.cs": ["J3"]}
    assert plan.bytes == sum(before[f] for f in gone)
    assert all((pdir / f).exists() for f in gone)  # a dry run deletes nothing

    done = project.clear_intermediate()
    assert done.bytes == plan.bytes and not done.dry_run
    after = {p.relative_to(pdir).as_posix() for p in pdir.rglob("*") if p.is_file()}
    assert after == set(before) - gone
    j2 = project.job("J2")
    assert j2.record.outputs["particles"].versions == [1, 3]
    assert j2.load_output("particles", version=1)["alignments3D/error"][0] == 1.0
    assert j2.load_output("volume")["map/path"][0] == "J2/J2_003_map.mrc"
    with pytest.raises(ResultError, match="no version 0"):
        j2.load_output("particles", version=0)
    assert np.all(project.job("J3").load_input("particles")["alignments3D/error"] == 1.0)
    assert "intermediate results cleared" in j2.events()[-1].text
    assert project.clear_intermediate(dry_run=True).bytes == 0  # nothing more to free


def test_cleanup_killed_failed_keeps_jobs_in_use(tmp_path):
    _, project = build(tmp_path)
    pdir = project.directory
    plan = project.cleanup(Action.FAILED, dry_run=True)
    assert [j.job for j in plan.jobs] == ["J6"]
    assert plan.skipped == {"J4": "used by J5"}
    made = [p for p in (pdir / "J6").iterdir() if p.name not in ("job.json", "events.jsonl")]
    assert sorted(plan.jobs[0].files) == sorted(f"J6/{p.name}" for p in made)
    assert plan.jobs[0].bytes == sum(p.stat().st_size for p in made)
    done = project.cleanup(Action.FAILED)
    assert [j.job for j in done.jobs] == ["J6"]
    assert project.job("J6").status == "building" and not (pdir / "J6" / "partial.mrcs").exists()
    assert (pdir / "J6" / "job.json").exists() and (pdir / "J6" / "events.jsonl").exists()
    assert project.job("J4").status == "failed" and (pdir / "J4" / "partial.mrcs").exists()


def test_cleanup_non_final_keeps_final_jobs_and_their_ancestors(tmp_path):
    _, project = build(tmp_path)
    pdir = project.directory
    plan = project.cleanup(Action.NON_FINAL, dry_run=True)
    # J7 and J8 go together (J8 passes J7's ctf through, and both go); J4 is used by the building J5
    assert [j.job for j in plan.jobs] == ["J6", "J7", "J8"]
    assert plan.skipped["J4"] == "used by J5"
    assert plan.skipped["J1"] == plan.skipped["J2"] == "an ancestor of a final job"
    project.cleanup(Action.NON_FINAL)
    assert [project.job(u).status for u in ("J1", "J2", "J3", "J7", "J8")] == \
        ["completed", "completed", "completed", "building", "building"]
    assert len(project.job("J3").load_output("particles")) == N  # the final job still loads, passthroughs too
    assert (pdir / "J1" / "stack.mrcs").exists()
    with pytest.raises(StatusError, match="marked final"):
        project.job("J3").clear()


def test_non_final_cleanup_needs_a_final_job(tmp_path):
    _, project = build(tmp_path)
    project.job("J3").mark_final(False)
    with pytest.raises(StatusError, match="no job of this project is marked final"):
        project.cleanup(Action.NON_FINAL, dry_run=True)
    with pytest.raises(StatusError, match="only a completed job"):
        project.job("J6").mark_final()


def test_a_job_whose_data_another_job_names_is_kept(tmp_path):
    """J9 (completed, staying) made its own blob result naming J6's stack: J6 is not cleared."""
    _, project = build(tmp_path)
    j9 = _external(project, "names J6's stack", outputs=[("particle", "particles", ["blob"], None)])
    with j9.run():
        data = _particles(np.arange(1, 11), "blob")
        data["blob/path"] = np.array(["J6/partial.mrcs"] * 10, dtype=object)
        j9.save_output("particles", data)
    project.job("J9").mark_final()
    plan = project.cleanup(Action.FAILED, dry_run=True)
    assert plan.skipped["J6"] == "used by J9" and not plan.jobs


def test_keep_final_only_policy(tmp_path):
    _, project = build(tmp_path)
    project.set_keep_final_only(True)
    assert project.info().keep_final_only
    pdir = project.directory
    j = _external(project, "iterative", inputs=[("particle", "particles", ["blob"])],
                  outputs=[("particle", "particles", ["alignments3D"], "particles")])
    j.connect("particles", "J1.particles")
    with j.run():
        for v in range(3):
            j.save_output("particles", _particles(np.arange(1, N + 1), "alignments3D"), version=v)
        assert (pdir / j.uid / f"{j.uid}_000_particles.cs").exists()  # kept while it runs
    assert j.refresh().record.outputs["particles"].versions == [2]
    assert not (pdir / j.uid / f"{j.uid}_000_particles.cs").exists()
    assert "keep final only" in j.events()[-1].text
    other = Instance(home=tmp_path / "other")  # the policy travels with the project directory
    assert other.attach(pdir, take_over=True).info().keep_final_only


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryoweave", *args], capture_output=True, text=True,
                          env={**os.environ, "CRYOWEAVE_HOME": str(home)}, stdin=subprocess.DEVNULL)


def test_cli_asks_before_deleting(tmp_path):
    inst, project = build(tmp_path)
    home, pdir = tmp_path / "home", project.directory
    inst.close()
    dry = _cli(home, "project", "clear-intermediate", "P1", "--dry-run")
    assert dry.returncode == 0 and "would free" in dry.stdout and "J2" in dry.stdout
    refused = _cli(home, "project", "clear-intermediate", "P1")
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    assert (pdir / "J2" / "J2_000_particles.cs").exists()
    done = _cli(home, "project", "clear-intermediate", "P1", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bytes"] > 0 and not (pdir / "J2" / "J2_000_particles.cs").exists()
    refused = _cli(home, "project", "cleanup", "P1", "--killed-failed")
    assert refused.returncode == 1 and "pass --yes" in refused.stderr and (pdir / "J6" / "partial.mrcs").exists()
    assert _cli(home, "project", "cleanup", "P1", "--killed-failed", "--yes").returncode == 0
    assert not (pdir / "J6" / "partial.mrcs").exists()
    neither = _cli(home, "project", "cleanup", "P1")
    assert neither.returncode == 1 and "--killed-failed or --non-final" in neither.stderr
    marked = _cli(home, "job", "mark-final", "P1", "J8")
    assert marked.returncode == 0 and "marked final" in marked.stdout
    policy = _cli(home, "project", "policy", "P1", "--keep-final-only", "--json")
    assert json.loads(policy.stdout)["keep_final_only"] is True


def test_clearing_one_job_refuses_while_jobs_that_ran_use_it(tmp_path):
    _, project = build(tmp_path)
    pdir = project.directory
    with pytest.raises(StatusError, match=r"J1 is not cleared: J2, J3 use its results"):
        project.job("J1").clear()
    with pytest.raises(StatusError, match=r"J7 is not cleared: J8 uses its results .*--descendants"):
        project.job("J7").clear()
    assert (pdir / "J7" / "J7_particles.cs").exists()
    project.job("J8").clear()
    project.job("J7").clear()  # nothing that ran uses it any more
    assert not (pdir / "J7" / "J7_particles.cs").exists()
    project.job("J4").clear()  # J5 is connected to it but still building: it will take J4's next outputs
    assert project.job("J4").status == "building"
