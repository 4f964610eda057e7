"""Row-level helpers kept for cryosparc-tools compatibility: `Spool` and `Dataset.dump`."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cryoweave import Dataset, DatasetError


@pytest.fixture
def dset():
    d = Dataset({"uid": np.arange(1, 11, dtype=np.uint64),
                 "alignments3D/split": np.zeros(10, dtype=np.uint32),
                 "k": np.array([0, 1, 0, 1, 2, 2, 0, 1, 0, 1])})
    d.rows().set_random(np.random.default_rng(3))
    return d


def uids(rows):
    return [int(r["uid"]) for r in rows]


def test_split_in_order_and_random_writes_split_field(dset):
    spool = dset.rows()
    first, second = spool.split(3, random=False, prefix="alignments3D")
    assert uids(first) == [1, 2, 3] and uids(second) == list(range(4, 11))
    assert dset["alignments3D/split"].tolist() == [0, 0, 0] + [1] * 7  # written through to the dataset
    a, b = spool.split(4)
    assert len(a) == 4 and len(b) == 6 and sorted(uids(a) + uids(b)) == list(range(1, 11))
    a, b = spool.split_into_quarter(2)
    assert len(a) == 2 and len(b) == 8


def test_half_splits(dset):
    spool = dset.rows()
    a, b = spool.split_half_in_order("alignments3D", random=False)
    assert uids(a) == [1, 3, 5, 7, 9] and uids(b) == [2, 4, 6, 8, 10]
    assert dset["alignments3D/split"].tolist() == [0, 1] * 5
    a, b = spool.split_by_splits("alignments3D")
    assert uids(a) == [1, 3, 5, 7, 9] and uids(b) == [2, 4, 6, 8, 10]
    a, b = spool.split_half_in_order("alignments3D", random=True)
    assert len(a) + len(b) == 10 and all(r["alignments3D/split"] == 0 for r in a)


def test_split_by_field_values(dset):
    spool = dset.rows()
    groups = spool.split_by("k")
    assert {int(k): uids(v) for k, v in groups.items()} == {0: [1, 3, 7, 9], 1: [2, 4, 8, 10], 2: [5, 6]}
    zeros, twos = spool.split_from_field("k", (0, 2))
    assert uids(zeros) == [1, 3, 7, 9] and uids(twos) == [5, 6]


def test_random_subset_spooling_and_batches(dset):
    spool = dset.rows()
    subset = spool.get_random_subset(4)
    assert len(set(uids(subset))) == 4
    with pytest.raises(DatasetError):
        spool.get_random_subset(11)
    spool.setup_spooling(random=False)
    assert uids(spool.spool(3, peek=True)) == [1, 2, 3]
    assert uids(spool.spool(3)) == [1, 2, 3]
    assert uids(spool.spool(9)) == [4, 5, 6, 7, 8, 9, 10, 1, 2]  # wraps around
    assert uids(spool.spool(20)) == list(range(1, 11))
    assert [uids(b) for b in spool.make_batches(4)] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert str(spool) == "Spool object with 10 items."


def test_dump_writes_the_csdat_stream(dset):
    buffer = io.BytesIO()
    dset.dump(buffer)
    assert buffer.getvalue() == dset.dumps()
    buffer.seek(0)
    assert Dataset.load(buffer) == dset
