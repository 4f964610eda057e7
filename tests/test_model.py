"""Job types as data, the status lifecycle, and the versioned record files."""

from __future__ import annotations

import json

import pytest

from cryoweave.errors import JobTypeError, ParamError, RecordError, StatusError
from cryoweave.model import JobStatus, JobTypeSpec, check_transition
from cryoweave.model import files as record_files
from cryoweave.model.records import Connection, Event, JobRecord, ProjectRecord, WorkspaceRecord, utc_now

SPEC = {
    "type": "subset_particles", "title": "Subset particles", "category": "particle curation",
    "inputs": [{"name": "particles", "type": "particle", "slots": ["blob", "?ctf",
                                                                   {"name": "background_blob", "dtype": "stat_blob",
                                                                    "required": False}],
                "count_min": 1, "count_max": None, "repeat_allowed": True}],
    "outputs": [{"name": "particles", "type": "particle", "slots": ["alignments3D"], "passthrough": "particles"}],
    "params": [
        {"name": "fraction", "type": "number", "default": 0.5, "minimum": 0, "maximum": 1, "help": "kept"},
        {"name": "count", "type": "integer", "default": 10},
        {"name": "randomize", "type": "boolean", "default": True},
        {"name": "mode", "type": "enum", "choices": ["first", "random"], "default": "first"},
        {"name": "note", "type": "string"},
        {"name": "out_dir", "type": "path"},
    ],
    "resources": {"cpu": 2, "gpu": 1, "ram_gb": 4},
}


def test_spec_from_data_round_trips_as_json():
    spec = JobTypeSpec.parse(SPEC)
    slots = spec.input("particles").slots
    assert [(s.name, s.dtype, s.required) for s in slots] == [
        ("blob", "blob", True), ("ctf", "ctf", False), ("background_blob", "stat_blob", False)]
    assert spec.input("particles").count_max is None
    assert spec.outputs[0].passthrough == "particles"
    assert spec.resources.gpu == 1
    assert JobTypeSpec.model_validate(json.loads(spec.model_dump_json())) == spec
    assert spec.defaults() == {"fraction": 0.5, "count": 10, "randomize": True, "mode": "first", "note": None,
                               "out_dir": None}


@pytest.mark.parametrize(("name", "given", "expected"), [
    ("fraction", "0.25", 0.25), ("fraction", 1, 1.0), ("count", "12", 12), ("count", 3.0, 3),
    ("randomize", "no", False), ("randomize", "TRUE", True), ("randomize", False, False),
    ("mode", "random", "random"), ("note", "hello", "hello"), ("out_dir", "/data/x", "/data/x"),
])
def test_params_are_converted_to_their_types(name, given, expected):
    value = JobTypeSpec.parse(SPEC).coerce_params({name: given})[name]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("name", "given", "message"), [
    ("fraction", "lots", "takes a number"), ("fraction", 1.5, r"must lie in \[0.0, 1.0\]"),
    ("fraction", "nan", "takes a number"), ("count", "3.5", "takes a whole number"), ("count", True, "whole"),
    ("randomize", "maybe", "true or false"), ("mode", "all", "must be one of first, random"),
    ("note", 5, "takes text"), ("missing", 1, "has no parameter 'missing'"),
])
def test_bad_param_values_name_the_parameter(name, given, message):
    with pytest.raises(ParamError, match=message):
        JobTypeSpec.parse(SPEC).coerce_params({name: given})


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "2bad"}, "job type '2bad' must be a letter"),
    ({"outputs": [{"name": "p", "type": "particle", "passthrough": "nothing"}]}, "passes through input 'nothing'"),
    ({"inputs": [{"name": "p", "type": "particles"}]}, "Input should be 'exposure'"),
    ({"params": [{"name": "m", "type": "enum"}]}, "an enum needs choices"),
    ({"params": [{"name": "x", "type": "integer", "default": "ten"}]}, "takes a whole number"),
    ({"params": [{"name": "x", "type": "number"}, {"name": "x", "type": "number"}]}, "parameter name twice"),
    ({"inputs": [{"name": "p", "type": "particle", "slots": ["no_such_result"]}]}, "full dict form"),
    ({"inputs": [{"name": "p", "type": "particle", "count_min": 2, "count_max": 1}]}, "count_max 1 < count_min 2"),
    ({"unknown_key": 1}, "Extra inputs are not permitted"),
])
def test_invalid_specs_are_one_readable_error(change, message):
    with pytest.raises(JobTypeError, match=message) as err:
        JobTypeSpec.parse({"type": "x", "title": "X"} | change, "mylab 1.0")
    assert "\n" not in str(err.value)


def test_status_lifecycle():
    allowed = {(a, b) for a in JobStatus for b in JobStatus if a.can_become(b)}
    assert (JobStatus.BUILDING, JobStatus.QUEUED) in allowed
    assert (JobStatus.RUNNING, JobStatus.WAITING) in allowed and (JobStatus.WAITING, JobStatus.RUNNING) in allowed
    assert (JobStatus.KILLED, JobStatus.COMPLETED) in allowed  # mark completed
    assert (JobStatus.COMPLETED, JobStatus.BUILDING) in allowed  # clear
    for forbidden in [(JobStatus.BUILDING, JobStatus.RUNNING), (JobStatus.COMPLETED, JobStatus.RUNNING),
                      (JobStatus.BUILDING, JobStatus.COMPLETED), (JobStatus.QUEUED, JobStatus.COMPLETED)]:
        assert forbidden not in allowed
    assert [s for s in JobStatus if s.editable] == [JobStatus.BUILDING]
    with pytest.raises(StatusError, match=r"J4 is completed and cannot become running .*can become: building"):
        check_transition("J4", JobStatus.COMPLETED, JobStatus.RUNNING)


def _job() -> JobRecord:
    now = utc_now()
    return JobRecord(uid="J3", type="subset_particles", workspaces=["W1"], params={"fraction": 0.2},
                     inputs={"particles": [Connection.parse("J1.particles")]}, status_times={JobStatus.BUILDING: now},
                     created_at=now, updated_at=now, spec=JobTypeSpec.parse(SPEC))


def test_record_files_round_trip_with_kind_and_version():
    job = _job()
    raw = record_files.dump_record("job", job)
    document = json.loads(raw)
    assert document["kind"] == "job" and document["schema_version"] == record_files.SCHEMA_VERSION
    assert record_files.load_job(raw, "J3/job.json") == job
    spaces = [WorkspaceRecord(uid="W1", title="Main", created_at=job.created_at, updated_at=job.created_at)]
    assert record_files.load_workspaces(record_files.dump_workspaces(spaces), "w.json") == spaces
    log = [Event(seq=1, time=job.created_at, text="created"),
           Event(seq=2, time=job.created_at, text="é", level="warning")]
    assert record_files.load_events(record_files.dump_events(log), "events.jsonl") == log
    # a writer that died while appending (before its transaction committed) left half a line: not an event
    cut = record_files.dump_events(log) + record_files.dump_event(Event(seq=3, time=job.created_at, text="x"))[:20]
    assert record_files.load_events(cut, "events.jsonl") == log
    with pytest.raises(RecordError, match=r"events.jsonl:2: not valid JSON"):  # damage elsewhere is still damage
        record_files.load_events(cut.replace(b'"seq": 1', b'"seq": 1,,', 1), "events.jsonl")


@pytest.mark.parametrize(("raw", "message"), [
    (b"{not json", "not valid JSON"),
    (b'{"kind": "job", "schema_version": 999, "uid": "J3"}', "newer cryoweave .*schema 999.*upgrade"),
    (b'{"kind": "project", "schema_version": 1}', "expected a cryoweave job record, found 'project'"),
    (b'{"kind": "job", "schema_version": "1"}', "schema_version '1' is not a positive integer"),
    (b'{"kind": "job", "schema_version": 1, "uid": "J3"}', r"Field required \(at type\)"),
    (b"[1, 2]", "expected a cryoweave job record"),
])
def test_bad_record_files_name_the_file(raw, message):
    with pytest.raises(RecordError, match=message) as err:
        record_files.load_job(raw, "/proj/J3/job.json")
    assert str(err.value).startswith("/proj/J3/job.json")


def test_older_schemas_are_migrated_step_by_step(monkeypatch):
    """Schema 1 is the first, so the chain is exercised as a future change would use it."""
    monkeypatch.setattr(record_files, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(record_files.MIGRATIONS, "project", {})
    record_files.register_migration("project", 1)(
        lambda f: {**{k: v for k, v in f.items() if k != "name"}, "title": f["name"]})
    record_files.register_migration("project", 2)(lambda f: {**f, "description": f.get("description", "") + "!"})
    now = utc_now().isoformat()
    old = json.dumps({"kind": "project", "schema_version": 1, "uid": "P1", "name": "Old title", "created_at": now,
                      "updated_at": now}).encode()
    project = record_files.load_project(old, "project.json")
    assert (project.title, project.description) == ("Old title", "!")
    assert json.loads(record_files.dump_record("project", project))["schema_version"] == 3
    monkeypatch.setitem(record_files.MIGRATIONS, "project", {1: record_files.MIGRATIONS["project"][1]})
    with pytest.raises(RecordError, match="no migration of project records from schema 2 to 3"):
        record_files.load_project(old, "project.json")


def test_project_record_and_connection_parsing():
    assert str(Connection.parse("J12.particles")) == "J12.particles"
    with pytest.raises(ParamError, match=r"names a result; connect an output group such as J12.particles"):
        Connection.parse("J12.particles.blob")
    with pytest.raises(ParamError, match="J0"):
        Connection.parse("J0.particles")
    now = utc_now()
    assert ProjectRecord(uid="P1", title="t", created_at=now, updated_at=now).archived is False
