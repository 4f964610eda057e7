"""Downsample Particles and Restack Particles: new particle stacks made from old ones, streamed.

Both jobs read the particles' images through memory maps a chunk at a time (at most
:data:`CHUNK_BYTES` of float32 images), write the new stacks piece by piece in ``J<n>/<folder>/``
and save a new ``blob`` (and, for Downsample, rescaled ``alignments2D`` / ``alignments3D``);
every other result of the input passes through by uid, in the input's order. Everything is
checked before the first file is written (parameters, every stack exists and holds the images
asked for, one box size); if the job fails later, the stacks it wrote are removed and no output
is saved.

Boxes are even (as CryoSPARC requires of particle images): an image's centre is pixel ``box // 2``
along each axis, kept there by cropping, padding and Fourier resizing alike.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.errors import DataError, ParamError
from cryoweave.jobs.library.common import (
    LibraryJob,
    StackOutput,
    blob_headers,
    box_of,
    check_float16,
    check_indices,
    iter_blobs,
    param,
)
from cryoweave.jobs.library.fourier import fourier_resize, lowpass

CHUNK_BYTES = 64 << 20
"""Input images (as float32) held in memory at a time; bounds the jobs' peak memory."""


PARTICLES_IN = {"name": "particles", "type": "particle", "title": "Particles",
                "slots": ["blob", "?alignments2D", "?alignments3D"]}


def _chunk(box: tuple[int, int]) -> int:
    return max(1, CHUNK_BYTES // (4 * box[0] * box[1]))


def _even_box(params: dict[str, Any], name: str, what: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if value < 2 or value % 2:
        raise ParamError(f"parameter {name!r} ({what}) must be an even number of pixels, at least 2, not {value}")
    return int(value)


def _per_stack(params: dict[str, Any], name: str) -> int:
    value = params.get(name)
    if value is None or value < 1:
        raise ParamError(f"parameter {name!r} (particles per stack) must be at least 1, not {value!r}")
    return int(value)


def _stacks(ctx: Any, particles: Dataset) -> tuple[int, float]:
    """The one square box of the particles' stacks, and the pixel size their headers give."""
    if not len(particles):
        raise DataError("the input holds no particles")
    paths = particles["blob/path"].astype(str)
    headers = blob_headers(ctx, paths, "particle stacks")
    check_indices(headers, paths, particles["blob/idx"].astype(np.int64), "particles")
    ny, nx = box_of(headers, "the particle stacks")
    if ny != nx:
        raise DataError(f"the particle images are {ny}×{nx} pixels; only square images can be resampled")
    return ny, float(next(iter(headers.values())).pixel_size[0])


def _header_psize(psize: np.ndarray, fallback: float) -> float:
    """The pixel size written in the new stacks' headers (the rows' own sizes are in ``blob/psize_A``)."""
    positive = psize[psize > 0]
    return float(np.median(positive)) if len(positive) else (fallback if fallback > 0 else 1.0)


def _new_blob(output: StackOutput, particles: Dataset, psize: np.ndarray) -> Dataset:
    blob = output.blob(particles, sign=particles.get("blob/sign", -1.0))
    blob["blob/psize_A"] = psize
    return blob


def _stream(ctx: Any, particles: Dataset, box: int, output: StackOutput, transform, verb: str) -> None:
    """Read every image, ``transform`` each chunk, write it (the caller aborts ``output`` on an error).

    A chunk is written by a second thread while the next one is read and transformed (file
    writes and FFTs release the GIL), so at most two chunks of output are held at once.
    """
    total, pending = len(particles), None
    with ThreadPoolExecutor(1, thread_name_prefix="stack-writer") as writer:
        try:
            for rows, images in iter_blobs(ctx, particles, chunk=_chunk((box, box))):
                block = transform(images)
                del images
                if output.dtype == np.float16:
                    check_float16(block, rows, particles)
                if pending is not None:
                    pending.result()
                pending = writer.submit(output.write, block)
                ctx.progress(rows.start, total, f"{verb} {rows.start:,} of {total:,} particles")
            if pending is not None:
                pending.result()
            ctx.progress(total, total, f"{verb} {total:,} particles")
        except BaseException:
            if pending is not None:
                wait([pending])  # the writer must be done before its files are removed
            raise


def _write_and_save(ctx: Any, particles: Dataset, box: int, output: StackOutput, transform, verb: str,
                    result) -> None:
    """Stream the images into ``output``, then save ``result(output)``; on any error the new stacks go."""
    try:
        _stream(ctx, particles, box, output, transform, verb)
        ctx.save_output("particles", result(output))
    except BaseException:
        output.abort()
        raise


# -------------------------------------------------------------------------------- downsample
def _real_space(images: np.ndarray, box: int) -> np.ndarray:
    """Crop (centre kept at ``box // 2``) or pad with each image's mean to ``box`` pixels."""
    n = images.shape[-1]
    if box == n:
        return images
    if box < n:
        start = n // 2 - box // 2
        return images[:, start:start + box, start:start + box]
    out = np.empty((len(images), box, box), np.float32)
    out[:] = images.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)[:, None, None]
    start = box // 2 - n // 2
    out[:, start:start + n, start:start + n] = images
    return out


def _target_box(params: dict[str, Any], box: int, psize: np.ndarray) -> int:
    """The Fourier-cropped box: given, or the largest even box whose pixel size is at least the one asked for."""
    fourier_box = _even_box(params, "fourier_box", "Fourier crop to box size")
    wanted = params.get("psize_A")
    if (fourier_box is None) == (wanted is None):
        raise ParamError("set exactly one of 'fourier_box' (Fourier crop to box size, pixels) and 'psize_A' "
                         f"(desired pixel size, Å), not {'both' if fourier_box else 'neither'}")
    if wanted is not None:
        if not wanted > 0:
            raise ParamError(f"parameter 'psize_A' (desired pixel size) must be above 0 Å, not {wanted}")
        sizes = np.unique(psize)
        if sizes.min() <= 0:
            raise DataError("the particles' pixel size (blob/psize_A) is not set; give 'fourier_box' instead")
        if sizes.max() - sizes.min() > 1e-4 * sizes.max():
            raise DataError(f"the particles have {len(sizes)} pixel sizes ({sizes.min():g}–{sizes.max():g} Å); "
                            "a desired pixel size needs one: give 'fourier_box' instead")
        fourier_box = 2 * int(np.floor(float(sizes[0]) * box / float(wanted) / 2 + 1e-6))
        if fourier_box < 2:
            raise ParamError(f"a pixel size of {wanted:g} Å would leave fewer than 2 pixels of the {box}-pixel "
                             f"box at {float(sizes[0]):g} Å/pixel")
    if fourier_box > box:
        what = f"pixel size {wanted:g} Å needs a box of {fourier_box}" if wanted else f"box {fourier_box}"
        raise ParamError(f"{what}, larger than the particles' box of {box} pixels (after any crop); "
                         "Downsample only makes boxes smaller (the pixel size larger)")
    return fourier_box


def _alignments(particles: Dataset, psize: np.ndarray, old_box: int, new_box: int) -> list[str]:
    """Shifts rescaled in place to pixels of the new blob, and ``psize_A`` set to its pixel size.

    A shift of ``s`` pixels of the alignment's ``psize_A`` is ``s · psize_A`` Å, so ``s · psize_A /
    new psize`` new pixels (``new psize = psize · old_box / new_box``). Where a pixel size is not
    set (0), the alignment's pixels are taken to be the blob's.
    """
    done = []
    for name in ("alignments2D", "alignments3D"):
        if f"{name}/shift" not in particles:
            continue
        scale = np.full(len(particles), new_box / old_box)
        if f"{name}/psize_A" in particles:
            old = particles[f"{name}/psize_A"].astype(np.float64)
            known = (old > 0) & (psize > 0)
            scale[known] *= old[known] / psize[known]
            particles[f"{name}/psize_A"] = np.where(psize > 0, psize, old) * old_box / new_box
        particles[f"{name}/shift"] = (particles[f"{name}/shift"] * scale[:, None]).astype(np.float32)
        done.append(name)
    return done


def _downsample(ctx: Any) -> None:
    params = ctx.params
    crop_box = _even_box(params, "crop_box", "crop / pad to box size")
    per_stack = _per_stack(params, "stack_size")
    cutoff = params.get("lowpass_A")
    if cutoff is not None and not cutoff > 0:
        raise ParamError(f"parameter 'lowpass_A' (low-pass resolution) must be above 0 Å, not {cutoff}")
    particles = ctx.load_input("particles", slots="default")
    box, header_psize = _stacks(ctx, particles)
    psize = particles["blob/psize_A"].astype(np.float64)
    middle = crop_box or box
    new_box = _target_box(params, middle, psize)
    new_psize = (psize * middle / new_box).astype(np.float32)
    new_header = _header_psize(new_psize, header_psize * middle / new_box)
    if cutoff is not None and cutoff < 2 * new_header:
        ctx.warning(f"the low-pass resolution {cutoff:g} Å is finer than Nyquist at the new pixel size "
                    f"({2 * new_header:g} Å); it removes little")
    dtype = "float16" if params.get("float16") else "float32"
    ctx.log(f"{len(particles):,} particles of {box} px at {_header_psize(psize.astype(np.float32), header_psize):g} Å"
            + (f", {'cropped' if middle < box else 'padded'} to {middle} px" if middle != box else "")
            + f", Fourier cropped to {new_box} px at {new_header:g} Å; {dtype} stacks of {per_stack:,}")

    def transform(images: np.ndarray) -> np.ndarray:
        images = fourier_resize(_real_space(images, middle), new_box)
        return images if cutoff is None else lowpass(images, cutoff, pixel_size=new_header)

    def result(output: StackOutput) -> Dataset:
        blob = _new_blob(output, particles, new_psize)
        moved = _alignments(particles, psize, middle, new_box)
        if moved:
            ctx.log(f"shifts of {' and '.join(moved)} rescaled to pixels of {new_header:g} Å")
        return blob.innerjoin(particles.filter_prefixes(moved)) if moved else blob

    output = StackOutput(ctx, "downsampled", len(particles), (new_box, new_box), new_header, dtype, per_stack)
    _write_and_save(ctx, particles, box, output, transform, "downsampled", result)


def _restack(ctx: Any) -> None:
    params = ctx.params
    per_stack = _per_stack(params, "stack_size")
    particles = ctx.load_input("particles", slots=["blob"])
    box, header_psize = _stacks(ctx, particles)
    psize = particles["blob/psize_A"].astype(np.float32)
    dtype = "float16" if params.get("float16") else "float32"
    count = len(np.unique(particles["blob/path"].astype(str)))
    ctx.log(f"{len(particles):,} particles of {box} px from {count:,} stacks into {dtype} stacks of {per_stack:,}")
    output = StackOutput(ctx, "restack", len(particles), (box, box), _header_psize(psize, header_psize), dtype,
                         per_stack)
    _write_and_save(ctx, particles, box, output, lambda images: images, "restacked",
                    lambda output: _new_blob(output, particles, psize))


OUT = {"name": "particles", "type": "particle", "passthrough": "particles"}

DOWNSAMPLE = {
    "type": "downsample_particles",
    "title": "Downsample Particles",
    "description": "Crop or pad particle images in real space, then crop them in Fourier space to a smaller box "
                   "(a larger pixel size); writes new stacks, rescales alignment shifts, passes the rest through.",
    "category": "particle preprocessing",
    "inputs": [PARTICLES_IN],
    "outputs": [{**OUT, "title": "Downsampled particles", "slots": ["blob", "?alignments2D", "?alignments3D"]}],
    "params": [
        param("crop_box", "integer", "Crop / pad to box size (pix): crop (or pad with each image's mean) in real "
              "space to this even box first, keeping the centre; the pixel size does not change", minimum=2),
        param("fourier_box", "integer", "Fourier crop to box size (pix): the new even box; the pixel size grows "
              "by old box / new box. Give this or psize_A, not both", minimum=2),
        param("psize_A", "number", "Desired approx. pixel size (Å): the new box is the largest even box whose "
              "pixel size is at least this (psize × box / desired, rounded down to even)"),
        param("lowpass_A", "number", "Low-pass filter the downsampled images to this resolution (Å), soft edge"),
        param("float16", "boolean", "Save the new stacks as 16-bit floats (half the disk)", default=False),
        param("stack_size", "integer", "Particles per new stack file", default=10_000, minimum=1),
    ],
    "resources": {"cpu": 2, "ram_gb": 2.0},
}

RESTACK = {
    "type": "restack_particles",
    "title": "Restack Particles",
    "description": "Copy particle images scattered over many stacks into new stacks of a chosen size, in order, so "
                   "the original stacks can be cleared; images unchanged, every other result passed through.",
    "category": "particle preprocessing",
    "inputs": [{**PARTICLES_IN, "slots": ["blob"]}],
    "outputs": [{**OUT, "title": "Restacked particles", "slots": ["blob"]}],
    "params": [
        param("stack_size", "integer", "Particle batch size: particles per new stack file", default=10_000,
              minimum=1),
        param("float16", "boolean", "Save the new stacks as 16-bit floats (half the disk; not bit-exact)",
              default=False),
    ],
    "resources": {"cpu": 1, "ram_gb": 1.0},
}

JOBS = [LibraryJob(DOWNSAMPLE, _downsample), LibraryJob(RESTACK, _restack)]
