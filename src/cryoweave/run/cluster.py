"""Cluster lanes: the job script and the submit, status, cancel and info commands, from Jinja2 templates.

The script template sees the variables CryoSPARC's cluster scripts use (:data:`BUILTIN_VARS`);
any other variable is a *custom variable*, whose value comes from the job (``--var name=value``)
or else from the lane (``custom_vars``). A variable with no value is an error, named, before
anything is submitted. A batch directive (``#SBATCH``, ``#PBS``, ``#BSUB``, ``#$``) whose
variable is empty is left out of the script, never written as a broken ``#SBATCH --partition=``.

>>> lane = ClusterLane(name="c", script_tpl="#SBATCH -p {{ partition }}\\n{{ run_cmd }}\\n")
>>> print(render_script(lane, {"run_cmd": "true"}, {"partition": ""}), end="")
# cryoweave: '#SBATCH -p' left out: its value is empty
true
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta

from cryoweave.errors import ParamError
from cryoweave.model.lanes import ClusterLane

BUILTIN_VARS = ("run_cmd", "num_cpu", "num_gpu", "ram_gb", "job_dir_abs", "project_dir_abs", "job_log_path_abs",
                "project_uid", "job_uid", "job_type", "job_title", "script_path_abs", "lane_name",
                "worker_bin_path", "run_args", "cluster_job_id", "command")
"""The variables every template may use (``cluster_job_id`` in status and cancel commands,
``command`` in ``send_cmd_tpl``)."""

_EMPTY = "\x00cryoweave-empty\x00"
_DIRECTIVE = re.compile(r"^\s*#(SBATCH|PBS|BSUB|\$)\b")
_JOB_ID = re.compile(r"\d+(?:\.[A-Za-z0-9][\w.-]*)?")

COMMAND_TIMEOUT_S = 60

# Batch-system job states, by what they mean for a job that cryoweave launched there.
WAITING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED",
                  "STOPPED", "SPECIAL_EXIT", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "Q", "H", "W", "S", "T"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "R", "E"}
ENDED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE", "REVOKED", "C", "F"}
_UNKNOWN_JOB = re.compile(r"invalid job id|unknown job|does not exist|not found", re.IGNORECASE)


def _finalize(value: Any) -> Any:
    return _EMPTY if value is None or (isinstance(value, str) and not value.strip()) else value


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, finalize=_finalize,
                          autoescape=False)


def _parse(lane: ClusterLane, template: str, what: str) -> jinja2.nodes.Template:
    try:
        return _ENV.parse(template)
    except jinja2.TemplateSyntaxError as err:
        raise ParamError(f"lane {lane.name!r}: the {what} has a template syntax error on line {err.lineno}: "
                         f"{err.message}; fix it and add the lane again (cryoweave lane add-cluster DIR --replace)"
                         ) from None


def custom_var_names(lane: ClusterLane) -> list[str]:
    """The script's own variables (those that are not built in), sorted."""
    names = meta.find_undeclared_variables(_parse(lane, lane.script_tpl, "job script (cluster_script.sh)"))
    return sorted(set(names) - set(BUILTIN_VARS))


def check_lane(lane: ClusterLane) -> None:
    """Every template of the lane parses; raises :class:`ParamError` naming the first that does not."""
    custom_var_names(lane)
    for what in ("submit_cmd_tpl", "status_cmd_tpl", "cancel_cmd_tpl", "info_cmd_tpl", "send_cmd_tpl"):
        names = meta.find_undeclared_variables(_parse(lane, getattr(lane, what), what))
        unknown = sorted(set(names) - set(BUILTIN_VARS) - set(lane.custom_vars))
        if unknown:
            raise ParamError(f"lane {lane.name!r}: {what} uses {{{{ {unknown[0]} }}}}, which is not a variable "
                             f"commands can use ({', '.join(BUILTIN_VARS)})")


def _render(lane: ClusterLane, template: str, what: str, values: dict[str, Any]) -> str:
    try:
        return _ENV.from_string(template).render(**values)
    except jinja2.TemplateSyntaxError:
        _parse(lane, template, what)
        raise
    except jinja2.UndefinedError as err:
        raise ParamError(f"lane {lane.name!r}: the {what} uses an unknown variable ({err.message}); the variables "
                         f"are {', '.join(BUILTIN_VARS[:11])} and the lane's custom variables") from None
    except Exception as err:  # a filter or expression that fails on these values
        raise ParamError(f"lane {lane.name!r}: the {what} cannot be rendered: {type(err).__name__}: {err}") from None


def render_script(lane: ClusterLane, values: dict[str, Any], custom: dict[str, str] | None = None) -> str:
    """The job script: built-in ``values``, custom variables from ``custom`` (the job's) or the lane's."""
    chosen = {**lane.custom_vars, **(custom or {})}
    missing = [n for n in custom_var_names(lane) if n not in chosen]
    if missing:
        raise ParamError(f"lane {lane.name!r}: the job script uses {{{{ {missing[0]} }}}}, which is not a built-in "
                         f"variable and has no value; set it for this job (--var {missing[0]}=VALUE) or for the "
                         "lane (custom_vars in cluster_info.json). Built-in variables: " + ", ".join(BUILTIN_VARS[:11]))
    text = _render(lane, lane.script_tpl, "job script (cluster_script.sh)", {**chosen, **values})
    lines = []
    for line in text.split("\n"):
        if _EMPTY in line and _DIRECTIVE.match(line):
            kept = line.replace(_EMPTY, "").strip().rstrip("=").strip()
            lines.append(f"# cryoweave: {kept!r} left out: its value is empty")
        else:
            lines.append(line.replace(_EMPTY, ""))
    return "\n".join(lines)


@dataclass(frozen=True)
class CommandResult:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        said = " ".join((self.stderr.strip() or self.stdout.strip() or "no output").split())
        return f"`{self.command}` exited with status {self.returncode}: {said[:500]}"


def run_command(lane: ClusterLane, template: str, what: str, values: dict[str, Any],
                timeout: float = COMMAND_TIMEOUT_S) -> CommandResult:
    """Render one of the lane's commands (wrapped in its ``send_cmd_tpl``) and run it in a shell, in the
    job's folder when there is one (so files a batch system writes by default land there)."""
    command = _render(lane, template, what, {**lane.custom_vars, **values}).replace(_EMPTY, "")
    command = _render(lane, lane.send_cmd_tpl, "send_cmd_tpl", {"command": command}).replace(_EMPTY, "")
    try:
        folder = values.get("job_dir_abs")
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=folder if folder and os.path.isdir(folder) else None)
    except subprocess.TimeoutExpired:
        return CommandResult(command, 124, "", f"no answer within {timeout:g} s")
    return CommandResult(command, done.returncode, done.stdout, done.stderr)


def parse_job_id(output: str) -> str | None:
    """The cluster's job id in what a submit command printed (``123``, ``123;cluster``, ``Submitted batch
    job 123``, ``123.pbs-server``), or ``None``."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    found = _JOB_ID.search(lines[-1].split(";")[0]) or _JOB_ID.search(lines[-1])
    return found.group(0) if found else None


def submit(lane: ClusterLane, values: dict[str, Any]) -> str:
    """Submit the written script; returns the cluster's job id, or raises with what the command said."""
    result = run_command(lane, lane.submit_cmd_tpl, "submit command", values)
    if result.returncode != 0:
        raise ParamError(f"lane {lane.name!r}: the submit command failed: {result.describe()}")
    job_id = parse_job_id(result.stdout)
    if job_id is None:
        raise ParamError(f"lane {lane.name!r}: the submit command printed no job id (`{result.command}` said: "
                         f"{' '.join(result.stdout.split())[:300] or 'nothing'}); it must print the cluster's job "
                         "id, e.g. sbatch --parsable")
    return job_id


def job_state(lane: ClusterLane, job_id: str) -> tuple[str, str]:
    """What the cluster says of a job: (``waiting|running|ended|unknown|error``, the state or message)."""
    result = run_command(lane, lane.status_cmd_tpl, "status command", {"cluster_job_id": job_id})
    words = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0:
        if _UNKNOWN_JOB.search(result.stderr + result.stdout):
            return "unknown", " ".join(result.stderr.split())[:200]
        return "error", result.describe()
    if not words:
        return "unknown", "no output"
    state = words[-1].upper().rstrip("+")
    if state in WAITING_STATES:
        return "waiting", state
    if state in RUNNING_STATES:
        return "running", state
    if state.startswith("CANCELLED"):
        return "ended", "CANCELLED"
    if state in ENDED_STATES:
        return "ended", state
    return "running", state  # a state word this code does not know: leave the job to its heartbeat


def cancel(lane: ClusterLane, job_id: str) -> CommandResult:
    return run_command(lane, lane.cancel_cmd_tpl, "cancel command", {"cluster_job_id": job_id})


def info(lane: ClusterLane) -> CommandResult:
    return run_command(lane, lane.info_cmd_tpl, "info command", {})
