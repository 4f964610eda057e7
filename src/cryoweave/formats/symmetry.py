"""Point-group symmetry: the rotation matrices of C_n, D_n, T, O and I, as RELION orients them.

A symbol is parsed case-insensitively: ``C1``, ``c4``, ``D7``, ``T``, ``O``, ``I`` (``I2``) or
``I1``. `operators` returns the group's rotations as an ``(N, 3, 3)`` float64 array acting on
column vectors ``(x, y, z)`` of the map's frame (x the fastest axis of an MRC map, z the slowest);
a map ``V`` has the symmetry when ``V(S p) = V(p)`` for every operator ``S`` and point ``p``
(coordinates about the box centre).

Orientation (the same as RELION's ``symmetries.cpp``, so maps and poses move between the two
programs unchanged):

====== ===== ===============================================================================
symbol order axes
====== ===== ===============================================================================
C_n    n     the n-fold along z
D_n    2n    the n-fold along z, a 2-fold along x (and the others in the xy plane)
T      12    a 3-fold along z, a 2-fold along (0, √(2/3), √(1/3))
O      24    4-folds along x, y and z, 3-folds along the body diagonals (±1, ±1, ±1)
I, I2  60    2-folds along x, y and z, a 5-fold along (1, 0, τ) (the xz plane; τ the golden
             ratio), a 3-fold along (0, 1/τ, τ): RELION's default ``I`` (= ``I2``)
I1     60    2-folds along x, y and z, a 5-fold along (τ, 0, −1): I2 turned 90° about z
====== ===== ===============================================================================

Order of the operators (the ``idx`` of symmetry-expanded copies): the identity is always first.
For C_n, operator k is the rotation by 2πk/n about z. For D_n, operators 0..n−1 are those of
C_n and operator n+k is ``Rz(2πk/n)·Rx(π)``, the 2-fold about the axis at angle πk/n from x in
the xy plane. T, O and I are sorted by rotation angle (smallest first), then by axis (largest z,
then y, then x component first; the axis of a half turn is taken with its first non-zero
component among z, y, x positive).

>>> operators("C4").shape
(4, 3, 3)
>>> [order(s) for s in ("C1", "d7", "T", "O", "I")]
[1, 14, 12, 24, 60]
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from cryoweave.errors import ParamError
from cryoweave.formats.geometry import matrix_to_rotvec, rotvec_to_matrix

TOLERANCE = 1e-6
"""Two operators closer than this (largest element difference) are the same operator."""

TAU = (1 + 5 ** 0.5) / 2
"""The golden ratio, which places the 5-fold axes of I."""

_SYMBOL = re.compile(r"^\s*(?:([CD])\s*(\d+)|(T)|(O)|(I)\s*([12]?))\s*$", re.IGNORECASE)
_MAX_ORDER = 10_000


def parse(symbol: str) -> tuple[str, int]:
    """The family (``C``, ``D``, ``T``, ``O``, ``I``) and number of a symbol: the n of C_n and D_n,
    the setting (1 or 2) of I, else 0.

    >>> parse("c4"), parse("D7"), parse("I"), parse("i1")
    (('C', 4), ('D', 7), ('I', 2), ('I', 1))
    """
    match = _SYMBOL.match(symbol) if isinstance(symbol, str) else None
    if match is None:
        raise ParamError(f"symmetry {symbol!r} is not a point group; write C<n> or D<n> (e.g. C1, C4, D7), "
                         "T, O, or I (I2, RELION's default; I1 is I turned 90° about z)")
    cyclic, n, tetra, _, ico, setting = match.groups()
    if cyclic:
        n = int(n)
        if not 1 <= n <= _MAX_ORDER:
            raise ParamError(f"symmetry {symbol!r}: the order n of {cyclic.upper()}<n> must lie in 1–{_MAX_ORDER:,}")
        return cyclic.upper(), n
    if ico:
        return "I", int(setting or 2)
    return ("T" if tetra else "O"), 0


def canonical(symbol: str) -> str:
    """The symbol as written in results: ``c4`` → ``C4``, ``i`` → ``I``, ``I2`` → ``I``.

    >>> canonical(" d7"), canonical("i2"), canonical("I1")
    ('D7', 'I', 'I1')
    """
    family, n = parse(symbol)
    if family in "CD":
        return f"{family}{n}"
    return "I1" if (family, n) == ("I", 1) else family


def order(symbol: str) -> int:
    """How many operators the group has: n, 2n, 12, 24 or 60."""
    family, n = parse(symbol)
    return {"C": n, "D": 2 * n, "T": 12, "O": 24, "I": 60}[family]


def operators(symbol: str) -> np.ndarray:
    """The group's rotation matrices, ``(N, 3, 3)`` float64, identity first (see the module's
    docstring for the orientation and order). The array is a fresh copy each call."""
    return _operators(canonical(symbol)).copy()


def rotation(axis: tuple[float, float, float] | np.ndarray, angle: float) -> np.ndarray:
    """The rotation by ``angle`` radians (right-handed) about ``axis`` (need not be unit)."""
    unit = np.asarray(axis, dtype=np.float64)
    return rotvec_to_matrix(unit / np.linalg.norm(unit) * angle)


@lru_cache(maxsize=64)
def _operators(symbol: str) -> np.ndarray:
    family, n = parse(symbol)
    if family == "C":
        ops = _cyclic(n)
    elif family == "D":
        ops = np.concatenate([_cyclic(n), _cyclic(n) @ rotation((1, 0, 0), np.pi)])
    else:
        generators = {
            "T": [((0, 0, 1), 3), ((0, np.sqrt(2 / 3), np.sqrt(1 / 3)), 2)],
            "O": [((0, 0, 1), 4), ((1, 1, 1), 3)],
            "I": [((0, 0, 1), 2), ((1, 0, TAU), 5), ((0, 1 / TAU, TAU), 3)],
            "I1": [((1, 0, 0), 2), ((TAU, 0, -1), 5), ((TAU, 1 / TAU, 0), 3)],
        }[symbol]
        ops = _sorted(_closure([rotation(axis, 2 * np.pi / fold) for axis, fold in generators], order(symbol)))
    ops = _snap(ops)
    ops.setflags(write=False)
    return ops


def _cyclic(n: int) -> np.ndarray:
    angles = 2 * np.pi * np.arange(n) / n
    c, s = np.cos(angles), np.sin(angles)
    ops = np.zeros((n, 3, 3))
    ops[:, 0, 0], ops[:, 0, 1], ops[:, 1, 0], ops[:, 1, 1], ops[:, 2, 2] = c, -s, s, c, 1.0
    return ops


def _closure(generators: list[np.ndarray], expected: int) -> np.ndarray:
    """Every product of the generators (breadth first from the identity)."""
    elements = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        grown = []
        for element in frontier:
            for generator in generators:
                product = generator @ element
                if not any(np.abs(product - e).max() < TOLERANCE for e in elements):
                    elements.append(product)
                    grown.append(product)
                    if len(elements) > expected:  # generators that do not close: a bug in the table
                        raise AssertionError(f"symmetry generators make more than {expected} operators")
        frontier = grown
    if len(elements) != expected:
        raise AssertionError(f"symmetry generators make {len(elements)} operators, not {expected}")
    return np.array(elements)


def _sorted(ops: np.ndarray) -> np.ndarray:
    """Identity first, then by rotation angle, then by axis (z, y, x components, largest first)."""
    rotvec = matrix_to_rotvec(ops)
    angle = np.linalg.norm(rotvec, axis=-1)
    axis = np.divide(rotvec, angle[:, None], out=np.zeros_like(rotvec), where=angle[:, None] > TOLERANCE)
    half_turn = np.abs(angle - np.pi) < TOLERANCE
    for i in np.flatnonzero(half_turn):  # ±axis is the same half turn: first non-zero of z, y, x positive
        lead = next(c for c in axis[i, ::-1] if abs(c) > TOLERANCE)
        axis[i] *= np.sign(lead)
    keys = np.round(np.column_stack([angle, -axis[:, 2], -axis[:, 1], -axis[:, 0]]), 6)
    return ops[np.lexsort(keys.T[::-1])]


def _snap(ops: np.ndarray) -> np.ndarray:
    """Exact zeros and ones where rounding left 1e-16 (products of float rotations)."""
    out = np.array(ops, dtype=np.float64)
    for value in (0.0, 1.0, -1.0, 0.5, -0.5):
        out[np.abs(out - value) < 1e-12] = value
    return out
