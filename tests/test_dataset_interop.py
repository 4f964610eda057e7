"""Files written by cryoweave load in cryosparc-tools and vice versa, in every ``.cs`` variant.

Formats: numpy ``.npy`` record arrays, CSDAT with LZ4 blocks, and uncompressed CSDAT (what
cryosparc-tools' ``stream()`` and the CryoSPARC v5 upload API produce).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from cryoweave.spec.examples import particle_dataset
from dataset_helpers import (
    FORMATS,
    CSDataset,
    Dataset,
    assert_same,
    pair,
    sample_data,
    save_ours,
    save_theirs,
)

# numpy.save (cryosparc-tools' numpy writer) warns whenever it needs the 2.0 header of a big file.
pytestmark = pytest.mark.filterwarnings("ignore:Stored array in format 2.0:UserWarning")

LONG_NAME = "alignments_class_with_a_rather_long_slot_name_0/class_posterior_normalised"
assert len(LONG_NAME) > 52

ALIGNMENT_FIELDS = [
    ("split", "u4"),
    ("shift", "f4", (2,)),
    ("pose", "f4", (3,)),
    ("psize_A", "f4"),
    ("error", "f4"),
    ("error_min", "f4"),
    ("resid_pow", "f4"),
    ("slice_pow", "f4"),
    ("image_pow", "f4"),
    ("cross_cor", "f4"),
    ("alpha", "f4"),
    ("alpha_min", "f4"),
    ("weight", "f4"),
    ("pose_ess", "f4"),
    ("shift_ess", "f4"),
    ("class_posterior", "f4"),
    ("class", "u4"),
    ("class_ess", "f4"),
]


def strings_data(n: int = 6) -> list[tuple[str, np.ndarray]]:
    pool = ["héllo", "日本", "", "plain", "ünï ✓ 😀", "J1/a/b/c.mrc"]
    return [
        ("uid", np.arange(100, 100 + n, dtype=np.uint64)),
        ("s/one", np.array([pool[i % len(pool)] for i in range(n)], dtype=object)),
        ("s/empty", np.array([""] * n, dtype=object)),
        ("s/ascii", np.array([f"row{i}" * (i + 1) for i in range(n)], dtype=object)),
        ("s/shared", np.array(["日本"] * n, dtype=object)),  # same value as in s/one: one heap entry
    ]


def long_name_data(n: int = 4, string: bool = False) -> list[tuple[str, np.ndarray]]:
    # The long name comes last: in cryosparc-tools 5.0.3 a field name of 52 or more characters
    # followed by any other field cannot be set ("Cannot set non-existing dataset key"), a bug there.
    long_values = (
        np.array(["é" * i for i in range(n)], dtype=object)
        if string
        else np.linspace(0, 1, n).astype(np.float32)
    )
    return [
        ("uid", np.arange(1, n + 1, dtype=np.uint64)),
        ("short/s", np.array(["日本", "", "x", "y"][:n] + ["z"] * max(0, n - 4), dtype=object)),
        ("short/x", np.arange(n, dtype=np.int8)),
        (LONG_NAME, long_values),
    ]


def big_header_data(n: int = 3, prefixes: int = 120) -> list[tuple[str, np.ndarray]]:
    """120 alignments_class_N slots of 18 fields each: a numpy header of ~100 kB (format 2.0)."""
    rng = np.random.default_rng(5)
    data = [
        ("uid", rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)),
        ("blob/path", np.array([f"J9/p{i}.mrc" for i in range(n)], dtype=object)),
    ]
    for k in range(prefixes):
        for field in ALIGNMENT_FIELDS:
            shape = field[2] if len(field) == 3 else ()
            data.append(
                (f"alignments_class_{k}/{field[0]}", (rng.normal(size=(n, *shape)) * 100).astype(field[1]))
            )
    return data


DATASETS = {
    "sample-0": lambda: sample_data(0, seed=1),
    "sample-1": lambda: sample_data(1, seed=2),
    "sample-9": lambda: sample_data(9, seed=3),
    "strings": strings_data,
    "strings-0-rows": lambda: strings_data(0),
    "long-name": long_name_data,
    "long-name-string": lambda: long_name_data(5, string=True),
    "big-header": big_header_data,
    "big-header-0-rows": lambda: big_header_data(0, 40),
    "uid-only": lambda: [("uid", np.array([2**64 - 1, 0, 2**63], dtype=np.uint64))],
    "particles": lambda: list(particle_dataset(300, micrographs=7, seed=4).cols().items()),
}


@pytest.fixture(params=list(DATASETS), scope="module")
def dataset_pair(request):
    return request.param, pair(DATASETS[request.param]())


@pytest.mark.parametrize("fmt", FORMATS)
def test_cryoweave_file_loads_in_cryosparc_tools(tmp_path, dataset_pair, fmt):
    _, (ours, theirs) = dataset_pair
    path = tmp_path / "ours.cs"
    save_ours(ours, path, fmt)
    assert_same(CSDataset.load(path), theirs)
    assert_same(CSDataset.load(str(path)), ours)
    with open(path, "rb") as f:  # their file-handle path (no mmap, no seeking for CSDAT)
        assert_same(CSDataset.load(f), theirs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cryosparc_tools_file_loads_in_cryoweave(tmp_path, dataset_pair, fmt):
    _, (ours, theirs) = dataset_pair
    path = tmp_path / "theirs.cs"
    save_theirs(theirs, path, fmt)
    loaded = Dataset.load(path)
    assert_same(loaded, theirs)
    assert loaded == ours
    assert_same(Dataset.load(str(path)), ours)
    assert_same(Dataset.load(io.BytesIO(path.read_bytes())), theirs)
    with open(path, "rb") as f:
        assert_same(Dataset.load(f), theirs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_the_other_implementation(tmp_path, dataset_pair, fmt):
    # ours -> file -> theirs -> file -> ours: nothing changes on the way.
    _, (ours, _theirs) = dataset_pair
    save_ours(ours, tmp_path / "a.cs", fmt)
    save_theirs(CSDataset.load(tmp_path / "a.cs"), tmp_path / "b.cs", fmt)
    assert Dataset.load(tmp_path / "b.cs") == ours


@pytest.mark.parametrize("writer", ["ours", "theirs"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("prefixes", "fields"),
    [
        (["num"], None),
        (None, ["blob/path", "mesh/cube", "num/u8"]),
        (["ctf", "alignments3D"], ["num/f4"]),
        ([], None),
        (None, []),
        (["nope"], ["also/not/here"]),
        (["uid"], ["uid"]),
        (["num/f4"], None),  # a field name is not a prefix
    ],
)
def test_load_filters_match(tmp_path, writer, fmt, prefixes, fields):
    ours, theirs = pair(sample_data(6, seed=31))
    path = tmp_path / "d.cs"
    save_ours(ours, path, fmt) if writer == "ours" else save_theirs(theirs, path, fmt)
    got = Dataset.load(path, prefixes=prefixes, fields=fields)
    expected = CSDataset.load(path, prefixes=prefixes, fields=fields)
    assert_same(got, expected)
    with open(path, "rb") as f:
        assert_same(Dataset.load(f, prefixes=prefixes, fields=fields), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_filters_on_big_header(tmp_path, fmt):
    _, theirs = pair(big_header_data())
    path = tmp_path / "d.cs"
    save_theirs(theirs, path, fmt)
    sel = {"prefixes": ["alignments_class_7", "alignments_class_119"], "fields": ["blob/path"]}
    got = Dataset.load(path, **sel)
    assert_same(got, CSDataset.load(path, **sel))
    assert len(got.fields()) == 2 + 2 * len(ALIGNMENT_FIELDS)


@pytest.mark.parametrize("writer", ["ours", "theirs"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_matches(tmp_path, dataset_pair, writer, fmt):
    name, (ours, theirs) = dataset_pair
    path = tmp_path / "d.cs"
    save_ours(ours, path, fmt) if writer == "ours" else save_theirs(theirs, path, fmt)
    got = Dataset.inspect(path)
    assert got["length"] == len(ours)
    assert [tuple(f) for f in got["dtype"]] == ours.descr()
    if fmt == "numpy" and name.startswith("big-header"):
        # cryosparc-tools 5.0.3's inspect() calls np.load without max_header_size, so it cannot
        # read a numpy header over 10,000 characters (its load() can): a bug there. Compare with
        # what its load() sees instead.
        full = CSDataset.load(path)
        expected = {"length": len(full), "dtype": full.descr(), "compression": None, "compressed_fields": []}
    else:
        expected = CSDataset.inspect(path)
    for key in ("length", "compression", "compressed_fields"):
        assert got[key] == expected[key], key
    assert [tuple(f) for f in got["dtype"]] == [tuple(f) for f in expected["dtype"]]
    assert Dataset.inspect(str(path))["length"] == len(ours)


@pytest.mark.parametrize("fmt", ["csdat-lz4", "csdat-raw"])
def test_inspect_compression(tmp_path, fmt):
    ours = Dataset(sample_data(3))
    save_ours(ours, tmp_path / "d.cs", fmt)
    head = Dataset.inspect(tmp_path / "d.cs")
    if fmt == "csdat-lz4":
        assert head["compression"] == "lz4"
        assert head["compressed_fields"] == ours.fields(exclude_uid=True)
    else:
        assert head["compression"] is None and head["compressed_fields"] == []


def test_numpy_files_have_the_same_dtype(tmp_path, dataset_pair):
    _, (ours, theirs) = dataset_pair
    save_ours(ours, tmp_path / "ours.cs", "numpy")
    save_theirs(theirs, tmp_path / "theirs.cs", "numpy")
    a = np.load(tmp_path / "ours.cs", allow_pickle=False, max_header_size=1 << 30)
    b = np.load(tmp_path / "theirs.cs", allow_pickle=False, max_header_size=1 << 30)
    assert a.dtype == b.dtype
    assert a.dtype.descr == b.dtype.descr
    assert a.shape == b.shape == (len(ours),)
    for name in a.dtype.names:
        sub = a.dtype[name]
        if sub.kind == "S":
            longest = max((len(v.encode()) for v in ours[name].tolist()), default=0)
            assert sub.itemsize == longest + 1, name
        np.testing.assert_array_equal(a[name], b[name])


def test_numpy_files_are_byte_identical(tmp_path, dataset_pair):
    # cryoweave's string conversion (strings.to_fixed) promises byte-identical numpy files.
    _, (ours, theirs) = dataset_pair
    save_ours(ours, tmp_path / "ours.cs", "numpy")
    save_theirs(theirs, tmp_path / "theirs.cs", "numpy")
    a, b = (tmp_path / "ours.cs").read_bytes(), (tmp_path / "theirs.cs").read_bytes()
    assert len(a) == len(b)
    assert a == b


def test_numpy_string_width_example(tmp_path):
    ours = Dataset([("uid", np.array([1, 2], np.uint64)), ("s/x", np.array(["héllo", "日本"], dtype=object))])
    ours.save(tmp_path / "d.cs")
    assert np.load(tmp_path / "d.cs")["s/x"].dtype == np.dtype("S7")
    assert CSDataset.load(tmp_path / "d.cs")["s/x"].tolist() == ["héllo", "日本"]


def test_big_numpy_header_uses_format_2(tmp_path):
    ours, theirs = pair(big_header_data())
    ours.save(tmp_path / "d.cs")
    raw = (tmp_path / "d.cs").read_bytes()
    assert raw[:8] == b"\x93NUMPY\x02\x00"
    header_len = int.from_bytes(raw[8:12], "little")
    assert header_len > 65535 and (12 + header_len) % 64 == 0
    assert_same(CSDataset.load(tmp_path / "d.cs"), theirs)


def test_csdat_stream_from_bytesio(tmp_path):
    ours, theirs = pair(strings_data())
    for compression in (None, "lz4"):
        buf = io.BytesIO(b"".join(theirs.stream(compression=compression)))
        assert_same(Dataset.load(buf), theirs)
        raw = b"".join(bytes(c) for c in ours.stream(compression=compression))
        assert_same(CSDataset.load(io.BytesIO(raw)), theirs)


def test_cryoweave_bytesio_save_loads_in_cryosparc_tools():
    ours, theirs = pair(sample_data(5, seed=40))
    for fmt in FORMATS:
        buf = io.BytesIO()
        save_ours(ours, buf, fmt)
        buf.seek(0)
        assert_same(CSDataset.load(buf), theirs)


def test_strings_in_the_heap_are_deduplicated(tmp_path):
    ours, theirs = pair(strings_data(60))
    raw = b"".join(bytes(c) for c in ours.stream())
    assert raw.count("日本".encode()) == 1
    assert raw.count("héllo".encode()) == 1
    assert_same(CSDataset.load(io.BytesIO(raw)), theirs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_several_long_field_names(tmp_path, fmt):
    # Beyond what cryosparc-tools can hold in memory (see long_name_data): cryoweave keeps them
    # all, in any position, and the numpy variant is still a plain .npy file.
    names = [f"{LONG_NAME}_{i}" for i in range(3)]
    ours = Dataset(
        [("uid", np.arange(3, dtype=np.uint64))]
        + [
            (nm, np.array([f"v{i}", "", "日本"], dtype=object) if i % 2 else np.arange(3) * i)
            for i, nm in enumerate(names)
        ]
    )
    save_ours(ours, tmp_path / "d.cs", fmt)
    back = Dataset.load(tmp_path / "d.cs")
    assert back == ours and back.fields() == ["uid", *names]
    if fmt == "numpy":
        assert np.load(tmp_path / "d.cs").dtype.names == ("uid", *names)


# ---------------------------------------------------------------------------- after operations
def _loaded_pair(tmp_path):
    """Both implementations load the same numpy file; row 1 holds the longest strings."""
    data = [
        ("uid", np.array([10, 11, 12, 13], dtype=np.uint64)),
        ("a/s", np.array(["ab", "a much longer value, 日本", "", "c"], dtype=object)),
        ("a/t", np.array(["x", "yyyyyyyyyyyyyyyyyyyy", "z", "z"], dtype=object)),
        ("a/f", np.arange(4, dtype=np.float32)),
    ]
    Dataset(data).save(tmp_path / "src.cs")
    return Dataset.load(tmp_path / "src.cs"), CSDataset.load(tmp_path / "src.cs")


OPERATIONS = {
    "take": lambda cls, d: d.take([0, 2, 3]),
    "mask": lambda cls, d: d.mask(np.array([True, False, True, True])),
    "slice": lambda cls, d: d.slice(2),
    "query": lambda cls, d: d.query({"a/t": ["x", "z"]}),
    "split_by": lambda cls, d: d.split_by("a/t")["z"],
    "innerjoin": lambda cls, d: d.innerjoin(cls([("uid", np.array([13, 10], dtype=np.uint64))])),
    "append": lambda cls, d: d.take([0]).append(d.take([3])),
    "union": lambda cls, d: d.take([3]).union(d.take([2, 3])),
    "interlace": lambda cls, d: d.take([0]).interlace(d.take([2])),
    "replace": lambda cls, d: d.replace({"uid": [11]}),
    "filter_fields": lambda cls, d: d.take([0, 2]).filter_fields(["a/s"], copy=True),
}


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_numpy_output_after_operations_on_loaded_data(tmp_path, op):
    # String widths follow the remaining values (longest + 1), so both still write the same file.
    ours, theirs = _loaded_pair(tmp_path)
    r_ours, r_theirs = OPERATIONS[op](Dataset, ours), OPERATIONS[op](CSDataset, theirs)
    # Save before comparing values: reading a column decodes cryoweave's bytes storage.
    r_ours.save(tmp_path / "ours.cs")
    r_theirs.save(str(tmp_path / "theirs.cs"))
    records_dtype = r_ours.to_records(fixed=True).dtype
    assert np.load(tmp_path / "ours.cs").dtype == np.load(tmp_path / "theirs.cs").dtype
    assert records_dtype == r_theirs.to_records(fixed=True).dtype
    assert (tmp_path / "ours.cs").read_bytes() == (tmp_path / "theirs.cs").read_bytes()
    assert_same(r_ours, r_theirs)
