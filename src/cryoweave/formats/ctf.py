"""The contrast transfer function (CTF) of a transmission electron microscope, as RELION and CryoSPARC write it.

For a spatial frequency ``k = (kx, ky)`` in Å⁻¹ (``|k| = k``, direction ``θ = atan2(ky, kx)``)::

    λ      = 12.2643247 / sqrt(V · (1 + 0.978466e-6 · V))          Å, V the voltage in volts (relativistic)
    Δf(θ)  = ½(df1 + df2) + ½(df1 − df2) · cos(2(θ − df_angle))    Å, positive = underfocus
    χ(k)   = π·λ·Δf(θ)·k² − (π/2)·Cs·λ³·k⁴ − phase_shift          Cs in Å (cs_mm · 10⁷)
    CTF(k) = −(√(1 − A²)·sin χ + A·cos χ) · exp(−B·k²/4)           A the amplitude contrast, B the B-factor (Å²)

(RELION's ``CTF::getCTF`` and CryoSPARC's convention: ``df1_A``/``df2_A``/``df_angle_rad``/``cs_mm``/
``amp_contrast``/``phase_shift_rad``/``bfactor`` of the ``ctf`` result.) At ``k = 0`` the CTF is ``−A``
(no phase shift), and it stays negative at low frequencies for an underfocused image: a projection of
positive density multiplied by this CTF is dark on a light background, as the particles of a micrograph
are. The defocus ``df1`` lies along the direction ``df_angle`` (radians from the x axis, towards y), ``df2``
perpendicular to it.

Every argument broadcasts, so one call evaluates a stack: frequencies of shape ``(ny, nx)`` with
parameters of shape ``(n, 1, 1)`` give ``(n, ny, nx)``. :func:`frequencies` makes the frequency grids of an
image's FFT (the full ``fft2`` layout or the ``rfft2`` half plane). Images are modelled as
``image = F⁻¹[CTF · F[projection]]`` (Simulate Data); a reconstruction divides it out again (Wiener
filtering with ``CTF²``).
"""

from __future__ import annotations

import numpy as np

ELECTRON_CONSTANT = 12.2643247
"""h / sqrt(2·m₀·e) in Å·V^½: the non-relativistic wavelength is this / sqrt(V)."""

RELATIVISTIC = 0.978466e-6
"""e / (2·m₀·c²) in V⁻¹: the relativistic correction of the accelerating voltage."""


def wavelength_A(accel_kv: float | np.ndarray) -> float | np.ndarray:
    """The relativistic electron wavelength (Å) at an accelerating voltage in kV.

    >>> round(wavelength_A(300.0), 6)
    0.019687
    """
    volts = np.asarray(accel_kv, dtype=np.float64) * 1e3
    out = ELECTRON_CONSTANT / np.sqrt(volts * (1.0 + RELATIVISTIC * volts))
    return float(out) if out.ndim == 0 else out


def frequencies(box: int, psize_A: float, *, half: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(kx, ky)`` in Å⁻¹ of the FFT of a ``box × box`` image with pixels of ``psize_A`` Å: shapes ``(box,
    box // 2 + 1)`` for ``rfft2`` (``half=True``), ``(box, box)`` for ``fft2``; the zero frequency at ``[0, 0]``.
    """
    ky = np.fft.fftfreq(box, psize_A)
    kx = np.fft.rfftfreq(box, psize_A) if half else ky
    return np.broadcast_to(kx[None, :], (box, len(kx))), np.broadcast_to(ky[:, None], (box, len(kx)))


def ctf(kx: np.ndarray, ky: np.ndarray, df1_A, df2_A, df_angle_rad, accel_kv, cs_mm, amp_contrast,
        phase_shift_rad=0.0, bfactor=0.0) -> np.ndarray:
    """The CTF at frequencies ``(kx, ky)`` (Å⁻¹); see the module's docstring for the formula and the sign.
    All arguments broadcast; the result is float64.

    >>> float(ctf(np.array(0.0), np.array(0.0), 15000, 15000, 0, 300, 2.7, 0.1))
    -0.1
    """
    kx = np.asarray(kx, dtype=np.float64)
    ky = np.asarray(ky, dtype=np.float64)
    lam = wavelength_A(accel_kv)
    k2 = kx * kx + ky * ky
    theta = np.arctan2(ky, kx)
    df1, df2 = np.asarray(df1_A, np.float64), np.asarray(df2_A, np.float64)
    defocus = 0.5 * (df1 + df2) + 0.5 * (df1 - df2) * np.cos(2.0 * (theta - np.asarray(df_angle_rad, np.float64)))
    cs_A = np.asarray(cs_mm, np.float64) * 1e7
    chi = np.pi * lam * defocus * k2 - 0.5 * np.pi * cs_A * lam ** 3 * k2 * k2 - np.asarray(phase_shift_rad)
    amp = np.asarray(amp_contrast, np.float64)
    out = -(np.sqrt(1.0 - amp * amp) * np.sin(chi) + amp * np.cos(chi))
    bfactor = np.asarray(bfactor, np.float64)
    if np.any(bfactor != 0):
        out = out * np.exp(-bfactor * k2 / 4.0)
    return out
