"""What a lane is given for one job: the worker command, and for cluster lanes the rendered script.

>>> print(job_script(store, lane, "P1", record, token="preview"))     # doctest: +SKIP
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from cryoweave.model.lanes import ClusterLane
from cryoweave.model.records import JobRecord
from cryoweave.run.cluster import render_script
from cryoweave.store import Store

SCRIPT_NAME = "queue_sub_script.sh"
LOG_NAME = "job.log"


def worker_command(store: Store, python: str, project: str, job: str, token: str) -> str:
    """The shell command that runs the worker of run ``token`` (the script's ``{{ run_cmd }}``)."""
    settings = store.settings
    parts = [python or "python3", "-m", "cryoweave.run.worker", "--project", project, "--job", job, "--token", token,
             "--home", str(settings.home)]
    if settings.database_url != f"sqlite:///{settings.home / 'cryoweave.db'}":
        parts += ["--database-url", settings.database_url]
    return shlex.join(parts)


def script_values(store: Store, lane: ClusterLane, project: str, project_dir: Path, record: JobRecord,
                  token: str) -> dict[str, Any]:
    """The built-in variables of the job script, for one job."""
    job_dir = project_dir / record.uid
    run_cmd = worker_command(store, lane.python, project, record.uid, token)
    return {"run_cmd": run_cmd, "num_cpu": record.spec.resources.cpu, "num_gpu": record.spec.resources.gpu,
            "ram_gb": record.spec.resources.ram_gb, "job_dir_abs": str(job_dir), "project_dir_abs": str(project_dir),
            "job_log_path_abs": str(job_dir / LOG_NAME), "project_uid": project, "job_uid": record.uid,
            "job_type": record.type, "job_title": record.title, "script_path_abs": str(job_dir / SCRIPT_NAME),
            "lane_name": lane.name, "worker_bin_path": lane.python or "python3",
            "run_args": shlex.join(shlex.split(run_cmd)[3:])}


def job_script(store: Store, lane: ClusterLane, project: str, project_dir: Path, record: JobRecord, token: str,
               custom: dict[str, str] | None = None) -> str:
    """The exact script a cluster lane submits for this job."""
    chosen = dict(record.run.custom_vars) if record.run else {}
    chosen.update(custom or {})
    return render_script(lane, script_values(store, lane, project, project_dir, record, token), chosen)
