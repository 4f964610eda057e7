"""Outputs, plots, downloads: a job's output groups from its record, their files, and plots of their fields.

The outputs list reads only the job record (a group of a million particles answers as fast as one
of ten). Downloads hand out the ``.cs`` / ``.csg`` files the record names and files of the job's
folder, never anything outside the project directory. Histograms and scatter plots read the group's
item uids and the one or two results asked for; slices read three sections of a map.

>>> client.get("/api/projects/P1/jobs/J3/outputs/particles/histogram?field=ctf/df1_A&bins=50")  # doctest: +SKIP
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse

from cryoweave.api.objects import Job
from cryoweave.builder.loading import result_sources, saved_group, table_at
from cryoweave.dataset import Dataset
from cryoweave.errors import NotFoundError, ParamError
from cryoweave.model.records import OutputGroup, OutputResult
from cryoweave.server import views
from cryoweave.server.deps import ProjectAccess, readable
from cryoweave.server.outputs_files import (
    finite_or_none,
    fsc_curves,
    parse_version,
    project_file,
    safe_file,
    slices_png,
)
from cryoweave.spec.addresses import FINAL

router = APIRouter(tags=["outputs"])

JOB = "/api/projects/{project}/jobs/{job}"
GROUP = JOB + "/outputs/{group}"
MAX_BINS = 1000
MAX_POINTS = 200_000
SHOWN_FIELDS = 8
"""How many valid field names a message about a bad one lists."""
VOLUME_TYPES = ("volume", "volume_multi", "mask")
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "text/plain", "application/json"}
"""File types shown in the browser; every other file is downloaded (no job-written HTML runs on this origin)."""


@router.get(JOB + "/outputs")
def outputs(job: str, access: ProjectAccess = Depends(readable)) -> list[dict[str, Any]]:
    """Every output group with its versions, tables and results (passthroughs marked), from the record only."""
    return views.output_groups(access.job(job))


def _group(found: Job, name: str) -> OutputGroup:
    return saved_group(found.record, name)


def _result(found: Job, group: OutputGroup, name: str) -> OutputResult:
    result = group.results.get(name)
    if result is None:
        raise NotFoundError(f"{found.uid}.{group.name} has no result {name!r} (results: "
                            f"{', '.join(group.results) or 'none'})")
    return result


# ---------------------------------------------------------------------------------------- downloads
def _download(path: Path) -> FileResponse:
    return FileResponse(path, filename=path.name, media_type="application/octet-stream")


@router.get(GROUP + "/download")
def download_group(job: str, group: str, what: str = "cs", version: str = FINAL,
                   access: ProjectAccess = Depends(readable)) -> FileResponse:
    """The group's own table (``what=cs``) at a version, or its ``.csg`` (the final versions)."""
    found = access.job(job)
    saved = _group(found, group)
    directory = access.project.directory
    chosen = parse_version(version)
    where = f"{found.uid}.{group}"
    if what == "csg":
        if chosen != FINAL:
            raise ParamError(f"{where}: the .csg names the final versions only; leave out version or use what=cs")
        return _download(project_file(directory, f"{found.uid}/{found.uid}_{group}.csg", where))
    if what != "cs":
        raise ParamError(f"what={what!r}: choose cs (the group's table) or csg (its result group file)")
    table = table_at(found.record, saved, chosen)
    return _download(project_file(directory, table.metafile, f"{where}.{table.version}"))


@router.get(GROUP + "/results/{result}/download")
def download_result(job: str, group: str, result: str, version: str = FINAL,
                    access: ProjectAccess = Depends(readable)) -> FileResponse:
    """The ``.cs`` file that holds one result at one version (a passthrough: its ancestor's file)."""
    found = access.job(job)
    saved = _group(found, group)
    sources, label = result_sources(_result(found, saved, result), found.record, group, parse_version(version))
    files = list(dict.fromkeys(s.metafile for s in sources))
    if len(files) > 1:
        raise ParamError(f"{label} is kept in {len(files)} files ({', '.join(files)}); download the group "
                         f"joined into one table with an export (POST .../outputs/{group}/export)")
    return _download(project_file(access.project.directory, files[0], label))


@router.get(JOB + "/files/{path:path}")
def job_file(job: str, path: str, access: ProjectAccess = Depends(readable)) -> FileResponse:
    """A regular file inside the job's folder (maps, plots, ``fsc.txt``); 404 for anything outside the project."""
    found = access.job(job)
    directory = access.project.directory
    real = safe_file(directory, directory / found.uid, path, f"job {found.uid}'s folder")
    kind = mimetypes.guess_type(real.name)[0] or "application/octet-stream"
    if kind in INLINE_TYPES:
        return FileResponse(real, media_type=kind, filename=Path(path).name, content_disposition_type="inline")
    return FileResponse(real, media_type="application/octet-stream", filename=Path(path).name)


# ------------------------------------------------------------------------------------------- fields
def _field_files(found: Job, group: OutputGroup, version: int | str) -> dict[str, tuple[str, str]]:
    """Result name → (a file holding it, its prefix there), at a group version (as ``load_output`` picks)."""
    table = table_at(found.record, group, version)
    files = {}
    for result in group.results.values():
        if result.passthrough:
            chosen: int | str = FINAL
        else:
            upto = [v for v in result.versions if v <= table.version]
            if not upto:
                continue
            chosen = upto[-1]
        sources, _ = result_sources(result, found.record, group.name, chosen)
        files[result.name] = (sources[0].metafile, sources[0].prefix)
    return files


def plottable(found: Job, group: OutputGroup, directory: Path, version: int | str) -> list[dict[str, Any]]:
    """The scalar numeric fields of a group at a version, from the headers of the files holding them."""
    headers: dict[str, list[tuple]] = {}
    fields = []
    for name, (metafile, prefix) in _field_files(found, group, version).items():
        if metafile not in headers:
            path = project_file(directory, metafile, f"{found.uid}.{group.name}.{name}")
            headers[metafile] = [tuple(d) for d in Dataset.inspect(path)["dtype"]]
        for descr in headers[metafile]:
            field, base = descr[0], np.dtype(descr[1]) if descr[1] != "|O" else None
            shape = tuple(descr[2]) if len(descr) > 2 else ()
            if not field.startswith(prefix + "/") or base is None or base.kind not in "iuf" or shape:
                continue
            fields.append({"field": name + field[len(prefix):], "dtype": base.str, "shape": []})
    return fields


@router.get(GROUP + "/fields")
def fields(job: str, group: str, version: str = FINAL, access: ProjectAccess = Depends(readable)) -> list[dict]:
    """``[{field, dtype, shape}]``: the fields of the group that can be plotted (scalar numbers)."""
    found = access.job(job)
    return plottable(found, _group(found, group), access.project.directory, parse_version(version))


def _values(found: Job, group: OutputGroup, wanted: dict[str, str], version: int | str,
            directory: Path) -> dict[str, np.ndarray]:
    """Each wanted field (parameter name → field) of the group's items, as float64; bad names → 400."""
    valid = [f["field"] for f in plottable(found, group, directory, version)]
    for parameter, field in wanted.items():
        if field not in valid:
            shown = ", ".join(valid[:SHOWN_FIELDS]) + (", ..." if len(valid) > SHOWN_FIELDS else "")
            raise ParamError(f"{parameter}={field!r} is not a numeric field of {found.uid}.{group.name}; "
                             f"plottable fields: {shown or 'none'} (GET .../outputs/{group.name}/fields lists all)")
    results = list(dict.fromkeys(f.split("/", 1)[0] for f in wanted.values()))
    data = found.load_output(group.name, slots=results, version=version)
    return {p: np.asarray(data[f], dtype=np.float64) for p, f in wanted.items()}


def _bounded(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ParamError(f"{name}={value} must lie between {low} and {high:,}")
    return value


@router.get(GROUP + "/histogram")
def histogram(job: str, group: str, field: str, bins: int = 50, version: str = FINAL,
              access: ProjectAccess = Depends(readable)) -> dict[str, Any]:
    """``{field, edges, counts, count, mean, min, max}`` of one field over the group's items (non-finite dropped)."""
    _bounded("bins", bins, 1, MAX_BINS)
    found = access.job(job)
    values = _values(found, _group(found, group), {"field": field}, parse_version(version),
                     access.project.directory)["field"]
    values = values[np.isfinite(values)]
    if not len(values):
        return {"field": field, "edges": [], "counts": [], "count": 0, "mean": None, "min": None, "max": None}
    counts, edges = np.histogram(values, bins=bins)
    return {"field": field, "edges": [float(e) for e in edges], "counts": counts.tolist(), "count": len(values),
            "mean": finite_or_none(values.mean()), "min": float(values.min()), "max": float(values.max())}


@router.get(GROUP + "/scatter")
def scatter(job: str, group: str, x: str, y: str, max_points: int = 5000, version: str = FINAL,
            access: ProjectAccess = Depends(readable)) -> dict[str, Any]:
    """``{x, y, count, shown}``: two fields of the items where both are finite, evenly thinned to ``max_points``."""
    _bounded("max_points", max_points, 1, MAX_POINTS)
    found = access.job(job)
    values = _values(found, _group(found, group), {"x": x, "y": y}, parse_version(version), access.project.directory)
    keep = np.isfinite(values["x"]) & np.isfinite(values["y"])
    xs, ys = values["x"][keep], values["y"][keep]
    count = len(xs)
    if count > max_points:
        rows = np.linspace(0, count - 1, max_points).round().astype(np.int64)
        xs, ys = xs[rows], ys[rows]
    return {"x": xs.tolist(), "y": ys.tolist(), "count": count, "shown": len(xs), "fields": {"x": x, "y": y}}


# -------------------------------------------------------------------------------------- FSC, slices
@router.get(JOB + "/fsc")
def fsc(job: str, access: ProjectAccess = Depends(readable)) -> dict[str, Any]:
    """``{resolution_A, curves, frequency}`` from the job's ``fsc.txt``; 404 when it has none."""
    found = access.job(job)
    directory = access.project.directory
    path = directory / found.uid / "fsc.txt"
    if not path.is_file():
        raise NotFoundError(f"job {found.uid} ({found.type}) has no fsc.txt; FSC curves come from validation and "
                            "reconstruction jobs once they have run")
    path = safe_file(directory, directory / found.uid, "fsc.txt", f"job {found.uid}'s folder")
    logged = [e.data["resolution_A"] for e in found.events()
              if e.data and isinstance(e.data.get("resolution_A"), int | float)]
    return fsc_curves(path, float(logged[-1]) if logged else None)


def _map_file(access: ProjectAccess, job: str, group: str, result: str, version: str, index: int) -> Path:
    """The map file a volume result's ``path`` names for item ``index`` (links followed: imported maps)."""
    found = access.job(job)
    saved = _group(found, group)
    _result(found, saved, result)
    if saved.type.value not in VOLUME_TYPES:
        raise ParamError(f"{found.uid}.{group} holds {saved.type.value} items, not maps; maps are read from "
                         f"{', '.join(VOLUME_TYPES)} groups")
    field = f"{result}/path"
    data = found.load_output(group, slots=[result], version=parse_version(version))
    if field not in data:
        raise ParamError(f"{found.uid}.{group}.{result} has no {field} field: it names no map (results with maps: "
                         f"{', '.join(p for p in data.prefixes() if f'{p}/path' in data) or 'none'})")
    if not len(data):
        raise NotFoundError(f"{found.uid}.{group} holds no items; there is no map")
    _bounded("index", index, 0, len(data) - 1)
    return project_file(access.project.directory, str(data[field][index]), f"{found.uid}.{group}.{result}")


@router.get(GROUP + "/results/{result}/slices.png")
def slices(job: str, group: str, result: str, version: str = FINAL, index: int = 0,
           access: ProjectAccess = Depends(readable)) -> Response:
    """The central XY, XZ and YZ sections of the map a result's ``path`` names (item ``index``), as a PNG."""
    path = _map_file(access, job, group, result, version, index)
    return Response(slices_png(path), media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get(GROUP + "/results/{result}/map")
def download_map(job: str, group: str, result: str, version: str = FINAL, index: int = 0,
                 access: ProjectAccess = Depends(readable)) -> FileResponse:
    """The MRC file a volume result's ``path`` names (item ``index``), as a download."""
    path = _map_file(access, job, group, result, version, index)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job}_{group}_{result}{path.suffix}")
