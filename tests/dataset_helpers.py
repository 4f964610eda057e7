"""Shared helpers for the dataset test files: sample tables, both implementations, comparisons.

cryosparc-tools is used here only as a test oracle; cryoweave never imports it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cryosparc.dataset import CSDAT_FORMAT as CS_CSDAT_FORMAT
from cryosparc.dataset import Dataset as CSDataset

from cryoweave.dataset import CSDAT_FORMAT, NUMPY_FORMAT, Dataset

#: Every numeric column type cryosparc-tools supports (cryoweave adds b1 and f2).
NUMERIC_TYPES = ("f4", "f8", "c8", "c16", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
EXTRA_TYPES = ("b1", "f2")

#: The three on-disk variants every reader must handle.
FORMATS = ("numpy", "csdat-lz4", "csdat-raw")

STRING_POOL = (
    "héllo",
    "日本",
    "",
    "J12/extract/000123_FoilHole_1_patch_aligned_doseweighted_particles.mrc",
    "spline",
    "a",
    "ünïcödé ✓",
    "x" * 70,
)

#: uids above 2**63 on purpose: signed/float conversions would lose or flip them.
BIG_UIDS = np.array([2**64 - 1, 2**63 + 5, 2**63, 17, 2**63 - 1, 1, 2**64 - 2, 42], dtype=np.uint64)


def random_column(rng: np.random.Generator, dtype: str, n: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Values of one column type covering the extremes of the type (and NaN/inf for floats)."""
    size = (n, *shape)
    dt = np.dtype(dtype)
    if dtype == "O":
        return np.array(rng.choice(np.array(STRING_POOL, dtype=object), size=size), dtype=object)
    if dt.kind == "b":
        return rng.integers(0, 2, size=size).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        out = rng.integers(info.min, info.max, size=size, dtype=dt, endpoint=True)
        flat = out.reshape(-1)
        if flat.size >= 2:
            flat[0], flat[-1] = info.min, info.max
        return out
    if dt.kind == "f":
        out = rng.normal(0, 1000, size=size).astype(dt)
        flat = out.reshape(-1)
        if flat.size >= 4:
            flat[1], flat[2], flat[3] = np.inf, -0.0, np.finfo(dt).max
        return out
    if dt.kind == "c":
        real = rng.normal(0, 10, size=size)
        return (real + 1j * rng.normal(0, 10, size=size)).astype(dt)
    raise AssertionError(f"no generator for {dtype}")


def sample_data(
    n: int,
    seed: int = 0,
    *,
    types: Sequence[str] = NUMERIC_TYPES,
    strings: bool = True,
    shaped: bool = True,
    uids: np.ndarray | None = None,
) -> list[tuple[str, np.ndarray]]:
    """A list of ``(name, values)``: every type in ``types``, strings, and 1-, 2- and 3-dim fields.

    Every field name has exactly one prefix (``prefix/name``), as cryosparc-tools' rename_prefix needs.
    """
    rng = np.random.default_rng(seed)
    if uids is None:
        uids = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)
    data: list[tuple[str, np.ndarray]] = [("uid", np.asarray(uids, dtype=np.uint64))]
    for t in types:
        data.append((f"num/{t}", random_column(rng, t, n)))
    if strings:
        data.append(("blob/path", random_column(rng, "O", n)))
        data.append(("ctf/type", random_column(rng, "O", n)))
    if shaped:
        data.append(("alignments3D/shift", random_column(rng, "f4", n, (2,))))
        data.append(("location/shape2", random_column(rng, "u4", n, (2, 3))))
        data.append(("mesh/cube", random_column(rng, "i2", n, (2, 2, 2))))
    return data


def pair(data: Any) -> tuple[Dataset, CSDataset]:
    """The same table in cryoweave and in cryosparc-tools (inputs are copied for each)."""
    if isinstance(data, list):
        return Dataset([(k, np.array(v, copy=True)) for k, v in data]), CSDataset(
            [(k, np.array(v, copy=True)) for k, v in data]
        )
    return Dataset(data), CSDataset(data)


def values(dset: Any, field: str) -> np.ndarray:
    """A column as a plain numpy array (strings as ``str`` objects)."""
    col = np.asarray(dset[field])
    if col.dtype.kind in "SU":
        col = np.array(
            [bytes(v).decode() if isinstance(v, bytes) else str(v) for v in col.reshape(-1)], dtype=object
        ).reshape(col.shape)
    return col


def assert_columns_equal(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    if a.dtype.kind == "O":
        assert a.tolist() == b.tolist(), f"{what}: {a.tolist()[:10]} != {b.tolist()[:10]}"
        assert all(isinstance(v, str) for v in a.reshape(-1).tolist()), f"{what}: non-str values {a[:5]}"
    else:
        # Bitwise equality except that NaN == NaN (assert_array_equal treats NaNs as equal).
        np.testing.assert_array_equal(a, b, err_msg=what, strict=True)


def assert_same(ours: Any, theirs: Any, *, ordered_fields: bool = True) -> None:
    """Two datasets (of either implementation) hold the same fields, types, rows and values."""
    assert len(ours) == len(theirs), f"{len(ours)} rows != {len(theirs)} rows"
    if ordered_fields:
        assert ours.fields() == theirs.fields()
        assert ours.descr() == theirs.descr()
    else:
        assert sorted(ours.fields()) == sorted(theirs.fields())
        assert set(ours.descr()) == set(theirs.descr())
    for f in ours.fields():
        assert_columns_equal(values(ours, f), values(theirs, f), f)


def assert_same_result(ours: Any, theirs: Any) -> None:
    """Compare what the same operation returned in both implementations."""
    if isinstance(theirs, CSDataset):
        assert isinstance(ours, Dataset), f"expected a Dataset, got {type(ours)}"
        assert_same(ours, theirs)
    elif isinstance(theirs, dict) and any(isinstance(v, CSDataset) for v in theirs.values()):
        assert list(ours) == list(theirs)
        for k in theirs:
            assert_same(ours[k], theirs[k])
    elif isinstance(theirs, np.recarray | np.ndarray):
        assert isinstance(ours, np.ndarray)
        assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
        if theirs.dtype.names:
            for k in theirs.dtype.names:
                assert_columns_equal(np.asarray(ours[k]), np.asarray(theirs[k]), k)
        else:
            assert_columns_equal(np.asarray(ours), np.asarray(theirs))
    else:
        assert type(ours) is type(theirs) or (np.isscalar(ours) and np.isscalar(theirs)), (
            type(ours),
            type(theirs),
        )
        assert ours == theirs


def run_both(fn: Callable[[Any, Any], Any], ours: Dataset, theirs: CSDataset) -> tuple[Any, Any]:
    """Run ``fn(cls, dataset)`` on both; if cryosparc-tools raises, cryoweave must raise the same kind."""
    try:
        expected = fn(CSDataset, theirs)
    except Exception as err:  # the oracle refused: ours must refuse with a compatible exception
        theirs_err = err
    else:
        return fn(Dataset, ours), expected
    kind = AssertionError if isinstance(theirs_err, AssertionError) else type(theirs_err)
    try:
        fn(Dataset, ours)
    except kind:
        return None, None
    except Exception as ours_err:
        raise AssertionError(
            f"cryosparc-tools raised {theirs_err!r}; cryoweave raised {ours_err!r}, "
            f"which is not a {kind.__name__}"
        ) from ours_err
    raise AssertionError(f"cryosparc-tools raised {theirs_err!r}; cryoweave did not raise")


# ---------------------------------------------------------------------------- files
def save_ours(dset: Dataset, file: Any, fmt: str) -> None:
    if fmt == "numpy":
        dset.save(file)
    elif fmt == "csdat-lz4":
        dset.save(file, format=CSDAT_FORMAT)
    elif fmt == "csdat-raw":
        dset.save(file, format=CSDAT_FORMAT, compression=None)
    else:
        raise AssertionError(fmt)


def save_theirs(dset: CSDataset, path: Path, fmt: str) -> None:
    if fmt == "numpy":
        dset.save(str(path))
    elif fmt == "csdat-lz4":
        dset.save(str(path), format=CS_CSDAT_FORMAT)
    elif fmt == "csdat-raw":
        path.write_bytes(b"".join(dset.stream(compression=None)))
    else:
        raise AssertionError(fmt)


def ours_bytes(dset: Dataset, fmt: str) -> bytes:
    buf = io.BytesIO()
    save_ours(dset, buf, fmt)
    return buf.getvalue()


__all__ = [
    "BIG_UIDS",
    "CSDAT_FORMAT",
    "EXTRA_TYPES",
    "FORMATS",
    "NUMERIC_TYPES",
    "NUMPY_FORMAT",
    "STRING_POOL",
    "CSDataset",
    "Dataset",
    "assert_columns_equal",
    "assert_same",
    "assert_same_result",
    "ours_bytes",
    "pair",
    "random_column",
    "run_both",
    "sample_data",
    "save_ours",
    "save_theirs",
    "values",
]
