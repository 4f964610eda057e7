"""Local lanes: slots of CPU, GPU and memory, and worker processes of this machine.

Workers are forked by a *launcher*, a process that imported cryoweave and the installed job
types once and opened no database connection, so a new worker starts in milliseconds rather
than the second a fresh Python takes. Each worker leads its own session (its process group is
what a kill stops), writes stdout and stderr to the job's ``job.log``, and outlives the
scheduler that launched it. GPU jobs get ``CUDA_VISIBLE_DEVICES`` set to the GPUs reserved for
them (empty for jobs given none, so they cannot take a GPU by accident).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryoweave.errors import ParamError, StoreError
from cryoweave.model.jobspec import ResourceSpec
from cryoweave.model.lanes import LocalLane
from cryoweave.model.status import JobStatus
from cryoweave.settings import Settings
from cryoweave.store.queue import ActiveJob


@dataclass
class Free:
    """What a local lane has left: CPUs, the GPU numbers not in use, memory."""

    cpu: int
    gpus: list[int]
    ram_gb: float

    def fits(self, need: ResourceSpec) -> bool:
        return need.cpu <= self.cpu and need.gpu <= len(self.gpus) and need.ram_gb <= self.ram_gb + 1e-9

    def take(self, need: ResourceSpec) -> dict:
        given = {"cpu": need.cpu, "gpus": self.gpus[:need.gpu], "ram_gb": need.ram_gb}
        self.cpu -= need.cpu
        self.gpus = self.gpus[need.gpu:]
        self.ram_gb -= need.ram_gb
        return given


def free(lane: LocalLane, active: list[ActiveJob]) -> Free:
    """The lane's resources less those of its launched and running jobs."""
    left = Free(lane.cpu, list(lane.gpus), lane.ram_gb)
    for job in active:
        run = job.record.run
        if job.status == JobStatus.QUEUED or run is None or run.lane != lane.name:
            continue
        left.cpu -= run.cpu
        left.gpus = [g for g in left.gpus if g not in run.gpus]
        left.ram_gb -= run.ram_gb
    return left


def check_fits(lane: LocalLane, need: ResourceSpec, job: str, job_type: str) -> None:
    """Refuse a job that needs more than the whole lane has: it could never start."""
    over = [f"{n} {what} but lane {lane.name!r} has {have}" for n, have, what in
            ((need.cpu, lane.cpu, "CPUs"), (need.gpu, len(lane.gpus), "GPUs"), (need.ram_gb, lane.ram_gb, "GB RAM"))
            if n > have]
    if over:
        raise ParamError(f"job {job} ({job_type}) needs " + "; ".join(over) + ": queue it to a lane that has "
                         "them (cryoweave lane list)")


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is still there (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def signal_worker(pid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal a worker and its children (its process group, when it leads one); False when it is gone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_worker(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the worker is still there after ``grace_s``."""
    if not signal_worker(pid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.05)
    signal_worker(pid, signal.SIGKILL)


class Launcher:
    """A warm process that forks workers on request (see the module's notes)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, CRYOWEAVE_HOME=str(self.settings.home),
                   CRYOWEAVE_DATABASE_URL=self.settings.database_url)
        return subprocess.Popen([sys.executable, "-m", "cryoweave.run.launcher"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=None, text=True, env=env, start_new_session=True)

    def launch(self, project: str, job: str, token: str, log_path: Path, gpus: list[int]) -> int:
        """Fork a worker for run ``token``; returns its pid."""
        request = json.dumps({"project": project, "job": job, "token": token, "log": str(log_path),
                              "cuda": ",".join(map(str, gpus))})
        for _ in range(2):  # a launcher that died is started again once
            if self.process is None or self.process.poll() is not None:
                self.process = self._start()
            try:
                self.process.stdin.write(request + "\n")
                self.process.stdin.flush()
                answer = self.process.stdout.readline()
            except (BrokenPipeError, OSError):
                answer = ""
            if answer:
                try:
                    reply = json.loads(answer)
                except ValueError:
                    reply = {"error": f"the launcher answered {answer.strip()[:200]!r}"}
                if "error" in reply:
                    raise StoreError(f"cannot start a worker for {project} {job}: {reply['error']}")
                return int(reply["pid"])
            self.close()
        raise StoreError(f"cannot start a worker for {project} {job}: the launcher process keeps exiting "
                         "(python -m cryoweave.run.launcher shows why)")

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
