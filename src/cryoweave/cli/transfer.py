"""``cryoweave export job|group`` and ``cryoweave import job``: share a job or an output group."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import AsJson, print_json, say
from cryoweave.display import si_size

if TYPE_CHECKING:
    from cryoweave.manage.exports import ExportReport

export_app = typer.Typer(help="Export a job or an output group into the project's exports/ folder.",
                         no_args_is_help=True)
import_app = typer.Typer(help="Import an exported job into a project.", no_args_is_help=True)

ProjectArg = Annotated[str, typer.Argument(help="The project, e.g. P1.", show_default=False)]
CopyData = Annotated[bool, typer.Option("--copy-data", help="Copy the data files (stacks, maps) into the export "
                                        "instead of linking them: for an upload (EMPIAR) or to share the folder.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export of the same job or group.")]


def report_data(report: ExportReport) -> dict[str, Any]:
    """An export as printed by ``--json``."""
    return {"folder": str(report.folder), "csg": str(report.csg) if report.csg else None,
            "cs": str(report.cs) if report.cs else None, "items": report.items, "data_files": report.data_files,
            "copied": report.copied, "bytes": report.bytes, "missing_other": report.missing_other,
            "groups": [report_data(g) for g in report.groups]}


def _data_line(report: ExportReport) -> str:
    how = "copied" if report.copied else "linked"
    return f"{report.data_files:,} data file(s) {how} ({si_size(report.bytes)})"


def _missing_note(report: ExportReport) -> None:
    missing = report.missing_other or [m for g in report.groups for m in g.missing_other]
    if missing:
        say(f"note: {len(set(missing))} file(s) named by other path fields (e.g. micrographs) are missing and were "
            f"not exported; their paths are kept as they were (first: {sorted(set(missing))[0]})")


@export_app.command("group")
def export_group(
    project: ProjectArg,
    group: Annotated[str, typer.Argument(help="The output group, e.g. J7.particles.", show_default=False)],
    version: Annotated[str, typer.Option("--version", help="The version to export: a number, or F (final).")] = "F",
    copy_data: CopyData = False,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Export an output group: one self-contained .cs, a .csg and its data, in <project>/exports/groups/.

    Another project or instance imports it with an Import Result Group job.

    Example: cryoweave export group P1 J7.particles --copy-data
    """
    from cryoweave.errors import CryoweaveError, ParamError
    from cryoweave.manage.exports import export_group as export
    from cryoweave.spec import parse_output_address

    try:
        address = parse_output_address(group)
    except CryoweaveError as err:
        raise ParamError(f"{group!r} is not an output group address such as J7.particles: {err}") from None
    if address.result is not None:
        raise ParamError(f"{group!r} names a result; give its output group, e.g. {address.job}.{address.group}")
    chosen: int | str = version.upper() if version.upper() == "F" else _version(version)
    with open_instance() as inst:
        report = export(inst.store, project, address.job, address.group, version=chosen, copy_data=copy_data,
                        overwrite=overwrite)
    if as_json:
        print_json(report_data(report))
        return
    say(f"exported {project} {address.job}.{address.group}: {report.items:,} items, {_data_line(report)}, "
        f"in {report.folder}")
    _missing_note(report)
    say(f"import it elsewhere with an Import Result Group job: cryoweave job create P import_result_group "
        f"-p csg_path={report.csg}" + ("" if copy_data else " -p allow_links=true  (its data are links)"))


def _version(text: str) -> int:
    from cryoweave.errors import ParamError

    try:
        value = int(text)
    except ValueError:
        raise ParamError(f"--version must be a number or F (final), not {text!r}") from None
    if value < 0:
        raise ParamError(f"--version must be a number from 0, or F (final), not {text!r}")
    return value


@export_app.command("job")
def export_job(
    project: ProjectArg,
    job: Annotated[str, typer.Argument(help="The job, e.g. J7 (completed).", show_default=False)],
    copy_data: CopyData = False,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Export a completed job: its record, events, images, log and output groups, in <project>/exports/jobs/.

    Send the folder (tar -h follows the data links), then import it with cryoweave import job.

    Example: cryoweave export job P1 J7
    """
    from cryoweave.manage.exports import export_job as export

    with open_instance() as inst:
        report = export(inst.store, project, job, copy_data=copy_data, overwrite=overwrite)
    if as_json:
        print_json(report_data(report))
        return
    say(f"exported {project} {job}: {len(report.groups)} output group(s), {report.items:,} items, "
        f"{_data_line(report)}, in {report.folder}")
    _missing_note(report)
    say(f"import it into a project with: cryoweave import job {report.folder} --project P"
        + ("" if copy_data else " --allow-links  (its data are links; or export with --copy-data)"))


@import_app.command("job")
def import_job(
    folder: Annotated[Path, typer.Argument(help="The exported job's folder (made by cryoweave export job).",
                                           show_default=False)],
    project: Annotated[str, typer.Option("--project", help="The project to import it into, e.g. P2.",
                                         show_default=False)],
    workspace: Annotated[str | None, typer.Option("--workspace", help="The workspace it goes in (default: the "
                                                  "project's only one).", show_default=False)] = None,
    allow_links: Annotated[bool, typer.Option("--allow-links", help="Accept links that lead out of the folder "
                                              "(an export with linked data); only for a folder you trust.")] = False,
    as_json: AsJson = False,
) -> None:
    """Import an exported job as a completed job whose outputs connect like any other.

    Everything is checked before anything is written; a refused import changes nothing.

    Example: cryoweave import job /data/P1/exports/jobs/P1_J7_homo_reconstruct --project P2 --workspace W1
    """
    from cryoweave.manage.imports import import_job as bring_in

    with open_instance() as inst:
        record = bring_in(inst.store, project, folder, workspace=workspace, allow_links=allow_links)
    if as_json:
        print_json({"project": project, "job": record.uid, "type": record.type, "title": record.title,
                    "status": record.status.value, "workspaces": record.workspaces,
                    "outputs": {n: g.num_items for n, g in record.outputs.items()}})
        return
    groups = ", ".join(f"{record.uid}.{n} ({g.num_items:,})" for n, g in record.outputs.items()) or "none"
    say(f"imported {folder} as {project} {record.uid} ({record.type}, completed) in "
        f"{', '.join(record.workspaces)}; outputs: {groups}")
    first = next(iter(record.outputs), None)
    if first:
        say(f"connect its outputs like any other: cryoweave job connect {project} J<new> INPUT {record.uid}.{first}")
