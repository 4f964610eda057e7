"""Import an exported job into a project, as a completed job whose outputs connect like any other.

The exported folder is checked completely first (:func:`cryoweave.manage.import_checks.check_export`);
then its data files, images and log are placed in a hidden staging folder inside the project (files
hard linked when the export lies on the same filesystem, else copied; links the caller allowed are
recreated as links to their real targets), and, with the project locked while the job gets its
number, the staging folder is renamed to ``J<n>`` and each group's table is written as
``J<n>/J<n>_<group>.cs`` with its data paths made project-relative (``J<n>/data/…``). Any failure
removes the staging folder and ``J<n>``: the project is left as it was.

The new job keeps the exported type, title, description, parameters and spec; it is completed now
(its original times are in the import event), each output result is the job's own at version 0,
and its event log is the exported one after the creation event, then one saying where it came from.

>>> job = import_job(store, "P2", "/data/P1/exports/jobs/P1_J7_homo_reconstruct", workspace="W1")  # doctest: +SKIP
>>> job.uid, job.status.value                                                                      # doctest: +SKIP
('J4', 'completed')
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from cryoweave.builder.edits import new_job
from cryoweave.builder.saving import write_group_file
from cryoweave.dataset.strings import factorize, make_codes
from cryoweave.errors import AttachError, CryoweaveError
from cryoweave.jobs.library.result_group import path_fields
from cryoweave.jobs.registry import default_registry
from cryoweave.manage.import_checks import GroupPlan, ImportPlan, check_export
from cryoweave.manage.safety import inside
from cryoweave.model.records import JobRecord, OutputGroup, OutputResult, OutputTable, utc_now
from cryoweave.model.status import JobStatus
from cryoweave.store import ProjectTx, Store
from cryoweave.store.schema import events as events_table


def import_job(store: Store, project_uid: str, folder: str | os.PathLike, *, workspace: str | None = None,
               allow_links: bool = False) -> JobRecord:
    """Import the exported job in ``folder`` into a project (in ``workspace``, default its only one).

    >>> import_job(store, "P2", "/data/P1/exports/jobs/P1_J7_particle_sets").outputs.keys()  # doctest: +SKIP
    dict_keys(['split_0', 'split_1', 'remainder'])
    """
    plan = check_export(folder, allow_links=allow_links)
    job = plan.job
    build_base = new_job(job.spec, workspaces=[workspace] if workspace else None, title=job.title,
                         description=job.description, params=job.params)  # checks the parameters
    project_dir = store.get_project(project_uid).directory
    staging = project_dir / f".import-{uuid.uuid4().hex[:12]}"
    placed: dict[str, dict[str, str]] = {}
    made: list[Path] = []

    def build(tx: ProjectTx, uid: str) -> JobRecord:
        record = build_base(tx, uid)
        target = project_dir / uid
        if os.path.lexists(target):
            raise AttachError(f"{target} already exists, but project {tx.uid} has no job {uid}; move it away "
                              "and import again")
        os.rename(staging, target)
        made.append(target)
        now = utc_now()
        record.status, record.status_times = JobStatus.COMPLETED, {JobStatus.BUILDING: now, JobStatus.COMPLETED: now}
        record.outputs = {g.name: _write_table(project_dir, record, g, placed[g.name]) for g in plan.groups}
        for group in record.outputs.values():
            write_group_file(project_dir, record, group)
        return record

    try:
        _stage(plan, staging, placed)
        record = store.create_job(project_uid, build, after=lambda tx, job_id, made: _add_events(tx, job_id, made,
                                                                                                 plan))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for target in made:  # renamed into place, but the job was not created
            if not _exists(store, project_uid, target.name):
                shutil.rmtree(target, ignore_errors=True)
        raise
    return store.get_job(project_uid, record.uid)


def _exists(store: Store, project: str, uid: str) -> bool:
    try:
        store.get_job(project, uid)
    except CryoweaveError:
        return False
    return True


def _stage(plan: ImportPlan, staging: Path, placed: dict[str, dict[str, str]]) -> None:
    """Place data, images and log in ``staging``; ``placed[group]`` maps each ``>`` path to its name there."""
    staging.mkdir()
    by_file: dict[tuple[int, int], str] = {}
    taken: set[str] = set()
    for group in plan.groups:
        names = placed[group.name] = {}
        for text, path in sorted(group.files.items()):
            stat = os.stat(path)
            key = (stat.st_dev, stat.st_ino)
            if key not in by_file:
                rest = text[1:].lstrip("/")
                name = rest if rest.startswith("data/") else f"data/{rest}"
                if name in taken:  # another file of the same name in another group
                    name = f"data/{group.folder.name}/{rest.removeprefix('data/')}"
                by_file[key] = name
                taken.add(name)
                _place(path, staging / name, link=not inside(plan.folder, path))
            names[text] = by_file[key]
    for name, path in plan.images.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    if plan.log is not None:
        shutil.copyfile(plan.log, staging / "job.log")


def _place(source: Path, target: Path, *, link: bool) -> None:
    """A link to the real file (an allowed link out of the export), else a hard link or a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    real = os.path.realpath(source)
    if link:
        os.symlink(real, target)
        return
    try:
        os.link(real, target)
    except OSError:  # another filesystem, or hard links not allowed: copy the bytes
        shutil.copyfile(real, target)


def _write_table(project_dir: Path, record: JobRecord, group: GroupPlan, names: dict[str, str]) -> OutputGroup:
    """Write one group's table as ``J<n>/J<n>_<group>.cs`` (paths project-relative); its output group."""
    data = group.data.copy()
    for name in path_fields(data):
        raw = data._cols[name]
        uniques, codes = factorize(np.asarray(raw).reshape(-1))
        table = np.empty(len(uniques), dtype=object)
        for i, value in enumerate(uniques.tolist()):
            text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
            table[i] = f"{record.uid}/{names[text]}" if text in names else text
        data._cols[name] = make_codes(codes.astype(np.uint32).reshape(np.shape(raw)), table)
    metafile = f"{record.uid}/{record.uid}_{group.name}.cs"
    data.save(project_dir / metafile)
    n = len(data)
    results = {slot: OutputResult(name=slot, dtype=r.dtype, versions=[0], metafiles=[metafile], num_items=[n])
               for slot, r in group.csg.results.items()}
    spec = next((o for o in record.spec.outputs if o.name == group.name), None)
    return OutputGroup(name=group.name, type=group.csg.type, title=group.csg.title or (spec.title if spec else ""),
                       results=results, passthrough=None, num_items=n,
                       tables=[OutputTable(version=0, metafile=metafile, num_items=n)])


def _add_events(tx: ProjectTx, job_id: int, record: JobRecord, plan: ImportPlan) -> None:
    """The exported events after the creation event (times kept), then one saying where the job came from."""
    source = plan.job.source
    known = True
    try:
        default_registry().get(plan.job.type)
    except CryoweaveError:
        known = False
    seq = max((e.seq for e in tx.events(job_id)), default=0)
    rows = []
    for event in plan.events:
        seq += 1
        data = dict(event.data)
        if isinstance(data.get("image"), str) and data["image"] in plan.images:
            data["image"] = f"{record.uid}/{data['image']}"
        moved = event.model_copy(update={"seq": seq, "data": data})
        rows.append({"job_id": job_id, "seq": seq, "record": moved.model_dump_json()})
    if rows:
        tx.conn.execute(insert(events_table), rows)
        tx.directory.write_events(record.uid, tx.events(job_id))
    kept = sum(g.kept_as_text for g in plan.groups)
    title = f" {source.project_title!r}" if source.project_title else ""
    when = source.exported_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    items = sum(len(g.data) for g in plan.groups)
    text = (f"imported from {plan.folder} (exported from {source.project} {source.job}{title} at {when} by "
            f"cryoweave {source.cryoweave_version or '?'}); {len(plan.groups)} output group(s), {items:,} items")
    if kept:
        text += f"; {kept} path(s) of files the export did not hold were kept as text"
    tx.add_event(job_id, record.uid, text, data={"imported_from": {
        "folder": str(plan.folder), **source.model_dump(mode="json"),
        "status_times": {k: v.isoformat() for k, v in plan.job.status_times.items()},
        "created_at": plan.job.created_at.isoformat(), "inputs": plan.job.provenance_inputs}})
    if not known:
        tx.add_event(job_id, record.uid, f"job type {plan.job.type!r} is not installed on this instance; the job "
                     "was imported with the spec it was exported with (its outputs can be used; it cannot be "
                     "run again here)", level="warning")
