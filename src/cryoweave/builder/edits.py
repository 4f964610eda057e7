"""Building a job: creating its record, setting parameters, connecting inputs, changing status.

Each edit is a function ``change(tx, record) -> event text`` that the store runs with the
project locked (:meth:`cryoweave.store.Store.edit_job`), so checks see the latest state and two
writers never lose each other's updates. Only the parts of connecting that exist before any
job runs are here; connecting inputs is in :mod:`cryoweave.builder.wiring`, the status changes
of a run (queue, start, stop) in :mod:`cryoweave.builder.lifecycle`.

>>> change = set_params({"fraction": 0.25})  # doctest: +SKIP
>>> store.edit_job("P1", "J3", change)       # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from cryoweave.errors import ParamError, StatusError
from cryoweave.model.jobspec import JobTypeSpec
from cryoweave.model.records import JobRecord, utc_now
from cryoweave.model.status import JobStatus, check_transition
from cryoweave.store.transaction import ProjectTx, parse_uid

Change = Callable[[ProjectTx, JobRecord], str | None]

KEEP_WHEN_CLEARED = {"job.json", "events.jsonl"}


OutputsHook = Callable[[dict[str, Any]], list[dict[str, Any]]]
"""A job type's outputs as they follow from its parameters (e.g. ``split_0`` … ``split_<n-1>``)."""


def new_job(spec: JobTypeSpec, *, workspaces: list[str] | None, title: str = "", description: str = "",
            params: dict[str, Any] | None = None, outputs: OutputsHook | None = None,
            ) -> Callable[[ProjectTx, str], JobRecord]:
    """The builder of a new job's record, for :meth:`Store.create_job`."""
    values = spec.coerce_params(params or {})
    if outputs is not None:
        spec = spec.with_outputs(outputs(spec.defaults() | values))

    def build(tx: ProjectTx, uid: str) -> JobRecord:
        chosen = workspaces
        if not chosen:  # the project's only workspace, or a first one made for it
            existing = tx.workspaces()
            if len(existing) > 1:
                raise ParamError(f"project {tx.uid} has several workspaces ({', '.join(w.uid for w in existing)}); "
                                 "say which the job goes in")
            chosen = [existing[0].uid if existing else tx.create_workspace("Default workspace").uid]
        chosen = list(dict.fromkeys(f"W{parse_uid(w, 'W', 'workspace')}" for w in chosen))
        tx.workspace_ids(chosen)  # they must exist
        now = utc_now()
        return JobRecord(uid=uid, type=spec.type, title=title or spec.title, description=description,
                         workspaces=chosen, status=JobStatus.BUILDING, params=values,
                         status_times={JobStatus.BUILDING: now}, created_at=now, updated_at=now, spec=spec)

    return build


def editable(record: JobRecord, what: str) -> None:
    if not record.status.editable:
        raise StatusError(f"job {record.uid} is {record.status.value}; {what} can change only while it is "
                          "building (clear the job first)")


def set_params(values: dict[str, Any], outputs: OutputsHook | None = None) -> Change:
    """Set parameters (``None`` clears one back to its default); ``outputs`` redeclares the outputs
    that follow from them."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        editable(record, "its parameters")
        parts = []
        for name, value in values.items():
            spec = record.spec.param(name)
            if value is None:
                record.params.pop(name, None)
                parts.append(f"{name} cleared (default {spec.default!r})")
            else:
                record.params[name] = spec.coerce(value)
                parts.append(f"{name} = {record.params[name]!r}")
        if outputs is not None:
            before = [o.name for o in record.spec.outputs]
            record.spec = record.spec.with_outputs(outputs(record.param_values()))
            after = [o.name for o in record.spec.outputs]
            if after != before:
                parts.append(f"outputs now {', '.join(after) or 'none'}")
        return "parameters: " + ", ".join(parts)
    return change


def clear_params(names: list[str], outputs: OutputsHook | None = None) -> Change:
    return set_params(dict.fromkeys(names), outputs)


def transition(new: JobStatus, note: str = "") -> Change:
    """Move a job to another status, as the lifecycle allows; the time of each status is kept."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        old = record.status
        check_transition(record.uid, old, new)
        record.status = new
        record.status_times[new] = utc_now()
        return f"status {old.value} → {new.value}" + (f": {note}" if note else "")
    return change


def mark_completed() -> Change:
    """Accept a killed or failed job's outputs as they are."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        if record.status not in (JobStatus.KILLED, JobStatus.FAILED):
            raise StatusError(f"job {record.uid} is {record.status.value}; only killed or failed jobs can be "
                              "marked completed")
        return transition(JobStatus.COMPLETED, "marked completed")(tx, record)
    return change


def set_final(final: bool = True) -> Change:
    """Mark a completed job final (its results are the ones to keep), or unmark it.

    Data cleanup keeps final jobs and every job they depend on; a final job cannot be cleared.
    """
    def change(tx: ProjectTx, record: JobRecord) -> str:
        if final and record.status != JobStatus.COMPLETED:
            raise StatusError(f"job {record.uid} is {record.status.value}; only a completed job can be marked final")
        record.final = final
        return "marked final" if final else "no longer marked final"
    return change


def clear() -> Change:
    """Back to building: outputs and the files the job made are removed; params and inputs kept."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        if record.status == JobStatus.BUILDING:
            raise StatusError(f"job {record.uid} is already building; there is nothing to clear")
        if record.final:
            raise StatusError(f"job {record.uid} is marked final; unmark it before clearing it "
                              f"(cryoweave job mark-final {tx.uid} {record.uid} --unset)")
        check_transition(record.uid, record.status, JobStatus.BUILDING)
        old = record.status
        folder = tx.directory.path / record.uid
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.name in KEEP_WHEN_CLEARED:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        record.outputs = {}
        record.spec = record.spec.without_run_outputs()
        record.status = JobStatus.BUILDING
        record.status_times = {JobStatus.BUILDING: utc_now()}
        return f"cleared (was {old.value})"
    return change


def set_workspaces(add: list[str] = (), remove: list[str] = ()) -> Change:
    """Put a job in more workspaces, or take it out of some (it stays in at least one)."""
    def change(tx: ProjectTx, record: JobRecord) -> str:
        add_uids = [f"W{parse_uid(w, 'W', 'workspace')}" for w in add]
        remove_uids = {f"W{parse_uid(w, 'W', 'workspace')}" for w in remove}
        tx.workspace_ids(add_uids)
        chosen = [w for w in dict.fromkeys([*record.workspaces, *add_uids]) if w not in remove_uids]
        if not chosen:
            raise ParamError(f"job {record.uid} must stay in at least one workspace")
        record.workspaces = chosen
        return "workspaces: " + ", ".join(chosen)
    return change


def retitle(title: str | None = None, description: str | None = None, tags: list[str] | None = None) -> Change:
    """Change a job's labels (title, description, tags), whatever its status."""
    if tags is not None:
        tags = sorted({t.strip() for t in tags if t.strip()})
        if any(len(t) > 64 for t in tags):
            raise ParamError("a tag has at most 64 characters")

    def change(tx: ProjectTx, record: JobRecord) -> str:
        if title is not None:
            record.title = title
        if description is not None:
            record.description = description
        if tags is not None:
            record.tags = tags
        return "labels changed"
    return change
