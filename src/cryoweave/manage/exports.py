"""Export an output group or a whole job into the project's ``exports/`` folder, for sharing.

An exported **group** (``exports/groups/<P>_<J>_<group>/``) is what CryoSPARC makes: one
self-contained table ``<P>_<J>_<group>_exported.cs`` (the group at one version with its passthroughs
joined in, in numpy format), a ``.csg`` naming it for every result, and the data files its items name
under ``data/`` (links, or copies with ``copy_data``), named ``>data/…`` in the table. Another project
or instance imports it with an Import Result Group job.

An exported **job** (``exports/jobs/<P>_<J>_<type>/``) holds ``job.json`` (the job record without
what belonged to this instance, see :mod:`cryoweave.manage.exported`), ``events.jsonl``, the event
log's ``images/``, ``job.log`` and one exported group folder per output group (final versions);
:func:`cryoweave.manage.imports.import_job` brings it into a project as a completed job.

Each export is built in a hidden sibling folder and renamed into place at the end: a failed export
leaves nothing behind, and an existing export is replaced only with ``overwrite``.

>>> report = export_group(store, "P1", "J7", "particles")          # doctest: +SKIP
>>> report.csg                                                     # doctest: +SKIP
PosixPath('/data/P1/exports/groups/P1_J7_particles/P1_J7_particles_exported.csg')
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryoweave.atomic import atomic_write
from cryoweave.builder.context import read_output
from cryoweave.errors import NotFoundError, ParamError, StatusError
from cryoweave.formats.csg import CsgResult, ResultGroupFile, write_csg
from cryoweave.manage import exported
from cryoweave.manage.export_files import DataPlacer
from cryoweave.model import files
from cryoweave.model.records import JobRecord, utc_now
from cryoweave.model.status import JobStatus
from cryoweave.spec import result_type_string
from cryoweave.spec.addresses import FINAL
from cryoweave.store import ProjectInfo, Store


@dataclass
class ExportReport:
    """What an export made: its folder, the group's files, its items, the data files placed and their bytes."""

    folder: Path
    csg: Path | None = None
    cs: Path | None = None
    items: int = 0
    data_files: int = 0
    copied: bool = False
    bytes: int = 0
    missing_other: list[str] = field(default_factory=list)
    groups: list[ExportReport] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ groups
def export_group(store: Store, project_uid: str, job_uid: str, group: str, *, version: int | str = FINAL,
                 copy_data: bool = False, overwrite: bool = False) -> ExportReport:
    """Export one output group (at ``version``, default the final one) to ``exports/groups/<P>_<J>_<group>/``.

    >>> export_group(store, "P1", "J7", "particles", copy_data=True).bytes    # doctest: +SKIP
    123456789
    """
    info = store.get_project(project_uid)
    record = store.get_job(project_uid, job_uid)
    name = exported.group_folder_name(info.uid, record.uid, group)
    final = info.directory / "exports" / "groups" / name
    with _building(final, overwrite) as staging:
        report = write_group(store, info, record, group, staging, version=version, copy_data=copy_data)
    return _moved(report, staging, final)


def write_group(store: Store, info: ProjectInfo, record: JobRecord, group: str, folder: Path, *,
                version: int | str = FINAL, copy_data: bool = False) -> ExportReport:
    """Write an exported group into ``folder`` (made here): its table, its ``.csg``, its data under ``data/``."""
    output = record.outputs.get(group)
    if output is None or not output.tables:
        saved = [n for n, g in record.outputs.items() if g.tables]
        raise NotFoundError(f"{record.uid} of {info.uid} has no saved output group {group!r} (its saved groups: "
                            f"{', '.join(saved) or 'none'})")
    data = read_output(store, info.uid, record, group, slots="all", version=version)
    folder.mkdir(parents=True)
    placer = DataPlacer(info.directory, copy=copy_data)
    placer.rewrite(data, folder)
    placer.check(f"{info.uid} {record.uid}.{group}")
    cs_name = exported.table_name(info.uid, record.uid, group)
    data.save(folder / cs_name)
    present = set(data.prefixes())
    results = {r.name: CsgResult(">" + cs_name, len(data), result_type_string(output.type, r.dtype))
               for r in output.results.values() if r.name in present}
    spec = next((o for o in record.spec.outputs if o.name == group), None)
    csg = folder / exported.csg_name(info.uid, record.uid, group)
    write_csg(ResultGroupFile(name=group, type=output.type.value, results=results,
                              title=output.title or (spec.title if spec else "") or group,
                              description=spec.description if spec else ""), csg)
    return ExportReport(folder=folder, csg=csg, cs=folder / cs_name, items=len(data), data_files=placer.files,
                        copied=copy_data, bytes=placer.bytes, missing_other=sorted(set(placer.missing_other)))


# ------------------------------------------------------------------------------------------ jobs
def export_job(store: Store, project_uid: str, job_uid: str, *, copy_data: bool = False,
               overwrite: bool = False) -> ExportReport:
    """Export a completed job to ``exports/jobs/<P>_<J>_<type>/``: record, events, images, log and groups.

    >>> export_job(store, "P1", "J7").folder                            # doctest: +SKIP
    PosixPath('/data/P1/exports/jobs/P1_J7_homo_reconstruct')
    """
    info = store.get_project(project_uid)
    record = store.get_job(project_uid, job_uid)
    if record.status != JobStatus.COMPLETED:
        raise StatusError(f"{record.uid} of {info.uid} is {record.status.value}; only a completed job can be "
                          f"exported (wait for it to complete, or mark it completed: cryoweave job mark-completed "
                          f"{info.uid} {record.uid})")
    final = info.directory / "exports" / "jobs" / f"{info.uid}_{record.uid}_{record.type}"
    report = ExportReport(folder=final, copied=copy_data)
    with _building(final, overwrite) as staging:
        staging.mkdir(parents=True)
        groups = []
        for name, output in record.outputs.items():
            if not output.tables:
                continue
            folder = exported.group_folder_name(info.uid, record.uid, name)
            part = write_group(store, info, record, name, staging / folder, copy_data=copy_data)
            report.groups.append(part)
            groups.append(exported.ExportedGroup(name=name, folder=folder))
        events = _export_events(store, info, record, staging)
        log = info.directory / record.uid / exported.LOG_NAME
        if log.is_file():
            shutil.copyfile(log, staging / exported.LOG_NAME)
        _write(staging / exported.EVENTS_NAME, files.dump_events(events))
        _write(staging / exported.RECORD_NAME, exported.dump_exported(_exported_record(store, info, record, groups)))
    _moved(report, staging, final)
    report.groups = [_relocated(g, staging, final) for g in report.groups]
    report.items = sum(g.items for g in report.groups)
    report.data_files = sum(g.data_files for g in report.groups)
    report.bytes = sum(g.bytes for g in report.groups)
    return report


def _exported_record(store: Store, info: ProjectInfo, record: JobRecord,
                     groups: list[exported.ExportedGroup]) -> exported.ExportedJob:
    from cryoweave import __version__

    inputs = [f"{info.uid} {c}" for conns in record.inputs.values() for c in conns]
    return exported.ExportedJob(
        source=exported.ExportSource(project=info.uid, job=record.uid, project_title=info.title,
                                     instance_id=store.instance_id, exported_at=utc_now(),
                                     cryoweave_version=__version__),
        type=record.type, title=record.title, description=record.description, params=record.params,
        spec=record.spec, status_times={k.value: v for k, v in record.status_times.items()},
        created_at=record.created_at, groups=groups, provenance_inputs=list(dict.fromkeys(inputs)))


def _export_events(store: Store, info: ProjectInfo, record: JobRecord, staging: Path):
    """The job's events, their images copied into ``images/`` and named relative to the export."""
    out = []
    for event in store.job_events(info.uid, record.uid):
        image = event.data.get("image")
        if isinstance(image, str) and image:
            source = info.directory / image
            if source.is_file() and os.path.realpath(source).startswith(os.path.realpath(info.directory) + os.sep):
                target = staging / exported.IMAGES / source.name
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(source, target)
                event = event.model_copy(update={"data": {**event.data, "image": f"{exported.IMAGES}/{source.name}"}})
            else:  # an image gone since: the event stays, without it
                event = event.model_copy(update={"data": {k: v for k, v in event.data.items() if k != "image"}})
        out.append(event)
    return out


# ------------------------------------------------------------------------------------------ folders
def _write(path: Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


@contextlib.contextmanager
def _building(final: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden sibling of ``final`` to build the export in; removed when building fails."""
    if final.exists() and not overwrite:
        raise ParamError(f"{final} already exists; export again with overwrite (--overwrite) to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _moved(report: ExportReport, staging: Path, final: Path) -> ExportReport:
    """Rename the built export into place (an old one renamed away first, then deleted)."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
    try:
        os.rename(staging, final)
    except OSError:
        if old is not None:
            os.rename(old, final)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return _relocated(report, staging, final, in_place=True)


def _relocated(report: ExportReport, staging: Path, final: Path, in_place: bool = False) -> ExportReport:
    def move(path: Path | None) -> Path | None:
        return None if path is None else final / path.relative_to(staging) if path.is_relative_to(staging) else path

    if in_place:
        report.folder, report.csg, report.cs = final, move(report.csg), move(report.cs)
        return report
    return ExportReport(folder=move(report.folder), csg=move(report.csg), cs=move(report.cs), items=report.items,
                        data_files=report.data_files, copied=report.copied, bytes=report.bytes,
                        missing_other=report.missing_other)
