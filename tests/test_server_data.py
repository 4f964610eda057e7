"""The data management routes of the HTTP API on a real project: storage, clearing intermediate
results (dry run first), exporting jobs and groups, and who may do which."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryoweave.dataset import Dataset
from cryoweave.store import accounts
from server_outputs_support import KEPT_AT_LAST, PARTICLES, build_project
from server_support import add_user, client_as, login, make_server


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    inst, client = make_server(tmp)
    add_user(inst, "ada", admin=True)
    add_user(inst, "rob")
    add_user(inst, "eve")
    login(client, "ada")
    project = inst.create_project("Data", tmp / "projects")
    second = project.create_workspace("Second").uid
    accounts.set_member(inst.store, project.uid, "rob", "read")
    jobs = build_project(project, reconstruct=False)
    jobs["particles"].add_to_workspace(second)
    yield {"inst": inst, "client": client, "reader": client_as(inst, tmp, "rob"),
           "outsider": client_as(inst, tmp, "eve"), "project": project, "second": second,
           "dir": Path(project.directory), "base": f"/api/projects/{project.uid}", **jobs}
    inst.close()


@pytest.mark.parametrize("by", ["job", "type", "workspace"])
def test_storage_figures_are_those_of_the_python_api(world, by):
    answer = world["reader"].get(f"{world['base']}/storage", params={"by": by, "refresh": 1})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    report = world["project"].storage(refresh="now")
    assert got["total_bytes"] == report.total.bytes > 0 and got["stale"] is False
    assert [(r["key"], r["bytes"], r["files"]) for r in got["rows"]] == \
        [(r.key, r.bytes, r.files) for r in report.rows(by)]
    keys = {r["key"] for r in got["rows"]}
    expected = {"job": {world["particles"].uid, world["external"].uid}, "type": {"simulate_data", "external"},
                "workspace": {world["second"]}}[by]
    assert expected <= keys
    cached = world["client"].get(f"{world['base']}/storage?by={by}").json()
    assert cached["total_bytes"] == got["total_bytes"]


@pytest.mark.parametrize("query, named", [("by=size", "size"), ("refresh=sometimes", "refresh")])
def test_bad_storage_queries_are_400(world, query, named):
    answer = world["client"].get(f"{world['base']}/storage?{query}")
    assert answer.status_code == 400 and named in answer.json()["detail"]


def test_clearing_intermediate_results_is_a_dry_run_until_confirmed(world):
    client, ext, folder = world["client"], world["external"], world["dir"]
    tables = [folder / t.metafile for t in ext.refresh().outputs["particles"].tables]
    dry = client.post(f"{world['base']}/clear-intermediate", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    expected = world["project"].clear_intermediate(dry_run=True)
    assert plan["bytes"] == expected.bytes > 0 and plan["dry_run"] is True
    assert sorted(plan["files"]) == sorted(f for j in expected.jobs for f in j.files)
    assert {str(t.relative_to(folder)) for t in tables[:2]} <= set(plan["files"])
    assert [j["job"] for j in plan["jobs"]] == [ext.uid]
    assert all(t.is_file() for t in tables)  # nothing deleted
    assert ext.refresh().outputs["particles"].versions == [0, 1, 2]
    assert client.post(f"{world['base']}/clear-intermediate").json()["files"] == plan["files"]  # default: dry run

    unconfirmed = client.post(f"{world['base']}/clear-intermediate", json={"dry_run": False})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.json()["detail"]
    assert all(t.is_file() for t in tables)
    typo = client.post(f"{world['base']}/clear-intermediate", json={"dryrun": False, "confirm": True})
    assert typo.status_code == 400 and "dryrun" in typo.json()["detail"]

    done = client.post(f"{world['base']}/clear-intermediate", json={"dry_run": False, "confirm": True})
    assert done.status_code == 200 and done.json()["dry_run"] is False
    assert done.json()["files"] == plan["files"] and done.json()["bytes"] == plan["bytes"]
    assert not tables[0].exists() and not tables[1].exists() and tables[2].is_file()
    assert ext.refresh().load_output("particles").__len__() == KEPT_AT_LAST
    again = client.post(f"{world['base']}/clear-intermediate", json={"dry_run": True}).json()
    assert again["bytes"] == 0 and again["files"] == []


def test_a_job_and_a_group_export_into_the_project(world):
    client, folder, source = world["client"], world["dir"], world["particles"]
    base, uid = world["base"], world["project"].uid
    job = client.post(f"{base}/jobs/{source.uid}/export", json={})
    assert job.status_code == 200, job.text
    path = Path(job.json()["path"])
    assert path == folder / "exports" / "jobs" / f"{uid}_{source.uid}_simulate_data" and path.is_dir()
    assert job.json()["relative"] == f"exports/jobs/{uid}_{source.uid}_simulate_data"
    assert job.json()["items"] == PARTICLES and (path / job.json()["groups"][0]["relative"].split("/")[-1]).is_dir()
    twice = client.post(f"{base}/jobs/{source.uid}/export")
    assert twice.status_code == 400 and "overwrite" in twice.json()["detail"]
    assert client.post(f"{base}/jobs/{source.uid}/export", json={"overwrite": True}).status_code == 200

    group = client.post(f"{base}/jobs/{world['external'].uid}/outputs/particles/export", json={"version": "F"})
    assert group.status_code == 200, group.text
    got = group.json()
    assert got["relative"] == f"exports/groups/{uid}_{world['external'].uid}_particles"
    table = Dataset.load(folder / got["cs"])
    assert len(table) == got["items"] == KEPT_AT_LAST and {"blob", "ctf", "alignments3D"} <= set(table.prefixes())
    assert (folder / got["csg"]).is_file()
    bad = client.post(f"{base}/jobs/{world['external'].uid}/outputs/nope/export")
    assert bad.status_code == 404 and "nope" in bad.json()["detail"]
    version = client.post(f"{base}/jobs/{world['external'].uid}/outputs/particles/export",
                          json={"version": "x", "overwrite": True})
    assert version.status_code == 400 and "version" in version.json()["detail"]


def test_only_a_completed_job_exports(world):
    building = world["project"].create_job("homo_reconstruct")
    answer = world["client"].post(f"{world['base']}/jobs/{building.uid}/export")
    assert answer.status_code == 409 and "completed" in answer.json()["detail"]


def test_a_reader_may_look_but_not_change_and_an_outsider_gets_nothing(world):
    reader, outsider, base = world["reader"], world["outsider"], world["base"]
    uid = world["external"].uid
    assert reader.get(f"{base}/storage").status_code == 200
    assert reader.get(f"{base}/jobs/{uid}/outputs").status_code == 200
    for path, body in [("/clear-intermediate", {"dry_run": True}),
                       ("/clear-intermediate", {"dry_run": False, "confirm": True}),
                       (f"/jobs/{uid}/export", {}), (f"/jobs/{uid}/outputs/particles/export", {})]:
        answer = reader.post(base + path, json=body)
        assert answer.status_code == 403 and "read" in answer.json()["detail"], (path, answer.text)
    assert outsider.get(f"{base}/storage").status_code == 403
    assert outsider.get(f"{base}/jobs/{uid}/outputs").status_code == 403
    assert outsider.get(f"{base}/jobs/{uid}/outputs/particles/download").status_code == 403
    assert outsider.post(f"{base}/clear-intermediate", json={}).status_code == 403
    csrf = world["client"].headers.pop("X-CSRF-Token")
    try:
        assert world["client"].post(f"{base}/clear-intermediate", json={}).status_code == 403
    finally:
        world["client"].headers["X-CSRF-Token"] = csrf
