"""Layer 8: running jobs. For now, in the foreground in this process (:mod:`cryoweave.run.foreground`)."""

from cryoweave.run.foreground import run_job

__all__ = ["run_job"]
