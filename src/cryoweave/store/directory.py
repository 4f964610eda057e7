"""A project directory: the record files that make it self-contained, and its lock file.

    <project>/project.json  workspaces.json  cryoweave.lock
    <project>/J<n>/job.json  J<n>/events.jsonl

Every file is replaced atomically (see :mod:`cryoweave.atomic`): a reader, or a process killed
mid-write, sees the old file or the new one, never a mix. All paths inside records are
relative to the project directory, so a copied or moved directory stays valid.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from cryoweave.atomic import atomic_write
from cryoweave.errors import RecordError
from cryoweave.model import files
from cryoweave.model.records import Event, JobRecord, ProjectRecord, WorkspaceRecord

LOCK_NAME = "cryoweave.lock"
_JOB_DIR = re.compile(r"^J([1-9][0-9]*)$")


@dataclass(frozen=True)
class Lock:
    """Who holds a project: an instance (by id), where it runs, since when."""

    instance_id: str
    hostname: str
    home: str
    database: str
    locked_at: str

    def describe(self) -> str:
        return (f"instance {self.instance_id[:12]} on {self.hostname} (home {self.home}, database "
                f"{self.database}) since {self.locked_at}")


TAIL_BYTES = 1 << 16
"""How much of an event log's end is read to find its last event before appending."""


class ProjectDirectory:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ProjectDirectory({str(self.path)!r})"

    # --------------------------------------------------------------------- writing
    def _write(self, relative: str, data: bytes) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, error=RecordError) as f:
            f.write(data)

    def write_project(self, record: ProjectRecord) -> None:
        self._write("project.json", files.dump_record("project", record))

    def write_workspaces(self, workspaces: list[WorkspaceRecord]) -> None:
        self._write("workspaces.json", files.dump_workspaces(workspaces))

    def write_job(self, record: JobRecord) -> None:
        self._write(f"{record.uid}/job.json", files.dump_record("job", record))

    def write_events(self, job: str, events: list[Event]) -> None:
        self._write(f"{job}/events.jsonl", files.dump_events(events))

    def append_event(self, job: str, event: Event) -> bool:
        """Add one event at the end of the log, when the log ends with the event before it.

        False (nothing written) otherwise: the caller rewrites the whole log. A write cut short
        leaves a last line without a newline, which readers skip and the next rewrite replaces.
        """
        path = self.path / job / "events.jsonl"
        try:
            with open(path, "rb+") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_BYTES))
                tail = f.read()
                lines = tail.split(b"\n")
                if not tail.endswith(b"\n") or len(lines) < 3:
                    return False
                last = json.loads(lines[-2])
                if not isinstance(last, dict) or last.get("seq") != event.seq - 1:
                    return False
                f.write(files.dump_event(event))
                f.flush()
                os.fsync(f.fileno())
        except (OSError, ValueError):
            return False
        return True

    def write_lock(self, instance_id: str, home: str, database: str) -> None:
        lock = {"instance_id": instance_id, "hostname": socket.gethostname(), "home": home,
                "database": database, "locked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        self._write(LOCK_NAME, files.dump_record("lock", lock))

    def remove_lock(self) -> None:
        (self.path / LOCK_NAME).unlink(missing_ok=True)

    # --------------------------------------------------------------------- reading
    def _read(self, relative: str) -> bytes:
        target = self.path / relative
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise RecordError(f"{target}: missing") from None
        except OSError as err:
            raise RecordError(f"{target}: cannot be read ({err.strerror or err})") from None

    def is_project(self) -> bool:
        return (self.path / "project.json").is_file()

    def read_project(self) -> ProjectRecord:
        return files.load_project(self._read("project.json"), self.path / "project.json")

    def read_workspaces(self) -> list[WorkspaceRecord]:
        if not (self.path / "workspaces.json").exists():
            return []
        return files.load_workspaces(self._read("workspaces.json"), self.path / "workspaces.json")

    def job_numbers(self) -> list[int]:
        """The jobs in the directory (``J<n>`` folders holding a job.json), in order."""
        numbers = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                match = _JOB_DIR.match(entry.name)
                if match and entry.is_dir() and os.path.isfile(os.path.join(entry.path, "job.json")):
                    numbers.append(int(match[1]))
        return sorted(numbers)

    def read_job(self, number: int) -> JobRecord:
        record = files.load_job(self._read(f"J{number}/job.json"), self.path / f"J{number}" / "job.json")
        if record.uid != f"J{number}":
            raise RecordError(f"{self.path / f'J{number}' / 'job.json'}: holds job {record.uid}, not J{number}")
        return record

    def read_events(self, number: int) -> list[Event]:
        path = self.path / f"J{number}" / "events.jsonl"
        if not path.exists():
            return []
        return files.load_events(self._read(f"J{number}/events.jsonl"), path)

    def read_lock(self) -> Lock | None:
        path = self.path / LOCK_NAME
        if not path.exists():
            return None
        fields = files.parse_record("lock", self._read(LOCK_NAME), path)
        try:
            return Lock(**{k: str(fields[k]) for k in ("instance_id", "hostname", "home", "database",
                                                       "locked_at")})
        except KeyError as err:
            raise RecordError(f"{path}: the lock file lacks {err}") from None


def slug(title: str) -> str:
    """A folder name from a project title: ``"Apoferritin (2024)"`` → ``apoferritin-2024``."""
    text = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()
    return text[:60] or "project"

