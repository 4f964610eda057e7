"""``cryoweave job log P1 J7 [--follow]``: a job's event log and its ``job.log``, live.

Events come first (time, level, text; progress as ``[done/total]``, images as their file's path),
then the job's stdout and stderr; ``--follow`` keeps printing both until the job has ended, with a
progress bar on a terminal.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.job import JobArg, ProjectArg, app
from cryoweave.cli.output import AsJson, console, escape, print_heading, print_json, when
from cryoweave.cli.running import _failure

if TYPE_CHECKING:
    from rich.console import Console

    from cryoweave.api import Job
    from cryoweave.model.records import Event

FOLLOW_POLL_S = 0.5


# ---------------------------------------------------------------------------------------- log
def event_line(event: Event, project_dir: Path) -> str:
    """One event as rich markup: time, level, text; progress as ``[done/total]``, an image as its path."""
    text = event.text
    progress = event.data.get("progress")
    if isinstance(progress, dict):
        text = f"[{progress.get('done')}/{progress.get('total')}] {text}"
    image = event.data.get("image")
    if isinstance(image, str):
        text = f"{text}: {project_dir / image}"
    line = escape(f"{when(event.time)}  {event.level:<7}  {text}")
    style = {"warning": "yellow", "error": "red"}.get(event.level)
    return f"[{style}]{line}[/{style}]" if style else line


def _print_event(out: Console, event: Event, project_dir: Path, log_text: str) -> None:
    out.print(event_line(event, project_dir), soft_wrap=True)
    trace = event.data.get("traceback")
    if isinstance(trace, str) and trace.strip() and trace.strip() not in log_text:  # a foreground run's
        out.print(escape("\n".join("    " + line for line in trace.rstrip().splitlines())), style="dim",
                  soft_wrap=True)


def _read_log(path: Path, offset: int, whole: bool) -> tuple[int, str]:
    """What ``job.log`` holds from ``offset``: whole lines only unless ``whole``; and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            if f.tell() < offset:  # rewritten (the job was cleared and ran again): from the start
                offset = 0
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset, ""
    if not whole:
        data = data[:data.rfind(b"\n") + 1]
    return offset + len(data), data.decode("utf-8", errors="replace")


def _follow(job: Job, out: Console, seen: int, offset: int, log_path: Path) -> None:
    """Print new events and job.log lines until the job is no longer queued or running."""
    project_dir = job.project.directory
    bar = task = None
    if sys.stdout.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=out)
        bar.start()
    try:
        while True:
            active = job.refresh().record.status.active  # read first: what it wrote before ending is printed below
            for event in job.events():
                if event.seq <= seen:
                    continue
                seen = event.seq
                progress = event.data.get("progress")
                if bar is not None and isinstance(progress, dict):
                    done, total = progress.get("done", 0), progress.get("total") or None
                    if task is None:
                        task = bar.add_task(escape(event.text), total=total, completed=done)
                    else:
                        bar.update(task, description=escape(event.text), total=total, completed=done)
                else:  # a traceback is in job.log too, printed below
                    out.print(event_line(event, project_dir), soft_wrap=True)
            offset, text = _read_log(log_path, offset, whole=not active)
            if text:
                out.out(text, end="", highlight=False)
            if not active:
                break
            time.sleep(FOLLOW_POLL_S)
    finally:
        if bar is not None:
            bar.stop()


@app.command()
def log(project: ProjectArg, job: JobArg,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events and job.log lines "
                                             "until the job is no longer queued or running.")] = False,
        as_json: AsJson = False) -> None:
    """Show a job's event log, then its job.log (what the job printed, and the scheduler's notes).

    Warnings are yellow and errors red; progress is shown as done/total, an image as its file's
    path. job.log holds the job's stdout and stderr while it ran on a lane.

    With --follow, new events and lines are printed as they come until the job ends; on a terminal
    the latest progress is shown as a bar.

    Example: cryoweave job log P1 J7 --follow
    """
    from cryoweave.errors import ParamError
    from cryoweave.run.submission import LOG_NAME

    if follow and as_json:
        raise ParamError("--follow prints as the job goes; leave out --json (or --follow)")
    with open_instance() as inst:
        j = inst.project(project).job(job)
        project_dir, log_path = j.project.directory, j.directory / LOG_NAME
        events = j.events()
        offset, text = _read_log(log_path, 0, whole=not follow)
        if as_json:
            listed = [{**e.model_dump(mode="json"), **({"image_path": str(project_dir / e.data["image"])}
                                                       if isinstance(e.data.get("image"), str) else {})}
                      for e in events]
            print_json({"project": j.project.uid, "job": j.uid, "status": j.record.status.value, "events": listed,
                        "job_log": str(log_path), "log": text})
            return
        out = console()
        print_heading("Events")
        for event in events:
            _print_event(out, event, project_dir, text)
        print_heading(f"job.log (stdout and stderr): {log_path}")
        if text:
            out.out(text, end="" if text.endswith("\n") or follow else "\n", highlight=False)
        elif not follow:
            out.print("(empty: the job has not run on a lane yet)")
        if not follow:
            return
        _follow(j, out, max((e.seq for e in events), default=0), offset, log_path)
        record = j.refresh().record
        ended = f"{j.project.uid} {j.uid}: {record.status.value}"
        if record.status.value in ("failed", "killed"):
            ended += f": {_failure(j)}"
        out.print(escape(ended), soft_wrap=True)
