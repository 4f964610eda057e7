"""Fourier cropping and padding of images and volumes, and a soft-edged low-pass filter.

The conventions, shared by every job that changes a box size in Fourier space (Downsample
Particles, Volume Tools):

* **Axes.** Only the last ``ndim`` axes are transformed: ``ndim=2`` for one image or a batch
  ``(n, ny, nx)``; ``ndim=3`` for a volume ``(nz, ny, nx)`` (or a batch of volumes). Any leading
  axes are a batch. Boxes need not be square; ``box`` is one size for all ``ndim`` axes or one
  per axis.
* **Real in, real out.** Input is read as float32 (float64 stays float64); the output has the
  new box along the transformed axes and the same dtype.
* **Scale.** Values keep their meaning: the real-space mean (the zero frequency) is preserved
  exactly, so a pixel value means the same at the new size (a constant image stays that constant;
  this is the DFT with ``norm="forward"``: the forward transform divides by the number of pixels,
  the inverse does not multiply).
* **Which frequencies.** Cropping to ``m`` keeps the frequencies ``k`` (in cycles per box) with
  ``-m//2 <= k <= (m-1)//2``; padding to ``m`` puts the ``n`` frequencies of the input there and
  zeros elsewhere. Nothing is done along an axis whose size does not change.
* **Nyquist, even boxes** (as ``scipy.signal.resample``). Along an axis cropped to an even ``m``,
  the input's two components at ``+m/2`` and ``-m/2`` land on the same (Nyquist) frequency of the
  new grid: they are *summed* there. Along an axis padded from an even ``n``, the input's Nyquist
  component is *split* in equal halves between ``+n/2`` and ``-n/2``. So the output is real and
  Hermitian-symmetric, the operation commutes with flips and transposes of the axes, padding is
  exact trigonometric interpolation (the input's samples are kept: padding 64 → 128 and taking
  every other pixel gives the input back), and cropping undoes padding exactly
  (``fourier_resize(fourier_resize(x, 2 * n), n) == x``). A plain centred crop that takes only
  the ``-m/2`` row and then the real part differs from this only in the Nyquist rows / planes.

The transforms are real FFTs in single precision, one axis at a time, each axis cropped as soon
as it is transformed (``scipy.fft``, threaded over the batch with ``workers``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from cryoweave.errors import ParamError

BATCH_BYTES = 4 << 20
"""Images of a batch are transformed this many input bytes at a time (keeps the work in cache)."""


sfft = None
"""The FFT module: ``scipy.fft``, imported at first use (every command loads the job library, few
transform anything); a benchmark may put another with the same functions here."""


def fft_module():
    global sfft
    if sfft is None:
        import scipy.fft

        sfft = scipy.fft
    return sfft


def default_workers() -> int:
    """Threads for the FFTs: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _real(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if np.iscomplexobj(array):
        raise ParamError(f"Fourier resizing takes real images or volumes, not {array.dtype} values")
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)


def _sizes(array: np.ndarray, box: int | Sequence[int], ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The input's and the output's sizes along the last ``ndim`` axes."""
    if ndim < 1 or array.ndim < ndim:
        raise ParamError(f"cannot transform the last {ndim} axes of an array of shape {array.shape}")
    before = tuple(int(n) for n in array.shape[-ndim:])
    after = (int(box),) * ndim if np.isscalar(box) else tuple(int(b) for b in box)
    if len(after) != ndim or min(after) < 1:
        raise ParamError(f"a new box must be {ndim} sizes of at least 1 pixel, not {box!r}")
    return before, after


def _half(spec: np.ndarray, n: int, m: int) -> np.ndarray:
    """Crop or pad the last (half-spectrum, ``rfft``) axis from ``n`` to ``m`` real samples."""
    if m < n:
        out = np.ascontiguousarray(spec[..., :m // 2 + 1])
        if m % 2 == 0:
            out[..., m // 2] *= 2  # +m/2 and -m/2 summed (irfft keeps the real part of this bin)
        return out
    out = np.zeros((*spec.shape[:-1], m // 2 + 1), spec.dtype)
    out[..., :n // 2 + 1] = spec
    if n % 2 == 0:
        out[..., n // 2] *= 0.5  # split between +n/2 and its implied conjugate at -n/2
    return out


def _full(spec: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """Crop or pad a full (complex FFT) axis from ``n`` to ``m`` frequencies."""
    spec = np.moveaxis(spec, axis, 0)
    small = min(n, m)
    pos, neg = (small + 1) // 2, small // 2  # frequencies 0 … pos-1 and -neg … -1 of the smaller grid
    if m < n:
        out = np.empty((m, *spec.shape[1:]), spec.dtype)
        out[:pos] = spec[:pos]
        out[m - neg:] = spec[n - neg:]
        if m % 2 == 0:
            out[m // 2] += spec[m // 2]  # -m/2 (already there) plus +m/2
    else:
        out = np.zeros((m, *spec.shape[1:]), spec.dtype)
        out[:pos] = spec[:pos]
        out[m - neg:] = spec[n - neg:]
        if n % 2 == 0:
            out[m - n // 2] *= 0.5  # the input's Nyquist (-n/2) split between -n/2 and +n/2
            out[n // 2] = out[m - n // 2]
    return np.moveaxis(out, 0, axis)


def _resize(array: np.ndarray, before: tuple[int, ...], after: tuple[int, ...], workers: int) -> np.ndarray:
    """One batch: rfft along the last axis, cropped at once; each other axis that changes is
    transformed, cropped or padded and transformed back; then the inverse rfft."""
    sfft = fft_module()
    spec = sfft.rfft(array, axis=-1, norm="forward", workers=workers)
    spec = _half(spec, before[-1], after[-1])
    for axis in range(-2, -len(before) - 1, -1):
        n, m = before[axis], after[axis]
        if n != m:
            spec = sfft.fft(spec, axis=axis, norm="forward", overwrite_x=True, workers=workers)
            spec = _full(spec, n, m, axis)
            spec = sfft.ifft(spec, axis=axis, norm="forward", overwrite_x=True, workers=workers)
    return sfft.irfft(spec, n=after[-1], axis=-1, norm="forward", overwrite_x=True, workers=workers)


def _batched(array: np.ndarray, ndim: int, after: tuple[int, ...], function) -> np.ndarray:
    """``function`` applied to a batch (leading axes) a few MB at a time, into one output array."""
    lead = array.shape[:-ndim]
    flat = array.reshape(-1, *array.shape[-ndim:])
    out = np.empty((len(flat), *after), array.dtype)
    step = max(1, BATCH_BYTES // max(1, flat[:1].nbytes))
    for start in range(0, len(flat), step):
        out[start:start + step] = function(flat[start:start + step])
    return out.reshape(*lead, *after)


def fourier_resize(array: np.ndarray, box: int | Sequence[int], ndim: int = 2, *,
                   workers: int | None = None) -> np.ndarray:
    """Crop (or zero-pad) ``array`` in Fourier space to ``box`` pixels along its last ``ndim`` axes.

    ``array``: real, ``(…, ny, nx)`` for ``ndim=2`` (images), ``(…, nz, ny, nx)`` for ``ndim=3``
    (volumes); ``box``: the new size, one for every axis or one per axis. The result is real, of the
    input's float type (float32 unless float64), its mean equal to the input's, with the Nyquist
    conventions of this module (components at ``±m/2`` summed when cropping to an even ``m``, an
    even input's Nyquist component split in halves when padding). The new pixel size is the old one
    times ``old box / new box``. ``workers``: FFT threads (default: every CPU this process may use).

    >>> fourier_resize(np.ones((4, 64, 64), np.float32), 32).shape
    (4, 32, 32)
    """
    array = _real(array)
    before, after = _sizes(array, box, ndim)
    if before == after:
        return array.copy()
    workers = workers or default_workers()
    return _batched(array, ndim, after, lambda part: _resize(part, before, after, workers))


def _frequency(n: int, half: bool) -> np.ndarray:
    """Frequencies in cycles per pixel along an axis of ``n`` pixels (``half``: the rfft axis)."""
    return (np.arange(n // 2 + 1) / n if half else np.fft.fftfreq(n)).astype(np.float32)


def lowpass_weights(shape: Sequence[int], cutoff: float, width: float) -> np.ndarray:
    """The filter of :func:`lowpass` on an ``rfftn`` grid of real ``shape`` (the last axis halved)."""
    radius2 = np.zeros([1] * len(shape), np.float32)
    for axis, n in enumerate(shape):
        f = _frequency(n, axis == len(shape) - 1)
        radius2 = radius2 + np.square(f).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    radius = np.sqrt(radius2)
    if width > 0:
        ramp = np.clip((radius - (cutoff - width / 2)) / width, 0, 1)
        weights = (0.5 + 0.5 * np.cos(np.pi * ramp)).astype(np.float32)
    else:
        weights = (radius <= cutoff).astype(np.float32)
    weights[(0,) * len(shape)] = 1.0  # the mean is kept whatever the cutoff
    return weights


def lowpass(array: np.ndarray, cutoff: float, ndim: int = 2, *, pixel_size: float | None = None,
            width: float | None = None, workers: int | None = None) -> np.ndarray:
    """A soft-edged low-pass filter over the last ``ndim`` axes (the size does not change).

    ``cutoff``: with ``pixel_size`` (Å), a resolution in Å (the filter passes half at ``1/cutoff``
    Å⁻¹); without it, a frequency in cycles per pixel (0.5 is Nyquist). The edge is a raised cosine
    ``width`` cycles per pixel wide centred on the cutoff (default: 4 Fourier pixels of the
    largest axis, ``4 / max(box)``): 1 below ``cutoff - width/2``, 0 from ``cutoff + width/2``,
    ½ at the cutoff; ``width=0`` gives a hard edge (1 up to the cutoff). The radius is isotropic in
    physical frequency, so non-square boxes are fine. The mean (zero frequency) is always kept;
    float32 unless the input is float64.

    >>> float(lowpass(np.ones((64, 64), np.float32), 8.0, pixel_size=2.0).mean())
    1.0
    """
    array = _real(array)
    shape, _ = _sizes(array, 1, ndim)
    frequency = pixel_size / cutoff if pixel_size is not None and cutoff > 0 else cutoff
    if not (cutoff > 0 and frequency > 0):
        raise ParamError(f"a low-pass cutoff must be above 0, not {cutoff!r}")
    width = 4 / max(shape) if width is None else float(width)
    if width < 0:
        raise ParamError(f"a low-pass edge width must be 0 or more, not {width!r}")
    weights = lowpass_weights(shape, float(frequency), width)
    axes = tuple(range(-ndim, 0))
    workers = workers or default_workers()

    sfft = fft_module()

    def apply(part: np.ndarray) -> np.ndarray:
        spec = sfft.rfftn(part, axes=axes, norm="forward", workers=workers)
        spec *= weights
        return sfft.irfftn(spec, s=shape, axes=axes, norm="forward", overwrite_x=True, workers=workers)

    return _batched(array, ndim, shape, apply)
