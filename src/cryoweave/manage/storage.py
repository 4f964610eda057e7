"""Storage statistics: the size of each job, job type, workspace and of the whole project.

Sizes are counted as seed 004 says (every file, links followed, ``st_size`` of each inode once; see
:mod:`~cryoweave.manage.storage_walk`), with two improvements: the project total counts each inode
once across the whole project directory (a file hard-linked into two jobs is in each job's size but
once in the total), and files in no job folder are rows of their own (``exports``, ``other``). The
bytes reached through links that lead out of the project (raw data an import job links to) are
reported apart: deleting the project frees its total less those.

A workspace's size is the sum of its jobs' sizes; a job in several workspaces counts in each.

The figures are cached per project and refreshed incrementally (:mod:`~cryoweave.manage.storage_cache`).
With ``refresh="auto"`` a stale cache is returned at once, marked stale, while a detached process
(``python -m cryoweave.manage.storage --home HOME P1``) refreshes it in the background.

>>> report = storage_report(store, "P1")                              # doctest: +SKIP
>>> [(row.key, row.bytes) for row in report.rows("type")][:2]         # doctest: +SKIP
[('import_particles', 2097152000), ('homo_refine', 524288000)]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from cryoweave.errors import ParamError
from cryoweave.manage.clearing import COMMANDS
from cryoweave.manage.storage_cache import (
    PARTS,
    StorageCache,
    changes,
    load_cache,
    refresh,
    refresh_lock,
    storage_folder,
)
from cryoweave.manage.storage_walk import Tally, Total, project_total

if TYPE_CHECKING:
    from cryoweave.store import Store

Refresh = Literal["auto", "now", "never"]
By = Literal["job", "type", "workspace"]
BY = ("job", "type", "workspace")
PART_TITLES = {"exports": "exported jobs and groups (exports/)", "other": "files in no job folder"}
NO_WORKSPACE = "-"

RECLAIM_COMMANDS = {action.value: command.replace("{p}", "{project}") + " --dry-run"
                    for action, command in COMMANDS.items()}
"""The command that shows what each reclaiming action would clear (``{project}`` filled in)."""


@dataclass(frozen=True)
class StorageRow:
    """One row: a job, a job type, a workspace, or a part of the project in no job folder."""

    key: str
    title: str = ""
    type: str = ""
    status: str = ""
    workspaces: tuple[str, ...] = ()
    jobs: int = 0
    bytes: int = 0
    files: int = 0
    linked_bytes: int = 0
    reclaim: dict[str, int] = field(default_factory=dict)
    stale: bool = False
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "type": self.type, "status": self.status,
                "workspaces": list(self.workspaces), "jobs": self.jobs, "bytes": self.bytes, "files": self.files,
                "linked_bytes": self.linked_bytes, "reclaim": dict(self.reclaim), "stale": self.stale,
                "notes": list(self.notes)}


@dataclass
class StorageReport:
    """A project's storage figures: per job (and per part), the inode-unique total, how fresh they are.

    ``rows(by)`` aggregates them by ``job``, ``type`` or ``workspace``, largest first.
    """

    project: str
    directory: str
    job_rows: list[StorageRow]
    part_rows: list[StorageRow]
    total: Total
    computed_at: str | None
    stale: bool
    refreshing: bool = False
    walked: list[str] = field(default_factory=list)
    workspace_titles: dict[str, str] = field(default_factory=dict)
    reclaim_actions: list[str] = field(default_factory=list)

    def rows(self, by: By = "job") -> list[StorageRow]:
        """The rows by ``job``, ``type`` or ``workspace``, parts included, sorted by size descending.

        >>> report.rows("workspace")[0].key                          # doctest: +SKIP
        'W2'
        """
        if by not in BY:
            raise ParamError(f"cannot group storage by {by!r}; use one of {', '.join(BY)}")
        if by == "job":
            rows = list(self.job_rows)
        elif by == "type":
            rows = _group(self.job_rows, lambda r: [r.type], {})
        else:
            rows = _group(self.job_rows, lambda r: list(r.workspaces) or [NO_WORKSPACE],
                          {**self.workspace_titles, NO_WORKSPACE: "(in no workspace)"})
        order = {row.key: n for n, row in enumerate(rows)}
        return sorted(rows + self.part_rows, key=lambda r: (-r.bytes, order.get(r.key, len(order)), r.key))

    @property
    def freed_by_deleting(self) -> int:
        """What deleting the project directory would free: the total less the linked data outside it."""
        return self.total.bytes - self.total.linked_bytes

    def reclaim_totals(self) -> dict[str, int]:
        """Bytes each reclaiming action would free in the whole project."""
        return {action: sum(r.reclaim.get(action, 0) for r in self.job_rows) for action in self.reclaim_actions}

    def reclaim_command(self, action: str) -> str:
        """The command for an action (``cryoweave project clear-intermediate P1 --dry-run``), or ''."""
        return RECLAIM_COMMANDS.get(action, "").format(project=self.project)

    def notes(self) -> list[str]:
        return [f"{row.key}: {note}" for row in [*self.job_rows, *self.part_rows] for note in row.notes]

    def to_json(self, by: By = "job") -> dict[str, Any]:
        """Everything in raw bytes, for ``--json``."""
        return {"project": self.project, "directory": self.directory, "computed_at": self.computed_at,
                "stale": self.stale, "refreshing": self.refreshing, "by": by,
                "rows": [r.to_json() for r in self.rows(by)],
                "total": {**self.total.__dict__, "freed_by_deleting": self.freed_by_deleting},
                "reclaim": {a: {"bytes": b, "command": self.reclaim_command(a)}
                            for a, b in self.reclaim_totals().items()},
                "notes": self.notes()}


def _group(rows: list[StorageRow], keys, titles: dict[str, str]) -> list[StorageRow]:
    groups: dict[str, StorageRow] = {}
    for row in rows:
        for key in keys(row):
            g = groups.get(key) or StorageRow(key=key, title=titles.get(key, ""))
            reclaim = dict(g.reclaim)
            for action, size in row.reclaim.items():
                reclaim[action] = reclaim.get(action, 0) + size
            groups[key] = replace(g, jobs=g.jobs + 1, bytes=g.bytes + row.bytes, files=g.files + row.files,
                                  linked_bytes=g.linked_bytes + row.linked_bytes, reclaim=reclaim,
                                  stale=g.stale or row.stale)
    return list(groups.values())


def storage_report(store: Store, project: str, *, refresh: Refresh = "auto",
                   reclaim: Mapping[str, Mapping[str, int]] | None = None) -> StorageReport:
    """A project's storage figures, from the cache when it is fresh.

    ``refresh``: ``"auto"`` computes when there is no cache, and when the cache is stale returns it
    marked stale and starts a refresh in the background; ``"now"`` brings the cache up to date first
    (walking only what changed); ``"never"`` returns the cache as it is (nothing computed yet: no rows).
    ``reclaim``: action name -> job uid -> bytes the action would free, shown per row and in total.

    >>> storage_report(store, "P1", refresh="now").total.bytes        # doctest: +SKIP
    3221225472
    """
    if refresh not in ("auto", "now", "never"):
        raise ParamError(f"refresh must be auto, now or never, not {refresh!r}")
    home = store.settings.home
    info = store.get_project(project)
    summaries = store.jobs(info.uid)
    walked: list[str] = []
    refreshing = False
    if refresh == "now":
        cache: StorageCache | None = _refresh_now(store, info.uid)
        walked = cache.walked
    else:
        cache = load_cache(home, info.uid, info.directory)
        if cache is None and refresh == "auto":
            cache = _refresh_now(store, info.uid)
            walked = cache.walked
    diff, _ = changes(cache, info.directory, summaries)
    if diff and cache is not None and refresh == "auto":
        refreshing = start_background_refresh(store, info.uid)
    stale_keys = set(diff.jobs) | set(diff.parts)

    memberships: dict[str, list[str]] = {}
    workspace_titles: dict[str, str] = {}
    for ws in store.workspaces(info.uid):
        workspace_titles[ws.uid] = ws.title
        for job in store.jobs(info.uid, workspace=ws.uid):
            memberships.setdefault(job.uid, []).append(ws.uid)
    reclaim = reclaim or {}
    cached_jobs = cache.jobs if cache else {}
    job_rows = []
    for job in summaries:
        tally = cached_jobs[job.uid].tally if job.uid in cached_jobs else Tally()
        job_rows.append(StorageRow(
            key=job.uid, title=job.title, type=job.type, status=job.status,
            workspaces=tuple(memberships.get(job.uid, ())), jobs=1, bytes=tally.bytes, files=tally.files,
            linked_bytes=tally.linked_bytes,
            reclaim={action: int(per_job.get(job.uid, 0)) for action, per_job in reclaim.items()},
            stale=job.uid in stale_keys, notes=tuple(_notes(tally))))
    part_rows = []
    for part in PARTS:
        tally = cache.parts[part].tally if cache and part in cache.parts else Tally()
        part_rows.append(StorageRow(key=part, title=PART_TITLES[part], bytes=tally.bytes, files=tally.files,
                                    linked_bytes=tally.linked_bytes, stale=part in stale_keys,
                                    notes=tuple(_notes(tally))))
    tallies = [c.tally for c in [*cached_jobs.values(), *(cache.parts.values() if cache else [])]]
    return StorageReport(project=info.uid, directory=str(info.directory), job_rows=job_rows, part_rows=part_rows,
                         total=project_total(tallies), computed_at=cache.computed_at if cache else None,
                         stale=cache is None or bool(diff), refreshing=refreshing, walked=walked,
                         workspace_titles=workspace_titles, reclaim_actions=list(reclaim))


def _notes(tally: Tally) -> list[str]:
    more = tally.skipped - len(tally.notes)
    return [*tally.notes, *([f"... and {more} more"] if more > 0 else [])]


def _refresh_now(store: Store, project: str) -> StorageCache:
    cache = refresh(store, project)
    assert cache is not None  # it waited for the lock
    return cache


def start_background_refresh(store: Store, project: str) -> bool:
    """Start a detached refresh of ``project`` unless one is running; whether one was started.

    The process outlives the caller (its own session); its output goes to ``<home>/storage/P1.log``.
    The database URL travels in its environment, not its arguments, so a password in it does not show
    in ``ps``.

    >>> start_background_refresh(store, "P1")                        # doctest: +SKIP
    True
    """
    home = store.settings.home
    with refresh_lock(home, project, wait=False) as free:
        if not free:
            return False
    log_path = storage_folder(home) / f"{project}.log"
    if log_path.exists() and log_path.stat().st_size > 1 << 20:
        log_path.unlink()
    env = {**os.environ, "CRYOWEAVE_HOME": str(home), "CRYOWEAVE_DATABASE_URL": store.settings.database_url}
    with open(log_path, "ab") as log:
        subprocess.Popen([sys.executable, "-m", "cryoweave.manage.storage", "--home", str(home), project],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True, close_fds=True)
    return True


def main(argv: list[str] | None = None) -> int:
    """The background refresh: ``python -m cryoweave.manage.storage --home HOME [--database-url URL] P1``."""
    from cryoweave.model.records import utc_now
    from cryoweave.settings import Settings
    from cryoweave.store import Store

    parser = argparse.ArgumentParser(prog="python -m cryoweave.manage.storage",
                                     description="Refresh a project's storage statistics cache.")
    parser.add_argument("--home", required=True, help="the instance home (CRYOWEAVE_HOME)")
    parser.add_argument("--database-url", default=None, help="the database (default: $CRYOWEAVE_DATABASE_URL)")
    parser.add_argument("project")
    args = parser.parse_args(argv)
    store = Store(Settings.from_env(home=args.home, database_url=args.database_url))
    try:
        cache = refresh(store, args.project, wait=False)
        if cache is None:
            print(f"{utc_now().isoformat()} {args.project}: a refresh is already running", flush=True)
            return 0
        print(f"{utc_now().isoformat()} {args.project}: refreshed, walked {len(cache.walked)} "
              f"({', '.join(cache.walked[:20])})", flush=True)
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
