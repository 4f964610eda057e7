"""The realistic particle table used by the demo, the benchmark and tests."""

from __future__ import annotations

import numpy as np
import pytest

from cryoweave.spec import result_fields
from cryoweave.spec.examples import BENCHMARK_FIELDS, particle_dataset, particle_fields


def test_fields_are_the_standard_result_fields():
    d = particle_dataset(100, micrographs=4, seed=1)
    assert len(d.fields()) == 37
    standard = {f[0]: f for slot in BENCHMARK_FIELDS for f in result_fields(slot)}
    for field in d.descr(exclude_uid=True):
        assert standard[field[0]] == field
    assert particle_fields() == d.descr(exclude_uid=True)


def test_deterministic_and_grouped_by_micrograph():
    a, b = particle_dataset(5000, micrographs=20, seed=4), particle_dataset(5000, micrographs=20, seed=4)
    assert a == b
    assert a != particle_dataset(5000, micrographs=20, seed=5)
    mic = a["location/micrograph_uid"]
    runs = np.count_nonzero(mic[1:] != mic[:-1]) + 1
    assert runs == len(np.unique(mic)) == 20  # each micrograph's particles are contiguous
    for part in a.split_by("location/micrograph_uid").values():
        assert part["blob/idx"].tolist() == list(range(len(part)))  # index within its stack
        assert len(set(part["blob/path"].tolist())) == 1
    assert set(np.unique(a["alignments3D/split"]).tolist()) == {0, 1}
    assert np.all(a["ctf/df1_A"] >= a["ctf/df2_A"])


def test_poses_are_uniform_rotations():
    d = particle_dataset(20000, micrographs=10, seed=2)
    angle = np.linalg.norm(d["alignments3D/pose"], axis=1)
    assert angle.min() >= 0 and angle.max() <= np.pi + 1e-5
    # Uniform on SO(3): the rotation angle has density (1 - cos t) / pi, mean pi/2 + 2/pi.
    assert np.mean(angle) == pytest.approx(np.pi / 2 + 2 / np.pi, abs=0.02)


def test_shuffled_and_empty():
    d = particle_dataset(3000, micrographs=30, seed=3, shuffle=True)
    mic = d["location/micrograph_uid"]
    assert np.count_nonzero(mic[1:] != mic[:-1]) + 1 > 30
    assert len(particle_dataset(0)) == 0
