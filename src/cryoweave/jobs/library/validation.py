"""Validation (FSC) (``validation_fsc``): the Fourier shell correlation of two half maps and its resolution.

Input ``volume`` is one volume group with slots ``map_half_A`` and ``map_half_B``: the two half maps
of one job, or half maps of two jobs, binding one slot to another job's result with a result
override (``cryoweave job connect-result P1 J5 volume.0.map_half_B J9.volume.map_half_A.F``). Slot
``map_half_B`` is optional in the spec only so that a group holding one half map can be connected
and its ``map_half_B`` bound by override; the job refuses to run without it. An
optional ``mask`` group (slot ``mask``) is the mask to measure within; without one, and with
``generate_mask`` on, a mask is made from the average of the half maps
(:func:`cryoweave.jobs.library.fsc.auto_mask`).

Curves (conventions in :mod:`cryoweave.jobs.library.fsc`): ``no_mask``; ``spherical`` (a soft sphere
filling the box); ``mask`` (the given or generated mask; none when there is neither) and
``corrected`` (the masked curve corrected by noise substitution; with no mask, the spherical one's).
Each curve's resolution at ``threshold`` is logged; the headline one is the corrected curve's.

Files: ``J<n>/fsc.txt`` (every curve, one row per shell), ``J<n>/fsc.xml`` (the corrected curve, EMDB
FSC XML), and the plot in the event log. Output ``mask`` (slot ``mask``, ``J<n>/J<n>_mask.mrc``): the
mask the curves were measured in, given or generated (declared while building when
``generate_mask`` is on; when it is off, only when a mask is connected).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cryoweave.errors import DataError, ParamError
from cryoweave.formats.mrc import MrcHeader, read_images
from cryoweave.formats.plots import line_plot
from cryoweave.jobs.library import fsc as F
from cryoweave.jobs.library.common import LibraryJob, param, positive
from cryoweave.jobs.library.maps import box_text, map_input, save_map

CURVES = ("no_mask", "spherical", "mask", "corrected")
"""The curves in fsc.txt, in order (``mask`` and ``corrected`` with a mask only, else ``corrected`` alone)."""

SPEC: dict[str, Any] = {
    "type": "validation_fsc",
    "title": "Validation (FSC)",
    "description": "The Fourier shell correlation of two half maps (of one job, or of two jobs wired with a result "
                   "override), without a mask, with a spherical mask and with a given or generated mask, corrected "
                   "by noise substitution; the resolution at the threshold, a plot, fsc.txt and the EMDB FSC XML.",
    "category": "validation",
    "inputs": [
        {"name": "volume", "type": "volume", "title": "Half maps (slots map_half_A and map_half_B)",
         "slots": ["map_half_A", "?map_half_B"], "count_min": 1, "count_max": 1},
        {"name": "mask", "type": "mask", "title": "Mask (optional; same box as the half maps)",
         "slots": ["mask"], "count_min": 0, "count_max": 1},
    ],
    "outputs": [],
    "run_outputs": "mask (slot mask): the mask the FSC was measured in, when one was given or generated",
    "params": [
        param("generate_mask", "boolean", "Make a mask from the half maps when none is connected (low-pass to 15 Å, "
              "threshold at 15% of the maximum, dilate 3 Å, soft edge 6 Å)", default=True,
              title="Generate new FSC mask"),
        param("psize_override_A", "number", "Pixel size in Å, instead of the one the half maps record",
              title="Override pixel size (Å)"),
        param("threshold", "number", "The FSC value the resolution is read at", default=0.143, minimum=0,
              maximum=1, title="FSC threshold"),
    ],
}


def _half_maps(ctx: Any, params: dict[str, Any]) -> tuple[MrcHeader, MrcHeader, float]:
    """The two half maps' headers and their pixel size, checked to agree."""
    if "map_half_B" not in ctx.input_results("volume"):
        raise DataError("input 'volume' has no half map B: connect a volume group with slots map_half_A and "
                        "map_half_B, or bind map_half_B to another job's half map with a result override "
                        "(cryoweave job connect-result P1 J5 volume.0.map_half_B J9.volume.map_half_A.F)")
    group = ctx.load_input("volume", slots=["map_half_A", "map_half_B"])
    override = params.get("psize_override_A")
    if override is not None:
        override = positive(params, "psize_override_A", "the pixel size in Å")
    if override is not None:  # the recorded pixel sizes do not matter
        for slot in ("map_half_A", "map_half_B"):
            if f"{slot}/psize_A" in group:
                group[f"{slot}/psize_A"] = override
    head_a, psize_a = map_input(ctx, group, "map_half_A", "volume")
    head_b, psize_b = map_input(ctx, group, "map_half_B", "volume")
    if head_a.shape != head_b.shape:
        raise DataError(f"half map A {head_a.path.name} is {box_text(head_a.shape)} voxels but half map B "
                        f"{head_b.path.name} is {box_text(head_b.shape)}; they must share one box")
    if abs(psize_a - psize_b) > 1e-3 * psize_a:
        raise DataError(f"half map A {head_a.path.name} has {psize_a:g} Å pixels but half map B {head_b.path.name} "
                        f"has {psize_b:g} Å; set psize_override_A if one of them is recorded wrong")
    if len(set(head_a.shape)) != 1:
        raise DataError(f"the half maps are {box_text(head_a.shape)} voxels; FSC needs a cubic box")
    if head_a.shape[0] < 8:
        raise DataError(f"the half maps are {head_a.shape[0]} px wide; FSC needs at least 8")
    return head_a, head_b, psize_a


def _resolution_text(curve: np.ndarray, freqs: np.ndarray, threshold: float) -> str:
    res = F.resolution_at(curve, freqs, threshold)
    never = F.crossing_frequency(curve, freqs, threshold) is None
    return f"{res:.2f} Å" + (" (Nyquist: the curve never falls below it)" if never else "")


@dataclass(frozen=True)
class FscReport:
    """What :func:`report_fsc` measured: the curves (by name), their frequencies, the headline resolution (Å,
    the corrected curve at the threshold) and the Guinier B-factor of the average map (None: no fit)."""

    freqs: np.ndarray
    curves: dict[str, np.ndarray]
    resolution_A: float
    bfactor_A2: float | None


def report_fsc(ctx: Any, map_a: np.ndarray, map_b: np.ndarray, psize: float, mask: np.ndarray | None,
               source: str, threshold: float) -> FscReport:
    """Measure the FSC curves of two half maps (see the module), log each resolution, and write
    ``fsc.txt``, ``fsc.xml`` and the plot into the job (shared with Homogeneous Reconstruction)."""
    box = map_a.shape[0]
    edge = max(2.0, round(0.05 * box))
    sphere = F.soft_sphere_mask(box, box / 2 - edge - 1, edge)

    freqs, unmasked = F.fsc(map_a, map_b, psize=psize)
    _, spherical = F.fsc(map_a, map_b, sphere, psize=psize)
    curves = {"no_mask": unmasked, "spherical": spherical}
    tight = sphere if mask is None else mask
    if mask is not None:
        curves["mask"] = F.fsc(map_a, map_b, mask, psize=psize)[1]
    corrected = F.corrected_fsc(map_a, map_b, tight, unmasked, curves.get("mask", spherical))
    curves["corrected"] = corrected.curve
    if corrected.from_shell < len(freqs):
        ctx.log(f"noise substitution: phases randomised from shell {corrected.from_shell} "
                f"({1 / freqs[corrected.from_shell]:.2f} Å), where the unmasked FSC falls below {F.RANDOMIZE_BELOW}")
    for k, name in enumerate(curves, start=1):
        text = _resolution_text(curves[name], freqs, threshold)
        ctx.log(f"{k}: FSC {name.replace('_', ' ')} at {threshold:g}: {text}")
    headline = F.resolution_at(curves["corrected"], freqs, threshold)
    try:
        bfactor = F.guinier_bfactor((map_a + map_b) / 2, psize, headline)
        ctx.log(f"Guinier B-factor of the average map (10 Å to {headline:.2f} Å): {bfactor:.1f} Å²")
    except DataError as err:
        bfactor = None
        ctx.log(f"no Guinier B-factor: {err}")

    (ctx.directory / "fsc.txt").write_text(F.fsc_table(freqs, curves))
    (ctx.directory / "fsc.xml").write_text(F.fsc_xml(freqs, curves["corrected"],
                                                      f"{ctx.uid} FSC corrected ({source or 'spherical mask'})"))
    image = line_plot(freqs, list(curves.values()), [str(k) for k in range(1, len(curves) + 1)],
                      hlines=[threshold], vlines=[1 / headline])
    ctx.image(image, "fsc", f"FSC: {', '.join(f'{k} {n}' for k, n in enumerate(curves, 1))}; "
                            f"resolution {headline:.2f} Å at {threshold:g}")
    ctx.log(f"resolution {headline:.2f} Å (corrected FSC at {threshold:g}); curves in {ctx.uid}/fsc.txt and "
            f"{ctx.uid}/fsc.xml", data={"resolution_A": headline, "threshold": threshold,
                                        "bfactor_A2": bfactor})
    return FscReport(freqs, curves, headline, bfactor)


def _run(ctx: Any) -> None:
    params = ctx.params
    threshold = float(params.get("threshold") if params.get("threshold") is not None else 0.143)
    if not 0 < threshold < 1:
        raise ParamError(f"parameter 'threshold' must lie between 0 and 1, not {threshold:g}")
    head_a, head_b, psize = _half_maps(ctx, params)
    box = head_a.shape[0]
    given = None
    if ctx.record.inputs.get("mask"):
        mask_head, _ = map_input(ctx, ctx.load_input("mask", slots=["mask"]), "mask", "mask")
        if mask_head.shape != head_a.shape:
            raise DataError(f"the mask {mask_head.path.name} is {box_text(mask_head.shape)} voxels but the half "
                            f"maps are {box_text(head_a.shape)}; they must share one box")
        given = mask_head
    map_a = read_images(head_a).astype(np.float64)
    map_b = read_images(head_b).astype(np.float64)
    if given is not None:
        mask = read_images(given).astype(np.float32)
        if mask.min() < -1e-3 or mask.max() > 1 + 1e-3 or not mask.max() > 0:
            raise DataError(f"the mask {given.path.name} holds values from {float(mask.min()):g} to "
                            f"{float(mask.max()):g}; a mask lies between 0 and 1 and is not empty")
        source = f"the mask {given.path.name}"
    elif params.get("generate_mask", True):
        mask = F.auto_mask((map_a + map_b) / 2, psize)
        source = "a generated mask"
    else:
        mask, source = None, ""
    ctx.log(f"half maps {head_a.path.name} and {head_b.path.name}: {box} px at {psize:g} Å/px (Nyquist "
            f"{2 * psize:.2f} Å)" + (f"; measured in {source} ({int((mask >= 0.5).sum()):,} voxels at 0.5 or more)"
                                     if mask is not None else "; no mask"))
    report_fsc(ctx, map_a, map_b, psize, mask, source, threshold)
    if mask is not None:
        ctx.add_output("mask", "mask", slots=["mask"], title="FSC mask")
        save_map(ctx, "mask", "mask", mask, psize)


def _outputs(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``mask`` when one will be generated (a connected mask with generate_mask off: declared when it runs)."""
    if params.get("generate_mask", True):
        return [{"name": "mask", "type": "mask", "slots": ["mask"], "title": "FSC mask"}]
    return []


JOBS = [LibraryJob(SPEC, _run, _outputs)]

