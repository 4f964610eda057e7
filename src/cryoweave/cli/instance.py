"""``cryoweave instance ...``: where this installation keeps its database and projects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from cryoweave.cli.output import AsJson, print_fields, print_heading, print_json, print_table

if TYPE_CHECKING:
    from cryoweave.api import Instance

app = typer.Typer(help="The instance: its home, its database and the job types it knows.", no_args_is_help=True)


@contextmanager
def open_instance() -> Iterator[Instance]:
    """The instance named by ``$CRYOWEAVE_HOME`` and ``$CRYOWEAVE_DATABASE_URL``, created on first use.

    Errors inside the ``with`` block reach the user on one line: a multi-line message (a database
    driver's) is joined, and a file system error (a --dir that is a file, no permission) names the path.
    """
    from cryoweave.api import Instance
    from cryoweave.errors import CryoweaveError
    from cryoweave.settings import Settings

    try:
        inst = Instance()
    except OSError as err:
        home = Settings.from_env().home
        raise CryoweaveError(f"cannot open the instance in {home} (CRYOWEAVE_HOME): {_os_error(err)}") from None
    except CryoweaveError as err:
        raise _one_line(err) from None
    try:
        yield inst
    except OSError as err:
        raise CryoweaveError(_os_error(err)) from None
    except CryoweaveError as err:
        raise _one_line(err) from None
    finally:
        inst.close()


def _os_error(err: OSError) -> str:
    return f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)


def _one_line(err: Exception) -> Exception:
    text = str(err)
    return type(err)(" ".join(text.split())) if "\n" in text else err


@app.command()
def info(as_json: AsJson = False) -> None:
    """Show the instance id, its home, its database (password hidden), counts and installed job types.

    The instance is $CRYOWEAVE_HOME (default ~/.cryoweave) with its SQLite database, or the
    database that $CRYOWEAVE_DATABASE_URL names; it is created on first use.

    Example: cryoweave instance info --json
    """
    with open_instance() as inst:
        report = inst.info()
        report["broken_job_types"] = [{"type": name, "reason": reason}
                                      for name, reason in sorted(inst.registry.broken.items())]
    if as_json:
        print_json(report)
        return
    print_fields([("instance", report["instance_id"]), ("home", report["home"]),
                  ("database", report["database"]), ("projects", report["projects"]), ("jobs", report["jobs"]),
                  ("job types", ", ".join(report["job_types"]) or "none installed"),
                  ("job packages", "all installed" if report["job_packages"] is None
                   else ", ".join(report["job_packages"]) or "none")])
    if report["broken_job_types"]:
        print_heading("Broken job type plugins")
        print_table(["type", "reason"], [(b["type"], b["reason"]) for b in report["broken_job_types"]])
