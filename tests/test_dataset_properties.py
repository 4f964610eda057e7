"""Property tests: random datasets round-trip through every format; mutated files either load or
raise DatasetLoadError; joins, unions and appends agree with a small pure-Python model."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cryoweave.errors import DatasetError, DatasetLoadError
from dataset_helpers import (
    EXTRA_TYPES,
    FORMATS,
    NUMERIC_TYPES,
    CSDataset,
    Dataset,
    assert_same,
    ours_bytes,
    pair,
    sample_data,
    save_ours,
    save_theirs,
)

ALL_TYPES = NUMERIC_TYPES + EXTRA_TYPES

# ':' is left out here: it has its own test (test_dataset_extras.py::test_field_name_with_colon).
field_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=":"), min_size=1, max_size=12
).filter(lambda s: s != "uid")
string_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=8)
shapes = st.lists(st.integers(1, 3), max_size=3).map(tuple)


@st.composite
def random_datasets(draw, max_rows: int = 50) -> Dataset:
    n = draw(st.integers(0, max_rows))
    specs = draw(
        st.lists(
            st.tuples(field_names, st.sampled_from((*ALL_TYPES, "O")), shapes),
            max_size=6,
            unique_by=lambda f: f[0],
        )
    )
    cols = [("uid", draw(hnp.arrays(np.uint64, n)))]
    for name, dtype, shape in specs:
        if dtype == "O":
            arr = np.empty(n, dtype=object)
            arr[:] = draw(st.lists(string_values, min_size=n, max_size=n))
        else:
            arr = draw(hnp.arrays(np.dtype(dtype), (n, *shape)))
        cols.append((name, arr))
    return Dataset(cols)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="cw-props-") as d:
        yield Path(d)


# ---------------------------------------------------------------------------- (a) round trips
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dset=random_datasets())
def test_random_datasets_round_trip(workdir, dset):
    for fmt in FORMATS:
        path = workdir / f"rt-{fmt}.cs"
        save_ours(dset, path, fmt)
        assert_same(Dataset.load(path), dset)
        buf = io.BytesIO()
        save_ours(dset, buf, fmt)
        buf.seek(0)
        assert_same(Dataset.load(buf), dset)
        head = Dataset.inspect(path)
        assert head["length"] == len(dset)
        assert [tuple(f) for f in head["dtype"]] == dset.descr()
    assert_same(Dataset.from_iterator(iter([dset.dumps()])), dset)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dset=random_datasets(max_rows=8), data=st.data())
def test_random_filtered_loads(workdir, dset, data):
    names = dset.fields(exclude_uid=True)
    fields = data.draw(st.lists(st.sampled_from(names), unique=True) if names else st.just([]))
    prefixes = data.draw(st.lists(st.sampled_from([f.split("/")[0] for f in names] or ["x"]), max_size=2))
    expected = dset.filter_fields(
        lambda f: f in fields or ("/" in f and f.split("/", 1)[0] in prefixes), copy=True
    )
    for fmt in FORMATS:
        path = workdir / f"flt-{fmt}.cs"
        save_ours(dset, path, fmt)
        assert_same(Dataset.load(path, fields=fields, prefixes=prefixes), expected)


# ---------------------------------------------------------------------------- (b) reader fuzzing
def _seed_files() -> dict[str, bytes]:
    ours, theirs = pair(sample_data(3, seed=1))
    files = {}
    for fmt in FORMATS:
        files[f"ours-{fmt}"] = ours_bytes(ours, fmt)
        with tempfile.TemporaryDirectory() as d:
            save_theirs(theirs, Path(d) / "t.cs", fmt)
            files[f"theirs-{fmt}"] = (Path(d) / "t.cs").read_bytes()
    small = Dataset([("uid", np.array([1, 2], np.uint64)), ("a/s", np.array(["é", ""], dtype=object))])
    for fmt in FORMATS:
        files[f"small-{fmt}"] = ours_bytes(small, fmt)
    return files


SEEDS = _seed_files()


@st.composite
def mutated_files(draw) -> bytes:
    raw = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "header-int"]))
        pos = draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and raw:
            chunk = draw(st.binary(min_size=1, max_size=8))
            raw[pos : pos + len(chunk)] = chunk
        elif kind == "truncate":
            del raw[pos:]
        elif kind == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del raw[pos : pos + draw(st.integers(1, 16))]
        elif kind == "header-int":  # the size fields at the start of both formats
            where = draw(st.sampled_from([6, 8, 10]))
            value = draw(st.sampled_from([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            raw[where : where + 4] = value.to_bytes(4, "little")
    return bytes(raw)


def _load_or_load_error(fn) -> None:
    """Any outcome but an exception other than DatasetLoadError."""
    with contextlib.suppress(DatasetLoadError):
        fn()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated_files())
def test_mutated_files_load_or_raise_load_error(workdir, raw):
    path = workdir / "fuzz.cs"
    path.write_bytes(raw)
    _load_or_load_error(lambda: Dataset.load(path))
    _load_or_load_error(lambda: Dataset.load(io.BytesIO(raw)))
    _load_or_load_error(lambda: Dataset.load(path, prefixes=["ctf"], fields=["num/f4"]))
    _load_or_load_error(lambda: Dataset.inspect(path))


@settings(max_examples=100, deadline=None)
@given(
    raw=st.binary(max_size=300),
    magic=st.sampled_from(
        [b"", b"\x93NUMPY", b"\x95CSDAT", b"\x93NUMPY\x01\x00", b"\x95CSDAT\x10\x00\x00\x00"]
    ),
)
def test_random_bytes_load_or_raise_load_error(workdir, raw, magic):
    path = workdir / "random.cs"
    path.write_bytes(magic + raw)
    _load_or_load_error(lambda: Dataset.load(path))
    _load_or_load_error(lambda: Dataset.inspect(path))


# ---------------------------------------------------------------------------- (c) combining model
uid_lists = st.lists(st.integers(0, 8), max_size=8)


def _make(k: int, uids: list[int], own: bool = True) -> tuple[Dataset, CSDataset]:
    """Dataset k: uid, a marker k*1000+row, a field shared by all, and (``own``) one of its own."""
    n = len(uids)
    data = [
        ("uid", np.array(uids, dtype=np.uint64)),
        ("m/mark", np.array([k * 1000 + i for i in range(n)], dtype=np.int64)),
        ("shared/s", np.array([f"d{k}r{i}" for i in range(n)], dtype=object)),
    ]
    if own:
        data.append((f"own{k}/x", np.arange(n, dtype=np.float32) + k))
    return pair(data)


def _rows(uids_lists):
    return [[(u, k * 1000 + i) for i, u in enumerate(uids)] for k, uids in enumerate(uids_lists)]


@settings(max_examples=150, deadline=None)
@given(lists=st.lists(uid_lists, min_size=1, max_size=4))
def test_innerjoin_model(lists):
    dsets = [_make(k, u) for k, u in enumerate(lists)]
    ours = Dataset.innerjoin_many(*[d[0] for d in dsets])
    # Model: the first dataset's rows whose uid every other dataset holds; each shared field from the
    # last dataset, its value from that dataset's last row with the uid.
    rows = _rows(lists)
    last = [{u: mark for u, mark in r} for r in rows]  # later rows overwrite: last occurrence wins
    keep = [(u, mark) for u, mark in rows[0] if all(u in later for later in last[1:])]

    def row_in(k: int, u: int, first_mark: int) -> int:
        """Row index used from dataset k: the first dataset's own row, else the last with the uid."""
        return (first_mark if k == 0 else last[k][u]) - k * 1000

    k_last = len(lists) - 1
    assert ours["uid"].tolist() == [u for u, _ in keep]
    assert ours["m/mark"].tolist() == [k_last * 1000 + row_in(k_last, u, m) for u, m in keep]
    assert ours["shared/s"].tolist() == [f"d{k_last}r{row_in(k_last, u, m)}" for u, m in keep]
    for k in range(len(lists)):
        assert ours[f"own{k}/x"].tolist() == [float(row_in(k, u, m) + k) for u, m in keep]
    assert ours.fields() == [
        "uid",
        *[f"own{k}/x" for k in range(len(lists) - 1)],
        "m/mark",
        "shared/s",
        f"own{k_last}/x",
    ]
    assert_same(ours, CSDataset.innerjoin_many(*[d[1] for d in dsets]))


@settings(max_examples=150, deadline=None)
@given(lists=st.lists(uid_lists, min_size=1, max_size=4))
def test_union_model(lists):
    dsets = [_make(k, u) for k, u in enumerate(lists)]
    ours = Dataset.union_many(*[d[0] for d in dsets])
    seen, expected = set(), []
    for r in _rows(lists):
        for u, mark in r:
            if u not in seen:
                seen.add(u)
                expected.append((u, mark))
    assert ours["uid"].tolist() == [u for u, _ in expected]
    assert ours["m/mark"].tolist() == [m for _, m in expected]
    nonempty = [k for k, uids in enumerate(lists) if uids]
    if len(nonempty) > 1:  # fields common to the non-empty datasets
        assert ours.fields() == ["uid", "m/mark", "shared/s"]
    else:  # a copy of the only non-empty dataset (or of the first)
        assert ours.fields() == ["uid", "m/mark", "shared/s", f"own{nonempty[0] if nonempty else 0}/x"]
    assert_same(ours, CSDataset.union_many(*[d[1] for d in dsets]))


@settings(max_examples=150, deadline=None)
@given(lists=st.lists(uid_lists, min_size=1, max_size=4), repeat_allowed=st.booleans())
def test_append_model(lists, repeat_allowed):
    dsets = [_make(k, u) for k, u in enumerate(lists)]
    all_uids = [u for uids in lists for u in uids]
    duplicates = len(all_uids) != len(set(all_uids))
    if duplicates and not repeat_allowed:
        with pytest.raises(DatasetError):
            Dataset.append_many(*[d[0] for d in dsets])
        with pytest.raises(AssertionError):
            CSDataset.append_many(*[d[1] for d in dsets])
        return
    ours = Dataset.append_many(*[d[0] for d in dsets], repeat_allowed=repeat_allowed)
    assert ours["uid"].tolist() == all_uids
    assert ours["m/mark"].tolist() == [m for r in _rows(lists) for _, m in r]
    assert_same(ours, CSDataset.append_many(*[d[1] for d in dsets], repeat_allowed=repeat_allowed))


@settings(max_examples=100, deadline=None)
@given(base=uid_lists, other=uid_lists, query_uids=st.lists(st.integers(0, 8), max_size=3))
def test_replace_model(base, other, query_uids):
    assume(len(set(other)) == len(other))
    a, b = _make(0, base, own=False), _make(1, other, own=False)
    ours = a[0].replace({"uid": query_uids} if query_uids else {}, b[0])
    kept = [(u, m) for u, m in _rows([base])[0] if u not in other and u not in query_uids]
    assert ours["uid"].tolist() == [u for u, _ in kept] + other
    assert_same(ours, a[1].replace({"uid": query_uids} if query_uids else {}, b[1]))
