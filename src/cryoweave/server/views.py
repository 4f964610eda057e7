"""The JSON shapes of the API: a job as a card (listings) and in detail (the builder, the overview)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryoweave.api.objects import Job
from cryoweave.builder.bindings import InputBinding
from cryoweave.model.records import Event, JobRecord, OutputGroup, OutputResult
from cryoweave.model.status import JobStatus


def _time(value) -> str | None:
    return value.isoformat() if value is not None else None


def job_card(uid: str, doc: dict[str, Any], parents: list[str]) -> dict[str, Any]:
    """A job as cards, the tree and the table show it, from its record's JSON (no validation) and the
    jobs it takes inputs from."""
    return {"uid": uid, "type": doc["type"], "title": doc.get("title", ""), "status": doc["status"],
            "tags": doc.get("tags", []), "workspaces": doc.get("workspaces", []),
            "parents": parents,
            "final": doc.get("final", False), "created_at": doc["created_at"], "updated_at": doc["updated_at"],
            "category": doc.get("spec", {}).get("category", ""),
            "outputs": [{"name": g["name"], "type": g["type"], "num_items": g.get("num_items", 0),
                         "results": sorted(g.get("results", {}))}
                        for g in doc.get("outputs", {}).values()]}


def _result(uid: str, group: OutputGroup, result: OutputResult, directory: Path) -> dict[str, Any]:
    files = [s.metafile for s in result.sources] if result.passthrough else result.metafiles
    return {"name": result.name, "dtype": result.dtype, "passthrough": result.passthrough,
            "versions": list(result.versions), "num_items": list(result.num_items),
            "metafiles": list(result.metafiles), "paths_abs": [str(directory / f) for f in files],
            "sources": [s.model_dump() for s in result.sources],
            "address": f"{uid}.{group.name}.{result.name}"}


def output_group(uid: str, group: OutputGroup, directory: Path) -> dict[str, Any]:
    """An output group with its results, versions, files and item counts, from the record alone
    (``directory``: the project's, for the absolute paths)."""
    return {"name": group.name, "type": group.type.value, "title": group.title or group.name,
            "num_items": group.num_items, "versions": group.versions,
            "tables": [t.model_dump() for t in group.tables],
            "results": [_result(uid, group, r, directory) for r in group.results.values()],
            "csg": f"{uid}/{uid}_{group.name}.csg" if group.tables else None}


def output_groups(job: Job) -> list[dict[str, Any]]:
    """Every output group of a job, those declared but not saved yet shown empty."""
    directory = job.project.directory
    groups = [output_group(job.uid, g, directory) for g in job.outputs.values()]
    saved = {g["name"] for g in groups}
    groups += [{"name": spec.name, "type": spec.type.value, "title": spec.title or spec.name, "num_items": 0,
                "versions": [], "tables": [], "results": [], "csg": None}
               for spec in job.spec.outputs if spec.name not in saved]
    return groups


def _params(record: JobRecord) -> list[dict[str, Any]]:
    values = record.param_values()
    return [{"name": p.name, "title": p.title or p.name, "type": str(p.type), "value": values.get(p.name),
             "default": p.default, "set": p.name in record.params, "help": p.help, "choices": p.choices,
             "minimum": p.minimum, "maximum": p.maximum, "section": p.section, "advanced": p.advanced}
            for p in record.spec.params]


def _input(binding: InputBinding) -> dict[str, Any]:
    spec = binding.spec
    return {"name": binding.name, "type": str(spec.type), "title": spec.title or binding.name,
            "description": spec.description, "count_min": spec.count_min, "count_max": spec.count_max,
            "repeat_allowed": spec.repeat_allowed,
            "slots": [{"name": s.name, "dtype": s.dtype, "required": s.required} for s in spec.slots],
            "connections": [{"index": c.index, "source": str(c.connection), "known": c.known,
                             "slots": [{"slot": b.name, "dtype": b.dtype, "required": b.required,
                                        "bound": str(b.ref) if b.ref is not None else None, "how": b.how,
                                        "override": b.how == "override", "cleared": b.how == "cleared"}
                                       for b in c.slots],
                             "passthrough": [b.name for b in c.passthroughs]} for c in binding.connections],
            "unmet": binding.problems}


def job_detail(job: Job) -> dict[str, Any]:
    """Everything the job page and the builder show."""
    record = job.refresh().record
    bindings = job.input_bindings()
    run = record.run
    return {
        "uid": record.uid, "type": record.type, "title": record.title, "description": record.description,
        "type_title": record.spec.title, "category": record.spec.category,
        "status": record.status.value, "tags": record.tags, "workspaces": record.workspaces, "final": record.final,
        "created_at": _time(record.created_at), "updated_at": _time(record.updated_at),
        "status_times": {str(k): _time(v) for k, v in record.status_times.items()},
        "params": _params(record),
        "inputs": [_input(b) for b in bindings],
        "outputs": output_groups(job),
        "requirements": [p for b in bindings for p in b.problems],
        "run": None if run is None else {"lane": run.lane, "priority": run.priority, "host": run.host,
                                         "pid": run.pid, "waiting": run.waiting, "message": run.message},
        "editable": record.status == JobStatus.BUILDING,
        "directory": str(job.directory),
    }


def event(uid: str, ev: Event, base: str) -> dict[str, Any]:
    image = ev.data.get("image")
    return {"seq": ev.seq, "time": _time(ev.time), "level": ev.level, "text": ev.text,
            "image": f"{base}/events/{ev.seq}/image" if image else None,
            "progress": ev.data.get("progress"), "data": {k: v for k, v in ev.data.items() if k != "image"}}
