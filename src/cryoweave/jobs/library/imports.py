"""Import jobs: movies, micrographs and 3D volumes (CryoSPARC's Import Movies, Import Micrographs
and Import 3D Volumes).

Nothing is copied: each imported file is linked into ``J<n>/imported/`` and the results name the
link, project-relative, as CryoSPARC does. Only headers are read (the 1,024-byte header of an MRC
file, the page directory of a TIFF file), so thousands of exposures import in seconds. Every file
is checked first (it exists and can be read, it is MRC or TIFF, its size is the others') and a bad
import fails with one error naming the files, before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.dataset.uids import generate_uids
from cryoweave.errors import CryoweaveError, DataError, ParamError
from cryoweave.formats.mrc import read_header
from cryoweave.jobs.library.common import (
    LibraryJob,
    check_files,
    expand,
    import_sig,
    link_imports,
    listing,
    param,
    positive,
    read_headers,
)
from cryoweave.spec import result_fields

MRC, TIFF, EER = (".mrc", ".mrcs"), (".tif", ".tiff"), (".eer", ".ecc")
PROGRESS_EVERY = 500
"""Files between two progress reports while headers are read."""
VOLUME_GROUP, MASK_GROUP = "imported_volume_1", "imported_mask_1"
"""The output groups of import_volumes, named as CryoSPARC (v3.3.1 and later) names them."""
VOLUME_FILES = {"map": ("map_path", "map"), "map_half_A": ("map_half_A_path", "half map A"),
                "map_half_B": ("map_half_B_path", "half map B"), "mask": ("mask_path", "mask")}
"""Volume slot: (its parameter, what the user calls it)."""


@dataclass(frozen=True)
class Exposure:
    """What the header of a movie or micrograph file says: its ``format`` (``MRC`` or ``TIFF``, as
    ``movie_blob/format`` holds it), ``shape`` (frames or sections or pages, y, x) and ``pixel_size``
    (Å, from an MRC header; 0 when there is none, always for TIFF)."""

    path: Path
    format: str
    shape: tuple[int, int, int]
    pixel_size: float


# ------------------------------------------------------------------------------------------ headers
def tiff_shape(path: str | Path) -> tuple[int, int, int]:
    """(pages, y, x) of a TIFF file, from its page directory alone: no pixel data is read."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        count = len(tif.pages)
        shape = tuple(int(n) for n in tif.pages.first.shape)
        images = (tif.imagej_metadata or {}).get("images", 0) if tif.is_imagej else 0
        count = max(count, int(images or 0))  # an ImageJ file over 4 GB keeps one directory for all frames
    if len(shape) != 2:
        raise DataError(f"{path}: its pages are {' × '.join(map(str, shape))} values, not greyscale images")
    return count, shape[0], shape[1]


def _by_suffix(paths: Sequence[Path], what: str, tiff: tuple[str, ...] = TIFF) -> list[str]:
    """Each file's format (``MRC``/``TIFF``) from its name; one error for EER or any other kind."""
    eer = [str(p) for p in paths if p.suffix.lower() in EER]
    if eer:
        raise DataError(f"{len(eer):,} of the {what} are EER files ({listing(eer, 3)}): cryoweave does not import "
                        "EER movies; convert them to TIFF first (e.g. with relion_convert_to_tiff) or import them "
                        "with CryoSPARC")
    other = [str(p) for p in paths if p.suffix.lower() not in MRC + tiff]
    if other:
        raise DataError(f"{len(other):,} of the {what} are neither MRC (.mrc, .mrcs) nor TIFF ({', '.join(tiff)}) "
                        f"files: {listing(other, 3)}")
    return ["MRC" if p.suffix.lower() in MRC else "TIFF" for p in paths]


def read_exposures(paths: Sequence[Path], what: str, progress: Callable[[int, int], None] = lambda done, total: None,
                   tiff: tuple[str, ...] = TIFF) -> list[Exposure]:
    """The headers of MRC and TIFF files; one error naming the files that cannot be read."""
    formats = _by_suffix(paths, what, tiff)
    check_files(paths, what)
    out, bad = [], []
    for number, (path, kind) in enumerate(zip(paths, formats, strict=True), 1):
        try:
            if kind == "MRC":
                header = read_header(path)
                out.append(Exposure(path, kind, header.shape, header.pixel_size[0]))
            else:
                out.append(Exposure(path, kind, tiff_shape(path), 0.0))
        except (CryoweaveError, OSError) as err:
            bad.append(f"{path} ({str(err).removeprefix(f'{path}: ')})")
        except Exception as err:  # tifffile's own errors for a damaged or foreign file
            bad.append(f"{path} ({type(err).__name__}: {err})")
        if number % PROGRESS_EVERY == 0:
            progress(number, len(paths))
    if bad:
        raise DataError(f"{len(bad):,} of the {what} cannot be read as {' or '.join(sorted(set(formats)))}: "
                        f"{listing(bad, 3)}")
    progress(len(paths), len(paths))
    return out


def _size(shape: Sequence[int], frames: bool) -> str:
    plane = f"{shape[-2]}×{shape[-1]} px"
    return f"{shape[0]:,} frames of {plane}" if frames else plane


def one_shape(exposures: Sequence[Exposure], what: str, frames: bool) -> tuple[int, int, int]:
    """The one shape all the files share; else an error giving each size, its count and examples."""
    sizes: dict[tuple[int, ...], list[str]] = {}
    for e in exposures:
        sizes.setdefault(e.shape if frames else e.shape[1:], []).append(str(e.path))
    if len(sizes) > 1:
        parts = "; ".join(f"{_size(shape, frames)}: {len(names):,} (e.g. {listing(names, 2)})"
                          for shape, names in sorted(sizes.items(), key=lambda kv: -len(kv[1])))
        raise DataError(f"the {what} are not all the same size ({parts}); import each size in a job of its own")
    return exposures[0].shape


# ------------------------------------------------------------------------------------- exposures
def _one_file(text: str, what: str) -> Path:
    paths = expand(text, what)
    if len(paths) > 1:
        raise DataError(f"{what}: {text!r} names {len(paths):,} files ({listing([str(p) for p in paths], 3)}); "
                        "give one")
    return paths[0]


def _gain(p: dict[str, Any], frame: tuple[int, int]) -> tuple[Path, tuple[int, int]] | None:
    """The gain reference file and its shape, checked to be one image the movies' frames fit once turned."""
    if not p.get("gainref_path"):
        return None
    path = _one_file(p["gainref_path"], "gain reference")
    (gain,) = read_exposures([path], "gain reference files", tiff=(*TIFF, ".gain"))  # .gain: Falcon's, a TIFF
    if gain.shape[0] != 1:
        raise DataError(f"gain reference {path} holds {gain.shape[0]:,} images; a gain reference is one image")
    turns = int(p.get("gainref_rotate_num") or 0)
    shape = gain.shape[1:] if turns % 2 == 0 else gain.shape[:0:-1]
    if tuple(shape) != tuple(frame):
        turned = f" ({_size(shape, False)} once turned {turns} quarter turns)" if turns % 2 else ""
        raise DataError(f"gain reference {path} is {_size(gain.shape, False)}{turned}, but the movies' frames are "
                        f"{_size(frame, False)}; give the gain reference of these movies (or set gainref_rotate_num)")
    return path, (gain.shape[1], gain.shape[2])


def _exposures(ctx: Any, p: dict[str, Any], what: str, frames: bool) -> list[Exposure]:
    """The exposure files checked (the pixel size first): their headers read, all of one size."""
    positive(p, "psize_A", f"pixel size of the {what} in Å")
    paths = expand(p.get("blob_paths") or "", what)
    started = time.perf_counter()
    exposures = read_exposures(paths, what, lambda done, total: ctx.progress(
        done, total, f"read the headers of {done:,} of {total:,} {what}"))
    seconds = time.perf_counter() - started
    if not frames:
        stacks = [f"{e.path} ({e.shape[0]:,} {'pages' if e.format == 'TIFF' else 'sections'})"
                  for e in exposures if e.shape[0] != 1]
        if stacks:
            raise DataError(f"{len(stacks):,} of the {what} hold more than one image: {listing(stacks, 3)}; a "
                            "micrograph is one image (import movies with import_movies)")
    one_shape(exposures, what, frames)
    header_sizes = {round(e.pixel_size, 3) for e in exposures if e.pixel_size > 0}
    off = sorted(s for s in header_sizes if abs(s - p["psize_A"]) > 0.001 * p["psize_A"])
    if off:
        ctx.warning(f"the pixel size is set to {p['psize_A']} Å but some MRC headers say "
                    f"{listing([f'{s} Å' for s in off], 3)}; the parameter is used")
    ctx.log(f"importing {len(exposures):,} {what} ({'/'.join(sorted({e.format for e in exposures}))}, "
            f"{_size(exposures[0].shape, frames)}, {p['psize_A']:g} Å/px); headers read in {seconds:.2f} s")
    return exposures


def _mscope(data: Dataset, p: dict[str, Any], defect: str = "") -> None:
    data["mscope_params/accel_kv"] = p["accel_kv"]
    data["mscope_params/cs_mm"] = p["cs_mm"]
    data["mscope_params/total_dose_e_per_A2"] = p.get("total_dose_e_per_A2") or 0.0
    data["mscope_params/phase_plate"] = int(bool(p.get("phase_plate_data")))
    data["mscope_params/neg_stain"] = int(bool(p.get("negative_stain_data")))
    data["mscope_params/exp_group_id"] = p["exp_group_id"]
    data["mscope_params/defect_path"] = defect


def _linked(ctx: Any, paths: Sequence[Path], save: Callable[[list[str]], None]) -> None:
    """Link the files into ``imported/`` and save the outputs; the links go again if saving fails."""
    links = link_imports(ctx, paths)
    try:
        save(links)
    except BaseException:
        for link in links:
            ctx.file(link).unlink(missing_ok=True)
        folder = ctx.directory / "imported"
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _common_columns(data: Dataset, slot: str, exposures: Sequence[Exposure], links: Sequence[str],
                    psize: float) -> None:
    data["uid"] = generate_uids(len(exposures))
    data[f"{slot}/path"] = np.array(links, dtype=object)
    data[f"{slot}/psize_A"] = psize
    data[f"{slot}/format"] = np.array([e.format for e in exposures], dtype=object)
    data[f"{slot}/import_sig"] = np.fromiter((import_sig(e.path) for e in exposures), np.uint64, len(exposures))


def run_import_movies(ctx: Any) -> None:
    p = ctx.params
    total_dose = positive(p, "total_dose_e_per_A2", "total exposure dose in e⁻/Å²")
    movies = _exposures(ctx, p, "movies", frames=True)
    gain = _gain(p, movies[0].shape[1:])
    defect = _one_file(p["defect_path"], "defect file") if p.get("defect_path") else None
    if defect is not None:
        check_files([defect], "defect files")
    extra = [f for f in (gain[0] if gain else None, defect) if f is not None]

    def save(links: list[str]) -> None:
        more = dict(zip(extra, links[len(movies):], strict=True))
        fields = result_fields("movie_blob") + result_fields("mscope_params")
        data = Dataset.allocate(len(movies), fields + (result_fields("gain_ref_blob") if gain else []))
        _common_columns(data, "movie_blob", movies, links[:len(movies)], p["psize_A"])
        data["movie_blob/shape"] = np.array(movies[0].shape, np.uint32)
        data["movie_blob/is_gain_corrected"] = 0 if gain else 1
        data["movie_blob/has_defect_file"] = int(defect is not None)
        _mscope(data, p | {"total_dose_e_per_A2": total_dose}, more.get(defect, ""))
        if gain:
            data["gain_ref_blob/path"] = more[gain[0]]
            data["gain_ref_blob/shape"] = np.array(gain[1], np.uint32)
            for name in ("flip_x", "flip_y", "rotate_num"):
                data[f"gain_ref_blob/{name}"] = int(p.get(f"gainref_{name}") or 0)
        ctx.save_output("imported_movies", data)

    _linked(ctx, [e.path for e in movies] + extra, save)
    ctx.log(f"imported {len(movies):,} movies" + (f" with gain reference {gain[0].name}" if gain else ""))


def run_import_micrographs(ctx: Any) -> None:
    p = ctx.params
    mics = _exposures(ctx, p, "micrographs", frames=False)

    def save(links: list[str]) -> None:
        data = Dataset.allocate(len(mics), result_fields("micrograph_blob") + result_fields("mscope_params"))
        _common_columns(data, "micrograph_blob", mics, links, p["psize_A"])
        data["micrograph_blob/shape"] = np.array(mics[0].shape[1:], np.uint32)
        _mscope(data, p)
        ctx.save_output("imported_micrographs", data)

    _linked(ctx, [e.path for e in mics], save)
    ctx.log(f"imported {len(mics):,} micrographs")


# --------------------------------------------------------------------------------------- volumes
def run_import_volumes(ctx: Any) -> None:
    p = ctx.params
    given = {slot: p[name] for slot, (name, _) in VOLUME_FILES.items() if p.get(name)}
    if not given:
        raise ParamError("give at least one file to import: "
                         + ", ".join(f"{name} ({what})" for name, what in VOLUME_FILES.values()))
    override = positive(p, "psize_A", "pixel size override in Å") if p.get("psize_A") is not None else None
    what = {slot: VOLUME_FILES[slot][1] for slot in given}
    files = {slot: _one_file(text, what[slot]) for slot, text in given.items()}
    headers = dict(zip(files, read_headers(list(files.values()), "volume files"), strict=True))
    for slot, h in headers.items():
        if h.nz == 1:
            raise DataError(f"{what[slot]} {h.path} is one 2D image of {h.ny}×{h.nx} px, not a 3D map")
        if not h.is_volume and (h.path.suffix.lower() == ".mrcs" or not h.nz == h.ny == h.nx):
            raise DataError(f"{what[slot]} {h.path} is a stack of {h.nz:,} 2D images of {h.ny}×{h.nx} px (so its "
                            "header says), not a 3D map")
    if len({h.shape for h in headers.values()}) > 1:
        parts = ", ".join(f"{what[s]} {h.path} is {'×'.join(map(str, h.shape[::-1]))}" for s, h in headers.items())
        raise DataError(f"the volumes must share one box, but {parts} (x×y×z voxels)")
    psizes = {slot: override or h.pixel_size[0] for slot, h in headers.items()}
    for slot, size in psizes.items():
        if size <= 0:
            raise DataError(f"{what[slot]} {files[slot]} gives no pixel size in its header; set psize_A")
    if max(psizes.values()) > min(psizes.values()) * 1.001:
        parts = ", ".join(f"{what[s]} {size:g} Å" for s, size in psizes.items())
        raise DataError(f"the volumes' headers give different pixel sizes ({parts}); set psize_A to the right one")

    maps = [slot for slot in ("map", "map_half_A", "map_half_B") if slot in files]
    if maps:
        ctx.add_output(VOLUME_GROUP, "volume", slots=maps, title="Imported volume",
                       description=f"{', '.join(maps)} as imported")
    if "mask" in files:
        ctx.add_output(MASK_GROUP, "mask", slots=["mask"], title="Imported mask", description="the mask as imported")
    box = next(iter(headers.values())).shape

    def save(links: list[str]) -> None:
        linked = dict(zip(files, links, strict=True))
        for group, slots in ((VOLUME_GROUP, maps), (MASK_GROUP, ["mask"] if "mask" in files else [])):
            if not slots:
                continue
            data = Dataset.allocate(1, [f for slot in slots for f in result_fields(slot)])
            data["uid"] = generate_uids(1)
            for slot in slots:
                data[f"{slot}/path"] = np.array([linked[slot]], dtype=object)
                data[f"{slot}/shape"] = np.array(box, np.uint32)
                data[f"{slot}/psize_A"] = psizes[slot]
            ctx.save_output(group, data)

    _linked(ctx, list(files.values()), save)
    ctx.log(f"imported {', '.join(f'{what[s]} ({files[s].name})' for s in files)}: box {box[2]}×{box[1]}×{box[0]}, "
            f"{next(iter(psizes.values())):g} Å/px" + (" (set)" if override else " (from the header)"))


# ----------------------------------------------------------------------------------------- specs
def _mscope_params(what: str, dose_required: bool) -> list[dict[str, Any]]:
    dose = ("Total electron dose of each exposure in e⁻/Å², summed over its frames (required)" if dose_required else
            "Total electron dose of each exposure in e⁻/Å² (leave unset when unknown: recorded as 0)")
    return [
        param("blob_paths", "path", f"The {what}: one file or a glob such as /data/session1/*.tiff. MRC (.mrc, "
              ".mrcs) and TIFF (.tif, .tiff) files; all must have the same size. Files are linked, not copied",
              title=f"{what.capitalize()} data path"),
        param("psize_A", "number", f"Pixel size of the {what} in Å (required; the headers' value is not used)",
              title="Pixel size (Å)"),
        param("accel_kv", "number", "Accelerating voltage of the microscope in kV", 300.0, minimum=1,
              title="Accelerating voltage (kV)"),
        param("cs_mm", "number", "Spherical aberration of the objective lens in mm", 2.7, minimum=0,
              title="Spherical aberration (mm)"),
        param("amp_contrast", "number", "Amplitude contrast (fraction), kept with the job's parameters for CTF "
              "estimation; CryoSPARC's mscope_params result has no field for it", 0.1, minimum=0, maximum=1,
              title="Amplitude contrast"),
        param("total_dose_e_per_A2", "number", dose, minimum=0, title="Total exposure dose (e⁻/Å²)"),
        param("exp_group_id", "integer", "Exposure group of every imported exposure (mscope_params/exp_group_id)",
              1, minimum=0, title="Exposure group ID"),
        param("phase_plate_data", "boolean", "The exposures were taken with a phase plate", False,
              title="Phase plate data"),
        param("negative_stain_data", "boolean", "The sample is negatively stained (not vitrified)", False,
              title="Negative stain data"),
    ]


_GAIN = [
    param("gainref_path", "path", "Gain reference for the movies (one MRC or TIFF/.gain image, linked into "
          "imported/). Without one, the movies are taken as gain-corrected already", section="gain reference",
          title="Gain reference path"),
    param("gainref_flip_x", "boolean", "Flip the gain reference left to right (in x) to match the movies", False,
          section="gain reference", title="Flip gain ref in X"),
    param("gainref_flip_y", "boolean", "Flip the gain reference top to bottom (in y) to match the movies", False,
          section="gain reference", title="Flip gain ref in Y"),
    param("gainref_rotate_num", "integer", "Turn the gain reference counter-clockwise by 90° this many times (0–3) "
          "to match the movies", 0, minimum=0, maximum=3, section="gain reference", title="Rotate gain ref"),
    param("defect_path", "path", "Defect file of the camera (linked into imported/, named by "
          "mscope_params/defect_path)", section="gain reference", title="Defect file path"),
]

IMPORT_MOVIES = {
    "type": "import_movies", "title": "Import Movies", "category": "import",
    "description": "Import movies (MRC or TIFF; EER is not supported) with their pixel size, microscope parameters and "
                   "optional gain reference. Frame count and size come from the file headers; files are linked into "
                   "J<n>/imported/.",
    "outputs": [{"name": "imported_movies", "type": "exposure", "title": "Imported movies",
                 "slots": ["movie_blob", "mscope_params", "?gain_ref_blob"]}],
    "params": _mscope_params("movies", True) + _GAIN,
}
IMPORT_MICROGRAPHS = {
    "type": "import_micrographs", "title": "Import Micrographs", "category": "import",
    "description": "Import micrographs (single-image MRC or TIFF files, e.g. motion-corrected elsewhere) with their "
                   "pixel size and microscope parameters; files are linked into J<n>/imported/.",
    "outputs": [{"name": "imported_micrographs", "type": "exposure", "title": "Imported micrographs",
                 "slots": ["micrograph_blob", "mscope_params"]}],
    "params": _mscope_params("micrographs", False),
}
IMPORT_VOLUMES = {
    "type": "import_volumes", "title": "Import 3D Volumes", "category": "import",
    "description": f"Import a 3D map, its half maps and/or a mask (MRC). Maps and half maps become output "
                   f"{VOLUME_GROUP} (a volume group with slots map, map_half_A, map_half_B, those given); a mask "
                   f"becomes output {MASK_GROUP} (slot mask). All must share one box.",
    "run_outputs": f"{VOLUME_GROUP} (slots map, map_half_A, map_half_B: those whose paths are set) and {MASK_GROUP} "
                   "(slot mask, when mask_path is set), declared as the paths are set",
    "params": [
        param("map_path", "path", "The 3D map (MRC); slot map of the volume output", title="Map path"),
        param("map_half_A_path", "path", "Half map A (MRC); slot map_half_A", title="Half map A path"),
        param("map_half_B_path", "path", "Half map B (MRC); slot map_half_B", title="Half map B path"),
        param("mask_path", "path", "A mask (MRC, values 0–1); slot mask of the mask output", title="Mask path"),
        param("psize_A", "number", "Pixel size in Å, instead of the one in the files' headers (required when a "
              "header has none)", title="Pixel size override (Å)"),
    ],
}

def volume_outputs(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The outputs the given files make, declared as the paths are set."""
    maps = [slot for slot in ("map", "map_half_A", "map_half_B") if params.get(VOLUME_FILES[slot][0])]
    mask = [{"name": MASK_GROUP, "type": "mask", "slots": ["mask"], "title": "Imported mask"}]
    volume = [{"name": VOLUME_GROUP, "type": "volume", "slots": maps, "title": "Imported volume"}]
    return (volume if maps else []) + (mask if params.get(VOLUME_FILES["mask"][0]) else [])


JOBS = [LibraryJob(spec=IMPORT_MOVIES, run=run_import_movies),
        LibraryJob(spec=IMPORT_MICROGRAPHS, run=run_import_micrographs),
        LibraryJob(spec=IMPORT_VOLUMES, run=run_import_volumes, outputs=volume_outputs)]
