"""Unreadable ``.cs`` files: each raises ``DatasetLoadError`` naming the file and the problem,
and nothing in a file is ever unpickled."""

from __future__ import annotations

import io
import json
import os
import re

import lz4.block
import numpy as np
import pytest

from cryoweave.errors import DatasetLoadError
from dataset_helpers import Dataset, ours_bytes, sample_data


def _dataset() -> Dataset:
    return Dataset(
        [
            ("uid", np.array([7, 8, 9], dtype=np.uint64)),
            ("a/s", np.array(["x", "日本", ""], dtype=object)),
            ("a/f", np.array([1.0, 2.0, 3.0])),
            ("a/v", np.arange(6, dtype=np.int16).reshape(3, 2)),
        ]
    )


def numpy_bytes() -> bytes:
    return ours_bytes(_dataset(), "numpy")


def csdat(header: dict | bytes, blocks: list[bytes], heap: bytes, *, header_len: int | None = None) -> bytes:
    """A CSDAT stream from its parts (header given as a dict or raw bytes)."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(head) if header_len is None else header_len
    out = b"\x95CSDAT" + (size & 0xFFFFFFFF).to_bytes(4, "little") + head
    for b in blocks:
        out += len(b).to_bytes(4, "little") + b
    return out + heap


def good_csdat_parts(compression: str | None = None):
    """(header, blocks, heap) of a valid stream: uid, one string column, one f8 column."""
    uid = np.array([7, 8, 9], dtype=np.uint64).tobytes()
    offsets = np.array([1, 3, 0], dtype=np.uint64).tobytes()  # "x" at 1, "日本" at 3, "" at 0
    floats = np.array([1.0, 2.0, 3.0]).tobytes()
    heap = b"\0x\0" + "日本".encode() + b"\0"
    header = {
        "length": 3,
        "dtype": [["uid", "<u8"], ["a/s", "|O"], ["a/f", "<f8"]],
        "compression": compression,
        "compressed_fields": ["a/s", "a/f"] if compression else [],
    }
    if compression:
        offsets, floats = (lz4.block.compress(b, store_size=False) for b in (offsets, floats))
    return header, [uid, offsets, floats], heap


def test_the_handmade_streams_are_valid(tmp_path):
    for compression in (None, "lz4"):
        path = tmp_path / f"ok-{compression}.cs"
        path.write_bytes(csdat(*good_csdat_parts(compression)))
        d = Dataset.load(path)
        assert d["a/s"].tolist() == ["x", "日本", ""] and d["a/f"].tolist() == [1.0, 2.0, 3.0]


def _numpy_header_end(raw: bytes) -> int:
    return 10 + int.from_bytes(raw[8:10], "little")


def _numpy_with_header(text: str, data: bytes = b"") -> bytes:
    body = text.encode("latin1")
    pad = 64 - (10 + len(body) + 1) % 64
    body = body + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body + data


def _cases():
    np_raw = numpy_bytes()
    np_header_end = _numpy_header_end(np_raw)
    pad = len(np_raw[:np_header_end]) - len(np_raw[:np_header_end].rstrip(b" \n")) - 1
    num_raw = ours_bytes(Dataset([("uid", np.arange(4, dtype=np.uint64)), ("a/f", np.arange(4.0))]), "numpy")
    assert _numpy_header_end(num_raw) % 64 == 0 and num_raw[_numpy_header_end(num_raw) - 9 :].startswith(
        b" " * 8
    )
    hdr, blocks, heap = good_csdat_parts()
    good = csdat(hdr, blocks, heap)
    lz_hdr, lz_blocks, lz_heap = good_csdat_parts("lz4")
    huge = dict(hdr, length=10**12)
    return {
        # numpy format
        "numpy-cut-in-magic": (np_raw[:4], r"(?i)empty|neither|magic|truncat"),
        "numpy-cut-in-header": (np_raw[:40], r"(?i)truncat"),
        "numpy-cut-in-data": (np_raw[: np_header_end + 30], r"(?i)truncat"),
        "numpy-no-data": (np_raw[:np_header_end], r"(?i)truncat"),
        "numpy-declared-length-too-long": (
            np_raw[:8] + (np_header_end - 10 + 40).to_bytes(2, "little") + np_raw[10:],
            r"(?i)header|truncat",
        ),
        "numpy-declared-length-too-short": (
            np_raw[:8] + (np_header_end - 10 - pad - 8).to_bytes(2, "little") + np_raw[10:],
            r"(?i)header",
        ),
        # Still a parseable dict (only padding cut off), so the records would start 8 bytes early.
        "numpy-declared-length-too-short-in-padding": (
            num_raw[:8] + (_numpy_header_end(num_raw) - 10 - 8).to_bytes(2, "little") + num_raw[10:],
            r"(?i)header|size|length|bytes",
        ),
        "numpy-version-9": (np_raw[:6] + b"\x09\x00" + np_raw[8:], r"(?i)version"),
        "numpy-plain-array": (_npy(np.arange(5, dtype=np.float32)), r"(?i)plain|record|named|structured"),
        "numpy-2d-records": (
            _npy(np.zeros((2, 2), dtype=[("uid", "<u8"), ("a", "<f4")])),
            r"(?i)dimension|shape",
        ),
        "numpy-fortran-key-missing": (
            _numpy_with_header("{'descr': [('uid', '<u8')], 'shape': (0,), }"),
            r"(?i)header|key",
        ),
        "numpy-header-not-a-dict": (_numpy_with_header("[1, 2, 3]"), r"(?i)header"),
        "numpy-header-code": (_numpy_with_header("__import__('os').system('true')"), r"(?i)header"),
        "numpy-bad-descr": (
            _numpy_with_header(
                "{'descr': [('uid', '<u99')], 'fortran_order': False, 'shape': (1,), }", b"\0" * 99
            ),
            r"(?i)dtype|descr",
        ),
        "numpy-unsupported-field-type": (
            _npy(np.zeros(2, dtype=[("uid", "<u8"), ("t", "M8[s]")])),
            r"(?i)t'|type|support",
        ),
        "numpy-huge-length": (
            _numpy_with_header(
                "{'descr': [('uid', '<u8'), ('a', '<f8')], 'fortran_order': False, "
                "'shape': (1000000000000,), }",
                b"\0" * 64,
            ),
            r"(?i)truncat",
        ),
        "numpy-invalid-utf8": (
            _npy(np.array([(1, b"ok"), (2, b"\xff\xfeA")], dtype=[("uid", "<u8"), ("a/s", "S4")])),
            r"(?i)utf-?8",
        ),
        # CSDAT
        "csdat-cut-in-size": (good[:8], r"(?i)truncat"),
        "csdat-cut-in-header": (good[:40], r"(?i)truncat"),
        "csdat-cut-in-column": (good[: len(good) - len(heap) - 12], r"(?i)truncat"),
        "csdat-cut-in-column-size": (csdat(hdr, blocks[:2], b"") + b"\x18\x00", r"(?i)truncat"),
        "csdat-missing-heap": (csdat(hdr, blocks, b""), r"(?i)heap|offset"),
        "csdat-lz4-missing-heap": (csdat(lz_hdr, lz_blocks, b""), r"(?i)heap|offset"),
        "csdat-heap-invalid-utf8": (csdat(hdr, blocks, b"\0x\0\xff\xfe\0"), r"(?i)utf-?8"),
        "csdat-offset-outside-heap": (
            csdat(hdr, [blocks[0], np.array([1, 999, 0], np.uint64).tobytes(), blocks[2]], heap),
            r"(?i)outside|heap|offset",
        ),
        "csdat-unreferenced-heap-tail": (csdat(hdr, blocks, heap + b"tail-without-nul"), None),
        "csdat-heap-without-nul": (
            csdat(hdr, [blocks[0], np.array([1, 1, 1], np.uint64).tobytes(), blocks[2]], b"\0xyz"),
            r"(?i)heap|offset|nul",
        ),
        "csdat-corrupt-lz4": (
            csdat(lz_hdr, [lz_blocks[0], b"\xff" * len(lz_blocks[1]), lz_blocks[2]], lz_heap),
            r"(?i)lz4",
        ),
        "csdat-lz4-wrong-size": (
            csdat(
                lz_hdr,
                [lz_blocks[0], lz_blocks[1], lz4.block.compress(b"\1" * 16, store_size=False)],
                lz_heap,
            ),
            r"(?i)lz4",
        ),
        "csdat-raw-column-wrong-size": (
            csdat(hdr, [blocks[0], blocks[1], blocks[2][:-8]], heap),
            r"(?i)bytes|truncat",
        ),
        "csdat-bad-json": (csdat(b'{"length": 3, "dtype": [', [], b""), r"(?i)json"),
        "csdat-header-not-utf8": (csdat(b'{"length": \xff}', [], b""), r"(?i)json|header"),
        "csdat-header-list": (csdat(b"[1, 2]", [], b""), r"(?i)object|header"),
        "csdat-negative-length": (csdat(dict(hdr, length=-3), blocks, heap), r"(?i)length"),
        "csdat-length-not-int": (csdat(dict(hdr, length="3"), blocks, heap), r"(?i)length"),
        "csdat-length-bool": (csdat(dict(hdr, length=True), blocks, heap), r"(?i)length"),
        "csdat-unknown-compression": (csdat(dict(hdr, compression="snap"), blocks, heap), r"(?i)compression"),
        "csdat-dtype-not-list": (csdat(dict(hdr, dtype="uid"), blocks, heap), r"(?i)dtype|list"),
        "csdat-dtype-entry-bad": (csdat(dict(hdr, dtype=[["uid"]]), blocks, heap), r"(?i)field|dtype"),
        "csdat-unsupported-type": (
            csdat(dict(hdr, dtype=[["uid", "<u8"], ["a/s", "|O"], ["a/f", "<M8"]]), blocks, heap),
            r"(?i)a/f|type|support",
        ),
        "csdat-shape-zero": (
            csdat(dict(hdr, dtype=[["uid", "<u8"], ["a/s", "|O"], ["a/f", "<f8", [0]]]), blocks, heap),
            r"(?i)dimension|shape|a/f",
        ),
        "csdat-duplicate-field": (
            csdat(dict(hdr, dtype=[["uid", "<u8"], ["a/s", "|O"], ["a/s", "|O"]]), blocks, heap),
            r"(?i)twice|duplicate|same field",
        ),
        "csdat-unknown-compressed-field": (
            csdat(dict(hdr, compressed_fields=["zzz"]), blocks, heap),
            r"(?i)compressed_fields",
        ),
        "csdat-huge-length-raw": (csdat(huge, blocks, heap), r"(?i)bytes|truncat|length|rows"),
        "csdat-huge-length-lz4": (
            csdat(dict(lz_hdr, length=10**12), lz_blocks, lz_heap),
            r"(?i)bytes|truncat|length|rows|lz4",
        ),
        "csdat-huge-header-size": (csdat(hdr, blocks, heap, header_len=0xFFFFFFF0), r"(?i)truncat"),
        "csdat-huge-column-size": (
            good[: good.index(blocks[0]) - 4]
            + (0xFFFFFFF0).to_bytes(4, "little")
            + good[good.index(blocks[0]) :],
            r"(?i)truncat|bytes",
        ),
        # neither
        "empty": (b"", r"(?i)empty"),
        "wrong-magic": (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, r"(?i)neither|magic|format"),
        "csdat-v1-magic": (b"\x94CSDAT" + good[6:], r"(?i)v1|4\.[13]"),
        "text-file": (b"uid,a/f\n1,2.0\n", r"(?i)neither|magic|format"),
    }


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


CASES = _cases()
# The one case that is valid on purpose: data after the heap's last NUL is not referenced.
VALID = {"csdat-unreferenced-heap-tail"}


@pytest.mark.parametrize("case", sorted(set(CASES) - VALID))
def test_bad_file_raises_load_error_naming_it(tmp_path, case):
    raw, problem = CASES[case]
    path = tmp_path / f"{case}.cs"
    path.write_bytes(raw)
    with pytest.raises(DatasetLoadError) as err:
        Dataset.load(path)
    message = str(err.value)
    assert str(path) in message
    if problem:
        assert re.search(problem, message), message
    with pytest.raises(DatasetLoadError) as err:
        Dataset.load(str(path))
    assert str(path) in str(err.value)
    with pytest.raises(DatasetLoadError):
        Dataset.load(io.BytesIO(raw))
    with pytest.raises(DatasetLoadError):
        Dataset.load(path, fields=["uid"], prefixes=["a"])


@pytest.mark.parametrize(
    "case",
    sorted(
        c
        for c in CASES
        if "header" in c
        or "magic" in c
        or c
        in {
            "empty",
            "text-file",
            "csdat-bad-json",
            "csdat-negative-length",
            "csdat-unknown-compression",
            "numpy-plain-array",
            "csdat-dtype-entry-bad",
            "csdat-unsupported-type",
        }
    ),
)
def test_bad_header_inspect_raises_load_error(tmp_path, case):
    raw, _ = CASES[case]
    path = tmp_path / f"{case}.cs"
    path.write_bytes(raw)
    with pytest.raises(DatasetLoadError) as err:
        Dataset.inspect(path)
    assert str(path) in str(err.value)


def test_valid_edge_case_loads(tmp_path):
    raw, _ = CASES["csdat-unreferenced-heap-tail"]
    path = tmp_path / "ok.cs"
    path.write_bytes(raw)
    assert Dataset.load(path)["a/s"].tolist() == ["x", "日本", ""]


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "missing.cs"
    for fn in (Dataset.load, Dataset.inspect):
        with pytest.raises(DatasetLoadError) as err:
            fn(path)
        assert str(path) in str(err.value) and re.search(
            r"(?i)no such file|not exist|not found", str(err.value)
        )


def test_directory(tmp_path):
    for fn in (Dataset.load, Dataset.inspect):
        with pytest.raises(DatasetLoadError) as err:
            fn(tmp_path)
        assert str(tmp_path) in str(err.value) and "directory" in str(err.value)


class _Marker:
    """Unpickling this creates a directory: proof that something was unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("shape", ["structured", "plain"])
def test_pickled_objects_are_never_unpickled(tmp_path, shape):
    marker = tmp_path / "UNPICKLED"
    if shape == "structured":
        array = np.empty(2, dtype=[("uid", "<u8"), ("a/obj", "O")])
        array["uid"] = [1, 2]
        array["a/obj"] = [_Marker(str(marker)), "plain string"]
    else:
        array = np.array([_Marker(str(marker)), 3], dtype=object)
    raw = _npy(array, allow_pickle=True)
    assert b"mkdir" in raw
    path = tmp_path / "pickled.cs"
    path.write_bytes(raw)
    for load in (
        lambda: Dataset.load(path),
        lambda: Dataset.load(path, fields=["uid"]),
        lambda: Dataset.inspect(path),
    ):
        with pytest.raises(DatasetLoadError) as err:
            load()
        assert not marker.exists()
        assert str(path) in str(err.value)
        assert re.search(r"(?i)pickl|object|plain|record", str(err.value)), str(err.value)
    with pytest.raises(DatasetLoadError):
        Dataset.load(io.BytesIO(raw))
    assert not marker.exists()
    # the control: numpy itself would unpickle it
    np.load(path, allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("cut", [7, 10, 50, 100, 150, 200, 240, 255])
def test_every_numpy_truncation_is_a_load_error(tmp_path, cut):
    raw = numpy_bytes()
    path = tmp_path / "cut.cs"
    path.write_bytes(raw[:cut])
    with pytest.raises(DatasetLoadError) as err:
        Dataset.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fmt", ["csdat-lz4", "csdat-raw"])
def test_every_csdat_truncation_is_a_load_error(tmp_path, fmt):
    # Cutting a CSDAT stream anywhere is an error: before the heap the sizes do not add up, and
    # any cut in the heap leaves the last string without its NUL.
    raw = ours_bytes(Dataset(sample_data(4, seed=2)), fmt)
    path = tmp_path / "cut.cs"
    for cut in range(0, len(raw) - 1, 7):
        path.write_bytes(raw[:cut])
        with pytest.raises(DatasetLoadError) as err:
            Dataset.load(path)
        assert str(path) in str(err.value)
