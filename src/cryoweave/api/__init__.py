"""The Python face of cryoweave: ``Instance``, ``Project``, ``Workspace``, ``Job``, ``ExternalJob``."""

from cryoweave.api.external import ExternalJob
from cryoweave.api.objects import Instance, Job, Project, Workspace

__all__ = ["ExternalJob", "Instance", "Job", "Project", "Workspace"]
