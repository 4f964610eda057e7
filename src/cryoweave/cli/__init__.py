"""The ``cryoweave`` command: verbs grouped by noun (``cryoweave dataset info FILE`` ...).

Errors users can cause are printed on one line (``cryoweave: error: ...``) with exit status 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from cryoweave.cli import accounts as _accounts  # adds share/unshare/members to the project app
from cryoweave.cli import builder as _builder  # noqa: F401  (adds its verbs to the job app)
from cryoweave.cli import checking as _checking  # noqa: F401  (adds check and relink to the project app)
from cryoweave.cli import cleaning as _cleaning  # noqa: F401  (clearing verbs on the job and project apps)
from cryoweave.cli import joblog as _joblog  # noqa: F401  (adds job log to the job app)
from cryoweave.cli import running as _running  # adds its verbs to the job app; the scheduler command
from cryoweave.cli.dataset import app as dataset_app
from cryoweave.cli.instance import app as instance_app
from cryoweave.cli.job import app as job_app
from cryoweave.cli.lane import app as lane_app
from cryoweave.cli.project import app as project_app
from cryoweave.cli.serve import serve as _serve
from cryoweave.cli.storage import storage as _storage
from cryoweave.cli.transfer import export_app, import_app
from cryoweave.cli.workspace import app as workspace_app
from cryoweave.errors import CryoweaveError

app = typer.Typer(
    name="cryoweave",
    help="CryoSPARC-compatible datasets, result groups and projects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(instance_app, name="instance")
app.add_typer(project_app, name="project")
app.add_typer(workspace_app, name="workspace")
app.add_typer(job_app, name="job")
app.add_typer(dataset_app, name="dataset")
app.add_typer(lane_app, name="lane")
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")
app.command("scheduler")(_running.scheduler)
app.command("storage")(_storage)
app.command("serve")(_serve)
app.add_typer(_accounts.app, name="user")


def _print_version(value: bool) -> None:
    if value:
        from cryoweave import __version__

        typer.echo(f"cryoweave {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                       is_eager=True, callback=_print_version)) -> None:
    """CryoSPARC-compatible datasets, result groups and projects."""


def main(argv: list[str] | None = None) -> None:
    """Run the command line; user errors exit with status 1 and one line on stderr."""
    try:
        app(args=argv, prog_name="cryoweave")
    except CryoweaveError as err:
        print(f"cryoweave: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("cryoweave: interrupted", file=sys.stderr)
        sys.exit(130)
