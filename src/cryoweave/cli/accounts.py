"""``cryoweave user ...`` (the web server's accounts) and ``cryoweave project share/unshare/members``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import AsJson, confirm, print_json, print_table, say
from cryoweave.cli.project import ProjectArg
from cryoweave.cli.project import app as project_app

app = typer.Typer(help="The accounts of the web server (cryoweave serve): who may log in, and as what.",
                  no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="The user name (letters, digits, _ . -).", show_default=False)]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input "
                                             "(one line) instead of asking for it.")]


def _password(from_stdin: bool) -> str:
    from cryoweave.errors import ParamError

    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ParamError("no terminal to ask the password at: pass it on standard input with --password-stdin")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def add(name: NameArg, admin: Annotated[bool, typer.Option("--admin", help="May manage users, lanes and every "
                                                           "project.")] = False,
        password_stdin: PasswordStdin = False) -> None:
    """Create an account.

    Example: cryoweave user add alice --admin   (asks for the password; a script pipes it in with
    --password-stdin)
    """
    from cryoweave.store import accounts

    password = _password(password_stdin)
    with open_instance() as inst:
        made = accounts.add_user(inst.store, name, password, "admin" if admin else "user")
    say(f"user {made.username} added ({made.role})")


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """List the accounts and their roles.

    Example: cryoweave user list --json
    """
    from cryoweave.store import accounts

    with open_instance() as inst:
        found = accounts.list_users(inst.store)
    rows = [{"username": u.username, "role": str(u.role), "created_at": u.created_at.isoformat()} for u in found]
    if as_json:
        print_json(rows)
    else:
        print_table(["user", "role", "created"], [[r["username"], r["role"], r["created_at"][:19]] for r in rows])


@app.command("password")
def password(name: NameArg, password_stdin: PasswordStdin = False) -> None:
    """Set a new password (the user's sessions end).

    Example: cryoweave user password alice
    """
    from cryoweave.store import accounts

    new = _password(password_stdin)
    with open_instance() as inst:
        accounts.set_password(inst.store, name, new)
    say(f"password of {name} changed")


@app.command("role")
def role(name: NameArg, to: Annotated[str, typer.Argument(help="admin or user.", show_default=False)]) -> None:
    """Make a user an admin, or a plain user again.

    Example: cryoweave user role alice admin
    """
    from cryoweave.store import accounts

    with open_instance() as inst:
        changed = accounts.set_role(inst.store, name, to)
    say(f"{changed.username} is now {changed.role}")


@app.command("remove")
def remove(name: NameArg, yes: Annotated[bool, typer.Option("--yes", help="Remove without asking.")] = False
           ) -> None:
    """Remove an account (its projects stay; it loses access to them).

    Example: cryoweave user remove alice --yes
    """
    from cryoweave.store import accounts

    if not yes:
        confirm(f"remove the account {name}?", f"removing {name} needs --yes")
    with open_instance() as inst:
        accounts.remove_user(inst.store, name)
    say(f"user {name} removed")


@project_app.command("share")
def share(project: ProjectArg, name: NameArg,
          access: Annotated[str, typer.Option("--access", help="read, write or owner.")] = "read") -> None:
    """Let a user of the web server read (or change, or own) a project.

    Example: cryoweave project share P1 alice --access write
    """
    from cryoweave.store import accounts

    with open_instance() as inst:
        inst.project(project)
        accounts.set_member(inst.store, project, name, access)
    say(f"{name} has {access} access to {project}")


@project_app.command("unshare")
def unshare(project: ProjectArg, name: NameArg) -> None:
    """Take a user's access to a project away.

    Example: cryoweave project unshare P1 alice
    """
    from cryoweave.store import accounts

    with open_instance() as inst:
        accounts.remove_member(inst.store, project, name)
    say(f"{name} has no access to {project} any more")


@project_app.command("members")
def members(project: ProjectArg, as_json: AsJson = False) -> None:
    """Who may use a project on the web server, and how.

    Example: cryoweave project members P1
    """
    from cryoweave.store import accounts

    with open_instance() as inst:
        found = accounts.members(inst.store, project)
    if as_json:
        print_json([{"username": n, "access": str(a)} for n, a in found])
    else:
        print_table(["user", "access"], [[n, str(a)] for n, a in found])
