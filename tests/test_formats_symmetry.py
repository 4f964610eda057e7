"""Point groups: each symbol's operators form a group of the right order, with axes as documented."""

from __future__ import annotations

import numpy as np
import pytest

from cryoweave.errors import ParamError
from cryoweave.formats import symmetry
from cryoweave.formats.geometry import matrix_to_rotvec

GROUPS = {"C1": 1, "C2": 2, "C4": 4, "c7": 7, "C13": 13, "D1": 2, "D2": 4, "d7": 14, "D12": 24,
          "T": 12, "O": 24, "I": 60, "I1": 60, "I2": 60}


def index_of(ops: np.ndarray, matrix: np.ndarray) -> int:
    """The one operator equal to ``matrix`` (fails when none or several are)."""
    hits = np.flatnonzero(np.abs(ops - matrix).max(axis=(1, 2)) < 1e-9)
    assert len(hits) == 1, f"{len(hits)} operators match"
    return int(hits[0])


def axes_and_angles(ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit axes (zero for the identity) and angles in degrees."""
    rotvec = matrix_to_rotvec(ops)
    angle = np.linalg.norm(rotvec, axis=1)
    axis = np.divide(rotvec, angle[:, None], out=np.zeros_like(rotvec), where=angle[:, None] > 1e-9)
    return axis, np.degrees(angle)


def has_axis(ops: np.ndarray, axis, fold: int) -> bool:
    """The group holds the rotation by 360°/fold about ``axis``."""
    return bool(np.any(np.abs(ops - symmetry.rotation(axis, 2 * np.pi / fold)).max(axis=(1, 2)) < 1e-9))


@pytest.mark.parametrize("symbol", GROUPS)
def test_operators_form_a_group_of_the_documented_order(symbol):
    ops = symmetry.operators(symbol)
    n = GROUPS[symbol]
    assert ops.shape == (n, 3, 3) and ops.dtype == np.float64
    assert symmetry.order(symbol) == n
    np.testing.assert_array_equal(ops[0], np.eye(3))                      # identity first
    np.testing.assert_allclose(ops @ ops.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ops.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(ops), 1.0, atol=1e-12)       # proper rotations
    distinct = np.abs(ops[:, None] - ops[None]).max(axis=(2, 3)) > 1e-6
    assert distinct.sum() == n * n - n                                     # no operator twice
    for a in ops:                                                         # closed under products and inverses
        for b in ops:
            index_of(ops, a @ b)
        index_of(ops, a.T)


@pytest.mark.parametrize("symbol,name", [("c4", "C4"), (" D7 ", "D7"), ("t", "T"), ("o", "O"), ("i", "I"),
                                         ("I2", "I"), ("i1", "I1")])
def test_symbols_are_read_in_any_case(symbol, name):
    assert symmetry.canonical(symbol) == name
    np.testing.assert_array_equal(symmetry.operators(symbol), symmetry.operators(name))


@pytest.mark.parametrize("symbol", ["", "C0", "D0", "X3", "C", "D", "C-2", "I3", "T2", "C4.5", "helix", None, 4])
def test_bad_symbols_are_refused_with_the_forms_named(symbol):
    with pytest.raises(ParamError, match=r"not a point group|order n"):
        symmetry.operators(symbol)


def test_cyclic_groups_turn_about_z_in_order():
    ops = symmetry.operators("C4")
    for k in range(4):
        np.testing.assert_allclose(ops[k], symmetry.rotation((0, 0, 1), k * np.pi / 2), atol=1e-15)
    np.testing.assert_array_equal(ops[1], [[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    axis, angle = axes_and_angles(symmetry.operators("C7")[1:])
    np.testing.assert_allclose(np.abs(axis[:, 2]), 1.0)
    assert sorted(np.round(angle, 6)) == sorted(np.round([min(a, 360 - a) for a in 360 / 7 * np.arange(1, 7)], 6))


def test_dihedral_groups_have_the_n_fold_on_z_and_a_2_fold_on_x():
    n = 7
    ops = symmetry.operators("D7")
    np.testing.assert_allclose(ops[:n], symmetry.operators("C7"))
    np.testing.assert_allclose(ops[n], np.diag([1.0, -1.0, -1.0]))         # 2-fold along x
    axis, angle = axes_and_angles(ops[n:])
    np.testing.assert_allclose(angle, 180.0)
    np.testing.assert_allclose(axis[:, 2], 0.0, atol=1e-12)               # every 2-fold in the xy plane
    for k in range(n):
        np.testing.assert_allclose(ops[n + k], symmetry.rotation((np.cos(np.pi * k / n), np.sin(np.pi * k / n), 0),
                                                                 np.pi), atol=1e-12)


def test_tetrahedral_group_has_relions_orientation():
    ops = symmetry.operators("T")
    assert has_axis(ops, (0, 0, 1), 3)
    assert has_axis(ops, (0, np.sqrt(2 / 3), np.sqrt(1 / 3)), 2)
    _, angle = axes_and_angles(ops)
    assert np.round(angle).tolist() == [0] + [120] * 8 + [180] * 3


def test_octahedral_group_has_4_folds_on_the_axes_and_3_folds_on_the_diagonals():
    ops = symmetry.operators("O")
    for axis in np.eye(3):
        assert has_axis(ops, axis, 4)
    for signs in [(1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)]:
        assert has_axis(ops, signs, 3)
    _, angle = axes_and_angles(ops)
    assert np.round(angle).tolist() == [0] + [90] * 6 + [120] * 8 + [180] * 9


def test_icosahedral_group_is_relions_i2_with_2_folds_on_the_axes():
    tau = (1 + 5 ** 0.5) / 2
    ops = symmetry.operators("I")
    for axis in np.eye(3):
        assert has_axis(ops, axis, 2)
    assert has_axis(ops, (1, 0, tau), 5)                                   # front 5-fold in the xz plane
    assert has_axis(ops, (0, 1 / tau, tau), 3)
    assert not has_axis(ops, (0, 1, tau), 5)                               # that is I1's
    _, angle = axes_and_angles(ops)
    assert np.round(angle).tolist() == [0] + [72] * 12 + [120] * 20 + [144] * 12 + [180] * 15
    # a 5-fold through each of the twelve vertices (±1, 0, ±τ), (0, ±τ, ±1), (±τ, ±1, 0)
    vertices = [(s1, 0, s2 * tau) for s1 in (1, -1) for s2 in (1, -1)]
    vertices += [(0, s1 * tau, s2) for s1 in (1, -1) for s2 in (1, -1)]
    vertices += [(s1 * tau, s2, 0) for s1 in (1, -1) for s2 in (1, -1)]
    for vertex in vertices:
        assert has_axis(ops, vertex, 5)


def test_i1_is_i2_turned_a_quarter_about_z():
    quarter = symmetry.rotation((0, 0, 1), np.pi / 2)
    i1, i2 = symmetry.operators("I1"), symmetry.operators("I2")
    turned = quarter @ i2 @ quarter.T
    for op in turned:
        index_of(i1, op)
    assert has_axis(i1, (1, 0, 0), 2) and has_axis(i1, (tau := (1 + 5 ** 0.5) / 2, 0, -1), 5)
    assert has_axis(i1, (tau, 1 / tau, 0), 3)


def test_the_point_groups_nest_in_one_frame():
    """C4 ⊂ D4 ⊂ O and the 2-folds of I: operators of a subgroup are found in the bigger group."""
    octa = symmetry.operators("O")
    for op in symmetry.operators("D4"):
        index_of(octa, op)
    ico = symmetry.operators("I")
    for op in symmetry.operators("D2"):
        index_of(ico, op)


def test_operators_are_fresh_copies():
    ops = symmetry.operators("C2")
    ops[1] = 0
    np.testing.assert_array_equal(symmetry.operators("C2")[1], np.diag([-1.0, -1.0, 1.0]))
