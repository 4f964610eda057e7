"""cryoweave's own job types: imports, particle/exposure/volume utilities, export to RELION.

Each module declares its job types as :class:`~cryoweave.jobs.library.common.LibraryJob`
objects (a spec as plain data, and a ``run(ctx)`` function) in a ``JOBS`` list. The registry
loads them before any plugin, whatever ``CRYOWEAVE_JOB_PACKAGES`` says; their names are
CryoSPARC's where CryoSPARC has the job.
"""

from __future__ import annotations

from importlib import import_module

from cryoweave.jobs.library.common import LibraryJob

MODULES = ("imports", "particles_io", "result_group", "sets", "curation", "images", "symmetry", "volumes",
           "validation", "phantom", "simulation", "reconstruction")


def library_jobs() -> list[LibraryJob]:
    """Every built-in job type, module by module."""
    jobs: list[LibraryJob] = []
    for name in MODULES:
        jobs.extend(import_module(f"{__name__}.{name}").JOBS)
    return jobs
