"""The instance's lanes: the built-in ``local`` lane and those an admin adds.

Until an admin configures it, the ``local`` lane has every CPU, GPU and the memory of this
machine (GPUs as ``nvidia-smi -L`` lists them). A cluster lane is added from a folder holding
CryoSPARC's two files: ``cluster_info.json`` (name and command templates) and
``cluster_script.sh`` (the Jinja2 job script); CryoSPARC's key names are read as they are.

>>> lane = read_cluster_dir("examples/lanes/slurm")    # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from cryoweave.errors import NotFoundError, ParamError
from cryoweave.model.lanes import ClusterLane, LocalLane
from cryoweave.run.cluster import check_lane
from cryoweave.store import Store
from cryoweave.store import queue as tables

LOCAL = "local"

# CryoSPARC's cluster_info.json keys, and ours.
_RENAMED = {"qsub_cmd_tpl": "submit_cmd_tpl", "qstat_cmd_tpl": "status_cmd_tpl", "qdel_cmd_tpl": "cancel_cmd_tpl",
            "qinfo_cmd_tpl": "info_cmd_tpl", "desc": "description"}
_IGNORED = {"worker_bin_path", "cache_path", "cache_reserve_mb", "cache_quota_mb", "transfer_cmd_tpl",
            "hostname", "lane", "type", "tpl_vars", "custom_var_names"}
_OURS = {"name", "title", "description", "submit_cmd_tpl", "status_cmd_tpl", "cancel_cmd_tpl", "info_cmd_tpl",
         "send_cmd_tpl", "custom_vars", "python"}


def detect_gpus() -> list[int]:
    """The NVIDIA GPUs of this machine (none when ``nvidia-smi`` is missing or fails)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [n for n, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def detect_local() -> LocalLane:
    """This machine as a lane: all its CPUs, GPUs and memory."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        ram = 8.0
    return LocalLane(name=LOCAL, title="This machine", cpu=os.cpu_count() or 1, gpus=detect_gpus(),
                     ram_gb=round(ram, 1))


def all_lanes(store: Store) -> list[LocalLane | ClusterLane]:
    """The configured lanes, with the detected ``local`` lane first when none of that name is configured."""
    configured = tables.list_lanes(store)
    if not any(lane.name == LOCAL for lane in configured):
        configured.insert(0, detect_local())
    return configured


def get_lane(store: Store, name: str) -> LocalLane | ClusterLane:
    lane = tables.get_lane(store, name)
    if lane is None and name == LOCAL:
        return detect_local()
    if lane is None:
        known = ", ".join(lane.name for lane in all_lanes(store))
        raise NotFoundError(f"there is no lane named {name!r} (lanes: {known}; cryoweave lane list shows them)")
    return lane


def read_cluster_dir(directory: str | os.PathLike, name: str | None = None) -> ClusterLane:
    """A cluster lane from ``cluster_info.json`` and ``cluster_script.sh`` in ``directory``."""
    folder = Path(directory)
    info_path, script_path = folder / "cluster_info.json", folder / "cluster_script.sh"
    for path in (info_path, script_path):
        if not path.is_file():
            raise ParamError(f"{path} is missing: a cluster lane folder holds cluster_info.json and "
                             "cluster_script.sh (see examples/lanes/slurm)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParamError(f"{info_path} is not readable JSON: {err}") from None
    if not isinstance(info, dict):
        raise ParamError(f"{info_path} must hold a JSON object with the lane's name and command templates")
    values = {}
    for key, value in info.items():
        if key in _IGNORED:
            continue
        ours = _RENAMED.get(key, key)
        if ours not in _OURS:
            raise ParamError(f"{info_path}: unknown key {key!r}; the keys are {', '.join(sorted(_OURS))} "
                             f"(CryoSPARC's {', '.join(sorted(_RENAMED))} are read too)")
        values[ours] = value
    if name:
        values["name"] = name
    if "name" not in values:
        raise ParamError(f"{info_path} names no lane: add \"name\": \"my-cluster\"")
    values.setdefault("python", sys.executable)
    try:
        lane = ClusterLane(script_tpl=script_path.read_text(encoding="utf-8"), **values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ParamError(f"{info_path}: {where}: {first['msg']}") from None
    check_lane(lane)
    return lane
