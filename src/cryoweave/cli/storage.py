"""``cryoweave storage P1``: how much disk a project's jobs, job types and workspaces use."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import AsJson, console, escape, print_json, print_table, say, when
from cryoweave.display import si_size

if TYPE_CHECKING:
    from cryoweave.manage.storage import StorageReport


def storage(
    project: Annotated[str, typer.Argument(help="The project, e.g. P1.", show_default=False)],
    by: Annotated[str, typer.Option("--by", help="Rows per job, per job type or per workspace: job, type or "
                                    "workspace.")] = "job",
    refresh: Annotated[bool, typer.Option("--refresh", help="Bring the figures up to date before printing "
                                          "(walks only the jobs that changed).")] = False,
    no_refresh: Annotated[bool, typer.Option("--no-refresh", help="Print the cached figures as they are; "
                                             "start no refresh.")] = False,
    as_json: AsJson = False,
) -> None:
    """Show the disk space a project uses, largest first, per job, job type or workspace.

    Sizes count every file with links followed and each file (inode) once, as `du -L` would, in SI
    units (1 kB = 1000 bytes, as `du --si`); --json gives raw bytes. "linked" is the part that is
    data outside the project reached through links (raw data an import links to): deleting the
    project would not free it. The total counts a file shared by two jobs once, so it can be less
    than the sum of the rows. A workspace's size is the sum of its jobs; a job in several
    workspaces counts in each. Files in no job folder are the rows "exports" and "other".

    The figures are cached. When jobs changed since they were computed, the cached figures are
    printed marked stale and a refresh starts in the background; --refresh waits for fresh ones.

    Example: cryoweave storage P1 --by type
    """
    from cryoweave.errors import ParamError
    from cryoweave.manage.storage import BY, storage_report

    if refresh and no_refresh:
        raise ParamError("give --refresh or --no-refresh, not both")
    if by not in BY:
        raise ParamError(f"--by {by!r}: rows are per job, type or workspace")
    with open_instance() as inst:
        from cryoweave.manage.clearing import reclaimable

        report = storage_report(inst.store, project, refresh="now" if refresh else "never" if no_refresh else "auto",
                                reclaim=reclaimable(inst.store, project))
    if as_json:
        print_json(report.to_json(by))  # type: ignore[arg-type]
        return
    _print(report, by)


def _print(report: StorageReport, by: str) -> None:
    if report.computed_at is None:
        say(f"no storage figures for {report.project} yet; cryoweave storage {report.project} computes them")
        return
    actions = report.reclaim_actions
    columns = {"job": ["job", "type", "status", "title", "workspaces"], "type": ["type", "jobs"],
               "workspace": ["workspace", "title", "jobs"]}[by]
    rows = []
    for row in report.rows(by):  # type: ignore[arg-type]
        stale = " *" if row.stale else ""
        size = [si_size(row.bytes) + stale, row.files, si_size(row.linked_bytes) if row.linked_bytes else "",
                *(si_size(row.reclaim.get(a, 0)) if row.reclaim.get(a) else "" for a in actions)]
        if by == "job":
            label = [row.key, row.type, row.status, row.title, " ".join(row.workspaces)]
        elif by == "type":
            label = [row.key, row.jobs or ""]
        else:
            label = [row.key, row.title, row.jobs or ""]
        rows.append([*label, *size])
    print_table([*columns, "size", "files", "linked", *actions], rows)
    total = report.total
    out = console()
    out.print(f"\n[bold]total[/bold] {si_size(total.bytes)} in {total.files} files "
              f"(each file once), of which linked data outside the project {si_size(total.linked_bytes)}; "
              f"deleting {report.project} would free {si_size(report.freed_by_deleting)}")
    for action, size in report.reclaim_totals().items():
        command = report.reclaim_command(action)
        out.print(escape(f"{action} would free {si_size(size)}" + (f": {command}" if command else "")))
    state = f"computed {when(dt.datetime.fromisoformat(report.computed_at))}"
    if report.stale:
        state += (", stale (* changed since); refreshing in the background" if report.refreshing
                  else ", stale (* changed since)")
    out.print(escape(state))
    notes = report.notes()
    for note in notes[:10]:
        out.print(escape(f"note: {note}"))
    if len(notes) > 10:
        out.print(escape(f"note: ... {len(notes) - 10} more (--json lists them)"))
