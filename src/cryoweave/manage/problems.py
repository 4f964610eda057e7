"""What the integrity check of a project finds: problems (kind, where, what, how to fix) and the report.

A problem is an **error** when something the project records cannot be used as it is (a missing
``.cs``, a job.json that does not parse, a particle stack that is gone) and a **warning** when only a
secondary reference is broken (a ``location/micrograph_path`` whose micrograph is not there: loading
the particles works, re-extracting them would not). A project is *clean* when no error remains.

>>> p = Problem(ProblemKind.CSG, "J3.particles", "J3/J3_particles.csg is missing", "rewritten from the record")
>>> p.to_dict()["kind"], p.repairable
('csg', False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryoweave.store import ProjectTx


class ProblemKind(StrEnum):
    """What is broken: a record file, the database's agreement with the directory, a connection, an
    event's image, an output's ``.cs`` or ``.csg``, a passthrough, a data file named in a table, a link."""

    RECORD = "record"
    DATABASE = "database"
    CONNECTION = "connection"
    IMAGE = "image"
    METAFILE = "metafile"
    CSG = "csg"
    PASSTHROUGH = "passthrough"
    DATA_PATH = "data_path"
    LINK = "link"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


Repair = Callable[["ProjectTx"], None]
"""Fixes one problem inside a write transaction of its project (from what the database holds)."""


@dataclass
class Problem:
    """One thing found broken: its kind, where (``J3.particles``, ``J1/imported``), what is wrong, what
    to do (or what the repair does), and whether it was repaired."""

    kind: ProblemKind
    where: str
    detail: str
    fix: str
    repaired: bool = False
    severity: Severity = Severity.ERROR
    repair_with: Repair | None = field(default=None, repr=False, compare=False)

    @property
    def repairable(self) -> bool:
        """Whether ``check --repair`` fixes it (from the database's records, without guessing)."""
        return self.repair_with is not None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "severity": self.severity.value, "where": self.where,
                "detail": self.detail, "fix": self.fix, "repairable": self.repairable, "repaired": self.repaired}


@dataclass
class CheckReport:
    """Everything a check found in a project, and how much it looked at (``checked``: counts by thing)."""

    project: str
    directory: Path
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    repair: bool = False

    @property
    def remaining(self) -> list[Problem]:
        """The problems not repaired."""
        return [p for p in self.problems if not p.repaired]

    @property
    def errors(self) -> list[Problem]:
        """The remaining problems that are errors (not warnings)."""
        return [p for p in self.remaining if p.severity is Severity.ERROR]

    @property
    def clean(self) -> bool:
        """No error remains (warnings may)."""
        return not self.errors

    def summary(self) -> str:
        """One line: what was checked, how many problems, repaired, remaining."""
        looked = ", ".join(f"{n:,} {what}" for what, n in self.checked.items()) or "nothing"
        head = f"{self.project}: checked {looked} in {self.seconds:.1f} s"
        if not self.problems:
            return f"{head}: clean"
        repaired = sum(p.repaired for p in self.problems)
        warnings = len(self.remaining) - len(self.errors)
        parts = [f"{len(self.problems)} problem(s)"]
        if repaired:
            parts.append(f"{repaired} repaired")
        if self.errors:
            parts.append(f"{len(self.errors)} error(s) remain")
        if warnings:
            parts.append(f"{warnings} warning(s) remain")
        fixable = sum(p.repairable and not p.repaired for p in self.problems)
        tail = f"; {fixable} can be repaired with --repair" if fixable else ""
        return f"{head}: {', '.join(parts)}{tail}" + ("" if self.errors else " (clean)")

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "directory": str(self.directory), "clean": self.clean,
                "repair": self.repair, "seconds": round(self.seconds, 3), "checked": dict(self.checked),
                "problems": [p.to_dict() for p in self.problems]}
