"""Homogeneous Reconstruction Only (``homo_reconstruct``): particles with poses → half maps, map, FSC.

Input ``particles`` with ``blob``, ``alignments3D`` and (for CTF correction) ``ctf``. The two half sets
are ``alignments3D/split`` (0 → A, 1 → B) when every particle has 0 or 1 there; otherwise (or with
``random_split``) a random, balanced split from ``seed``, written back in the output particles'
``alignments3D/split``. Each half is inserted into its own padded 3D transform
(:mod:`cryoweave.jobs.library.backproject`: trilinear Fourier insertion, ``Σ c·X`` over ``Σ c²``), after
each image is multiplied by a soft circular window (``window``, CryoSPARC's "window dataset"); with two
or more CPUs the halves are inserted by worker processes side by side. Then:

* ``map_half_A`` / ``map_half_B``: each half's ``data / weight`` (a weight floor of 0.1 % of the shell's
  mean), unfiltered; like every map here, multiplied by a soft sphere that leaves out the corners of the
  box (:func:`corner_mask`: the gridding correction amplifies the noise there, and nothing of the
  particle lies there);
* the FSC curves of :func:`cryoweave.jobs.library.validation.report_fsc` (no mask, spherical, the automatic
  mask, corrected by noise substitution), the resolution at ``threshold``, ``fsc.txt``, ``fsc.xml`` and the
  plot in the event log;
* ``mask_fsc``: the automatic soft mask (:func:`cryoweave.jobs.library.fsc.auto_mask` of the half maps'
  average);
* ``map``: both halves together with a Wiener term from the unmasked half-map FSC (per shell, the mean
  weight over the full map's SSNR ``2·FSC/(1 − FSC)``): the best linear estimate, not sharpened;
* ``map_sharp``: ``map`` sharpened with the Guinier B-factor (or ``bfactor_A2`` when given, as the
  B-factor to remove) and low-passed at the resolution with a soft edge.

With ``symmetry`` each image is inserted once per operator of the point group (the poses of the
asymmetric unit's copies, as Symmetry Expansion makes them). Output ``volume`` (one item, the five
slots) and ``particles`` (a new ``alignments3D``, everything else passed through).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.errors import DataError, ParamError
from cryoweave.formats import symmetry
from cryoweave.formats.geometry import rotvec_to_matrix
from cryoweave.formats.mrc import MrcHeader
from cryoweave.jobs.library import backproject as bp
from cryoweave.jobs.library import fsc as F
from cryoweave.jobs.library.common import (
    LibraryJob,
    blob_headers,
    box_of,
    check_indices,
    param,
    read_blobs,
    shifts_px,
)
from cryoweave.jobs.library.fourier import default_workers, lowpass
from cryoweave.jobs.library.maps import save_maps
from cryoweave.jobs.library.validation import report_fsc

CHUNK_BYTES = 64 << 20
"""Images (as float32) each process reads at a time."""

PARALLEL_FROM = 2_000
"""Particles from which the halves are inserted by worker processes (below, one process is faster)."""


@dataclass
class Share:
    """One worker's share of the particles: everything needed to insert them, in plain arrays."""

    headers: dict[str, MrcHeader]
    paths: np.ndarray
    idx: np.ndarray
    rotations: np.ndarray  # (m, 3, 3)
    shifts: np.ndarray  # (m, 2) px of the blob
    sign: np.ndarray  # (m,)
    ctf: dict[str, np.ndarray] | None
    box: int
    psize: float
    pad: int
    operators: np.ndarray  # (k, 3, 3)
    window: np.ndarray | None = None  # (box, box) real-space window, or None
    threads: int = 1


_progress: Any = None  # a shared counter of inserted particles, set in each worker process


def _init_worker(counter: Any) -> None:
    global _progress
    _progress = counter


def insert_share(share: Share) -> bp.Backprojector:
    """Insert one share of particles into a new accumulator (run in a worker process or in place)."""
    acc = bp.Backprojector(share.box, share.psize, share.pad)
    acc.workers = share.threads
    chunk = max(acc.batch, CHUNK_BYTES // (4 * share.box * share.box) // acc.batch * acc.batch)
    for start in range(0, len(share.paths), chunk):
        rows = slice(start, min(start + chunk, len(share.paths)))
        images = read_blobs(share.headers, share.paths[rows], share.idx[rows])
        for first in range(0, len(images), acc.batch):
            part = slice(first, min(first + acc.batch, len(images)))
            every = np.arange(rows.start, rows.stop)[part]
            block = images[part] * share.sign[every, None, None]
            if share.window is not None:
                block *= share.window
            values = acc.spectra(block, share.shifts[every])
            ctf = None
            if share.ctf is not None:
                ctf = -acc.ctf({k: v[every] for k, v in share.ctf.items()})  # the bright image's CTF
            for op in share.operators:
                acc.insert(values, op @ share.rotations[every], ctf)
            if _progress is not None:
                with _progress.get_lock():
                    _progress.value += len(every)
    return acc


def corner_mask(box: int) -> np.ndarray:
    """The soft sphere every map is multiplied by (RELION masks the corners of its reconstructions the same
    way): 1 to ``box/2 − edge − 1``, a raised cosine ``edge`` = 5 % of the box (at least 2 px) wide."""
    edge = max(2.0, round(0.05 * box))
    return F.soft_sphere_mask(box, box / 2 - edge - 1, edge)


def soft_window(box: int, inner: float, outer: float) -> np.ndarray:
    """CryoSPARC's real-space window: 1 within ``inner`` × half the box of the centre, a raised cosine to 0
    at ``outer`` × half the box (float32)."""
    axis = np.arange(box) - box // 2
    r = np.hypot(axis[:, None], axis[None, :]) / (box / 2)
    ramp = np.clip((r - inner) / max(outer - inner, 1e-6), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def _window_radii(params: dict[str, Any]) -> tuple[float, float]:
    inner = float(params.get("window_inner_radius") if params.get("window_inner_radius") is not None else 0.85)
    outer = float(params.get("window_outer_radius") if params.get("window_outer_radius") is not None else 0.99)
    if not 0 < inner <= outer <= 1:
        raise ParamError(f"the window radii must satisfy 0 < inner ({inner:g}) ≤ outer ({outer:g}) ≤ 1 (fractions of "
                         "half the box)")
    return inner, outer


# ------------------------------------------------------------------------------------------ inputs
def _particles(ctx: Any, use_ctf: bool) -> tuple[Dataset, dict[str, MrcHeader], int, float]:
    particles = ctx.load_input("particles", slots="default")
    if not len(particles):
        raise DataError("input 'particles' holds no particles")
    for field in ("alignments3D/pose", "alignments3D/shift"):
        if field not in particles:
            raise DataError(f"input 'particles' has no {field}: connect particles with 3D alignments (poses)")
    if use_ctf and "ctf/df1_A" not in particles:
        raise DataError("input 'particles' has no ctf result: connect particles with CTF parameters, or turn "
                        "ctf_correction off for images without a CTF")
    paths = particles["blob/path"].astype(str)
    headers = blob_headers(ctx, paths, "particle stacks")
    check_indices(headers, paths, particles["blob/idx"].astype(np.int64), "particles")
    ny, nx = box_of(headers, "the particle stacks")
    if ny != nx or ny % 2 or ny < 8:
        raise DataError(f"the particle images are {ny}×{nx} px; a reconstruction needs square images with an "
                        "even box of at least 8 px")
    psize = particles["blob/psize_A"].astype(np.float64) if "blob/psize_A" in particles else np.zeros(1)
    good = psize[np.isfinite(psize) & (psize > 0)]
    if not len(good) or np.ptp(good) > 1e-3 * good[0] or len(good) < len(psize):
        raise DataError(f"blob/psize_A of the particles is {_values(psize)}: the particles need one pixel size "
                        "(import them with their pixel size)")
    return particles, headers, ny, float(good[0])


def _values(values: np.ndarray) -> str:
    unique = np.unique(values)
    return ", ".join(f"{v:g}" for v in unique[:3]) + (" …" if len(unique) > 3 else "")


def _split(ctx: Any, particles: Dataset, params: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """The half set of each particle (0: A, 1: B) and whether it was drawn at random here."""
    given = particles.get("alignments3D/split", None)
    if given is not None and not params.get("random_split") and np.isin(given, (0, 1)).all() \
            and 0 < int(given.sum()) < len(given):
        return np.asarray(given, np.int64), False
    if len(particles) < 2:
        raise DataError("a reconstruction with half maps needs at least 2 particles")
    split = np.zeros(len(particles), np.int64)
    rng = np.random.default_rng(int(params.get("seed") or 0))
    split[rng.permutation(len(particles))[: len(particles) // 2]] = 1
    why = "as asked (random_split)" if params.get("random_split") else \
        "the input has no usable alignments3D/split (every particle 0 or 1, both present)"
    ctx.log(f"half sets drawn at random from seed {int(params.get('seed') or 0)}: {why}")
    return split, True


def _shares(particles: Dataset, headers: dict[str, MrcHeader], split: np.ndarray, box: int, psize: float,
            params: dict[str, Any], use_ctf: bool, processes: int) -> list[list[Share]]:
    """Each half's shares (``processes // 2`` each, at least one)."""
    pad = int(params.get("padding_factor") or 2)
    ops = symmetry.operators(params.get("symmetry") or "C1")
    rotations = rotvec_to_matrix(particles["alignments3D/pose"].astype(np.float64))
    shifts = shifts_px(particles, psize)
    sign = particles["blob/sign"].astype(np.float32) if "blob/sign" in particles else np.full(len(particles), -1.0)
    ctf = None
    if use_ctf:
        ctf = {k: (particles[f"ctf/{k}"].astype(np.float64) if f"ctf/{k}" in particles
                   else np.zeros(len(particles))) for k in bp.CTF_KEYS}
    paths, idx = particles["blob/path"].astype(str), particles["blob/idx"].astype(np.int64)
    window = soft_window(box, *_window_radii(params)) if params.get("window", True) else None
    per_half = max(1, processes // 2)
    threads = 1 if processes > 1 else default_workers()
    halves = []
    for half in (0, 1):
        rows = np.flatnonzero(split == half)
        pieces = np.array_split(rows, per_half) if len(rows) >= per_half else [rows]
        halves.append([Share({p: headers[p] for p in np.unique(paths[r])}, paths[r], idx[r], rotations[r],
                             shifts[r], sign[r], None if ctf is None else {k: v[r] for k, v in ctf.items()},
                             box, psize, pad, ops, window, threads) for r in pieces])
    return halves


def _insert(ctx: Any, halves: list[list[Share]], processes: int, total: int) -> list[bp.Backprojector]:
    """Insert every share (in worker processes when ``processes`` > 1); one accumulator per half."""
    if processes <= 1:
        out, done = [], 0
        for shares in halves:
            parts = []
            for share in shares:
                parts.append(insert_share(share))
                done += len(share.paths)
                ctx.progress(done, total, f"inserted {done:,} of {total:,} particles")
            for part in parts[1:]:
                parts[0].add(part)
            out.append(parts[0])
        return out
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker,
                             initargs=(counter,)) as pool:
        futures = [[pool.submit(insert_share, share) for share in shares] for shares in halves]
        pending = [f for fs in futures for f in fs]
        while pending:
            _, remaining = wait(pending, timeout=1.0)
            pending = list(remaining)
            ctx.progress(min(counter.value, total - 1) if pending else total, total,
                         f"inserted {counter.value:,} of {total:,} particles")
        out = []
        for fs in futures:
            acc = fs[0].result()
            for f in fs[1:]:
                acc.add(f.result())
            out.append(acc)
        return out


# --------------------------------------------------------------------------------------------- run
def _run(ctx: Any) -> None:
    params = ctx.params
    threshold = float(params.get("threshold") or 0.143)
    if not 0 < threshold < 1:
        raise ParamError(f"parameter 'threshold' must lie between 0 and 1, not {threshold:g}")
    pad = int(params.get("padding_factor") or 2)
    if pad not in (1, 2, 3):
        raise ParamError(f"parameter 'padding_factor' must be 1, 2 or 3, not {pad}")
    sym = symmetry.canonical(params.get("symmetry") or "C1")
    use_ctf = bool(params.get("ctf_correction", True))
    _window_radii(params)
    particles, headers, box, psize = _particles(ctx, use_ctf)
    split, drawn = _split(ctx, particles, params)
    processes = max(1, default_workers() // 2 * 2) if len(particles) >= PARALLEL_FROM else 1  # one or more per half
    counts = [int((split == h).sum()) for h in (0, 1)]
    inner, outer = _window_radii(params)
    window = f"{inner:g}–{outer:g}" if params.get("window", True) else "off"
    ctx.log(f"{len(particles):,} particles of {box} px at {psize:g} Å/px (half A {counts[0]:,}, half B "
            f"{counts[1]:,}); symmetry {sym}; CTF correction {'on' if use_ctf else 'off'}; padding {pad} "
            f"({pad * box}³ transform); window {window}; "
            f"{processes} process{'es' if processes > 1 else ''}")
    started = time.monotonic()
    halves = _shares(particles, headers, split, box, psize, params, use_ctf, processes)
    acc_a, acc_b = _insert(ctx, halves, processes, len(particles))
    seconds = time.monotonic() - started
    ctx.log(f"inserted {len(particles):,} particles in {seconds:.1f} s ({len(particles) / max(seconds, 1e-9):,.0f} "
            "particles/s)")

    grid = bp.Grid(box, pad)
    (data_a, weight_a), (data_b, weight_b) = acc_a.transform(), acc_b.transform()
    del acc_a, acc_b
    corners = corner_mask(box)
    map_a, map_b = bp.half_map(data_a, weight_a, grid) * corners, bp.half_map(data_b, weight_b, grid) * corners
    mask = F.auto_mask((map_a + map_b) / 2, psize)
    report = report_fsc(ctx, map_a.astype(np.float64), map_b.astype(np.float64), psize, mask,
                        "the automatic mask", threshold)
    full = bp.wiener_map(data_a + data_b, weight_a + weight_b, grid, report.curves["no_mask"]) * corners
    del data_a, data_b, weight_a, weight_b
    sharp = _sharpen(ctx, full, psize, report.resolution_A, params.get("bfactor_A2"))
    save_maps(ctx, "volume", {"map": full, "map_half_A": map_a, "map_half_B": map_b, "mask_fsc": mask,
                              "map_sharp": sharp}, psize)
    align = particles.filter_prefixes(["alignments3D"], copy=True)
    if drawn or "alignments3D/split" not in align:
        if "alignments3D/split" not in align:
            align.add_fields([("alignments3D/split", "<u4")])
        align["alignments3D/split"] = split
    ctx.save_output("particles", align)


def _sharpen(ctx: Any, volume: np.ndarray, psize: float, resolution: float, given: float | None) -> np.ndarray:
    """The map sharpened by its B-factor (Guinier, or ``given``) and low-passed at the resolution."""
    if given is None:
        try:
            bfactor = F.guinier_bfactor(volume, psize, resolution)
        except DataError as err:
            ctx.log(f"map_sharp is not sharpened, only low-passed: {err}")
            bfactor = 0.0
    else:
        bfactor = float(given)
    if not math.isfinite(bfactor):
        bfactor = 0.0
    sharp = F.sharpen(volume, -bfactor, psize) if bfactor else volume
    box = volume.shape[0]
    sharp = lowpass(sharp, resolution, ndim=3, pixel_size=psize, width=4.0 / box)
    ctx.log(f"map_sharp: B-factor {bfactor:.1f} Å² removed, low-passed at {resolution:.2f} Å")
    return np.asarray(sharp, np.float32)


SPEC: dict[str, Any] = {
    "type": "homo_reconstruct",
    "title": "Homogeneous Reconstruction Only",
    "description": "Reconstruct half maps and a map from particles with poses and CTFs (Fourier insertion with "
                   "trilinear interpolation and Wiener-style CTF correction), with the gold-standard FSC (no mask, "
                   "an automatic soft mask, corrected), the resolution, a sharpened map and the FSC plot.",
    "category": "refinement",
    "inputs": [{"name": "particles", "type": "particle", "title": "Particles with poses",
                "slots": ["blob", "?ctf", "alignments3D"], "count_min": 1}],
    "outputs": [
        {"name": "particles", "type": "particle", "passthrough": "particles",
         "title": "Particles (with the half sets used)", "slots": ["alignments3D"]},
        {"name": "volume", "type": "volume", "title": "Map, half maps, FSC mask and sharpened map",
         "slots": ["map", "map_half_A", "map_half_B", "mask_fsc", "map_sharp"]},
    ],
    "params": [
        param("symmetry", "string", "Point group to impose (C<n>, D<n>, T, O, I), RELION's orientation",
              default="C1", title="Symmetry"),
        param("ctf_correction", "boolean", "Divide out the particles' CTF (Wiener-style; needs a ctf result)",
              default=True, title="Do CTF correction"),
        param("random_split", "boolean", "Draw new random half sets instead of using alignments3D/split",
              default=False, title="Force new random half sets"),
        param("seed", "integer", "Random seed of a random split", default=0),
        param("padding_factor", "integer", "Zero-padding of the images and the 3D transform (1, 2 or 3); 2 is "
              "RELION's default and the more exact on clean data, 1 is 3–4× faster", default=2,
              minimum=1, maximum=3),
        param("window", "boolean", "Multiply each image by a soft circular window before inserting it (noise in "
              "the corners is left out), as CryoSPARC does", default=True, title="Window dataset (real-space)"),
        param("window_inner_radius", "number", "Where the window starts to fall, as a fraction of half the box",
              default=0.85, title="Window inner radius"),
        param("window_outer_radius", "number", "Where the window reaches 0, as a fraction of half the box",
              default=0.99, title="Window outer radius"),
        param("threshold", "number", "The FSC value the resolution is read at", default=0.143, minimum=0,
              maximum=1, title="FSC threshold"),
        param("bfactor_A2", "number", "B-factor (Å²) to remove when sharpening; empty: the Guinier estimate",
              title="Sharpening B-factor"),
    ],
    "resources": {"cpu": 2, "ram_gb": 4.0},
}


def _check(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Refuse an unknown point group as soon as it is set (the outputs do not depend on the parameters)."""
    symmetry.canonical(params.get("symmetry") or "C1")
    return list(SPEC["outputs"])


JOBS = [LibraryJob(SPEC, _run, _check)]
