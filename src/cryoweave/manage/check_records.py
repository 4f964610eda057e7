"""The integrity check's first part: the record files of a project against its database.

The database is read once (:func:`read_snapshot`: the project, its workspaces, every job record and how
many events each job has), then the directory's ``project.json``, ``workspaces.json`` and each job's
``job.json`` and ``events.jsonl`` are parsed and compared with it. A record file that is missing,
damaged or different from the database is rewritten from the database on repair (the store keeps the
two in step, so the database's record is the one to trust); a job folder the database does not know,
a connection to a job or output that does not exist, or a missing event image is reported only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from cryoweave.errors import RecordError
from cryoweave.manage.problems import Problem, ProblemKind, Repair
from cryoweave.model.records import JobRecord, WorkspaceRecord
from cryoweave.store import ProjectDirectory, ProjectInfo, ProjectTx, Store
from cryoweave.store.schema import events, jobs


@dataclass
class Snapshot:
    """A project as its database holds it, read in one transaction."""

    info: ProjectInfo
    workspaces: list[WorkspaceRecord]
    records: dict[str, JobRecord]
    event_counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # uid: (events, last seq)

    @property
    def uid(self) -> str:
        return self.info.uid

    @property
    def root(self) -> Path:
        return self.info.directory

    @property
    def directory(self) -> ProjectDirectory:
        return ProjectDirectory(self.info.directory)


def read_snapshot(store: Store, project: str) -> Snapshot:
    """The project, its workspaces and every job record, from one read transaction."""
    with store.project(project, write=False) as tx:
        rows = tx.conn.execute(select(jobs.c.id, jobs.c.number, jobs.c.record)
                               .where(jobs.c.project_id == tx.row.id).order_by(jobs.c.number)).all()
        counts = tx.conn.execute(
            select(events.c.job_id, func.count(), func.max(events.c.seq))
            .where(events.c.job_id.in_(select(jobs.c.id).where(jobs.c.project_id == tx.row.id)))
            .group_by(events.c.job_id)).all()
        by_id = {r.id: f"J{r.number}" for r in rows}
        return Snapshot(info=tx.info(), workspaces=tx.workspaces(),
                        records={f"J{r.number}": JobRecord.model_validate_json(r.record) for r in rows},
                        event_counts={by_id[c[0]]: (int(c[1]), int(c[2] or 0)) for c in counts})


def _rewrite_job(uid: str) -> Repair:
    def repair(tx: ProjectTx) -> None:
        tx.directory.write_job(tx.job(uid)[1])
    return repair


def _rewrite_events(uid: str) -> Repair:
    def repair(tx: ProjectTx) -> None:
        job_id, _record = tx.job(uid)
        tx.directory.write_events(uid, tx.events(job_id))
    return repair


def _rewrite_project(tx: ProjectTx) -> None:
    tx.export_project()


def _rewrite_workspaces(tx: ProjectTx) -> None:
    tx.export_workspaces()


def check_project_files(snap: Snapshot) -> list[Problem]:
    """``project.json`` and ``workspaces.json``: they parse and say what the database says."""
    problems: list[Problem] = []
    folder = snap.directory
    try:
        on_disk = folder.read_project()
        expected = snap.info.record()
        if on_disk.model_copy(update={"updated_at": expected.updated_at}) != expected:  # touched without export
            problems.append(Problem(ProblemKind.DATABASE, "project.json",
                                    f"differs from the database (title {on_disk.title!r}, archived "
                                    f"{on_disk.archived}; the database: {snap.info.title!r}, {snap.info.archived})",
                                    "rewrite it from the database", repair_with=_rewrite_project))
    except RecordError as err:
        problems.append(Problem(ProblemKind.RECORD, "project.json", str(err), "rewrite it from the database",
                                repair_with=_rewrite_project))
    try:
        spaces = folder.read_workspaces()
        if not (snap.root / "workspaces.json").exists():
            raise RecordError(f"{snap.root / 'workspaces.json'}: missing")
        if spaces != snap.workspaces:
            problems.append(Problem(ProblemKind.DATABASE, "workspaces.json",
                                    f"lists {', '.join(w.uid for w in spaces) or 'no workspace'}; the database "
                                    f"has {', '.join(w.uid for w in snap.workspaces) or 'none'} (or other titles)",
                                    "rewrite it from the database", repair_with=_rewrite_workspaces))
    except RecordError as err:
        problems.append(Problem(ProblemKind.RECORD, "workspaces.json", str(err), "rewrite it from the database",
                                repair_with=_rewrite_workspaces))
    return problems


def check_job_files(snap: Snapshot, uid: str) -> list[Problem]:
    """One job's ``job.json`` and ``events.jsonl`` against the database."""
    record = snap.records[uid]
    folder = snap.directory
    problems: list[Problem] = []
    job_json = f"{uid}/job.json"
    if not (snap.root / job_json).is_file():
        problems.append(Problem(ProblemKind.DATABASE, job_json,
                                f"missing: {uid} ({record.type}, {record.status.value}) is in the database but its "
                                "job.json is not in the directory", "rewrite it from the database",
                                repair_with=_rewrite_job(uid)))
    else:
        try:
            on_disk = folder.read_job(record.number)
            if on_disk != record and not record.status.active:  # a running job's file may be a step ahead
                problems.append(Problem(ProblemKind.DATABASE, job_json,
                                        f"differs from the database ({_difference(on_disk, record)})",
                                        "rewrite it from the database", repair_with=_rewrite_job(uid)))
        except RecordError as err:
            problems.append(Problem(ProblemKind.RECORD, job_json, f"cannot be read: {err}",
                                    "rewrite it from the database", repair_with=_rewrite_job(uid)))
    count, last = snap.event_counts.get(uid, (0, 0))
    log = f"{uid}/events.jsonl"
    try:
        logged = folder.read_events(record.number)
        missing = not (snap.root / log).exists()
        if count and (missing or not logged or logged[-1].seq != last or len(logged) != count):
            what = "missing" if missing else f"holds {len(logged)} event(s), the database {count}"
            problems.append(Problem(ProblemKind.DATABASE, log, what, "rewrite it from the database",
                                    repair_with=_rewrite_events(uid)))
    except RecordError as err:
        logged = []
        problems.append(Problem(ProblemKind.RECORD, log, f"cannot be read: {err}", "rewrite it from the database",
                                repair_with=_rewrite_events(uid) if count else None))
    for event in logged:
        image = event.data.get("image") if isinstance(event.data, dict) else None
        if isinstance(image, str) and image and not (
                os.path.exists(snap.root / image) or os.path.exists(snap.root / uid / image)):
            problems.append(Problem(ProblemKind.IMAGE, f"{uid} event {event.seq}",
                                    f"its image {image} is missing ({event.text[:60]!r})",
                                    f"nothing depends on it; re-run {uid} to make it again"))
    return problems


def _difference(a: JobRecord, b: JobRecord) -> str:
    """The first fields in which two records differ, for the message."""
    differ = [name for name in JobRecord.model_fields if getattr(a, name) != getattr(b, name)]
    return "fields " + ", ".join(differ[:5]) if differ else "formatting"


def check_stray_folders(snap: Snapshot) -> list[Problem]:
    """Job folders holding a job.json that the database does not know."""
    try:
        numbers = snap.directory.job_numbers()
    except OSError:
        return []
    return [Problem(ProblemKind.DATABASE, f"J{n}/job.json",
                    f"J{n}'s folder holds a job.json, but the database has no J{n} in {snap.uid}",
                    f"if J{n} belongs to the project, attach the directory anew (cryoweave project detach "
                    f"{snap.uid}, then cryoweave project attach {snap.root}); else move the folder J{n} away")
            for n in numbers if f"J{n}" not in snap.records]


def check_links_between_jobs(snap: Snapshot, uid: str) -> list[Problem]:
    """Each workspace a job is in exists; each connection and override names an existing job and group."""
    record = snap.records[uid]
    spaces = {w.uid for w in snap.workspaces}
    problems = [Problem(ProblemKind.CONNECTION, uid, f"{uid} is in workspace {w}, which does not exist",
                        f"re-attach the project so its records are read anew, or add {uid} to an existing workspace "
                        "from Python (job.add_to_workspace)")
                for w in record.workspaces if w not in spaces]
    for name, conns in record.inputs.items():
        for index, conn in enumerate(conns):
            where = f"{uid} input {name}[{index}]"
            trouble = _missing_group(snap, conn.job, conn.group)
            if trouble:
                first = "" if record.status.editable else f"clear {uid} (cryoweave job clear {snap.uid} {uid}), then "
                problems.append(Problem(ProblemKind.CONNECTION, where, f"connected to {conn}: {trouble}",
                                        f"{first}disconnect it (cryoweave job disconnect {snap.uid} {uid} {name} "
                                        f"--index {index}) and connect an existing output"))
            for slot, ref in conn.overrides.items():
                trouble = _missing_group(snap, ref.job, ref.group, ref.result)
                if trouble:
                    problems.append(Problem(ProblemKind.CONNECTION, f"{where}.{slot}",
                                            f"bound to {ref}: {trouble}",
                                            "bind the slot to an existing result (cryoweave job connect-result)"))
    return problems


def _missing_group(snap: Snapshot, job: str, group: str, result: str | None = None) -> str:
    source = snap.records.get(job)
    if source is None:
        return f"{job} does not exist"
    declared = {o.name for o in source.spec.outputs} | set(source.outputs)
    if group not in declared:
        return f"{job} has no output {group!r}"
    saved = source.outputs.get(group)
    if result is not None and saved is not None and saved.tables and result not in saved.results:
        return f"{job}.{group} has no result {result!r}"
    return ""
