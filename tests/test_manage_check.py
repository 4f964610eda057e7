"""``check_project`` and ``relink`` (and ``cryoweave project check|relink``) on real projects made by running jobs.

Each test makes its own instance and project: the sample particles (``examples/sample_particles.py``,
with the micrographs it names present, so their paths are stored absolute) imported (J1), split (J2),
one half downsampled (J3), then curated by defocus (J4). J3 passes ``ctf`` and ``location`` through from
J1's table; J4 passes everything through from J1's and J3's. Then one thing is broken at a time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cryoweave import Dataset
from cryoweave.api import Instance
from cryoweave.builder import edits
from cryoweave.dataset import CSDAT_FORMAT
from cryoweave.errors import DataError, ParamError, StatusError
from cryoweave.manage.check import ProblemKind, Severity, check_project
from cryoweave.manage.relink import relink

ROOT = Path(__file__).parent.parent


def _sample(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("sample_particles", ROOT / "examples" / "sample_particles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.redirect_stdout(io.StringIO()):
        module.main([str(folder), "--particles", "40", "--box", "16", "--micrographs", "3"])
    for m in range(3):  # the micrographs the .star names, so that location/micrograph_path is absolute
        (folder / "MotionCorr").mkdir(exist_ok=True)
        (folder / "MotionCorr" / f"mic_{m:03d}.mrc").write_bytes(b"")
    return folder / "particles.star"


def _run(project: Any, job_type: str, params: dict[str, Any], inputs: dict[str, str] | None = None) -> Any:
    job = project.create_job(job_type, params=params)
    for name, source in (inputs or {}).items():
        job.connect(name, source)
    job.execute()
    assert job.status == "completed", job.record.run.message if job.record.run else ""
    return job


@contextlib.contextmanager
def chain(tmp_path: Path) -> Iterator[tuple[Instance, Any, Path]]:
    """An instance, its project J1..J4 (see the module docstring), and the raw data folder."""
    raw = tmp_path / "data" / "raw"
    star = _sample(raw)
    with Instance(home=tmp_path / "home") as inst:
        project = inst.create_project("Check", tmp_path / "projects")
        _run(project, "import_particles", {"particle_meta_path": str(star), "micrograph_shape": "4096x4096"})
        _run(project, "particle_sets", {"action": "split", "num_batches": 2}, {"particles_A": "J1.imported_particles"})
        _run(project, "downsample_particles", {"fourier_box": 8}, {"particles": "J2.split_0"})
        _run(project, "subset_particles_by_statistic", {"field": "ctf/df1_A", "mode": "range", "max_value": 20000.0},
             {"particles": "J3.particles"})
        yield inst, project, raw


def found(report, kind: ProblemKind) -> list:
    return [p for p in report.problems if p.kind is kind]


def test_a_project_made_by_running_jobs_checks_clean(tmp_path):
    with chain(tmp_path) as (inst, project, raw):
        micrographs = Dataset.load(project.directory / "J1" / "J1_imported_particles.cs")["location/micrograph_path"]
        assert all(os.path.isabs(p) and p.startswith(str(raw)) for p in micrographs)
        report = check_project(inst.store, project.uid)
        assert report.problems == [] and report.clean, [p.to_dict() for p in report.problems]
        assert report.checked["jobs"] == 4 and report.checked["links"] == 3
        assert report.checked["tables"] == 7  # J1 1, J2 3, J3 1, J4 2
        assert "clean" in report.summary()


def test_a_missing_or_truncated_table_is_named_with_the_jobs_that_pass_through_it(tmp_path):
    with chain(tmp_path) as (inst, project, _raw):
        folder = project.directory
        (folder / "J3" / "J3_particles.cs").unlink()
        selected = folder / "J4" / "J4_particles_selected.cs"
        os.truncate(selected, selected.stat().st_size - 5)
        report = check_project(inst.store, project.uid)
        tables = {p.where: p for p in found(report, ProblemKind.METAFILE)}
        assert set(tables) == {"J3.particles version 0 (F)", "J4.particles_selected version 0 (F)"}
        assert "J3/J3_particles.cs is missing" in tables["J3.particles version 0 (F)"].detail
        assert "J4.particles_selected" in tables["J3.particles version 0 (F)"].detail  # who depends on it
        assert "truncated" in tables["J4.particles_selected version 0 (F)"].detail
        passing = {p.where: p for p in found(report, ProblemKind.PASSTHROUGH)}
        assert {"J4.particles_selected", "J4.particles_rejected"} <= set(passing)
        assert "J3/J3_particles.cs" in passing["J4.particles_rejected"].detail
        fix = passing["J4.particles_rejected"].fix
        assert "re-run J3" in fix and "clear J4" in fix
        assert not report.clean and not any(p.repairable for p in report.problems)


def test_a_cleared_ancestor_breaks_the_passthroughs_of_the_jobs_after_it(tmp_path):
    with chain(tmp_path) as (inst, project, _raw):
        with pytest.raises(StatusError, match="J1 is not cleared: J2, J3, J4 use its results"):
            project.job("J1").clear()  # cryoweave refuses; an older tool, or a hand, may not
        inst.store.edit_job(project.uid, "J1", edits.clear())
        report = check_project(inst.store, project.uid)
        broken = {p.where: p for p in found(report, ProblemKind.PASSTHROUGH)}
        assert {"J2.split_0", "J3.particles", "J4.particles_selected"} <= set(broken)
        assert "J1 no longer holds it (it was cleared" in broken["J3.particles"].detail
        assert "ctf, location" in broken["J3.particles"].detail
        assert broken["J3.particles"].fix.startswith("re-run J1, then J3; or clear J3")


def test_a_group_file_missing_or_wrong_is_rewritten_by_repair(tmp_path):
    with chain(tmp_path) as (inst, project, _raw):
        folder = project.directory
        good = (folder / "J3" / "J3_particles.csg").read_text()
        (folder / "J2" / "J2_split_0.csg").unlink()
        (folder / "J3" / "J3_particles.csg").write_text(good.replace("num_items: 20", "num_items: 7"))
        report = check_project(inst.store, project.uid)
        assert {p.where for p in found(report, ProblemKind.CSG)} == {"J2.split_0", "J3.particles"}
        assert all(p.repairable and not p.repaired for p in report.problems) and not report.clean
        assert not (folder / "J2" / "J2_split_0.csg").exists()  # a check alone changes nothing

        repaired = check_project(inst.store, project.uid, repair=True)
        assert [p.repaired for p in repaired.problems] == [True, True] and repaired.clean
        assert (folder / "J2" / "J2_split_0.csg").exists()
        assert "num_items: 20" in (folder / "J3" / "J3_particles.csg").read_text()
        assert check_project(inst.store, project.uid).problems == []


def test_record_files_damaged_missing_or_different_are_rewritten_from_the_database(tmp_path):
    with chain(tmp_path) as (inst, project, _raw):
        folder = project.directory
        (folder / "J2" / "job.json").write_text('{"kind": "job", "schema_ver')
        j3 = folder / "J3" / "job.json"
        j3.write_text(j3.read_text().replace('"title": "', '"title": "edited by hand '))
        (folder / "J4" / "job.json").unlink()
        (folder / "J1" / "events.jsonl").unlink()
        report = check_project(inst.store, project.uid)
        by_where = {p.where: p for p in report.problems}
        assert by_where["J2/job.json"].kind is ProblemKind.RECORD and "not valid JSON" in by_where["J2/job.json"].detail
        assert by_where["J3/job.json"].kind is ProblemKind.DATABASE and "title" in by_where["J3/job.json"].detail
        assert by_where["J4/job.json"].kind is ProblemKind.DATABASE and "missing" in by_where["J4/job.json"].detail
        assert by_where["J1/events.jsonl"].detail == "missing"
        assert len(report.problems) == 4 and all(p.repairable for p in report.problems)

        assert all(p.repaired for p in check_project(inst.store, project.uid, repair=True).problems)
        assert check_project(inst.store, project.uid).problems == []
        assert project.job("J3").title == inst.store.get_job(project.uid, "J3").title
        assert len(project.job("J1").events()) > 3


def test_a_job_folder_the_database_does_not_know_is_reported(tmp_path):
    with chain(tmp_path) as (inst, project, _raw):
        folder = project.directory
        (folder / "J9").mkdir()
        text = (folder / "J4" / "job.json").read_text().replace('"uid": "J4"', '"uid": "J9"')
        (folder / "J9" / "job.json").write_text(text)
        report = check_project(inst.store, project.uid)
        assert [p.where for p in report.problems] == ["J9/job.json"]
        assert "the database has no J9" in report.problems[0].detail and not report.problems[0].repairable


def test_moved_raw_data_is_reported_then_relinked(tmp_path):
    with chain(tmp_path) as (inst, project, raw):
        folder = project.directory
        # A link to a sibling folder whose name starts the same: a relink of raw must leave it alone.
        other = tmp_path / "data" / "raw2"
        other.mkdir()
        (other / "extra.mrcs").write_bytes(b"x")
        os.symlink(other / "extra.mrcs", folder / "J1" / "imported" / "extra.mrcs")
        table = folder / "J1" / "J1_imported_particles.cs"
        Dataset.load(table).save(table, format=CSDAT_FORMAT)  # relink keeps a table's format
        new = tmp_path / "data" / "moved"
        raw.rename(new)

        report = check_project(inst.store, project.uid)
        links = found(report, ProblemKind.LINK)
        assert [p.where for p in links] == ["J1/"] and "3 link(s)" in links[0].detail
        assert f"relink {project.uid} --from {raw}" in links[0].fix
        paths = {p.where: p for p in found(report, ProblemKind.DATA_PATH)}
        blob = paths["J1/J1_imported_particles.cs blob/path"]
        assert blob.severity is Severity.ERROR and "a link to" in blob.detail
        assert paths["J1/J1_imported_particles.cs location/micrograph_path"].severity is Severity.WARNING
        assert not report.clean

        preview = relink(inst.store, project.uid, raw, new, dry_run=True)
        assert [c.link for c in preview.links] == [f"J1/imported/mic_00{m}.mrcs" for m in range(3)]
        assert [t.metafile for t in preview.tables] == ["J1/J1_imported_particles.cs"]
        assert not preview.applied and not preview.missing
        assert os.readlink(folder / "J1" / "imported" / "mic_000.mrcs").startswith(str(raw))  # unchanged

        done = relink(inst.store, project.uid, raw, new)
        assert done.applied and done.tables[0].rows == {"location/micrograph_path": 40}
        assert os.readlink(folder / "J1" / "imported" / "mic_000.mrcs") == str(new / "Extract" / "mic_000.mrcs")
        assert os.readlink(folder / "J1" / "imported" / "extra.mrcs") == str(other / "extra.mrcs")
        assert Dataset.inspect(table)["format"] == "csdat"
        assert check_project(inst.store, project.uid).problems == []
        particles = project.job("J4").load_output("particles_selected")
        assert all(p.startswith(str(new)) for p in particles["location/micrograph_path"])
        import mrcfile
        with mrcfile.mmap(folder / particles["blob/path"][0]) as mrc:
            assert mrc.data.shape[-1] == 8


def test_relink_refuses_what_it_cannot_do_safely(tmp_path):
    with chain(tmp_path) as (inst, project, raw):
        folder = project.directory
        link = folder / "J1" / "imported" / "mic_000.mrcs"
        with pytest.raises(ParamError, match="does not exist"):
            relink(inst.store, project.uid, raw, tmp_path / "nowhere")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with pytest.raises(DataError, match=r"nothing relinked: 6 of the new targets .* --force"):
            relink(inst.store, project.uid, raw, elsewhere)
        assert os.readlink(link) == str(raw / "Extract" / "mic_000.mrcs")
        project.archive()
        with pytest.raises(StatusError, match="archived"):
            relink(inst.store, project.uid, raw, elsewhere, force=True)
        report = check_project(inst.store, project.uid)  # an archived project is checked ...
        assert report.clean
        with pytest.raises(StatusError, match=r"archived .* not repaired"):  # ... but not repaired
            check_project(inst.store, project.uid, repair=True)
        project.unarchive()
        forced = relink(inst.store, project.uid, raw, elsewhere, force=True)
        assert forced.applied and len(forced.missing) == 6
        assert os.readlink(link) == str(elsewhere / "Extract" / "mic_000.mrcs")


def _cli(home: Path, *args: Any) -> subprocess.CompletedProcess:
    """The real program, in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYOWEAVE_")} | {"CRYOWEAVE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cryoweave", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def _main(capsys, *args: Any) -> tuple[int, str, str]:
    """``cryoweave.cli.main`` in this process (faster): exit status, stdout, stderr."""
    from cryoweave.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_.value.code or 0, out, err


def test_the_command_line_exit_codes_and_relink_confirmation(tmp_path, monkeypatch, capsys):
    with chain(tmp_path) as (_inst, project, raw):
        home, folder = tmp_path / "home", project.directory
        for name in [k for k in os.environ if k.startswith("CRYOWEAVE_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("CRYOWEAVE_HOME", str(home))
        clean = _cli(home, "project", "check", project.uid)
        assert clean.returncode == 0 and "clean" in clean.stdout, clean.stderr
        (folder / "J3" / "J3_particles.csg").unlink()
        new = tmp_path / "data" / "moved"
        raw.rename(new)
        code, out, _ = _main(capsys, "project", "check", project.uid, "--json")
        assert code == 1 and '"kind": "csg"' in out and '"kind": "link"' in out

        refused = _cli(home, "project", "relink", project.uid, "--from", raw, "--to", new)
        assert refused.returncode == 1 and "--yes" in refused.stderr and "would re-point 3 link(s)" in refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert os.readlink(folder / "J1" / "imported" / "mic_000.mrcs").startswith(str(raw))
        code, out, _ = _main(capsys, "project", "relink", project.uid, "--from", raw, "--to", new, "--dry-run")
        assert code == 0 and "J1/imported/mic_000.mrcs" in out
        code, out, err = _main(capsys, "project", "relink", project.uid, "--from", raw, "--to", new, "--yes")
        assert code == 0 and "re-pointed 3 link(s)" in out, err

        code, out, _ = _main(capsys, "project", "check", project.uid)
        assert code == 1 and "csg" in out and "--repair" in out
        code, out, _ = _main(capsys, "project", "check", project.uid, "--repair")
        assert code == 0 and "1 repaired" in out, out
        assert _main(capsys, "project", "check", project.uid)[0] == 0
