"""``cryoweave project check`` and ``cryoweave project relink``: integrity of a project, raw data that moved."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import AsJson, print_json, print_table, say
from cryoweave.cli.project import ProjectArg, app


def _progress():
    """A progress callback drawing on stderr when it is a terminal (nothing otherwise), and its closer."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    bar.start()
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return update, bar.stop


@app.command()
def check(
    project: ProjectArg,
    repair: Annotated[bool, typer.Option("--repair", help="Fix what can be fixed without guessing: record files "
                                         "rewritten from the database, .csg files from the job records.")] = False,
    as_json: AsJson = False,
) -> None:
    """Check a project: record files, output tables (.cs), .csg files, passthroughs, data files, links.

    Prints each problem (kind, where, what is wrong, what to do or that it was repaired) and a
    summary. Exits 0 when no error remains (warnings, such as a missing micrograph named by
    location/micrograph_path, do not count), 1 otherwise.

    Example: cryoweave project check P1 --repair
    """
    from cryoweave.manage.check import check_project

    update, stop = _progress() if not as_json else (None, lambda: None)
    try:
        with open_instance() as inst:
            report = check_project(inst.store, project, repair=repair, progress=update)
    finally:
        stop()
    if as_json:
        print_json(report.to_dict())
    else:
        print_table(["kind", "where", "problem", "fix"],
                    [(p.kind.value + ("" if p.severity.value == "error" else " (warning)"), p.where, p.detail,
                      p.fix) for p in report.problems])
        say(report.summary())
    if not report.clean:
        raise typer.Exit(1)


@app.command()
def relink(
    project: ProjectArg,
    old: Annotated[Path, typer.Option("--from", help="The folder the data was in (links and absolute paths "
                                      "that start with it are changed).", show_default=False)],
    new: Annotated[Path, typer.Option("--to", help="The folder the data is in now (it must exist).",
                                      show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would change.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really change the links and tables.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-point links and paths even where the new target "
                                        "does not exist.")] = False,
    as_json: AsJson = False,
) -> None:
    """Re-point a project at raw data that moved: links and absolute paths in --from now lead to --to.

    Every link under the project whose target is in --from (whole folder names: /old/raw does not
    match /old/raw2) is re-pointed to the same path under --to, and every absolute path in the
    .cs tables' path fields that is in --from is rewritten. Without --yes nothing changes: the
    command says what would. Refused while jobs are queued or running, on an archived project,
    and (unless --force) when some new targets do not exist.

    Example: cryoweave project relink P1 --from /mnt/old/raw --to /mnt/new/raw --yes
    """
    from cryoweave.errors import CryoweaveError
    from cryoweave.manage.relink import relink as relink_project

    with open_instance() as inst:
        if not dry_run and not yes:
            preview = relink_project(inst.store, project, old, new, dry_run=True)
            needed = "--yes --force (some new targets do not exist)" if preview.missing else "--yes"
            raise CryoweaveError(f"nothing changed: {preview.summary()}; pass {needed} to do it (--dry-run lists "
                                 "each change)")
        report = relink_project(inst.store, project, old, new, dry_run=dry_run, force=force)
    if as_json:
        print_json(report.to_dict())
        return
    if dry_run:
        print_table(["link", "now", "would point to", "exists"],
                    [(c.link, c.old_target, c.new_target, "yes" if c.target_exists else "NO") for c in report.links])
        print_table(["table", "fields", "paths", "missing after"],
                    [(t.metafile, ", ".join(t.fields), len(t.paths), len(t.missing)) for t in report.tables])
    say(report.summary())
