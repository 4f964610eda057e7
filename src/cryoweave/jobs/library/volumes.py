"""Volume Tools (``volume_tools``): resample, low-pass, flip the hand of a map, and make a mask from it.

The operations run in this order, each on the result of the one before; any may be left out:

1. **apply mask**: when a ``mask`` group is connected, the map is multiplied by it (same box);
2. **resample**: Fourier crop or zero-pad to ``resample_box`` pixels, or to the even box closest
   to ``resample_psize_A`` (the pixel size becomes ``old · old box / new box``; the mean is kept;
   :func:`cryoweave.jobs.library.fourier.fourier_resize`);
3. **low-pass** to ``lowpass_A`` Å: a raised-cosine edge ``lowpass_edge`` Fourier shells wide,
   centred on ``1/lowpass_A`` (½ there; 1 below the edge, 0 above it);
   :func:`cryoweave.jobs.library.fourier.lowpass`;
4. **flip hand**: mirror along z (``map[::-1]`` of the ``(z, y, x)`` array);
5. **mask** (``threshold`` set): voxels ``≥ threshold`` → dilated by ``dilate_A`` Å (every voxel
   within that Euclidean distance of one) → a soft edge falling as a raised cosine from 1 at
   ``dilate_A`` to 0 at ``dilate_A + soft_edge_A`` Å from the thresholded voxels.

Outputs (declared when the job runs, as the parameters ask): ``volume`` (slot ``map``:
``J<n>/J<n>_map.mrc``) when steps 1–4 change the map, and ``mask`` (slot ``mask``:
``J<n>/J<n>_mask.mrc``, made from the map as it is after steps 1–4) when a threshold is set.
Each is a new item (new uid) holding ``path``, ``shape`` (z, y, x) and ``psize_A``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cryoweave.errors import DataError, ParamError
from cryoweave.formats.mrc import read_images
from cryoweave.jobs.library.common import LibraryJob, param, positive
from cryoweave.jobs.library.fourier import fourier_resize, lowpass
from cryoweave.jobs.library.maps import box_text, map_input, save_map

MAX_BOX = 1024
"""The largest box a map is resampled to (a pixel size typed wrong would otherwise fill the memory)."""

SPEC: dict[str, Any] = {
    "type": "volume_tools",
    "title": "Volume Tools",
    "description": "Resample (Fourier crop or pad), low-pass filter and flip the hand of a map, multiply it by a "
                   "mask, and threshold it into a soft-edged mask. Steps run in that order.",
    "category": "utilities",
    "inputs": [
        {"name": "volume", "type": "volume", "title": "Volume", "slots": ["map"], "count_min": 1, "count_max": 1},
        {"name": "mask", "type": "mask", "title": "Mask to apply (optional; same box as the map)",
         "slots": ["mask"], "count_min": 0, "count_max": 1},
    ],
    "outputs": [],
    "run_outputs": "volume (slot map) when the map is changed (resampled, low-passed or flipped: declared as the "
                   "parameters are set; only masked: when it runs); mask (slot mask) when a threshold is set",
    "params": [
        param("resample_box", "integer", "Fourier crop or pad the map to this box (pixels); the pixel size "
              "changes by old box / new box", title="Resample to box (px)", minimum=2, maximum=MAX_BOX),
        param("resample_psize_A", "number", "Fourier crop or pad the map to the even box closest to this pixel "
              "size (Å); the exact new pixel size is logged. Set this or resample_box, not both",
              title="Resample to pixel size (Å)"),
        param("lowpass_A", "number", "Low-pass filter to this resolution (Å): a soft cosine edge centred there",
              title="Low-pass filter (Å)"),
        param("lowpass_edge", "number", "Width of the low-pass filter's soft edge, in Fourier shells "
              "(1 / (box · pixel size) Å⁻¹ each); 0 for a hard edge", default=4.0, minimum=0,
              title="Low-pass soft edge (shells)"),
        param("flip_hand", "boolean", "Mirror the map along z (flip its handedness)", default=False,
              title="Flip hand"),
        param("threshold", "number", "Make a mask of the voxels at or above this value (after the steps above)",
              title="Mask threshold"),
        param("dilate_A", "number", "Grow the thresholded mask by this distance (Å)", default=0.0, minimum=0,
              title="Mask dilation (Å)"),
        param("soft_edge_A", "number", "Width of the mask's soft cosine edge beyond the dilation (Å)", default=0.0,
              minimum=0, title="Mask soft edge (Å)"),
    ],
}


# -------------------------------------------------------------------------------------- operations
def distance_within(binary: np.ndarray, limit: float) -> np.ndarray:
    """The Euclidean distance (voxels) from every voxel to the nearest ``True`` one: exact up to
    ``limit``, ``inf`` or some value above ``limit`` beyond it.

    A separable distance transform (one axis after another, squared distances) that looks only
    ``ceil(limit)`` voxels along each axis: a nearest voxel within ``limit`` is within it along
    every axis, so nearer distances are exact, at ``O(voxels · limit)``.

    >>> line = np.zeros((1, 1, 7), bool); line[0, 0, 3] = True
    >>> distance_within(line, 2.0)[0, 0].tolist()
    [inf, 2.0, 1.0, 0.0, 1.0, 2.0, inf]
    """
    squared = np.where(binary, 0.0, np.inf).astype(np.float32)
    reach = math.ceil(limit)
    for axis in range(squared.ndim):
        before = np.moveaxis(squared, axis, 0)
        after = before.copy()
        for k in range(1, min(reach, len(before) - 1) + 1):
            np.minimum(after[k:], before[:-k] + k * k, out=after[k:])
            np.minimum(after[:-k], before[k:] + k * k, out=after[:-k])
        squared = np.moveaxis(after, 0, axis)
    return np.sqrt(squared)


def threshold_mask(volume: np.ndarray, threshold: float, dilate_A: float, soft_edge_A: float,
                   pixel_size: float) -> np.ndarray:
    """1 within ``dilate_A`` Å of a voxel ``≥ threshold``, falling as a raised cosine to 0 over the next
    ``soft_edge_A`` Å (float32)."""
    binary = volume >= threshold
    reach = (dilate_A + soft_edge_A) / pixel_size
    if reach <= 0:
        return binary.astype(np.float32)
    distance = distance_within(binary, reach) * pixel_size
    mask = (distance <= dilate_A).astype(np.float32)
    if soft_edge_A > 0:
        edge = (distance > dilate_A) & (distance < dilate_A + soft_edge_A)
        mask[edge] = 0.5 + 0.5 * np.cos(np.pi * (distance[edge] - dilate_A) / soft_edge_A)
    return mask


# --------------------------------------------------------------------------------------- the job
def _new_box(params: dict[str, Any], shape: tuple[int, int, int], psize: float) -> int | None:
    """The box to resample to (None: no resampling); checked against the map."""
    box, target = params.get("resample_box"), params.get("resample_psize_A")
    if box is None and target is None:
        return None
    if box is not None and target is not None:
        raise ParamError(f"set resample_box ({box}) or resample_psize_A ({target}), not both")
    if len(set(shape)) != 1:
        raise DataError(f"the map is {box_text(shape)} voxels; resampling needs a cubic map")
    if target is not None:
        target = positive(params, "resample_psize_A", "the new pixel size in Å")
        box = max(2, 2 * round(shape[0] * psize / target / 2))
    if not 2 <= box <= MAX_BOX:
        raise ParamError(f"resampling {shape[0]} px at {psize:g} Å/px to a {box} px box is out of range "
                         f"(2–{MAX_BOX} px)")
    return int(box)


def _run(ctx: Any) -> None:
    params = ctx.params
    volume_header, psize = map_input(ctx, ctx.load_input("volume", slots=["map"]), "map", "volume")
    shape = volume_header.shape
    mask_header = None
    if ctx.record.inputs.get("mask"):
        mask_header, mask_psize = map_input(ctx, ctx.load_input("mask", slots=["mask"]), "mask", "mask")
        if mask_header.shape != shape:
            raise DataError(f"the mask {mask_header.path.name} is {box_text(mask_header.shape)} voxels but the map "
                            f"{volume_header.path.name} is {box_text(shape)}; they must share one box")
        if abs(mask_psize - psize) > 1e-3 * psize:
            ctx.warning(f"the mask's pixel size ({mask_psize:g} Å) differs from the map's ({psize:g} Å)")
    box = _new_box(params, shape, psize)
    resolution = params.get("lowpass_A")
    if resolution is not None:
        resolution = positive(params, "lowpass_A", "the low-pass resolution in Å")
    edge = float(params.get("lowpass_edge") or 0.0)
    flip = bool(params.get("flip_hand"))
    threshold = params.get("threshold")
    dilate, soft = float(params.get("dilate_A") or 0.0), float(params.get("soft_edge_A") or 0.0)
    if min(dilate, soft, edge) < 0:
        raise ParamError("dilate_A, soft_edge_A and lowpass_edge must be 0 or more")
    changes_map = mask_header is not None or box is not None or resolution is not None or flip
    if not changes_map and threshold is None:
        raise ParamError("nothing to do: set resample_box or resample_psize_A, lowpass_A, flip_hand or threshold, "
                         "or connect a mask to apply")

    data = read_images(volume_header).astype(np.float32)
    if mask_header is not None:
        data *= read_images(mask_header).astype(np.float32)
        ctx.log(f"multiplied by the mask {mask_header.path.name}")
    if box is not None:
        old = data.shape[0]
        data = fourier_resize(data, box, ndim=3)
        psize = psize * old / box
        ctx.log(f"resampled {old} → {box} px: {psize:.4f} Å/px")
    if resolution is not None:
        if resolution < 2 * psize:
            ctx.warning(f"the low-pass resolution {resolution:g} Å is finer than Nyquist ({2 * psize:g} Å)")
        data = lowpass(data, resolution, ndim=3, pixel_size=psize, width=edge / max(data.shape))
        ctx.log(f"low-pass filtered to {resolution:g} Å (soft edge {edge:g} shells)")
    if flip:
        data = np.ascontiguousarray(data[::-1])
        ctx.log("flipped the hand (mirrored along z)")
    mask = None
    if threshold is not None:
        mask = threshold_mask(data, float(threshold), dilate, soft, psize)
        if not mask.any():
            raise DataError(f"no voxel of the map reaches the threshold {threshold:g} (its values lie in "
                            f"{float(data.min()):g} to {float(data.max()):g})")
        ctx.log(f"mask: threshold {threshold:g}, dilated {dilate:g} Å, soft edge {soft:g} Å: "
                f"{int((mask >= 0.5).sum()):,} of {mask.size:,} voxels at 0.5 or more")

    if changes_map:
        ctx.add_output("volume", "volume", slots=["map"], title="Processed volume")
        save_map(ctx, "volume", "map", data, psize)
    if mask is not None:
        ctx.add_output("mask", "mask", slots=["mask"], title="Mask")
        save_map(ctx, "mask", "mask", mask, psize)


def _outputs(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``volume`` when a parameter changes the map, ``mask`` when a threshold is set (a map changed only
    by a connected mask gets its ``volume`` output when the job runs)."""
    changes = any(params.get(p) is not None for p in ("resample_box", "resample_psize_A", "lowpass_A"))
    outputs = []
    if changes or params.get("flip_hand"):
        outputs.append({"name": "volume", "type": "volume", "slots": ["map"], "title": "Processed volume"})
    if params.get("threshold") is not None:
        outputs.append({"name": "mask", "type": "mask", "slots": ["mask"], "title": "Mask"})
    return outputs


JOBS = [LibraryJob(SPEC, _run, _outputs)]
