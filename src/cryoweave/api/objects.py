"""The Python API: an instance, its projects, their workspaces and jobs.

>>> inst = Instance()                                          # doctest: +SKIP
>>> project = inst.create_project("Apoferritin", "/data/projects")
>>> job = project.create_job("import_particles", params={"psize_A": 0.83})
>>> job.set_param("psize_A", 0.85); job.status
'building'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryoweave.api.managing import JobData, ProjectData
from cryoweave.api.running import LaneMethods, RunMethods
from cryoweave.builder import edits, lifecycle, wiring
from cryoweave.builder.bindings import InputBinding, bind_inputs
from cryoweave.builder.context import read_input, read_output, store_lookup
from cryoweave.dataset import Dataset
from cryoweave.errors import CryoweaveError, NotFoundError, ParamError
from cryoweave.jobs import Registry, default_registry
from cryoweave.model.jobspec import JobTypeSpec
from cryoweave.model.records import Connection, Event, JobRecord, OutputGroup, WorkspaceRecord
from cryoweave.model.status import JobStatus
from cryoweave.run import actions
from cryoweave.settings import Settings
from cryoweave.spec import LoadableSlots
from cryoweave.store import ProjectInfo, Store, attach, detach
from cryoweave.store.transaction import JobSummary, parse_uid

if TYPE_CHECKING:
    from cryoweave.api.external import ExternalJob


class Instance(LaneMethods):
    """The installation: its database, its projects and the job types it knows.

    ``home`` and ``database_url`` default to ``$CRYOWEAVE_HOME`` (``~/.cryoweave``) and
    ``$CRYOWEAVE_DATABASE_URL`` (a SQLite file in the home).
    """

    def __init__(self, home: str | os.PathLike | None = None, database_url: str | None = None,
                 registry: Registry | None = None):
        self.settings = Settings.from_env(home=home, database_url=database_url)
        self.store = Store(self.settings)
        self.registry = registry or default_registry()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        projects = self.store.projects()
        return {"instance_id": self.store.instance_id, "home": str(self.settings.home),
                "database": self.settings.database_display, "projects": len(projects),
                "jobs": sum(p.jobs for p in projects), "job_types": [t.name for t in self.registry.types()],
                "job_packages": None if self.registry.packages is None else sorted(self.registry.packages)}

    def create_project(self, title: str, directory: str | os.PathLike, description: str = "") -> Project:
        """A new project in a folder named after its title, inside ``directory``."""
        return Project(self, self.store.create_project(title, directory, description).uid)

    def projects(self) -> list[Project]:
        return [Project(self, p.uid) for p in self.store.projects()]

    def project(self, uid: str) -> Project:
        return Project(self, self.store.get_project(uid).uid)

    def attach(self, directory: str | os.PathLike, *, take_over: bool = False, to: str | os.PathLike | None = None,
               allow_links: bool = False) -> Project:
        """Bring a project directory (copied, moved, or from another instance) into this instance.

        An archive (``.tar``, ``.tar.zst``, ``.tar.gz`` made by ``Project.archive(dest)``) is checked,
        extracted safely into a new folder inside ``to`` and attached writable; links in it that lead out
        of the project (to raw data) are refused unless ``allow_links``.
        """
        if to is not None:
            from cryoweave.manage.archive import attach_archive

            return Project(self, attach_archive(self.store, directory, to, allow_links=allow_links).uid)
        return Project(self, attach(self.store, directory, take_over=take_over).uid)

    def job_types(self) -> list[JobTypeSpec]:
        return [t.spec for t in self.registry.types()]

    def outputs_hook(self, type: str) -> edits.OutputsHook | None:
        """How a job type's outputs follow from its parameters, when they do (and it is installed)."""
        try:
            implementation = self.registry.get(type).implementation
        except CryoweaveError:
            return None
        hook = getattr(implementation, "outputs", None)
        return hook if callable(hook) else None

    def job_spec(self, type: str) -> JobTypeSpec:
        return self.registry.get(type).spec


class Project(ProjectData):
    def __init__(self, instance: Instance, uid: str):
        self.instance, self.uid = instance, uid
        self._store = instance.store

    def __repr__(self) -> str:
        return f"Project({self.uid!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Project) and other.uid == self.uid and other.instance is self.instance

    __hash__ = None  # type: ignore[assignment]

    def info(self) -> ProjectInfo:
        return self._store.get_project(self.uid)

    @property
    def title(self) -> str:
        return self.info().title

    @property
    def directory(self) -> Path:
        return self.info().directory

    @property
    def archived(self) -> bool:
        return self.info().archived

    def rename(self, title: str) -> None:
        self._store.update_project(self.uid, title=title)

    def set_description(self, description: str) -> None:
        self._store.update_project(self.uid, description=description)

    def detach(self) -> Path:
        """Release the project from this instance; its directory can then be attached anywhere."""
        return detach(self._store, self.uid)

    def delete(self) -> Path:
        """Remove the project from the instance and delete its directory with everything in it."""
        return self._store.forget_project(self.uid, delete_files=True)

    def create_workspace(self, title: str, description: str = "") -> Workspace:
        return Workspace(self, self._store.create_workspace(self.uid, title, description).uid)

    def workspaces(self) -> list[Workspace]:
        return [Workspace(self, w.uid) for w in self._store.workspaces(self.uid)]

    def workspace(self, uid: str) -> Workspace:
        number = parse_uid(uid, "W", "workspace")
        for w in self.workspaces():
            if w.uid == f"W{number}":
                return w
        raise NotFoundError(f"project {self.uid} has no workspace W{number}")

    def create_job(self, type: str, *, workspace: str | list[str] | None = None, title: str = "",
                   description: str = "", params: dict[str, Any] | None = None) -> Job:
        """A new job of a registered type, in a workspace (the project's only one by default)."""
        spec = self.instance.job_spec(type)
        chosen = [workspace] if isinstance(workspace, str) else workspace
        build = edits.new_job(spec, workspaces=chosen, title=title, description=description, params=params,
                              outputs=self.instance.outputs_hook(type))
        return Job(self, self._store.create_job(self.uid, build))

    def jobs(self, *, workspace: str | None = None, status: str | JobStatus | None = None,
             type: str | None = None) -> list[JobSummary]:
        """The project's jobs, in number order (summaries: ``job(uid)`` gives the whole job)."""
        return self._store.jobs(self.uid, workspace=workspace, status=None if status is None else str(status),
                                type=type)

    def job(self, uid: str) -> Job:
        record = self._store.get_job(self.uid, uid)
        if record.type == lifecycle.EXTERNAL:
            from cryoweave.api.external import ExternalJob

            return ExternalJob(self, record)
        return Job(self, record)

    def create_external_job(self, *, workspace: str | None = None, title: str = "",
                            description: str = "") -> ExternalJob:
        """A job whose inputs, outputs and results come from your script (see :class:`ExternalJob`)."""
        from cryoweave.api.external import ExternalJob

        build = edits.new_job(lifecycle.EXTERNAL_SPEC, workspaces=None if workspace is None else [workspace],
                              title=title, description=description)
        return ExternalJob(self, self._store.create_job(self.uid, build))


class Workspace:
    def __init__(self, project: Project, uid: str):
        self.project, self.uid = project, uid

    def __repr__(self) -> str:
        return f"Workspace({self.project.uid!r}, {self.uid!r})"

    def record(self) -> WorkspaceRecord:
        return next(w for w in self.project._store.workspaces(self.project.uid) if w.uid == self.uid)

    @property
    def title(self) -> str:
        return self.record().title

    def rename(self, title: str) -> None:
        self.project._store.update_workspace(self.project.uid, self.uid, title=title)

    def jobs(self) -> list[JobSummary]:
        return self.project.jobs(workspace=self.uid)

    def create_job(self, type: str, **kwargs: Any) -> Job:
        return self.project.create_job(type, workspace=self.uid, **kwargs)


class Job(RunMethods, JobData):
    """A job; its record is read when the object is made and after each change (``refresh()``)."""

    def __init__(self, project: Project, record: JobRecord):
        self.project, self.record = project, record
        self.uid = record.uid

    def __repr__(self) -> str:
        return f"Job({self.project.uid!r}, {self.uid!r}, type={self.record.type!r}, status={self.status!r})"

    def refresh(self) -> Job:
        self.record = self.project._store.get_job(self.project.uid, self.uid)
        return self

    def _edit(self, change: edits.Change) -> Job:
        self.record = self.project._store.edit_job(self.project.uid, self.uid, change)
        return self

    @property
    def type(self) -> str:
        return self.record.type

    @property
    def title(self) -> str:
        return self.record.title

    @property
    def status(self) -> str:
        """The current status (read afresh: another process may have changed it)."""
        return self.refresh().record.status.value

    @property
    def spec(self) -> JobTypeSpec:
        return self.record.spec

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter's value (set values, defaults for the rest)."""
        return self.record.param_values()

    @property
    def inputs(self) -> dict[str, list[Connection]]:
        return self.record.inputs

    @property
    def outputs(self) -> dict[str, OutputGroup]:
        return self.record.outputs

    @property
    def workspaces(self) -> list[str]:
        return self.record.workspaces

    @property
    def directory(self) -> Path:
        return self.project.directory / self.uid

    def set_param(self, name: str, value: Any) -> Job:
        return self.set_params({name: value})

    def set_params(self, values: dict[str, Any]) -> Job:
        """Set parameters; outputs that follow from them (``split_0`` …) are declared again."""
        return self._edit(edits.set_params(values, self.project.instance.outputs_hook(self.type)))

    def clear_param(self, name: str) -> Job:
        return self._edit(edits.clear_params([name], self.project.instance.outputs_hook(self.type)))

    def connect(self, input_name: str, source: str) -> Job:
        """Connect an output group (``"J5.particles"``) to one of this job's inputs; its results bind
        to the input's slots by name, then by type, and the rest pass through."""
        return self._edit(wiring.connect(input_name, source))

    def disconnect(self, input_name: str, index: int | None = None) -> Job:
        return self._edit(wiring.disconnect(input_name, index))

    def connect_result(self, input_name: str, index: int, slot: str, source: str) -> Job:
        """Bind one slot of one connection to a result of any job, at any version.

        >>> job.connect_result("particles", 0, "blob", "J3.particles.blob")   # doctest: +SKIP
        >>> job.connect_result("volume", 0, "map_half_B", "J9.volume.map_half_A.F")  # doctest: +SKIP
        """
        return self._edit(wiring.connect_result(input_name, index, slot, source))

    def clear_slot(self, input_name: str, index: int, slot: str) -> Job:
        """Leave an optional slot of a connection empty."""
        return self._edit(wiring.clear_slot(input_name, index, slot))

    def reset_slot(self, input_name: str, index: int, slot: str) -> Job:
        """Undo an override or a clear: the slot binds to its connection's group again."""
        return self._edit(wiring.reset_slot(input_name, index, slot))

    def input_bindings(self) -> list[InputBinding]:
        """Each input group: its connections, the result bound to every slot, passthroughs, what is unmet."""
        return bind_inputs(self.refresh().record, store_lookup(self.project._store, self.project.uid))

    def requirements(self) -> list[str]:
        """What keeps this job from being queued (empty when nothing does)."""
        return lifecycle.requirements(self.refresh().record, store_lookup(self.project._store, self.project.uid))

    def load_input(self, name: str, slots: LoadableSlots = "all") -> Dataset:
        """An input group as the job sees it: each connection's slots joined on uid, the groups appended."""
        return read_input(self.project._store, self.project.uid, self.refresh().record, name, slots=slots)

    def load_output(self, name: str, slots: LoadableSlots = "all", version: int | str = "F") -> Dataset:
        """One version of an output group as one dataset, its passthroughs joined in.

        ``slots``: ``"default"`` (results the job made), ``"passthrough"``, ``"all"`` or a list of names.
        """
        return read_output(self.project._store, self.project.uid, self.refresh().record, name, slots=slots,
                           version=version)

    def export_output(self, name: str, path: str | os.PathLike, version: int | str = "F", *,
                      overwrite: bool = False) -> Path:
        """Write an output group, passthroughs included, as one self-contained ``.cs`` file."""
        target = Path(path)
        if target.exists() and not overwrite:
            raise ParamError(f"{target} exists; choose another path or allow overwriting it")
        self.load_output(name, "all", version).save(target)
        return target

    def mark_completed(self) -> Job:
        return self._edit(edits.mark_completed())

    def clear(self, *, descendants: bool = False) -> Job:
        """Back to building: outputs and files removed, params and connections kept (``descendants`` too)."""
        actions.clear(self.project._store, self.project.uid, self.uid, descendants=descendants)
        return self.refresh()

    def add_to_workspace(self, workspace: str) -> Job:
        return self._edit(edits.set_workspaces(add=[workspace]))

    def remove_from_workspace(self, workspace: str) -> Job:
        return self._edit(edits.set_workspaces(remove=[workspace]))

    def rename(self, title: str) -> Job:
        return self._edit(edits.retitle(title=title))

    def relabel(self, *, title: str | None = None, description: str | None = None,
                tags: list[str] | None = None) -> Job:
        """Change the title, description or tags (labels for filtering), whatever the status."""
        return self._edit(edits.retitle(title=title, description=description, tags=tags))

    def events(self) -> list[Event]:
        return self.project._store.job_events(self.project.uid, self.uid)
