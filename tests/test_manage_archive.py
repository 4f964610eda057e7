"""Project archives: archive to a verified tar, read-only while archived, unarchive and restore, attach a copy
on another instance, and the refusals (bad archives, malicious tars, active jobs, the CLI's --yes).

Each test builds a real small project: particles imported from the README's sample data (so that
``J1/imported/`` holds links to raw stacks outside the project) and a split job downstream.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from cryoweave.api import Instance
from cryoweave.errors import DataError, ParamError, StatusError, UnsafePathError
from cryoweave.manage.archive import (
    archive_project,
    archived_location,
    attach_archive,
    extract_archive,
    unarchive_project,
)
from cryoweave.manage.tarball import MANIFEST_NAME, verify_archive
from cryoweave.store import database
from cryoweave.store.schema import jobs

ROOT = Path(__file__).parent.parent


def _sample(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("sample_particles", ROOT / "examples" / "sample_particles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(folder), "--particles", "40", "--box", "16", "--micrographs", "3"])
    return folder / "particles.star"


def _project(inst: Instance, tmp_path: Path):
    star = _sample(tmp_path / "raw")
    project = inst.create_project("Archived", tmp_path / "projects")
    imp = project.create_job("import_particles", params={"particle_meta_path": str(star),
                                                         "micrograph_shape": "4096x4096"})
    imp.execute()
    split = project.create_job("particle_sets", params={"action": "split", "num_batches": 2})
    split.connect("particles_A", "J1.imported_particles")
    split.execute()
    assert (imp.status, split.status) == ("completed", "completed")
    return project


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    """Every file of a folder: a link's target, or a file's sha256 (the records the instance rewrites left out)."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel in ("project.json", "cryoweave.lock"):
                continue
            found[rel] = "-> " + os.readlink(path) if path.is_symlink() else _sha256(path)
    return found


@pytest.fixture
def home(tmp_path):
    with Instance(home=tmp_path / "home") as inst:
        yield inst, _project(inst, tmp_path)


@pytest.mark.parametrize("suffix", [".tar", ".tar.zst", ".tar.gz"])
def test_archive_is_verified_and_leaves_the_project_read_only(home, tmp_path, suffix):
    inst, project = home
    dest = tmp_path / f"out/P1{suffix}"
    dest.parent.mkdir()
    report = archive_project(inst.store, project.uid, dest)
    assert report.verified and report.path == dest and dest.stat().st_size == report.bytes
    assert report.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    files = [p for p in project.directory.rglob("*") if p.is_file() and not p.is_symlink()]
    assert (report.files, report.links, report.external_links, report.raw_files) == (len(files) - 1, 3, 3, 0)
    assert os.listdir(dest.parent) == [dest.name]  # no temporary file left
    manifest = verify_archive(dest)
    assert (manifest["project"], manifest["title"], manifest["include_raw"]) == ("P1", "Archived", False)
    listed = {e["name"]: e for e in manifest["files"]}
    assert "cryoweave.lock" not in listed and listed["J1/imported/mic_000.mrcs"]["type"] == "link"
    assert listed["J1/job.json"]["sha256"] == _sha256(project.directory / "J1/job.json")
    assert archived_location(inst.store, "P1").path == dest

    assert project.archived
    with pytest.raises(StatusError, match="archived"):
        project.create_job("particle_sets", params={"action": "split"})
    with pytest.raises(ParamError, match="already exists"):
        archive_project(inst.store, project.uid, dest)
    assert unarchive_project(inst.store, project.uid) == project.directory
    assert not project.archived
    project.create_job("particle_sets", params={"action": "split"})  # writable again


def test_a_damaged_copy_fails_verification_naming_the_file(home, tmp_path):
    inst, project = home
    archive_project(inst.store, project.uid, tmp_path / "P1.tar")
    archive_project(inst.store, project.uid, tmp_path / "P1.tar.zst")
    with tarfile.open(tmp_path / "P1.tar") as tar:
        offset = tar.getmember("archived/J1/job.json").offset_data
    damaged = bytearray((tmp_path / "P1.tar").read_bytes())
    damaged[offset + 10] ^= 0x20
    (tmp_path / "copy.tar").write_bytes(damaged)
    with pytest.raises(DataError, match=r"copy.tar is damaged: the content \(sha256\) of J1/job.json differs"):
        verify_archive(tmp_path / "copy.tar")
    damaged = bytearray((tmp_path / "P1.tar.zst").read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (tmp_path / "copy.tar.zst").write_bytes(damaged)
    with pytest.raises(DataError, match=r"copy\.tar\.zst"):
        verify_archive(tmp_path / "copy.tar.zst")
    (tmp_path / "cut.tar.zst").write_bytes((tmp_path / "P1.tar.zst").read_bytes()[:3000])
    with pytest.raises(DataError, match=r"cut\.tar\.zst"):
        verify_archive(tmp_path / "cut.tar.zst")


def test_refusals_leave_the_project_as_it_was(home, tmp_path):
    inst, project = home
    with pytest.raises(ParamError, match=r"\.tar, \.tar\.zst, \.tar\.gz"):
        archive_project(inst.store, project.uid, tmp_path / "P1.zip")
    with pytest.raises(ParamError, match="inside the project directory"):
        archive_project(inst.store, project.uid, project.directory / "J1" / "P1.tar")
    with pytest.raises(ParamError, match="does not exist"):
        archive_project(inst.store, project.uid, tmp_path / "nowhere" / "P1.tar")
    with database.transaction(inst.store.engine) as conn:
        conn.execute(update(jobs).where(jobs.c.number == 2).values(status="running"))
    with pytest.raises(StatusError, match=r"active jobs \(J2\)"):
        archive_project(inst.store, project.uid, tmp_path / "P1.tar")
    assert not project.archived and not (tmp_path / "P1.tar").exists()
    with database.transaction(inst.store.engine) as conn:
        conn.execute(update(jobs).where(jobs.c.number == 2).values(status="completed"))
    (tmp_path / "raw" / "Extract" / "mic_001.mrcs").unlink()  # a raw stack gone: --include-raw cannot store it
    with pytest.raises(DataError, match=r"mic_001.mrcs is a link to .*which does not exist"):
        archive_project(inst.store, project.uid, tmp_path / "P1.tar", include_raw=True)
    assert not project.archived and sorted(os.listdir(tmp_path)) == ["home", "projects", "raw"]


def test_remove_directory_then_unarchive_restores_identical_files(home, tmp_path):
    inst, project = home
    before = _tree(project.directory)
    report = archive_project(inst.store, project.uid, tmp_path / "P1.tar.zst", remove_directory=True)
    assert report.directory_removed and not project.directory.exists()
    assert project.archived and inst.store.get_project("P1").directory == project.directory  # still listed

    # a damaged copy: refused, naming the file, and nothing left next to the directory's place
    damaged = bytearray((tmp_path / "P1.tar.zst").read_bytes())
    with tarfile.open(fileobj=io.BytesIO(_unzstd(damaged))) as tar:
        assert tar.getnames()[-1] == f"archived/{MANIFEST_NAME}"
    plain = tmp_path / "copy.tar"
    data = bytearray(_unzstd(damaged))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        offset = tar.getmember("archived/J2/J2_split_0.cs").offset_data
    data[offset + 40] ^= 0xFF
    plain.write_bytes(data)
    with pytest.raises(DataError, match=r"J2/J2_split_0\.cs differs from its manifest"):
        unarchive_project(inst.store, project.uid, source=plain, allow_links=True)
    assert os.listdir(project.directory.parent) == []
    assert project.archived

    assert unarchive_project(inst.store, project.uid) == project.directory  # from the remembered archive
    assert _tree(project.directory) == before
    assert not project.archived and (project.directory / "cryoweave.lock").is_file()
    split = project.job("J2").load_output("split_0")
    assert len(split) == 20
    project.create_job("particle_sets", params={"action": "split"})


def _unzstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data)), read_across_frames=True).read()


def test_include_raw_stores_the_stacks_and_attaches_on_another_instance(home, tmp_path):
    inst, project = home
    report = archive_project(inst.store, project.uid, tmp_path / "P1.tar.zst", include_raw=True)
    assert (report.raw_files, report.links, report.include_raw) == (3, 0, True)
    with tarfile.open(fileobj=io.BytesIO(_unzstd((tmp_path / "P1.tar.zst").read_bytes()))) as tar:
        member = tar.getmember("archived/J1/imported/mic_002.mrcs")
        assert member.isreg()
        assert tar.extractfile(member).read() == (tmp_path / "raw/Extract/mic_002.mrcs").read_bytes()
    original = project.job("J2").load_output("split_1")

    with Instance(home=tmp_path / "other") as other:
        info = attach_archive(other.store, tmp_path / "P1.tar.zst", tmp_path / "imports")
        assert info.directory == tmp_path / "imports" / "archived" and not info.archived
        copy = other.project(info.uid)
        assert not (copy.directory / "J1/imported/mic_000.mrcs").is_symlink()
        loaded = copy.job("J2").load_output("split_1")
        assert np.array_equal(loaded["uid"], original["uid"])
        assert np.array_equal(loaded["ctf/df1_A"], original["ctf/df1_A"])
        assert list(loaded["blob/path"]) == list(original["blob/path"])
        copy.create_job("particle_sets", params={"action": "split"})  # a new copy: writable
        with pytest.raises(ParamError, match="already exists"):
            attach_archive(other.store, tmp_path / "P1.tar.zst", tmp_path / "imports")
        assert len(other.projects()) == 1


def test_links_that_lead_out_need_allow_links(home, tmp_path):
    inst, project = home
    archive_project(inst.store, project.uid, tmp_path / "P1.tar")
    with pytest.raises(UnsafePathError, match=r"J1/imported/mic_000.mrcs is a link to /.*--allow-links.*--include-raw"):
        extract_archive(tmp_path / "P1.tar", tmp_path / "imports")
    assert not (tmp_path / "imports").exists()  # refused before anything was made
    folder = extract_archive(tmp_path / "P1.tar", tmp_path / "imports", allow_links=True)
    assert os.readlink(folder / "J1/imported/mic_000.mrcs") == str(tmp_path / "raw/Extract/mic_000.mrcs")
    assert not (folder / MANIFEST_NAME).exists() and not (folder / "cryoweave.lock").exists()


# ---------------------------------------------------------------------- malicious tars
def _tar(path: Path, *members: tuple[str, str, str | bytes]) -> Path:
    """A tar of (name, kind, data or link target) made with tarfile directly."""
    with tarfile.open(path, "w") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "file":
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
            else:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                             "fifo": tarfile.FIFOTYPE}[kind]
                info.linkname = value
                tar.addfile(info)
    return path


MALICIOUS = {
    "absolute": ([("/tmp/evil", "file", b"x")], "absolute path"),
    "dotdot": ([("p", "dir", ""), ("p/../../x", "file", b"x")], "climbs out"),
    "symlink_to_etc": ([("p", "dir", ""), ("p/passwd", "symlink", "/etc/passwd")], "--allow-links"),
    "symlink_climbs": ([("p", "dir", ""), ("p/up", "symlink", "../../..")], "outside the project folder"),
    "through_symlink": ([("p", "dir", ""), ("p/d", "symlink", "{outside}"), ("p/d/planted", "file", b"x")],
                        "written through p/d"),
    "through_inner_symlink": ([("p", "dir", ""), ("p/sub", "dir", ""), ("p/s", "symlink", "sub"),
                               ("p/s/f", "file", b"x")], "written through p/s"),
    "device": ([("p", "dir", ""), ("p/null", "chr", "")], "character device"),
    "fifo": ([("p", "dir", ""), ("p/pipe", "fifo", "")], "fifo"),
    "hardlink_out": ([("p", "dir", ""), ("p/h", "hardlink", "/etc/passwd")], "absolute path"),
    "hardlink_unknown": ([("p", "dir", ""), ("p/h", "hardlink", "p/missing")], "hard link"),
    "two_tops": ([("p", "dir", ""), ("p/a", "file", b"a"), ("q", "dir", ""), ("q/b", "file", b"b")],
                 "more than one top folder"),
    "file_at_top": ([("p", "file", b"x")], "not a folder"),
    "duplicate": ([("p", "dir", ""), ("p/a", "file", b"a"), ("p/a", "file", b"b")], "twice"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_refused_with_nothing_written(tmp_path, case):
    members, message = MALICIOUS[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [(n, k, v.replace("{outside}", str(outside)) if isinstance(v, str) else v) for n, k, v in members]
    archive = _tar(tmp_path / "evil.tar", *members)
    dest = tmp_path / "imports"
    dest.mkdir()
    for allow_links in (False, True) if case.startswith("through") else (False,):
        expected = "an absolute path.*--allow-links" if case == "through_symlink" and not allow_links else message
        with pytest.raises(UnsafePathError, match=expected):  # even a trusted link is never written through
            extract_archive(archive, dest, allow_links=allow_links)
        assert os.listdir(dest) == [] and os.listdir(outside) == []
    assert not Path("/tmp/evil").exists() or case != "absolute"
    with Instance(home=tmp_path / "home") as inst, pytest.raises(UnsafePathError):
        attach_archive(inst.store, archive, dest)
    assert os.listdir(dest) == []


def test_a_link_inside_stays_and_a_foreign_tar_without_manifest_extracts(tmp_path):
    archive = _tar(tmp_path / "plain.tar", ("./p", "dir", ""), ("./p/sub", "dir", ""), ("./p/sub/a", "file", b"hi"),
                   ("./p/l", "symlink", "sub/a"), ("./p/h", "hardlink", "p/sub/a"))
    folder = extract_archive(archive, tmp_path / "x")
    assert (folder / "l").read_bytes() == b"hi" and os.readlink(folder / "l") == "sub/a"
    assert (folder / "h").read_bytes() == b"hi" and not (folder / "h").is_symlink()
    with pytest.raises(DataError, match="no manifest"):
        verify_archive(archive)


# ---------------------------------------------------------------------- the command line
def _cli(home: Path, *args: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYOWEAVE_")}
    return subprocess.run([sys.executable, "-m", "cryoweave", *map(str, args)], capture_output=True, text=True,
                          env={**env, "CRYOWEAVE_HOME": str(home)}, check=False, timeout=120)


def test_cli_archive_unarchive_and_attach(tmp_path):
    with Instance(home=tmp_path / "home") as inst:
        directory = _project(inst, tmp_path).directory
    home, dest = tmp_path / "home", tmp_path / "P1.tar.zst"

    refused = _cli(home, "project", "archive", "P1", dest, "--remove-directory")
    assert refused.returncode == 1 and "--yes" in refused.stderr and str(directory) in refused.stderr
    assert directory.is_dir() and not dest.exists()

    done = _cli(home, "project", "archive", "P1", dest, "--remove-directory", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verified"] and report["directory_removed"] and report["path"] == str(dest)
    assert not directory.exists() and dest.is_file()
    shown = _cli(home, "project", "info", "P1")
    assert "yes (read-only)" in shown.stdout and str(dest) in shown.stdout

    restored = _cli(home, "project", "unarchive", "P1")
    assert restored.returncode == 0, restored.stderr
    assert (directory / "J2" / "job.json").is_file()

    other = tmp_path / "other"
    missing_to = _cli(other, "project", "attach", dest)
    assert missing_to.returncode == 1 and "--to" in missing_to.stderr
    no_links = _cli(other, "project", "attach", dest, "--to", tmp_path / "imports")
    assert no_links.returncode == 1 and "--allow-links" in no_links.stderr
    attached = _cli(other, "project", "attach", dest, "--to", tmp_path / "imports", "--allow-links", "--json")
    assert attached.returncode == 0, attached.stderr
    info = json.loads(attached.stdout)
    assert info["title"] == "Imported: Archived" and not info["archived"] and info["num_jobs"] == 2
    assert "Example" in _cli(home, "project", "archive", "--help").stdout
    shutil.rmtree(tmp_path / "imports")
