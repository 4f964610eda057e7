"""``cryoweave job ...``: job types, and building jobs (create, params, connections, status, events)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import (
    AsJson,
    console,
    escape,
    print_fields,
    print_heading,
    print_json,
    print_table,
    say,
    when,
)

if TYPE_CHECKING:
    from cryoweave.api import Job
    from cryoweave.jobs import JobType
    from cryoweave.model.jobspec import InputSpec, JobTypeSpec, OutputSpec, ParamSpec, SlotSpec

app = typer.Typer(help="Job types, and jobs (J1, J2 ...): create them, set parameters, connect inputs.",
                  no_args_is_help=True)

ProjectArg = Annotated[str, typer.Argument(help="The project, e.g. P1.", show_default=False)]
JobArg = Annotated[str, typer.Argument(help="The job, e.g. J3.", show_default=False)]
InputArg = Annotated[str, typer.Argument(help="The name of one of the job's inputs, e.g. particles.",
                                         show_default=False)]
TypeArg = Annotated[str, typer.Argument(help="A job type, e.g. import_particles (cryoweave job types lists them).",
                                        show_default=False)]


# ---------------------------------------------------------------------------------------- job types
def _slot(slot: SlotSpec) -> str:
    """A slot as the seeds write it: ``ctf``, ``?ctf`` (optional), ``alignments_class_0:alignments3D``."""
    return ("" if slot.required else "?") + slot.name + ("" if slot.dtype == slot.name else f":{slot.dtype}")


def _count(spec: InputSpec) -> str:
    return f"{spec.count_min}..{'∞' if spec.count_max is None else spec.count_max}"


def _input_text(spec: InputSpec) -> str:
    return f"{spec.name} ({spec.type.value} ×{_count(spec)})"


def _output_text(spec: OutputSpec) -> str:
    return f"{spec.name} ({spec.type.value})"


def _type_data(job_type: JobType) -> dict[str, Any]:
    spec = job_type.spec
    return {"type": spec.type, "title": spec.title, "category": spec.category, "version": spec.version,
            "description": spec.description, "inputs": [_input_text(i) for i in spec.inputs],
            "outputs": [_output_text(o) for o in spec.outputs], "source": job_type.source}


@app.command()
def types(as_json: AsJson = False) -> None:
    """List the installed job types, and plugins that failed to load with the reason.

    Job types come from the cryoweave.jobs entry point group: a lab's pip package can add its own.

    Example: cryoweave job types --json
    """
    from cryoweave.jobs import default_registry

    registry = default_registry()
    listed = [_type_data(t) for t in registry.types()]
    broken = [{"type": name, "reason": reason} for name, reason in sorted(registry.broken.items())]
    if as_json:
        print_json({"types": listed, "broken": broken})
        return
    print_table(["type", "title", "category", "inputs", "outputs", "source"],
                [(t["type"], t["title"], t["category"], ", ".join(t["inputs"]), ", ".join(t["outputs"]),
                  t["source"]) for t in listed], empty="no job types installed")
    if broken:
        print_heading("Broken job type plugins (not loaded)")
        print_table(["type", "reason"], [(b["type"], b["reason"]) for b in broken])


def _allowed(param: ParamSpec) -> str:
    if param.choices:
        return ", ".join(param.choices)
    if param.minimum is not None or param.maximum is not None:
        low = "-∞" if param.minimum is None else f"{param.minimum:g}"
        high = "∞" if param.maximum is None else f"{param.maximum:g}"
        return f"[{low}, {high}]"
    return ""


def _print_spec(spec: JobTypeSpec, source: str) -> None:
    print_fields([("type", spec.type), ("title", spec.title), ("category", spec.category),
                  ("version", spec.version), ("description", spec.description), ("source", source),
                  ("resources", f"{spec.resources.cpu} CPU, {spec.resources.gpu} GPU, "
                                f"{spec.resources.ram_gb:g} GB RAM")])
    print_heading("Inputs")
    print_table(["input", "datatype", "slots", "count", "repeats", "title"],
                [(i.name, i.type.value, ", ".join(_slot(s) for s in i.slots), _count(i),
                  "yes" if i.repeat_allowed else "no", i.title) for i in spec.inputs], empty="none")
    print_heading("Outputs")
    print_table(["output", "datatype", "slots", "passthrough", "title"],
                [(o.name, o.type.value, ", ".join(_slot(s) for s in o.slots), o.passthrough or "", o.title)
                 for o in spec.outputs], empty="none" if not spec.run_outputs else "none before it runs")
    if spec.run_outputs:
        say(f"Declared when it runs: {spec.run_outputs}")
    print_heading("Parameters")
    print_table(["parameter", "type", "default", "allowed", "help"],
                [(p.name, p.type.value, _value(p.default), _allowed(p), p.help) for p in spec.params],
                empty="none")


@app.command()
def spec(job_type: TypeArg, as_json: AsJson = False) -> None:
    """Show a job type: its inputs (slots, counts), outputs (passthrough) and parameters (type, default, help).

    With --json the spec is printed as data, in the form a plugin declares it.

    Example: cryoweave job spec import_particles
    """
    from cryoweave.jobs import default_registry

    found = default_registry().get(job_type)
    if as_json:
        print_json(found.spec.model_dump(mode="json"))
    else:
        _print_spec(found.spec, found.source)


# ---------------------------------------------------------------------------------------- jobs
def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def job_data(job: Job) -> dict[str, Any]:
    """A job as printed by ``--json``: every parameter (set or default), input, connection, output, its run."""
    from cryoweave.cli.running import run_data

    record, spec = job.record, job.record.spec
    values = record.param_values()
    params = {p.name: {"value": values.get(p.name), "default": p.default, "set": p.name in record.params,
                       "type": p.type.value} for p in spec.params}
    inputs: dict[str, Any] = {}
    for i in spec.inputs:
        inputs[i.name] = {"type": i.type.value, "slots": [_slot(s) for s in i.slots], "count_min": i.count_min,
                          "count_max": i.count_max, "connections": []}
    for name, connections in record.inputs.items():
        inputs.setdefault(name, {"connections": []})["connections"] = [
            {"index": k, "source": str(c), "overrides": {slot: str(ref) for slot, ref in c.overrides.items()}}
            for k, c in enumerate(connections)]
    outputs: dict[str, Any] = {}
    for o in spec.outputs:
        outputs[o.name] = {"type": o.type.value, "slots": [_slot(s) for s in o.slots], "passthrough": o.passthrough,
                           "num_items": 0, "results": {}}
    for name, group in record.outputs.items():
        entry = outputs.setdefault(name, {"type": group.type.value, "slots": [], "passthrough": group.passthrough})
        entry["num_items"] = group.num_items
        entry["results"] = {r: result.model_dump(mode="json") for r, result in group.results.items()}
    times = sorted(record.status_times.items(), key=lambda item: item[1])
    return {"project": job.project.uid, "uid": record.uid, "type": record.type, "title": record.title,
            "description": record.description, "status": record.status.value, "final": record.final,
            "status_times": {status.value: time for status, time in times}, "workspaces": record.workspaces,
            "created_at": record.created_at, "updated_at": record.updated_at, "params": params,
            "inputs": inputs, "outputs": outputs, "run": run_data(record)}


def _print_job(data: dict[str, Any]) -> None:
    from cryoweave.cli.running import print_run

    out = console()
    out.print(f"[bold]{escape(data['project'])} {escape(data['uid'])}[/bold]  {escape(data['title'])}  "
              f"({escape(data['type'])})")
    print_fields([("status", data["status"] + (" (final)" if data["final"] else "")),
                  *((f"  {status}", when(time)) for status, time in data["status_times"].items()),
                  ("workspaces", ", ".join(data["workspaces"])), ("description", data["description"]),
                  ("created", when(data["created_at"])), ("updated", when(data["updated_at"]))])
    print_run(data)
    print_heading("Parameters")
    print_table(["parameter", "value", "default", "type"],
                [(name, _value(p["value"]) + (" (set)" if p["set"] else ""), _value(p["default"]), p["type"])
                 for name, p in data["params"].items()], empty="none")
    print_heading("Inputs")
    print_table(["input", "datatype", "slots", "count", "connected to"],
                [(name, i.get("type", "?"), ", ".join(i.get("slots", [])),
                  f"{i['count_min']}..{'∞' if i['count_max'] is None else i['count_max']}" if "count_min" in i else "",
                  ", ".join(f"[{c['index']}] {c['source']}" for c in i["connections"]) or "—")
                 for name, i in data["inputs"].items()], empty="none")
    print_heading("Outputs")
    print_table(["output", "datatype", "slots", "passthrough", "items"],
                [(name, o["type"], ", ".join(o["slots"]), o["passthrough"] or "", o["num_items"])
                 for name, o in data["outputs"].items()], empty="none")


def _assignments(pairs: list[str]) -> dict[str, str]:
    from cryoweave.errors import ParamError

    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"-p {pair!r}: write a parameter as name=value, e.g. -p psize_A=0.83")
        if name in values:
            raise ParamError(f"-p: parameter {name!r} is given twice")
        values[name] = value
    return values


def _done(job: Job, as_json: bool, message: str) -> None:
    if as_json:
        print_json(job_data(job))
    else:
        say(f"{job.project.uid} {job.uid}: {message}")


@app.command()
def create(
    project: ProjectArg,
    job_type: TypeArg,
    workspace: Annotated[list[str] | None, typer.Option(
        "--workspace", "-w", help="A workspace to put the job in (repeat for several). Default: the project's "
        "only workspace, made if there is none.", show_default=False)] = None,
    title: Annotated[str, typer.Option("--title", help="A title (default: the job type's).")] = "",
    description: Annotated[str, typer.Option("--description", help="A longer description.")] = "",
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="A parameter as name=value (repeatable); the job type converts the text to the "
        "parameter's type.", show_default=False)] = None,
    as_json: AsJson = False,
) -> None:
    """Create a job of a type in a project, in building status.

    Example: cryoweave job create P1 import_particles -w W1 -p particle_meta_path=particles.star -p psize_A=0.83
    """
    params = _assignments(param or [])
    with open_instance() as inst:
        job = inst.project(project).create_job(job_type, workspace=workspace or None, title=title,
                                               description=description, params=params)
        _done(job, as_json, f"created ({job.type}) in {', '.join(job.workspaces)}")


@app.command("list")
def list_(
    project: ProjectArg,
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Only jobs in this workspace.",
                                                  show_default=False)] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only jobs in this status (building, queued, "
                                               "running, completed, killed, failed ...).",
                                               show_default=False)] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.",
                                                 show_default=False)] = None,
    as_json: AsJson = False,
) -> None:
    """List the jobs of a project, in number order, optionally of one workspace, status or type.

    Example: cryoweave job list P1 -w W2 --status building
    """
    from cryoweave.errors import ParamError
    from cryoweave.model.status import JobStatus

    if status is not None and status not in {s.value for s in JobStatus}:
        raise ParamError(f"--status {status!r} is not a job status (statuses: {', '.join(s.value for s in JobStatus)})")
    with open_instance() as inst:
        p = inst.project(project)
        if workspace is not None:
            workspace = p.workspace(workspace).uid  # an unknown workspace is an error, not an empty list
        summaries = p.jobs(workspace=workspace, status=status, type=job_type)
    if as_json:
        print_json([{"uid": j.uid, "type": j.type, "title": j.title, "status": j.status,
                     "created_at": j.created_at, "updated_at": j.updated_at} for j in summaries])
        return
    print_table(["job", "type", "title", "status", "updated"],
                [(j.uid, j.type, j.title, j.status, when(j.updated_at)) for j in summaries], empty="no jobs")


@app.command()
def info(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Show a job: type, status (with the time of each status), workspaces, parameters, inputs, outputs.

    Example: cryoweave job info P1 J3 --json
    """
    with open_instance() as inst:
        data = job_data(inst.project(project).job(job))
    if as_json:
        print_json(data)
    else:
        _print_job(data)


@app.command("set-param", context_settings={"ignore_unknown_options": True})
def set_param(project: ProjectArg, job: JobArg,
              name: Annotated[str, typer.Argument(help="The parameter's name.", show_default=False)],
              value: Annotated[str, typer.Argument(help="Its value as text, converted to the parameter's type "
                                                   "(negative numbers work: -5).", show_default=False)],
              as_json: AsJson = False) -> None:
    """Set a parameter of a building job.

    Example: cryoweave job set-param P1 J3 psize_A 0.83
    """
    with open_instance() as inst:
        j = inst.project(project).job(job).set_param(name, value)
        _done(j, as_json, f"{name} = {_value(j.params[name])}")


@app.command("clear-param")
def clear_param(project: ProjectArg, job: JobArg,
                name: Annotated[str, typer.Argument(help="The parameter's name.", show_default=False)],
                as_json: AsJson = False) -> None:
    """Clear a parameter of a building job back to its default.

    Example: cryoweave job clear-param P1 J3 psize_A
    """
    with open_instance() as inst:
        j = inst.project(project).job(job).clear_param(name)
        _done(j, as_json, f"{name} cleared (default {_value(j.params[name])})")


@app.command()
def connect(project: ProjectArg, job: JobArg, input_name: InputArg,
            source: Annotated[str, typer.Argument(help="An output group of another job, e.g. J5.particles.",
                                                  show_default=False)],
            as_json: AsJson = False) -> None:
    """Connect another job's output group to an input of a building job (connections add up).

    Example: cryoweave job connect P1 J7 particles J5.particles
    """
    with open_instance() as inst:
        j = inst.project(project).job(job).connect(input_name, source)
        _done(j, as_json, f"input {input_name}[{len(j.inputs[input_name]) - 1}] connected to {source}")


@app.command()
def disconnect(project: ProjectArg, job: JobArg, input_name: InputArg,
               index: Annotated[int | None, typer.Option("--index", help="Remove only this connection (0 is the "
                                                         "first). Default: all of them.",
                                                         show_default=False)] = None,
               as_json: AsJson = False) -> None:
    """Remove one connection (--index) or every connection of an input of a building job.

    Example: cryoweave job disconnect P1 J7 particles --index 1
    """
    with open_instance() as inst:
        j = inst.project(project).job(job)
        before = [str(c) for c in j.inputs.get(input_name, [])]
        j.disconnect(input_name, index)
        removed = before if index is None else before[index:index + 1]
        _done(j, as_json, f"input {input_name} disconnected from {', '.join(removed) or 'nothing'}")


@app.command("mark-completed")
def mark_completed(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Accept a killed or failed job's outputs as they are: it becomes completed.

    Example: cryoweave job mark-completed P1 J3
    """
    with open_instance() as inst:
        j = inst.project(project).job(job)
        was = j.record.status.value
        _done(j.mark_completed(), as_json, f"marked completed (was {was})")


@app.command()
def events(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Show a job's event log: creation, parameter changes, connections, status changes.

    Example: cryoweave job events P1 J3
    """
    with open_instance() as inst:
        log = inst.project(project).job(job).events()
    if as_json:
        print_json([e.model_dump(mode="json") for e in log])
        return
    print_table(["#", "time", "level", "event"], [(e.seq, when(e.time), e.level, e.text) for e in log],
                empty="no events")
