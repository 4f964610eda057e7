"""The output routes of the HTTP API on a real project: outputs from the record, downloads, files,
fields, histograms, scatter plots, FSC curves and map slices (through FastAPI's test client)."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from cryoweave.dataset import Dataset
from cryoweave.formats.png import PNG_SIGNATURE
from cryoweave.store import accounts
from server_outputs_support import KEPT_AT_LAST, NAN_ROWS, PARTICLES, build_project
from server_support import add_user, client_as, login, make_server


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outputs")
    inst, client = make_server(tmp)
    add_user(inst, "ada", admin=True)
    add_user(inst, "rob")
    login(client, "ada")
    project = inst.create_project("Outputs", tmp / "projects")
    accounts.set_member(inst.store, project.uid, "rob", "read")
    jobs = build_project(project)
    yield {"inst": inst, "client": client, "reader": client_as(inst, tmp, "rob"), "project": project,
           "dir": Path(project.directory), **jobs}
    inst.close()


def url(world, job, rest: str = "") -> str:
    return f"/api/projects/{world['project'].uid}/jobs/{world[job].uid}{rest}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ------------------------------------------------------------------------------------------ outputs
def test_outputs_come_from_the_record_with_versions_passthroughs_and_item_counts(world):
    answer = world["client"].get(url(world, "external", "/outputs"))
    assert answer.status_code == 200, answer.text
    (group,) = answer.json()
    ext, source = world["external"], world["particles"]
    assert group["name"] == "particles" and group["type"] == "particle"
    assert group["versions"] == [0, 1, 2] and group["num_items"] == KEPT_AT_LAST
    assert [t["num_items"] for t in group["tables"]] == [PARTICLES, PARTICLES, KEPT_AT_LAST]
    assert group["csg"] == f"{ext.uid}/{ext.uid}_particles.csg"
    results = {r["name"]: r for r in group["results"]}
    assert set(results) == {"ctf", "blob", "alignments3D"}
    ctf = results["ctf"]
    assert not ctf["passthrough"] and ctf["versions"] == [0, 1, 2]
    assert ctf["num_items"] == [PARTICLES, PARTICLES, KEPT_AT_LAST]
    assert ctf["metafiles"] == [t["metafile"] for t in group["tables"]]
    assert ctf["paths_abs"] == [str(world["dir"] / t["metafile"]) for t in group["tables"]]
    assert ctf["address"] == f"{ext.uid}.particles.ctf"
    blob = results["blob"]
    assert blob["passthrough"] and blob["metafiles"] == [] and blob["num_items"] == [KEPT_AT_LAST]
    assert [s["metafile"] for s in blob["sources"]] == [f"{source.uid}/{source.uid}_particles.cs"]
    assert blob["paths_abs"] == [str(world["dir"] / source.uid / f"{source.uid}_particles.cs")]
    assert world["reader"].get(url(world, "external", "/outputs")).status_code == 200


def test_the_outputs_list_loads_no_table(world):
    """A group whose files are gone still lists: only the record is read."""
    project = world["project"]
    job = project.create_external_job(title="Gone")
    job.add_output("particle", "particles", slots=["ctf"])
    with job.run():
        job.save_output("particles", world["particles"].load_output("particles", slots=["ctf"]))
    table = world["dir"] / job.refresh().outputs["particles"].tables[0].metafile
    table.unlink()
    answer = world["client"].get(f"/api/projects/{project.uid}/jobs/{job.uid}/outputs")
    assert answer.status_code == 200 and answer.json()[0]["num_items"] == PARTICLES
    missing = world["client"].get(f"/api/projects/{project.uid}/jobs/{job.uid}/outputs/particles/download")
    assert missing.status_code == 404 and "missing" in missing.json()["detail"]


def test_unknown_jobs_and_groups_are_404(world):
    client = world["client"]
    assert client.get(f"/api/projects/{world['project'].uid}/jobs/J999/outputs").status_code == 404
    answer = client.get(url(world, "external", "/outputs/volume/fields"))
    assert answer.status_code == 404 and "volume" in answer.json()["detail"]


# ---------------------------------------------------------------------------------------- downloads
def test_group_tables_and_csg_download_as_the_files_are(world):
    client, ext, folder = world["client"], world["external"], world["dir"]
    tables = ext.outputs["particles"].tables
    final = client.get(url(world, "external", "/outputs/particles/download?what=cs"))
    assert final.status_code == 200 and final.content == (folder / tables[-1].metafile).read_bytes()
    assert Path(tables[-1].metafile).name in final.headers["content-disposition"]
    first = client.get(url(world, "external", "/outputs/particles/download?what=cs&version=0"))
    assert first.content == (folder / tables[0].metafile).read_bytes()
    assert len(Dataset.load(io.BytesIO(first.content))) == PARTICLES
    csg = world["reader"].get(url(world, "external", "/outputs/particles/download?what=csg"))
    assert csg.status_code == 200
    assert csg.content == (folder / ext.uid / f"{ext.uid}_particles.csg").read_bytes()
    for bad in ("what=zip", "what=cs&version=x", "what=cs&version=9", "what=csg&version=1"):
        answer = client.get(url(world, "external", f"/outputs/particles/download?{bad}"))
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["detail"].count("\n") == 0


def test_a_result_downloads_as_the_file_holding_it_at_that_version(world):
    client, ext, folder = world["client"], world["external"], world["dir"]
    ctf = ext.outputs["particles"].results["ctf"]
    v1 = client.get(url(world, "external", "/outputs/particles/results/ctf/download?version=1"))
    assert v1.status_code == 200 and v1.content == (folder / ctf.metafiles[1]).read_bytes()
    passed = client.get(url(world, "external", "/outputs/particles/results/blob/download"))
    source = world["particles"]
    assert passed.content == (folder / source.uid / f"{source.uid}_particles.cs").read_bytes()
    assert client.get(url(world, "external", "/outputs/particles/results/blob/download?version=2")).status_code == 400
    assert client.get(url(world, "external", "/outputs/particles/results/nope/download")).status_code == 404


# -------------------------------------------------------------------------------------------- files
def test_files_of_the_job_folder_are_served(world):
    client, recon, folder = world["client"], world["recon"], world["dir"]
    text = client.get(url(world, "recon", "/files/fsc.txt"))
    assert text.status_code == 200 and text.content == (folder / recon.uid / "fsc.txt").read_bytes()
    assert text.headers["content-type"].startswith("text/plain")
    image = next((folder / recon.uid / "images").iterdir())
    shown = client.get(url(world, "recon", f"/files/images/{image.name}"))
    assert shown.status_code == 200 and shown.content[:8] == PNG_SIGNATURE
    mrc = client.get(url(world, "recon", f"/files/{recon.uid}_map.mrc"))
    assert mrc.content == (folder / recon.uid / f"{recon.uid}_map.mrc").read_bytes()
    assert mrc.headers["content-type"] == "application/octet-stream"
    # a link to another file of the project is served
    (folder / recon.uid / "link_to_particles.cs").symlink_to(folder / world["particles"].uid /
                                                              f"{world['particles'].uid}_particles.cs")
    assert client.get(url(world, "recon", "/files/link_to_particles.cs")).status_code == 200


@pytest.mark.parametrize("path", [
    "../J1/job.json", "%2e%2e/J1/job.json", "%2e%2e%2fJ1%2fjob.json", "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "%2Fetc%2Fpasswd",
    "evil_passwd", "evil_dir/passwd", "images", "no_such_file.txt", "sub/%2e%2e/fsc.txt", "..\\fsc.txt",
    "fsc.txt%00.png",
])
def test_paths_outside_the_job_folder_are_404(world, path):
    folder = world["dir"] / world["recon"].uid
    if not (folder / "evil_passwd").is_symlink():
        (folder / "evil_passwd").symlink_to("/etc/passwd")
        (folder / "evil_dir").symlink_to("/etc")
    answer = world["client"].get(url(world, "recon", f"/files/{path}"))
    assert answer.status_code == 404, (path, answer.status_code, answer.text[:200])
    assert b"root:" not in answer.content


def test_a_symlinked_job_folder_file_leading_out_of_the_project_is_refused_even_when_it_exists(world):
    outside = world["dir"].parent / "outside.txt"
    outside.write_text("secret")
    (world["dir"] / world["recon"].uid / "outside.txt").symlink_to(outside)
    answer = world["client"].get(url(world, "recon", "/files/outside.txt"))
    assert answer.status_code == 404 and "secret" not in answer.text
    os.unlink(world["dir"] / world["recon"].uid / "outside.txt")


# ------------------------------------------------------------------------------------------- fields
def test_fields_are_the_scalar_numbers_of_every_result(world):
    answer = world["client"].get(url(world, "external", "/outputs/particles/fields"))
    assert answer.status_code == 200
    names = {f["field"] for f in answer.json()}
    assert {"ctf/df1_A", "blob/idx", "alignments3D/psize_A", "alignments3D/class"} <= names
    assert not {"uid", "blob/path", "ctf/type", "ctf/shift_A", "alignments3D/pose"} & names
    assert all(f["shape"] == [] for f in answer.json())


def test_a_histogram_counts_as_numpy_does_without_non_finite_values(world):
    ext = world["external"]
    for version, items in (("F", KEPT_AT_LAST), ("0", PARTICLES)):
        answer = world["reader"].get(url(world, "external", "/outputs/particles/histogram"),
                                     params={"field": "ctf/df1_A", "bins": 17, "version": version})
        assert answer.status_code == 200, answer.text
        got = answer.json()
        values = ext.load_output("particles", version="F" if version == "F" else int(version))["ctf/df1_A"]
        assert len(values) == items
        finite = values[np.isfinite(values)].astype(np.float64)
        counts, edges = np.histogram(finite, bins=17)
        assert got["counts"] == counts.tolist() and np.allclose(got["edges"], edges)
        assert got["count"] == items - len(NAN_ROWS) == sum(got["counts"])
        assert got["min"] == pytest.approx(finite.min()) and got["mean"] == pytest.approx(finite.mean())
    passed = world["client"].get(url(world, "external", "/outputs/particles/histogram?field=alignments3D/psize_A"))
    assert passed.status_code == 200 and passed.json()["count"] == KEPT_AT_LAST


@pytest.mark.parametrize("query, named", [
    ("field=ctf/nope", "ctf/nope"), ("field=blob/path", "blob/path"), ("field=uid", "uid"),
    ("field=ctf/df1_A&bins=0", "bins"), ("field=ctf/df1_A&bins=x", "bins"), ("bins=5", "field"),
])
def test_bad_histogram_requests_are_400_naming_the_field(world, query, named):
    answer = world["client"].get(url(world, "external", f"/outputs/particles/histogram?{query}"))
    assert answer.status_code == 400 and named in answer.json()["detail"], answer.text
    if "nope" in query:
        assert "ctf/df1_A" in answer.json()["detail"]


def test_a_scatter_plot_is_evenly_thinned(world):
    ext = world["external"]
    data = ext.load_output("particles")
    x, y = data["ctf/df1_A"].astype(float), data["alignments3D/psize_A"].astype(float)
    keep = np.isfinite(x) & np.isfinite(y)
    full = world["client"].get(url(world, "external", "/outputs/particles/scatter"),
                               params={"x": "ctf/df1_A", "y": "alignments3D/psize_A"}).json()
    assert full["count"] == full["shown"] == keep.sum() and np.allclose(full["x"], x[keep])
    thin = world["client"].get(url(world, "external", "/outputs/particles/scatter"),
                               params={"x": "ctf/df1_A", "y": "alignments3D/psize_A", "max_points": 37}).json()
    assert thin["count"] == keep.sum() and len(thin["x"]) == len(thin["y"]) == thin["shown"] == 37
    assert thin["x"][0] == pytest.approx(x[keep][0]) and thin["x"][-1] == pytest.approx(x[keep][-1])
    rows = np.linspace(0, keep.sum() - 1, 37).round().astype(int)  # evenly spread over the items
    assert np.allclose(thin["x"], x[keep][rows]) and np.allclose(thin["y"], y[keep][rows])
    bad = world["client"].get(url(world, "external", "/outputs/particles/scatter?x=ctf/df1_A&y=nope/z"))
    assert bad.status_code == 400 and "nope/z" in bad.json()["detail"]


# -------------------------------------------------------------------------------------- FSC, slices
def test_fsc_curves_come_from_the_jobs_fsc_txt(world):
    recon = world["recon"]
    answer = world["reader"].get(url(world, "recon", "/fsc"))
    assert answer.status_code == 200, answer.text
    got = answer.json()
    rows = [line.split() for line in (world["dir"] / recon.uid / "fsc.txt").read_text().splitlines()[1:]]
    assert len(got["frequency"]) == len(rows) and got["frequency"][3] == pytest.approx(float(rows[3][1]))
    assert {"no_mask", "spherical", "corrected"} <= set(got["curves"])
    logged = [e.data["resolution_A"] for e in recon.events() if e.data and "resolution_A" in e.data]
    assert got["resolution_A"] == pytest.approx(logged[-1])
    none = world["client"].get(url(world, "phantom", "/fsc"))
    assert none.status_code == 404 and "fsc.txt" in none.json()["detail"]


def test_slices_of_a_map_are_a_png(world):
    answer = world["reader"].get(url(world, "recon", "/outputs/volume/results/map/slices.png"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert png_size(answer.content) == (3 * 32 + 2 * 4, 32)
    half = world["client"].get(url(world, "recon", "/outputs/volume/results/map_half_A/slices.png?version=0"))
    assert half.status_code == 200 and half.content[:8] == PNG_SIGNATURE
    phantom = world["client"].get(url(world, "phantom", "/outputs/volume/results/map/slices.png"))
    assert phantom.status_code == 200 and phantom.content != answer.content
    particles = world["client"].get(url(world, "particles", "/outputs/particles/results/blob/slices.png"))
    assert particles.status_code == 400 and "particle" in particles.json()["detail"]
    missing = world["client"].get(url(world, "recon", "/outputs/volume/results/nope/slices.png"))
    assert missing.status_code == 404


def test_maps_download_as_the_mrc_files_their_results_name(world):
    recon = world["recon"]
    answer = world["reader"].get(url(world, "recon", "/outputs/volume/results/map_half_B/map"))
    assert answer.status_code == 200, answer.text
    named = recon.load_output("volume")["map_half_B/path"][0]
    assert answer.content == (world["dir"] / named).read_bytes()
    assert f"{recon.uid}_volume_map_half_B" in answer.headers["content-disposition"]
    particles = world["client"].get(url(world, "particles", "/outputs/particles/results/blob/map"))
    assert particles.status_code == 400
    assert world["client"].get(url(world, "recon", "/outputs/volume/results/map/map?index=3")).status_code == 400
