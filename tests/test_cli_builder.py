"""`cryoweave job inputs|connect-result|clear-slot|outputs|export-output|queue|run`: a chain of jobs built,
run and exported with the command line, as a user does it, on both databases.

The job types are the fake lab plugin's (``tests/labjobs``), whose ``lab_import_particles``,
``subset_particles`` and ``join_particles`` really run. The calls are real processes (see
:mod:`test_cli_projects`); independent ones run concurrently to keep the file fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryoweave import Dataset
from cryoweave.spec import result_fields
from test_cli_projects import Cryoweave, at_once

BLOB = [f[0] for f in result_fields("blob")]
CTF = [f[0] for f in result_fields("ctf")]


def _slots(data: dict, index: int = 0) -> list[tuple[str, str | None, str]]:
    connection = data["connections"][index]
    return [(b["name"], b["result"], b["how"]) for b in connection["slots"] + connection["passthroughs"]]


def _blob_only_file(path: Path, n: int) -> Path:
    """A .cs file of ``n`` particles with a complete blob result and nothing else."""
    data = Dataset.allocate(n, result_fields("blob"))
    data["blob/path"] = np.array(["other/stack.mrcs"] * n, dtype=object)
    data["blob/idx"] = np.arange(n)
    data.save(path)
    return path


def test_build_run_and_export_a_chain(database_url, tmp_path):
    cw = Cryoweave(tmp_path / "home", database_url)
    directory = Path(cw.json("project", "create", "Chain", "--dir", tmp_path / "projects")["directory"])
    blob_only = _blob_only_file(tmp_path / "blob_only.cs", 50)
    for args in [("lab_import_particles", "-p", "num_particles=1000", "-p", "iterations=3", "-p", "seed=7"),
                 ("subset_particles", "-p", "fraction=0.25", "-p", "order=first"),
                 ("lab_import_particles", "-p", f"source_path={blob_only}"),
                 ("lab_import_particles", "-p", f"source_path={tmp_path / 'missing.cs'}"),
                 ("join_particles",)]:
        cw.ok("job", "create", "P1", *args)

    # J1 and J3 run; J4 fails; J2 cannot be queued or edited before anything is connected.
    ran1, ran3, failed, refused, unconnected, no_connection = at_once(
        cw.later("ok", "job", "run", "P1", "J1"), cw.later("ok", "job", "run", "P1", "J3"),
        cw.later("fails", "job", "run", "P1", "J4"), cw.later("fails", "job", "queue", "P1", "J2"),
        cw.later("json", "job", "inputs", "P1", "J2"),
        cw.later("fails", "job", "clear-slot", "P1", "J2", "particles.0.ctf"))
    assert ran1.startswith("P1 J1: completed in ") and ran1.endswith(" s; outputs: particles (1,000 items)\n")
    assert ran3.endswith("; outputs: particles (50 items)\n")
    assert failed == (f"job J4 failed: cannot load dataset {tmp_path / 'missing.cs'}: no such file "
                      "(cryoweave job events P1 J4 shows its log)")
    need = "input 'particles' needs at least 1 connected particle group(s) and has 0"
    assert refused == f"cannot queue J2: {need}"
    assert unconnected == [{
        "name": "particles", "title": "", "type": "particle", "slots": ["blob", "?ctf"], "count_min": 1,
        "count_max": 1, "repeat_allowed": False, "met": False, "problems": [need], "connections": [], "dropped": []}]
    assert no_connection.startswith("input 'particles' of J2 has 0 connection(s); there is no connection 0")

    assert cw.ok("job", "connect", "P1", "J2", "particles", "J1.particles").endswith("connected to J1.particles\n")
    by_name, wrong_type, no_version, required, text = at_once(
        cw.later("json", "job", "inputs", "P1", "J2"),
        cw.later("fails", "job", "connect-result", "P1", "J2", "particles.0.blob", "J1.particles.ctf"),
        cw.later("fails", "job", "connect-result", "P1", "J2", "particles.0.ctf", "J1.particles.ctf.7"),
        cw.later("fails", "job", "clear-slot", "P1", "J2", "particles.0.blob"),
        cw.later("ok", "job", "inputs", "P1", "J2"))
    assert by_name[0]["met"] and by_name[0]["problems"] == []
    assert _slots(by_name[0]) == [("blob", "J1.particles.blob.F", "name"), ("ctf", "J1.particles.ctf.F", "name")]
    assert wrong_type == "J1.particles.ctf is a ctf result; slot particles.0.blob takes blob"
    assert no_version == "J1.particles.ctf has no version 7; saved versions: 0, 1, 2"
    assert required == ("slot particles.0.blob is required: it can be bound to another result (connect-result) "
                        "but not cleared")
    lines = [line.split() for line in text.splitlines()]
    assert ["particles", "particle", "×1..1,", "no", "repeats;", "slots:", "blob,", "?ctf", "✓", "met"] in lines
    assert ["[0]", "J1.particles"] in lines and ["ctf", "ctf", "J1.particles.ctf.F", "by", "name"] in lines

    # A slot overridden with a version, cleared (an optional one), reset, overridden again.
    override = cw.json("job", "connect-result", "P1", "J2", "particles.0.ctf", "J1.particles.ctf.1")
    cleared = cw.json("job", "clear-slot", "P1", "J2", "particles.0.ctf")
    reset = cw.ok("job", "clear-slot", "P1", "J2", "particles.0.ctf", "--reset")
    again = cw.ok("job", "connect-result", "P1", "J2", "particles.0.ctf", "J1.particles.ctf.1")
    assert _slots(override) == [("blob", "J1.particles.blob.F", "name"), ("ctf", "J1.particles.ctf.1", "override")]
    assert _slots(cleared)[1] == ("ctf", None, "cleared") and cleared["met"]
    assert reset == "P1 J2: input slot particles.0.ctf bound to J1.particles.ctf.F (by name)\n"
    assert again == "P1 J2: input slot particles.0.ctf bound to J1.particles.ctf.1 (override)\n"

    # J5 joins J2 (not run yet: its results are foreseen) and J3 (blob only): ctf is dropped on appending.
    cw.ok("job", "connect", "P1", "J5", "particles", "J2.particles")
    queued, _, j1_text = at_once(cw.later("ok", "job", "queue", "P1", "J2"),
                                 cw.later("ok", "job", "connect", "P1", "J5", "particles", "J3.particles"),
                                 cw.later("ok", "job", "outputs", "P1", "J1"))
    assert queued == "P1 J2: queued\n"
    lines = {" ".join(line.split()) for line in j1_text.splitlines()}
    assert {"particles particle, 1,000 items, version 0, 1, 2 (F = 2)",
            "ctf ctf 0, 1, 2 (F = 2) 1,000 J1/J1_002_particles.cs"} <= lines
    assert cw.ok("job", "run", "P1", "J2").endswith("outputs: particles (250 items)\n")
    out = tmp_path / "subset.cs"
    join_inputs, ran5, exported, outputs, j1_outputs, info = at_once(
        cw.later("json", "job", "inputs", "P1", "J5"), cw.later("ok", "job", "run", "P1", "J5"),
        cw.later("json", "job", "export-output", "P1", "J2", "particles", out),
        cw.later("json", "job", "outputs", "P1", "J2"), cw.later("json", "job", "outputs", "P1", "J1"),
        cw.later("json", "job", "info", "P1", "J4"))
    assert _slots(join_inputs[0], 0) == [("blob", "J2.particles.blob.F", "name"),
                                         ("ctf", "J2.particles.ctf.F", "passthrough")]
    assert _slots(join_inputs[0], 1) == [("blob", "J3.particles.blob.F", "name")]
    assert join_inputs[0]["dropped"] == ["ctf"]
    assert ran5.endswith("outputs: particles (300 items)\n")
    assert info["status"] == "failed"

    # Outputs: J1's versions and files; J2's passthroughs name the files that hold them, at the bound version.
    [j1_group] = j1_outputs
    assert (j1_group["versions"], j1_group["num_items"]) == ([0, 1, 2], 1000)
    j1_files = [f["metafile"] for f in j1_group["results"][1]["files"]]
    assert j1_files == ["J1/J1_particles.cs", "J1/J1_001_particles.cs", "J1/J1_002_particles.cs"]
    [group] = outputs
    assert (group["name"], group["type"], group["passthrough"], group["num_items"], group["versions"]) == (
        "particles", "particle", "particles", 250, [0])
    assert [t["metafile"] for t in group["tables"]] == ["J2/J2_particles.cs"]
    results = {r["name"]: r for r in group["results"]}
    assert set(results) == {"blob", "ctf"} and all(r["passthrough"] and r["files"] == [] for r in results.values())
    assert [(s["metafile"], s["origin"]) for s in results["blob"]["sources"]] == [
        ("J1/J1_002_particles.cs", "J1.particles.blob.2")]
    assert [(s["metafile"], s["origin"]) for s in results["ctf"]["sources"]] == [
        ("J1/J1_001_particles.cs", "J1.particles.ctf.1")]
    assert results["ctf"]["sources"][0]["path"] == str(directory / "J1" / "J1_001_particles.cs")

    # The export is self-contained: the subset's items with the passthroughs' fields, ctf from version 1.
    assert (exported["num_items"], exported["version"], exported["results"]) == (250, 0, ["blob", "ctf"])
    subset = Dataset.load(out)
    assert len(subset) == 250 and set(subset.fields()) == {"uid", *BLOB, *CTF}
    final = Dataset.load(directory / "J1" / "J1_002_particles.cs")
    second = Dataset.load(directory / "J1" / "J1_001_particles.cs")
    assert np.array_equal(subset["uid"], final["uid"][:250])
    assert np.array_equal(subset["ctf/df1_A"], second["ctf/df1_A"][:250])
    assert np.allclose(final["ctf/df1_A"][:250] - subset["ctf/df1_A"], 10)  # not the final version's
    assert np.array_equal(subset["blob/idx"], final["blob/idx"][:250])

    exists, again_run, first_version = at_once(
        cw.later("fails", "job", "export-output", "P1", "J2", "particles", out),
        cw.later("fails", "job", "run", "P1", "J2"),
        cw.later("ok", "job", "export-output", "P1", "J1", "particles", tmp_path / "j1.cs", "--version", "0"))
    assert exists == f"{out} exists; choose another path, or pass --force to overwrite it"
    assert again_run == ("job J2 is completed; only a building or queued job can start (clear it first to run "
                         "it again)")
    assert first_version == f"P1 J1: particles version 0 (1,000 items; results blob, ctf) written to {tmp_path}/j1.cs\n"
    assert np.allclose(Dataset.load(tmp_path / "j1.cs")["ctf/df1_A"] + 20, final["ctf/df1_A"])
    forced = cw.json("job", "export-output", "P1", "J1", "particles", out, "--force", "--version", "1")
    assert (forced["num_items"], forced["version"], forced["path"]) == (1000, 1, str(out))
    assert Dataset.load(out) == second


def test_addresses_and_versions_are_checked_before_the_instance_is_opened(tmp_path):
    cw = Cryoweave(tmp_path / "never-made", None)
    bad_slot, bad_index, bad_version = at_once(
        cw.later("fails", "job", "connect-result", "P1", "J2", "particles.blob", "J1.particles.blob"),
        cw.later("fails", "job", "clear-slot", "P1", "J2", "particles.x.ctf"),
        cw.later("fails", "job", "export-output", "P1", "J2", "particles", tmp_path / "x.cs", "--version", "last"))
    assert bad_slot == ("'particles.blob' is not an input slot address: it has 2 parts separated by '.', expected 3; "
                        "expected particles.0.blob (input group, connection index, slot)")
    assert bad_index.startswith("'particles.x.ctf' is not an input slot address: the connection index 'x' must be")
    assert bad_version == "--version 'last': write F (the final version) or a saved version number, e.g. 3"
    assert not (tmp_path / "never-made").exists()


def test_builder_verbs_have_help_with_an_example():
    from typer.testing import CliRunner

    from cryoweave.cli import app

    runner = CliRunner()
    for verb in ["inputs", "connect-result", "clear-slot", "outputs", "export-output", "queue", "run"]:
        result = runner.invoke(app, ["job", verb, "--help"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        assert f"Example: cryoweave job {verb} P1 J7" in result.output, verb
