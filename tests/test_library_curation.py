"""Remove Duplicate Particles and Subset Particles by Statistic, against independent references.

Duplicates are checked against a brute-force all-pairs search with the documented greedy rule
(best score first, ties to the lower uid; a particle is kept unless a kept one lies closer than the
distance), on particles at whole-Å positions so that many pairs lie exactly at the distance.
"""

from __future__ import annotations

import numpy as np
import pytest

from builder_helpers import particles
from cryoweave import Dataset
from cryoweave.formats.png import PNG_SIGNATURE
from cryoweave.jobs.library.curation_math import boundaries, close_pairs, find_duplicates, fit_gmm
from library_support import failure, library_instance, run


def source(project, data: Dataset):
    job = project.create_external_job(title=f"{len(data)} particles")
    job.add_output("particle", "particles", slots=data.prefixes())
    with job.run():
        job.save_output("particles", data)
    return job


def picked(n: int, micrographs: int, seed: int = 0, psize: float = 1.0) -> Dataset:
    """Particles at whole-Å positions on 1024 × 512 Å micrographs (shape [y, x] = [512, 1024]), scores with ties."""
    rng = np.random.default_rng(seed)
    uids = rng.permutation(np.arange(1, 10 * n))[:n].astype(np.uint64)
    data = particles(uids, "location", "pick_stats", "alignments2D")
    data["location/micrograph_uid"] = rng.integers(0, micrographs, n) * 1000 + 7
    data["location/micrograph_shape"] = [round(512 / psize), round(1024 / psize)]
    data["location/micrograph_psize_A"] = psize
    data["location/center_x_frac"] = rng.integers(0, 1024, n) / 1024
    data["location/center_y_frac"] = rng.integers(0, 512, n) / 512
    data["pick_stats/ncc_score"] = np.round(rng.uniform(0, 1, n), 1)  # many ties
    data["alignments2D/error"] = rng.uniform(0, 10, n)
    return data


def brute_force(data: Dataset, distance: float, field: str = "pick_stats/ncc_score", lower: bool = False,
                remove_all: bool = False) -> set[int]:
    """The uids kept, from all pairs and a Python loop over the particles in greedy order."""
    shape = data["location/micrograph_shape"].astype(np.float64)
    psize = data["location/micrograph_psize_A"].astype(np.float64)
    x = data["location/center_x_frac"].astype(np.float64) * shape[:, 1] * psize
    y = data["location/center_y_frac"].astype(np.float64) * shape[:, 0] * psize
    mic = data["location/micrograph_uid"]
    close = ((x[:, None] - x[None]) ** 2 + (y[:, None] - y[None]) ** 2 < distance ** 2) & (mic[:, None] == mic[None])
    np.fill_diagonal(close, False)
    uids = data["uid"].tolist()
    if remove_all:
        return {u for u, c in zip(uids, close.any(axis=1)) if not c}
    score = data[field].astype(np.float64)
    order = sorted(range(len(uids)), key=lambda i: (score[i] if lower else -score[i], uids[i]))
    kept: list[int] = []
    for i in order:
        if not close[i, kept].any():
            kept.append(i)
    return {uids[i] for i in kept}


def kept_and_rejected(job) -> tuple[set[int], set[int]]:
    return (set(job.load_output("particles_kept", slots=[])["uid"].tolist()),
            set(job.load_output("particles_rejected", slots=[])["uid"].tolist()))


def test_duplicates_removed_are_exactly_the_brute_force_ones(tmp_path):
    data = picked(2000, 5, seed=1)
    mirror = data.slice(0, 200)  # the same positions on another micrograph: no interaction across micrographs
    mirror["uid"] = np.arange(90_001, 90_201, dtype=np.uint64)
    mirror["location/micrograph_uid"] = 424242
    mirror["location/center_x_frac"] = np.arange(200) * 40 % 1000 / 1024  # 40 Å apart, far from each other
    mirror["location/center_y_frac"] = np.arange(200) * 40 // 1000 * 40 / 512
    exact = data.slice(0, 60)  # 30 pairs exactly 20 Å apart (12, 16), alone on their micrograph
    exact["uid"] = np.arange(80_001, 80_061, dtype=np.uint64)
    exact["location/micrograph_uid"] = 515151
    exact["location/center_x_frac"] = (np.arange(60) // 2 * 30 + np.arange(60) % 2 * 12) / 1024
    exact["location/center_y_frac"] = (100 + np.arange(60) % 2 * 16) / 512
    data = Dataset.append_many(data, mirror, exact)
    x = data["location/center_x_frac"].astype(np.float64) * 1024
    y = data["location/center_y_frac"].astype(np.float64) * 512
    same = data["location/micrograph_uid"][:, None] == data["location/micrograph_uid"][None]
    at = ((x[:, None] - x[None]) ** 2 + (y[:, None] - y[None]) ** 2 == 400) & same
    assert at.sum() >= 2 * 30 + 4  # pairs exactly 20 Å apart: not duplicates
    with library_instance(tmp_path) as project:
        src = source(project, data)
        inputs = {"particles": f"{src.uid}.particles"}
        everything = set(data["uid"].tolist())
        for params, reference in [
            ({}, brute_force(data, 20.0)),
            ({"min_distance_A": 35.5}, brute_force(data, 35.5)),
            ({"score_field": "alignments2D/error"}, brute_force(data, 20.0, "alignments2D/error", lower=True)),
            ({"score_field": "alignments2D/error", "lower_is_better": False},
             brute_force(data, 20.0, "alignments2D/error", lower=False)),
            ({"remove_all_duplicates": True}, brute_force(data, 20.0, remove_all=True)),
        ]:
            job = run(project, "remove_duplicate_particles", params, inputs)
            kept, rejected = kept_and_rejected(job)
            assert kept == reference and rejected == everything - reference, params
            assert 100 < len(rejected) < 1800
            assert set(mirror["uid"].tolist()) <= kept
        loaded = job.load_output("particles_kept")
        assert {"location", "pick_stats", "alignments2D"} <= set(loaded.prefixes())
        assert all(r.passthrough for r in job.outputs["particles_kept"].results.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_close_pairs_and_greedy_core_match_all_pairs_on_random_positions(seed):
    rng = np.random.default_rng(seed)
    n = 2500
    mic = rng.integers(0, 4, n).astype(np.uint64)
    x, y = rng.uniform(-50, 300, n), rng.uniform(0, 250, n)
    distance = [7.0, 12.5, 3.0][seed]
    i, j = close_pairs(np.unique(mic, return_inverse=True)[1], x, y, distance)
    d2 = (x[:, None] - x[None]) ** 2 + (y[:, None] - y[None]) ** 2
    close = (d2 < distance ** 2) & (mic[:, None] == mic[None])
    expected = {(a, b) for a, b in zip(*np.nonzero(np.triu(close, 1)))}
    assert set(zip(i.tolist(), j.tolist())) == expected and len(i) == len(expected) > 100
    score, uid = rng.integers(0, 5, n).astype(np.float32), rng.permutation(n).astype(np.uint64)
    keep, pairs = find_duplicates(mic, x, y, distance, score, uid)
    order = sorted(range(n), key=lambda k: (-score[k], uid[k]))
    reference = np.zeros(n, bool)
    for k in order:
        reference[k] = not (close[k] & reference).any()
    assert pairs == len(expected) and (keep == reference).all()


def chain(scores: list[float]) -> Dataset:
    data = particles([11, 12, 13], "location", "pick_stats", location__micrograph_uid=1,
                     location__micrograph_psize_A=0.0, pick_stats__ncc_score=scores)
    data["location/micrograph_shape"] = [1024, 1024]
    data["location/center_x_frac"] = np.array([100, 110, 120]) / 1024  # 10 px apart: A–B, B–C 20 Å, A–C 40 Å at 2 Å/px
    data["location/center_y_frac"] = 0.5
    return data


def test_chains_follow_the_greedy_rule_and_the_pixel_size_parameter(tmp_path):
    with library_instance(tmp_path) as project:
        params = {"min_distance_A": 25, "micrograph_psize_A": 2.0}
        a_best = source(project, chain([0.9, 0.5, 0.1]))
        b_best = source(project, chain([0.5, 0.9, 0.1]))
        assert kept_and_rejected(run(project, "remove_duplicate_particles", params,
                                     {"particles": f"{a_best.uid}.particles"})) == ({11, 13}, {12})
        assert kept_and_rejected(run(project, "remove_duplicate_particles", params,
                                     {"particles": f"{b_best.uid}.particles"})) == ({12}, {11, 13})
        far = run(project, "remove_duplicate_particles", params | {"min_distance_A": 20},
                  {"particles": f"{a_best.uid}.particles"})  # exactly 20 Å apart: no duplicates
        assert kept_and_rejected(far) == ({11, 12, 13}, set())
        assert any("0 pairs closer than 20 Å" in e.text for e in far.events())
        failed = run(project, "remove_duplicate_particles", {}, {"particles": f"{a_best.uid}.particles"},
                     expect="failed")
        assert failure(failed) == ("3 particles have no micrograph pixel size (location/micrograph_psize_A is 0): "
                                   "set parameter 'micrograph_psize_A'")
        assert failed.outputs == {}


@pytest.mark.parametrize(("params", "message"), [
    ({"min_distance_A": 0}, "parameter 'min_distance_A' (the minimum separation in Å) must be above 0, not 0"),
    ({"score_field": "pick_stats/ncc"}, "input particles has no field 'pick_stats/ncc'; similar: pick_stats/ncc_score"),
    ({"score_field": "location/micrograph_path"}, "field 'location/micrograph_path' of input particles holds object "
                                                  "values, not numbers"),
])
def test_duplicate_refusals(tmp_path, params, message):
    with library_instance(tmp_path) as project:
        src = source(project, picked(50, 2))
        job = run(project, "remove_duplicate_particles", params, {"particles": f"{src.uid}.particles"},
                  expect="failed")
        assert failure(job).startswith(message) and job.outputs == {}


# ------------------------------------------------------------------------------ subset by statistic
def measured(values: np.ndarray) -> Dataset:
    n = len(values)
    return particles(np.arange(1, n + 1), "blob", "ctf", ctf__df1_A=values, blob__path="J1/a.mrcs")


def selected_uids(job) -> list[int]:
    return job.load_output("particles_selected", slots=[])["uid"].tolist()


def test_subset_by_range_is_exact(tmp_path):
    values = np.random.default_rng(4).uniform(5000, 30000, 2000).astype(np.float32)
    values[:3] = [10000, 20000, np.nan]
    with library_instance(tmp_path) as project:
        src = source(project, measured(values))
        inputs = {"particles": f"{src.uid}.particles"}
        uids = np.arange(1, 2001)
        for low, high in [(10000, 20000), (None, 12000.5), (25000, None)]:
            job = run(project, "subset_particles_by_statistic", {"field": "ctf/df1_A", "min_value": low,
                                                                 "max_value": high}, inputs)
            inside = (values >= (low if low is not None else -np.inf)) & (values <= (high if high is not None
                                                                                     else np.inf))
            assert selected_uids(job) == uids[inside].tolist()
            rejected = job.load_output("particles_rejected")
            assert rejected["uid"].tolist() == uids[~inside].tolist() and 3 in rejected["uid"].tolist()
            assert rejected.prefixes() == ["blob", "ctf"]
        assert any("1 particles have no finite ctf/df1_A" in e.text for e in job.events())


def test_subset_by_gmm_recovers_two_modes_and_shows_a_histogram(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.permutation(np.concatenate([rng.normal(10000, 500, 3000), rng.normal(20000, 800, 2000)]))
    weights, means, variances = fit_gmm(values, 2, seed=0)
    assert abs(means[0] - 10000) < 60 and abs(means[1] - 20000) < 80
    assert abs(np.sqrt(variances[0]) - 500) < 40 and abs(weights[0] - 0.6) < 0.02
    (cut,) = boundaries(values.min(), values.max(), (weights, means, variances))
    assert 13500 < cut < 16500
    with library_instance(tmp_path) as project:
        src = source(project, measured(values))
        job = run(project, "subset_particles_by_statistic", {"field": "ctf/df1_A", "mode": "gmm", "keep_cluster": 1},
                  {"particles": f"{src.uid}.particles"})
        high = np.flatnonzero(values.astype(np.float32) > cut) + 1
        assert selected_uids(job) == high.tolist() and abs(len(high) - 2000) < 10
        again = run(project, "subset_particles_by_statistic", {"field": "ctf/df1_A", "mode": "gmm"},
                    {"particles": f"{src.uid}.particles"})
        assert selected_uids(again) == (np.flatnonzero(values.astype(np.float32) <= cut) + 1).tolist()
        texts = [e.text for e in job.events()]
        assert any("0: mean 1.00" in t and "1: mean 2.00" in t and "keeping component 1" in t for t in texts)
        images = [e.data["image"] for e in job.events() if "image" in (e.data or {})]
        assert images == [f"{job.uid}/images/histogram.png"]
        assert (project.directory / images[0]).read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(("params", "message"), [
    ({"field": "ctf/df1"}, "input particles has no field 'ctf/df1'; similar: ctf/df1_A"),
    ({"field": "ctf/shift_A"}, "field 'ctf/shift_A' of input particles holds a vector of shape (2,) per item"),
    ({"field": "blob/path"}, "field 'blob/path' of input particles holds object values, not numbers"),
    ({"field": None}, "parameter 'field': say which field to use"),
    ({"field": "ctf/df1_A", "min_value": 3, "max_value": 2}, "min_value 3 is above max_value 2"),
    ({"field": "ctf/df1_A", "mode": "gmm", "keep_cluster": 2}, "keep_cluster 2 must be a component number from 0 to 1"),
])
def test_subset_refusals(tmp_path, params, message):
    with library_instance(tmp_path) as project:
        src = source(project, measured(np.arange(100.0)))
        job = run(project, "subset_particles_by_statistic", params, {"particles": f"{src.uid}.particles"},
                  expect="failed")
        assert failure(job).startswith(message) and job.outputs == {}


def test_an_empty_selection_is_saved_with_a_warning(tmp_path):
    with library_instance(tmp_path) as project:
        src = source(project, measured(np.arange(100.0)))
        job = run(project, "subset_particles_by_statistic", {"field": "ctf/df1_A", "min_value": 1000},
                  {"particles": f"{src.uid}.particles"})
        assert job.outputs["particles_selected"].num_items == 0 and job.outputs["particles_rejected"].num_items == 100
        assert any(e.level == "warning" and "no particle was selected" in e.text for e in job.events())
