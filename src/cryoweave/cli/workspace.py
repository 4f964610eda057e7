"""``cryoweave workspace ...``: the labels (W1, W2 ...) that group a project's jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import AsJson, print_json, print_table, say

if TYPE_CHECKING:
    from cryoweave.api import Workspace

app = typer.Typer(help="Workspaces (W1, W2 ...): labels grouping a project's jobs; a job may sit in several.",
                  no_args_is_help=True)

ProjectArg = Annotated[str, typer.Argument(help="The project, e.g. P1.", show_default=False)]
WorkspaceArg = Annotated[str, typer.Argument(help="The workspace, e.g. W1.", show_default=False)]


def workspace_data(workspace: Workspace) -> dict[str, Any]:
    """A workspace as printed by ``--json``, with the number of jobs in it."""
    record = workspace.record()
    return {"uid": record.uid, "title": record.title, "description": record.description,
            "created_at": record.created_at, "updated_at": record.updated_at, "jobs": len(workspace.jobs())}


@app.command()
def create(project: ProjectArg,
           title: Annotated[str, typer.Argument(help="The workspace's title.", show_default=False)],
           description: Annotated[str, typer.Option("--description", help="A longer description.")] = "",
           as_json: AsJson = False) -> None:
    """Create a workspace in a project.

    Example: cryoweave workspace create P1 "Heterogeneous refinement"
    """
    with open_instance() as inst:
        p = inst.project(project)
        data = workspace_data(p.create_workspace(title, description))
    if as_json:
        print_json(data)
    else:
        say(f"{data['uid']} created in {p.uid}: {data['title']!r}")


@app.command("list")
def list_(project: ProjectArg, as_json: AsJson = False) -> None:
    """List the workspaces of a project with how many jobs each holds.

    Example: cryoweave workspace list P1 --json
    """
    with open_instance() as inst:
        rows = [workspace_data(w) for w in inst.project(project).workspaces()]
    if as_json:
        print_json(rows)
        return
    print_table(["workspace", "title", "jobs", "description"],
                [(w["uid"], w["title"], w["jobs"], w["description"]) for w in rows],
                empty=f"{project} has no workspaces (cryoweave workspace create {project} TITLE makes one)")


@app.command()
def rename(project: ProjectArg, workspace: WorkspaceArg,
           title: Annotated[str, typer.Argument(help="The new title.", show_default=False)],
           as_json: AsJson = False) -> None:
    """Give a workspace a new title.

    Example: cryoweave workspace rename P1 W2 "Final maps"
    """
    with open_instance() as inst:
        w = inst.project(project).workspace(workspace)
        w.rename(title)
        data = workspace_data(w)
    if as_json:
        print_json(data)
    else:
        say(f"{data['uid']} of {w.project.uid} renamed: {data['title']!r}")
