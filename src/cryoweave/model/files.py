"""Record files: the JSON a project directory holds, each stamped with a kind and a schema version.

A file written by an older cryoweave is migrated step by step on reading (``MIGRATIONS``); one
written by a newer cryoweave is refused with a message saying so. Schema 1 is the first: no
older schema exists yet, so the chain is empty until a change to a record needs a step.

>>> raw = dump_record("project", {"uid": "P1"})
>>> json.loads(raw)["schema_version"] == SCHEMA_VERSION
True
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cryoweave.errors import RecordError
from cryoweave.model.jobspec import describe
from cryoweave.model.records import Event, JobRecord, ProjectRecord, WorkspaceRecord

SCHEMA_VERSION = 1
KINDS = ("project", "workspaces", "job", "events", "lock", "exported_job")

Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[str, dict[int, Migration]] = {kind: {} for kind in KINDS}
"""``MIGRATIONS[kind][n]`` turns a schema-``n`` document of that kind into schema ``n + 1``."""

M = TypeVar("M", bound=BaseModel)


def register_migration(kind: str, from_version: int) -> Callable[[Migration], Migration]:
    """Decorator declaring how a record kind changes from ``from_version`` to the next schema."""
    def register(step: Migration) -> Migration:
        MIGRATIONS[kind][from_version] = step
        return step
    return register


def dump_record(kind: str, body: BaseModel | dict[str, Any]) -> bytes:
    """A record file's bytes: ``{"kind", "schema_version", ...fields}``, sorted and indented."""
    fields = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    document = {"kind": kind, "schema_version": SCHEMA_VERSION, **fields}
    return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def parse_record(kind: str, raw: bytes | str, path: Path | str) -> dict[str, Any]:
    """The fields of a record file, migrated to the current schema (kind and version removed)."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: not valid JSON ({err}); the file is damaged") from None
    return upgrade(kind, document, path)


def upgrade(kind: str, document: Any, path: Path | str) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("kind") != kind:
        found = document.get("kind") if isinstance(document, dict) else type(document).__name__
        raise RecordError(f"{path}: expected a cryoweave {kind} record, found {found!r}")
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"{path}: schema_version {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{path}: written by a newer cryoweave (schema {version}; this one reads up to "
                          f"{SCHEMA_VERSION}); upgrade cryoweave to open it")
    fields = {k: v for k, v in document.items() if k not in ("kind", "schema_version")}
    for step in range(version, SCHEMA_VERSION):
        migrate = MIGRATIONS[kind].get(step)
        if migrate is None:
            raise RecordError(f"{path}: no migration of {kind} records from schema {step} to {step + 1}")
        fields = migrate(fields)
    return fields


def validate(model: type[M], fields: dict[str, Any], path: Path | str) -> M:
    """A record model from migrated fields, with one readable error naming the file."""
    try:
        return model.model_validate(fields)
    except ValidationError as err:
        raise RecordError(f"{path}: {describe(err)}") from None


def load_project(raw: bytes, path: Path | str) -> ProjectRecord:
    return validate(ProjectRecord, parse_record("project", raw, path), path)


def load_workspaces(raw: bytes, path: Path | str) -> list[WorkspaceRecord]:
    fields = parse_record("workspaces", raw, path)
    items = fields.get("workspaces")
    if not isinstance(items, list):
        raise RecordError(f"{path}: 'workspaces' must be a list")
    return [validate(WorkspaceRecord, item, path) for item in items]


def dump_workspaces(workspaces: list[WorkspaceRecord]) -> bytes:
    return dump_record("workspaces", {"workspaces": [w.model_dump(mode="json") for w in workspaces]})


def load_job(raw: bytes, path: Path | str) -> JobRecord:
    return validate(JobRecord, parse_record("job", raw, path), path)


def dump_event(event: Event) -> bytes:
    """One line of the event log."""
    return (json.dumps(event.model_dump(mode="json"), ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def dump_events(events: list[Event]) -> bytes:
    """The event log: a header line, then one JSON event per line."""
    header = json.dumps({"kind": "events", "schema_version": SCHEMA_VERSION}) + "\n"
    return header.encode("utf-8") + b"".join(dump_event(e) for e in events)


def load_events(raw: bytes, path: Path | str) -> list[Event]:
    """Events of a log; migrations see the whole log as ``{"events": [...]}``.

    A last line cut short (no newline: the writer died while appending, before its transaction
    committed) is not an event and is left out.
    """
    lines = raw.decode("utf-8", errors="replace").splitlines()
    if lines and not raw.endswith(b"\n"):
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
    if not lines:
        raise RecordError(f"{path}: empty event log (a header line is expected)")
    items = []
    for number, line in enumerate(lines, 1):
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}:{number}: not valid JSON ({err}); the file is damaged") from None
    header = items[0]
    if not isinstance(header, dict) or set(header) != {"kind", "schema_version"}:
        raise RecordError(f"{path}: the first line must be the header {{kind, schema_version}}")
    fields = upgrade("events", {**header, "events": items[1:]}, path)
    return [validate(Event, item, f"{path}:{number}") for number, item in enumerate(fields["events"], 2)]
