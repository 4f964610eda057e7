"""`cryoweave dataset info|convert`, run as a user runs them: a real process on real files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cryoweave import CSDAT_FORMAT, Dataset
from cryoweave.formats.csg import CsgResult, ResultGroupFile, write_csg
from cryoweave.spec.examples import particle_dataset


def cryoweave(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryoweave", *map(str, args)], capture_output=True,
                          text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def particles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    d = particle_dataset(3000, micrographs=12, seed=5)
    d.save(folder / "particles.cs")
    d.save(folder / "particles_lz4.cs", format=CSDAT_FORMAT)
    return folder, d


def test_info_shows_rows_fields_format_size_and_stats(particles):
    folder, d = particles
    proc = cryoweave("dataset", "info", folder / "particles.cs")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "3,000 rows" in first and "37 fields" in first and "numpy format" in first and "MiB" in first
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[2:] if line.strip()}
    assert set(lines) == set(d.fields())
    assert lines["ctf/df1_A"].split()[1] == "f4"
    assert lines["alignments3D/shift"].split()[1] == "2f4"
    assert f"{d['ctf/df1_A'].min():.6g}" in lines["ctf/df1_A"]
    assert lines["location/micrograph_path"].split()[2] == "12"  # distinct values


def test_info_json_header_only(particles):
    folder, d = particles
    proc = cryoweave("dataset", "info", folder / "particles_lz4.cs", "--json", "--no-stats")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["format"] == "csdat" and report["compression"] == "lz4" and report["rows"] == 3000
    assert report["size_bytes"] == (folder / "particles_lz4.cs").stat().st_size
    assert [f["field"] for f in report["fields"]] == d.fields()
    assert {f["field"]: f["dtype"] for f in report["fields"]}["alignments3D/pose"] == "3f4"
    assert "min" not in report["fields"][1]


def test_info_json_stats_values(particles):
    folder, d = particles
    report = json.loads(cryoweave("dataset", "info", folder / "particles.cs", "--json").stdout)
    stats = {f["field"]: f for f in report["fields"]}
    assert stats["ctf/df1_A"]["max"] == pytest.approx(float(d["ctf/df1_A"].max()))
    assert stats["alignments3D/split"]["distinct"] == 2
    assert stats["uid"]["min"] == int(d["uid"].min())  # exact 64-bit integers
    assert stats["blob/path"]["distinct"] == 12


def test_info_on_a_csg_reports_the_group(particles, tmp_path):
    _, d = particles
    d.filter_prefixes(["blob"], copy=True).save(tmp_path / "a.cs")
    d.filter_prefixes(["ctf"], copy=True).save(tmp_path / "b.cs")
    write_csg(ResultGroupFile(name="particles", type="particle", results={
        "blob": CsgResult(">a.cs", 3000, "particle.blob"), "ctf": CsgResult(">b.cs", 3000, "particle.ctf")}),
        tmp_path / "g.csg")
    report = json.loads(cryoweave("dataset", "info", tmp_path / "g.csg", "--json").stdout)
    assert report["group"]["name"] == "particles"
    assert report["group"]["results"]["ctf"]["metafile"] == str(tmp_path / "b.cs")
    assert report["rows"] == 3000
    expected = d.filter_prefixes(["blob", "ctf"], copy=True).fields()
    assert {f["field"] for f in report["fields"]} == set(expected)


@pytest.mark.parametrize(("to", "magic"), [(None, b"\x93NUMPY"), ("csdat", b"\x95CSDAT"),
                                           ("csdat-raw", b"\x95CSDAT")])
def test_convert_between_cs_formats(particles, tmp_path, to, magic):
    folder, d = particles
    dest = tmp_path / "out.cs"
    args = ["dataset", "convert", folder / "particles_lz4.cs", dest] + (["--to", to] if to else [])
    proc = cryoweave(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {dest}: 3,000 rows, 37 fields")
    assert dest.read_bytes()[:6] == magic
    header = Dataset.inspect(dest)
    assert header["compression"] == ("lz4" if to == "csdat" else None)
    assert Dataset.load(dest) == d


def test_convert_keeps_only_chosen_results(particles, tmp_path):
    folder, d = particles
    proc = cryoweave("dataset", "convert", folder / "particles.cs", tmp_path / "ctf.cs", "-p", "ctf",
                     "-f", "blob/path")
    assert proc.returncode == 0, proc.stderr
    out = Dataset.load(tmp_path / "ctf.cs")
    assert out.fields() == ["uid", "blob/path"] + [f for f in d.fields() if f.startswith("ctf/")]
    assert np.array_equal(out["ctf/df2_A"], d["ctf/df2_A"])


def test_convert_to_star_and_back_keeps_uids(particles, tmp_path):
    folder, d = particles
    star = tmp_path / "particles.star"
    proc = cryoweave("dataset", "convert", folder / "particles.cs", star)
    assert proc.returncode == 0, proc.stderr
    assert "data_optics" in star.read_text()[:2000]
    proc = cryoweave("dataset", "convert", star, tmp_path / "back.cs")
    assert proc.returncode == 0, proc.stderr
    back = Dataset.load(tmp_path / "back.cs")
    assert back["uid"].tolist() == d["uid"].tolist()
    assert np.allclose(back["ctf/df1_A"], d["ctf/df1_A"], atol=1e-2)


def test_refuses_to_overwrite_without_force(particles, tmp_path):
    folder, _ = particles
    dest = tmp_path / "exists.cs"
    dest.write_bytes(b"precious")
    proc = cryoweave("dataset", "convert", folder / "particles.cs", dest)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"cryoweave: error: {dest} already exists; pass --force to replace it"
    assert dest.read_bytes() == b"precious"
    assert cryoweave("dataset", "convert", folder / "particles.cs", dest, "--force").returncode == 0
    assert dest.read_bytes()[:6] == b"\x93NUMPY"


@pytest.mark.parametrize(("args", "message"), [
    (["info", "{tmp}/missing.cs"], "missing.cs: no such file"),
    (["info", "{tmp}/junk.cs"], "junk.cs: it starts with b'hello!'"),
    (["info", "{tmp}/cut.cs"], "cut.cs: file is truncated"),
    (["convert", "{tmp}/junk.cs", "{tmp}/o.cs"], "junk.cs: it starts with"),
    (["convert", "{src}", "{tmp}/o.star", "--to", "numpy"], "wrong extension"),
    (["convert", "{src}", "{tmp}/o.cs", "--to", "parquet"], "unknown output format 'parquet'"),
    (["convert", "{src}", "{tmp}/o.csg"], "a .csg describes .cs files"),
    (["convert", "{src}", "{tmp}/no/dir/o.cs"], "does not exist"),
    (["convert", "{star}", "{tmp}/o.cs", "--micrograph-shape", "big"], "must be NYxNX"),
])
def test_user_errors_are_one_line(particles, tmp_path, args, message):
    folder, _ = particles
    (tmp_path / "junk.cs").write_bytes(b"hello! this is not a dataset")
    (tmp_path / "cut.cs").write_bytes((folder / "particles.cs").read_bytes()[:5000])
    (tmp_path / "p.star").write_text("data_\nloop_\n_rlnImageName\n1@a.mrcs\n")
    subst = {"tmp": tmp_path, "src": folder / "particles.cs", "star": tmp_path / "p.star"}
    proc = cryoweave("dataset", *[a.format(**subst) for a in args])
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("cryoweave: error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.cs").exists()


def test_help_has_examples():
    for verb in ("info", "convert"):
        proc = cryoweave("dataset", verb, "--help")
        assert proc.returncode == 0 and "Example: cryoweave dataset " + verb in " ".join(proc.stdout.split())
    assert cryoweave("--version").stdout.startswith("cryoweave ")
