"""Data management from Python: storage, clearing, cleanup, archives, checks, export and import.

The methods of :class:`~cryoweave.api.Project` and :class:`~cryoweave.api.Job` that look after disk
space and move data between projects and instances; each calls :mod:`cryoweave.manage`.

>>> project.storage(by="type").rows[0]                     # doctest: +SKIP
>>> project.clear_intermediate(dry_run=True).bytes         # doctest: +SKIP
>>> project.job("J7").export()                             # doctest: +SKIP
>>> other_project.import_job("/data/P1/exports/jobs/P1_J7_homo_reconstruct", workspace="W1")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryoweave.builder import edits

if TYPE_CHECKING:
    from cryoweave.api.objects import Job, Project
    from cryoweave.manage.clearing import ClearingReport


class ProjectData:
    """Disk space, archives, checks and imports of a project."""

    def storage(self: Project, *, refresh: str = "auto") -> Any:
        """Sizes of the project's jobs (each inode once), with what each clearing action would free.

        ``refresh``: ``"auto"`` (cached figures, refreshed in the background when stale), ``"now"`` or ``"never"``.
        The report's rows come ``by`` job, type or workspace (``report.rows_by("type")``).
        """
        from cryoweave.manage.clearing import reclaimable
        from cryoweave.manage.storage import storage_report

        return storage_report(self._store, self.uid, refresh=refresh, reclaim=reclaimable(self._store, self.uid))

    def clear_intermediate(self: Project, *, workspace: str | None = None, jobs: list[str] | None = None,
                           dry_run: bool = False) -> ClearingReport:
        """Delete intermediate results no job uses (of the whole project, a workspace, or some jobs)."""
        from cryoweave.manage.clearing import clear_intermediate

        return clear_intermediate(self._store, self.uid, jobs=jobs, workspace=workspace, dry_run=dry_run)

    def cleanup(self: Project, action: str, *, dry_run: bool = False) -> ClearingReport:
        """Take a cleanup action: ``"clear killed/failed jobs"`` or ``"clear non-final jobs"`` (dry run first)."""
        from cryoweave.manage.clearing import cleanup

        return cleanup(self._store, self.uid, action, dry_run=dry_run)

    def set_keep_final_only(self: Project, keep: bool = True) -> None:
        """The project's policy: when a job completes, delete its intermediate results that no job uses."""
        self._store.update_project(self.uid, keep_final_only=keep)

    def archive(self: Project, dest: str | os.PathLike | None = None, *, include_raw: bool = False,
                remove_directory: bool = False) -> Any:
        """Make the project read-only; with ``dest``, first write it into a verified ``.tar`` / ``.tar.zst``."""
        if dest is None:
            self._store.update_project(self.uid, archived=True)
            return None
        from cryoweave.manage.archive import archive_project

        return archive_project(self._store, self.uid, dest, include_raw=include_raw,
                               remove_directory=remove_directory)

    def unarchive(self: Project, source: str | os.PathLike | None = None, *, allow_links: bool = False) -> Any:
        """Make the project writable again, restoring its directory from its archive when it was removed."""
        from cryoweave.manage.archive import unarchive_project

        return unarchive_project(self._store, self.uid, source=source, allow_links=allow_links)

    def check(self: Project, *, repair: bool = False) -> Any:
        """Verify every record file, metafile, passthrough and data path; ``repair`` fixes what it can."""
        from cryoweave.manage.check import check_project

        return check_project(self._store, self.uid, repair=repair)

    def relink(self: Project, old: str | os.PathLike, new: str | os.PathLike, *, dry_run: bool = False,
               force: bool = False) -> Any:
        """Point links and absolute data paths under ``old`` to the same files under ``new`` (raw data moved);
        refused when some new target is missing, unless ``force``."""
        from cryoweave.manage.relink import relink

        return relink(self._store, self.uid, old, new, dry_run=dry_run, force=force)

    def import_job(self: Project, folder: str | os.PathLike, *, workspace: str | None = None,
                   allow_links: bool = False) -> Job:
        """Bring in a job exported from any project (``exports/jobs/<P>_<J>_<type>``) as a completed job."""
        from cryoweave.manage.imports import import_job

        record = import_job(self._store, self.uid, Path(folder), workspace=workspace, allow_links=allow_links)
        return self.job(record.uid)


class JobData:
    """Marking final, clearing intermediate results, exporting."""

    def mark_final(self: Job, final: bool = True) -> Job:
        """Mark a completed job final: cleanup keeps it and every job it depends on (``False`` unmarks it)."""
        return self._edit(edits.set_final(final))

    def clear_intermediate(self: Job, *, dry_run: bool = False) -> ClearingReport:
        """Delete this job's intermediate results that no job uses; the final version of each result stays."""
        return self.project.clear_intermediate(jobs=[self.uid], dry_run=dry_run)

    def export(self: Job, *, copy_data: bool = False, overwrite: bool = False) -> Any:
        """Export the job into ``<project>/exports/jobs/<P>_<J>_<type>/`` (importable by any instance)."""
        from cryoweave.manage.exports import export_job

        return export_job(self.project._store, self.project.uid, self.uid, copy_data=copy_data, overwrite=overwrite)

    def export_group(self: Job, group: str, *, version: int | str = "F", copy_data: bool = False,
                     overwrite: bool = False) -> Any:
        """Export one output group into ``<project>/exports/groups/<P>_<J>_<group>/`` (for Import Result Group)."""
        from cryoweave.manage.exports import export_group

        return export_group(self.project._store, self.project.uid, self.uid, group, version=version,
                            copy_data=copy_data, overwrite=overwrite)
