"""The Python face of cryoweave: ``Instance``, ``Project``, ``Workspace``, ``Job``."""

from cryoweave.api.objects import Instance, Job, Project, Workspace

__all__ = ["Instance", "Job", "Project", "Workspace"]
