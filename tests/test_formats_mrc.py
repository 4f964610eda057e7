"""MRC headers read directly, and images by range, checked against files written by ``mrcfile``."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from cryoweave.errors import FormatError
from cryoweave.formats.mrc import HEADER_BYTES, read_header, read_images, write_mrc


def _mrcfile_stack(path, data, voxel, *, volume=False, extended=0):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if extended:
            mrc.set_extended_header(np.zeros(extended, dtype=np.uint8))
        mrc.set_volume() if volume else mrc.set_image_stack()
        mrc.voxel_size = voxel
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.uint16, np.int8])
def test_header_and_images_match_mrcfile(tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(7, 12, 20)) * 20).astype(dtype)
    path = _mrcfile_stack(tmp_path / "stack.mrcs", data, 1.23, extended=96)
    header = read_header(path)
    assert header.shape == (7, 12, 20) and header.dtype == np.dtype(dtype) and not header.is_volume
    assert header.pixel_size == pytest.approx((1.23, 1.23, 1.23)) and header.data_offset == HEADER_BYTES + 96
    np.testing.assert_array_equal(read_images(header), data)
    np.testing.assert_array_equal(read_images(path, 2, 5), data[2:5])
    assert read_images(header, 7, 7).shape == (0, 12, 20)


def test_big_endian_files_and_volumes(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = _mrcfile_stack(tmp_path / "map.mrc", data, 0.8, volume=True)
    with mrcfile.open(path, mode="r+") as mrc:  # rewrite it big-endian, as some old software wrote maps
        swapped = mrc.data.astype(">f4")
        mrc.header.byteswap(inplace=True)
        mrc.header.machst = [0x11, 0x11, 0, 0]
        mrc.header.dtype = mrc.header.dtype.newbyteorder(">")
    raw = bytearray(path.read_bytes())
    raw[HEADER_BYTES:] = swapped.tobytes()
    path.write_bytes(bytes(raw))
    header = read_header(path)
    assert header.is_volume and header.shape == (4, 5, 6) and header.pixel_size == pytest.approx((0.8,) * 3)
    images = read_images(header)
    np.testing.assert_array_equal(images, data)
    assert images.dtype.byteorder in ("=", "<", "|")  # returned in native order


def test_write_is_read_back_by_mrcfile(tmp_path):
    data = np.random.default_rng(2).normal(size=(3, 16, 16)).astype(np.float32)
    path = write_mrc(tmp_path / "out.mrcs", data, pixel_size=2.5, stack=True)
    with mrcfile.open(path, permissive=False) as mrc:
        np.testing.assert_array_equal(mrc.data, data)
        assert mrc.is_image_stack() and float(mrc.voxel_size.x) == pytest.approx(2.5)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mrcs"]  # no temporary file left
    volume = write_mrc(tmp_path / "vol.mrc", data, pixel_size=1.0, stack=False)
    assert read_header(volume).is_volume


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"\x00" * 100), "too short for an MRC file"),
    (lambda p: p.write_bytes(b"\x00" * 2048), "not an MRC file"),
    (lambda p: p.write_bytes(bytes(_mrcfile_stack(p, np.zeros((4, 8, 8), np.float32), 1.0).read_bytes())[:-10]),
     "truncated or damaged"),
])
def test_bad_files_are_named_with_the_reason(tmp_path, make, message):
    path = tmp_path / "bad.mrc"
    make(path)
    with pytest.raises(FormatError, match=message) as caught:
        read_header(path)
    assert str(path) in str(caught.value)


def test_out_of_range_images_and_bad_writes(tmp_path):
    path = write_mrc(tmp_path / "s.mrcs", np.zeros((2, 4, 4), np.float32), pixel_size=1.0, stack=True)
    with pytest.raises(FormatError, match=r"images 1:3 asked for, but the file holds 2"):
        read_images(path, 1, 3)
    with pytest.raises(FormatError, match="pixel size must be above 0"):
        write_mrc(tmp_path / "z.mrcs", np.zeros((2, 4, 4)), pixel_size=0, stack=True)
    assert not (tmp_path / "z.mrcs").exists()
