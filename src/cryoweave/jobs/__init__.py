"""Layer 7: job types. Each is declared as data (a :class:`~cryoweave.model.JobTypeSpec`) and
registered through the ``cryoweave.jobs`` entry point group, so labs can ship their own."""

from cryoweave.jobs.registry import ENTRY_POINT_GROUP, JobType, Registry, default_registry

__all__ = ["ENTRY_POINT_GROUP", "JobType", "Registry", "default_registry"]
