"""``cryoweave lane ...``: where queued jobs run. The built-in ``local`` lane (this machine), local
lanes limited to some CPUs, GPUs and memory, and cluster lanes that submit a job script (SLURM, PBS ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.job import JobArg, ProjectArg
from cryoweave.cli.output import AsJson, print_fields, print_heading, print_json, print_table, say

if TYPE_CHECKING:
    from cryoweave.api import Instance
    from cryoweave.model.lanes import ClusterLane, LocalLane
    from cryoweave.store.queue import ActiveJob

app = typer.Typer(help="Lanes: where queued jobs run (this machine, or a cluster through its job script).",
                  no_args_is_help=True)

LaneArg = Annotated[str, typer.Argument(help="The lane's name, e.g. local or slurm.", show_default=False)]
Replace = Annotated[bool, typer.Option("--replace", help="Replace the lane of that name if there is one.")]
STARTERS = "cryoweave scheduler, or cryoweave job queue --wait"
"""What runs a scheduler, in words (queued jobs start only while one runs)."""


# ---------------------------------------------------------------------------------------- data
def _gb(value: float) -> str:
    return f"{round(value, 2):g}"


def _gpus(gpus: list[int]) -> str:
    return ",".join(map(str, gpus)) or "none"


def active_data(job: ActiveJob) -> dict[str, Any]:
    """A queued or running job as ``lane list --json`` shows it under its lane."""
    record = job.record
    run = record.run
    return {"project": job.project, "job": job.uid, "type": record.type, "title": record.title,
            "status": job.status.value, "lane": run.lane if run else "", "priority": run.priority if run else 0,
            "cpu": run.cpu if run else 0, "gpus": list(run.gpus) if run else [],
            "ram_gb": run.ram_gb if run else 0.0, "host": run.host if run else "", "pid": run.pid if run else None,
            "cluster_job_id": run.cluster_job_id if run else "", "cluster_state": run.cluster_state if run else "",
            "waiting": run.waiting if run else "", "heartbeat_at": job.heartbeat_at}


def lane_data(lane: LocalLane | ClusterLane, active: list[ActiveJob] | None = None) -> dict[str, Any]:
    """A lane as ``--json`` prints it: its settings (a cluster's script left out: ``lane render`` shows it
    filled in), what a local lane has in use and free, its custom variables, and its jobs (``active``)."""
    from cryoweave.model.lanes import LocalLane
    from cryoweave.run import local
    from cryoweave.run.cluster import custom_var_names

    data = lane.model_dump(mode="json", exclude={"script_tpl"})
    if isinstance(lane, LocalLane):
        free = local.free(lane, active or [])
        data["free"] = {"cpu": free.cpu, "gpus": free.gpus, "ram_gb": round(free.ram_gb, 3)}
        data["in_use"] = {"cpu": lane.cpu - free.cpu, "gpus": [g for g in lane.gpus if g not in free.gpus],
                          "ram_gb": round(lane.ram_gb - free.ram_gb, 3)}
    else:
        data["custom_var_names"] = custom_var_names(lane)
    if active is not None:
        data["jobs"] = [active_data(j) for j in active if j.record.run and j.record.run.lane == lane.name]
    return data


def _resources(data: dict[str, Any]) -> list[tuple[str, str]]:
    if data["kind"] == "local":
        used, free = data["in_use"], data["free"]
        return [("CPUs", f"{data['cpu']} ({used['cpu']} in use, {free['cpu']} free)"),
                ("GPUs", f"{_gpus(data['gpus'])}" + (f" (in use: {_gpus(used['gpus'])}; free: {_gpus(free['gpus'])})"
                                                     if data["gpus"] else "")),
                ("RAM", f"{_gb(data['ram_gb'])} GB ({_gb(used['ram_gb'])} in use, {_gb(free['ram_gb'])} free)")]
    defaults = data["custom_vars"]
    variables = ", ".join(f"{n} (lane default: {defaults[n]!r})" if n in defaults else f"{n} (no default)"
                          for n in data["custom_var_names"])
    return [("submit", data["submit_cmd_tpl"]), ("status", data["status_cmd_tpl"]),
            ("cancel", data["cancel_cmd_tpl"]), ("info", data["info_cmd_tpl"]),
            ("send", data["send_cmd_tpl"] if data["send_cmd_tpl"] != "{{ command }}" else ""),
            ("python", data["python"]), ("variables", variables or "none")]


def _where(job: dict[str, Any]) -> str:
    if job["cluster_job_id"]:
        return f"cluster job {job['cluster_job_id']}" + (f" ({job['cluster_state']})" if job["cluster_state"] else "")
    if job["pid"]:
        return f"{job['host']} pid {job['pid']}"
    return job["host"]


def _given(job: dict[str, Any]) -> str:
    if job["status"] == "queued":
        return ""
    gpus = f"GPU {_gpus(job['gpus'])}" if job["gpus"] else "no GPU"
    return f"{job['cpu']} CPU, {gpus}, {_gb(job['ram_gb'])} GB"


def _print_jobs(jobs: list[dict[str, Any]]) -> None:
    print_table(["job", "type", "status", "priority", "given", "where", "waiting for"],
                [(f"{j['project']} {j['job']}", j["type"], j["status"], j["priority"], _given(j), _where(j),
                  j["waiting"]) for j in jobs], empty="no queued or running jobs")


def _print_lane(data: dict[str, Any]) -> None:
    title = f" — {data['title']}" if data["title"] else ""
    print_heading(f"{data['name']}  ({data['kind']} lane){title}")
    print_fields([("description", data["description"]), *_resources(data)])
    if "jobs" in data:
        _print_jobs(data["jobs"])


def _scheduler_line(holder: dict | None) -> str:
    if holder is None:
        return f"scheduler: none running; queued jobs start when one runs ({STARTERS})"
    return f"scheduler: running ({holder.get('who') or 'unnamed'})"


# ---------------------------------------------------------------------------------------- verbs
@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """List the lanes, their resources (in use and free) and the queued and running jobs on each.

    Also says whether a scheduler runs now: queued jobs start only while one does (cryoweave
    scheduler, or a cryoweave job queue --wait).

    Example: cryoweave lane list --json
    """
    from cryoweave.store.queue import active_jobs, lease_holder

    with open_instance() as inst:
        active = active_jobs(inst.store)
        lanes = [lane_data(lane, active) for lane in inst.lanes()]
        holder = lease_holder(inst.store)
    known = {lane["name"] for lane in lanes}
    elsewhere = [active_data(j) for j in active if not j.record.run or j.record.run.lane not in known]
    if as_json:
        print_json({"lanes": lanes, "elsewhere": elsewhere,
                    "scheduler": None if holder is None else {"who": holder.get("who", ""),
                                                              "expires": holder.get("expires")}})
        return
    say(_scheduler_line(holder))
    for lane in lanes:
        _print_lane(lane)
    if elsewhere:
        print_heading("Running elsewhere (in the foreground: cryoweave job run)")
        _print_jobs(elsewhere)


def _added(inst: Instance, lane: LocalLane | ClusterLane, existed: bool, as_json: bool) -> None:
    from cryoweave.store.queue import active_jobs

    data = lane_data(lane, active_jobs(inst.store))
    if as_json:
        print_json(data)
        return
    say(f"lane {lane.name} {'replaced' if existed else 'added'} ({lane.describe()})")
    if data["kind"] == "cluster":
        print_fields(_resources(data))


def _exists(inst: Instance, name: str) -> bool:
    from cryoweave.store.queue import get_lane

    return get_lane(inst.store, name) is not None


@app.command("add-cluster")
def add_cluster(
    directory: Annotated[Path, typer.Argument(help="A folder with cluster_info.json (name, command templates) and "
                                              "cluster_script.sh (the Jinja2 job script), as CryoSPARC's.",
                                              show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="The lane's name (default: the name in "
                                             "cluster_info.json).", show_default=False)] = None,
    replace: Replace = False,
    as_json: AsJson = False,
) -> None:
    """Add a cluster lane from CryoSPARC's cluster_info.json and cluster_script.sh.

    Its templates are checked now: a syntax error is named with its line. Prints the lane and
    the job script's custom variables: values set per job (cryoweave job queue --var
    name=value) or for the lane (custom_vars in cluster_info.json).

    Example: cryoweave lane add-cluster examples/lanes/slurm --name slurm
    """
    from cryoweave.run.lanes import read_cluster_dir

    with open_instance() as inst:
        lane = read_cluster_dir(directory, name)  # checked before the database is touched
        existed = _exists(inst, lane.name)
        _added(inst, inst.add_cluster_lane(directory, name=name, replace=replace), existed, as_json)


def _parse_gpus(text: str) -> list[int]:
    from cryoweave.errors import ParamError

    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ParamError(f"--gpus {text!r}: write GPU numbers separated by commas, e.g. --gpus 0,1")
    gpus = [int(p) for p in parts]
    if len(set(gpus)) != len(gpus):
        raise ParamError(f"--gpus {text!r}: a GPU is named twice")
    return gpus


@app.command("add-local")
def add_local(
    name: LaneArg,
    cpus: Annotated[int, typer.Option("--cpus", help="How many CPUs its jobs may use at once.", show_default=False)],
    ram_gb: Annotated[float, typer.Option("--ram-gb", help="How much memory (GB) its jobs may use at once.",
                                          show_default=False)],
    gpus: Annotated[str, typer.Option("--gpus", help="The GPU numbers it may give out, e.g. 0,1 (default: "
                                      "none).")] = "",
    title: Annotated[str, typer.Option("--title", help="A title shown in lane lists.")] = "",
    replace: Replace = False,
    as_json: AsJson = False,
) -> None:
    """Add a lane of this machine that gives its jobs at most some CPUs, GPUs and memory.

    Naming it local (with --replace if one was added before) limits the built-in local lane.

    Example: cryoweave lane add-local gpu01 --cpus 8 --ram-gb 64 --gpus 0,1
    """
    chosen = _parse_gpus(gpus)
    with open_instance() as inst:
        existed = _exists(inst, name)
        _added(inst, inst.add_local_lane(name, cpu=cpus, ram_gb=ram_gb, gpus=chosen, title=title, replace=replace),
               existed, as_json)


@app.command()
def remove(name: LaneArg) -> None:
    """Remove a lane; refused while jobs are queued to it or running on it.

    Removing a local lane named local gives back the built-in one (all of this machine).

    Example: cryoweave lane remove gpu01
    """
    from cryoweave.errors import ParamError
    from cryoweave.run.lanes import LOCAL

    with open_instance() as inst:
        if name == LOCAL and not _exists(inst, LOCAL):
            raise ParamError("the built-in lane 'local' (all of this machine) cannot be removed; limit it instead "
                             "with cryoweave lane add-local local --cpus N --ram-gb X")
        inst.remove_lane(name)
    say(f"lane {name} removed" + (" (the built-in local lane, all of this machine, is back)" if name == LOCAL else ""))


@app.command()
def info(name: LaneArg, as_json: AsJson = False) -> None:
    """Print what a cluster lane's info command (e.g. sinfo) says; for a local lane, its resources.

    Example: cryoweave lane info slurm
    """
    from cryoweave.errors import CryoweaveError
    from cryoweave.model.lanes import LocalLane
    from cryoweave.run import cluster
    from cryoweave.store.queue import active_jobs

    with open_instance() as inst:
        lane = inst.lane(name)
        if isinstance(lane, LocalLane):
            data = lane_data(lane, active_jobs(inst.store))
            if as_json:
                print_json(data)
            else:
                _print_lane(data)
            return
        result = cluster.info(lane)
    if as_json:
        print_json({"name": lane.name, "kind": lane.kind, "command": result.command, "returncode": result.returncode,
                    "stdout": result.stdout, "stderr": result.stderr})
    elif result.returncode == 0:
        typer.echo(result.stdout, nl=not result.stdout.endswith("\n"))
    if result.returncode != 0:
        raise CryoweaveError(f"lane {lane.name!r}: the info command failed: {result.describe()}")


@app.command()
def render(
    project: ProjectArg,
    job: JobArg,
    lane: Annotated[str | None, typer.Option("--lane", help="A cluster lane (default: the lane the job is queued "
                                             "to).", show_default=False)] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="A custom variable of the script as name=value "
                                                  "(repeatable), as for cryoweave job queue.",
                                                  show_default=False)] = None,
) -> None:
    """Print the exact job script a cluster lane would submit for a job (its run token shown as preview).

    Variables without a value, and template errors, are named as queueing would name them.

    Example: cryoweave lane render P1 J7 --lane slurm --var partition=gpu
    """
    from cryoweave.errors import ParamError
    from cryoweave.model.lanes import LocalLane
    from cryoweave.run.actions import parse_vars
    from cryoweave.run.submission import job_script

    custom = parse_vars(var or [])
    with open_instance() as inst:
        p = inst.project(project)
        record = p.job(job).record
        queued_to = record.run.lane if record.run else None
        if lane is None and (queued_to is None or queued_to not in {known.name for known in inst.lanes()}):
            raise ParamError(f"job {record.uid} is not queued to a lane; name the cluster lane to render its script "
                             f"for: --lane NAME (cryoweave lane list shows them)")
        chosen = inst.lane(lane or queued_to)
        if isinstance(chosen, LocalLane):
            raise ParamError(f"lane {chosen.name!r} is a local lane: only cluster lanes have job scripts "
                             "(name one with --lane)")
        directory = inst.store.get_project(p.uid).directory
        script = job_script(inst.store, chosen, p.uid, directory, record, token="preview", custom=custom)
    typer.echo(script, nl=not script.endswith("\n"))
