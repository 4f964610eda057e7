"""Running jobs: ``cryoweave job queue|run|wait|kill|restart|clone|log`` and ``cryoweave scheduler``.

The job verbs are added to the ``job`` app of :mod:`cryoweave.cli.job` (``cryoweave.cli`` imports
this module), so they sit beside ``create``, ``connect`` and the others; :func:`scheduler` is
registered on the root app. Queued jobs start only while a scheduler runs: ``cryoweave
scheduler``, or a command that waits for a job (``job queue --wait``, ``job
wait``) when no other scheduler runs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.job import JobArg, ProjectArg, _done, app, info, job_data
from cryoweave.cli.lane import STARTERS
from cryoweave.cli.output import AsJson, print_fields, print_heading, print_json, say

if TYPE_CHECKING:

    from cryoweave.api import Instance, Job
    from cryoweave.model.records import JobRecord

LaneOpt = Annotated[str | None, typer.Option("--lane", help="The lane to run it on (default: local, this machine; "
                                             "cryoweave lane list shows them).", show_default=False)]
VarOpt = Annotated[list[str] | None, typer.Option("--var", help="A custom variable of a cluster lane's job script "
                                                  "as name=value (repeatable), e.g. --var partition=gpu.",
                                                  show_default=False)]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="Give up waiting after this many seconds (exit "
                                                  "status 1; the job goes on).", show_default=False)]
WATCH_EVERY_S = 0.5


# ---------------------------------------------------------------------------------------- the run, for job info
def run_data(record: JobRecord) -> dict[str, Any] | None:
    """Where and how a job runs or ran (``job info --json``'s ``run``); ``None`` before it is queued."""
    return None if record.run is None else record.run.model_dump(mode="json", exclude={"token"})


def run_fields(run: dict[str, Any], status: str) -> list[tuple[str, Any]]:
    """The run as ``name  value`` lines of ``job info`` (empty values are left out when printed)."""
    given = ""
    if run["cpu"] or run["ram_gb"] or run["gpus"]:
        gpus = f"GPU {','.join(map(str, run['gpus']))}" if run["gpus"] else "no GPU"
        given = f"{run['cpu']} CPU, {gpus}, {run['ram_gb']:g} GB RAM"
    host = run["host"] + (f" (pid {run['pid']})" if run["pid"] else "")
    active = status in ("queued", "launched", "started", "running", "waiting")
    shown = run["cluster_state"] if active else ""  # the cluster's last word, while it still matters
    cluster = run["cluster_job_id"] + (f" ({shown})" if shown else "")
    variables = ", ".join(f"{k}={v}" for k, v in run["custom_vars"].items())
    return [("lane", run["lane"]), ("priority", run["priority"]), ("host", host), ("given", given),
            ("cluster job", cluster), ("script", run["script"]), ("variables", variables),
            ("waiting for", run["waiting"] if status == "queued" else ""), ("message", run["message"])]


def print_run(data: dict[str, Any]) -> None:
    """The ``Run`` section of ``job info`` (nothing for a job never queued)."""
    if data.get("run"):
        print_heading("Run")
        print_fields(run_fields(data["run"], data["status"]))


def clear_note(inst: Instance, job: Job, descendants: bool) -> str:
    """What ``job clear`` will clear, in words, read before it does."""
    from cryoweave.store.queue import descendants as below

    was = job.record.status.value
    note = f"cleared (was {was}); it is building again" if was != "building" else "already building"
    if descendants:
        project = job.project
        cleared = [uid for uid in below(inst.store, project.uid, job.uid) if project.job(uid).status != "building"]
        note += f"; descendants cleared: {', '.join(cleared)}" if cleared else "; no descendant to clear"
    return note


# ---------------------------------------------------------------------------------------- how a run ended
def _failure(job: Job) -> str:
    """Why a failed job failed: its run's message, else its last status event."""
    if job.record.run is not None and job.record.run.message:
        return job.record.run.message
    for event in reversed(job.events()):
        if event.text.startswith("status ") and "failed" in event.text.split(":", 1)[0]:
            return event.text.split(": ", 1)[1] if ": " in event.text else "no reason recorded"
    return "no reason recorded"


def _run_seconds(record: JobRecord) -> float | None:
    """How long the last run took, from its status times (from launch, or from queueing)."""
    from cryoweave.model.status import JobStatus

    times = record.status_times
    end, queued = times.get(record.status), times.get(JobStatus.QUEUED)
    if end is None:
        return None
    for status in (JobStatus.STARTED, JobStatus.LAUNCHED):  # a time before the last queueing is an older run's
        start = times.get(status)
        if start is not None and (queued is None or start >= queued) and start <= end:
            return (end - start).total_seconds()
    return None if queued is None else max(0.0, (end - queued).total_seconds())


def _report(job: Job, as_json: bool, took: float | None = None, log_verb: str = "log") -> None:
    """Print how a job ended; a failed or killed job exits with status 1 and the reason on one line."""
    from cryoweave.errors import CryoweaveError

    record = job.refresh().record
    status = record.status.value
    took = _run_seconds(record) if took is None else took
    if as_json:
        print_json(job_data(job))
    elif status == "building":
        say(f"{job.project.uid} {job.uid}: building again (it was cleared before it ended)")
    elif status not in ("failed", "killed"):
        made = ", ".join(f"{g.name} ({g.num_items:,} items)" for g in record.outputs.values() if g.tables)
        say(f"{job.project.uid} {job.uid}: {status}" + ("" if took is None else f" in {took:.1f} s")
            + (f"; outputs: {made}" if made else ""))
    if status in ("failed", "killed"):
        reason = " ".join(_failure(job).split())
        what = "failed" if status == "failed" else "was killed"
        raise CryoweaveError(f"job {job.uid} {what}: {reason} (cryoweave job {log_verb} {job.project.uid} {job.uid} "
                             "shows its log)")


def _check_timeout(timeout: float | None) -> None:
    from cryoweave.errors import ParamError

    if timeout is not None and timeout <= 0:
        raise ParamError(f"--timeout {timeout:g}: give a number of seconds above 0")


def _wait(job: Job, timeout: float | None) -> None:
    from cryoweave.errors import CryoweaveError

    try:
        job.wait(timeout=timeout)
    except TimeoutError as err:
        p, j = job.project.uid, job.uid
        raise CryoweaveError(f"{err}; it goes on (cryoweave job wait {p} {j} waits again, cryoweave job kill {p} {j} "
                             "stops it)") from None


def _no_scheduler_note(inst: Instance, job: Job) -> None:
    """On stderr, when no scheduler runs: the queued job starts only once one does."""
    from cryoweave.store.queue import lease_holder

    if job.record.status.value == "queued" and lease_holder(inst.store) is None:
        print(f"cryoweave: note: no scheduler is running; {job.uid} starts when one runs ({STARTERS}; or "
              f"cryoweave job wait {job.project.uid} {job.uid})", file=sys.stderr)


# ---------------------------------------------------------------------------------------- queue, run, wait
@app.command()
def queue(project: ProjectArg, job: JobArg, lane: LaneOpt = None,
          priority: Annotated[int, typer.Option("--priority", help="Higher starts first; equal priorities start "
                                                "in queueing order.")] = 0,
          var: VarOpt = None,
          wait: Annotated[bool, typer.Option("--wait", help="Wait until the job ends and report how (exit status 1 "
                                             "if it failed or was killed); schedules jobs meanwhile if no "
                                             "scheduler runs.")] = False,
          timeout: TimeoutOpt = None, as_json: AsJson = False) -> None:
    """Queue a building job to a lane (refused, with the reason, if it cannot run there).

    Refused while an input requirement is unmet, or when the lane can never run the job (more
    GPUs than it has, a job script that does not render).

    Queued jobs start while a scheduler runs (cryoweave scheduler). With --wait
    this command schedules them itself if none does, and reports the job's end as cryoweave job
    wait does.

    Example: cryoweave job queue P1 J7 --lane slurm --var partition=gpu --wait
    """
    from cryoweave.errors import ParamError
    from cryoweave.run.actions import parse_vars

    if timeout is not None and not wait:
        raise ParamError("--timeout goes with --wait")
    _check_timeout(timeout)
    custom = parse_vars(var or [])
    with open_instance() as inst:
        j = inst.project(project).job(job).queue(lane, priority=priority, cluster_vars=custom)
        if wait:
            _wait(j, timeout)
            _report(j, as_json)
            return
        run = j.record.run
        where = (f" on lane {run.lane}" if run and run.lane != "local" else "") + (f", priority {priority}"
                                                                                   if priority else "")
        _done(j, as_json, f"queued{where}")
        _no_scheduler_note(inst, j)


@app.command("run")
def run_(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Run a building or queued job here, in the foreground, until it completes or fails.

    Its inputs are checked first, as for queue. A failed job exits with status 1 and its reason
    (cryoweave job events shows its whole log).

    Example: cryoweave job run P1 J7
    """
    with open_instance() as inst:
        j = inst.project(project).job(job)
        started = time.monotonic()
        j.execute()
        _report(j, as_json, took=time.monotonic() - started, log_verb="events")


@app.command("wait")
def wait_(project: ProjectArg, job: JobArg, timeout: TimeoutOpt = None, as_json: AsJson = False) -> None:
    """Wait until a queued or running job ends; print its status, run time and outputs.

    A job that failed or was killed exits with status 1 and the reason. While no scheduler runs,
    this command schedules the instance's queued jobs as it waits.

    Example: cryoweave job wait P1 J7 --timeout 3600
    """
    from cryoweave.errors import StatusError

    _check_timeout(timeout)
    with open_instance() as inst:
        j = inst.project(project).job(job)
        if j.record.status.value == "building":
            raise StatusError(f"job {j.uid} is building, so it will not end by itself; queue it first (cryoweave "
                              f"job queue {j.project.uid} {j.uid} --wait)")
        _wait(j, timeout)
        _report(j, as_json)


# ---------------------------------------------------------------------------------------- kill, restart, clone
@app.command()
def kill(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Stop a queued or running job: its worker's process tree, or its cluster job; it becomes killed.

    Example: cryoweave job kill P1 J7
    """
    with open_instance() as inst:
        j = inst.project(project).job(job)
        was, run = j.record.status.value, j.record.run
        j.kill()
        how = ""
        if run is not None and run.cluster_job_id:
            how = f"; cluster job {run.cluster_job_id} cancelled"
        elif run is not None and run.pid:
            how = f"; its worker (pid {run.pid} on {run.host}) stopped"
        _done(j, as_json, f"killed (was {was}{how})")


@app.command()
def restart(project: ProjectArg, job: JobArg, as_json: AsJson = False) -> None:
    """Kill a job if it is queued or running, clear it, and queue it again to the same lane and priority.

    Example: cryoweave job restart P1 J7
    """
    with open_instance() as inst:
        j = inst.project(project).job(job).restart()
        _done(j, as_json, f"restarted: cleared and queued again on lane {j.record.run.lane if j.record.run else '?'}")
        _no_scheduler_note(inst, j)


@app.command()
def clone(project: ProjectArg, job: JobArg,
          workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="The workspace to put the clone "
                                                        "in (default: the job's own).", show_default=False)] = None,
          title: Annotated[str, typer.Option("--title", help="Its title (default: the job's, noting the clone).")]
          = "",
          as_json: AsJson = False) -> None:
    """Make a new building job with a job's type, parameters and input connections.

    Example: cryoweave job clone P1 J7 -w W2 --title "J7 with more classes"
    """
    with open_instance() as inst:
        source = inst.project(project).job(job)
        new = source.clone(workspace=workspace, title=title)
        _done(new, as_json, f"created as a clone of {source.uid} ({new.type}) in {', '.join(new.workspaces)}")


# ---------------------------------------------------------------------------------------- the scheduler
class _Watcher:
    """Prints one line for each start and end the scheduler brings about (called between its rounds)."""

    def __init__(self, inst: Instance, scheduler: Any):
        self.inst, self.scheduler = inst, scheduler
        self.seen: dict[tuple[str, str], str] | None = None  # None before the first round
        self.holding: bool | None = None
        self.next_look = 0.0

    def __call__(self) -> None:
        from cryoweave.errors import CryoweaveError

        if time.monotonic() < self.next_look:
            return
        self.next_look = time.monotonic() + WATCH_EVERY_S
        with contextlib.suppress(CryoweaveError):  # only printing: a database hiccup must not stop the scheduler
            self._look()

    def _look(self) -> None:
        from cryoweave.errors import CryoweaveError
        from cryoweave.store.queue import active_jobs, lease_holder

        now = {j.key: j for j in active_jobs(self.inst.store)}
        if self.seen is not None and self.scheduler.holding != self.holding:
            self.holding = self.scheduler.holding
            who = (lease_holder(self.inst.store) or {}).get("who", "?")
            say("this scheduler holds the lease: it starts and watches jobs" if self.holding else
                f"another scheduler holds the lease ({who}); this one waits to take over")
        for key, j in now.items() if self.seen is not None else ():
            run = j.record.run
            if self.seen.get(key) != j.status.value and j.status.value in ("launched", "running") and run:
                where = f"{run.host} pid {run.pid}" if run.pid else run.host
                say(f"{j.project} {j.uid} ({j.record.type}) {j.status.value} on lane {run.lane}"
                    + (f" ({where})" if where else ""))
        for key in (self.seen or {}).keys() - now.keys():
            try:
                record = self.inst.store.get_job(*key)
            except CryoweaveError:
                continue
            why = f": {' '.join(record.run.message.split())}" if record.run and record.run.message else ""
            say(f"{key[0]} {key[1]} ({record.type}) {record.status.value}{why}")
        self.seen = {key: j.status.value for key, j in now.items()}


def scheduler(
    once: Annotated[bool, typer.Option("--once", help="Do one round and say whether this process held the "
                                       "lease.")] = False,
    interval: Annotated[float | None, typer.Option("--interval", help="Seconds between rounds (default: the "
                                                   "scheduler's, a fraction of a second).",
                                                   show_default=False)] = None,
) -> None:
    """Start queued jobs and watch running ones, until Ctrl-C or SIGTERM.

    Queued jobs start as their inputs complete and their lanes have room; a worker that died or a
    cluster job that was lost fails its job with the reason.

    One scheduler acts at a time, through a lease in the database; a second one waits and takes
    over when the first stops. It prints a line for each job it sees start or end.

    Example: cryoweave scheduler --interval 1
    """
    import signal
    import threading

    from cryoweave.errors import ParamError
    from cryoweave.store.queue import active_jobs, lease_holder

    if interval is not None and interval <= 0:
        raise ParamError(f"--interval {interval:g}: give a number of seconds above 0")
    with open_instance() as inst:
        sched = inst.scheduler()
        if once:
            try:
                held = sched.tick()
            finally:
                sched.close()
            if held:
                counts: dict[str, int] = {}
                for j in active_jobs(inst.store):
                    counts[j.status.value] = counts.get(j.status.value, 0) + 1
                say("scheduler: one round done, holding the lease; " + (", ".join(
                    f"{n} {status}" for status, n in sorted(counts.items())) or "no queued or running jobs"))
            else:
                holder = lease_holder(inst.store) or {}
                say(f"scheduler: another scheduler holds the lease ({holder.get('who', '?')}); this round did "
                    "nothing")
            return
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        watch = _Watcher(inst, sched)
        every = "" if interval is None else f", a round every {interval:g} s"
        say(f"scheduler running ({sched.describe}){every}; Ctrl-C or SIGTERM stops it")

        def until() -> bool:
            watch()
            return stop.is_set()
        try:
            sched.run(until=until, **({} if interval is None else {"interval": interval}))
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    say("scheduler stopped; its lease is released")


app.command("show", help="Show a job (the same as job info): status, run (lane, host, how it ended), "
            "parameters, inputs, outputs.\n\nExample: cryoweave job show P1 J7")(info)
