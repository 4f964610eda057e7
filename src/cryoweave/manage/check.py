"""Checking a project: every record file, output table, ``.csg``, passthrough, data file and link.

:func:`check_project` reads the project's database once, then its directory: the record files
(:mod:`~cryoweave.manage.check_records`), each job's outputs (:mod:`~cryoweave.manage.check_outputs`),
the data files the tables name and the links in job folders (:mod:`~cryoweave.manage.check_paths`).
Each ``.cs`` is read once (its header; the path fields of the final tables and passthrough sources)
and each distinct file path is looked up once, so a project of a thousand jobs and a million-particle
output group checks in seconds.

With ``repair=True`` what can be fixed without guessing is fixed, with the project locked: record
files rewritten from the database (``job.json``, ``events.jsonl``, ``project.json``,
``workspaces.json``) and ``.csg`` files rewritten from the job records. Everything else says what to
do. An archived (read-only) project can be checked but not repaired.

>>> report = check_project(store, "P1")                       # doctest: +SKIP
>>> report.clean, report.summary()                            # doctest: +SKIP
(True, 'P1: checked 4 jobs, 9 tables, 7 data files, 3 links in 0.1 s: clean')
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryoweave.errors import StatusError
from cryoweave.manage.check_outputs import Headers, check_outputs, passthrough_users
from cryoweave.manage.check_paths import FileLookup, check_data_paths, check_links, data_tables
from cryoweave.manage.check_records import (
    Snapshot,
    check_job_files,
    check_links_between_jobs,
    check_project_files,
    check_stray_folders,
    read_snapshot,
)
from cryoweave.manage.problems import CheckReport, Problem, ProblemKind, Severity
from cryoweave.store import Store

Progress = Callable[[str, int, int], None]
"""Called as work goes on: ``progress(stage, done, total)``, e.g. ``("tables", 120, 800)``."""

__all__ = ["CheckReport", "Problem", "ProblemKind", "Progress", "Severity", "check_project"]


class _Stage:
    """Counts one stage's steps for the progress callback (about every 1% and at the end)."""

    def __init__(self, progress: Progress | None, stage: str, total: int):
        self.progress, self.stage, self.total, self.done = progress, stage, total, 0
        self.every = max(1, total // 100)
        if progress is not None:
            progress(stage, 0, total)

    def step(self) -> None:
        self.done += 1
        if self.progress is not None and (self.done % self.every == 0 or self.done == self.total):
            self.progress(self.stage, min(self.done, self.total), self.total)


def check_project(store: Store, project_uid: str, *, repair: bool = False,
                  progress: Progress | None = None) -> CheckReport:
    """Check a project's directory against its database and its own records; optionally repair.

    Returns a :class:`CheckReport`: each problem with its kind, where, what is wrong, what to do,
    and whether it was repaired. ``repair=True`` on an archived project raises :class:`StatusError`.

    >>> report = check_project(store, "P1", repair=True)        # doctest: +SKIP
    >>> [(p.kind.value, p.where, p.repaired) for p in report.problems]  # doctest: +SKIP
    [('csg', 'J3.particles', True)]
    """
    start = time.perf_counter()
    snap = read_snapshot(store, project_uid)
    if repair and snap.info.archived:
        raise StatusError(f"project {snap.uid} is archived (read-only): it can be checked but not repaired; "
                          f"check it without --repair, or unarchive it first (cryoweave project unarchive {snap.uid})")
    report = CheckReport(project=snap.uid, directory=snap.root, repair=repair)
    if not snap.root.is_dir():
        report.problems.append(Problem(ProblemKind.RECORD, str(snap.root), "the project directory is missing",
                                       f"attach the directory from where it is now, or detach {snap.uid} "
                                       f"(cryoweave project detach {snap.uid})"))
        report.seconds = time.perf_counter() - start
        return report
    problems = _check(snap, progress, report.checked)
    if repair:
        _repair(store, snap, problems)
    report.problems = problems
    report.seconds = time.perf_counter() - start
    return report


def _check(snap: Snapshot, progress: Progress | None, checked: dict[str, int]) -> list[Problem]:
    problems = check_project_files(snap) + check_stray_folders(snap)
    stage = _Stage(progress, "records", len(snap.records))
    for uid in snap.records:
        problems += check_job_files(snap, uid)
        problems += check_links_between_jobs(snap, uid)
        stage.step()
    checked["jobs"] = len(snap.records)

    headers = Headers(snap)
    users = passthrough_users(snap)
    stage = _Stage(progress, "outputs", len(snap.records))
    for uid in snap.records:
        problems += check_outputs(snap, uid, headers, users)
        stage.step()

    exists = FileLookup()
    stage = _Stage(progress, "data paths", len(data_tables(snap)))
    problems += check_data_paths(snap, headers, exists, stage.step)
    checked["tables"] = len(headers.cache)
    checked["data files"] = len(exists.known)

    stage = _Stage(progress, "links", len(snap.records))
    found, links = check_links(snap, exists, stage.step)
    problems += found
    checked["links"] = links
    return problems


def _repair(store: Store, snap: Snapshot, problems: list[Problem]) -> None:
    """Apply every repairable problem's fix in one write transaction of the project."""
    todo = [p for p in problems if p.repair_with is not None]
    if not todo:
        return
    with store.project(snap.uid) as tx:
        tx.require_writable()
        for problem in todo:
            assert problem.repair_with is not None
            problem.repair_with(tx)
            problem.repaired = True
            problem.fix = f"repaired: {problem.fix}"
