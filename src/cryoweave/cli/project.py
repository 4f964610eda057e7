"""``cryoweave project ...``: create, list, rename, archive, delete, detach and attach projects."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import AsJson, print_fields, print_heading, print_json, print_table, say, when

if TYPE_CHECKING:
    from cryoweave.api import Project
    from cryoweave.store import ProjectInfo

app = typer.Typer(help="Projects (P1, P2 ...): self-contained directories of workspaces and jobs.",
                  no_args_is_help=True)

ProjectArg = Annotated[str, typer.Argument(help="The project, e.g. P1.", show_default=False)]


def project_data(info: ProjectInfo) -> dict[str, Any]:
    """A project as printed by ``--json``."""
    return {"uid": info.uid, "title": info.title, "description": info.description,
            "directory": str(info.directory), "archived": info.archived, "created_at": info.created_at,
            "updated_at": info.updated_at, "num_workspaces": info.workspaces, "num_jobs": info.jobs}


def _created(project: Project, as_json: bool, verb: str) -> None:
    info = project.info()
    if as_json:
        print_json(project_data(info))
    else:
        say(f"{info.uid} {verb}: {info.title!r} in {info.directory}")


@app.command()
def create(
    title: Annotated[str, typer.Argument(help="The project's title; its folder is named after it.",
                                         show_default=False)],
    parent: Annotated[Path, typer.Option("--dir", help="The folder in which the project's own folder is "
                                         "made.", show_default=False)],
    description: Annotated[str, typer.Option("--description", help="A longer description.")] = "",
    as_json: AsJson = False,
) -> None:
    """Create a project: a new folder inside --dir, holding everything the project is made of.

    Prints the new project's id and directory.

    Example: cryoweave project create "Apoferritin" --dir /data/projects
    """
    with open_instance() as inst:
        _created(inst.create_project(title, parent, description=description), as_json, "created")


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """List the projects of this instance with their directories and sizes.

    The size is the last one cryoweave storage computed (each file once, links followed; * when jobs
    changed since), blank until it has run for the project.

    Example: cryoweave project list --json
    """
    from cryoweave.display import si_size
    from cryoweave.manage.storage import storage_report

    with open_instance() as inst:
        infos = [p.info() for p in inst.projects()]
        sizes = {}
        for i in infos:
            cached = storage_report(inst.store, i.uid, refresh="never") if i.directory.is_dir() else None
            sizes[i.uid] = (cached.total.bytes, cached.stale) if cached and cached.computed_at else (None, False)
    if as_json:
        print_json([project_data(i) | {"size_bytes": sizes[i.uid][0]} for i in infos])
        return
    print_table(["project", "title", "workspaces", "jobs", "size", "archived", "directory"],
                [(i.uid, i.title, i.workspaces, i.jobs,
                  "" if sizes[i.uid][0] is None else si_size(sizes[i.uid][0]) + (" *" if sizes[i.uid][1] else ""),
                  "yes" if i.archived else "", i.directory) for i in infos],
                empty="no projects (cryoweave project create TITLE --dir FOLDER makes one)")


@app.command()
def info(project: ProjectArg, as_json: AsJson = False) -> None:
    """Show a project: title, directory, state, its workspaces and how many jobs are in each status.

    Example: cryoweave project info P1
    """
    from cryoweave.cli.workspace import workspace_data
    from cryoweave.manage.archive import archived_location

    with open_instance() as inst:
        p = inst.project(project)
        data = project_data(p.info())
        location = archived_location(inst.store, p.uid)
        data["archive"] = str(location.path) if location else None
        data["workspaces"] = [workspace_data(w) for w in p.workspaces()]
        data["jobs_by_status"] = dict(Counter(j.status for j in p.jobs()))
    if as_json:
        print_json(data)
        return
    statuses = ", ".join(f"{n} {s}" for s, n in data["jobs_by_status"].items())
    print_fields([("project", data["uid"]), ("title", data["title"]), ("description", data["description"]),
                  ("directory", data["directory"]), ("archived", "yes (read-only)" if data["archived"] else "no"),
                  ("archive", data["archive"]),
                  ("created", when(data["created_at"])), ("updated", when(data["updated_at"])),
                  ("jobs", f"{data['num_jobs']}" + (f" ({statuses})" if statuses else ""))])
    print_heading("Workspaces")
    print_table(["workspace", "title", "jobs", "description"],
                [(w["uid"], w["title"], w["jobs"], w["description"]) for w in data["workspaces"]],
                empty="none yet")


@app.command()
def rename(project: ProjectArg,
           title: Annotated[str, typer.Argument(help="The new title.", show_default=False)],
           as_json: AsJson = False) -> None:
    """Give a project a new title (its directory keeps its name).

    Example: cryoweave project rename P1 "Apoferritin, 2nd dataset"
    """
    with open_instance() as inst:
        p = inst.project(project)
        p.rename(title)
        _created(p, as_json, "renamed")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


@contextmanager
def _progress_bar(label: str) -> Iterator[Any]:
    """A progress callback ``(done, total)`` drawing a bar on a terminal's stderr; ``None`` elsewhere."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
def archive(
    project: ProjectArg,
    dest: Annotated[Path | None, typer.Argument(
        help="The archive to write: a new file ending in .tar, .tar.zst or .tar.gz. Without it the project "
             "is only made read-only.", show_default=False)] = None,
    include_raw: Annotated[bool, typer.Option("--include-raw", help="Store the raw files that links lead to "
                                              "(the data import jobs link to) instead of the links.")] = False,
    remove_directory: Annotated[bool, typer.Option("--remove-directory", help="Delete the project's directory "
                                                   "once the archive is written and verified (needs --yes).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete the directory (--remove-directory).")] = False,
    as_json: AsJson = False,
) -> None:
    """Make a project read-only, and with DEST write its directory into a verified tar archive.

    The archive (.tar, .tar.zst or .tar.gz) is read back and every file checked before it gets its
    name; it holds a manifest with each file's sha256. Links to raw data outside the project stay
    links unless --include-raw. With --remove-directory --yes the directory is deleted afterwards;
    cryoweave project unarchive restores it. Any instance can attach the archive.

    Example: cryoweave project archive P1 /archive/P1.tar.zst --include-raw
    """
    from cryoweave.errors import CryoweaveError, ParamError
    from cryoweave.manage.archive import archive_project

    if dest is None and (include_raw or remove_directory):
        raise ParamError("--include-raw and --remove-directory need an archive to write: "
                         "cryoweave project archive P1 DEST.tar.zst ...")
    with open_instance() as inst:
        p = inst.project(project)
        if dest is None:
            p.archive()
            _created(p, as_json, "archived (read-only)")
            return
        if remove_directory and not yes:
            info = p.info()
            raise CryoweaveError(f"project {info.uid} was not archived: --remove-directory would delete its directory "
                                 f"{info.directory} ({info.jobs} job(s)) once {dest} is written and verified; "
                                 "pass --yes to do it")
        with _progress_bar(f"archiving {p.uid}") as progress:
            report = archive_project(inst.store, p.uid, dest, include_raw=include_raw,
                                     remove_directory=remove_directory, progress=progress)
    if as_json:
        print_json(report.data())
        return
    say(f"{report.project} archived to {report.path}: {_size(report.bytes)} ({_size(report.data_bytes)} of data), "
        f"{report.files} file(s), {report.links} link(s), in {report.seconds:.1f} s")
    say(f"verified: every file read back matches its sha256 (archive sha256 {report.sha256})")
    if report.external_links:
        say(f"{report.external_links} link(s) to raw data outside the project are stored as links "
            "(--include-raw stores the files themselves)")
    if report.directory_removed:
        say(f"its directory was removed; restore it with: cryoweave project unarchive {report.project}")
    else:
        say(f"{report.project} is read-only now; make it writable with: cryoweave project unarchive {report.project}")
    say(f"attach a copy on any instance with: cryoweave project attach {report.path} --to FOLDER")


@app.command()
def unarchive(
    project: ProjectArg,
    source: Annotated[Path | None, typer.Option(
        "--from", help="The archive to restore a removed directory from (by default, where the project was "
                       "last archived).", show_default=False)] = None,
    allow_links: Annotated[bool, typer.Option("--allow-links", help="Extract links that lead out of the project "
                                              "(to raw data) from an archive you trust.")] = False,
    as_json: AsJson = False,
) -> None:
    """Make an archived project writable again; restore its directory from its archive if it was removed.

    Example: cryoweave project unarchive P1 --from /archive/P1.tar.zst
    """
    from cryoweave.manage.archive import unarchive_project

    with open_instance() as inst:
        p = inst.project(project)
        gone = not p.info().directory.exists()
        unarchive_project(inst.store, p.uid, source=source, allow_links=allow_links)
        _created(p, as_json, "restored from its archive and unarchived" if gone else "unarchived")


@app.command()
def delete(project: ProjectArg,
           yes: Annotated[bool, typer.Option("--yes", help="Really delete the project and its directory.")] = False,
           as_json: AsJson = False) -> None:
    """Delete a project from this instance AND its directory with every file in it.

    Without --yes nothing is deleted: the command says what would be. To keep the files, use
    cryoweave project detach instead.

    Example: cryoweave project delete P1 --yes
    """
    from cryoweave.errors import CryoweaveError

    with open_instance() as inst:
        p = inst.project(project)
        info = p.info()
        if not yes:
            raise CryoweaveError(f"project {info.uid} ({info.title!r}) was not deleted: this would delete its "
                                 f"{info.jobs} job(s), {info.workspaces} workspace(s) and the directory "
                                 f"{info.directory} with all its files; pass --yes to do it "
                                 "(cryoweave project detach keeps the files)")
        directory = p.delete()
    if as_json:
        print_json({"uid": info.uid, "title": info.title, "directory": str(directory), "deleted": True})
    else:
        say(f"{info.uid} ({info.title!r}) deleted, with its directory {directory}")


@app.command()
def detach(project: ProjectArg, as_json: AsJson = False) -> None:
    """Release a project from this instance, keeping its directory: any instance can then attach it.

    Example: cryoweave project detach P1
    """
    with open_instance() as inst:
        p = inst.project(project)
        info = p.info()
        directory = p.detach()
    if as_json:
        print_json({"uid": info.uid, "title": info.title, "directory": str(directory), "detached": True})
    else:
        say(f"{info.uid} ({info.title!r}) detached; attach it to any instance with: "
            f"cryoweave project attach {directory}")


@app.command()
def attach(
    directory: Annotated[Path, typer.Argument(help="A project directory (one holding project.json), or a project "
                                              "archive (.tar, .tar.zst, .tar.gz) to extract under --to.",
                                              show_default=False)],
    to: Annotated[Path | None, typer.Option(
        "--to", help="For an archive: the folder to extract its project folder into.", show_default=False)] = None,
    allow_links: Annotated[bool, typer.Option("--allow-links", help="For an archive you trust: extract links "
                                              "that lead out of the project (to raw data).")] = False,
    take_over: Annotated[bool, typer.Option("--take-over", help="Attach it even though another instance holds "
                                            "its lock (a copy, or a project whose instance is gone).")] = False,
    as_json: AsJson = False,
) -> None:
    """Attach a project directory (copied, moved or detached elsewhere), or an archive, with a new project id.

    Its workspaces, jobs (with their J numbers), parameters, connections, outputs and events
    come with it; its title becomes "Imported: ...". Nothing is imported if any record file is
    damaged. A directory locked by another instance is refused unless --take-over is given.
    An archive is checked and extracted safely into a new folder under --to, and attached
    writable; links in it that lead out are refused unless --allow-links.

    Example: cryoweave project attach /data/projects/apoferritin
    Example: cryoweave project attach /archive/P1.tar.zst --to /data/imports
    """
    from cryoweave.errors import ParamError
    from cryoweave.manage.archive import attach_archive
    from cryoweave.manage.tarball import SUFFIXES, is_archive_name

    archive = is_archive_name(directory) and not directory.is_dir()
    if not archive and directory.is_file():
        raise ParamError(f"{directory} is a file, not a project directory; an archive's name ends in "
                         f"{', '.join(SUFFIXES)}")
    if archive and to is None:
        raise ParamError(f"{directory} is an archive: say where to extract it, e.g. --to /data/imports")
    if not archive and (to is not None or allow_links):
        raise ParamError("--to and --allow-links are for archives (.tar, .tar.zst, .tar.gz), not directories")
    with open_instance() as inst:
        if archive:
            info = attach_archive(inst.store, directory, to, allow_links=allow_links)
        else:
            info = inst.attach(directory, take_over=take_over).info()
    if as_json:
        print_json(project_data(info))
    else:
        say(f"{info.uid} attached: {info.title!r} from {info.directory} "
            f"({info.workspaces} workspace(s), {info.jobs} job(s))")
