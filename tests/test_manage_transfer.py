"""Export and import of jobs and output groups: round trips into a second instance (identical items by uid,
data files with identical bytes), a downstream job on an imported group, and exports that must be refused
with nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cryoweave.api import Instance
from cryoweave.builder.context import JobContext
from cryoweave.cli import main
from cryoweave.dataset import Dataset
from cryoweave.errors import DataError, ParamError, RecordError, StatusError, UnsafePathError
from cryoweave.jobs.library.result_group import path_fields
from cryoweave.manage.export_files import DataPlacer
from cryoweave.manage.exports import export_group, export_job
from cryoweave.manage.imports import import_job
from library_support import failure, random_images, run

ROOT = Path(__file__).parent.parent


def _chain(tmp_path: Path, home: str = "home"):
    """An instance with P1: J1 import (sample stacks) -> J2 split -> J3 downsample of split_0 (makes blob and
    alignments3D, passes ctf and location through), with an image in J3's event log."""
    sample = tmp_path / "sample"
    subprocess.run([sys.executable, str(ROOT / "examples" / "sample_particles.py"), str(sample), "--particles", "48",
                    "--box", "16", "--micrographs", "3"], check=True, capture_output=True)
    inst = Instance(home=tmp_path / home)
    project = inst.create_project("Source", tmp_path / "projects")
    run(project, "import_particles", {"particle_meta_path": str(sample / "particles.star"),
                                      "micrograph_shape": "4096x4096"})
    run(project, "particle_sets", {"action": "split", "num_batches": 2}, {"particles_A": "J1.imported_particles"})
    run(project, "downsample_particles", {"fourier_box": 8}, {"particles": "J2.split_0"})
    JobContext(inst.store, project.uid, "J3").image(random_images(1, 16)[0], "preview", "a preview")
    return inst, project


def _other(tmp_path: Path):
    inst = Instance(home=tmp_path / "other")
    return inst, inst.create_project("Target", tmp_path / "other_projects")


def _file(directory: Path, path: str) -> Path:
    return Path(directory) / path  # absolute paths stay themselves


def _same_items(a: Dataset, a_dir: Path, b: Dataset, b_dir: Path) -> None:
    """The same items by uid: every field equal, except path fields, whose files hold identical bytes."""
    assert len(a) == len(b) and sorted(a.fields()) == sorted(b.fields())
    a, b = a.take(np.argsort(a["uid"])), b.take(np.argsort(b["uid"]))
    assert np.array_equal(a["uid"], b["uid"])
    paths = set(path_fields(a))
    for field in a.fields():
        if field not in paths:
            assert np.array_equal(np.asarray(a[field]), np.asarray(b[field])), field
    for field in sorted(paths):
        pairs = set(zip(a[field].tolist(), b[field].tolist()))
        for old, new in pairs:
            if field.endswith("/path"):
                assert _file(a_dir, old).read_bytes() == _file(b_dir, new).read_bytes(), (field, old, new)


def _listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.mark.parametrize("copy_data", [False, True], ids=["linked", "copied"])
def test_export_group_imports_with_import_result_group_in_another_instance(tmp_path, copy_data):
    inst, project = _chain(tmp_path)
    with inst:
        report = export_group(inst.store, project.uid, "J3", "particles", copy_data=copy_data)
        source = project.job("J3").load_output("particles")
    folder = project.directory / "exports" / "groups" / "P1_J3_particles"
    assert report.folder == folder and report.csg == folder / "P1_J3_particles_exported.csg"
    assert report.items == 24 and report.data_files == 1 and report.bytes > 0
    table = np.load(report.cs)  # numpy format, as CryoSPARC reads it
    assert len(table) == 24 and {"ctf/df1_A", "location/center_x_frac", "alignments3D/pose"} <= set(table.dtype.names)
    assert set(Dataset.load(report.cs)["blob/path"].tolist()) == {">data/J3/downsampled/batch_000000.mrcs"}
    stack = folder / "data" / "J3" / "downsampled" / "batch_000000.mrcs"
    assert stack.is_symlink() != copy_data
    if copy_data:
        assert os.stat(stack).st_nlink == 1  # bytes copied, not a hard link to the project's file
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left

    other, target = _other(tmp_path)
    with other:
        params = {"csg_path": str(report.csg)}
        if not copy_data:  # links that lead out are refused unless allowed
            refused = run(target, "import_result_group", params, expect="failed")
            assert "allow_links=true" in failure(refused)
            params["allow_links"] = True
        job = run(target, "import_result_group", params)
        _same_items(source, project.directory, job.load_output("particles"), target.directory)
        # the imported group is used like any other
        run(target, "particle_sets", {"action": "split", "num_batches": 2}, {"particles_A": f"{job.uid}.particles"})


def test_export_job_then_import_job_in_another_instance(tmp_path):
    inst, project = _chain(tmp_path)
    with inst:
        report = export_job(inst.store, project.uid, "J3")
        source = project.job("J3").load_output("particles")
        original_events = inst.store.job_events(project.uid, "J3")
    folder = project.directory / "exports" / "jobs" / "P1_J3_downsample_particles"
    assert report.folder == folder and [g.folder.name for g in report.groups] == ["P1_J3_particles"]
    record = json.loads((folder / "job.json").read_text())
    assert record["kind"] == "exported_job" and record["schema_version"] == 1
    assert {"run", "workspaces", "outputs", "inputs"}.isdisjoint(record)
    assert record["provenance_inputs"] == ["P1 J2.split_0"] and record["source"]["job"] == "J3"
    assert (folder / "images" / "preview.png").is_file() and (folder / "events.jsonl").is_file()

    other, target = _other(tmp_path)
    with other:
        with pytest.raises(UnsafePathError, match="--allow-links"):
            import_job(other.store, target.uid, folder)
        assert target.directory.joinpath("J1").exists() is False
        imported = import_job(other.store, target.uid, folder, allow_links=True)
        assert (imported.uid, imported.status.value, imported.type, imported.workspaces) == \
            ("J1", "completed", "downsample_particles", ["W1"])
        job = target.job("J1")
        _same_items(source, project.directory, job.load_output("particles"), target.directory)
        events = other.store.job_events(target.uid, "J1")
        assert events[0].text.startswith("created") and "imported from" in events[-1].text
        assert [e.text for e in events[1:-1]] == [e.text for e in original_events]
        image = next(e.data["image"] for e in events if "image" in e.data)
        assert image == "J1/images/preview.png" and (target.directory / image).is_file()
        assert not [p for p in target.directory.iterdir() if p.name.startswith(".import")]
        down = run(target, "downsample_particles", {"fourier_box": 4}, {"particles": "J1.particles"})
        assert len(down.load_output("particles")) == 24


def test_copied_job_export_imports_after_the_source_project_is_gone(tmp_path):
    inst, project = _chain(tmp_path)
    with inst:
        export_job(inst.store, project.uid, "J2", copy_data=True)
        sources = {g: project.job("J2").load_output(g) for g in ("split_0", "split_1", "remainder")}
        moved = tmp_path / "received" / "P1_J2_particle_sets"
        shutil.copytree(project.directory / "exports" / "jobs" / "P1_J2_particle_sets", moved, symlinks=True)
        kept = tmp_path / "kept_source"  # only to compare bytes with, out of the projects' reach
        shutil.copytree(project.directory, kept, symlinks=False, ignore=shutil.ignore_patterns("exports"))
        project.delete()
    shutil.rmtree(tmp_path / "sample")
    other, target = _other(tmp_path)
    with other:
        imported = import_job(other.store, target.uid, moved)
        assert sorted(imported.outputs) == ["remainder", "split_0", "split_1"]
        for name, data in sources.items():
            _same_items(data, kept, target.job(imported.uid).load_output(name), target.directory)
        stacks = list((target.directory / imported.uid / "data").rglob("*.mrcs"))
        assert stacks and not any(p.is_symlink() for p in stacks)  # the project holds its data itself


def _tamper(case: str, folder: Path) -> str:
    """Spoil a copied export of J3 one way; the message expected."""
    group = folder / "P1_J3_particles"
    cs = group / "P1_J3_particles_exported.cs"
    if case in ("dotdot", "absolute"):
        data = Dataset.load(cs)
        data["blob/path"] = ">data/../../../../secret.mrcs" if case == "dotdot" else "/etc/passwd"
        data.save(cs)
        return "climbs out of its folder" if case == "dotdot" else "not self-contained"
    if case == "symlink":
        stack = group / "data" / "J3" / "downsampled" / "batch_000000.mrcs"
        stack.unlink()
        stack.symlink_to("/etc/passwd")
        return "outside the folder"
    if case == "missing_cs":
        cs.unlink()
        return "names the table '>P1_J3_particles_exported.cs', but .* is missing"
    record = json.loads((folder / "job.json").read_text())
    if case == "kind":
        record["kind"] = "job"
        message = "not an exported job record"
    else:
        record["groups"][0]["folder"] = "../../P1_J3_particles"
        message = "climbs out of its folder"
    (folder / "job.json").write_text(json.dumps(record))
    return message


def test_spoiled_exports_are_refused_with_nothing_written(tmp_path):
    inst, project = _chain(tmp_path)
    with inst:
        pristine = export_job(inst.store, project.uid, "J3", copy_data=True).folder
    other, target = _other(tmp_path)
    with other:
        before = _listing(target.directory)
        for case in ("dotdot", "absolute", "symlink", "missing_cs", "kind", "group_folder"):
            folder = tmp_path / "received" / case / pristine.name
            shutil.copytree(pristine, folder, symlinks=True)
            expected = _tamper(case, folder)
            with pytest.raises((UnsafePathError, DataError, RecordError), match=expected):
                import_job(other.store, target.uid, folder)
            assert other.store.jobs(target.uid) == [] and _listing(target.directory) == before, case


def test_exports_refused_and_replaced(tmp_path):
    inst, project = _chain(tmp_path)
    with inst:
        building = project.create_job("downsample_particles", params={"fourier_box": 8})
        with pytest.raises(StatusError, match="only a completed job can be exported"):
            export_job(inst.store, project.uid, building.uid)
        with pytest.raises(Exception, match="no saved output group 'nope'"):
            export_group(inst.store, project.uid, "J3", "nope")
        first = export_group(inst.store, project.uid, "J2", "split_1")
        with pytest.raises(ParamError, match="--overwrite"):
            export_group(inst.store, project.uid, "J2", "split_1")
        again = export_group(inst.store, project.uid, "J2", "split_1", copy_data=True, overwrite=True)
        assert again.folder == first.folder and not any(p.is_symlink() for p in again.folder.rglob("*.mrcs"))
        # a data file gone: the export would be broken, so it is refused and leaves nothing
        for stack in (tmp_path / "sample").rglob("mic_002.mrcs"):
            stack.unlink()
        with pytest.raises(DataError, match="cryoweave project check"):
            export_group(inst.store, project.uid, "J2", "split_1", overwrite=True)
        groups = project.directory / "exports" / "groups"
        assert sorted(p.name for p in groups.iterdir()) == ["P1_J2_split_1"]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryoweave", *args], capture_output=True, text=True,
                          env={**os.environ, "CRYOWEAVE_HOME": str(home)})


def _main(*args: str) -> int | None:
    """``cryoweave ARGS`` in this process; its exit status."""
    try:
        main(list(args))
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_cli_export_and_import_round_trip(tmp_path, capsys, monkeypatch):
    inst, project = _chain(tmp_path)
    with inst:
        source = project.job("J3").load_output("particles")
    home, other = tmp_path / "home", tmp_path / "other"
    done = _cli(home, "export", "job", "P1", "J3", "--copy-data", "--json")  # the real program
    assert done.returncode == 0, done.stderr
    folder = json.loads(done.stdout)["folder"]
    assert _cli(other, "project", "create", "Target", "--dir", str(tmp_path / "other_projects")).returncode == 0
    imported = _cli(other, "import", "job", folder, "--project", "P1", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["outputs"] == {"particles": 24}

    monkeypatch.setenv("CRYOWEAVE_HOME", str(home))
    assert _main("export", "group", "P1", "J3.particles") in (0, None)
    assert "cryoweave job create P import_result_group -p csg_path=" in capsys.readouterr().out
    assert _main("export", "group", "P1", "J3.particles") == 1
    assert "already exists" in capsys.readouterr().err
    for verb in (["export", "job"], ["export", "group"], ["import", "job"]):
        assert _main(*verb, "--help") in (0, None)
        assert "Example: cryoweave" in capsys.readouterr().out
    monkeypatch.setenv("CRYOWEAVE_HOME", str(other))
    assert _main("import", "job", folder, "--project", "P1", "--workspace", "W1") in (0, None)
    assert "as P1 J2 (downsample_particles, completed) in W1" in capsys.readouterr().out
    with Instance(home=other) as again:
        target = again.project("P1")
        _same_items(source, project.directory, target.job("J1").load_output("particles"), target.directory)


def test_data_files_are_named_under_data_and_linked_to_their_real_files(tmp_path):
    project_dir, raw = tmp_path / "P", tmp_path / "raw"
    (project_dir / "J1" / "imported").mkdir(parents=True)
    raw.mkdir()
    (raw / "a.mrcs").write_bytes(b"a" * 10)
    (raw / "m.mrc").write_bytes(b"m" * 5)
    os.symlink(raw / "a.mrcs", project_dir / "J1" / "imported" / "a.mrcs")  # as import jobs link raw data
    data = Dataset([("blob/path", np.array(["J1/imported/a.mrcs"] * 3 + [""], dtype=object)),
                    ("location/micrograph_path", np.array([str(raw / "m.mrc"), "gone.mrc", "", ""], dtype=object))])
    placer = DataPlacer(project_dir, copy=False)
    folder = tmp_path / "export"
    placer.rewrite(data, folder)
    placer.check("test")
    external = data["location/micrograph_path"][0]
    assert data["blob/path"].tolist() == [">data/J1/imported/a.mrcs"] * 3 + [""]
    assert external.startswith(">data/external/") and external.endswith("/m.mrc")
    assert data["location/micrograph_path"].tolist()[1:] == ["gone.mrc", "", ""]  # missing: kept, reported
    assert placer.missing_other == [str(project_dir / "gone.mrc")] and (placer.files, placer.bytes) == (2, 15)
    assert os.readlink(folder / "data" / "J1" / "imported" / "a.mrcs") == str(raw / "a.mrcs")  # the real file
    assert os.readlink(folder / external[1:]) == str(raw / "m.mrc")
    (raw / "a.mrcs").unlink()
    missing = DataPlacer(project_dir, copy=True)
    missing.rewrite(Dataset([("blob/path", np.array(["J1/imported/a.mrcs"], dtype=object))]), tmp_path / "e2")
    with pytest.raises(DataError, match="1 data file"):
        missing.check("P1 J1.particles")
