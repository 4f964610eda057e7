"""``cryoweave project ...``: create, list, rename, archive, delete, detach and attach projects."""

from __future__ import annotations

from collections import Counter
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

    Example: cryoweave project list --json
    """
    with open_instance() as inst:
        infos = [p.info() for p in inst.projects()]
    if as_json:
        print_json([project_data(i) for i in infos])
        return
    print_table(["project", "title", "workspaces", "jobs", "archived", "directory"],
                [(i.uid, i.title, i.workspaces, i.jobs, "yes" if i.archived else "", i.directory) for i in infos],
                empty="no projects (cryoweave project create TITLE --dir FOLDER makes one)")


@app.command()
def info(project: ProjectArg, as_json: AsJson = False) -> None:
    """Show a project: title, directory, state, its workspaces and how many jobs are in each status.

    Example: cryoweave project info P1
    """
    from cryoweave.cli.workspace import workspace_data

    with open_instance() as inst:
        p = inst.project(project)
        data = project_data(p.info())
        data["workspaces"] = [workspace_data(w) for w in p.workspaces()]
        data["jobs_by_status"] = dict(Counter(j.status for j in p.jobs()))
    if as_json:
        print_json(data)
        return
    statuses = ", ".join(f"{n} {s}" for s, n in data["jobs_by_status"].items())
    print_fields([("project", data["uid"]), ("title", data["title"]), ("description", data["description"]),
                  ("directory", data["directory"]), ("archived", "yes (read-only)" if data["archived"] else "no"),
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


@app.command()
def archive(project: ProjectArg, as_json: AsJson = False) -> None:
    """Make a project read-only: no job, workspace or title can change until it is unarchived.

    Example: cryoweave project archive P1
    """
    with open_instance() as inst:
        p = inst.project(project)
        p.archive()
        _created(p, as_json, "archived (read-only)")


@app.command()
def unarchive(project: ProjectArg, as_json: AsJson = False) -> None:
    """Make an archived project writable again.

    Example: cryoweave project unarchive P1
    """
    with open_instance() as inst:
        p = inst.project(project)
        p.unarchive()
        _created(p, as_json, "unarchived")


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
    directory: Annotated[Path, typer.Argument(help="A project directory (one holding project.json).",
                                              show_default=False)],
    take_over: Annotated[bool, typer.Option("--take-over", help="Attach it even though another instance holds "
                                            "its lock (a copy, or a project whose instance is gone).")] = False,
    as_json: AsJson = False,
) -> None:
    """Attach a project directory (copied, moved or detached elsewhere) with a new project id.

    Its workspaces, jobs (with their J numbers), parameters, connections, outputs and events
    come with it; its title becomes "Imported: ...". Nothing is imported if any record file is
    damaged. A directory locked by another instance is refused unless --take-over is given.

    Example: cryoweave project attach /data/projects/apoferritin
    """
    with open_instance() as inst:
        p = inst.attach(directory, take_over=take_over)
        info = p.info()
    if as_json:
        print_json(project_data(info))
    else:
        say(f"{info.uid} attached: {info.title!r} from {info.directory} "
            f"({info.workspaces} workspace(s), {info.jobs} job(s))")
