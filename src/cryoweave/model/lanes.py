"""Lanes: where queued jobs run. A *local* lane runs workers as processes of this machine, within
the CPUs, GPUs and memory it is given; a *cluster* lane submits a job script to a batch system
(SLURM, PBS …) through command templates, as CryoSPARC's cluster lanes do.

>>> LocalLane(name="local", cpu=8, gpus=[0, 1], ram_gb=64).describe()
'8 CPU, GPUs 0,1, 64 GB RAM'
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

DEFAULT_SUBMIT = "sbatch --parsable {{ script_path_abs }}"
DEFAULT_STATUS = "squeue -h --states=all -j {{ cluster_job_id }} -o %T"
DEFAULT_CANCEL = "scancel {{ cluster_job_id }}"
DEFAULT_INFO = "sinfo"


class _Lane(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = ""
    description: str = ""
    created_at: dt.datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"lane name {value!r} must be letters, digits, '_', '.' or '-' (at most 64)")
        return value


class LocalLane(_Lane):
    """Workers on this machine; the lane never gives out more than it has."""

    kind: Literal["local"] = "local"
    cpu: int = Field(ge=1)
    gpus: list[int] = Field(default_factory=list, description="the GPU device numbers jobs may be given")
    ram_gb: float = Field(gt=0)

    def describe(self) -> str:
        gpus = f"GPUs {','.join(map(str, self.gpus))}" if self.gpus else "no GPU"
        return f"{self.cpu} CPU, {gpus}, {self.ram_gb:g} GB RAM"


class ClusterLane(_Lane):
    """A batch system: a Jinja2 job script and the commands that submit, poll, cancel and describe jobs."""

    kind: Literal["cluster"] = "cluster"
    script_tpl: str
    submit_cmd_tpl: str = DEFAULT_SUBMIT
    status_cmd_tpl: str = DEFAULT_STATUS
    cancel_cmd_tpl: str = DEFAULT_CANCEL
    info_cmd_tpl: str = DEFAULT_INFO
    send_cmd_tpl: str = Field("{{ command }}", description="wraps every command, e.g. ssh login-node {{ command }}")
    custom_vars: dict[str, str] = Field(default_factory=dict, description="values of the script's own variables")
    python: str = Field("", description="the Python with cryoweave installed, as the nodes see it")

    def describe(self) -> str:
        return f"cluster: {self.submit_cmd_tpl.split()[0] if self.submit_cmd_tpl.split() else '?'}"


Lane = Annotated[LocalLane | ClusterLane, Field(discriminator="kind")]
LANE = TypeAdapter(Lane)
