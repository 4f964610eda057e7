"""Printing shared by the ``cryoweave`` verbs: JSON for scripts, aligned text and tables for people.

Only the standard library and typer are imported here at module level, so that
``cryoweave --help`` stays fast; rich is imported when something is printed.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
"""The ``--json`` option every verb that prints data takes."""


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # UTC written with Z, as in the record files
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):  # pydantic records
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (datetimes in ISO 8601, paths as text, enums as values)."""
    typer.echo(json.dumps(data, indent=2, default=_plain, ensure_ascii=False))


def console():
    """A rich console on stdout; not wrapped at 80 columns when the output goes to a file or pipe."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200, highlight=False, soft_wrap=False)


def when(value: dt.datetime | None) -> str:
    """A timestamp for people: local time to the second, e.g. ``2024-05-02 14:03:11``."""
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def escape(text: Any) -> str:
    """Text printed through rich as it is (square brackets are not markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "") -> None:
    """A borderless table with a bold header; ``empty`` is printed instead when there are no rows."""
    from rich.table import Table

    rows = list(rows)
    out = console()
    if not rows:
        if empty:
            out.print(escape(empty))
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``name  value`` lines with the values aligned; empty values are left out."""
    pairs = [(name, str(value)) for name, value in pairs if value is not None and str(value) != ""]
    width = max((len(name) for name, _ in pairs), default=0)
    out = console()
    for name, value in pairs:
        out.print(f"[bold]{escape(name.ljust(width))}[/bold]  {escape(value)}")


def print_heading(text: str) -> None:
    console().print(f"\n[bold underline]{escape(text)}[/bold underline]")


def say(text: str) -> None:
    """A one-line confirmation (``J3 created in P1 ...``)."""
    typer.echo(text)


def confirm(question: str, refusal: str) -> None:
    """Ask before deleting: a yes/no prompt at a terminal; elsewhere, refuse with ``refusal`` (say --yes)."""
    import sys

    from cryoweave.errors import CryoweaveError

    if sys.stdin.isatty() and sys.stdout.isatty():
        if typer.confirm(question, default=False):
            return
        raise CryoweaveError("nothing was changed")
    raise CryoweaveError(refusal)

