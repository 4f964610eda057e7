"""Running jobs from Python: lanes of an instance, and queue/wait/kill/restart/clone of a job.

>>> job.queue(lane="local").wait(timeout=600).status        # doctest: +SKIP
'completed'
>>> inst.add_cluster_lane("examples/lanes/slurm")           # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import ValidationError

from cryoweave.errors import ParamError
from cryoweave.model.lanes import ClusterLane, LocalLane
from cryoweave.run import actions, run_job
from cryoweave.run.lanes import all_lanes, get_lane, read_cluster_dir
from cryoweave.run.scheduler import Scheduler
from cryoweave.store import queue as queue_tables

if TYPE_CHECKING:
    from cryoweave.api.objects import Job, Project
    from cryoweave.jobs import Registry
    from cryoweave.model.records import JobRecord
    from cryoweave.store import Store


class LaneMethods:
    """The lanes of an :class:`~cryoweave.api.objects.Instance`."""

    store: Store
    registry: Registry

    def lanes(self) -> list[LocalLane | ClusterLane]:
        """The lanes jobs can be queued to (``local``, this machine, is always there)."""
        return all_lanes(self.store)

    def lane(self, name: str) -> LocalLane | ClusterLane:
        return get_lane(self.store, name)

    def add_cluster_lane(self, directory: str | os.PathLike, *, name: str | None = None,
                         replace: bool = False) -> ClusterLane:
        """A cluster lane from a folder with ``cluster_info.json`` and ``cluster_script.sh``."""
        return queue_tables.save_lane(self.store, read_cluster_dir(directory, name), replace=replace)

    def add_local_lane(self, name: str, *, cpu: int, ram_gb: float, gpus: list[int] | None = None,
                       title: str = "", replace: bool = False) -> LocalLane:
        """A lane of this machine limited to ``cpu`` CPUs, the GPUs numbered ``gpus`` and ``ram_gb`` memory."""
        try:
            lane = LocalLane(name=name, title=title, cpu=cpu, gpus=list(gpus or []), ram_gb=ram_gb)
        except ValidationError as err:
            raise ParamError(f"lane {name!r}: {err.errors()[0]['msg']}") from None
        return queue_tables.save_lane(self.store, lane, replace=replace)

    def remove_lane(self, name: str) -> None:
        queue_tables.remove_lane(self.store, name)

    def scheduler(self) -> Scheduler:
        """A scheduler for this instance: ``scheduler.run()`` starts and watches jobs until stopped."""
        return Scheduler(self.store)


class RunMethods:
    """Running a :class:`~cryoweave.api.objects.Job`."""

    project: Project
    uid: str
    record: JobRecord

    def queue(self, lane: str | None = None, *, priority: int = 0, cluster_vars: dict[str, str] | None = None
              ) -> Job:
        """Queue the job to a lane (``"local"`` by default; higher ``priority`` starts first).

        Refused, naming the input and why, while a requirement is unmet, or when the lane can never
        run it (more GPUs than it has, a job script that does not render). ``cluster_vars`` are the
        values of a cluster script's own variables, e.g. ``{"time_requested": "2:00:00"}``.
        """
        self.record = actions.queue(self.project._store, self.project.uid, self.uid, lane=lane, priority=priority,
                                    custom_vars=cluster_vars)
        return self

    def wait(self, timeout: float | None = None) -> Job:
        """Wait until the job has completed, failed or been killed (``TimeoutError`` after ``timeout`` s).

        While no other scheduler runs (no ``cryoweave scheduler``), this
        process schedules the instance's queued jobs as it waits.
        """
        self.record = actions.wait(self.project._store, self.project.uid,
                                   self.uid, timeout=timeout)
        return self

    def kill(self) -> Job:
        """Stop a queued or running job (its worker's process tree, or its cluster job): status killed."""
        self.record = actions.kill(self.project._store, self.project.uid, self.uid)
        return self

    def restart(self) -> Job:
        """Kill (if running), clear and queue again to the same lane."""
        self.record = actions.restart(self.project._store, self.project.uid, self.uid)
        return self

    def clone(self, *, workspace: str | None = None, title: str = "") -> Job:
        """A new building job with this one's type, parameters and connections."""
        return self.project.job(actions.clone(self.project._store, self.project.uid, self.uid, workspace=workspace,
                                              title=title).uid)

    def log(self) -> str:
        """The job's ``job.log``: its stdout and stderr while it ran (empty before it runs)."""
        path = actions.job_log(self.project._store, self.project.uid, self.uid)
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def execute(self) -> Job:
        """Run the job here, in the foreground, until it completes or fails."""
        self.record = run_job(self.project._store, self.project.instance.registry, self.project.uid, self.uid)
        return self
