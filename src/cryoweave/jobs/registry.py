"""The job types this installation knows, from the ``cryoweave.jobs`` entry point group.

A lab ships job types as a pip package that declares, in its ``pyproject.toml``::

    [project.entry-points."cryoweave.jobs"]
    subset_particles = "mylab_jobs.subset:JOB"

where ``JOB`` is a :class:`~cryoweave.model.JobTypeSpec`, the same data as a dict, or any
object (a class, a module) with a ``spec`` attribute holding one. The entry point's name must
be the job type's ``type``. A plugin that fails to import or declares an invalid spec is
listed as broken, with the reason, and the others still load. An instance may load only some
installed packages (``CRYOWEAVE_JOB_PACKAGES``, see :mod:`cryoweave.settings`); cryoweave's own
job library (:mod:`cryoweave.jobs.library`) is always loaded, and a plugin may not reuse its names.

>>> registry = Registry()
>>> registry.register({"type": "noop", "title": "Do nothing"}).spec.title
'Do nothing'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from cryoweave.errors import CryoweaveError, JobTypeError, NotFoundError
from cryoweave.model.jobspec import JobTypeSpec
from cryoweave.settings import Settings, package_name

ENTRY_POINT_GROUP = "cryoweave.jobs"
BUILT_IN = "cryoweave (built in)"


@dataclass(frozen=True)
class JobType:
    """A registered job type: its spec, where it came from, and the object behind it."""

    spec: JobTypeSpec
    source: str
    implementation: Any = None

    @property
    def name(self) -> str:
        return self.spec.type


class Registry:
    """Job types by name. ``packages`` limits the plugins loaded to those distributions."""

    def __init__(self, packages: Iterable[str] | None = None) -> None:
        self.packages = None if packages is None else frozenset(package_name(p) for p in packages)
        self._types: dict[str, JobType] = {}
        self.broken: dict[str, str] = {}
        self._loaded = False
        from cryoweave.jobs.library import library_jobs

        for job in library_jobs():
            self.register(job, BUILT_IN)

    def register(self, declaration: Any, source: str = "registered in Python") -> JobType:
        """Add a job type from a spec, a dict, or an object with a ``spec`` attribute."""
        spec_data = getattr(declaration, "spec", declaration)
        spec = JobTypeSpec.parse(spec_data, source)
        if spec.type in self._types and self._types[spec.type].source != source:
            raise JobTypeError(f"job type {spec.type!r} from {source} is already provided by "
                               f"{self._types[spec.type].source}")
        job_type = JobType(spec=spec, source=source, implementation=declaration)
        self._types[spec.type] = job_type
        return job_type

    def load_entry_points(self) -> None:
        """Load every installed plugin's job types (once); cryoweave's own are there from the start."""
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if self.packages is not None and (ep.dist is None or package_name(ep.dist.name) not in self.packages):
                continue
            source = f"{ep.dist.name if ep.dist else '?'} ({ep.value})"
            if ep.name in self._types and self._types[ep.name].source == BUILT_IN:
                self.broken[f"{ep.name} ({source})"] = (
                    f"{source} declares job type {ep.name!r}, which is built into cryoweave; a plugin cannot "
                    "replace a built-in job type: give the lab's job type a name of its own")
                continue
            try:
                job_type = self.register(ep.load(), source)
            except CryoweaveError as err:
                self.broken[ep.name] = str(err)
                continue
            except Exception as err:  # a plugin's own import error: report it, keep the others
                self.broken[ep.name] = f"{source} cannot be loaded: {type(err).__name__}: {err}"
                continue
            if job_type.spec.type != ep.name:
                del self._types[job_type.spec.type]
                self.broken[ep.name] = (f"{source}: entry point {ep.name!r} declares job type "
                                        f"{job_type.spec.type!r}; the two names must be the same")

    def types(self) -> list[JobType]:
        self.load_entry_points()
        return [self._types[name] for name in sorted(self._types)]

    def get(self, name: str) -> JobType:
        self.load_entry_points()
        if name in self._types:
            return self._types[name]
        if name in self.broken:
            raise JobTypeError(f"job type {name!r} is installed but broken: {self.broken[name]}")
        close = difflib.get_close_matches(name, list(self._types), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise NotFoundError(f"there is no job type {name!r}{hint}; `cryoweave job types` lists the "
                            f"{len(self._types)} installed")


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry of installed job types (those ``CRYOWEAVE_JOB_PACKAGES`` allows)."""
    global _default
    if _default is None:
        _default = Registry(Settings.from_env().job_packages)
    return _default
