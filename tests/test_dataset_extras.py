"""cryoweave-only Dataset behaviour: bool/f2 fields, pandas, sort, stats, string storage, filtered
loading, streams, and atomic saving."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from cryoweave.dataset import CSDAT_FORMAT
from cryoweave.errors import DatasetError, DatasetSaveError
from dataset_helpers import (
    FORMATS,
    CSDataset,
    Dataset,
    assert_same,
    ours_bytes,
    random_column,
    sample_data,
    save_ours,
)


def extra_types_data(n: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        ("uid", np.arange(n, dtype=np.uint64)),
        ("x/flag", random_column(rng, "b1", n)),
        ("x/half", random_column(rng, "f2", n)),
        ("x/half_nan", np.array([np.nan, -np.inf, 65504.0, -0.0, 1e-7][:n] * (n // 5 + 1), np.float16)[:n]),
        ("x/flags", random_column(rng, "b1", n, (3,))),
        ("x/halves", random_column(rng, "f2", n, (2, 2))),
        ("x/s", random_column(rng, "O", n)),
    ]


# ---------------------------------------------------------------------------- bool / float16
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n", [0, 1, 13])
def test_bool_and_float16_round_trip(tmp_path, fmt, n):
    d = Dataset(extra_types_data(n, seed=n))
    assert ("x/flag", "|b1") in d.descr() and ("x/halves", "<f2", (2, 2)) in d.descr()
    save_ours(d, tmp_path / "d.cs", fmt)
    back = Dataset.load(tmp_path / "d.cs")
    assert_same(back, d)
    assert back["x/flag"].dtype == np.bool_ and back["x/half"].dtype == np.float16
    assert_same(Dataset.load(io.BytesIO(ours_bytes(d, fmt))), d)


def test_bool_and_float16_headers(tmp_path):
    d = Dataset(extra_types_data(4))
    d.save(tmp_path / "n.cs")
    assert np.load(tmp_path / "n.cs").dtype["x/flag"] == np.bool_
    d.save(tmp_path / "c.cs", format=CSDAT_FORMAT)
    head = Dataset.inspect(tmp_path / "c.cs")
    assert ("x/flag", "|b1") in head["dtype"] and ("x/half", "<f2") in head["dtype"]


def test_add_fields_bool_and_float16():
    d = Dataset(3).add_fields([("a/b", "b1"), ("a/h", "f2"), ("a/bs", "?", (2,))])
    assert d.descr(exclude_uid=True) == [("a/b", "|b1"), ("a/h", "<f2"), ("a/bs", "|b1", (2,))]
    assert d["a/b"].tolist() == [False] * 3 and d["a/h"].tolist() == [0.0] * 3


# ---------------------------------------------------------------------------- pandas
@pytest.mark.parametrize("n", [0, 1, 9])
def test_pandas_round_trip(n):
    d = Dataset(sample_data(n, seed=n) + extra_types_data(n)[1:])
    frame = d.to_pandas()
    assert len(frame) == n
    cols = list(frame.columns)
    assert "alignments3D/shift[0]" in cols and "alignments3D/shift[1]" in cols
    assert "alignments3D/shift" not in cols
    assert "location/shape2[1,2]" in cols and "mesh/cube[1,0,1]" in cols
    assert len([c for c in cols if c.startswith("mesh/cube[")]) == 8
    np.testing.assert_array_equal(frame["location/shape2[1,2]"].to_numpy(), d["location/shape2"][:, 1, 2])
    assert frame["uid"].dtype == np.uint64
    back = Dataset.from_pandas(frame)
    assert_same(back, d)


def test_from_pandas_plain_frame():
    import pandas as pd

    frame = pd.DataFrame({"a/x": np.array([1.0, 2.0]), "a/s": ["p", None], "v[0]": [1, 2], "v[1]": [3, 4]})
    d = Dataset.from_pandas(frame)
    assert d.fields() == ["uid", "a/x", "a/s", "v"]
    assert d["a/s"].tolist() == ["p", ""]
    assert d["v"].tolist() == [[1, 3], [2, 4]]
    assert d["uid"].dtype == np.uint64 and len(set(d["uid"].tolist())) == 2


def test_from_pandas_incomplete_components_raise():
    import pandas as pd

    with pytest.raises(DatasetError):
        Dataset.from_pandas(pd.DataFrame({"uid": [1], "v[0]": [1], "v[2]": [3]}))
    with pytest.raises(DatasetError):
        Dataset.from_pandas(pd.DataFrame({"uid": [1], "v": [0], "v[0]": [1]}))


# ---------------------------------------------------------------------------- sort
SORT_DATA = [
    ("uid", np.arange(10, dtype=np.uint64)),
    ("k/a", np.array([3, 1, 2, 1, 3, 2, 1, 3, 2, 1], dtype=np.int16)),
    ("k/b", np.array([0.5, 0.1, 0.5, 0.2, 0.1, 0.9, 0.1, 0.5, np.nan, 0.1], dtype=np.float32)),
    ("k/s", np.array(["b", "日本", "a", "", "b", "héllo", "a", "B", "é", "a"], dtype=object)),
    ("k/u", np.array([2**64 - 1, 5, 2**63, 2**63 + 1, 0, 7, 5, 2**64 - 2, 1, 2**63], dtype=np.uint64)),
]


def _reference_sort(d: Dataset, keys: list[str], descending: bool) -> list[int]:
    rows = list(range(len(d)))
    for k in reversed(keys):  # Python's sort is stable: sort by secondary keys first
        col = d[k].tolist()
        rows.sort(key=lambda i, col=col: col[i], reverse=descending)
    return [int(d["uid"][i]) for i in rows]


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(
    "keys", [["k/a"], ["k/s"], ["k/u"], ["k/a", "k/s"], ["k/s", "k/a"], ["k/a", "k/u", "k/s"]]
)
@pytest.mark.parametrize("storage", ["memory", "numpy-file"])
def test_sort_matches_stable_reference(tmp_path, descending, keys, storage):
    d = Dataset(SORT_DATA)
    if storage == "numpy-file":  # string keys held as bytes
        d.save(tmp_path / "d.cs")
        d = Dataset.load(tmp_path / "d.cs")
    ref = Dataset(SORT_DATA)
    out = d.sort(keys if len(keys) > 1 else keys[0], descending=descending)
    assert out["uid"].tolist() == _reference_sort(ref, keys, descending)
    assert_same(out, ref.take(out["uid"].astype(np.int64)))
    assert_same(d, ref)  # the dataset itself is unchanged


def test_sort_descending_keeps_ties_in_order():
    d = Dataset(SORT_DATA)
    out = d.sort("k/a", descending=True)
    assert out["uid"].tolist() == [0, 4, 7, 2, 5, 8, 1, 3, 6, 9]


def test_sort_float_with_nan_puts_nan_last():
    d = Dataset(SORT_DATA)
    assert d.sort("k/b")["uid"].tolist()[-1] == 8
    assert d.sort("k/b")["uid"].tolist()[:4] == [1, 4, 6, 9]


def test_sort_errors():
    d = Dataset(sample_data(3))
    with pytest.raises(KeyError):
        d.sort("nope")
    with pytest.raises(DatasetError):
        d.sort("alignments3D/shift")
    with pytest.raises(DatasetError):
        d.sort([])
    assert len(Dataset(sample_data(0)).sort("num/f4")) == 0


# ---------------------------------------------------------------------------- stats
def test_stats_values():
    d = Dataset(
        [
            ("uid", np.array([5, 2**64 - 1, 3, 4], np.uint64)),
            ("a/f", np.array([1.0, np.nan, 3.0, 5.0], np.float32)),
            ("a/i", np.array([-(2**63), 2**63 - 1, 0, 0], np.int64)),
            ("a/s", np.array(["x", "日本", "x", ""], dtype=object)),
            ("a/v", np.array([[1, 10], [2, 20], [3, 30], [4, 40]], np.uint16)),
            ("a/c", np.array([3 + 4j, 0, 0, 0], np.complex64)),
            ("a/b", np.array([True, False, True, True])),
        ]
    )
    stats = {s["field"]: s for s in d.stats()}
    assert list(stats) == d.fields()
    assert stats["uid"]["min"] == 3 and stats["uid"]["max"] == 2**64 - 1  # exact, not via float64
    f = stats["a/f"]
    assert (f["min"], f["max"], f["nan"]) == (1.0, 5.0, 1)
    assert f["mean"] == pytest.approx(3.0) and f["std"] == pytest.approx(np.std([1.0, 3.0, 5.0]))
    assert stats["a/i"]["min"] == -(2**63) and stats["a/i"]["max"] == 2**63 - 1
    assert stats["a/i"]["distinct"] == 3
    assert stats["a/s"]["distinct"] == 3 and stats["a/s"]["example"] == "x"
    assert stats["a/s"]["dtype"] == "O" and stats["a/v"]["dtype"] == "2u2"
    v = stats["a/v"]
    assert np.reshape(v["min"], -1).tolist() == [1, 10] and np.reshape(v["max"], -1).tolist() == [4, 40]
    assert np.reshape(v["mean"], -1).tolist() == pytest.approx([2.5, 25.0])
    assert stats["a/c"]["max"] == pytest.approx(5.0)  # complex: magnitudes
    assert stats["a/b"]["mean"] == pytest.approx(0.75)


def test_stats_empty_and_loaded_strings(tmp_path):
    empty = Dataset(sample_data(0))
    assert [s["field"] for s in empty.stats()] == empty.fields()
    d = Dataset(sample_data(20, seed=4))
    d.save(tmp_path / "d.cs")
    loaded = Dataset.load(tmp_path / "d.cs")  # strings still bytes
    assert {s["field"]: s.get("distinct") for s in loaded.stats()}["blob/path"] == len(set(d["blob/path"]))


# ---------------------------------------------------------------------------- strings held as bytes
@pytest.mark.parametrize("fmt", FORMATS)
def test_loaded_bytes_strings_mutated_then_saved(tmp_path, fmt):
    d = Dataset(sample_data(6, seed=6))
    d.save(tmp_path / "src.cs")
    loaded = Dataset.load(tmp_path / "src.cs")
    loaded["blob/path"][2] = "x"
    loaded["blob/path"][3] = "a much longer value than any before: 日本語テキスト" * 2
    loaded.rows()[4]["ctf/type"] = "héllo"
    save_ours(loaded, tmp_path / "out.cs", fmt)
    expected = d.copy()
    expected["blob/path"][2] = "x"
    expected["blob/path"][3] = "a much longer value than any before: 日本語テキスト" * 2
    expected["ctf/type"][4] = "héllo"
    assert_same(Dataset.load(tmp_path / "out.cs"), expected)
    assert_same(CSDataset.load(tmp_path / "out.cs"), expected)


def test_loaded_bytes_strings_descr_and_equality(tmp_path):
    d = Dataset(sample_data(5, seed=7))
    d.save(tmp_path / "d.cs")
    loaded = Dataset.load(tmp_path / "d.cs")
    assert loaded.descr() == d.descr()
    assert loaded == d and d == loaded and loaded.is_equivalent(d)
    cstrs = Dataset.load(tmp_path / "d.cs", cstrs=True)
    assert cstrs.descr() == d.descr() and cstrs == d
    assert d.copy().to_cstrs() == d
    assert isinstance(loaded["blob/path"][0], str)


def test_whole_column_assignment_on_bytes_storage(tmp_path):
    d = Dataset(sample_data(4, seed=8))
    d.save(tmp_path / "d.cs")
    loaded = Dataset.load(tmp_path / "d.cs")
    loaded["ctf/type"] = "日本"
    loaded.save(tmp_path / "d2.cs", format=CSDAT_FORMAT)
    assert Dataset.load(tmp_path / "d2.cs")["ctf/type"].tolist() == ["日本"] * 4


# ---------------------------------------------------------------------------- filtered loading
def _csdat_with_corrupt_column(d: Dataset, bad_field: str, compression: str | None) -> bytes:
    """A CSDAT stream of ``d`` whose column block for ``bad_field`` is garbage (same size)."""
    raw = bytearray(ours_bytes(d, "csdat-lz4" if compression else "csdat-raw"))
    head_len = int.from_bytes(raw[6:10], "little")
    pos = 10 + head_len
    for f in d.fields():
        size = int.from_bytes(raw[pos : pos + 4], "little")
        if f == bad_field:
            raw[pos + 4 : pos + 4 + size] = b"\xff" * size
        pos += 4 + size
    return bytes(raw)


@pytest.mark.parametrize("compression", [None, "lz4"])
@pytest.mark.parametrize("source", ["path", "bytesio", "iterator"])
def test_csdat_filtered_load_does_not_read_other_columns(tmp_path, compression, source):
    d = Dataset(sample_data(30, seed=9))
    raw = _csdat_with_corrupt_column(d, "blob/path", compression)  # offsets/LZ4 would be invalid
    path = tmp_path / "d.cs"
    path.write_bytes(raw)

    def load(**kw):
        if source == "path":
            return Dataset.load(path, **kw)
        if source == "bytesio":
            return Dataset.load(io.BytesIO(raw), **kw)
        return Dataset.load(NonSeekable(raw), **kw)

    got = load(prefixes=["num", "ctf"])
    assert_same(got, d.filter_prefixes(["num", "ctf"], copy=True))
    with pytest.raises(Exception):  # noqa: B017 - the corrupt column itself is unreadable
        load(fields=["blob/path"])


def test_numpy_filtered_load_skips_unrequested_strings(tmp_path):
    # An invalid UTF-8 value in a field not asked for does not matter.
    d = Dataset(sample_data(5, seed=10))
    d.save(tmp_path / "d.cs")
    arr = np.load(tmp_path / "d.cs")
    arr["blob/path"][1] = b"\xff\xfe"
    with open(tmp_path / "bad.cs", "wb") as f:
        np.save(f, arr)
    got = Dataset.load(tmp_path / "bad.cs", fields=["ctf/type", "num/f8"])
    assert got.fields() == ["uid", "num/f8", "ctf/type"]
    assert_same(got, d.filter_fields(["ctf/type", "num/f8"], copy=True))


@pytest.mark.parametrize("fmt", FORMATS)
def test_filtered_load_keeps_file_order_and_uid(tmp_path, fmt):
    d = Dataset(sample_data(4, seed=11))
    save_ours(d, tmp_path / "d.cs", fmt)
    got = Dataset.load(tmp_path / "d.cs", fields=["mesh/cube", "num/i1"], prefixes=["blob"])
    assert got.fields() == ["uid", "num/i1", "blob/path", "mesh/cube"]
    assert_same(got, d.filter_fields(["mesh/cube", "num/i1", "blob/path"], copy=True))


# ---------------------------------------------------------------------------- streams
class NonSeekable:
    """A binary file that can only be read forward (a pipe, a socket, an HTTP body)."""

    def __init__(self, raw: bytes):
        self._raw, self._pos = raw, 0

    def read(self, n: int = -1) -> bytes:
        out = self._raw[self._pos :] if n is None or n < 0 else self._raw[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_load_from_iterator(fmt, chunk):
    d = Dataset(sample_data(12, seed=12))
    raw = ours_bytes(d, fmt)
    chunks = iter([raw[i : i + chunk] for i in range(0, len(raw), chunk)])
    assert_same(Dataset.from_iterator(chunks), d)


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_from_bytesio_and_nonseekable(fmt):
    d = Dataset(sample_data(12, seed=13))
    raw = ours_bytes(d, fmt)
    assert_same(Dataset.load(io.BytesIO(raw)), d)
    assert_same(Dataset.load(NonSeekable(raw)), d)
    buf = io.BytesIO(b"junk-before" + raw)
    buf.seek(len(b"junk-before"))
    assert_same(Dataset.load(buf), d)


def test_save_into_bytesio_at_offset():
    d = Dataset(sample_data(6, seed=14))
    for fmt in FORMATS:
        buf = io.BytesIO()
        buf.write(b"prefix")
        save_ours(d, buf, fmt)
        buf.seek(6)
        assert_same(Dataset.load(buf), d)


# ---------------------------------------------------------------------------- atomic saves
@pytest.mark.parametrize("fmt", FORMATS)
def test_save_to_missing_directory(tmp_path, fmt):
    d = Dataset(sample_data(3))
    target = tmp_path / "missing" / "d.cs"
    with pytest.raises(DatasetSaveError) as err:
        save_ours(d, target, fmt)
    assert "missing" in str(err.value)
    assert not (tmp_path / "missing").exists()
    assert list(tmp_path.iterdir()) == []


def test_save_onto_a_directory(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(DatasetSaveError):
        Dataset(sample_data(2)).save(tmp_path / "adir")
    assert (tmp_path / "adir").is_dir() and list(tmp_path.iterdir()) == [tmp_path / "adir"]


def test_failed_csdat_save_keeps_old_file(tmp_path):
    path = tmp_path / "d.cs"
    good = Dataset(sample_data(4, seed=15))
    good.save(path)
    before = path.read_bytes()
    bad = Dataset(
        [("uid", np.arange(2, dtype=np.uint64)), ("s/x", np.array(["ok", "nul\0inside"], dtype=object))]
    )
    with pytest.raises(DatasetSaveError):
        bad.save(path, format=CSDAT_FORMAT)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["d.cs"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_unencodable_string_is_a_save_error_and_keeps_old_file(tmp_path, fmt):
    # A lone surrogate (what os.fsdecode makes of a non-UTF-8 file name) cannot be written as UTF-8.
    path = tmp_path / "d.cs"
    Dataset(sample_data(2)).save(path)
    before = path.read_bytes()
    bad = Dataset(
        [("uid", np.arange(2, dtype=np.uint64)), ("s/x", np.array(["ok", "caf\udce9.mrc"], dtype=object))]
    )
    with pytest.raises(DatasetSaveError):
        save_ours(bad, path, fmt)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["d.cs"]


def test_bad_format_and_compression_are_save_errors(tmp_path):
    d = Dataset(sample_data(2))
    with pytest.raises(DatasetSaveError):
        d.save(tmp_path / "a.cs", format=7)
    with pytest.raises(DatasetSaveError):
        d.save(tmp_path / "b.cs", format=CSDAT_FORMAT, compression="snappy")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_successful_save_replaces_and_leaves_no_temp_files(tmp_path, fmt):
    path = tmp_path / "d.cs"
    path.write_bytes(b"old contents")
    d = Dataset(sample_data(5, seed=16))
    save_ours(d, path, fmt)
    assert os.listdir(tmp_path) == ["d.cs"]
    assert_same(Dataset.load(path), d)
    save_ours(d, str(path), fmt)
    assert_same(Dataset.load(path), d)


# ---------------------------------------------------------------------------- unusual field names
@pytest.mark.parametrize("fmt", FORMATS)
def test_field_name_with_colon(tmp_path, fmt):
    # numpy and cryosparc-tools handle ':' in a field name; so must both cryoweave writers/readers.
    d = Dataset(
        [
            ("uid", np.arange(3, dtype=np.uint64)),
            ("a:b/c", np.arange(3.0)),
            ("s:t", np.array(["x", "", "é"], dtype=object)),
        ]
    )
    save_ours(d, tmp_path / "d.cs", fmt)
    assert_same(Dataset.load(tmp_path / "d.cs"), d)
    assert_same(CSDataset.load(tmp_path / "d.cs"), d)


def test_numpy_file_with_colon_field_written_by_numpy(tmp_path):
    records = np.zeros(2, dtype=[("uid", "<u8"), ("a:b", "<f4"), ("s", "S3")])
    records["uid"], records["a:b"], records["s"] = [1, 2], [0.5, 1.5], [b"ab", b"c"]
    with open(tmp_path / "d.cs", "wb") as f:
        np.save(f, records)
    d = Dataset.load(tmp_path / "d.cs")
    assert d["a:b"].tolist() == [0.5, 1.5] and d["s"].tolist() == ["ab", "c"]


# ---------------------------------------------------------------------------- shaped string fields
def test_allocate_shaped_string_field_keeps_its_shape():
    # cryosparc-tools: allocate(2, [("s", "O", (2,))]).descr() ends with ("s", "|O", (2,)).
    expected = CSDataset.allocate(2, [("s", "O", (2,))]).descr()[1:]
    d = Dataset.allocate(2, [("s", "O", (2,))])
    assert d.descr()[1:] == expected
    assert d["s"].shape == (2, 2) and d["s"].tolist() == [["", ""], ["", ""]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_shaped_string_field_saves_or_refuses_cleanly(tmp_path, fmt):
    d = Dataset(
        [("uid", np.arange(2, dtype=np.uint64)), ("s", np.array([["a", "b"], ["c", ""]], dtype=object))]
    )
    assert d.descr()[1] == ("s", "|O", (2,))
    try:
        save_ours(d, tmp_path / "d.cs", fmt)
    except DatasetSaveError:
        assert not (tmp_path / "d.cs").exists()
        return
    assert_same(Dataset.load(tmp_path / "d.cs"), d)
