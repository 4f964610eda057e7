"""Fourier shell correlation, masks, noise substitution and B-factor sharpening (numpy and scipy.fft).

The math that Validation (FSC) uses and that Homogeneous Reconstruction will reuse. Conventions:

* **Maps** are cubic ``(n, n, n)`` arrays (z, y, x) with a pixel size ``psize`` in Å.
* **Shells.** A Fourier voxel with integer frequency ``(kz, ky, kx)`` (cycles per box) lies in
  shell ``round(|k|)``; shells are 1 voxel thick, numbered ``0`` (the mean) to ``n // 2``
  (Nyquist). The corners beyond Nyquist are left out. Shell ``i`` has the spatial frequency
  ``i / (n · psize)`` Å⁻¹ (:func:`shell_frequencies`).
* **FSC** of shell ``i``: ``Σ Re(A·B*) / sqrt(Σ|A|² · Σ|B|²)`` over the shell's voxels (the full
  sphere: the half-space of the real FFT, with the voxels that stand for two counted twice), after
  both maps are multiplied by the mask when one is given. An empty sum gives 0.
* **Resolution at a threshold** (:func:`resolution_at`): the first shell after the mean whose FSC
  is below the threshold; the frequency is interpolated linearly between it and the shell before,
  and the resolution is its inverse in Å. A curve that never falls below it gives Nyquist
  (``2 · psize``).
* **Corrected FSC** (noise substitution, Chen et al. 2013, :func:`corrected_fsc`): from the first
  shell where the *unmasked* FSC falls below 0.8, the phases of both half maps are replaced by
  independent random ones; the masked FSC of those maps is ``FSC_n``, and from that shell on
  ``FSC_true = (FSC_t − FSC_n) / (1 − FSC_n)``, with ``FSC_n`` taken as 0 where it is negative (a
  negative noise correlation is sampling noise; it would raise the curve). Before it, ``FSC_t``.
* **B-factors** (:func:`sharpen`, :func:`guinier_bfactor`): a map's amplitudes fall as
  ``exp(−B s² / 4)`` (``s`` = 1/d in Å⁻¹); ``sharpen(map, B)`` multiplies by ``exp(−B s² / 4)``, so
  a negative B sharpens and ``sharpen(sharpen(m, B), −B) == m``. The Guinier estimate fits
  ``ln`` of the mean amplitude per shell against ``s²`` between 10 Å and the resolution:
  ``B = −4 · slope``; sharpening with ``−B`` flattens the map.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import numpy as np

from cryoweave.errors import DataError
from cryoweave.jobs.library.fourier import fft_module, lowpass
from cryoweave.jobs.library.volumes import threshold_mask

RANDOMIZE_BELOW = 0.8
"""Phases are randomised from the first shell where the unmasked FSC falls below this (Chen et al. 2013)."""


def _cubic(volume: np.ndarray, what: str = "map") -> int:
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise DataError(f"the {what} is {'×'.join(str(n) for n in volume.shape[::-1])} voxels; FSC needs a cubic map")
    return volume.shape[0]


def _radius(n: int) -> np.ndarray:
    """|k| (cycles per box) of each voxel of an ``rfftn`` grid of an ``(n, n, n)`` map."""
    full = np.fft.fftfreq(n) * n
    half = np.fft.rfftfreq(n) * n
    return np.sqrt(full[:, None, None] ** 2 + full[None, :, None] ** 2 + half[None, None, :] ** 2)


def _weights(n: int) -> np.ndarray:
    """How many voxels of the full FFT each ``rfftn`` voxel stands for (1 or 2), along the last axis."""
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def shell_index(n: int) -> np.ndarray:
    """The shell of each ``rfftn`` voxel (``-1`` beyond Nyquist)."""
    shells = np.rint(_radius(n)).astype(np.int64)
    shells[shells > n // 2] = -1
    return shells


def shell_frequencies(n: int, psize: float) -> np.ndarray:
    """The spatial frequency (Å⁻¹) of shells ``0 … n // 2``."""
    return np.arange(n // 2 + 1) / (n * psize)


def _shell_sums(values: np.ndarray, shells: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    inside = shells >= 0
    w = np.broadcast_to(weights, values.shape)[inside]
    return np.bincount(shells[inside], weights=values[inside] * w, minlength=count)


def fsc(map_a: np.ndarray, map_b: np.ndarray, mask: np.ndarray | None = None, psize: float = 1.0,
        ) -> tuple[np.ndarray, np.ndarray]:
    """The Fourier shell correlation of two maps: ``(frequencies in Å⁻¹, FSC)``, one per shell ``0 … n//2``."""
    n = _cubic(map_a, "first map")
    if map_b.shape != map_a.shape:
        raise DataError(f"the maps are {map_a.shape} and {map_b.shape} voxels; FSC needs one box")
    a, b = np.asarray(map_a, np.float64), np.asarray(map_b, np.float64)
    if mask is not None:
        a, b = a * mask, b * mask
    fft = fft_module()
    fa, fb = fft.rfftn(a), fft.rfftn(b)
    shells, weights, count = shell_index(n), _weights(n), n // 2 + 1
    cross = _shell_sums((fa * fb.conj()).real, shells, weights, count)
    pa = _shell_sums(np.abs(fa) ** 2, shells, weights, count)
    pb = _shell_sums(np.abs(fb) ** 2, shells, weights, count)
    denominator = np.sqrt(pa * pb)
    curve = np.divide(cross, denominator, out=np.zeros(count), where=denominator > 0)
    return shell_frequencies(n, psize), np.clip(curve, -1.0, 1.0)


def crossing_frequency(curve: np.ndarray, freqs: np.ndarray, threshold: float = 0.143) -> float | None:
    """The frequency where the curve first falls below ``threshold`` after shell 0 (interpolated); None: never."""
    below = np.flatnonzero(np.asarray(curve[1:]) < threshold)
    if not len(below):
        return None
    i = int(below[0]) + 1
    c0, c1 = float(curve[i - 1]), float(curve[i])
    t = (c0 - threshold) / (c0 - c1) if c0 != c1 else 0.0
    return float(freqs[i - 1] + np.clip(t, 0.0, 1.0) * (freqs[i] - freqs[i - 1]))


def resolution_at(curve: np.ndarray, freqs: np.ndarray, threshold: float = 0.143) -> float:
    """The resolution (Å) where the FSC first falls below ``threshold``; Nyquist when it never does."""
    frequency = crossing_frequency(curve, freqs, threshold)
    if frequency is None or frequency <= 0:
        frequency = float(freqs[-1]) if frequency is None else float(freqs[1])
    return 1.0 / frequency


# ------------------------------------------------------------------------------------------ masks
def centre_distance(n: int) -> np.ndarray:
    """The distance (voxels) of each voxel from the box centre ``n // 2``."""
    axis = np.arange(n) - n // 2
    return np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)


def soft_sphere_mask(box: int, radius_px: float, edge_px: float) -> np.ndarray:
    """1 within ``radius_px`` of the centre, a raised cosine to 0 at ``radius_px + edge_px`` (float32)."""
    r = centre_distance(box)
    if edge_px <= 0:
        return (r <= radius_px).astype(np.float32)
    ramp = np.clip((r - radius_px) / edge_px, 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def auto_mask(volume: np.ndarray, psize: float, *, lowpass_A: float = 15.0, fraction: float = 0.15,
              dilate_A: float = 3.0, soft_edge_A: float = 6.0) -> np.ndarray:
    """A soft mask around the density: the map low-passed to ``lowpass_A`` Å, thresholded at ``fraction`` of
    its maximum, dilated by ``dilate_A`` Å, with a raised-cosine edge ``soft_edge_A`` Å wide."""
    n = _cubic(volume)
    smooth = lowpass(np.asarray(volume, np.float32), max(lowpass_A, 2.5 * psize), ndim=3, pixel_size=psize,
                     width=4.0 / n)
    peak = float(smooth.max())
    if not peak > 0:
        raise DataError("the map has no positive density to make a mask from")
    return threshold_mask(smooth, fraction * peak, dilate_A, soft_edge_A, psize)


# ---------------------------------------------------------------------------------- noise substitution
def randomize_phases(volume: np.ndarray, from_shell: int, rng: np.random.Generator) -> np.ndarray:
    """The map with the phases of shells ``≥ from_shell`` (and the corners beyond Nyquist) made random."""
    n = _cubic(volume)
    fft = fft_module()
    spectrum = fft.rfftn(np.asarray(volume, np.float64))
    radius = _radius(n)
    where = np.rint(radius) >= from_shell
    phases = rng.uniform(0.0, 2 * np.pi, int(where.sum()))
    spectrum[where] = np.abs(spectrum[where]) * np.exp(1j * phases)
    return fft.irfftn(spectrum, s=volume.shape)


def randomization_shell(unmasked: np.ndarray, below: float = RANDOMIZE_BELOW) -> int:
    """The first shell after the mean where the unmasked FSC falls below ``below`` (Nyquist + 1: never)."""
    low = np.flatnonzero(np.asarray(unmasked[1:]) < below)
    return int(low[0]) + 1 if len(low) else len(unmasked)


@dataclass(frozen=True)
class Corrected:
    """A noise-substitution correction: the corrected curve, the phase-randomised maps' masked FSC, the shell
    phases were randomised from."""

    curve: np.ndarray
    noise: np.ndarray
    from_shell: int


def corrected_fsc(map_a: np.ndarray, map_b: np.ndarray, mask: np.ndarray, unmasked: np.ndarray,
                  masked: np.ndarray, seed: int = 0) -> Corrected:
    """The masked FSC corrected for the mask's own correlation by noise substitution (see the module)."""
    start = randomization_shell(unmasked)
    count = len(masked)
    if start >= count:
        return Corrected(np.array(masked, np.float64), np.zeros(count), start)
    rng = np.random.default_rng(seed)
    _, noise = fsc(randomize_phases(map_a, start, rng), randomize_phases(map_b, start, rng), mask)
    floor = np.clip(noise, 0.0, 0.999)
    curve = np.array(masked, np.float64)
    curve[start:] = (masked[start:] - floor[start:]) / (1.0 - floor[start:])
    return Corrected(curve, noise, start)


# --------------------------------------------------------------------------------------- B-factors
def _frequency2(n: int, psize: float) -> np.ndarray:
    return (_radius(n) / (n * psize)) ** 2


def sharpen(volume: np.ndarray, bfactor: float, psize: float) -> np.ndarray:
    """The map with its amplitudes multiplied by ``exp(−bfactor · s² / 4)`` (negative: sharper); float64 for a
    float64 map, else float32."""
    n = _cubic(volume)
    fft = fft_module()
    spectrum = fft.rfftn(np.asarray(volume, np.float64))
    spectrum *= np.exp(-bfactor * _frequency2(n, psize) / 4.0)
    out = fft.irfftn(spectrum, s=volume.shape)
    return out if np.asarray(volume).dtype == np.float64 else out.astype(np.float32)


def guinier_bfactor(volume: np.ndarray, psize: float, resolution_A: float, low_A: float = 10.0) -> float:
    """The map's B-factor (Å²) from a Guinier fit of ln(mean amplitude per shell) against s², from ``low_A`` Å
    to ``resolution_A`` Å; an error when fewer than 3 shells lie there."""
    n = _cubic(volume)
    spectrum = np.abs(fft_module().rfftn(np.asarray(volume, np.float64)))
    shells, weights, count = shell_index(n), _weights(n), n // 2 + 1
    sums = _shell_sums(spectrum, shells, weights, count)
    voxels = _shell_sums(np.ones_like(spectrum), shells, weights, count)
    s = shell_frequencies(n, psize)
    use = (s >= 1.0 / low_A) & (s <= 1.0 / resolution_A) & (sums > 0)
    if use.sum() < 3:
        raise DataError(f"a Guinier fit between {low_A:g} Å and {resolution_A:g} Å has {int(use.sum())} shells "
                        f"({n} px at {psize:g} Å/px); it needs 3")
    slope = np.polyfit(s[use] ** 2, np.log(sums[use] / voxels[use]), 1)[0]
    return float(-4.0 * slope)


# -------------------------------------------------------------------------------------------- files
def fsc_xml(freqs: np.ndarray, curve: np.ndarray, title: str = "FSC") -> str:
    """The EMDB FSC XML of one curve (x: spatial frequency in Å⁻¹, y: correlation)."""
    lines = [f'<fsc title={quoteattr(title)} xaxis="Resolution (A-1)" yaxis="Correlation Coefficient">']
    for x, y in zip(freqs, curve, strict=True):
        lines.append(f"  <coordinate>\n    <x>{float(x):.6f}</x>\n    <y>{float(y):.6f}</y>\n  </coordinate>")
    lines.append("</fsc>")
    return "\n".join(lines) + "\n"


def fsc_table(freqs: np.ndarray, curves: dict[str, np.ndarray]) -> str:
    """The curves as a whitespace-separated text table: shell, frequency, resolution, then one column per curve."""
    names = list(curves)
    rows = ["# " + " ".join(["shell", "frequency_A-1", "resolution_A", *names])]
    for i, f in enumerate(freqs):
        resolution = f"{1 / f:.4f}" if f > 0 else "inf"
        rows.append(" ".join([str(i), f"{f:.6f}", resolution, *(f"{float(curves[k][i]):.6f}" for k in names)]))
    return "\n".join(rows) + "\n"
