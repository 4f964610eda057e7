"""Particle Sets Tool and Exposure Sets Tool: split sizes, set algebra on uid and on fields, passthroughs,
refusals, and one run from the command line.

The groups they read come from external jobs holding synthetic particles (or exposures); every
expectation is computed independently (Python sets, slices of the input's uid order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builder_helpers import particles
from cryoweave import Dataset
from cryoweave.jobs.library.sets import match_keys, split_indices
from cryoweave.spec import result_fields
from library_support import failure, library_instance, run


def source(project, data: Dataset, type: str = "particle", name: str = "particles"):
    """An external job whose output ``name`` holds ``data`` (all its results made by the job)."""
    job = project.create_external_job(title=f"{len(data)} {name}")
    job.add_output(type, name, slots=data.prefixes())
    with job.run():
        job.save_output(name, data)
    return job


def synthetic(uids, seed: int = 0, micrographs: int = 7) -> Dataset:
    rng = np.random.default_rng(seed)
    n = len(uids)
    data = particles(uids, "blob", "ctf", "location", ctf__df1_A=rng.uniform(1e4, 3e4, n),
                     blob__idx=np.arange(n), location__micrograph_uid=rng.integers(0, micrographs, n))
    data["blob/path"] = np.array([f"J1/stacks/{i // 50:03d}.mrcs" for i in range(n)], dtype=object)
    data["blob/idx"] = np.arange(n) % 50
    return data


def uids_of(job, output: str) -> list[int]:
    return job.load_output(output, slots=[])["uid"].tolist()


def test_split_into_equal_batches_in_order_passes_every_result_through(tmp_path):
    with library_instance(tmp_path) as project:
        data = synthetic(np.random.default_rng(1).permutation(np.arange(10_000, 11_003)))
        src = source(project, data)
        job = run(project, "particle_sets", {"num_batches": 4}, {"particles_A": f"{src.uid}.particles"})
        assert [o for o in job.outputs] == ["split_0", "split_1", "split_2", "split_3", "remainder"]
        sizes = [job.outputs[f"split_{k}"].num_items for k in range(4)]
        assert sizes == [251, 251, 251, 250] and job.outputs["remainder"].num_items == 0
        order = data["uid"].tolist()
        assert [uids_of(job, f"split_{k}") for k in range(4)] == [order[0:251], order[251:502], order[502:753],
                                                                  order[753:]]
        second = job.load_output("split_1")
        assert second.prefixes() == ["blob", "ctf", "location"]
        assert all(r.passthrough for r in job.outputs["split_1"].results.values())
        expected = data.take(np.arange(251, 502))
        for field in ("ctf/df1_A", "blob/path", "blob/idx", "location/micrograph_uid"):
            assert second[field].tolist() == expected[field].tolist()


def test_split_by_batch_size_with_remainder_and_a_reproducible_random_draw(tmp_path):
    with library_instance(tmp_path) as project:
        data = synthetic(np.arange(1, 1001, dtype=np.uint64))
        src = source(project, data)
        inputs = {"particles_A": f"{src.uid}.particles"}
        params = {"num_batches": 3, "batch_size": 150, "randomize": True, "seed": 5}
        first, again = (run(project, "particle_sets", params, inputs) for _ in range(2))
        other = run(project, "particle_sets", params | {"seed": 6}, inputs)
        names = ["split_0", "split_1", "split_2", "remainder"]
        got = {n: uids_of(first, n) for n in names}
        assert [len(got[n]) for n in names] == [150, 150, 150, 550]
        assert {n: uids_of(again, n) for n in names} == got
        assert uids_of(other, "split_0") != got["split_0"]
        everything = [u for n in names for u in got[n]]
        assert sorted(everything) == list(range(1, 1001))  # every uid exactly once
        assert got["split_0"] != list(range(1, 151)) and got["split_0"] == sorted(got["split_0"])  # input order kept
        draw = np.random.default_rng(5).permutation(1000) + 1
        assert got["split_1"] == sorted(draw[150:300].tolist()) and got["remainder"] == sorted(draw[450:].tolist())
        ordered = run(project, "particle_sets", {"num_batches": 2, "batch_size": 300}, inputs)
        assert uids_of(ordered, "split_1") == list(range(301, 601)) and uids_of(ordered, "remainder")[0] == 601


def test_intersect_and_subtract_on_uid_are_set_algebra_with_each_sides_results(tmp_path):
    rng = np.random.default_rng(2)
    uids_a = rng.choice(np.arange(1, 3000), 1200, replace=False)
    uids_b = np.concatenate([rng.choice(uids_a, 500, replace=False), np.arange(5000, 5300)])
    with library_instance(tmp_path) as project:
        a, b = synthetic(uids_a, seed=1), synthetic(rng.permutation(uids_b), seed=2)
        ja, jb = source(project, a), source(project, b)
        job = run(project, "particle_sets", {"action": "intersect"},
                  {"particles_A": f"{ja.uid}.particles", "particles_B": f"{jb.uid}.particles"})
        set_a, set_b = set(uids_a.tolist()), set(uids_b.tolist())
        assert set(uids_of(job, "intersect")) == set(uids_of(job, "intersect_B")) == set_a & set_b
        assert set(uids_of(job, "A_minus_B")) == set_a - set_b
        assert set(uids_of(job, "B_minus_A")) == set_b - set_a
        assert uids_of(job, "intersect") == [u for u in a["uid"].tolist() if u in set_b]  # A's order
        assert {o.name: o.passthrough for o in job.outputs.values()} == {
            "intersect": "particles_A", "intersect_B": "particles_B", "A_minus_B": "particles_A",
            "B_minus_A": "particles_B"}
        df_a = dict(zip(a["uid"].tolist(), a["ctf/df1_A"].tolist()))
        df_b = dict(zip(b["uid"].tolist(), b["ctf/df1_A"].tolist()))
        for output, df in (("intersect", df_a), ("intersect_B", df_b), ("A_minus_B", df_a), ("B_minus_A", df_b)):
            loaded = job.load_output(output)
            assert loaded["ctf/df1_A"].tolist() == [df[u] for u in loaded["uid"].tolist()]


def test_intersect_on_a_field_and_on_paths(tmp_path):
    rng = np.random.default_rng(3)
    with library_instance(tmp_path) as project:
        a = synthetic(np.arange(1, 801), seed=4, micrographs=20)
        b = synthetic(np.arange(2001, 2301), seed=5, micrographs=40)  # other uids: only fields can match
        b["blob/path"] = rng.choice(np.array([f"J1/stacks/{i:03d}.mrcs" for i in range(10, 20)], dtype=object), 300)
        b["blob/idx"] = rng.integers(0, 50, 300)
        ja, jb = source(project, a), source(project, b)
        inputs = {"particles_A": f"{ja.uid}.particles", "particles_B": f"{jb.uid}.particles"}
        on_mic = run(project, "particle_sets", {"action": "intersect", "field": "location/micrograph_uid"}, inputs)
        mics_a, mics_b = set(a["location/micrograph_uid"].tolist()), set(b["location/micrograph_uid"].tolist())
        ua, ub = a["uid"].tolist(), b["uid"].tolist()
        in_a = [u for u, m in zip(ua, a["location/micrograph_uid"].tolist()) if m in mics_b]
        in_b = [u for u, m in zip(ub, b["location/micrograph_uid"].tolist()) if m in mics_a]
        assert uids_of(on_mic, "intersect") == in_a and uids_of(on_mic, "intersect_B") == in_b
        assert uids_of(on_mic, "A_minus_B") == [u for u in ua if u not in set(in_a)]
        assert uids_of(on_mic, "B_minus_A") == [u for u in ub if u not in set(in_b)]

        on_path = run(project, "particle_sets", {"action": "intersect", "field": "path"}, inputs)
        tokens_a = set(zip(a["blob/path"].tolist(), a["blob/idx"].tolist()))
        tokens_b = list(zip(b["blob/path"].tolist(), b["blob/idx"].tolist()))
        matched_b = [u for u, t in zip(ub, tokens_b) if t in tokens_a]
        assert 0 < len(matched_b) < 300 and uids_of(on_path, "intersect_B") == matched_b
        assert uids_of(on_path, "intersect") == [u for u, t in zip(ua, zip(a["blob/path"].tolist(),
                                                                           a["blob/idx"].tolist()))
                                                 if t in set(tokens_b)]
        explicit = run(project, "particle_sets", {"action": "intersect", "field": "blob/path + blob/idx"}, inputs)
        assert uids_of(explicit, "B_minus_A") == uids_of(on_path, "B_minus_A")


def test_match_keys_on_vectors_strings_and_leading_uids():
    shape_a = np.array([[1, 2], [3, 4], [1, 2]], np.uint32)
    assert [m.tolist() for m in match_keys({"s": shape_a}, {"s": np.array([[1, 2]], np.uint64)})] == \
        [[True, False, True], [True]]
    paths_a = np.array(["J2/imported/012345678901234567890_a.mrc", "J2/imported/b.mrc"], dtype=object)
    paths_b = np.array(["J2/imported/a.mrc", "J2/imported/b.mrc"], dtype=object)
    assert match_keys({"m/path": paths_a}, {"m/path": paths_b})[0].tolist() == [False, True]
    assert match_keys({"m/path": paths_a}, {"m/path": paths_b}, ignore_leading_uid=True)[0].tolist() == [True, True]
    with pytest.raises(Exception, match="cannot be compared"):
        match_keys({"f": np.array([1.0])}, {"f": np.array(["x"], dtype=object)})
    batches, rest = split_indices(10, 3, randomize=True, seed=1)
    assert sorted(np.concatenate([*batches, rest]).tolist()) == list(range(10))


def exposures(n: int, first: int, names: list[str]) -> Dataset:
    data = Dataset.allocate(n, [("uid", "<u8"), *result_fields("micrograph_blob", None, "exposure")])
    data["uid"] = np.arange(first, first + n, dtype=np.uint64)
    data["micrograph_blob/path"] = np.array(names, dtype=object)
    return data


def test_exposure_sets_split_and_intersect_on_micrograph_paths(tmp_path):
    with library_instance(tmp_path) as project:
        a = exposures(6, 1, [f"J2/motioncorrected/m{i}.mrc" for i in range(6)])
        b = exposures(4, 100, [f"J2/motioncorrected/m{i}.mrc" for i in (4, 5, 8, 9)])
        ja, jb = source(project, a, "exposure", "exposures"), source(project, b, "exposure", "exposures")
        inputs = {"exposures_A": f"{ja.uid}.exposures", "exposures_B": f"{jb.uid}.exposures"}
        job = run(project, "exposure_sets", {"action": "intersect", "field": "path"}, inputs)
        assert uids_of(job, "intersect") == [5, 6] and uids_of(job, "intersect_B") == [100, 101]
        assert uids_of(job, "A_minus_B") == [1, 2, 3, 4] and uids_of(job, "B_minus_A") == [102, 103]
        assert job.outputs["intersect"].type.value == "exposure"
        assert job.load_output("intersect_B")["micrograph_blob/path"].tolist() == b["micrograph_blob/path"][:2].tolist()
        split = run(project, "exposure_sets", {"num_batches": 3}, inputs)  # B is ignored, with a warning
        assert [uids_of(split, f"split_{k}") for k in range(3)] == [[1, 2], [3, 4], [5, 6]]
        assert any("exposures_B is ignored" in e.text for e in split.events())


@pytest.mark.parametrize(("params", "with_b", "message"), [
    ({"action": "intersect"}, False, "action 'intersect' needs two groups: connect particles_B (or choose action "
                                     "'split')"),
    ({"num_batches": 11}, False, "cannot split 10 particles into 11 batches: each batch needs at least one; ask for "
                                 "at most 10"),
    ({"num_batches": 3, "batch_size": 4}, False, "3 batches of 4 need 12 particles, but the input has 10; ask for "
                                                 "fewer or smaller batches"),
    ({"action": "intersect", "field": "pick_stats/ncc_score"}, True, "input particles_A has no 'pick_stats' result, "
     "so it cannot be intersected on 'pick_stats/ncc_score'; its results: blob, ctf, location"),
    ({"action": "intersect", "field": "location/nothing"}, True, "input particles_A has no field 'location/nothing'; "
     "its 'location' fields: location/micrograph_uid, location/exp_group_id"),
    ({"action": "intersect", "field": "micrograph"}, True, "parameter 'field': 'micrograph' is not a field name"),
])
def test_refusals_name_the_problem_and_save_nothing(tmp_path, params, with_b, message):
    with library_instance(tmp_path) as project:
        src = source(project, synthetic(np.arange(1, 11)))
        other = source(project, synthetic(np.arange(3, 8)))
        inputs = {"particles_A": f"{src.uid}.particles"} | ({"particles_B": f"{other.uid}.particles"} if with_b else {})
        job = run(project, "particle_sets", params, inputs, expect="failed")
        assert failure(job).startswith(message)
        assert job.outputs == {} and not [o for o in job.spec.outputs if o.made_at_run]


def test_split_from_the_command_line(tmp_path):
    from test_cli_projects import Cryoweave

    cw = Cryoweave(tmp_path / "home", None)
    cw.ok("project", "create", "Sets", "--dir", tmp_path / "projects")
    cw.ok("job", "create", "P1", "lab_import_particles", "-p", "num_particles=25")
    cw.ok("job", "create", "P1", "particle_sets", "-p", "action=split", "-p", "num_batches=2")
    assert cw.ok("job", "run", "P1", "J1").startswith("P1 J1: completed")
    cw.ok("job", "connect", "P1", "J2", "particles_A", "J1.particles")
    ran = cw.ok("job", "run", "P1", "J2")
    assert ran.startswith("P1 J2: completed") and "split_0 (13 items)" in ran and "split_1 (12 items)" in ran
    listed = cw.ok("job", "outputs", "P1", "J2")
    for name in ("split_0", "split_1", "remainder"):
        assert name in listed
    data = Dataset.load(Path(tmp_path / "projects").glob("*/J2/J2_split_1.cs").__next__())
    assert len(data) == 12 and data.fields() == ["uid"]
