"""Freeing disk space: ``job mark-final``, ``job clear-intermediate``, ``project clear-intermediate``,
``project cleanup`` and ``project policy``.

Every verb that deletes shows what it would delete (``--dry-run`` stops there) and asks before it does,
unless ``--yes``; without a terminal to ask at, it refuses and says to pass ``--yes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.job import JobArg, ProjectArg, _done
from cryoweave.cli.job import app as job_app
from cryoweave.cli.output import AsJson, confirm, print_json, print_table, say
from cryoweave.cli.project import app as project_app
from cryoweave.display import si_size

if TYPE_CHECKING:
    from cryoweave.manage.clearing import ClearingReport

DryRun = Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted and the space it frees.")]
Yes = Annotated[bool, typer.Option("--yes", help="Delete without asking.")]


def report_data(report: ClearingReport) -> dict[str, Any]:
    return {"project": report.project, "action": report.action.value, "dry_run": report.dry_run,
            "bytes": report.bytes, "jobs": [vars(j) for j in report.jobs], "skipped": report.skipped}


def show(report: ClearingReport, as_json: bool) -> None:
    """The jobs an action clears (or would), the bytes, and the jobs it keeps and why."""
    if as_json:
        print_json(report_data(report))
        return
    rows = []
    for j in report.jobs:
        versions = "; ".join(f"{g} v{', v'.join(map(str, v))}" for g, v in j.versions.items())
        kept = f"{len(j.kept)} kept (used by {', '.join(sorted({u for us in j.kept.values() for u in us}))})" \
            if j.kept else ""
        rows.append((j.job, j.type, j.title, len(j.files), si_size(j.bytes), versions or "whole job", kept))
    print_table(["job", "type", "title", "files", "frees", "what", "kept"], rows,
                empty=f"{report.action.value}: nothing to delete in {report.project}")
    for uid, why in sorted(report.skipped.items(), key=lambda kv: int(kv[0][1:])):
        say(f"{uid} kept: {why}")
    verb = "would free" if report.dry_run else "freed"
    say(f"{report.action.value}: {len(report.jobs)} job(s), {verb} {si_size(report.bytes)} "
        f"({report.bytes:,} bytes)")


def _run(plan: ClearingReport, yes: bool, dry_run: bool, as_json: bool, again: Any) -> None:
    """Show the dry run; unless it was only that, ask (or take --yes) and do it."""
    if dry_run or not plan.jobs:
        show(plan, as_json)
        return
    if not yes:
        show(plan, False)
        confirm(f"{plan.action.value}: delete these files ({si_size(plan.bytes)})?",
                f"nothing was deleted: {plan.action.value} would delete the files listed above "
                f"({si_size(plan.bytes)}); pass --yes to do it, or --dry-run to only list them")
    show(again(), as_json)


@job_app.command("mark-final")
def mark_final(project: ProjectArg, job: JobArg,
               unset: Annotated[bool, typer.Option("--unset", help="No longer final.")] = False,
               as_json: AsJson = False) -> None:
    """Mark a completed job final: data cleanup keeps it and every job it depends on.

    Example: cryoweave job mark-final P1 J12
    """
    with open_instance() as inst:
        j = inst.project(project).job(job)
        _done(j.mark_final(not unset), as_json, "no longer marked final" if unset else "marked final")


@job_app.command()
def clear(project: ProjectArg, job: JobArg,
          descendants: Annotated[bool, typer.Option("--descendants", help="Also clear every job that takes input "
                                                    "from it, directly or not.")] = False,
          yes: Yes = False, as_json: AsJson = False) -> None:
    """Clear a job back to building: its outputs and files go; parameters and connections stay.

    Asks first (or takes --yes). Refused while a completed, queued or running job that is not
    cleared with it uses its files; --descendants clears those too.

    Example: cryoweave job clear P1 J3 --descendants --yes
    """
    from cryoweave.cli.running import clear_note

    with open_instance() as inst:
        j = inst.project(project).job(job)
        note = clear_note(inst, j, descendants)
        if not yes and j.record.status.value != "building":
            confirm(f"clear {j.uid}{' and its descendants' if descendants else ''}, deleting its files?",
                    f"nothing was cleared: this would delete the files of {j.uid}"
                    f"{' and of its descendants' if descendants else ''}; pass --yes to do it")
        _done(j.clear(descendants=descendants), as_json, note)


@job_app.command("clear-intermediate")
def job_clear_intermediate(project: ProjectArg, job: JobArg, dry_run: DryRun = False, yes: Yes = False,
                           as_json: AsJson = False) -> None:
    """Delete a job's intermediate results (output versions before the final one) that no job uses.

    The final version of every result stays, and so does any version another job is connected to.

    Example: cryoweave job clear-intermediate P1 J12 --dry-run
    """
    with open_instance() as inst:
        p = inst.project(project)
        uid = p.job(job).uid
        _run(p.clear_intermediate(jobs=[uid], dry_run=True), yes, dry_run, as_json,
             lambda: p.clear_intermediate(jobs=[uid]))


@project_app.command("clear-intermediate")
def project_clear_intermediate(
        project: ProjectArg,
        workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Only the jobs of this workspace.",
                                                      show_default=False)] = None,
        dry_run: DryRun = False, yes: Yes = False, as_json: AsJson = False) -> None:
    """Delete the intermediate results no job uses, in every job of a project (or of one workspace).

    Example: cryoweave project clear-intermediate P1 --dry-run
    """
    with open_instance() as inst:
        p = inst.project(project)
        _run(p.clear_intermediate(workspace=workspace, dry_run=True), yes, dry_run, as_json,
             lambda: p.clear_intermediate(workspace=workspace))


@project_app.command()
def cleanup(project: ProjectArg,
            killed_failed: Annotated[bool, typer.Option("--killed-failed",
                                                        help="Clear killed and failed jobs.")] = False,
            non_final: Annotated[bool, typer.Option("--non-final", help="Clear jobs that are neither marked final nor "
                                                    "ancestors of a final job.")] = False,
            dry_run: DryRun = False, yes: Yes = False, as_json: AsJson = False) -> None:
    """Clear jobs to free space: killed and failed ones, or those that are not final (nor needed by one).

    Cleared jobs go back to building (parameters and connections stay); a job whose files a job that
    stays still uses is kept, and the list says which. Mark the jobs to keep with job mark-final first.

    Example: cryoweave project cleanup P1 --non-final --dry-run
    """
    from cryoweave.errors import ParamError
    from cryoweave.manage.clearing import Action

    if killed_failed == non_final:
        raise ParamError("say what to clean up: --killed-failed or --non-final")
    action = Action.FAILED if killed_failed else Action.NON_FINAL
    with open_instance() as inst:
        p = inst.project(project)
        _run(p.cleanup(action, dry_run=True), yes, dry_run, as_json, lambda: p.cleanup(action))


@project_app.command()
def policy(project: ProjectArg,
           keep_final_only: Annotated[bool | None, typer.Option(
               "--keep-final-only/--keep-all-versions",
               help="When a job completes, delete its intermediate results that no job uses (or keep them).",
               show_default=False)] = None,
           as_json: AsJson = False) -> None:
    """Show or set a project's disk policy.

    Example: cryoweave project policy P1 --keep-final-only
    """
    with open_instance() as inst:
        p = inst.project(project)
        if keep_final_only is not None:
            p.set_keep_final_only(keep_final_only)
        info = p.info()
    if as_json:
        print_json({"project": info.uid, "keep_final_only": info.keep_final_only})
    else:
        say(f"{info.uid}: " + ("keep final only: intermediate results no job uses are deleted when a job completes"
                               if info.keep_final_only else "every saved version is kept (clear-intermediate frees "
                               "them)"))
