"""Layer 8: running jobs: in the foreground, or queued to lanes (local workers, clusters) by the scheduler."""

from cryoweave.run.foreground import run_job

__all__ = ["run_job"]
