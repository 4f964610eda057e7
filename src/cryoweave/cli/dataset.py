"""``cryoweave dataset ...``: look into and convert ``.cs``, ``.csg`` and ``.star`` tables."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cryoweave.display import human_size
from cryoweave.errors import CryoweaveError, FormatError

app = typer.Typer(help="Inspect and convert datasets (.cs in either format, .csg groups, RELION .star).",
                  no_args_is_help=True)

_SHAPE = re.compile(r"^\s*(\d+)\s*[xX,]\s*(\d+)\s*$")


def _compact(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        text = "[" + ", ".join(_compact(v) for v in value[:4]) + (", …" if len(value) > 4 else "") + "]"
        return text
    text = str(value)
    return text if len(text) <= 48 else text[:22] + "…" + text[-22:]


def _parse_shape(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _SHAPE.match(text)
    if not match:
        raise FormatError(f"--micrograph-shape {text!r} must be NYxNX in pixels, e.g. 4092x5760")
    return int(match[1]), int(match[2])


def _field_rows(path: Path) -> dict[str, Any]:
    from cryoweave.dataset import Dataset
    from cryoweave.dataset.dtypes import dtype_notation

    header = Dataset.inspect(path)
    return {
        "path": str(path), "format": header["format"], "compression": header["compression"],
        "rows": header["length"], "size_bytes": path.stat().st_size,
        "fields": [{"field": f[0], "dtype": dtype_notation(f)} for f in header["dtype"]],
    }


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A .cs dataset, a .csg result group or a RELION .star file.")],
    stats: Annotated[bool, typer.Option("--stats/--no-stats", help="Load the data and show per-field "
                                        "statistics (min, max, mean, distinct values).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show rows, fields with their types, format and size of a table file.

    Example: cryoweave dataset info J12/J12_particles.cs --no-stats
    """
    from cryoweave.formats.tables import read_table, table_kind

    if not file.exists():
        raise FormatError(f"{file}: no such file")
    kind = table_kind(file)
    if kind == "cs":
        report = _field_rows(file)
    else:
        report = {"path": str(file), "format": kind, "compression": None, "size_bytes": file.stat().st_size}
    if kind == "csg":
        from cryoweave.formats.csg import read_csg

        group = read_csg(file)
        report["group"] = {"name": group.name, "type": group.type, "title": group.title,
                           "results": {s: {"metafile": str(group.metafile_path(s)), "num_items": r.num_items,
                                           "type": r.type} for s, r in group.results.items()}}
    if stats or kind != "cs":
        dset = read_table(file)
        report["rows"] = len(dset)
        report["fields"] = dset.stats() if stats else [
            {"field": f[0], "dtype": e["dtype"]} for f, e in zip(dset.descr(), dset.stats())]
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    compression = f", {report['compression']} compression" if report.get("compression") else ""
    console.print(f"[bold]{report['path']}[/bold]: {report['rows']:,} rows, {len(report['fields'])} fields, "
                  f"{report['format']} format{compression}, {human_size(report['size_bytes'])} on disk")
    if "group" in report:
        g = report["group"]
        console.print(f"group [bold]{g['name']}[/bold] ({g['type']}): " + ", ".join(
            f"{s} → {r['metafile']}" for s, r in g["results"].items()))
    columns = ["field", "dtype", "min", "max", "mean", "std", "distinct", "nan", "example"]
    present = [c for c in columns if any(c in f for f in report["fields"])]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for c in present:  # field names are never cut; long values are
        table.add_column(c, no_wrap=True, overflow="fold" if c == "field" else "ellipsis",
                         max_width=None if c == "field" else 28)
    for f in report["fields"]:
        table.add_row(*[_compact(f[c]) if c in f else "" for c in present])
    console.print(table)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="Input: .cs (either format), .csg or .star.")],
    dest: Annotated[Path, typer.Argument(help="Output: .cs or .star.")],
    to: Annotated[str | None, typer.Option("--to", help="Output format: numpy, csdat (LZ4), csdat-raw "
                                           "(uncompressed) or star. Default: from the extension "
                                           "(.star → star, else numpy).")] = None,
    prefix: Annotated[list[str] | None, typer.Option("--prefix", "-p", help="Keep only fields of this "
                                                     "result (repeatable), e.g. -p ctf -p blob.")] = None,
    field: Annotated[list[str] | None, typer.Option("--field", "-f", help="Keep this field "
                                                    "(repeatable).")] = None,
    micrograph_shape: Annotated[str | None, typer.Option(
        "--micrograph-shape", help="Micrograph size NYxNX in pixels, to turn .star coordinates into "
        "CryoSPARC's fractional locations.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists.")] = False,
) -> None:
    """Convert between the .cs formats, and to and from RELION .star where fields map.

    Example: cryoweave dataset convert J12_particles.cs particles.star
    """
    from cryoweave.formats.tables import output_format, read_table, write_table

    if dest.exists() and not force:
        raise CryoweaveError(f"{dest} already exists; pass --force to replace it")
    if not source.exists():
        raise FormatError(f"{source}: no such file")
    fmt = output_format(dest, to)
    dset = read_table(source, prefixes=prefix or None, fields=field or None,
                      micrograph_shape=_parse_shape(micrograph_shape))
    write_table(dset, dest, fmt)
    typer.echo(f"wrote {dest}: {len(dset):,} rows, {len(dset.fields())} fields, {fmt} format, "
               f"{human_size(dest.stat().st_size)}")
