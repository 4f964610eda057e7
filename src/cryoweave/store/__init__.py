"""Layer 5: persistence: the instance database and the self-contained project directories."""

from cryoweave.store.attach import attach, detach, read_project_files
from cryoweave.store.directory import ProjectDirectory
from cryoweave.store.store import Store
from cryoweave.store.transaction import JobSummary, ProjectInfo, ProjectTx

__all__ = ["JobSummary", "ProjectDirectory", "ProjectInfo", "ProjectTx", "Store", "attach", "detach",
           "read_project_files"]
