"""Field and dtype notations shared by datasets, result types and files.

A *field* is a column descriptor as numpy and cryosparc-tools write it::

    ("uid", "<u8")                 # scalar column
    ("ctf/shift_A", "<f4", (2,))   # fixed-shape sub-array column, up to 3 dims
    ("blob/path", "|O")            # string column (in memory: str or fixed-width UTF-8 bytes)

A *dtype notation* is anything users write for a column type: ``"f4"``, ``"3u4"``,
``"500,2f4"``, ``("<u4", (3,))``, ``np.float32``, ``str``, ``"O"``, ``"S"`` or ``"U"``.

>>> normalize_field("ctf/shift_A", "2f4")
('ctf/shift_A', '<f4', (2,))
>>> normalize_field("uid", "i8")        # uid is always unsigned 64-bit
('uid', '<u8')
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from cryoweave.errors import SpecError

Field = tuple[str, str] | tuple[str, str, tuple[int, ...]]

STRING_DTYPE = "|O"
"""The descriptor of a string column, whatever its storage in memory."""

MAX_DIMS = 3
MAX_DIM_SIZE = 65535

# Numeric kinds a column may hold: every type cryosparc-tools supports plus bool and float16.
_ALLOWED_NUMERIC = {np.dtype(t) for t in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                           "f2", "f4", "f8", "c8", "c16")}
_SHAPED_NOTATION = re.compile(r"^\s*(\d+(?:\s*,\s*\d+)*)\s*([<>|=]?[a-zA-Z]\d*)\s*$")
_PY_TYPES = {float: "<f8", int: "<i8", complex: "<c16", bool: "|b1", str: STRING_DTYPE,
             bytes: STRING_DTYPE, object: STRING_DTYPE}


def is_string_dtype(dtype: Any) -> bool:
    """True for the dtypes that hold strings in a column: object, bytes or unicode."""
    return np.dtype(dtype).kind in "OSU"


def parse_dtype(notation: Any) -> tuple[np.dtype, tuple[int, ...]]:
    """Return ``(base dtype, shape)`` for a dtype notation; strings give ``(dtype('O'), ())``.

    >>> parse_dtype("500,2f4")
    (dtype('float32'), (500, 2))
    """
    shape: tuple[int, ...] = ()
    base: Any = notation
    if isinstance(notation, tuple):
        if len(notation) != 2:
            raise SpecError(f"dtype {notation!r} must be (type, shape), e.g. ('<f4', (2,))")
        base, raw_shape = notation
        raw = (raw_shape,) if isinstance(raw_shape, int | np.integer) else tuple(raw_shape)
        try:
            shape = tuple(int(d) for d in raw)
        except (TypeError, ValueError):
            raise SpecError(f"dtype {notation!r} has a shape that is not a tuple of integers") from None
    elif isinstance(notation, str):
        match = _SHAPED_NOTATION.match(notation)
        if match:
            shape = tuple(int(d) for d in match.group(1).split(","))
            base = match.group(2)
    if isinstance(base, type) and base in _PY_TYPES:
        base = _PY_TYPES[base]
    try:
        dtype = np.dtype(base)
    except (TypeError, ValueError, SyntaxError):
        raise SpecError(f"{notation!r} is not a dtype; write e.g. 'f4', '3u4', ('<f4', (2,)) "
                        "or 'O'") from None
    if dtype.subdtype is not None:
        shape = dtype.shape + shape
        dtype = dtype.base
    if dtype.fields is not None:
        raise SpecError(f"{notation!r} is a structured dtype; a field holds one type")
    if is_string_dtype(dtype):
        dtype = np.dtype(object)
    elif dtype not in _ALLOWED_NUMERIC and dtype.newbyteorder("=") not in _ALLOWED_NUMERIC:
        raise SpecError(f"{notation!r}: columns of type {dtype} are not supported; "
                        "use bool, signed/unsigned integers, f2/f4/f8, c8/c16 or strings")
    check_shape(shape, notation)
    return dtype, shape


def check_shape(shape: tuple[int, ...], what: Any) -> None:
    if len(shape) > MAX_DIMS:
        raise SpecError(f"{what!r}: fields have at most {MAX_DIMS} dimensions, not {len(shape)}")
    if any(d < 1 or d > MAX_DIM_SIZE for d in shape):
        raise SpecError(f"{what!r}: each dimension of a field must be between 1 and {MAX_DIM_SIZE}")


def dtype_str(dtype: np.dtype) -> str:
    """Descriptor string of a base dtype, as numpy's ``dtype.str`` but ``'|O'`` for strings."""
    return STRING_DTYPE if is_string_dtype(dtype) else dtype.str


def check_field_name(name: Any) -> str:
    """A field name must be a non-empty string."""
    if not isinstance(name, str) or not name:
        raise SpecError(f"field name {name!r} must be a non-empty string")
    return name


def normalize_field(name: str, notation: Any) -> Field:
    """The canonical field tuple for a name and a dtype notation (``uid`` is forced to ``<u8``)."""
    check_field_name(name)
    if name == "uid":
        return ("uid", "<u8")
    dtype, shape = parse_dtype(notation)
    return (name, dtype_str(dtype), shape) if shape else (name, dtype_str(dtype))


def field_from_array(name: str, array: np.ndarray) -> Field:
    """The field tuple describing a column array of shape ``(rows, *shape)``."""
    from cryoweave.dataset.strings import is_string

    dtype = np.dtype(object) if is_string(array) else array.dtype
    return normalize_field(name, (dtype, array.shape[1:]) if array.ndim > 1 else dtype)


def field_dtype(field: Field) -> tuple[np.dtype, tuple[int, ...]]:
    """``(base dtype, shape)`` of a field tuple."""
    if len(field) == 3:
        return parse_dtype((field[1], field[2]))
    if len(field) == 2:
        return parse_dtype(field[1])
    raise SpecError(f"field {field!r} must be (name, dtype) or (name, dtype, shape)")


def dtype_notation(field: Field) -> str:
    """Compact notation of a field's type as users write it: ``'2f4'``, ``'u8'``, ``'O'``."""
    dtype, shape = field_dtype(field)
    base = "O" if is_string_dtype(dtype) else dtype.str.lstrip("<|=")
    return (",".join(map(str, shape)) + base) if shape else base
