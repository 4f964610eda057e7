"""``cryoweave job ...`` verbs of the job builder: what each input slot is bound to, single-slot
overrides and clears, outputs with their versions and passthroughs, and export (queue and run are in
:mod:`cryoweave.cli.running`).

The verbs are added to the ``job`` app of :mod:`cryoweave.cli.job` (``cryoweave.cli`` imports this
module), so they sit beside ``create``, ``connect`` and the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.job import JobArg, ProjectArg, _count, _slot, app
from cryoweave.cli.output import AsJson, console, escape, print_fields, print_heading, print_json, print_table, say

if TYPE_CHECKING:
    from cryoweave.api import Job
    from cryoweave.builder.bindings import Bound, InputBinding
    from cryoweave.model.jobspec import OutputSpec
    from cryoweave.model.records import OutputGroup
    from cryoweave.spec import InputSlotAddress

SlotArg = Annotated[str, typer.Argument(help="An input slot as input.connection.slot, e.g. particles.0.ctf "
                                        "(connection 0 is the first group connected).", show_default=False)]

HOW = {"override": "override", "name": "by name", "type": "by type", "passthrough": "passthrough",
       "cleared": "cleared", "empty": "empty (optional)", "missing": "MISSING (required)",
       "unknown": "unknown until its job runs"}
"""How a slot is bound (:class:`cryoweave.builder.bindings.Bound` ``how``), in words."""


def _header(job: Job) -> None:
    record = job.record
    console().print(f"[bold]{escape(job.project.uid)} {escape(job.uid)}[/bold]  {escape(record.title)}  "
                    f"({escape(record.type)}, {escape(record.status.value)})")


# ---------------------------------------------------------------------------------------- inputs
def _bound(b: Bound) -> dict[str, Any]:
    return {"name": b.name, "type": b.dtype, "required": b.required, "result": None if b.ref is None else str(b.ref),
            "how": b.how, "candidates": list(b.candidates)}


def _concerns(binding: InputBinding, requirement: str) -> bool:
    """Whether an unmet requirement of the job is about this input: its own count, slots or overrides, or
    the status of a job it takes from."""
    jobs = {cb.connection.job for cb in binding.connections}
    jobs |= {ref.job for cb in binding.connections for ref in cb.connection.overrides.values()}
    return (requirement in binding.problems or requirement.startswith(f"slot {binding.name}.")
            or any(requirement.startswith(f"{uid}, which ") or requirement.endswith(f" job {uid}") for uid in jobs))


def inputs_data(job: Job) -> list[dict[str, Any]]:
    """Every input group of a job as ``cryoweave job inputs --json`` prints it."""
    bindings = job.input_bindings()
    requirements = job.requirements()
    loose = [r for r in requirements if not any(_concerns(b, r) for b in bindings)]  # about the job as a whole
    listed = []
    for binding in bindings:
        spec = binding.spec
        problems = list(dict.fromkeys([*binding.problems, *(r for r in requirements if _concerns(binding, r)),
                                       *loose]))
        listed.append({
            "name": binding.name, "title": spec.title, "type": spec.type.value, "slots": [_slot(s) for s in spec.slots],
            "count_min": spec.count_min, "count_max": spec.count_max, "repeat_allowed": spec.repeat_allowed,
            "met": not problems, "problems": problems,
            "connections": [{"index": cb.index, "source": str(cb.connection), "known": cb.known,
                             "slots": [_bound(b) for b in cb.slots],
                             "passthroughs": [_bound(b) for b in cb.passthroughs]} for cb in binding.connections],
            "dropped": binding.dropped})
    return listed


def _how(bound: dict[str, Any], source: str) -> str:
    text = HOW.get(bound["how"], bound["how"])
    if bound["how"] == "unknown":
        text = f"unknown until {source.split('.')[0]} runs"
    if bound["candidates"]:
        text += f" (also fits: {', '.join(bound['candidates'])})"
    return text


def _print_inputs(job: Job, data: list[dict[str, Any]]) -> None:
    _header(job)
    if not data:
        say("no inputs")
    out = console()
    for i in data:
        count = _count(job.record.spec.input(i["name"]))
        repeats = "repeats allowed" if i["repeat_allowed"] else "no repeats"
        print_heading(f"{i['name']}  {i['type']} ×{count}, {repeats}; slots: {', '.join(i['slots']) or 'none'}  "
                      + ("✓ met" if i["met"] else "✗ unmet"))
        for problem in i["problems"]:
            out.print(f"  ✗ {escape(problem)}")
        if not i["connections"]:
            say("  no group connected")
        for c in i["connections"]:
            say(f"  [{c['index']}] {c['source']}")
            rows = [(b["name"], b["type"], b["result"] or "—", _how(b, c["source"])) for b in c["slots"]]
            rows += [(b["name"], b["type"], b["result"] or "—", "passthrough") for b in c["passthroughs"]]
            print_table(["slot", "type", "result", "how"], rows, empty="  (no slots, nothing passes through)")
        if i["dropped"]:
            say(f"  dropped when the groups are appended (not in every connection): {', '.join(i['dropped'])}")


@app.command()
def inputs(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Show each input of a job: its requirement, whether it is met, and the result bound to every slot.

    Per connection, each slot shows the result bound to it (J.group.result.version) and how: override,
    by name, by type, cleared, empty (optional) or MISSING (required); then the results passed through,
    and those dropped when several groups are appended.

    Example: cryoweave job inputs P1 J7 --json
    """
    with open_instance() as inst:
        j = inst.project(project).job(job)
        data = inputs_data(j)
        if as_json:
            print_json(data)
        else:
            _print_inputs(j, data)


def _parse_slot(text: str) -> InputSlotAddress:
    from cryoweave.spec import parse_input_slot_address

    return parse_input_slot_address(text)


def _slot_done(job: Job, address: InputSlotAddress, as_json: bool) -> None:
    """Confirm a slot edit: the input's bindings now (--json), or the result the slot is bound to."""
    data = next(i for i in inputs_data(job) if i["name"] == address.group)
    if as_json:
        print_json(data)
        return
    connection = data["connections"][address.connection]
    bound = next(b for b in connection["slots"] if b["name"] == address.slot)
    how = _how(bound, connection["source"])
    say(f"{job.project.uid} {job.uid}: input slot {address} "
        + (f"bound to {bound['result']} ({how})" if bound["result"] else how))


@app.command("connect-result")
def connect_result(project: ProjectArg, job: JobArg, slot: SlotArg,
                   source: Annotated[str, typer.Argument(help="A result of another job: J3.particles.blob (final "
                                                         "version), J3.particles.blob.F, or J4.particles."
                                                         "alignments3D.3 (version 3).", show_default=False)],
                   as_json: AsJson = False) -> None:
    """Bind one slot of one connection to a result of any job, at any saved version (the low-level interface).

    The result must be of the slot's type; the connected group still gives the items and the other slots.
    With --json the input's bindings are printed as by cryoweave job inputs.

    Example: cryoweave job connect-result P1 J7 particles.0.blob J3.particles.blob.F
    """
    address = _parse_slot(slot)
    with open_instance() as inst:
        j = inst.project(project).job(job).connect_result(address.group, address.connection, address.slot, source)
        _slot_done(j, address, as_json)


@app.command("clear-slot")
def clear_slot(project: ProjectArg, job: JobArg, slot: SlotArg,
               reset: Annotated[bool, typer.Option("--reset", help="Undo an override or a clear instead: the slot "
                                                   "binds to its connection's group again.")] = False,
               as_json: AsJson = False) -> None:
    """Leave an optional slot of a connection empty (a required slot can only be bound elsewhere).

    With --reset, undo an override or clear of the slot. With --json the input's bindings are printed.

    Example: cryoweave job clear-slot P1 J7 particles.0.ctf
    """
    address = _parse_slot(slot)
    with open_instance() as inst:
        j = inst.project(project).job(job)
        edit = j.reset_slot if reset else j.clear_slot
        _slot_done(edit(address.group, address.connection, address.slot), address, as_json)


# ---------------------------------------------------------------------------------------- outputs
def _file(directory: Path, metafile: str, **more: Any) -> dict[str, Any]:
    return {"metafile": metafile, "path": str(directory / metafile), **more}


def _group_data(job: Job, directory: Path, name: str, spec: OutputSpec | None,
                group: OutputGroup | None) -> dict[str, Any]:
    saved = group is not None and bool(group.tables)
    data: dict[str, Any] = {
        "name": name, "type": (spec.type if spec else group.type).value,  # type: ignore[union-attr]
        "title": (spec.title if spec else "") or (group.title if group else ""),
        "slots": [_slot(s) for s in spec.slots] if spec else [],
        "passthrough": spec.passthrough if spec else group.passthrough,  # type: ignore[union-attr]
        "saved": saved, "num_items": group.num_items if saved else 0, "versions": group.versions if saved else [],
        "tables": [], "results": []}
    if not saved:
        return data
    data["tables"] = [_file(directory, t.metafile, version=t.version, num_items=t.num_items) for t in group.tables]
    for r in group.results.values():
        address = f"{job.uid}.{name}.{r.name}"
        if r.passthrough:
            data["results"].append({
                "name": r.name, "type": r.dtype, "passthrough": True, "address": address, "versions": [0],
                "num_items": group.num_items, "files": [],
                "sources": [_file(directory, s.metafile, prefix=s.prefix, origin=s.origin) for s in r.sources]})
        else:
            data["results"].append({
                "name": r.name, "type": r.dtype, "passthrough": False, "address": address, "versions": r.versions,
                "num_items": r.num_items[-1] if r.num_items else 0, "sources": [],
                "files": [_file(directory, m, version=v, num_items=n)
                          for v, m, n in zip(r.versions, r.metafiles, r.num_items)]})
    return data


def outputs_data(job: Job) -> list[dict[str, Any]]:
    """Every output group of a job as ``cryoweave job outputs --json`` prints it."""
    directory = job.project.directory
    specs = {o.name: o for o in job.record.spec.outputs}
    names = list(dict.fromkeys([*specs, *job.outputs]))
    return [_group_data(job, directory, n, specs.get(n), job.outputs.get(n)) for n in names]


def _versions(versions: list[int]) -> str:
    if len(versions) > 6:
        return f"{versions[0]}, {versions[1]}, …, {versions[-1]} (F = {versions[-1]})"
    return ", ".join(map(str, versions)) + (f" (F = {versions[-1]})" if len(versions) > 1 else "")


def _print_outputs(job: Job, data: list[dict[str, Any]]) -> None:
    _header(job)
    print_fields([("directory", job.project.directory)])
    if not data:
        say("no outputs")
    for g in data:
        through = f"; passes through input {g['passthrough']}" if g["passthrough"] else ""
        if not g["saved"]:
            slots = ", ".join(g["slots"]) or "none"
            print_heading(f"{g['name']}  {g['type']}, not saved yet (slots: {slots}{through})")
            continue
        print_heading(f"{g['name']}  {g['type']}, {g['num_items']:,} items, "
                      f"version {_versions(g['versions'])}{through}")
        rows = []
        for r in g["results"]:
            if r["passthrough"]:
                files = "; ".join(f"{s['metafile']} ({s['origin'] or s['prefix']})" for s in r["sources"])
                rows.append((r["name"], r["type"], "passthrough", f"{r['num_items']:,}", files))
            else:
                last = r["files"][-1]["metafile"] if r["files"] else "—"
                rows.append((r["name"], r["type"], _versions(r["versions"]), f"{r['num_items']:,}", last))
        print_table(["result", "type", "versions", "items", "file (F; passthrough: source and origin)"], rows,
                    empty="no results")


@app.command()
def outputs(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Show a job's output groups (type, items, saved versions) and every result, passthroughs marked.

    Each result has its type, versions, item count and files; a passthrough names the ancestor's file
    that holds it and the result it came from (origin).

    File paths are relative to the project directory (--json gives them absolute too).

    Example: cryoweave job outputs P1 J7 --json
    """
    with open_instance() as inst:
        j = inst.project(project).job(job)
        data = outputs_data(j)
        if as_json:
            print_json(data)
        else:
            _print_outputs(j, data)


def _version(text: str) -> int | str:
    from cryoweave.errors import ParamError

    value = text.strip()
    if value.upper() == "F":
        return "F"
    if value.isdigit():
        return int(value)
    raise ParamError(f"--version {text!r}: write F (the final version) or a saved version number, e.g. 3")


@app.command("export-output")
def export_output(project: ProjectArg, job: JobArg,
                  output: Annotated[str, typer.Argument(help="The output group, e.g. particles.", show_default=False)],
                  path: Annotated[Path, typer.Argument(help="The .cs file to write.", show_default=False)],
                  version: Annotated[str, typer.Option("--version", help="A saved version number, or F (the "
                                                       "final one).")] = "F",
                  force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
                  as_json: AsJson = False) -> None:
    """Write one version of an output group as one self-contained .cs file, its passthroughs joined in.

    Example: cryoweave job export-output P1 J7 particles subset.cs --version F
    """
    from cryoweave.dataset import Dataset
    from cryoweave.errors import ParamError

    chosen = _version(version)
    if path.is_dir():
        raise ParamError(f"{path} is a folder; name the .cs file to write")
    if path.exists() and not force:
        raise ParamError(f"{path} exists; choose another path, or pass --force to overwrite it")
    with open_instance() as inst:
        j = inst.project(project).job(job)
        written = j.export_output(output, path, chosen, overwrite=True)
        header = Dataset.inspect(written)
    table = j.outputs[output].tables[-1] if chosen == "F" else next(
        t for t in j.outputs[output].tables if t.version == chosen)
    results = list(dict.fromkeys(f[0].split("/", 1)[0] for f in header["dtype"] if "/" in f[0]))
    if as_json:
        print_json({"project": j.project.uid, "job": j.uid, "output": output, "version": table.version,
                    "path": str(written.resolve()), "num_items": header["length"], "results": results})
        return
    say(f"{j.project.uid} {j.uid}: {output} version {table.version} ({header['length']:,} items; results "
        f"{', '.join(results) or 'none'}) written to {written}")
