"""Pose math: cryoSPARC axis-angle poses and RELION Euler angles, vectorised over rows.

A cryoSPARC pose ``w`` (radians) is the rotation vector of the rotation matrix ``R`` (Rodrigues:
``R = I + sinθ [k]× + (1 − cosθ) [k]×²`` with ``θ = |w|``, ``k = w/θ``). RELION's matrix
``A(rot, tilt, psi)`` (``Euler_angles2matrix``, ZYZ) is the transpose of ``R``: ``A = Rᵀ``, the
convention of the community converter pyem. Equivalently ``R = Rz(rot) Ry(tilt) Rz(psi)`` with
right-handed active elementary rotations.

Every function takes arrays whose last axis (or last two for matrices) holds one pose and any
number of leading rows; all arithmetic is float64.

>>> import numpy as np
>>> rotvec_to_relion_euler(np.array([[0.0, np.pi / 2, 0.0]])).round(6).tolist()
[[0.0, 90.0, 0.0]]
"""

from __future__ import annotations

import numpy as np

_SMALL_ANGLE = 1e-6  # below it the Rodrigues coefficients use their Taylor series
_GIMBAL = 1e-12  # |sin tilt| below it: tilt is 0 or 180° and the in-plane angle goes to psi


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of rotation vectors ``(..., 3)`` (radians).

    >>> rotvec_to_matrix(np.array([0.0, 0.0, np.pi / 2])).round(6).tolist()
    [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    w = np.asarray(rotvec, dtype=np.float64)
    theta2 = np.einsum("...i,...i->...", w, w)
    theta = np.sqrt(theta2)
    small = theta < _SMALL_ANGLE
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta2 / 6.0, np.sin(safe) / safe)  # sinθ/θ
    b = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(safe)) / (safe * safe))  # (1−cosθ)/θ²
    x, y, z = w[..., 0], w[..., 1], w[..., 2]
    zero = np.zeros_like(x)
    cross = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1),
                      np.stack([-y, x, zero], -1)], -2)
    # [w]×² = w wᵀ − θ² I
    square = w[..., :, None] * w[..., None, :] - theta2[..., None, None] * np.eye(3)
    return np.eye(3) + a[..., None, None] * cross + b[..., None, None] * square


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` (angle in [0, π]) of rotation matrices ``(..., 3, 3)``.

    Goes through the unit quaternion, choosing for each row the best-conditioned of the four
    ways to extract it (Shepperd's method), so angles near π and near 0 stay accurate.

    >>> matrix_to_rotvec(np.diag([1.0, -1.0, -1.0])).round(6).tolist()
    [3.141593, 0.0, 0.0]
    """
    m = np.asarray(matrix, dtype=np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    # Each candidate is 4·q_i·(x, y, z, w) for the component q_i it is built around.
    candidates = np.stack([
        np.stack([1 - trace + 2 * m00, m01 + m10, m02 + m20, m21 - m12], -1),
        np.stack([m01 + m10, 1 - trace + 2 * m11, m12 + m21, m02 - m20], -1),
        np.stack([m02 + m20, m12 + m21, 1 - trace + 2 * m22, m10 - m01], -1),
        np.stack([m21 - m12, m02 - m20, m10 - m01, 1 + trace], -1),
    ], -2)
    choice = np.argmax(np.stack([m00, m11, m22, trace], -1), axis=-1)
    q = np.take_along_axis(candidates, choice[..., None, None], axis=-2)[..., 0, :]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q *= np.where(q[..., 3:] < 0, -1.0, 1.0)  # w >= 0: angle in [0, π]
    v, w = q[..., :3], q[..., 3]
    s = np.linalg.norm(v, axis=-1)
    tiny = s < 1e-12
    scale = np.where(tiny, 2.0 / np.where(tiny, w, 1.0), 2.0 * np.arctan2(s, w) / np.where(tiny, 1.0, s))
    return v * scale[..., None]


def relion_euler_to_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """RELION's matrices ``A`` ``(..., 3, 3)`` of Euler angles ``(..., 3)`` = (rot, tilt, psi) in degrees.

    >>> (relion_euler_to_matrix(np.array([0.0, 90.0, 0.0])).round(6) + 0.0).tolist()
    [[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    rad = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    ca, cb, cg = np.cos(rad[..., 0]), np.cos(rad[..., 1]), np.cos(rad[..., 2])
    sa, sb, sg = np.sin(rad[..., 0]), np.sin(rad[..., 1]), np.sin(rad[..., 2])
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.stack([
        np.stack([cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb], -1),
        np.stack([-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb], -1),
        np.stack([sc, ss, cb], -1),
    ], -2)


def matrix_to_relion_euler(matrix: np.ndarray) -> np.ndarray:
    """(rot, tilt, psi) in degrees of RELION matrices ``A``: tilt in [0, 180], rot and psi in (−180, 180].

    At tilt 0 or 180 (gimbal lock) only rot ± psi is defined: rot is 0 and psi takes it all.
    psi is solved from ``A`` once rot and tilt are known, so the angles always rebuild ``A``
    accurately, also close to the lock where rot alone is ill-conditioned.

    >>> matrix_to_relion_euler(np.eye(3)).tolist()
    [0.0, 0.0, 0.0]
    """
    a = np.asarray(matrix, dtype=np.float64)
    sin_tilt = np.hypot(a[..., 0, 2], a[..., 1, 2])
    tilt = np.arctan2(sin_tilt, a[..., 2, 2])
    rot = np.where(sin_tilt < _GIMBAL, 0.0, np.arctan2(a[..., 2, 1], a[..., 2, 0]))
    ca, sa, cb, sb = np.cos(rot), np.sin(rot), np.cos(tilt), np.sin(tilt)
    # Row 0 of A · (Ry(tilt)·Rz(rot))ᵀ (frame rotations) is (cos psi, sin psi, 0).
    cos_psi = a[..., 0, 0] * cb * ca + a[..., 0, 1] * cb * sa - a[..., 0, 2] * sb
    sin_psi = a[..., 0, 1] * ca - a[..., 0, 0] * sa
    out = np.rad2deg(np.stack([rot, tilt, np.arctan2(sin_psi, cos_psi)], -1))
    out[..., [0, 2]] = np.where(out[..., [0, 2]] <= -180.0, out[..., [0, 2]] + 360.0, out[..., [0, 2]])
    return out + 0.0  # no negative zeros


def rotvec_to_relion_euler(pose: np.ndarray) -> np.ndarray:
    """RELION (rot, tilt, psi) in degrees of cryoSPARC poses (rotation vectors, radians).

    >>> rotvec_to_relion_euler(np.array([[0.0, 0.0, np.pi / 6]])).round(6).tolist()
    [[0.0, 0.0, 30.0]]
    """
    return matrix_to_relion_euler(np.swapaxes(rotvec_to_matrix(pose), -1, -2))


def relion_euler_to_rotvec(angles_deg: np.ndarray) -> np.ndarray:
    """cryoSPARC poses (rotation vectors, radians) of RELION (rot, tilt, psi) in degrees.

    >>> relion_euler_to_rotvec(np.array([[0.0, 90.0, 0.0]])).round(6).tolist()
    [[0.0, 1.570796, 0.0]]
    """
    return matrix_to_rotvec(np.swapaxes(relion_euler_to_matrix(angles_deg), -1, -2))
