"""Simulate Data: particle images of a map with a known ground truth (the map of
:mod:`cryoweave.jobs.library.phantom`, or any other).

Simulate Data (``simulate_data``)
---------------------------------
``num_particles`` images of a map, in the pose convention of :mod:`cryoweave.jobs.library.symmetry`
(``R = rotvec_to_matrix(alignments3D/pose)``, image ``(x, y) = ∫ V(R·(x, y, z)) dz``), made in chunks:

* **poses** uniform on SO(3) (normalised Gaussian quaternions), ``split`` 0/1 at random (half sets);
* **projection** (:class:`Projector`) by the Fourier-slice theorem: the map is zero-padded to twice its box,
  transformed once, and for each image the central slice ``R·(kx, ky, 0)`` of the padded grid is sampled
  by trilinear interpolation of the complex transform (within the Nyquist circle of the original box;
  nothing beyond it), transformed back and cropped to the box. Trilinear interpolation apodises the
  projection by ``sinc²(x / 2n)·sinc²(y / 2n)·sinc²(z / 2n)`` (map coordinates, n the box) on average, so the
  map is first divided by that (gridding correction): images of Gaussian blobs then agree with their
  analytic projections to about 2 % (7 % without the correction). Without it (``gridding=False``) the
  identity pose gives exactly ``V.sum(axis=0)`` of a band-limited map;
* **shift** ``s = alignments3D/shift`` (px) drawn uniformly in ``[−shift_max_px, shift_max_px]`` per axis
  (default 0): the image is the projection translated by ``−s`` (translating it by ``+s`` centres the
  particle): CryoSPARC's ``shift``, RELION's ``rlnOrigin``, as cryoDRGN reads them; a Fourier phase;
* **CTF** (``apply_ctf``, :mod:`cryoweave.formats.ctf`): ``image = F⁻¹[CTF · F[shifted projection]]`` on the
  box's own FFT grid, with ``df1``, ``df2`` drawn as a mean defocus uniform in ``[defocus_min_A,
  defocus_max_A]`` ± half an astigmatism uniform in ``[0, astigmatism_A]``, ``df_angle`` uniform in [0, π);
* **noise** (``snr`` set): white Gaussian noise of variance ``signal variance / snr``, where the signal
  variance is the mean per-pixel variance over the whole box of the clean images (after CTF) of the first
  chunk; one noise level for the whole data set (logged).

``blob/sign`` is −1 with the CTF (positive density times a CTF that is negative at low frequency: dark
particles, as extracted from micrographs) and +1 without it (the plain projection: bright density).
Output ``particles`` (new uids) with ``blob``, ``ctf`` (type ``simulated``; ``scale`` 1, ``anisomag``
identity, the higher-order aberrations 0; only when the CTF was applied) and ``alignments3D`` (the true
pose, shift, split, ``psize_A``).
**Given poses**: with particles connected to the optional input ``poses``, one image per particle, with its
uid, pose, shift (rescaled to this map's pixels) and split; the CTF and noise are still drawn from the
parameters. Micrographs are not simulated yet.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import CryoweaveError, DataError, ParamError
from cryoweave.formats.ctf import ctf, frequencies
from cryoweave.formats.geometry import rotvec_to_matrix
from cryoweave.formats.mrc import read_header, read_images
from cryoweave.jobs.library.common import (
    LibraryJob,
    StackOutput,
    check_files,
    check_float16,
    count_param,
    param,
    shifts_px,
)
from cryoweave.jobs.library.fourier import default_workers, fft_module
from cryoweave.spec import result_fields

POINTS_PER_CHUNK = 1 << 22  # slice samples interpolated per chunk of particles

# ------------------------------------------------------------------------------------ projection
class Projector:
    """Projections of one cubic map (``(n, n, n)``, ``n`` even) at many poses; see the module's docstring."""

    def __init__(self, volume: np.ndarray, pad: int = 2, gridding: bool = True):
        volume = np.asarray(volume, dtype=np.float32)
        n = volume.shape[0]
        if volume.ndim != 3 or volume.shape != (n, n, n) or n % 2:
            raise DataError(f"a map to project must be a cube with an even box, not {volume.shape}")
        self.box, self.size = n, pad * n
        size = self.size
        if gridding:  # undo trilinear interpolation's apodisation: sinc² of the distance / padded box, per axis
            axis = (np.sinc((np.arange(n) - n // 2) / size) ** 2).astype(np.float32)
            volume = volume / (axis[:, None, None] * axis[None, :, None] * axis[None, None, :])
        padded = np.zeros((size,) * 3, np.float32)
        start = size // 2 - n // 2
        padded[start:start + n, start:start + n, start:start + n] = volume
        fft = fft_module()
        # origin (the map's centre, voxel n // 2) at index 0: the transform is the one about the centre
        self.transform = fft.fftn(np.fft.ifftshift(padded), workers=default_workers()).astype(np.complex64).ravel()
        ky = np.fft.fftfreq(size, 1.0 / size)
        kx = np.fft.rfftfreq(size, 1.0 / size)
        kyy, kxx = np.meshgrid(ky, kx, indexing="ij")
        self.inside = np.flatnonzero((kxx * kxx + kyy * kyy).ravel() <= (size / 2) ** 2)
        self.kx = kxx.ravel()[self.inside].astype(np.float32)
        self.ky = kyy.ravel()[self.inside].astype(np.float32)

    def slices(self, rotations: np.ndarray) -> np.ndarray:
        """The central slices ``(m, size, size // 2 + 1)`` (rfft layout of the padded image) for ``(m, 3, 3)``."""
        size = self.size
        rot = np.asarray(rotations, np.float32)
        out = np.zeros((len(rot), size * (size // 2 + 1)), np.complex64)
        step = max(1, (1 << 16) // len(self.kx))
        for first in range(0, len(rot), step):
            r = rot[first:first + step]
            # the sample's coordinates x, y, z in the map's frame: R·(kx, ky, 0), in padded-grid units
            coords = [r[:, axis, 0, None] * self.kx + r[:, axis, 1, None] * self.ky for axis in range(3)]
            floors = [np.floor(c) for c in coords]
            fracs = [c - f for c, f in zip(coords, floors, strict=True)]
            base = [f.astype(np.int64) for f in floors]
            acc = np.zeros(coords[0].shape, np.complex64)
            for dz in (0, 1):
                wz = fracs[2] if dz else 1 - fracs[2]
                iz = ((base[2] + dz) % size) * (size * size)
                for dy in (0, 1):
                    wzy = wz * (fracs[1] if dy else 1 - fracs[1])
                    izy = iz + ((base[1] + dy) % size) * size
                    for dx in (0, 1):
                        weight = wzy * (fracs[0] if dx else 1 - fracs[0])
                        acc += weight * self.transform[izy + (base[0] + dx) % size]
            out[first:first + step, self.inside] = acc
        return out.reshape(len(rot), size, size // 2 + 1)

    def project(self, rotations: np.ndarray) -> np.ndarray:
        """The projections ``(m, box, box)`` float32 at rotation matrices ``(m, 3, 3)`` (view → map)."""
        fft = fft_module()
        rotations = np.asarray(rotations).reshape(-1, 3, 3)
        padded = fft.irfft2(self.slices(rotations), s=(self.size, self.size), workers=default_workers())
        padded = np.fft.fftshift(padded, axes=(-2, -1))
        start = self.size // 2 - self.box // 2
        return np.ascontiguousarray(padded[:, start:start + self.box, start:start + self.box], dtype=np.float32)


def project(volume: np.ndarray, rotations: np.ndarray, gridding: bool = True) -> np.ndarray:
    """Projections of ``volume`` at rotation matrices ``(m, 3, 3)`` (one-off; see :class:`Projector`)."""
    return Projector(volume, gridding=gridding).project(rotations)


def filter_images(images: np.ndarray, psize_A: float, ctf_params: dict[str, np.ndarray] | None,
                  shifts: np.ndarray | None) -> np.ndarray:
    """``F⁻¹[CTF · phase(shift) · F[images]]`` with per-image CTF parameters (``ctf/`` fields without the
    prefix, arrays of length m) and shifts ``(m, 2)`` (px); either may be None."""
    fft = fft_module()
    box = images.shape[-1]
    kx, ky = frequencies(box, psize_A)
    factor = np.ones((1, *kx.shape), np.complex128)
    if shifts is not None and np.any(shifts):
        s = np.asarray(shifts, np.float64) * psize_A  # Å, with k in Å⁻¹
        factor = np.exp(2j * np.pi * (kx * s[:, 0, None, None] + ky * s[:, 1, None, None]))  # translate by −s
    if ctf_params is not None:
        p = {k: np.asarray(v, np.float64)[:, None, None] for k, v in ctf_params.items()}
        factor = factor * ctf(kx, ky, p["df1_A"], p["df2_A"], p["df_angle_rad"], p["accel_kv"], p["cs_mm"],
                              p["amp_contrast"], p["phase_shift_rad"], p["bfactor"])
    spectrum = fft.rfft2(images, workers=default_workers()) * factor
    return fft.irfft2(spectrum, s=images.shape[-2:], workers=default_workers()).astype(np.float32)


def uniform_rotvecs(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rotation vectors of rotations uniform on SO(3) (normalised 4D Gaussian quaternions)."""
    q = rng.normal(size=(count, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    sin_half = np.linalg.norm(q[:, 1:], axis=1)
    angle = 2 * np.arctan2(sin_half, q[:, 0])
    axis = q[:, 1:] / np.where(sin_half > 0, sin_half, 1.0)[:, None]
    return axis * angle[:, None]


# ---------------------------------------------------------------------------------------- the jobs
def _load_map(ctx: Any) -> tuple[np.ndarray, float]:
    group = ctx.load_input("volume", slots=["map"])
    if len(group) != 1:
        raise DataError(f"input 'volume' holds {len(group):,} maps; Simulate Data projects one")
    path = str(group["map/path"][0])
    try:
        check_files([ctx.file(path)], "map files")
        header = read_header(ctx.file(path))
    except (CryoweaveError, OSError) as err:
        raise DataError(f"input 'volume': the map {path} cannot be read ({err})") from None
    psize = float(group["map/psize_A"][0])
    if not (math.isfinite(psize) and psize > 0):
        raise DataError(f"input 'volume': map/psize_A is {psize:g}, not a pixel size")
    n = header.nx
    if header.shape != (n, n, n) or n % 2:
        raise DataError(f"input 'volume': the map {path} is {header.nx}×{header.ny}×{header.nz} voxels; Simulate "
                        "Data needs a cube with an even box")
    return read_images(header).astype(np.float32), psize


def _draw(params: dict[str, Any], count: int, psize: float) -> tuple[Dataset, Dataset]:
    """Poses, shifts, splits and CTF parameters of every particle (all checked first)."""
    dmin, dmax = float(params.get("defocus_min_A") or 0.0), float(params.get("defocus_max_A") or 0.0)
    astig = float(params.get("astigmatism_A") or 0.0)
    shift_max = float(params.get("shift_max_px") or 0.0)
    if dmin > dmax:
        raise ParamError(f"defocus_min_A ({dmin:g}) is above defocus_max_A ({dmax:g})")
    if min(astig, shift_max) < 0:
        raise ParamError("astigmatism_A and shift_max_px must be 0 or more")
    kv, cs, amp = (float(params[k]) for k in ("accel_kv", "cs_mm", "amp_contrast"))
    if not kv > 0 or not 0 <= amp < 1:
        raise ParamError(f"accel_kv must be above 0 and amp_contrast in [0, 1), not {kv:g} and {amp:g}")
    rng = np.random.default_rng(int(params.get("seed") or 0))
    uids = generate_uids(count)
    align = Dataset.allocate(count, result_fields("alignments3D"))
    align["uid"] = uids
    align["alignments3D/pose"] = uniform_rotvecs(count, rng)
    align["alignments3D/shift"] = rng.uniform(-shift_max, shift_max, (count, 2))
    align["alignments3D/split"] = rng.integers(0, 2, count)
    align["alignments3D/psize_A"] = psize
    mean = rng.uniform(dmin, dmax, count)
    half = rng.uniform(0, astig, count) / 2
    ctf_ds = Dataset.allocate(count, result_fields("ctf"))
    ctf_ds["uid"] = uids
    ctf_ds["ctf/type"] = np.full(count, "simulated", dtype=object)
    ctf_ds["ctf/df1_A"], ctf_ds["ctf/df2_A"] = mean + half, mean - half
    ctf_ds["ctf/df_angle_rad"] = rng.uniform(0, np.pi, count)
    ctf_ds["ctf/accel_kv"], ctf_ds["ctf/cs_mm"], ctf_ds["ctf/amp_contrast"] = kv, cs, amp
    ctf_ds["ctf/bfactor"] = float(params.get("bfactor") or 0.0)
    ctf_ds["ctf/scale"] = 1.0
    ctf_ds["ctf/anisomag"] = np.array([1.0, 0.0, 0.0, 1.0])
    return align, ctf_ds


def _given_poses(ctx: Any, requested: int) -> Dataset | None:
    """The particles of the optional input ``poses`` (their uids, poses, shifts and splits), if connected."""
    if not ctx.record.inputs.get("poses"):
        return None
    given = ctx.load_input("poses", slots=["alignments3D"])
    if not len(given):
        raise DataError("input 'poses' holds no particles: connect particles with alignments3D, or disconnect it")
    if len(given) != requested:
        ctx.log(f"{len(given):,} particles at the poses of input 'poses' (num_particles, {requested:,}, is not used)")
    return given


def _use_poses(align: Dataset, ctf_ds: Dataset, given: Dataset, psize: float) -> None:
    """Take the uids, poses, shifts (rescaled to this map's pixels) and splits of the given particles."""
    align["uid"] = ctf_ds["uid"] = given["uid"]
    align["alignments3D/pose"] = given["alignments3D/pose"]
    align["alignments3D/shift"] = shifts_px(given, psize)
    if "alignments3D/split" in given:
        align["alignments3D/split"] = given["alignments3D/split"]


CTF_KEYS = ("df1_A", "df2_A", "df_angle_rad", "accel_kv", "cs_mm", "amp_contrast", "phase_shift_rad", "bfactor")
"""The ``ctf/`` fields that :func:`filter_images` reads, in :func:`cryoweave.formats.ctf.ctf`'s order."""


def _simulate(ctx: Any) -> None:
    params = ctx.params
    count = count_param(params, "num_particles")
    snr = params.get("snr")
    if snr is not None and not snr > 0:
        raise ParamError(f"snr must be above 0 (or unset for no noise), not {snr!r}")
    per_stack = count_param(params, "stack_size")
    volume, psize = _load_map(ctx)
    box = volume.shape[0]
    given = _given_poses(ctx, count)
    count = len(given) if given is not None else count
    align, ctf_ds = _draw(params, count, psize)
    if given is not None:
        _use_poses(align, ctf_ds, given, psize)
    apply_ctf = bool(params.get("apply_ctf", True))
    dtype = "float16" if params.get("float16") else "float32"
    projector = Projector(volume)
    chunk = max(1, POINTS_PER_CHUNK // len(projector.kx))
    output = StackOutput(ctx, "simulated", count, (box, box), psize, dtype, per_stack)
    sigma = None
    try:
        for number, start in enumerate(range(0, count, chunk)):
            rows = slice(start, min(start + chunk, count))
            images = projector.project(rotvec_to_matrix(align["alignments3D/pose"][rows]))
            ctf_params = {k: ctf_ds[f"ctf/{k}"][rows] for k in CTF_KEYS} if apply_ctf else None
            images = filter_images(images, psize, ctf_params, align["alignments3D/shift"][rows])
            if snr is not None:
                if sigma is None:
                    sigma = math.sqrt(float(images.var(axis=(1, 2)).mean()) / snr)
                    ctx.log(f"noise σ {sigma:.4g} (signal variance {sigma * sigma * snr:.4g}, SNR {snr:g})")
                noise_rng = np.random.default_rng([int(params.get("seed") or 0), number])
                images += noise_rng.normal(0.0, sigma, images.shape).astype(np.float32)
            if dtype == "float16":
                check_float16(images, rows, align)
            output.write(images)
            ctx.progress(rows.stop, count, f"simulated {rows.stop:,} of {count:,} particles")
        blob = output.blob(align, sign=-1.0 if apply_ctf else 1.0)
        ctx.save_output("particles", (blob.innerjoin(ctf_ds) if apply_ctf else blob).innerjoin(align))
    except BaseException:
        output.abort()
        raise
    ctx.log(f"{count:,} particles of {box} px at {psize:g} Å/px, CTF {'on' if apply_ctf else 'off'}, "
            f"{'no noise' if snr is None else f'SNR {snr:g}'}")


SIMULATE = {
    "type": "simulate_data",
    "title": "Simulate Data",
    "description": "Particle images of a map at random poses (uniform on SO(3)): Fourier-slice projection, CTF, "
                   "noise at a chosen SNR; the true poses, CTF and half-set splits are saved with the images.",
    "category": "utilities",
    "inputs": [{"name": "volume", "type": "volume", "title": "Map", "slots": ["map"], "count_min": 1, "count_max": 1},
               {"name": "poses", "type": "particle", "title": "Particles whose poses to use (optional)",
                "slots": ["alignments3D"], "count_min": 0, "count_max": 1}],
    "outputs": [{"name": "particles", "type": "particle", "title": "Simulated particles",
                 "slots": ["blob", "?ctf", "alignments3D"]}],
    "params": [
        param("num_particles", "integer", "Number of particles (unused when particles are connected to 'poses')",
              default=10_000, minimum=1),
        param("apply_ctf", "boolean", "Multiply the images by the CTF", default=True),
        param("defocus_min_A", "number", "Smallest mean defocus (Å, underfocus positive)", default=10_000.0),
        param("defocus_max_A", "number", "Largest mean defocus (Å)", default=25_000.0),
        param("astigmatism_A", "number", "Largest |df1 − df2| (Å); drawn uniformly up to it", default=500.0),
        param("accel_kv", "number", "Accelerating voltage (kV)", default=300.0),
        param("cs_mm", "number", "Spherical aberration (mm)", default=2.7),
        param("amp_contrast", "number", "Amplitude contrast", default=0.1),
        param("bfactor", "number", "CTF envelope B-factor (Å²): exp(−B·k²/4)", default=0.0),
        param("snr", "number", "Signal-to-noise ratio: noise variance = mean clean-image variance / SNR "
              "(measured on the first chunk); empty (the default) for no noise"),
        param("shift_max_px", "number", "Largest random shift per axis (px); alignments3D/shift is the translation "
              "that centres each particle (CryoSPARC's shift, RELION's origin)", default=0.0),
        param("float16", "boolean", "Save the stacks as 16-bit floats", default=False),
        param("stack_size", "integer", "Particles per stack file", default=10_000, minimum=1),
        param("seed", "integer", "Random seed", default=0),
    ],
    "resources": {"cpu": 2, "ram_gb": 2.0},
}

JOBS = [LibraryJob(SIMULATE, _simulate)]
