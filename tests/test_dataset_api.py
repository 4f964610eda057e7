"""Differential tests: cryoweave's Dataset against cryosparc-tools' Dataset, method by method.

The same small tables (every numeric type, strings, 1-3 dim fields, 0 rows, duplicate uids) are
built in both implementations, the same operation is applied to both, and the results (fields,
descr(), values, row order) must be identical. Where cryoweave deliberately differs (documented
in ``cryoweave.dataset.core``), cryoweave's documented behaviour is asserted instead.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from cryoweave.dataset import Column, Row
from cryoweave.errors import DatasetError, FieldNotFoundError
from dataset_helpers import (
    BIG_UIDS,
    NUMERIC_TYPES,
    CSDataset,
    Dataset,
    assert_same,
    assert_same_result,
    pair,
    run_both,
    sample_data,
    save_ours,
    save_theirs,
    values,
)

SIZES = [0, 1, 7]

# cryosparc-tools' Dataset.__array__ predates numpy 2's copy keyword.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning")


def _both(n: int, seed: int = 0, **kw):
    return pair(sample_data(n, seed, **kw))


# ---------------------------------------------------------------------------- generic operations
# (id, fn(cls, dataset)) — applied to both implementations; results and the dataset afterwards
# (for in-place operations) must match.
OPS = [
    ("fields", lambda cls, d: d.fields()),
    ("fields-exclude-uid", lambda cls, d: d.fields(exclude_uid=True)),
    ("descr", lambda cls, d: d.descr()),
    ("descr-exclude-uid", lambda cls, d: d.descr(exclude_uid=True)),
    ("prefixes-as-set", lambda cls, d: set(d.prefixes())),
    ("len", lambda cls, d: len(d)),
    ("iter", lambda cls, d: list(d)),
    ("contains-field", lambda cls, d: "blob/path" in d),
    ("contains-missing", lambda cls, d: "blob/nope" in d),
    ("contains-non-str", lambda cls, d: 3 in d),
    ("copy", lambda cls, d: d.copy()),
    ("copy-constructor", lambda cls, d: cls(d)),
    (
        "to_list",
        lambda cls, d: d.filter_fields(
            lambda f: "/" in f and f.split("/")[0] in {"num", "blob", "ctf"}, copy=True
        ).to_list(),
    ),
    (
        "to_list-exclude-uid",
        lambda cls, d: d.filter_prefixes(["num", "ctf"], copy=True).to_list(exclude_uid=True),
    ),
    ("to_records", lambda cls, d: d.to_records()),
    ("to_records-fixed", lambda cls, d: d.to_records(fixed=True)),
    ("np.array(dataset)", lambda cls, d: np.array(d.filter_prefixes(["num"], copy=True))),
    (
        "add_fields-tuples",
        lambda cls, d: d.add_fields(
            [("new/f", "f4"), ("new/s", "O"), ("new/v", "<i4", (2, 3)), ("new/c", "c16"), ("new/u", "u2")]
        ),
    ),
    (
        "add_fields-names-dtype-list",
        lambda cls, d: d.add_fields(["new/a", "new/b", "new/c"], ["u8", ("f4", (2,)), "O"]),
    ),
    ("add_fields-names-dtype-str", lambda cls, d: d.add_fields(["new/a", "new/b", "new/c"], "u8,f4,i1")),
    ("add_fields-shaped-notation", lambda cls, d: d.add_fields([("new/m", "500,2f4"), ("new/t", "3u4")])),
    ("add_fields-existing-same-type", lambda cls, d: d.add_fields([("num/f4", "f4"), ("blob/path", "O")])),
    ("add_fields-empty", lambda cls, d: d.add_fields([])),
    ("filter_fields-list", lambda cls, d: d.filter_fields(["num/f4", "blob/path", "mesh/cube"])),
    ("filter_fields-list-copy", lambda cls, d: d.filter_fields(["num/f4", "ctf/type"], copy=True)),
    ("filter_fields-callable", lambda cls, d: d.filter_fields(lambda f: f.endswith("4"))),
    ("filter_fields-all", lambda cls, d: d.filter_fields(d.fields(), copy=True)),
    ("filter_prefixes", lambda cls, d: d.filter_prefixes(["num", "mesh"])),
    ("filter_prefixes-copy", lambda cls, d: d.filter_prefixes(["ctf"], copy=True)),
    ("filter_prefixes-none-match", lambda cls, d: d.filter_prefixes(["zzz"], copy=True)),
    ("filter_prefix", lambda cls, d: d.filter_prefix("num")),
    ("filter_prefix-rename", lambda cls, d: d.filter_prefix("num", rename="z")),
    ("filter_prefix-rename-copy", lambda cls, d: d.filter_prefix("blob", rename="b2", copy=True)),
    ("drop_fields-list", lambda cls, d: d.drop_fields(["num/f4", "blob/path"])),
    ("drop_fields-list-copy", lambda cls, d: d.drop_fields(["mesh/cube"], copy=True)),
    ("drop_fields-callable", lambda cls, d: d.drop_fields(lambda f: f.startswith("num/"))),
    ("drop_fields-uid-is-kept", lambda cls, d: d.drop_fields(["uid", "num/u8"], copy=True)),
    ("rename_fields-map", lambda cls, d: d.rename_fields({"num/f4": "q/f4", "blob/path": "q/path"})),
    ("rename_fields-map-copy", lambda cls, d: d.rename_fields({"num/f4": "q/f4"}, copy=True)),
    ("rename_fields-callable", lambda cls, d: d.rename_fields(lambda f: f.upper())),
    (
        "rename_fields-uid-kept",
        lambda cls, d: d.rename_fields({"uid": "id", "ctf/type": "ctf/kind"}, copy=True),
    ),
    ("rename_field", lambda cls, d: d.rename_field("mesh/cube", "mesh/box")),
    ("rename_field-copy", lambda cls, d: d.rename_field("ctf/type", "ctf/t", copy=True)),
    ("rename_prefix", lambda cls, d: d.rename_prefix("num", "n2")),
    ("rename_prefix-copy", lambda cls, d: d.rename_prefix("blob", "b2", copy=True)),
    (
        "copy_fields",
        lambda cls, d: (d.copy_fields(["num/f4", "blob/path", "mesh/cube"], ["c/f4", "c/path", "c/cube"]), d)[
            1
        ],
    ),
    ("copy_fields-into-existing", lambda cls, d: (d.copy_fields(["num/i1"], ["num/i2"]), d)[1]),
    ("take", lambda cls, d: d.take([i for i in (3, 0, 0, len(d) - 1) if 0 <= i < len(d)])),
    ("take-ndarray", lambda cls, d: d.take(np.arange(len(d))[::-1])),
    ("take-empty", lambda cls, d: d.take([])),
    ("take-out-of-range", lambda cls, d: d.take([len(d) + 3])),
    ("mask", lambda cls, d: d.mask(np.arange(len(d)) % 2 == 0)),
    ("mask-list", lambda cls, d: d.mask([True] * len(d))),
    ("mask-all-false", lambda cls, d: d.mask(np.zeros(len(d), dtype=bool))),
    ("mask-wrong-length", lambda cls, d: d.mask(np.ones(len(d) + 1, dtype=bool))),
    ("slice-default", lambda cls, d: d.slice()),
    ("slice-range", lambda cls, d: d.slice(1, 4)),
    ("slice-step", lambda cls, d: d.slice(0, None, 2)),
    ("slice-clamp-stop", lambda cls, d: d.slice(2, 1000)),
    ("slice-past-end", lambda cls, d: d.slice(100, 200)),
    ("slice-negative", lambda cls, d: d.slice(-2)),
    ("subset", lambda cls, d: d.subset(d.rows()[::-2])),
    ("query-scalar-string", lambda cls, d: d.query({"ctf/type": "héllo"})),
    ("query-list-strings", lambda cls, d: d.query({"blob/path": ["日本", "", "spline"]})),
    ("query-scalar-int", lambda cls, d: d.query({"num/u1": int(d["num/u1"][0]) if len(d) else 0})),
    ("query-values-from-column", lambda cls, d: d.query({"num/i8": d["num/i8"][:3], "num/f8": d["num/f8"]})),
    (
        "query-several-fields",
        lambda cls, d: d.query({"ctf/type": ["héllo", "日本", "a"], "num/i1": d["num/i1"][1:]}),
    ),
    ("query-empty-dict", lambda cls, d: d.query({})),
    ("query-no-match", lambda cls, d: d.query({"uid": [123]})),
    ("query-uid-list", lambda cls, d: d.query({"uid": d["uid"][::2].tolist()})),
    ("query-missing-field", lambda cls, d: d.query({"zzz": 1})),
    ("query-callable", lambda cls, d: d.query(lambda r: r["num/i2"] > 0 and r["ctf/type"] != "")),
    ("query_mask", lambda cls, d: d.query_mask({"ctf/type": ["héllo", ""]})),
    ("query_mask-invert", lambda cls, d: d.query_mask({"ctf/type": ["héllo", ""]}, invert=True)),
    ("query_mask-empty-invert", lambda cls, d: d.query_mask({}, invert=True)),
    ("split_by-string", lambda cls, d: d.split_by("ctf/type")),
    ("split_by-int", lambda cls, d: d.split_by("num/i1")),
    ("split_by-uid", lambda cls, d: d.split_by("uid")),
    ("interlace-self-none", lambda cls, d: d.interlace()),
    ("append-none", lambda cls, d: d.append()),
    ("union-none", lambda cls, d: d.union()),
    ("innerjoin-none", lambda cls, d: d.innerjoin()),
    ("innerjoin-self", lambda cls, d: d.innerjoin(d)),
    ("innerjoin_many-one", lambda cls, d: cls.innerjoin_many(d)),
    ("append_many-one", lambda cls, d: cls.append_many(d)),
    ("union_many-one", lambda cls, d: cls.union_many(d)),
    ("union-self", lambda cls, d: d.union(d)),
    ("append-self-repeat", lambda cls, d: d.append(d, repeat_allowed=True)),
    ("append-self-duplicates", lambda cls, d: d.append(d)),
    ("common_fields", lambda cls, d: cls.common_fields(d, d.filter_prefixes(["num"], copy=True))),
    (
        "common_fields-assert-same",
        lambda cls, d: cls.common_fields(d, d.filter_prefixes(["num"], copy=True), assert_same_fields=True),
    ),
    ("replace-query-only", lambda cls, d: d.replace({"ctf/type": "héllo"})),
    ("replace-self", lambda cls, d: d.replace({}, d.slice(0, 2))),
    ("is_equivalent-self", lambda cls, d: d.is_equivalent(d.copy())),
    ("eq-copy", lambda cls, d: d == d.copy()),
    ("eq-reordered-fields", lambda cls, d: d == d.filter_fields(list(reversed(d.fields())), copy=True)),
    (
        "is_equivalent-reordered",
        lambda cls, d: d.is_equivalent(cls([(f, d[f]) for f in reversed(d.fields())])),
    ),
    ("eq-other-values", lambda cls, d: len(d) == 0 or d == d.take(np.arange(len(d))[::-1])),
    ("setitem-broadcast-scalar", lambda cls, d: (d.__setitem__("num/f8", 2.5), d)[1]),
    ("setitem-broadcast-string", lambda cls, d: (d.__setitem__("ctf/type", "日本"), d)[1]),
    (
        "setitem-broadcast-row",
        lambda cls, d: (d.__setitem__("location/shape2", [[1, 2, 3], [4, 5, 6]]), d)[1],
    ),
    ("setitem-array", lambda cls, d: (d.__setitem__("num/i4", np.arange(len(d), dtype=np.int32)), d)[1]),
    ("setitem-unicode-array", lambda cls, d: (d.__setitem__("blob/path", np.array(["ü"] * len(d))), d)[1]),
    ("setitem-bytes-array", lambda cls, d: (d.__setitem__("blob/path", np.array([b"bytes"] * len(d))), d)[1]),
    ("setitem-missing-field", lambda cls, d: d.__setitem__("new/field", 1)),
    ("delitem", lambda cls, d: (d.__delitem__("blob/path"), d)[1]),
    ("getitem-slice-rows", lambda cls, d: [r["num/i4"] for r in d[1:3]]),
    ("getitem-int-row", lambda cls, d: d[0]["ctf/type"] if len(d) else None),
    ("getitem-negative-row", lambda cls, d: d[-1]["num/u8"] if len(d) else None),
    ("getitem-missing-field", lambda cls, d: d["zzz"]),
    ("cols-keys", lambda cls, d: list(d.cols())),
    ("rows-len", lambda cls, d: len(d.rows())),
    ("pickle", lambda cls, d: pickle.loads(pickle.dumps(d))),
]


@pytest.mark.parametrize("source", ["memory", "numpy-file"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("name", "fn"), OPS, ids=[o[0] for o in OPS])
def test_operation_matches_cryosparc_tools(tmp_path, name, fn, n, source):
    ours, theirs = _both(n, seed=n + 3)
    if source == "numpy-file":
        # Loaded from a numpy-format file, cryoweave holds strings as fixed-width bytes until
        # they are touched: every operation must behave the same on that storage.
        ours.save(tmp_path / "d.cs")
        ours = Dataset.load(tmp_path / "d.cs")
    got, expected = run_both(fn, ours, theirs)
    assert_same_result(got, expected)
    assert_same(ours, theirs)  # in-place operations leave both datasets the same


@pytest.mark.parametrize("n", SIZES)
def test_rows_to_list_and_to_dict_scalar_fields(n):
    ours, theirs = _both(n, seed=11, shaped=False)
    assert [r.to_list() for r in ours.rows()] == [r.to_list() for r in theirs.rows()]
    assert [r.to_list(exclude_uid=True) for r in ours.rows()] == [r.to_list(True) for r in theirs.rows()]
    assert [r.to_dict() for r in ours.rows()] == [r.to_dict() for r in theirs.rows()]
    assert ours.to_list() == theirs.to_list()
    for r_ours, r_theirs in zip(ours.rows(), theirs.rows()):
        assert r_ours.idx == r_theirs.idx
        assert list(r_ours) == list(r_theirs)
        assert len(r_ours) == len(r_theirs)
        for f in ours.fields():
            assert r_ours.item(f) == r_theirs.item(f)
            assert type(r_ours.item(f)) is type(r_theirs.item(f))
        assert r_ours.item("zzz", "dflt") == r_theirs.item("zzz", "dflt") == "dflt"
        assert ("num/f4" in r_ours) and ("zzz" not in r_ours)


def test_row_to_dict_and_to_list_give_lists_for_shaped_fields():
    # cryoweave's documented behaviour: shaped fields come back whole (cryosparc-tools returns a
    # single element picked with a flat index, a bug).
    ours = Dataset(sample_data(3, seed=2))
    for i, row in enumerate(ours.rows()):
        d = row.to_dict()
        assert d["alignments3D/shift"] == ours["alignments3D/shift"][i].tolist()
        assert d["location/shape2"] == ours["location/shape2"][i].tolist()
        assert d["mesh/cube"] == ours["mesh/cube"][i].tolist()
        assert row.to_list()[ours.fields().index("mesh/cube")] == ours["mesh/cube"][i].tolist()
    assert ours.to_list()[2][ours.fields().index("location/shape2")] == ours["location/shape2"][2].tolist()


def test_row_setitem_and_from_dict_write_through():
    ours, theirs = _both(4, seed=5)
    for d in (ours, theirs):
        rows = d.rows()
        rows[1]["num/f4"] = 9.5
        rows[2]["ctf/type"] = "日本語"
        rows[3]["alignments3D/shift"] = [1.5, -2.5]
        new = rows[0].to_dict()
        new.update({"num/i2": 7, "blob/path": "moved", "mesh/cube": np.full((2, 2, 2), 3)})
        if isinstance(d, CSDataset):  # their to_dict flattens shaped fields; give full values
            for f in ("alignments3D/shift", "location/shape2"):
                new[f] = d[f][0]
        rows[0].from_dict(new)
    assert_same(ours, theirs)
    assert ours["num/f4"][1] == np.float32(9.5)
    assert ours["ctf/type"][2] == "日本語"
    assert ours["mesh/cube"][0].tolist() == [[[3, 3], [3, 3]], [[3, 3], [3, 3]]]


def test_rows_are_row_objects_in_a_numpy_array():
    ours = Dataset(sample_data(3))
    arr = np.array(ours.rows())
    assert arr.shape == (3,) and all(isinstance(r, Row) for r in arr)
    assert isinstance(ours[0], Row) and isinstance(ours[0:2], list)


def test_rows_follow_field_changes():
    ours, theirs = _both(3, seed=1)
    for d in (ours, theirs):
        d.rows()
        d.add_fields([("extra/x", "f8")])
        d["extra/x"] = [1.0, 2.0, 3.0]
        d.rows()[2]["extra/x"] = 5.0
    assert ours["extra/x"].tolist() == theirs["extra/x"].tolist() == [1.0, 2.0, 5.0]


# ---------------------------------------------------------------------------- construction
@pytest.mark.parametrize("n", SIZES)
def test_construction_forms(n):
    data = sample_data(n, seed=21)
    as_dict = {k: v for k, v in data}
    ours, theirs = pair(data)
    assert_same(Dataset(as_dict), CSDataset(as_dict))
    assert_same(ours, theirs)
    records = theirs.to_records(fixed=True)  # a record array with S string fields
    assert_same(Dataset(records), CSDataset(records))
    assert_same(Dataset(records), ours)
    assert_same(Dataset(ours.to_records()), theirs)
    assert_same(Dataset(ours), CSDataset(theirs))


def test_construction_without_uid_adds_random_uids_first():
    ours, theirs = pair([("a/x", np.arange(4, dtype=np.int16)), ("a/s", np.array(["p", "q", "r", "s"]))])
    assert ours.fields() == theirs.fields() == ["uid", "a/x", "a/s"]
    assert ours.descr() == theirs.descr()
    assert ours["uid"].dtype == np.uint64
    for f in ("a/x", "a/s"):  # uids are random: compare the other fields
        assert values(ours, f).tolist() == values(theirs, f).tolist()


def test_construction_uid_forced_to_u8():
    ours, theirs = pair(
        [("uid", np.array([3, 1, 2], dtype=np.int64)), ("x/y", np.array([1, 2, 3], np.uint8))]
    )
    assert ours.descr() == theirs.descr() == [("uid", "<u8"), ("x/y", "|u1")]
    assert_same(ours, theirs)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_int_and_none_construction(n):
    ours, theirs = Dataset(n), CSDataset(n)
    assert len(ours) == len(theirs) == n
    assert ours.descr() == theirs.descr() == [("uid", "<u8")]
    assert len(Dataset(None)) == len(CSDataset(None)) == 0
    assert len(Dataset()) == 0


def test_construction_errors_are_assertion_errors():
    uneven = [("uid", [1, 2]), ("a/x", [1.0])]
    with pytest.raises(AssertionError):
        CSDataset(uneven)
    with pytest.raises(AssertionError):
        Dataset(uneven)
    with pytest.raises(DatasetError):
        Dataset(uneven)
    with pytest.raises(AssertionError):
        CSDataset(np.zeros(3))
    with pytest.raises(AssertionError):
        Dataset(np.zeros(3))


@pytest.mark.parametrize("size", [0, 1, 3])
def test_allocate_every_type(size):
    fields = [(f"t/{t}", t) for t in NUMERIC_TYPES] + [
        ("t/s", "O"),
        ("t/v", "f4", (3,)),
        ("t/m", "u2", (2, 4)),
        ("t/c", "i1", (2, 2, 2)),
    ]
    ours, theirs = Dataset.allocate(size, fields), CSDataset.allocate(size, fields)
    assert ours.descr() == theirs.descr()
    assert len(ours) == len(theirs) == size
    for f in ours.fields(exclude_uid=True):
        assert values(ours, f).tolist() == values(theirs, f).tolist()
    assert ours["t/s"].tolist() == [""] * size
    assert len(set(ours["uid"].tolist())) == size


# ---------------------------------------------------------------------------- deliberate differences
def test_add_fields_existing_name_with_other_type_raises():
    ours, theirs = _both(3)
    theirs.add_fields([("num/f4", "f8")])  # theirs silently keeps the old type
    with pytest.raises(DatasetError):
        ours.add_fields([("num/f4", "f8")])
    with pytest.raises(AssertionError):
        ours.add_fields(["blob/path"], ["u4"])
    assert ("num/f4", "<f4") in ours.descr() and ("blob/path", "|O") in ours.descr()


def test_rename_prefix_with_unprefixed_fields():
    # cryosparc-tools crashes on a field without "/" (unpacking error); cryoweave leaves it alone.
    ours = Dataset([("uid", [1, 2]), ("plain", [1, 2]), ("a/x", [3, 4]), ("a/y/z", [5, 6]), ("ab/x", [7, 8])])
    out = ours.rename_prefix("a", "b", copy=True)
    assert out.fields() == ["uid", "plain", "b/x", "b/y/z", "ab/x"]
    assert out["b/y/z"].tolist() == [5, 6]
    assert ours.fields() == ["uid", "plain", "a/x", "a/y/z", "ab/x"]


def test_prefixes_are_ordered():
    ours, theirs = pair(
        [("uid", [1]), ("z/a", [1]), ("plain", [2]), ("b/a", [3]), ("z/b", [4]), ("a/q", [5])]
    )
    assert ours.prefixes() == ["z", "plain", "b", "a"]
    assert set(ours.prefixes()) == set(theirs.prefixes())


def test_delitem_missing_field_raises_key_error():
    ours = Dataset(sample_data(2))
    with pytest.raises(KeyError):
        del ours["zzz"]
    with pytest.raises(FieldNotFoundError):
        ours["zzz"]


def test_unknown_query_field_is_a_key_error_naming_it():
    ours = Dataset(sample_data(2))
    with pytest.raises(KeyError, match="zzz"):
        ours.query({"zzz": 1})
    with pytest.raises(FieldNotFoundError):
        ours.query_mask({"zzz": [1]})


# ---------------------------------------------------------------------------- query details
@pytest.mark.parametrize(
    "wanted",
    [
        [2**64 - 1],
        [2**63 + 5, 1],
        [2**63],
        [2**63 - 1, 42, 2**64 - 2],
        2**63 + 5,
        [],
        [3, 4],
        np.array([2**64 - 1, 17], dtype=np.uint64),
    ],
)
def test_query_big_uids(wanted):
    """uids are compared exactly. cryosparc-tools passes a list like [2**63 + 5, 1] to np.isin,
    which makes it float64 and matches 2**63 and 2**63 - 1 too; cryoweave must not."""
    data = [("uid", BIG_UIDS), ("a/x", np.arange(len(BIG_UIDS), dtype=np.int32))]
    ours, theirs = pair(data)
    wanted_set = {int(w) for w in np.atleast_1d(np.asarray(wanted, dtype=object))}
    exact = np.array([int(u) in wanted_set for u in BIG_UIDS.tolist()])
    np.testing.assert_array_equal(ours.query_mask({"uid": wanted}), exact)
    assert ours.query({"uid": wanted})["uid"].tolist() == BIG_UIDS[exact].tolist()
    if np.array_equal(theirs.query_mask({"uid": wanted}), exact):  # where the reference is right, agree
        assert_same(ours.query({"uid": wanted}), theirs.query({"uid": wanted}))


def test_query_many_values():
    rng = np.random.default_rng(7)
    uids = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    data = [
        ("uid", uids),
        ("a/k", rng.integers(0, 50, 500).astype(np.int16)),
        ("a/s", np.array([f"s{i % 37}" for i in range(500)], dtype=object)),
    ]
    ours, theirs = pair(data)
    queries = [
        {"uid": uids[rng.choice(500, 100, replace=False)].tolist()},
        {"a/k": list(range(0, 50, 3))},
        {"a/k": np.arange(-5, 60)},
        {"a/s": [f"s{i}" for i in range(0, 60, 2)]},
        {"a/s": [f"s{i}" for i in range(0, 60, 2)], "a/k": list(range(25))},
        {"a/k": [1.0, 2.5]},
    ]
    for q in queries:
        assert_same(ours.query(q), theirs.query(q))


def test_query_callable_gets_rows():
    ours, theirs = _both(6, seed=9)
    seen = []
    result = ours.query(lambda r: seen.append(r.idx) or r["num/u1"] % 2 == 0)
    assert seen == list(range(6))
    assert_same(result, theirs.query(lambda r: r["num/u1"] % 2 == 0))


# ---------------------------------------------------------------------------- split_by
@pytest.mark.parametrize("field", ["k/int", "k/float", "k/str", "k/u8"])
def test_split_by_key_order_and_row_order(field):
    data = [
        ("uid", np.arange(10, 0, -1, dtype=np.uint64)),
        ("k/int", np.array([5, 3, 5, -1, 3, 3, 0, 5, -1, 9], dtype=np.int32)),
        ("k/float", np.array([2.5, 0.0, 2.5, -1.0, 0.0, 0.0, 7.0, 2.5, -1.0, 1e9], dtype=np.float32)),
        ("k/str", np.array(["b", "日本", "b", "", "日本", "日本", "a", "b", "", "héllo"], dtype=object)),
        ("k/u8", np.array([2**64 - 1, 1, 2**64 - 1, 0, 1, 1, 2**63, 2**64 - 1, 0, 5], dtype=np.uint64)),
    ]
    ours, theirs = pair(data)
    got, expected = ours.split_by(field), theirs.split_by(field)
    assert list(got) == list(expected)
    assert [type(k) for k in got] == [type(k) for k in expected]
    for k in expected:
        assert_same(got[k], expected[k])


def test_split_by_shuffled_many_groups():
    rng = np.random.default_rng(3)
    n = 3000
    data = [
        ("uid", rng.permutation(n).astype(np.uint64)),
        ("m/id", rng.integers(0, 40, n).astype(np.uint64)),
        ("m/path", np.array([f"mic_{i}.mrc" for i in rng.integers(0, 30, n)], dtype=object)),
        ("m/v", rng.normal(size=(n, 2)).astype(np.float32)),
    ]
    ours, theirs = pair(data)
    for field in ("m/id", "m/path"):
        got, expected = ours.split_by(field), theirs.split_by(field)
        assert list(got) == list(expected)
        for k in expected:
            assert_same(got[k], expected[k])


# ---------------------------------------------------------------------------- innerjoin
def _ds(uids, **cols):
    data = [("uid", np.array(uids, dtype=np.uint64))] + [(k.replace("__", "/"), v) for k, v in cols.items()]
    return pair(data)


def test_innerjoin_row_order_duplicates_and_last_wins():
    a = _ds(
        [5, 1, 3, 1, 9, 7],
        a__x=np.arange(6, dtype=np.float32),
        a__s=np.array(list("uvwxyz"), dtype=object),
        shared__v=np.arange(6, dtype=np.int32),
    )
    b = _ds(
        [1, 3, 3, 5, 8, 1],
        b__y=np.arange(10, 16, dtype=np.int64),
        shared__v=np.arange(100, 106, dtype=np.int32),
        b__m=np.arange(12, dtype=np.uint16).reshape(6, 2),
    )
    c = _ds(
        [9, 1, 3, 5],
        shared__v=np.array([-1, -2, -3, -4], dtype=np.int32),
        c__s=np.array(["日本", "", "héllo", "x"], dtype=object),
    )
    ours = a[0].innerjoin(b[0], c[0])
    theirs = a[1].innerjoin(b[1], c[1])
    assert_same(ours, theirs)
    assert ours["uid"].tolist() == [5, 1, 3, 1]  # first dataset's order, its duplicates kept
    assert ours["b/y"].tolist() == [13, 15, 12, 15]  # later duplicates: last matching row
    assert ours["shared/v"].tolist() == [-4, -2, -3, -2]  # last dataset holding the field wins
    assert ours.fields() == ["uid", "a/x", "a/s", "b/y", "b/m", "shared/v", "c/s"]
    assert_same(Dataset.innerjoin_many(a[0], b[0], c[0]), CSDataset.innerjoin_many(a[1], b[1], c[1]))
    assert_same(b[0].innerjoin(a[0]), b[1].innerjoin(a[1]))
    assert_same(c[0].innerjoin(b[0], a[0]), c[1].innerjoin(b[1], a[1]))


def test_innerjoin_field_order_example():
    d1 = _ds([1, 2, 3], x=np.array([1, 2, 3], np.int8), a=np.array([4, 5, 6], np.int8))
    d2 = _ds([3, 2], x=np.array([7, 8], np.int8), b=np.array([9, 10], np.int8))
    ours, theirs = d1[0].innerjoin(d2[0]), d1[1].innerjoin(d2[1])
    assert ours.fields() == theirs.fields() == ["uid", "a", "x", "b"]
    assert_same(ours, theirs)
    assert ours["x"].tolist() == [8, 7]


@pytest.mark.parametrize("left_n", [0, 1, 6])
@pytest.mark.parametrize("right_n", [0, 1, 6])
def test_innerjoin_sizes(left_n, right_n):
    shared = np.array([11, 2**63 + 1, 5, 2**64 - 2, 7, 3], dtype=np.uint64)
    a = pair(sample_data(left_n, seed=1, uids=shared[:left_n]))
    b = pair(
        [
            ("uid", shared[:right_n][::-1].copy()),
            ("other/x", np.arange(right_n, dtype=np.float64)),
            ("other/s", np.array(["é"] * right_n, dtype=object)),
        ]
    )
    assert_same(a[0].innerjoin(b[0]), a[1].innerjoin(b[1]))
    assert_same(b[0].innerjoin(a[0]), b[1].innerjoin(a[1]))


def test_innerjoin_keeps_the_largest_uid():
    # cryosparc-tools drops uid 2**64 - 1 from every inner join (its hash table appears to use
    # that value as an empty-slot marker): a bug there. cryoweave keeps the row.
    uids = np.array([2**64 - 1, 1, 2**63], dtype=np.uint64)
    a = _ds(uids, a__x=np.array([1, 2, 3], np.int32))
    b = _ds(uids[::-1].copy(), b__y=np.array([4, 5, 6], np.int32))
    ours = a[0].innerjoin(b[0], assert_no_drop=True)
    assert ours["uid"].tolist() == [2**64 - 1, 1, 2**63]
    assert ours["b/y"].tolist() == [6, 5, 4]


def test_innerjoin_type_conflict_raises():
    a = _ds([1, 2], a__x=np.array([1, 2], np.int32))
    b = _ds([1, 2], a__x=np.array([1, 2], np.int64))
    with pytest.raises(AssertionError):
        a[1].innerjoin(b[1])
    with pytest.raises(DatasetError):
        a[0].innerjoin(b[0])
    s = _ds([1, 2], a__x=np.array([[1, 2], [3, 4]], np.int32))
    with pytest.raises(AssertionError):
        a[1].innerjoin(s[1])
    with pytest.raises(DatasetError):
        Dataset.innerjoin_many(a[0], s[0])


def test_innerjoin_assert_no_drop():
    a = _ds([1, 2, 3], a__x=np.array([1, 2, 3], np.int32))
    b = _ds([3, 2, 1, 4], b__y=np.array([1, 2, 3, 4], np.int32))
    c = _ds([3, 1], c__z=np.array([1, 2], np.int32))
    assert_same(a[0].innerjoin(b[0], assert_no_drop=True), a[1].innerjoin(b[1], assert_no_drop=True))
    with pytest.raises(AssertionError):
        a[1].innerjoin(c[1], assert_no_drop=True)
    with pytest.raises(DatasetError):
        a[0].innerjoin(c[0], assert_no_drop=True)


def test_innerjoin_with_long_field_name():
    long = "alignments_class_3D_with_a_very_long_name/some_field_name_x"
    assert len(long) > 52
    a = _ds([1, 2, 3], **{"a__x": np.array([1.0, 2.0, 3.0])})
    b = pair([("uid", np.array([3, 1], np.uint64)), (long, np.array(["p", "q"], dtype=object))])
    assert_same(a[0].innerjoin(b[0]), a[1].innerjoin(b[1]))


# ---------------------------------------------------------------------------- union / append / extend
def _three(seed: int, uids_list, extra_field: bool = False):
    out = []
    for i, uids in enumerate(uids_list):
        data = sample_data(len(uids), seed=seed + i, uids=np.array(uids, dtype=np.uint64))
        if extra_field and i == 1:
            data.append(("only/b", np.arange(len(uids), dtype=np.int8)))
        out.append(pair(data))
    return out


@pytest.mark.parametrize(
    "uids_list",
    [
        [[1, 2, 3], [3, 4, 5], [5, 1, 6]],
        [[1, 1, 2], [2, 2, 3], [4]],
        [[], [1, 2], []],
        [[], [], []],
        [[7, 2**63 + 1], [], [2**64 - 1, 7]],
    ],
)
@pytest.mark.parametrize("assume_unique", [False, True])
def test_union(uids_list, assume_unique):
    if assume_unique and any(len(set(u)) != len(u) for u in uids_list):
        pytest.skip("assume_unique needs unique uids within each dataset")
    dsets = _three(1, uids_list, extra_field=True)
    ours = Dataset.union_many(*[d[0] for d in dsets], assume_unique=assume_unique)
    theirs = CSDataset.union_many(*[d[1] for d in dsets], assume_unique=assume_unique)
    assert_same(ours, theirs)
    assert_same(dsets[0][0].union(dsets[1][0], dsets[2][0]), dsets[0][1].union(dsets[1][1], dsets[2][1]))


def test_union_and_append_assert_same_fields():
    dsets = _three(2, [[1, 2], [3], [4]], extra_field=True)
    for many in ("union_many", "append_many"):
        with pytest.raises(AssertionError):
            getattr(CSDataset, many)(*[d[1] for d in dsets], assert_same_fields=True)
        with pytest.raises(DatasetError):
            getattr(Dataset, many)(*[d[0] for d in dsets], assert_same_fields=True)
    same = _three(2, [[1, 2], [3], [4]])
    assert_same(
        Dataset.append_many(*[d[0] for d in same], assert_same_fields=True),
        CSDataset.append_many(*[d[1] for d in same], assert_same_fields=True),
    )


def test_empty_many_constructors():
    for name in ("union_many", "append_many", "innerjoin_many"):
        ours, theirs = getattr(Dataset, name)(), getattr(CSDataset, name)()
        assert ours.descr() == theirs.descr() and len(ours) == len(theirs) == 0


@pytest.mark.parametrize(
    "uids_list",
    [
        [[1, 2, 3], [4, 5], [6]],
        [[], [1, 2], [3]],
        [[1, 2], [], []],
        [[], [], []],
        [[2**64 - 1], [0], [2**63]],
    ],
)
def test_append(uids_list):
    dsets = _three(3, uids_list, extra_field=True)
    assert_same(Dataset.append_many(*[d[0] for d in dsets]), CSDataset.append_many(*[d[1] for d in dsets]))
    assert_same(dsets[0][0].append(dsets[1][0], dsets[2][0]), dsets[0][1].append(dsets[1][1], dsets[2][1]))
    assert_same(dsets[1][0].append(dsets[0][0]), dsets[1][1].append(dsets[0][1]))


@pytest.mark.parametrize("uids_list", [[[1, 2], [2, 3]], [[1, 1], [3]], [[5], [], [5]]])
def test_append_duplicate_uids(uids_list):
    dsets = _three(4, uids_list)
    with pytest.raises(AssertionError):
        CSDataset.append_many(*[d[1] for d in dsets])
    with pytest.raises(DatasetError):
        Dataset.append_many(*[d[0] for d in dsets])
    assert_same(
        Dataset.append_many(*[d[0] for d in dsets], repeat_allowed=True),
        CSDataset.append_many(*[d[1] for d in dsets], repeat_allowed=True),
    )


def test_append_keeps_common_fields_in_first_order():
    a = _ds(
        [1, 2],
        p__a=np.array([1, 2], np.int8),
        p__b=np.array(["x", "y"], dtype=object),
        p__c=np.array([1.0, 2.0]),
    )
    b = pair(
        [
            ("uid", np.array([3], np.uint64)),
            ("p/c", np.array([3.0])),
            ("p/b", np.array(["z"], dtype=object)),
            ("p/a", np.array([3], np.int16)),
        ]
    )  # p/a has another type: not common
    ours, theirs = a[0].append(b[0]), a[1].append(b[1])
    assert ours.fields() == ["uid", "p/b", "p/c"]
    assert_same(ours, theirs)


def test_append_of_empty_datasets_keeps_first_fields():
    a = pair(sample_data(0, seed=1))
    b = pair(sample_data(0, seed=2, strings=False))
    assert_same(a[0].append(b[0]), a[1].append(b[1]))
    assert_same(a[0].union(b[0]), a[1].union(b[1]))
    assert_same(b[0].append(a[0]), b[1].append(a[1]))


@pytest.mark.parametrize("uids_list", [[[1, 2], [3, 4], [5]], [[1], [], [2]], [[1, 2], [], []]])
def test_extend(uids_list):
    dsets = _three(5, uids_list, extra_field=True)
    ours, theirs = dsets[0][0].copy(), dsets[0][1].copy()
    r_ours = ours.extend(dsets[1][0], dsets[2][0])
    r_theirs = theirs.extend(dsets[1][1], dsets[2][1])
    assert r_ours is ours and r_theirs is theirs
    assert_same(ours, theirs)


def test_extend_duplicates_and_missing_fields():
    a = _ds([1, 2], p__a=np.array([1, 2], np.int8), p__b=np.array([1.0, 2.0]))
    dup = _ds([2, 3], p__a=np.array([1, 2], np.int8), p__b=np.array([1.0, 2.0]))
    lacking = _ds([9], p__a=np.array([1], np.int8))
    with pytest.raises(DatasetError):
        a[0].copy().extend(dup[0])
    with pytest.raises(DatasetError):
        a[0].copy().extend(lacking[0])
    with pytest.raises(AssertionError):
        a[1].copy().extend(lacking[1])
    ours, theirs = a[0].copy(), a[1].copy()
    assert_same(ours.extend(dup[0], repeat_allowed=True), theirs.extend(dup[1], repeat_allowed=True))
    rows = ours.rows()
    assert len(rows) == 4


def test_extend_duplicate_with_target_is_rejected():
    # cryosparc-tools only compares the *others'* uids with each other; a uid repeated between the
    # target and another dataset slips through. cryoweave checks the target too (its docstring:
    # "duplicate uids rejected unless repeat_allowed").
    a = _ds([1, 2], p__a=np.array([1, 2], np.int8))
    b = _ds([2, 3], p__a=np.array([3, 4], np.int8))
    with pytest.raises(DatasetError):
        a[0].copy().extend(b[0])


# ---------------------------------------------------------------------------- interlace / replace
def test_interlace():
    dsets = _three(6, [[1, 2, 3], [4, 5, 6], [7, 8, 9]], extra_field=True)
    assert_same(
        dsets[0][0].interlace(dsets[1][0], dsets[2][0]), dsets[0][1].interlace(dsets[1][1], dsets[2][1])
    )
    assert_same(dsets[1][0].interlace(dsets[0][0]), dsets[1][1].interlace(dsets[0][1]))


def test_interlace_errors():
    dsets = _three(6, [[1, 2, 3], [4, 5], [3, 8, 9]])
    for i in (1, 2):
        with pytest.raises(AssertionError):
            dsets[0][1].interlace(dsets[i][1])
        with pytest.raises(DatasetError):
            dsets[0][0].interlace(dsets[i][0])
    extra = _three(6, [[1, 2], [4, 5]], extra_field=True)
    with pytest.raises(AssertionError):
        extra[0][1].interlace(extra[1][1], assert_same_fields=True)
    with pytest.raises(DatasetError):
        extra[0][0].interlace(extra[1][0], assert_same_fields=True)


@pytest.mark.parametrize(
    ("query", "uids_list"),
    [
        ({"ctf/type": "héllo"}, [[1, 2, 3, 4, 5, 6], [3, 10]]),
        ({}, [[1, 2, 3], [2, 7]]),
        ({"uid": [1, 2]}, [[1, 2, 3], [9], [10, 11]]),
        ({"blob/path": ["", "日本"]}, [[1, 2, 3, 4], []]),
        ({}, [[1, 2, 3], [4, 5]]),
    ],
)
def test_replace(query, uids_list):
    dsets = _three(7, uids_list)
    ours = dsets[0][0].replace(query, *[d[0] for d in dsets[1:]])
    theirs = dsets[0][1].replace(query, *[d[1] for d in dsets[1:]])
    assert_same(ours, theirs)
    if uids_list[1:] and all(not set(uids_list[0]) & set(u) for u in uids_list[1:]):
        assert_same(
            dsets[0][0].replace(query, *[d[0] for d in dsets[1:]], assume_disjoint=True),
            dsets[0][1].replace(query, *[d[1] for d in dsets[1:]], assume_disjoint=True),
        )


def test_replace_requires_same_fields():
    dsets = _three(8, [[1, 2], [3]], extra_field=True)
    with pytest.raises(AssertionError):
        dsets[0][1].replace({}, dsets[1][1])
    with pytest.raises(DatasetError):
        dsets[0][0].replace({}, dsets[1][0])


# ---------------------------------------------------------------------------- columns
def test_column_is_ndarray_and_reductions_give_numpy_scalars():
    ours, theirs = _both(6, seed=4)
    for d in (ours, theirs):
        col = d["num/f8"]
        assert isinstance(col, np.ndarray)
    assert type(ours["num/f8"]) is Column
    for fn in (np.sum, np.max, np.min, np.mean, np.median):
        for f in ("num/f4", "num/i4", "num/u2"):
            got, expected = fn(ours[f]), fn(theirs[f])
            assert type(got) is type(expected), (fn, f, type(got), type(expected))
            assert not isinstance(got, np.ndarray)
            np.testing.assert_array_equal(got, expected)
    assert type(ours["num/i8"].sum()) is type(theirs["num/i8"].sum())
    assert type(ours["num/u4"].max()) is np.uint32


def test_column_writes_go_through():
    ours, theirs = _both(4, seed=8)
    for d in (ours, theirs):
        col = d["num/i2"]
        col[1] = 77
        col[2:] *= 0
        s = d["blob/path"]
        s[0] = "日本"
        d["alignments3D/shift"][3, 1] = 4.5
        np.negative(d["num/f8"], out=d["num/f8"])
        d["ctf/type"][:] = np.array(["ab", "cd", "ef", "gh"])  # U array into a string column
    assert_same(ours, theirs)
    assert ours["num/i2"][1] == 77 and ours["blob/path"][0] == "日本"
    assert ours["ctf/type"].tolist() == ["ab", "cd", "ef", "gh"]


def test_column_survives_adding_fields():
    ours = Dataset(sample_data(3))
    col = ours["num/f4"]
    ours.add_fields([("new/x", "f8")])
    col[0] = 3.0
    assert ours["num/f4"][0] == np.float32(3.0)


def test_cols_values():
    ours, theirs = _both(5, seed=12)
    c_ours, c_theirs = ours.cols(), theirs.cols()
    assert list(c_ours) == list(c_theirs)
    for k in c_ours:
        assert isinstance(c_ours[k], Column)
        np.testing.assert_array_equal(c_ours[k], c_theirs[k])
    c_ours["num/u1"][0] = 1
    assert ours["num/u1"][0] == 1


# ---------------------------------------------------------------------------- misc
@pytest.mark.parametrize("n", SIZES)
def test_pickle_round_trip(n):
    ours, theirs = _both(n, seed=13)
    back = pickle.loads(pickle.dumps(ours))
    assert back == ours
    assert_same(back, pickle.loads(pickle.dumps(theirs)))
    back["num/f4"] = 0  # an independent copy
    assert n == 0 or back != ours


def test_reassign_uids():
    ours, theirs = _both(20, seed=14)
    before = ours.copy()
    r = ours.reassign_uids()
    theirs.reassign_uids()
    assert r is ours
    assert ours.descr() == theirs.descr()
    assert ours["uid"].dtype == np.uint64
    assert not np.array_equal(ours["uid"], before["uid"])
    assert len(np.unique(ours["uid"])) == 20
    for f in ours.fields(exclude_uid=True):
        np.testing.assert_array_equal(values(ours, f), values(before, f))


def test_eq_and_is_equivalent():
    ours, theirs = _both(4, seed=15)
    reordered = Dataset([(f, ours[f]) for f in reversed(ours.fields())])
    assert ours == ours.copy()
    assert (ours != ours.copy()) is False
    assert ours != reordered and ours.is_equivalent(reordered)
    cs_reordered = CSDataset([(f, theirs[f]) for f in reversed(theirs.fields())])
    assert (theirs == cs_reordered) == (ours == reordered)
    assert theirs.is_equivalent(cs_reordered) == ours.is_equivalent(reordered)
    changed = ours.copy()
    changed["ctf/type"][0] = changed["ctf/type"][0] + "!"
    assert changed != ours and not changed.is_equivalent(ours)
    assert ours != "not a dataset" and not ours.is_equivalent(3)


@pytest.mark.parametrize("fmt", ["numpy", "csdat-lz4", "csdat-raw"])
@pytest.mark.parametrize("n", SIZES)
def test_save_load_each_implementation(tmp_path, fmt, n):
    ours, theirs = _both(n, seed=16)
    save_ours(ours, tmp_path / "ours.cs", fmt)
    save_theirs(theirs, tmp_path / "theirs.cs", fmt)
    assert_same(Dataset.load(tmp_path / "ours.cs"), CSDataset.load(tmp_path / "theirs.cs"))
    assert_same(Dataset.load(str(tmp_path / "ours.cs")), theirs)


def test_dataset_with_duplicate_uids_round_trips(tmp_path):
    data = sample_data(5, seed=17, uids=np.array([4, 4, 1, 4, 1], np.uint64))
    ours, theirs = pair(data)
    for fmt in ("numpy", "csdat-lz4"):
        save_ours(ours, tmp_path / f"o.{fmt}", fmt)
        assert_same(CSDataset.load(tmp_path / f"o.{fmt}"), theirs)
    assert_same(ours.split_by("uid")[np.uint64(4)], theirs.split_by("uid")[np.uint64(4)])


def test_stream_and_dumps():
    ours, theirs = _both(5, seed=18)
    raw = b"".join(bytes(c) for c in ours.stream())
    assert raw == ours.dumps()
    back = CSDataset.load(io.BytesIO(raw))
    assert_same(back, theirs)
    assert_same(Dataset.from_iterator(iter(theirs.stream())), theirs)
    assert_same(Dataset.from_iterator(ours.stream(compression="lz4")), theirs)


# ---------------------------------------------------------------------------- mixed string storage
@pytest.mark.parametrize("op", ["append", "union", "innerjoin", "interlace", "replace", "extend", "eq"])
def test_combining_loaded_and_in_memory_strings(tmp_path, op):
    # One side holds strings as bytes (loaded from a numpy file), the other as str objects.
    a_data = sample_data(4, seed=41, uids=np.array([1, 2, 3, 4], np.uint64))
    b_data = sample_data(
        4, seed=42, uids=np.array([5, 6, 7, 8] if op != "innerjoin" else [4, 2, 9, 1], np.uint64)
    )
    a, ca = pair(a_data)
    b, cb = pair(b_data)
    a.save(tmp_path / "a.cs")
    loaded = Dataset.load(tmp_path / "a.cs")
    fns = {
        "append": lambda x, y: x.append(y),
        "union": lambda x, y: x.union(y),
        "innerjoin": lambda x, y: x.innerjoin(y.rename_fields({"blob/path": "b2/path"}, copy=True)),
        "interlace": lambda x, y: x.interlace(y),
        "replace": lambda x, y: x.replace({"ctf/type": "héllo"}, y),
        "extend": lambda x, y: x.copy().extend(y),
        "eq": lambda x, y: x == x.copy(),
    }
    fn = fns[op]
    expected = fn(ca, cb)
    for left, right in ((loaded, b), (b, loaded)):
        exp = expected if left is loaded else fn(cb, ca)
        assert_same_result(fn(left, right), exp)
