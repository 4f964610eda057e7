"""Fourier-space reconstruction: particle images with poses (and CTFs) inserted into a 3D transform.

The math of Homogeneous Reconstruction Only (:mod:`cryoweave.jobs.library.reconstruction`), in the
conventions of :mod:`cryoweave.jobs.library.simulation` (which it inverts):

* **Padding.** Images of ``box`` px are zero-padded to ``n = pad · box`` before their transform, and the 3D
  transform is a grid of ``n³`` (RELION's padding factor; 2 by default). Samples are kept out to
  ``n/2 − 1`` padded-grid units: the original box's Nyquist less half a shell.
* **Insertion** (Fourier-slice theorem, pose ``R``: view point ``q`` → map point ``R·q``): the 2D sample at
  ``(kx, ky)`` belongs at ``R·(kx, ky, 0)`` and is spread over the 8 voxels around it with trilinear
  weights. Each voxel accumulates ``Σ w·c·X`` (data) and ``Σ w·c²`` (weight), ``X`` the image's transform
  centred on the particle (translated by ``alignments3D/shift``, as a phase) and ``c`` its CTF, so that
  ``data / weight`` divides the CTF out (Wiener filtering when a term is added to the weight). Only half of
  the transform is kept (``x ≥ 0``, the ``rfftn`` layout): a sample that lands at ``x < 0`` is stored as its
  Hermitian partner (``−p``, conjugate value), and the ``x = 0`` plane is completed from its mirror at the end.
* **Sign.** ``sign · image`` has bright density (``blob/sign``: −1 for dark particles, as extracted). The
  CTF of :mod:`cryoweave.formats.ctf` is negative at low frequency (it makes positive density dark), so with
  CTF correction the bright image is modelled with ``c = −CTF``; without it ``c = 1``.
* **Division and gridding.** ``map = F⁻¹[data / (weight + τ)]``, cropped to the box and divided by the
  trilinear kernel's apodisation ``sinc²(x/n)·sinc²(y/n)·sinc²(z/n)`` (the normalised trilinear average is a
  convolution with the kernel, a product with its transform in real space).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoweave.errors import DataError
from cryoweave.formats.ctf import wavelength_A
from cryoweave.jobs.library.fourier import default_workers, fft_module

SAMPLES_PER_BATCH = 1 << 15
"""2D samples inserted per batch of images: small enough that the per-sample arrays of one corner stay in
the CPU cache (measured: twice as fast as 8 corners at once on batches of 2^18)."""

CTF_KEYS = ("df1_A", "df2_A", "df_angle_rad", "accel_kv", "cs_mm", "amp_contrast", "phase_shift_rad", "bfactor")


def _corner_offsets(stride_z: int, stride_y: int) -> np.ndarray:
    return np.array([dz * stride_z + dy * stride_y + dx for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)])


class Backprojector:
    """Accumulates images of one box into a padded 3D transform (see the module's docstring).

    The accumulators are centred in y and z (index ``k + n/2``) with one spare row, and have two spare
    x columns, so that no trilinear corner wraps around; :meth:`transform` returns them in ``rfftn`` layout.
    """

    def __init__(self, box: int, psize_A: float, pad: int = 2):
        if box < 4 or box % 2:
            raise DataError(f"a reconstruction needs an even box of at least 4 px, not {box}")
        self.box, self.pad, self.psize = box, pad, float(psize_A)
        self.size = n = pad * box
        half = n // 2
        ky = np.fft.fftfreq(n, 1.0 / n)
        kx = np.arange(half + 1, dtype=np.float64)
        kyy, kxx = np.meshgrid(ky, kx, indexing="ij")
        keep = (kxx * kxx + kyy * kyy <= (half - 1) ** 2) & ~((kxx == 0) & (kyy < 0))  # one of each Hermitian pair
        self.inside = np.flatnonzero(keep)
        self.kx = kxx.ravel()[self.inside]
        self.ky = kyy.ravel()[self.inside]
        self._k2 = np.stack([self.kx, self.ky]).astype(np.float32)  # (2, samples)
        self._rows = np.rint(self.ky).astype(np.int64) % n  # row of each sample in the rfft2 layout
        self._cols = np.rint(self.kx).astype(np.int64)
        self.shape = (n + 1, n + 1, half + 2)
        self._offsets = _corner_offsets(self.shape[1] * self.shape[2], self.shape[2])
        self.data = np.zeros(int(np.prod(self.shape)), np.complex64)
        self.weight = np.zeros(int(np.prod(self.shape)), np.float32)
        self.workers = default_workers()  # threads of the image FFTs

    @property
    def batch(self) -> int:
        """Images per batch."""
        return max(1, SAMPLES_PER_BATCH // len(self.kx))

    # ------------------------------------------------------------------------------------- the samples
    def spectra(self, images: np.ndarray, shifts_px: np.ndarray | None) -> np.ndarray:
        """The images' padded transforms at the samples ``(m, samples)`` complex64, about the particle's centre:
        the box centre minus the shift (``alignments3D/shift`` is the translation that centres the particle)."""
        n = self.size
        fft = fft_module()
        out = fft.rfft2(np.asarray(images, np.float32), s=(n, n), workers=self.workers)
        out = out.reshape(len(images), -1)[:, self.inside]
        centre = np.full((len(images), 2), self.box // 2, np.float64)
        if shifts_px is not None:
            centre = centre - np.asarray(shifts_px, np.float64)
        # e^{2πi k·(c + s)/n}, separable: one factor per column (x) and one per row (y)
        ex = np.exp(2j * np.pi / n * np.outer(centre[:, 0], np.arange(n // 2 + 1))).astype(np.complex64)
        ey = np.exp(2j * np.pi / n * np.outer(centre[:, 1], np.fft.fftfreq(n, 1.0 / n))).astype(np.complex64)
        return out * ex[:, self._cols] * ey[:, self._rows]

    def ctf(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """The CTF of :func:`cryoweave.formats.ctf.ctf` at the samples ``(m, samples)`` float32, for per-image
        parameters (``ctf/`` fields without the prefix, arrays of length m): the phase ``χ`` is a linear
        combination of four per-sample terms, so one matrix product and one sine per sample."""
        p = {k: np.asarray(params[k], np.float64).reshape(-1) for k in CTF_KEYS}
        scale = 1.0 / (self.size * self.psize)  # padded-grid units → Å⁻¹
        kx, ky = self.kx * scale, self.ky * scale
        k2 = kx * kx + ky * ky
        lam = np.asarray(wavelength_A(p["accel_kv"]), np.float64).reshape(-1)
        mean, diff = (p["df1_A"] + p["df2_A"]) / 2, (p["df1_A"] - p["df2_A"]) / 2
        angle = 2 * p["df_angle_rad"]
        coefficients = np.stack([np.pi * lam * mean, np.pi * lam * diff * np.cos(angle),
                                 np.pi * lam * diff * np.sin(angle),
                                 -0.5 * np.pi * p["cs_mm"] * 1e7 * lam ** 3], axis=1)
        terms = np.stack([k2, kx * kx - ky * ky, 2 * kx * ky, k2 * k2])
        chi = coefficients @ terms - p["phase_shift_rad"][:, None]
        out = -np.sin(chi + np.arcsin(np.clip(p["amp_contrast"], -1, 1))[:, None])
        if np.any(p["bfactor"] != 0):
            out *= np.exp(-p["bfactor"][:, None] * k2 / 4.0)
        return out.astype(np.float32)

    # ------------------------------------------------------------------------------------- insertion
    def insert(self, values: np.ndarray, rotations: np.ndarray, ctf: np.ndarray | None = None) -> None:
        """Insert samples ``(m, samples)`` (bright, centred: see :meth:`spectra`) at rotations ``(m, 3, 3)``,
        with the bright-image CTF ``c`` ``(m, samples)`` (None: 1).

        Corner by corner, on arrays of one value per sample (they stay in cache), into ``np.add.at``."""
        rot = np.asarray(rotations, np.float32).reshape(-1, 3, 3)
        coords = np.matmul(rot[:, :, :2], self._k2)  # (m, 3, samples): R·(kx, ky, 0), x y z
        sign = np.where(coords[:, 0] < 0, np.float32(-1), np.float32(1))  # −p and the conjugate for x < 0
        coords *= sign[:, None, :]
        values = np.array(values, np.complex64)
        values.imag *= sign
        weight = None
        if ctf is not None:
            values *= ctf
            weight = (ctf * ctf).ravel()
        values = values.ravel()
        floors = np.floor(coords)
        coords -= floors  # the fractions
        half = self.size // 2
        index = floors.astype(np.int64)
        base = ((index[:, 2] + half) * self.shape[1] + (index[:, 1] + half)) * self.shape[2] + index[:, 0]
        base = base.ravel()
        fx, fy, fz = (coords[:, axis].ravel() for axis in range(3))
        gx, gy, gz = 1 - fx, 1 - fy, 1 - fz
        for corner, offset in enumerate(self._offsets):
            dz, dy, dx = corner >> 2, (corner >> 1) & 1, corner & 1
            w = (fz if dz else gz) * (fy if dy else gy)
            w *= fx if dx else gx
            where = base + offset
            np.add.at(self.data, where, values * w)
            if weight is not None:
                w *= weight
            np.add.at(self.weight, where, w)

    def add(self, other: Backprojector) -> None:
        """Add another accumulator of the same grid (a share of the particles inserted elsewhere)."""
        self.data += other.data
        self.weight += other.weight

    def transform(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data, weight)`` in ``rfftn`` layout ``(n, n, n//2 + 1)``, complex128 and float64, the ``x = 0``
        plane completed with its Hermitian mirror."""
        n, half = self.size, self.size // 2
        data = self.data.reshape(self.shape).astype(np.complex128)
        weight = self.weight.reshape(self.shape).astype(np.float64)
        # centred index i stands for k = i − n/2; its mirror −k is index n − i (index 0 ↔ the spare row n)
        plane, wplane = data[:, :, 0].copy(), weight[:, :, 0].copy()
        data[:, :, 0] += plane[::-1, ::-1].conj()
        weight[:, :, 0] += wplane[::-1, ::-1]
        data, weight = data[:n, :n, :half + 1], weight[:n, :n, :half + 1]
        return (np.fft.ifftshift(data, axes=(0, 1)), np.fft.ifftshift(weight, axes=(0, 1)))


# ---------------------------------------------------------------------------------------- the maps
def padded_radius(n: int) -> np.ndarray:
    """|k| of each voxel of the ``rfftn`` grid of an ``n³`` box (padded-grid units)."""
    full = np.fft.fftfreq(n, 1.0 / n)
    half = np.arange(n // 2 + 1)
    return np.sqrt(full[:, None, None] ** 2 + full[None, :, None] ** 2 + half[None, None, :] ** 2)


def shell_mean(values: np.ndarray, shells: np.ndarray, count: int) -> np.ndarray:
    """The mean of ``values`` over each shell ``0 … count − 1`` (voxels with a shell of −1 left out)."""
    inside = shells >= 0
    sums = np.bincount(shells[inside], values[inside], minlength=count)[:count]
    voxels = np.bincount(shells[inside], minlength=count)[:count]
    return np.divide(sums, voxels, out=np.zeros(count), where=voxels > 0)


@dataclass
class Grid:
    """The padded transform's geometry: shells in units of the *original* box (``round(|k| / pad)``)."""

    box: int
    pad: int

    def __post_init__(self) -> None:
        n = self.box * self.pad
        shells = np.rint(padded_radius(n) / self.pad).astype(np.int64)
        shells[shells > self.box // 2] = -1
        self.shells = shells

    def divide(self, data: np.ndarray, weight: np.ndarray, per_shell: np.ndarray) -> np.ndarray:
        """``data / max(weight + per_shell[shell], 1e-30)`` voxel by voxel; 0 beyond Nyquist."""
        inside = self.shells >= 0
        extra = np.where(inside, np.asarray(per_shell)[np.maximum(self.shells, 0)], np.inf)
        return np.where(inside, data / np.maximum(weight + extra, 1e-30), 0)

    def mean_weight(self, weight: np.ndarray) -> np.ndarray:
        """The mean weight of each shell ``0 … box // 2``."""
        return shell_mean(weight, self.shells, self.box // 2 + 1)


def to_map(spectrum: np.ndarray, box: int, pad: int) -> np.ndarray:
    """A padded transform (``rfftn`` layout) back to a map of ``box³`` (float32), gridding corrected."""
    n = box * pad
    fft = fft_module()
    volume = np.fft.fftshift(fft.irfftn(spectrum, s=(n, n, n), workers=default_workers()))
    start = n // 2 - box // 2
    volume = volume[start:start + box, start:start + box, start:start + box]
    axis = np.sinc((np.arange(box) - box // 2) / n) ** 2
    volume = volume / (axis[:, None, None] * axis[None, :, None] * axis[None, None, :])
    return volume.astype(np.float32)


def half_map(data: np.ndarray, weight: np.ndarray, grid: Grid, floor: float = 1e-3) -> np.ndarray:
    """A half map: ``data / max(weight, floor · the shell's mean weight)`` (the floor only keeps voxels the
    particles hardly sampled from blowing up); nothing beyond Nyquist."""
    low = floor * grid.mean_weight(weight)
    raised = np.maximum(weight, np.where(grid.shells >= 0, low[np.maximum(grid.shells, 0)], 0))
    return to_map(grid.divide(data, raised, np.zeros(len(low))), grid.box, grid.pad)


def wiener_map(data: np.ndarray, weight: np.ndarray, grid: Grid, half_fsc: np.ndarray) -> np.ndarray:
    """The full map with a Wiener term from the half maps' FSC: ``data / (weight + τ)``, ``τ`` per shell the
    mean weight over the full map's SSNR ``2·FSC / (1 − FSC)`` (FSC clipped to [0.001, 0.999])."""
    f = np.clip(np.asarray(half_fsc, np.float64)[:grid.box // 2 + 1], 1e-3, 0.999)
    return to_map(grid.divide(data, weight, grid.mean_weight(weight) / (2 * f / (1 - f))), grid.box, grid.pad)
