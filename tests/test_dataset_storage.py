"""How string columns are stored (codes, bytes, str) and the large-file paths of the readers.

Users only ever see `str`; these tests check that every storage gives the same answers, that
multi-chunk threaded loads equal single-threaded ones, and that run detection is exact.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoweave import CSDAT_FORMAT, Dataset, DatasetLoadError
from cryoweave.dataset import numpy_format, parallel
from cryoweave.dataset.strings import StringCodes, factorize, run_starts
from cryoweave.spec.examples import particle_dataset

ROWS = 30_000  # several 4 MiB chunks of 464-byte records: the threaded reader is used


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("storage")
    grouped = particle_dataset(ROWS, micrographs=40, seed=11)
    grouped["location/micrograph_path"][7] = "J3/motioncorrected/café_日本.mrc"  # non-ASCII in a run
    grouped.save(folder / "grouped.cs")
    shuffled = grouped.take(np.random.default_rng(2).permutation(ROWS))
    shuffled.save(folder / "shuffled.cs")
    grouped.save(folder / "grouped_lz4.cs", format=CSDAT_FORMAT)
    return folder, grouped, shuffled


def test_grouped_text_loads_as_codes_and_equals_source(files):
    folder, grouped, _ = files
    loaded = Dataset.load(folder / "grouped.cs")
    for field in ("blob/path", "location/micrograph_path", "ctf/type"):
        assert isinstance(loaded._cols[field], StringCodes), field
    assert len(loaded._cols["blob/path"].uniques) == 40
    assert loaded == grouped
    assert loaded["location/micrograph_path"][7] == "J3/motioncorrected/café_日本.mrc"
    table_bytes = sum(a.nbytes for a in loaded._cols.values())
    assert table_bytes < 0.5 * grouped.to_records(fixed=True).nbytes  # codes, not 130-byte paths


def test_shuffled_high_run_text_stays_bytes_and_is_equal(files):
    folder, _, shuffled = files
    loaded = Dataset.load(folder / "shuffled.cs")
    assert loaded._cols["blob/path"].dtype.kind == "S"
    assert isinstance(loaded._cols["ctf/type"], StringCodes)  # one value: a single run
    assert loaded == shuffled


def test_threaded_and_single_threaded_loads_agree(files, monkeypatch):
    folder, grouped, _ = files
    threaded = Dataset.load(folder / "grouped.cs")
    monkeypatch.setenv("CRYOWEAVE_THREADS", "1")
    monkeypatch.setattr(parallel, "_pool", None)
    single = Dataset.load(folder / "grouped.cs")
    from_stream = Dataset.load(io.BytesIO((folder / "grouped.cs").read_bytes()))  # sequential reader
    assert threaded == single == from_stream == grouped


@pytest.mark.parametrize("name", ["grouped.cs", "shuffled.cs", "grouped_lz4.cs"])
def test_loaded_storage_round_trips_byte_identically(files, tmp_path, name):
    """Whatever the storage, saving gives the same numpy bytes as saving the original data."""
    folder, grouped, shuffled = files
    source = shuffled if name == "shuffled.cs" else grouped
    Dataset.load(folder / name).save(tmp_path / "again.cs")
    source.save(tmp_path / "original.cs")
    assert (tmp_path / "again.cs").read_bytes() == (tmp_path / "original.cs").read_bytes()


def test_operations_on_codes_match_operations_on_str(files):
    folder, grouped, _ = files
    coded = Dataset.load(folder / "grouped_lz4.cs")
    plain = grouped.copy().to_pystrs()
    path = grouped["blob/path"][123]
    assert coded.query({"blob/path": path}) == plain.query({"blob/path": path})
    assert coded.query({"blob/path": [path, "no such path"]})["uid"].tolist() == \
        plain.query({"blob/path": [path]})["uid"].tolist()
    assert coded.sort(["location/micrograph_path", "blob/idx"]) == plain.sort(["location/micrograph_path",
                                                                              "blob/idx"])
    groups, expected = coded.split_by("blob/path"), plain.split_by("blob/path")
    assert list(groups) == list(expected)
    assert all(groups[k] == expected[k] for k in expected)
    half = coded.mask(coded["alignments3D/split"] == 0)
    assert half.append(coded.mask(coded["alignments3D/split"] == 1)).sort("uid") == plain.sort("uid")
    assert pickle.loads(pickle.dumps(coded)) == plain


def test_append_merges_different_tables():
    a = Dataset({"uid": [1, 2, 3], "p": ["x", "y", "x"]}).to_cstrs()
    b = Dataset({"uid": [4, 5], "p": ["z", "x"]}).to_cstrs()
    c = Dataset({"uid": [6], "p": ["y"]})  # str objects
    joined = a.append(b, c)
    assert isinstance(joined._cols["p"], StringCodes)
    assert joined["p"].tolist() == ["x", "y", "x", "z", "x", "y"]


def test_invalid_utf8_in_coded_text_names_file_field_and_row(tmp_path):
    records = np.zeros(20_000, dtype=[("uid", "<u8"), ("blob/path", "S12")])
    records["uid"] = np.arange(20_000)
    records["blob/path"] = b"J1/a.mrc"
    records["blob/path"][15_000:] = b"J1/\xff\xfe.mrc"
    with open(tmp_path / "bad_file.cs", "wb") as f:
        np.save(f, records)
    with pytest.raises(DatasetLoadError, match=r"bad_file.cs.*'blob/path' row 15000 .*not valid UTF-8"):
        Dataset.load(tmp_path / "bad_file.cs")


def test_worth_coding_decision():
    few = np.array([b"a" * 40] * 500 + [b"b" * 40] * 500, dtype="S40")
    many = np.array([b"%040d" % i for i in range(1000)], dtype="S40")
    assert numpy_format._worth_coding(few)
    assert not numpy_format._worth_coding(many)
    assert not numpy_format._worth_coding(np.zeros((10, 2), dtype="S4"))  # shaped text stays bytes


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 40), rows=st.lists(st.integers(0, 3), min_size=0, max_size=300),
       alphabet=st.lists(st.binary(min_size=0, max_size=40), min_size=4, max_size=4))
def test_run_detection_never_misses_a_change(width, rows, alphabet):
    values = np.array([alphabet[r][:width] for r in rows], dtype=f"S{width}")
    starts = run_starts(values, most=1.0)
    assert starts is not None
    truth = np.flatnonzero(values[1:] != values[:-1]) + 1
    assert set(truth.tolist()) <= set(starts.tolist())  # extra boundaries are allowed, misses are not
    if len(values):
        uniques, codes = factorize(values)
        assert np.array_equal(uniques[codes], values)


def test_csdat_without_native_lz4_entry_point(files, monkeypatch):
    """Where python-lz4 does not export LZ4_decompress_safe, its Python API is used instead."""
    from cryoweave.dataset import csdat

    folder, grouped, _ = files
    native = Dataset.load(folder / "grouped_lz4.cs")
    monkeypatch.setattr(csdat, "_native_lz4", lambda: None)
    fallback = Dataset.load(folder / "grouped_lz4.cs")
    assert native == fallback == grouped
    # Break the structure of the first compressed block (the one after uid): its token bytes.
    raw = bytearray((folder / "grouped_lz4.cs").read_bytes())
    header_end = 10 + int.from_bytes(raw[6:10], "little")
    uid_size = int.from_bytes(raw[header_end:header_end + 4], "little")
    block = header_end + 4 + uid_size + 4
    raw[block:block + 16] = b"\xff" * 16
    for patched in (None, lambda: None):
        if patched is not None:
            monkeypatch.setattr(csdat, "_native_lz4", patched)
        else:
            monkeypatch.undo()
        with pytest.raises(DatasetLoadError, match=r"column 'blob/path' is not a valid LZ4 block"):
            Dataset.load(io.BytesIO(bytes(raw)))


def test_printing_and_converting_leave_text_compact(files):
    folder, grouped, _ = files
    loaded = Dataset.load(folder / "grouped.cs")
    text = repr(loaded)
    html = loaded._repr_html_()
    assert grouped["blob/path"][0] in text and grouped["blob/path"][-1] in html
    records = loaded.to_records()
    assert records["blob/path"][5] == grouped["blob/path"][5]
    assert loaded.slice(0, 3).to_list()[0][1] == grouped["blob/path"][0]
    assert isinstance(loaded._cols["blob/path"], StringCodes)  # still codes after all of that
    assert loaded["blob/path"][0] == grouped["blob/path"][0]
    assert loaded._cols["blob/path"].dtype.kind == "O"  # touched from Python: now str objects
