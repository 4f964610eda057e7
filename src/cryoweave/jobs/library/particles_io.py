"""Particles in and out: Import Particle Stack (``import_particles``) and Export to RELION (``export_relion``).

``import_particles`` reads a RELION ``.star`` (3.0 or 3.1+, through :func:`cryoweave.formats.star.read_star`)
or a CryoSPARC ``.cs`` table, finds the particle stacks it names, links them into ``J<n>/imported/``
and saves ``imported_particles``: ``blob`` and, when the metadata has them, ``ctf``, ``location``,
``alignments2D``/``alignments3D`` and (``.cs`` only) ``pick_stats``. Uids: a ``.cs`` keeps its items'
uids, a ``.star`` keeps ``_cryoweaveUid`` when it has one, else gets new ones.

Where a stack path is looked for, in order: as written when absolute; beside the metadata file when
relative (``>path`` always there); in this project (``J3/extract/…``); then under the
``particle_blob_path`` folder (the path as written, then its file name) or, when that parameter is
a glob, among the files it matches, by file name. A micrograph path (``location/micrograph_path``)
that resolves the same way is stored as this project names files; one that does not is kept as written.

Per particle, the pixel size is the ``psize_A`` parameter when set, else the metadata's, else the
stack header's; ``blob/shape`` is always the stacks' (one box size per import).

``export_relion`` writes every result of its input (passthroughs too) as ``J<n>/particles.star``
through :func:`cryoweave.formats.star.write_star`, and optionally to ``output_path`` as well; each
file names the stacks and micrographs relative to its own folder, and keeps the uids. It makes no
output group: it changes no result, and a job downstream takes the particles from the exporter's
input directly.
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cryoweave.dataset import Dataset
from cryoweave.errors import DataError, DatasetLoadError, FormatError, ParamError
from cryoweave.jobs.library.common import (
    LibraryJob,
    box_of,
    check_indices,
    import_sig,
    link_imports,
    listing,
    param,
    positive,
    read_headers,
    resolve_data_path,
)
from cryoweave.jobs.library.result_group import complete, text_of
from cryoweave.spec import result_fields

KEPT = ("blob", "ctf", "location", "alignments2D", "alignments3D", "pick_stats")
"""The results an import keeps (the slots of ``imported_particles``)."""

OPTICS = (("accel_kv", "rlnVoltage"), ("cs_mm", "rlnSphericalAberration"), ("amp_contrast", "rlnAmplitudeContrast"))


# ---------------------------------------------------------------------------------------- metadata
def star_labels(path: Path) -> set[str]:
    """The labels of a ``.star`` file's blocks up to its particle loop (data rows are not read)."""
    labels: set[str] = set()
    current: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if text.startswith("_"):
                current.append(text.split()[0][1:])
            elif current and text:
                labels.update(current)
                if "rlnImageName" in current:
                    return labels
                current = []
    return labels | set(current)


def _shape_param(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ParamError(f"parameter 'micrograph_shape' is NYxNX in pixels (e.g. 4096x4096), not {text!r}")
    return int(parts[0]), int(parts[1])


def read_star_particles(ctx: Any, path: Path, params: dict[str, Any]) -> Dataset:
    """The particles of a ``.star``: optics values the file lacks taken from the parameters."""
    from cryoweave.formats.star import read_star  # pandas: loaded when a .star is read, not by every command

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_star(path, micrograph_shape=_shape_param(params.get("micrograph_shape")))
    for w in caught:
        ctx.warning(str(w.message))
    if "ctf" not in data.prefixes():
        return data
    labels = star_labels(path)
    lacking = [f"_{label}" for label in ("rlnDefocusV", "rlnDefocusAngle") if label not in labels]
    if lacking:
        raise DataError(f"{path} has _rlnDefocusU but lacks {', '.join(lacking)}; the CTF needs both defoci "
                        "and the astigmatism angle")
    unset = []
    for field, label in OPTICS:
        if label in labels:
            continue
        if params.get(field) is None:
            unset.append((label, field))
        else:
            data[f"ctf/{field}"] = params[field]
            ctx.log(f"ctf/{field} = {params[field]} for every particle (parameter {field!r}; {path.name} has "
                    f"no _{label})")
    if unset:
        raise DataError(f"{path} has no {', '.join('_' + label for label, _ in unset)} (optics values the CTF "
                        f"needs); set parameter(s) {', '.join(field for _, field in unset)}")
    return data


def read_cs_particles(path: Path) -> Dataset:
    if not path.is_file():
        raise DataError(f"particle metadata {path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        data = Dataset.load(path)
    except DatasetLoadError as err:
        raise FormatError(f"particle metadata {path} is not a readable .cs table: {err}") from None
    lacking = [f for f in ("blob/path", "blob/idx") if f not in data]
    if lacking:
        raise DataError(f"{path} lacks {', '.join(lacking)}: a particle import needs each particle's stack "
                        f"and index (it has results {', '.join(data.prefixes()) or 'none'})")
    if "blob/sign" not in data:
        data.add_fields([("blob/sign", "<f4")])
        data["blob/sign"] = -1.0
    return data


def read_metadata(ctx: Any, path: Path, params: dict[str, Any]) -> Dataset:
    suffix = path.suffix.lower()
    if suffix == ".star":
        return read_star_particles(ctx, path, params)
    if suffix == ".cs":
        return read_cs_particles(path)
    raise ParamError(f"particle metadata {path} must be a RELION .star or a CryoSPARC .cs file")


# ------------------------------------------------------------------------------------------- paths
class Finder:
    """Finds the files a metadata file names (see the module docstring for where it looks)."""

    def __init__(self, ctx: Any, metadata: Path, hint: str | None):
        self.base, self.project = metadata.parent, ctx.project_dir
        self.folder: Path | None = None
        self.by_name: dict[str, Path] = {}
        if hint and os.path.isdir(hint):
            self.folder = Path(hint)
        elif hint and (glob.has_magic(hint) or os.path.isfile(hint)):
            found = [Path(p) for p in glob.glob(hint) if os.path.isfile(p)]
            if not found:
                raise DataError(f"parameter 'particle_blob_path': no file matches {hint!r}")
            self.by_name = {p.name: p for p in found}
        elif hint:
            raise ParamError(f"parameter 'particle_blob_path': {hint} does not exist (give the folder where the "
                             "stacks are, or a glob such as /data/stacks/*.mrcs)")

    def __call__(self, text: str) -> Path | None:
        if not text:
            return None
        first = Path(os.path.normpath(resolve_data_path(text, self.base, self.project)))
        if first.is_file():
            return first
        plain = Path(text.lstrip(">"))
        if self.folder is not None:
            for candidate in (self.folder / plain, self.folder / plain.name):
                if candidate.is_file():
                    return Path(os.path.normpath(candidate))
        return self.by_name.get(plain.name)


def _micrographs(ctx: Any, data: Dataset, find: Finder) -> None:
    """Micrograph paths that resolve (or start with ``>``), as this project names files; the others as written."""
    if "location/micrograph_path" not in data or not len(data):
        return
    names, inverse = np.unique(text_of(data["location/micrograph_path"]).astype(str), return_inverse=True)
    found = [find(n) or (find.base / n[1:].lstrip("/") if n.startswith(">") else None) for n in names.tolist()]
    new = np.array([ctx.relative(os.path.normpath(f)) if f is not None else n for n, f in zip(names.tolist(), found)],
                   dtype=object)
    data["location/micrograph_path"] = new[inverse.reshape(-1)]


# ------------------------------------------------------------------------------------------ import
def _pixel_sizes(ctx: Any, data: Dataset, stacks: np.ndarray, headers: dict, params: dict[str, Any],
                 meta: Path) -> np.ndarray:
    if params.get("psize_A") is not None:
        return np.full(len(data), positive(params, "psize_A", "pixel size of the particle images"), np.float32)
    given = np.asarray(data["blob/psize_A"], np.float64) if "blob/psize_A" in data else np.zeros(len(data))
    header = np.array([headers[s].pixel_size[0] for s in stacks.tolist()], np.float64)
    psize = np.where(given > 0, given, header)
    differ = (given > 0) & (header > 0) & (np.abs(given - header) > 0.01 * given)
    if differ.any():
        ctx.warning(f"{int(differ.sum()):,} particles have a pixel size in {meta.name} (e.g. {given[differ][0]:g} Å) "
                    f"that differs from their stack's header ({header[differ][0]:g} Å); the metadata's is used")
    if not (psize > 0).all():
        bad = sorted({s for s, ok in zip(stacks.tolist(), psize > 0) if not ok})
        raise DataError(f"{int((psize <= 0).sum()):,} particles have a pixel size of zero (in {meta.name} and in "
                        f"the headers of {listing(bad, 3)}); set parameter 'psize_A'")
    return psize.astype(np.float32)


def _kept(ctx: Any, data: Dataset, params: dict[str, Any], meta: Path) -> Dataset:
    dropped = [p for p in data.prefixes() if p not in KEPT]
    if params.get("ignore_poses"):
        dropped += [p for p in ("alignments2D", "alignments3D") if p in data.prefixes()]
    if dropped:
        ctx.log(f"not imported from {meta.name}: {', '.join(dropped)}")
    data = data.filter_prefixes([p for p in data.prefixes() if p not in dropped])
    if "location" in data.prefixes() and "location/center_x_frac" not in data:
        ctx.warning("location not imported: the micrograph size is unknown, so particle coordinates cannot be "
                    "made fractions; set parameter 'micrograph_shape' (NYxNX) to import them")
        data = data.filter_prefixes([p for p in data.prefixes() if p != "location"])
    return data


def run_import(ctx: Any) -> None:
    params = ctx.params
    if not params.get("particle_meta_path"):
        raise ParamError("say which particle metadata to import (parameter 'particle_meta_path': a .star or .cs)")
    meta = Path(params["particle_meta_path"])
    if params.get("psize_A") is not None:
        positive(params, "psize_A", "pixel size of the particle images")
    find = Finder(ctx, meta, params.get("particle_blob_path"))
    data = _kept(ctx, read_metadata(ctx, meta, params), params, meta)
    if not len(data):
        raise DataError(f"{meta} holds no particles")
    uids = np.sort(np.asarray(data["uid"]))
    if (uids[1:] == uids[:-1]).any():
        raise DataError(f"{meta}: uid {int(uids[1:][uids[1:] == uids[:-1]][0])} is there more than once")

    written, inverse = np.unique(text_of(data["blob/path"]).astype(str), return_inverse=True)
    inverse = inverse.reshape(-1)
    located = [find(t) for t in written.tolist()]
    missing = [t for t, p in zip(written.tolist(), located) if p is None]
    if missing:
        raise DataError(f"{len(missing):,} of the {len(written):,} particle stacks named by {meta} are missing: "
                        f"{listing(missing)} (looked beside it, in the project"
                        + (", and under parameter 'particle_blob_path')" if params.get("particle_blob_path")
                           else "; parameter 'particle_blob_path' says where else to look)"))
    stacks = [str(p) for p in located]
    headers = dict(zip(stacks, read_headers(located, "particle stacks"), strict=True))
    stack_of = np.array(stacks, dtype=object)[inverse]
    check_indices(headers, stack_of, np.asarray(data["blob/idx"], np.int64), f"particles of {meta}")
    ny, nx = box_of(headers, f"the particle stacks of {meta}")
    psize = _pixel_sizes(ctx, data, stack_of, headers, params, meta)
    data.add_fields([f for f in result_fields("blob") if f[0] not in data])
    _micrographs(ctx, data, find)

    links = link_imports(ctx, located)
    data["blob/path"] = np.array(links, dtype=object)[inverse]
    data["blob/import_sig"] = np.array([import_sig(p) for p in located], np.uint64)[inverse]
    data["blob/shape"] = np.array([ny, nx], np.uint32)
    data["blob/psize_A"] = psize
    for name in data.prefixes():
        added = complete(data, name, name, "particle")
        if added:
            ctx.log(f"{name} lacked {len(added)} field(s), set to zero: {listing(added)}")
    ctx.log(f"imported {len(data):,} particles ({ny}×{nx} px, {float(np.min(psize)):g}"
            + (f"–{float(np.max(psize)):g}" if np.ptp(psize) else "") + f" Å/px) in {len(links):,} stacks from "
            f"{meta}; results {', '.join(data.prefixes())}")
    ctx.save_output("imported_particles", data)


# ------------------------------------------------------------------------------------------ export
def _relative_to(ctx: Any, values: Any, folder: Path, only_existing: bool) -> np.ndarray:
    """Paths as results hold them (project-relative or absolute), relative to ``folder``."""
    names, inverse = np.unique(text_of(values).astype(str), return_inverse=True)
    out = []
    for name in names.tolist():
        target = ctx.file(name)
        keep = not name or (only_existing and not target.exists())
        out.append(name if keep else Path(os.path.relpath(target, folder)).as_posix())
    return np.array(out, dtype=object)[inverse.reshape(-1)]


def star_for(ctx: Any, particles: Dataset, folder: Path) -> Dataset:
    """The particles with stack (and existing micrograph) paths relative to ``folder``."""
    out = particles.copy()
    out["blob/path"] = _relative_to(ctx, particles["blob/path"], folder, only_existing=False)
    if "location/micrograph_path" in particles:
        out["location/micrograph_path"] = _relative_to(ctx, particles["location/micrograph_path"], folder, True)
    return out


def _output_path(params: dict[str, Any]) -> Path | None:
    if not params.get("output_path"):
        return None
    path = Path(params["output_path"])
    if path.suffix.lower() != ".star":
        raise ParamError(f"parameter 'output_path' is a .star file to write, not {path}")
    if not path.parent.is_dir():
        raise ParamError(f"parameter 'output_path': folder {path.parent} does not exist")
    if path.is_dir() or (path.exists() and not params.get("overwrite")):
        raise ParamError(f"{path} exists; choose another path or set parameter 'overwrite'")
    if not os.access(path.parent, os.W_OK):
        raise ParamError(f"parameter 'output_path': folder {path.parent} cannot be written")
    return path


def run_export(ctx: Any) -> None:
    extra = _output_path(ctx.params)
    particles = ctx.load_input("particles")
    targets = [ctx.directory / "particles.star", *([extra] if extra is not None else [])]
    for target in targets:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from cryoweave.formats.star import write_star

            write_star(star_for(ctx, particles, target.parent), target)
        for w in caught:
            ctx.warning(str(w.message))
        ctx.log(f"wrote {len(particles):,} particles to {target} (results {', '.join(particles.prefixes())})")


IMPORT_SPEC = {
    "type": "import_particles",
    "title": "Import Particle Stack",
    "description": "Import particles from a RELION .star or a CryoSPARC .cs file and the stacks it names, with "
                   "their CTF, poses and locations when the file has them.",
    "category": "import",
    "outputs": [{"name": "imported_particles", "type": "particle", "title": "Imported particles",
                 "slots": ["blob", "?ctf", "?location", "?alignments2D", "?alignments3D", "?pick_stats"]}],
    "params": [
        param("particle_meta_path", "path", "The particles' metadata: a RELION .star or a CryoSPARC .cs file"),
        param("particle_blob_path", "path", "Where the stacks are when the metadata's paths do not resolve: a "
                                            "folder (e.g. the RELION or CryoSPARC project) or a glob"),
        param("psize_A", "number", "Pixel size of the particle images (Å); overrides the metadata and headers"),
        param("accel_kv", "number", "Accelerating voltage (kV), for a .star without _rlnVoltage"),
        param("cs_mm", "number", "Spherical aberration (mm), for a .star without _rlnSphericalAberration"),
        param("amp_contrast", "number", "Amplitude contrast (fraction), for a .star without "
                                        "_rlnAmplitudeContrast", minimum=0, maximum=1),
        param("micrograph_shape", "string", "Micrograph size NYxNX (px), to turn a .star's coordinates into "
                                            "locations when it does not say"),
        param("ignore_poses", "boolean", "Leave out the metadata's poses and shifts", default=False),
    ],
}

EXPORT_SPEC = {
    "type": "export_relion",
    "title": "Export to RELION",
    "description": "Write particles (every result, passthroughs included) as a RELION 3.1 .star file, with "
                   "paths relative to the file and the uids kept.",
    "category": "utilities",
    "inputs": [{"name": "particles", "type": "particle", "title": "Particles",
                "slots": ["blob", "?ctf", "?alignments3D", "?location"]}],
    "params": [
        param("output_path", "path", "Also write the .star here (besides J<n>/particles.star)"),
        param("overwrite", "boolean", "Replace the file at output_path if it exists", default=False),
    ],
}

JOBS = [LibraryJob(IMPORT_SPEC, run_import), LibraryJob(EXPORT_SPEC, run_export)]
